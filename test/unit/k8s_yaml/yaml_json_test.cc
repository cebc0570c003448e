// The libyaml fast path must mean exactly what the yaml-cpp path meant:
// wherever the fast path accepts a document, its JSON equals yaml-cpp's
// (value, type and key order), on hand-picked corner cases, on every golden
// input and on thousands of mutations of them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "k8s/decode.h"
#include "k8s/yaml_json.h"

namespace portico::k8s {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Equality that also tells 80 from 80.0 and "80" (json's == does not).
bool same(const json& a, const json& b) {
  return a.dump(-1, ' ', false, json::error_handler_t::replace) ==
             b.dump(-1, ' ', false, json::error_handler_t::replace) &&
         a == b;
}

struct Outcome {
  bool fast_ok = false;
  bool compat_ok = false;
  json fast, compat;
};

Outcome both(const std::string& text) {
  Outcome o;
  o.fast_ok = detail::yamlToJsonFast(text, o.fast);
  detail::YamlSyntaxError e;
  try {
    o.compat_ok = detail::yamlToJsonCompat(text, o.compat, e);
  } catch (const std::exception&) {
    o.compat_ok = false;
  }
  return o;
}

void expectAgree(const std::string& text) {
  Outcome o = both(text);
  if (!o.fast_ok) return;  // declined: yaml-cpp decides, as before
  ASSERT_TRUE(o.compat_ok) << "libyaml accepts what yaml-cpp rejects:\n" << text;
  EXPECT_TRUE(same(o.fast, o.compat))
      << "input:\n"
      << text << "\nlibyaml: " << o.fast.dump() << "\nyaml-cpp: " << o.compat.dump();
}

TEST(YamlJson, CornerCasesAgreeWithYamlCpp) {
  const char* cases[] = {
      "a: 1\nb: -2\nc: +3\nd: 1.5\ne: .5\nf: 5.\ng: 1e3\nh: -1.5E-3\ni: 0x10\nj: 0o7\n",
      "a: true\nb: True\nc: TRUE\nd: false\ne: yes\nf: no\ng: on\nh: off\n",
      "a: null\nb: ~\nc:\nd: Null\ne: NULL\nf: 'null'\ng: \"~\"\n",
      "a: '80'\nb: \"80\"\nc: !!str 80\nd: !!int 80\ne: ! 80\nf: !custom x\n",
      "a: 99999999999999999999\nb: -9223372036854775808\nc: 9223372036854775807\n",
      "a: 1e999\nb: .inf\nc: .nan\nd: 1_000\ne: 012\n",
      "a: |\n  line1\n  line2\nb: >\n  folded\n  text\n\n  para\nc: |-\n  x\nd: |+\n  y\n\n",
      "a: plain\n  continued\nb: 'single ''quoted'''\nc: \"esc \\t \\u00e9 \\n\"\n",
      "list:\n- a\n- b: 1\n  c: 2\n- [x, y]\n- {k: v}\n- - nested\n",
      "base: &b {x: 1, y: [1, 2]}\nuse: *b\ns: &s str\nt: *s\n",
      "dup: 1\ndup: 2\n",
      "z: 1\na: 2\nm: 3\n",
      "'quoted key': 1\n\"dq\": 2\ntrue: 3\n1: 4\n",
      "# only a comment\n",
      "",
      "--- \nx: 1\n",
      "[1, 2, 3]\n",
      "just a scalar\n",
      "a: {b: {c: {d: [[[]]]}}}\n",
      "a: \"\"\nb: ''\n",
      "a: 2001-12-14t21:59:43.10-05:00\nb: 1:20\nc: 0.\n",
      "emoji: \"\xf0\x9f\x98\x80\"\nraw: \xc3\xa9t\xc3\xa9\n",
      "a: [1, 2,]\n",
      "a:\n  - 1\n  -\n  - 3\n",
      "a: b\n...\nc: d\n",
      "a: 1\r\nb: [x,\r\n  y]\r\nc: |\r\n  t\r\n",
  };
  for (const char* c : cases) expectAgree(c);
}

TEST(YamlJson, DeclinesWhatOnlyYamlCppDefines) {
  json out;
  // Null keys (yaml-cpp writes them as "~"), merge keys, complex keys,
  // unknown aliases and syntax errors go to yaml-cpp.
  for (const char* text : {"~: 1\n", "null: 1\n", "? \n: 1\n", "<<: {a: 1}\n", "[a]: 1\n",
                           "a: *nope\n", "a: [\n", "this: is: not: yaml\n", "&k a: 1\n",
                           "a: \"x\ry\"\n", "a: b\r", "apiVersion\n: v1\n", "a: 1\n--- \nb: 2\n"}) {
    EXPECT_FALSE(detail::yamlToJsonFast(text, out)) << text;
  }
  // Every declined text still gets an answer: a value or a syntax error.
  detail::YamlSyntaxError e;
  EXPECT_FALSE(detail::yamlToJson("a: [\n", out, e));
  EXPECT_EQ(e.message, "end of sequence flow not found");
  EXPECT_TRUE(detail::yamlToJson("~: 1\n", out, e));
  EXPECT_EQ(out, json({{"~", 1}}));
}

TEST(YamlJson, WhatLibyamlRefusesIsAnErrorEvenIfYamlCppReadsIt) {
  // A PEM line pushed out of its block scalar's indentation: yaml-cpp reads
  // it, libyaml (and so kubectl) refuses it.
  const std::string pem =
      "data:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\nAbCd\n"
      "    -----END CERTIFICATE-----\n";
  json out;
  detail::YamlSyntaxError e;
  ASSERT_TRUE(detail::yamlToJsonCompat(pem, out, e));  // the premise
  ASSERT_FALSE(detail::yamlToJson(pem, out, e));
  EXPECT_EQ(e.line, 4);  // 0-based: the "AbCd" line
  EXPECT_NE(e.message.find("could not find expected ':'"), std::string::npos) << e.message;
}

TEST(YamlJson, PlainScalarsUseTheCoreSchema) {
  // The hand-written matchers replace these regular expressions.
  const std::regex int_re("[-+]?[0-9]+");
  const std::regex float_re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  std::mt19937 rng(7);
  const char alphabet[] = "0123456789+-.eEx ";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    size_t n = rng() % 8;
    for (size_t k = 0; k < n; ++k) s.push_back(alphabet[rng() % (sizeof(alphabet) - 1)]);
    json v = detail::resolvePlainScalar(s);
    if (s.empty()) {
      EXPECT_TRUE(v.is_null());
    } else if (std::regex_match(s, int_re)) {
      EXPECT_TRUE(v.is_number_integer() || v.is_string()) << s;
    } else if (std::regex_match(s, float_re)) {
      EXPECT_TRUE(v.is_number_float() || v.is_string()) << s;
    } else {
      EXPECT_TRUE(v.is_string()) << s;
    }
  }
  EXPECT_EQ(detail::resolvePlainScalar("+8"), json(8));
  EXPECT_EQ(detail::resolvePlainScalar("99999999999999999999"), json("99999999999999999999"));
  EXPECT_TRUE(detail::resolvePlainScalar("1.5").is_number_float());
  EXPECT_TRUE(detail::resolvePlainScalar("1.2.3").is_string());
}

TEST(YamlJson, JsonTextIsTypedLikeYaml) {
  json out;
  ASSERT_TRUE(detail::jsonTextToJson(R"({"a": 80, "b": -1, "c": "80", "d": [true, null]})", out));
  json yaml;
  ASSERT_TRUE(
      detail::yamlToJsonFast("{\"a\": 80, \"b\": -1, \"c\": \"80\", \"d\": [true, null]}", yaml));
  EXPECT_TRUE(same(out, yaml));
  EXPECT_TRUE(out["a"].is_number_integer() && !out["a"].is_number_unsigned());
  // Floats and huge integers are left to the YAML path; so is anything not JSON.
  EXPECT_FALSE(detail::jsonTextToJson(R"({"w": 1.5})", out));
  EXPECT_FALSE(detail::jsonTextToJson(R"({"w": 18446744073709551615})", out));
  EXPECT_FALSE(detail::jsonTextToJson("{a: 1}", out));
  EXPECT_FALSE(detail::jsonTextToJson("{\"a\": \"\xff\"}", out));
}

TEST(YamlJson, JsonFileDecodesLikeTheSameYaml) {
  const std::string json_text =
      R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
          "spec": {"ports": [{"name": "http", "port": 80}]}})";
  ResourceSet from_json, from_yaml;
  decodeText(json_text, "s.json", from_json);
  // The same text behind a comment is no longer JSON: it goes the YAML way.
  decodeText("# yaml\n" + json_text, "s.json", from_yaml);
  ASSERT_EQ(from_json.services.size(), 1u);
  ASSERT_EQ(from_yaml.services.size(), 1u);
  EXPECT_EQ(from_json.services[0].spec_digest, from_yaml.services[0].spec_digest);
  EXPECT_TRUE(same(*from_json.services[0].raw, *from_yaml.services[0].raw));
  EXPECT_EQ(from_json.services[0].ports.at(0).port, 80);

  ResourceSet bad;
  decodeText(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": 5}})", "b.json", bad);
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_EQ(bad.errors[0].toString(),
            "b.json: document 1: metadata.name: expected string, got number");
}

std::vector<std::string> goldenDocuments() {
  std::vector<std::string> docs;
  for (const auto& entry : fs::directory_iterator(PORTICO_GOLDEN_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    size_t pos = 0;
    for (;;) {
      size_t next = text.find("\n---", pos);
      docs.push_back(text.substr(pos, next == std::string::npos ? next : next - pos + 1));
      if (next == std::string::npos) break;
      pos = next + 4;
    }
  }
  return docs;
}

TEST(YamlJson, GoldenDocumentsAgree) {
  auto docs = goldenDocuments();
  ASSERT_GT(docs.size(), 50u);
  int accepted = 0;
  for (const auto& d : docs) {
    json out;
    if (detail::yamlToJsonFast(d, out)) ++accepted;
    expectAgree(d);
  }
  // Only the deliberately broken ones are declined.
  EXPECT_GT(accepted, static_cast<int>(docs.size()) - 5);
}

TEST(YamlJson, MutatedDocumentsAgreeOrDecline) {
  auto docs = goldenDocuments();
  std::mt19937 rng(12345);
  int fast_only = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = docs[rng() % docs.size()];
    int rounds = 1 + static_cast<int>(rng() % 3);
    for (int r = 0; r < rounds && !s.empty(); ++r) {
      size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          s[pos] = static_cast<char>(rng() % 256);
          break;
        case 2:
          s.insert(pos, s.substr(pos, 1 + rng() % 8));
          break;
        default: {
          static const char kChars[] = ":-[]{}'\"#&*!|>%@` \t\n,?~";
          s.insert(pos, 1, kChars[rng() % (sizeof(kChars) - 1)]);
        }
      }
    }
    Outcome o = both(s);
    if (!o.fast_ok) continue;
    if (!o.compat_ok) {
      ++fast_only;
      // PORTICO_SHOW_FAST_ONLY=1 prints them, to review what changed meaning.
      if (std::getenv("PORTICO_SHOW_FAST_ONLY")) std::cout << "----FASTONLY\n" << s << "\n";
      continue;
    }
    EXPECT_TRUE(same(o.fast, o.compat))
        << "input:\n"
        << s << "\nlibyaml: " << o.fast.dump() << "\nyaml-cpp: " << o.compat.dump();
  }
  // libyaml (like the Go YAML library Kubernetes uses) is stricter in places and more
  // lenient in a few others; those few texts now load where yaml-cpp said "invalid".
  RecordProperty("fast_only", fast_only);
  std::cout << "accepted by libyaml only: " << fast_only << " of 20000\n";
}

}  // namespace
}  // namespace portico::k8s
