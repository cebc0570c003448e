// Golden tests for translation: every cases/<case>.in.yaml is decoded,
// stamped at a fixed time and translated; the result (decode errors, notes,
// snapshot dump, status List) must equal cases/<case>.out.json byte for byte.
// Run with PORTICO_UPDATE_GOLDEN=1 to rewrite the expected files, then review
// the diff by eye: they must say what the Gateway API spec says.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "k8s/decode.h"
#include "k8s/object_tracker.h"
#include "snapshot/dump.h"
#include "translate/status.h"
#include "translate/translate.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace portico;

constexpr const char* kNow = "2024-01-01T00:00:00Z";

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string render(const std::string& file_name, const std::string& text) {
  k8s::ResourceSet set;
  k8s::decodeText(text, file_name, set);
  k8s::finalize(set);
  k8s::ObjectTracker tracker;
  // 2024-01-01T00:00:00Z: objects without creationTimestamp get this one.
  tracker.stamp(set, std::chrono::system_clock::time_point(std::chrono::seconds(1704067200)));
  translate::Options options;
  options.now = kNow;
  options.version = 1;
  auto result = translate::translate(set, options);
  json out;
  json errors = json::array();
  for (const auto& e : set.errors) errors.push_back(e.toString());
  out["errors"] = errors;
  out["notes"] = result.status.notes;
  out["snapshot"] = json::parse(snapshot::dumpSnapshotJson(*result.snapshot));
  out["status"] =
      json::parse(translate::renderStatusList(set, result.status, translate::OutputFormat::Json));
  return out.dump(2) + "\n";
}

std::vector<fs::path> cases() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(PORTICO_GOLDEN_DIR)) {
    std::string name = e.path().filename().string();
    if (name.size() > 8 && name.substr(name.size() - 8) == ".in.yaml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class Golden : public ::testing::TestWithParam<fs::path> {};

TEST_P(Golden, MatchesExpected) {
  const fs::path in = GetParam();
  std::string name = in.filename().string();
  std::string base = name.substr(0, name.size() - 8);
  fs::path expected_path = in.parent_path() / (base + ".out.json");
  std::string actual = render(name, readFile(in));
  const char* update = std::getenv("PORTICO_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    std::ofstream(expected_path, std::ios::binary) << actual;
    GTEST_SKIP() << "rewrote " << expected_path;
  }
  ASSERT_TRUE(fs::exists(expected_path))
      << expected_path << " missing; run with PORTICO_UPDATE_GOLDEN=1 and review it";
  std::string expected = readFile(expected_path);
  if (expected != actual) {
    // Point at the first differing line: whole files are too long to read.
    std::istringstream a(actual), e(expected);
    std::string la, le;
    int line = 0;
    while (true) {
      ++line;
      bool ga = static_cast<bool>(std::getline(a, la));
      bool ge = static_cast<bool>(std::getline(e, le));
      if (!ga && !ge) break;
      if (la != le || ga != ge) {
        ADD_FAILURE() << base << ": first difference at line " << line << "\n  expected: " << le
                      << "\n  actual:   " << la;
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Golden, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string n = info.param.filename().string();
                           n = n.substr(0, n.size() - 8);
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(GoldenSuite, HasCases) { EXPECT_GE(cases().size(), 10u); }

}  // namespace
