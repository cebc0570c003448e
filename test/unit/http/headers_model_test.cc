// Headers under random add/set/remove/copy of known names (any case) and near misses:
// lookups by id and by name agree with a plain model that compares names byte by byte.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "http/http1.h"

namespace portico::http {
namespace {

bool naiveEq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto l = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; };
    if (l(a[i]) != l(b[i])) return false;
  }
  return true;
}

TEST(HeadersModel, LookupsAgreeWithANameByNameModel) {
  const std::vector<std::string> base = {"te",
                                         "host",
                                         "expect",
                                         "upgrade",
                                         "trailer",
                                         "connection",
                                         "keep-alive",
                                         "content-length",
                                         "x-forwarded-for",
                                         "proxy-connection",
                                         "transfer-encoding",
                                         "x-forwarded-proto",
                                         "x-custom",
                                         "cookie",
                                         "set-cookie",
                                         "hosT",
                                         "contentXlength",
                                         "content_length",
                                         "transfer-encodinG",
                                         "x-forwarded-fo",
                                         "x-forwarded-forr",
                                         "tE",
                                         "t-"};
  std::mt19937 rng(42);
  auto pick = [&]() {
    std::string n = base[rng() % base.size()];
    for (char& c : n)
      if (rng() % 2 && c >= 'a' && c <= 'z') c = char(c - 32);
    if (rng() % 10 == 0 && !n.empty()) n[rng() % n.size()] = char("[]{}@`^~|_"[rng() % 10]);
    return n;
  };
  for (int round = 0; round < 2000; ++round) {
    Headers h;
    std::vector<std::pair<std::string, std::string>> model;
    for (int op = 0; op < 30; ++op) {
      std::string n = pick();
      std::string v = "v" + std::to_string(op);
      switch (rng() % 5) {
        case 0:
          h.add(n, v);
          model.push_back({n, v});
          break;
        case 1: {
          h.set(n, v);
          std::erase_if(model, [&](auto& p) { return naiveEq(p.first, n); });
          model.push_back({n, v});
          break;
        }
        case 2: {
          size_t r = h.remove(n);
          size_t before = model.size();
          std::erase_if(model, [&](auto& p) { return naiveEq(p.first, n); });
          ASSERT_EQ(r, before - model.size());
          break;
        }
        case 3: {
          Headers c(h);
          h = c;
          break;
        }
        default: {
          std::string raw = "GET / HTTP/1.1\r\n";
          for (auto& [k, val] : model) raw += k + ": " + val + "\r\n";
          raw += "\r\n";
          (void)raw;
          break;
        }
      }
      std::string q = pick();
      std::string_view expect;
      size_t cnt = 0;
      for (auto& [k, val] : model)
        if (naiveEq(k, q)) {
          if (cnt == 0) expect = val;
          ++cnt;
        }
      ASSERT_EQ(h.get(q), expect) << q;
      ASSERT_EQ(h.count(q), cnt) << q;
      ASSERT_EQ(h.has(q), cnt > 0) << q;
      ASSERT_EQ(h.fields().size(), model.size());
      for (size_t i = 0; i < model.size(); ++i) {
        ASSERT_EQ(h.fields()[i].name, model[i].first);
        ASSERT_EQ(h.fields()[i].id, classifyField(model[i].first));
      }
    }
  }
}

TEST(HeadersModel, SerializedHeadsAreExactlyTheirFields) {
  Headers h;
  h.add("Host", "a");
  h.add("X-Empty", "");
  h.add("Transfer-Encoding", "chunked");
  std::string out = "prefix";
  appendRequestHead(out, "GET", "/x", h);
  EXPECT_EQ(out,
            "prefixGET /x HTTP/1.1\r\nHost: a\r\nX-Empty: \r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string r = "p";
  appendResponseHead(r, 599, "", h);
  appendResponseHead(r, 200, "OK", Headers());
  EXPECT_EQ(
      r,
      "p" + std::string("HTTP/1.1 599 ") + std::string(reasonPhrase(599)) +
          "\r\nHost: a\r\nX-Empty: \r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
}

}  // namespace
}  // namespace portico::http
