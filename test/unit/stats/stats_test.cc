#include "stats/stats.h"

#include <gtest/gtest.h>

#include <map>

#include <atomic>
#include <cmath>
#include <thread>

namespace portico::stats {
namespace {

const MergedStat* find(const std::vector<MergedStat>& stats, const std::string& full) {
  for (const auto& s : stats) {
    if (s.name.full() == full) return &s;
  }
  return nullptr;
}

TEST(StatName, FullSkipsEmptyParts) {
  EXPECT_EQ((StatName{"cluster", "c1", "upstream_rq_total"}.full()),
            "cluster.c1.upstream_rq_total");
  EXPECT_EQ((StatName{"server", "", "live"}.full()), "server.live");
  EXPECT_EQ((StatName{"", "", "bare_stat"}.full()), "bare_stat");
}

TEST(Store, SameNameSameObject) {
  Registry registry;
  Store& store = registry.newStore();
  Counter& a = store.counter("cluster", "c1", "upstream_rq_total");
  Counter& b = store.counter("cluster", "c1", "upstream_rq_total");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &store.counter("cluster", "c2", "upstream_rq_total"));
}

TEST(Store, AddressesStableAcrossGrowth) {
  Registry registry;
  Store& store = registry.newStore();
  Counter& first = store.counter("", "", "first");
  first.inc(7);
  for (int i = 0; i < 5000; ++i) store.counter("cluster", "c" + std::to_string(i), "x").inc();
  EXPECT_EQ(&first, &store.counter("", "", "first"));
  EXPECT_EQ(first.value(), 7u);
}

TEST(Registry, MergesShardsAndSorts) {
  Registry registry;
  Store& w1 = registry.newStore();
  Store& w2 = registry.newStore();
  w1.counter("cluster", "b", "upstream_rq_total").inc(3);
  w2.counter("cluster", "b", "upstream_rq_total").inc(4);
  w2.counter("cluster", "a", "upstream_rq_total").inc(1);
  w1.gauge("cluster", "b", "upstream_cx_active").add(5);
  w2.gauge("cluster", "b", "upstream_cx_active").sub(2);
  w1.histogram("cluster", "b", "upstream_rq_time").record(3);
  w2.histogram("cluster", "b", "upstream_rq_time").record(3);
  w2.histogram("cluster", "b", "upstream_rq_time").record(20);

  auto stats = registry.collect();
  ASSERT_EQ(stats.size(), 4u);
  for (size_t i = 1; i < stats.size(); ++i) {
    EXPECT_LT(stats[i - 1].name.full(), stats[i].name.full());
  }
  const MergedStat* total_b = find(stats, "cluster.b.upstream_rq_total");
  ASSERT_NE(total_b, nullptr);
  EXPECT_EQ(total_b->type, StatType::Counter);
  EXPECT_EQ(total_b->counter, 7u);
  EXPECT_EQ(total_b->name.kind, "cluster");
  EXPECT_EQ(total_b->name.scope, "b");
  EXPECT_EQ(total_b->name.suffix, "upstream_rq_total");
  EXPECT_EQ(find(stats, "cluster.a.upstream_rq_total")->counter, 1u);

  const MergedStat* active = find(stats, "cluster.b.upstream_cx_active");
  ASSERT_NE(active, nullptr);
  EXPECT_EQ(active->type, StatType::Gauge);
  EXPECT_EQ(active->gauge, 3);

  const MergedStat* time = find(stats, "cluster.b.upstream_rq_time");
  ASSERT_NE(time, nullptr);
  EXPECT_EQ(time->type, StatType::Histogram);
  EXPECT_EQ(time->count, 3u);
  EXPECT_DOUBLE_EQ(time->sum, 26);
  EXPECT_EQ(time->buckets[2], 2u);  // (1, 5]
  EXPECT_EQ(time->buckets[4], 1u);  // (10, 25]
}

// The k-way merge against a plain reference: random stats over three shards
// (names shared, unique, and one whose type the shards disagree on), whole
// and filtered. Sorted by full name, each shard's values summed, the first
// shard that has a stat naming its type, the filter applied per shard entry.
TEST(Registry, MergeMatchesAReference) {
  Registry registry;
  std::vector<Store*> shards = {&registry.newStore(), &registry.newStore(), &registry.newStore()};
  std::map<std::string, std::pair<StatType, int64_t>> want_all;
  uint64_t seed = 7;
  auto next = [&](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  for (int i = 0; i < 3000; ++i) {
    const size_t shard = next(3);
    const std::string scope = "c" + std::to_string(next(60));
    const std::string suffix = next(2) ? "upstream_rq_total" : "upstream_cx_active";
    const int64_t v = static_cast<int64_t>(1 + next(9));
    const std::string full = "cluster." + scope + "." + suffix;
    if (suffix == "upstream_rq_total") {
      shards[shard]->counter("cluster", scope, suffix).inc(static_cast<uint64_t>(v));
    } else {
      shards[shard]->gauge("cluster", scope, suffix).add(v);
    }
    auto& [type, total] = want_all[full];
    type = suffix == "upstream_rq_total" ? StatType::Counter : StatType::Gauge;
    total += v;
  }
  // Shard 1 registers "cluster.x.mixed" first as a gauge; shard 0 as a counter:
  // shard 0 comes first in the merge, so it is a counter of shard 0's value.
  shards[1]->gauge("cluster", "x", "mixed").add(5);
  shards[0]->counter("cluster", "x", "mixed").inc(2);
  want_all["cluster.x.mixed"] = {StatType::Counter, 2};

  auto check = [&](const std::vector<MergedStat>& got, const std::string& only) {
    std::vector<std::string> names;
    for (const auto& [name, v] : want_all)
      if (only.empty() || name.find(only) != std::string::npos) names.push_back(name);
    ASSERT_EQ(got.size(), names.size()) << only;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].name.full(), names[i]) << only;
      const auto& [type, total] = want_all.at(names[i]);
      ASSERT_EQ(got[i].type, type) << names[i];
      const int64_t value =
          type == StatType::Counter ? static_cast<int64_t>(got[i].counter) : got[i].gauge;
      EXPECT_EQ(value, total) << names[i];
    }
  };
  check(registry.collect(), "");
  check(registry.collect([](std::string_view full, StatType) {
    return full.find("upstream_cx_active") != std::string_view::npos;
  }),
        "upstream_cx_active");
}

// One writer per shard bumps while the admin thread keeps collecting: every
// snapshot must be monotonic and the final totals exact.
TEST(Registry, SingleWriterCountersUnderConcurrentCollect) {
  Registry registry;
  Store& w1 = registry.newStore();
  Store& w2 = registry.newStore();
  Counter& c1 = w1.counter("cluster", "c", "upstream_rq_total");
  Counter& c2 = w2.counter("cluster", "c", "upstream_rq_total");
  Histogram& h1 = w1.histogram("cluster", "c", "upstream_rq_time");
  constexpr uint64_t kIterations = 200000;

  std::atomic<bool> done{false};
  uint64_t last_seen = 0;
  bool monotonic = true;
  std::thread reader([&] {
    while (!done.load()) {
      auto stats = registry.collect();
      const MergedStat* total = find(stats, "cluster.c.upstream_rq_total");
      if (total == nullptr) continue;
      if (total->counter < last_seen) monotonic = false;
      last_seen = total->counter;
    }
  });
  std::thread writer1([&] {
    for (uint64_t i = 0; i < kIterations; ++i) {
      c1.inc();
      h1.record(static_cast<double>(i % 100));
    }
  });
  std::thread writer2([&] {
    for (uint64_t i = 0; i < kIterations; ++i) c2.inc(2);
  });
  writer1.join();
  writer2.join();
  done = true;
  reader.join();

  EXPECT_TRUE(monotonic);
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_total")->counter, 3 * kIterations);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_time")->count, kIterations);
}

TEST(Registry, CreatingStatsWhileCollecting) {
  Registry registry;
  Store& w = registry.newStore();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) registry.collect();
  });
  for (int i = 0; i < 2000; ++i) w.counter("cluster", "c" + std::to_string(i), "x").inc();
  done = true;
  reader.join();
  EXPECT_EQ(registry.collect().size(), 2000u);
}

TEST(Histogram, BucketsUseInclusiveUpperBounds) {
  Histogram h;
  h.record(0.5);  // le 0.5
  h.record(0.6);  // le 1
  h.record(1);    // le 1
  h.record(-3);   // le 0.5
  h.record(5e6);  // overflow
  h.record(NAN);  // dropped
  EXPECT_EQ(h.bucketCount(0), 2u);
  EXPECT_EQ(h.bucketCount(1), 2u);
  EXPECT_EQ(h.bucketCount(Histogram::kBounds.size()), 1u);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.5 + 0.6 + 1 - 3 + 5e6);
}

MergedStat histogramOf(const std::vector<double>& values) {
  Registry registry;
  Histogram& h = registry.newStore().histogram("", "", "h");
  for (double v : values) h.record(v);
  return registry.collect().at(0);
}

TEST(MergedStat, QuantileEmptyIsNan) {
  MergedStat empty = histogramOf({});
  EXPECT_TRUE(std::isnan(empty.quantile(0.5)));
}

TEST(MergedStat, QuantileInterpolatesInsideBucket) {
  // Ten values in (10, 25]: rank q*10 lands proportionally across the bucket.
  MergedStat m = histogramOf({11, 12, 13, 14, 15, 16, 17, 18, 19, 20});
  EXPECT_DOUBLE_EQ(m.quantile(0), 10);
  EXPECT_DOUBLE_EQ(m.quantile(0.5), 17.5);
  EXPECT_DOUBLE_EQ(m.quantile(1), 25);
}

TEST(MergedStat, QuantileAcrossBuckets) {
  // 4 in (0.5,1], 4 in (5,10], 2 in (50,100]
  MergedStat m = histogramOf({0.7, 0.8, 0.9, 1, 6, 7, 8, 9, 60, 70});
  EXPECT_DOUBLE_EQ(m.quantile(0.2), 0.5 + 0.5 * 0.5);  // rank 2 of 4 in (0.5, 1]
  EXPECT_DOUBLE_EQ(m.quantile(0.6), 5 + 5 * 0.5);      // rank 6: 2 of 4 in (5, 10]
  EXPECT_DOUBLE_EQ(m.quantile(0.9), 50 + 50 * 0.5);    // rank 9: 1 of 2 in (50, 100]
  EXPECT_DOUBLE_EQ(m.quantile(1.0), 100);
}

TEST(MergedStat, QuantileOverflowBucketReportsLastBound) {
  MergedStat m = histogramOf({1e9});
  EXPECT_DOUBLE_EQ(m.quantile(0.99), Histogram::kBounds.back());
}

TEST(ClusterStats, MakeNamesEveryStat) {
  Registry registry;
  Store& store = registry.newStore();
  ClusterStats cs = ClusterStats::make(store, "kube_default_nginx_8443");
  cs.upstream_rq_total->inc();
  cs.upstream_cx_active->add(2);
  cs.upstream_rq_time->record(12);
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "cluster.kube_default_nginx_8443.upstream_rq_total")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.kube_default_nginx_8443.upstream_cx_active")->gauge, 2);
  EXPECT_EQ(find(stats, "cluster.kube_default_nginx_8443.upstream_rq_time")->count, 1u);
  EXPECT_NE(find(stats, "cluster.kube_default_nginx_8443.upstream_cx_connect_ms"), nullptr);
  EXPECT_NE(find(stats, "cluster.kube_default_nginx_8443.membership_healthy"), nullptr);
  // Codes are created lazily: none seen yet.
  EXPECT_EQ(find(stats, "cluster.kube_default_nginx_8443.upstream_rq_200"), nullptr);
}

TEST(ClusterStats, ResponseCodes) {
  Registry registry;
  Store& store = registry.newStore();
  ClusterStats cs = ClusterStats::make(store, "c");
  cs.recordResponseCode(200);
  cs.recordResponseCode(200);
  cs.recordResponseCode(204);
  cs.recordResponseCode(503);
  cs.recordResponseCode(101);
  cs.recordResponseCode(42);    // nonsense: ignored
  cs.recordResponseCode(1000);  // nonsense: ignored
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_200")->counter, 2u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_204")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_503")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_101")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_2xx")->counter, 3u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_5xx")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_1xx")->counter, 1u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_4xx")->counter, 0u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_42"), nullptr);
}

TEST(ClusterStats, ResponseCodesMergeAcrossWorkers) {
  Registry registry;
  ClusterStats a = ClusterStats::make(registry.newStore(), "c");
  ClusterStats b = ClusterStats::make(registry.newStore(), "c");
  a.recordResponseCode(404);
  b.recordResponseCode(404);
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_404")->counter, 2u);
  EXPECT_EQ(find(stats, "cluster.c.upstream_rq_4xx")->counter, 2u);
}

TEST(HttpStats, ResponseCodeClasses) {
  Registry registry;
  HttpStats hs = HttpStats::make(registry.newStore(), "http_8080");
  hs.recordResponseCode(200);
  hs.recordResponseCode(404);
  hs.recordResponseCode(502);
  hs.recordResponseCode(504);
  hs.downstream_rq_total->inc(4);
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "http.http_8080.downstream_rq_2xx")->counter, 1u);
  EXPECT_EQ(find(stats, "http.http_8080.downstream_rq_4xx")->counter, 1u);
  EXPECT_EQ(find(stats, "http.http_8080.downstream_rq_5xx")->counter, 2u);
  EXPECT_EQ(find(stats, "http.http_8080.downstream_rq_total")->counter, 4u);
  EXPECT_NE(find(stats, "http.http_8080.downstream_rq_time"), nullptr);
}

TEST(ListenerStats, Names) {
  Registry registry;
  ListenerStats ls = ListenerStats::make(registry.newStore(), "0.0.0.0_8080");
  ls.downstream_cx_total->inc();
  ls.downstream_cx_active->add();
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "listener.0.0.0.0_8080.downstream_cx_total")->counter, 1u);
  EXPECT_EQ(find(stats, "listener.0.0.0.0_8080.downstream_cx_active")->gauge, 1);
  EXPECT_NE(find(stats, "listener.0.0.0.0_8080.downstream_cx_overflow"), nullptr);
}

TEST(SslStats, FixedAndNegotiated) {
  Registry registry;
  SslStats a = SslStats::make(registry.newStore(), "cluster", "kube_default_nginx_8443");
  SslStats b = SslStats::make(registry.newStore(), "cluster", "kube_default_nginx_8443");
  a.handshake->inc();
  b.handshake->inc();
  a.recordHandshake("TLSv1.3", "TLS_AES_256_GCM_SHA384", "X25519", "rsa_pss_rsae_sha256");
  a.recordHandshake("TLSv1.3", "TLS_AES_256_GCM_SHA384", "X25519", "");
  b.recordHandshake("TLSv1.2", "", "", "");
  EXPECT_EQ(a.by_value.size(), 4u);  // cached after first sight
  auto stats = registry.collect();
  const std::string p = "cluster.kube_default_nginx_8443.";
  EXPECT_EQ(find(stats, p + "ssl.handshake")->counter, 2u);
  EXPECT_EQ(find(stats, p + "ssl.versions.TLSv1.3")->counter, 2u);
  EXPECT_EQ(find(stats, p + "ssl.versions.TLSv1.2")->counter, 1u);
  EXPECT_EQ(find(stats, p + "ssl.ciphers.TLS_AES_256_GCM_SHA384")->counter, 2u);
  EXPECT_EQ(find(stats, p + "ssl.curves.X25519")->counter, 2u);
  EXPECT_EQ(find(stats, p + "ssl.sigalgs.rsa_pss_rsae_sha256")->counter, 1u);
  EXPECT_NE(find(stats, p + "ssl.fail_verify_san"), nullptr);
  EXPECT_NE(find(stats, p + "ssl.no_certificate"), nullptr);
  // The suffix keeps its dots: the scope boundary is never guessed.
  EXPECT_EQ(find(stats, p + "ssl.versions.TLSv1.3")->name.suffix, "ssl.versions.TLSv1.3");
}

TEST(SslStats, ListenerSide) {
  Registry registry;
  SslStats s = SslStats::make(registry.newStore(), "listener", "0.0.0.0_8443");
  s.recordHandshake("TLSv1.3", "", "", "");
  EXPECT_EQ(find(registry.collect(), "listener.0.0.0.0_8443.ssl.versions.TLSv1.3")->counter, 1u);
}

TEST(ServerStats, Names) {
  Registry registry;
  ServerStats s = ServerStats::make(registry.newStore());
  s.live->set(1);
  s.concurrency->set(4);
  auto stats = registry.collect();
  EXPECT_EQ(find(stats, "server.live")->gauge, 1);
  EXPECT_EQ(find(stats, "server.concurrency")->gauge, 4);
  EXPECT_EQ(find(stats, "server.state")->gauge, 0);
}

}  // namespace
}  // namespace portico::stats
