#include "k8s/object_tracker.h"

#include <gtest/gtest.h>
#include "common/time.h"

#include "k8s/decode.h"

namespace portico::k8s {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

const system_clock::time_point kT0{seconds(1704067200)};  // 2024-01-01T00:00:00Z
const system_clock::time_point kT1{seconds(1704153600)};  // 2024-01-02T00:00:00Z

ResourceSet load(const std::string& text) {
  ResourceSet set;
  decodeText(text, "t.yaml", set);
  finalize(set);
  EXPECT_TRUE(set.errors.empty());
  return set;
}

std::string route(const std::string& path, const std::string& label = "a") {
  return "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, labels: "
         "{l: " +
         label + "}}\nspec: {rules: [{matches: [{path: {value: " + path + "}}]}]}\n";
}

TEST(ObjectTracker, FormatsRfc3339) {
  EXPECT_EQ(common::formatRfc3339(kT0), "2024-01-01T00:00:00Z");
  EXPECT_EQ(common::formatRfc3339(kT1 + seconds(3723)), "2024-01-02T01:02:03Z");
}

TEST(CommonTime, FormatsHttpDate) {
  EXPECT_EQ(common::formatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's
  EXPECT_EQ(common::formatHttpDate(1704067200 + 86400 * 60 + 3723),
            "Fri, 01 Mar 2024 01:02:03 GMT");
}

TEST(ObjectTracker, StampsGenerationAndCreationAcrossReloads) {
  ObjectTracker tracker;
  auto s1 = load(route("/a"));
  tracker.stamp(s1, kT0);
  EXPECT_EQ(s1.http_routes[0].metadata.generation, 1);
  EXPECT_EQ(s1.http_routes[0].metadata.creation_timestamp, "2024-01-01T00:00:00Z");

  auto s2 = load(route("/a", "changed"));  // metadata-only change: no bump
  tracker.stamp(s2, kT1);
  EXPECT_EQ(s2.http_routes[0].metadata.generation, 1);
  EXPECT_EQ(s2.http_routes[0].metadata.creation_timestamp, "2024-01-01T00:00:00Z");

  auto s3 = load(route("/b"));  // spec change: bump, creation kept
  tracker.stamp(s3, kT1);
  EXPECT_EQ(s3.http_routes[0].metadata.generation, 2);
  EXPECT_EQ(s3.http_routes[0].metadata.creation_timestamp, "2024-01-01T00:00:00Z");

  auto empty = load("");  // deleted: forgotten
  tracker.stamp(empty, kT1);
  auto s4 = load(route("/b"));
  tracker.stamp(s4, kT1);
  EXPECT_EQ(s4.http_routes[0].metadata.generation, 1);
  EXPECT_EQ(s4.http_routes[0].metadata.creation_timestamp, "2024-01-02T00:00:00Z");
}

TEST(ObjectTracker, GivenValuesWin) {
  ObjectTracker tracker;
  auto s = load(
      "apiVersion: v1\nkind: Service\nmetadata: {name: s, generation: 5, creationTimestamp: "
      "\"2020-02-02T00:00:00Z\"}\n");
  tracker.stamp(s, kT0);
  EXPECT_EQ(s.services[0].metadata.generation, 5);
  EXPECT_EQ(s.services[0].metadata.creation_timestamp, "2020-02-02T00:00:00Z");
}

TEST(ObjectTracker, SameNameDifferentKindsAreSeparate) {
  ObjectTracker tracker;
  auto s = load(
      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n");
  tracker.stamp(s, kT0);
  auto s2 = load(
      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: c}\n");
  tracker.stamp(s2, kT1);
  EXPECT_EQ(s2.services[0].metadata.generation, 1);
  EXPECT_EQ(s2.config_maps[0].metadata.generation, 2);
}

}  // namespace
}  // namespace portico::k8s
