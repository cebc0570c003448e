#include "server/config_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

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
  // A source that trusts stat() stamps at once, after one load of a.yaml and b.yaml.
  FileConfigSource loadedTwoFiles();
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

// ---- incremental loads ---------------------------------------------------------

std::string service(const std::string& name, int port) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec:\n  ports: [{port: " + std::to_string(port) + "}]\n";
}

std::vector<std::string> serviceNames(const k8s::ResourceSet& set) {
  std::vector<std::string> out;
  for (const auto& s : set.services) out.push_back(s.metadata.name);
  return out;
}

FileConfigSource ConfigSourceTest::loadedTwoFiles() {
  FileConfigSource source({dir_.string()});
  source.setRacyWindow(std::chrono::nanoseconds(0));
  write("a.yaml", service("a", 80));
  write("b.yaml", service("b", 80));
  std::vector<std::string> errors;
  EXPECT_EQ(serviceNames(source.load(errors)), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(errors.empty());
  return source;
}

TEST_F(ConfigSourceTest, AnUnchangedFileIsNotDecodedAgain) {
  FileConfigSource source = loadedTwoFiles();
  EXPECT_EQ(source.lastLoad().files, 2u);
  EXPECT_EQ(source.lastLoad().decoded, 2u);
  EXPECT_EQ(source.lastLoad().reused, 0u);

  std::vector<std::string> errors;
  auto again = source.load(errors);
  EXPECT_EQ(serviceNames(again), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(source.lastLoad().decoded, 0u);
  EXPECT_EQ(source.lastLoad().reused, 2u);
  EXPECT_TRUE(errors.empty());
  // The kept objects are whole, not moved-from shells.
  ASSERT_EQ(again.services[0].ports.size(), 1u);
  EXPECT_EQ(again.services[0].ports[0].port, 80);
  EXPECT_EQ(again.services[0].file, (dir_ / "a.yaml").string());
  ASSERT_TRUE(again.services[0].raw);
}

TEST_F(ConfigSourceTest, OnlyTheChangedFileIsDecoded) {
  FileConfigSource source = loadedTwoFiles();
  std::vector<std::string> errors;
  write("b.yaml", service("b", 8080));
  auto set = source.load(errors);
  EXPECT_EQ(source.lastLoad().decoded, 1u);
  EXPECT_EQ(source.lastLoad().reused, 1u);
  ASSERT_EQ(set.services.size(), 2u);
  EXPECT_EQ(set.services[1].ports[0].port, 8080);
  EXPECT_EQ(set.services[0].ports[0].port, 80);
}

TEST_F(ConfigSourceTest, AnEditThatKeepsSizeAndMtimeIsStillSeen) {
  FileConfigSource source(
      {dir_.string()});  // the default window: stamps of fresh files are not trusted
  write("a.yaml", service("a", 80));
  std::vector<std::string> errors;
  source.load(errors);
  struct stat before {};
  ASSERT_EQ(::stat((dir_ / "a.yaml").c_str(), &before), 0);
  write("a.yaml", service("a", 81));  // same size, same inode
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir_ / "a.yaml").c_str(), times, 0), 0);
  auto set = source.load(errors);
  EXPECT_EQ(source.lastLoad().decoded, 1u);
  ASSERT_EQ(set.services.size(), 1u);
  EXPECT_EQ(set.services[0].ports[0].port, 81);
}

TEST_F(ConfigSourceTest, ANewStampOnTheSameContentIsNotDecoded) {
  FileConfigSource source({dir_.string()});
  source.setRacyWindow(std::chrono::nanoseconds(0));
  write("a.yaml", service("a", 80));
  std::vector<std::string> errors;
  source.load(errors);
  // Rewritten through a rename (new inode, new times), same bytes.
  write(".a.tmp", service("a", 80));
  fs::rename(dir_ / ".a.tmp", dir_ / "a.yaml");
  EXPECT_EQ(source.load(errors).services.size(), 1u);
  EXPECT_EQ(source.lastLoad().decoded, 0u);
  EXPECT_EQ(source.lastLoad().reused, 1u);
}

TEST_F(ConfigSourceTest, AnUnchangedBadFileKeepsReportingItsErrors) {
  FileConfigSource source({dir_.string()});
  source.setRacyWindow(std::chrono::nanoseconds(0));
  write("a.yaml", service("a", 80));
  std::vector<std::string> errors;
  source.load(errors);
  write("a.yaml", "kind: [broken\n");
  for (int i = 0; i < 2; ++i) {
    errors.clear();
    auto set = source.load(errors);
    EXPECT_EQ(source.lastLoad().decoded, i == 0 ? 1u : 0u) << "load " << i;
    ASSERT_EQ(errors.size(), 1u) << "load " << i;
    EXPECT_NE(errors[0].find("a.yaml"), std::string::npos) << errors[0];
    EXPECT_EQ(serviceNames(set), std::vector<std::string>{"a"}) << "load " << i;
  }
}

TEST_F(ConfigSourceTest, ADeletedFileDropsOutAndComesBackDecoded) {
  FileConfigSource source = loadedTwoFiles();
  std::vector<std::string> errors;
  fs::remove(dir_ / "b.yaml");
  EXPECT_EQ(serviceNames(source.load(errors)), std::vector<std::string>{"a"});
  EXPECT_EQ(source.lastLoad().files, 1u);
  write("b.yaml", service("b", 80));
  EXPECT_EQ(serviceNames(source.load(errors)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(source.lastLoad().decoded, 1u);
  EXPECT_TRUE(errors.empty());
}

TEST_F(ConfigSourceTest, AOneShotSourceGivesTheSameObjects) {
  write("a.yaml", service("a", 80));
  write("b.yaml", "kind: [broken\n");
  FileConfigSource kept({dir_.string()});
  FileConfigSource once({dir_.string()}, /*keep_objects=*/false);
  std::vector<std::string> e1, e2;
  auto s1 = kept.load(e1);
  auto s2 = once.load(e2);
  EXPECT_EQ(serviceNames(s1), serviceNames(s2));
  EXPECT_EQ(e1, e2);
  ASSERT_EQ(s2.services.size(), 1u);
  EXPECT_EQ(s2.services[0].spec_digest, s1.services[0].spec_digest);
}

}  // namespace
}  // namespace portico::server
