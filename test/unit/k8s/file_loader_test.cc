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
  EXPECT_TRUE(errors.empty());
}

TEST_F(FileLoader, ExplicitFilesAndMissingPaths) {
  write("notes.txt", cm("txt"));
  write("bad.yaml", cm("ok"));
  std::vector<k8s::DecodeError> errors;
  auto files = listConfigFiles({(dir_ / "notes.txt").string(), (dir_ / "bad.yaml").string(),
                                (dir_ / "missing.yaml").string()},
                               errors);
  // Named explicitly: read whatever the extension; missing: reported.
  ASSERT_EQ(files.size(), 2u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].toString(), (dir_ / "missing.yaml").string() + ": no such file or directory");
}

}  // namespace
}  // namespace portico::providers
