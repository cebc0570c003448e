// FileConfigSource keeps a file's last good read across any number of bad
// reads, merges several files without losing or duplicating objects, and
// forgets a file's good read once the file is gone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/config_source.h"

namespace portico::server {
namespace {
namespace fs = std::filesystem;

class LastGoodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("portico-lg-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  fs::path dir_;
};

std::string services(std::initializer_list<const char*> names) {
  std::string text;
  for (const char* n : names)
    text += std::string("---\napiVersion: v1\nkind: Service\nmetadata: {name: ") + n +
            "}\nspec: {ports: [{port: 80}]}\n";
  return text;
}

std::vector<std::string> names(const k8s::ResourceSet& set) {
  std::vector<std::string> out;
  for (const auto& s : set.services) out.push_back(s.metadata.name);
  return out;
}

TEST_F(LastGoodTest, SurvivesRepeatedBadReadsAndYieldsToTheNextGoodOne) {
  FileConfigSource source({dir_.string()});
  write("a.yaml", services({"a1", "a2"}));
  write("b.yaml", services({"b1"}));
  std::vector<std::string> errors;
  EXPECT_EQ(names(source.load(errors)), (std::vector<std::string>{"a1", "a2", "b1"}));
  EXPECT_TRUE(errors.empty());

  write("a.yaml", services({"a1"}) + "---\nkind: [broken\n");
  for (int i = 0; i < 3; ++i) {
    errors.clear();
    auto set = source.load(errors);
    EXPECT_EQ(names(set), (std::vector<std::string>{"a1", "a2", "b1"})) << "read " << i;
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("a.yaml: document 2:"), std::string::npos) << errors[0];
    // The objects served are the old read's, down to where they came from.
    EXPECT_EQ(set.services[1].document, 2);
  }

  write("a.yaml", services({"a3"}));
  errors.clear();
  EXPECT_EQ(names(source.load(errors)), (std::vector<std::string>{"a3", "b1"}));
  EXPECT_TRUE(errors.empty());
}

TEST_F(LastGoodTest, AGoneFileIsForgotten) {
  FileConfigSource source({dir_.string()});
  write("a.yaml", services({"a1"}));
  std::vector<std::string> errors;
  EXPECT_EQ(source.load(errors).services.size(), 1u);
  fs::remove(dir_ / "a.yaml");
  EXPECT_EQ(source.load(errors).services.size(), 0u);
  // Back, but bad: there is no good read left to fall back to.
  write("a.yaml", "kind: [broken\n");
  errors.clear();
  EXPECT_EQ(source.load(errors).services.size(), 0u);
  EXPECT_EQ(errors.size(), 1u);
}

TEST_F(LastGoodTest, DuplicatesAcrossFilesAreStillReportedOnce) {
  FileConfigSource source({dir_.string()});
  write("a.yaml", services({"same"}));
  write("b.yaml", services({"same"}));
  std::vector<std::string> errors;
  auto set = source.load(errors);
  EXPECT_EQ(names(set), (std::vector<std::string>{"same"}));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("duplicate Service default/same"), std::string::npos) << errors[0];
}

}  // namespace
}  // namespace portico::server
