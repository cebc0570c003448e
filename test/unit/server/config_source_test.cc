#include "server/config_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace portico::server {
namespace {
namespace fs = std::filesystem;

class ConfigSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("portico-cs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  fs::path dir_;
};

const char* kService = R"(apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  ports: [{port: 80}]
)";

TEST_F(ConfigSourceTest, AFileThatStopsParsingKeepsItsLastGoodObjects) {
  FileConfigSource source({dir_.string()});
  write("svc.yaml", kService);
  std::vector<std::string> errors;
  auto first = source.load(errors);
  ASSERT_TRUE(errors.empty());
  ASSERT_EQ(first.services.size(), 1u);

  write("svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: nope}]}\n");
  auto second = source.load(errors);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("svc.yaml: document 1:"), std::string::npos) << errors[0];
  ASSERT_EQ(second.services.size(), 1u);  // still served from the last good read
  EXPECT_EQ(second.services[0].metadata.name, "a");
}

TEST_F(ConfigSourceTest, ANewBadFileContributesNothingAndTheRestLoads) {
  FileConfigSource source({dir_.string()});
  write("svc.yaml", kService);
  write("bad.yaml", "kind: [unclosed\n");
  write(".hidden.yaml", kService);
  std::vector<std::string> errors;
  auto set = source.load(errors);
  EXPECT_EQ(set.services.size(), 1u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("bad.yaml"), std::string::npos);
}

TEST_F(ConfigSourceTest, ARemovedFileTakesItsObjectsAway) {
  FileConfigSource source({dir_.string()});
  write("svc.yaml", kService);
  std::vector<std::string> errors;
  EXPECT_EQ(source.load(errors).services.size(), 1u);
  fs::remove(dir_ / "svc.yaml");
  EXPECT_EQ(source.load(errors).services.size(), 0u);
  EXPECT_EQ(source.watchDirectories(), std::vector<std::string>{dir_.string()});
}

}  // namespace
}  // namespace portico::server
