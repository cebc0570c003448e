#include "upstream/upstream.h"

#include <gtest/gtest.h>

#include <map>

namespace portico::upstream {
namespace {

snapshot::Snapshot twoClusters(snapshot::LbPolicy lb) {
  snapshot::Snapshot s;
  snapshot::Cluster c;
  c.name = "kube_default_svc_80";
  c.lb_policy = lb;
  c.endpoints = {{"127.0.0.1", 8001, true}, {"127.0.0.1", 8002, true}, {"127.0.0.1", 8003, true}};
  s.clusters.push_back(c);
  snapshot::Cluster empty;
  empty.name = "kube_default_empty_80";
  s.clusters.push_back(empty);
  s.buildIndex();
  return s;
}

TEST(ClusterManager, RoundRobinVisitsEveryEndpointEvenly) {
  stats::Store store;
  ClusterManager cm(store);
  auto snap = twoClusters(snapshot::LbPolicy::RoundRobin);
  cm.update(snap);
  auto* c = cm.find("kube_default_svc_80");
  ASSERT_NE(c, nullptr);
  std::map<std::string, int> hits;
  for (int i = 0; i < 300; ++i) hits[cm.pick(*c, 10000, nullptr)->address.text]++;
  ASSERT_EQ(hits.size(), 3u);
  for (const auto& [k, n] : hits) EXPECT_EQ(n, 100) << k;
  EXPECT_EQ(cm.pick(*cm.find("kube_default_empty_80"), 0, nullptr), nullptr);
}

TEST(ClusterManager, SkipsAnEndpointThatJustRefusedAndTheExcludedOne) {
  stats::Store store;
  ClusterManager cm(store);
  auto snap = twoClusters(snapshot::LbPolicy::RoundRobin);
  cm.update(snap);
  auto* c = cm.find("kube_default_svc_80");
  EndpointState* bad = c->endpoints[1];
  bad->connect_failures_in_a_row = 1;
  bad->last_failure_ms = 5000;
  for (int i = 0; i < 30; ++i) EXPECT_NE(cm.pick(*c, 5500, nullptr), bad);
  // A second later it is tried again.
  bool seen = false;
  for (int i = 0; i < 30; ++i) seen = seen || cm.pick(*c, 6500, nullptr) == bad;
  EXPECT_TRUE(seen);
  EndpointState* excluded = c->endpoints[0];
  for (int i = 0; i < 30; ++i) EXPECT_NE(cm.pick(*c, 6500, excluded), excluded);
}

TEST(ClusterManager, LeastRequestPrefersTheIdleEndpoint) {
  stats::Store store;
  ClusterManager cm(store);
  auto snap = twoClusters(snapshot::LbPolicy::LeastRequest);
  cm.update(snap);
  auto* c = cm.find("kube_default_svc_80");
  c->endpoints[0]->rq_active.set(50);
  c->endpoints[1]->rq_active.set(50);
  int idle_hits = 0;
  for (int i = 0; i < 300; ++i) idle_hits += cm.pick(*c, 0, nullptr) == c->endpoints[2] ? 1 : 0;
  // Power of two choices: the idle one wins whenever it is drawn (~5/9 of picks).
  EXPECT_GT(idle_hits, 120);
}

TEST(ClusterManager, EndpointStateSurvivesASnapshotChange) {
  stats::Store store;
  ClusterManager cm(store);
  auto first = twoClusters(snapshot::LbPolicy::RoundRobin);
  cm.update(first);
  auto* c = cm.find("kube_default_svc_80");
  EndpointState* kept = c->endpoints[2];
  kept->rq_total.inc(7);
  auto second = twoClusters(snapshot::LbPolicy::RoundRobin);
  second.clusters[0].endpoints.erase(second.clusters[0].endpoints.begin());
  cm.update(second);
  ASSERT_EQ(c->endpoints.size(), 2u);
  EXPECT_EQ(c->endpoints[1], kept);
  std::unordered_map<std::string, ClusterManager::HostTotals> totals;
  cm.addHostTotals(totals);
  EXPECT_EQ(totals["kube_default_svc_80/127.0.0.1:8003"].rq_total, 7u);
}

}  // namespace
}  // namespace portico::upstream
