#include "providers/file_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace portico::providers {
namespace {

namespace fs = std::filesystem;

class FileLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("portico-loader-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "sub");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const fs::path& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }
  static std::string cm(const std::string& name) {
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n";
  }
  fs::path dir_;
};

TEST_F(FileLoader, ReadsDirectoryNonRecursiveSortedSkippingHiddenAndOtherExtensions) {
  write("b.yaml", cm("b"));
  write("a.yml", cm("a"));
  write("c.json", R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})");
  write(".hidden.yaml", cm("hidden"));
  write("notes.txt", cm("txt"));
  write("sub/deep.yaml", cm("deep"));
  std::vector<k8s::DecodeError> errors;
  auto files = listConfigFiles({dir_.string()}, errors);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(fs::path(files[0]).filename(), "a.yml");
  EXPECT_EQ(fs::path(files[1]).filename(), "b.yaml");
  EXPECT_EQ(fs::path(files[2]).filename(), "c.json");
  auto set = loadConfig({dir_.string()});
  EXPECT_TRUE(set.errors.empty());
  ASSERT_EQ(set.config_maps.size(), 3u);
}

TEST_F(FileLoader, ExplicitFilesAndMissingPaths) {
  write("notes.txt", cm("txt"));
  write("bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\n" + cm("ok"));
  auto set = loadConfig({(dir_ / "notes.txt").string(), (dir_ / "bad.yaml").string(),
                         (dir_ / "missing.yaml").string()});
  ASSERT_EQ(set.config_maps.size(), 2u);  // "ok" from bad.yaml, "txt" named explicitly
  ASSERT_EQ(set.errors.size(), 2u);
  std::string bad = (dir_ / "bad.yaml").string();
  std::string missing = (dir_ / "missing.yaml").string();
  std::vector<std::string> lines = {set.errors[0].toString(), set.errors[1].toString()};
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> expected = {
      bad + ": document 1: metadata.name: required field is missing",
      missing + ": no such file or directory"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(lines, expected);
}

}  // namespace
}  // namespace portico::providers
