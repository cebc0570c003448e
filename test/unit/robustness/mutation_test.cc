// Bad input never crashes: every golden input, mutated thousands of ways
// (bytes dropped, duplicated, flipped, lines swapped, truncated), goes
// through decode + translate + status rendering, and every HTTP/1 message
// mutated the same way goes through the parser. The only acceptable outcomes
// are a result or an error report: no exception escapes, no crash (run it
// under ASan to also catch memory errors).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "http/http1.h"
#include "k8s/decode.h"
#include "snapshot/dump.h"
#include "translate/status.h"
#include "translate/translate.h"

namespace portico {
namespace {
namespace fs = std::filesystem;

std::string mutate(const std::string& in, std::mt19937& rng) {
  std::string s = in;
  std::uniform_int_distribution<int> op(0, 5);
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds && !s.empty(); ++r) {
    size_t pos = rng() % s.size();
    size_t len = 1 + rng() % std::min<size_t>(16, s.size() - pos);
    switch (op(rng)) {
      case 0:
        s.erase(pos, len);
        break;
      case 1:
        s.insert(pos, s.substr(pos, len));
        break;
      case 2:
        s[pos] = static_cast<char>(rng() % 256);
        break;
      case 3:
        s.resize(pos);
        break;
      case 4: {  // swap two lines
        size_t a = s.rfind('\n', pos);
        size_t b = s.find('\n', pos + 1);
        if (a != std::string::npos && b != std::string::npos) {
          std::string line = s.substr(a, b - a);
          s.erase(a, b - a);
          s.insert(rng() % (s.size() + 1), line);
        }
        break;
      }
      default: {  // a YAML-significant character
        static const char kChars[] = ":-[]{}'\"#&*!|>%@` \t\n";
        s.insert(pos, 1, kChars[rng() % (sizeof(kChars) - 1)]);
      }
    }
  }
  return s;
}

std::vector<std::string> goldenInputs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(PORTICO_GOLDEN_DIR)) {
    if (e.path().string().ends_with(".in.yaml")) {
      std::ifstream f(e.path());
      std::stringstream ss;
      ss << f.rdbuf();
      out.push_back(ss.str());
    }
  }
  return out;
}

TEST(Robustness, MutatedManifestsNeverThrowOrCrash) {
  common::setLogLevel(common::LogLevel::Off);  // "ignoring unsupported kind" x thousands
  auto inputs = goldenInputs();
  ASSERT_GT(inputs.size(), 10u);
  std::mt19937 rng(20261126);
  size_t with_errors = 0, runs = 0;
  for (int i = 0; i < 8000; ++i) {
    const std::string text = mutate(inputs[i % inputs.size()], rng);
    ASSERT_NO_THROW({
      k8s::ResourceSet set;
      k8s::decodeText(text, "fuzz.yaml", set);
      k8s::finalize(set);
      with_errors += set.hasErrors() ? 1 : 0;
      translate::Options o;
      auto r = translate::translate(set, o);
      ASSERT_NE(r.snapshot, nullptr);
      (void)snapshot::dumpSnapshotJson(*r.snapshot);
      (void)translate::renderStatusList(set, r.status, translate::OutputFormat::Yaml);
      (void)translate::renderStatusList(set, r.status, translate::OutputFormat::Json);
    }) << text;
    ++runs;
  }
  // The mutations must actually reach the error paths, or this test proves little.
  EXPECT_GT(with_errors, runs / 10);
}

TEST(Robustness, MutatedHttpMessagesNeverCrashTheParsers) {
  const std::vector<std::string> seeds = {
      "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHOST: h\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\nTE: trailers\r\n"
      "Keep-Alive: 5\r\nUpgrade: websocket\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
      "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
      "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: "
      "v\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  };
  std::mt19937 rng(7);
  size_t errors = 0;
  for (int i = 0; i < 8000; ++i) {
    const std::string& seed = seeds[i % seeds.size()];
    const std::string msg = mutate(seed, rng);
    const bool response = seed.rfind("HTTP/", 0) == 0;
    http::RequestParser req;
    http::ResponseParser resp;
    resp.expect("GET");
    std::string_view in = msg;
    for (int steps = 0; steps < 64; ++steps) {
      size_t used = 0;
      // Feed in random-sized pieces.
      std::string_view piece = in.substr(0, 1 + rng() % (in.size() + 1));
      auto ev = response ? resp.next(piece, used) : req.next(piece, used);
      ASSERT_LE(used, piece.size());
      in.remove_prefix(used);
      if (ev.type == http::ParseEvent::Type::Error) {
        ++errors;
        break;
      }
      if (ev.type == http::ParseEvent::Type::HeadComplete) {
        // Every field carries the id of its name, so lookups by id and by
        // name agree whatever the bytes were.
        const http::Headers& h = response ? resp.head().headers : req.head().headers;
        for (const auto& f : h.fields()) {
          ASSERT_EQ(f.id, http::classifyField(f.name)) << f.name;
          if (f.id != http::FieldId::Other) {
            ASSERT_EQ(h.get(f.name), h.get(f.id)) << f.name;
          }
        }
      }
      if (ev.type == http::ParseEvent::Type::NeedMore && in.empty()) break;
      if (ev.type == http::ParseEvent::Type::MessageComplete) {
        if (response)
          resp.reset();
        else
          req.reset();
      }
    }
  }
  EXPECT_GT(errors, 1000u);
}

}  // namespace
}  // namespace portico
