// Stats on the request path: what one proxied request pays to count itself
// (Envoy-style counters, gauges, histograms on per-worker shards), and what a
// scrape pays to merge the shards (admin thread, not the request path).
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "stats/stats.h"

namespace portico::stats {
namespace {

void BM_CounterInc(benchmark::State& state) {
  Store store;
  Counter& c = store.counter("cluster", "kube_default_svc_80", "upstream_rq_total");
  for (auto _ : state) {
    c.inc();
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(c.value());
}
BENCHMARK(BM_CounterInc);

void BM_GaugeAddSub(benchmark::State& state) {
  Store store;
  Gauge& g = store.gauge("cluster", "kube_default_svc_80", "upstream_rq_active");
  for (auto _ : state) {
    g.add();
    benchmark::ClobberMemory();
    g.sub();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_GaugeAddSub);

void BM_HistogramRecord(benchmark::State& state) {
  Store store;
  Histogram& h = store.histogram("cluster", "kube_default_svc_80", "upstream_rq_time");
  double v = 0;
  for (auto _ : state) {
    h.record(v);
    v = v > 200 ? 0 : v + 3;  // spread over the low buckets, as request times are
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

// Everything the proxy counts for one upstream request on the cluster side:
// rq_total, rq_active up and down, completed, response code (exact + class),
// and the request time.
void BM_ClusterStatsPerRequest(benchmark::State& state) {
  Store store;
  ClusterStats cs = ClusterStats::make(store, "kube_default_svc_80");
  for (auto _ : state) {
    cs.upstream_rq_total->inc();
    cs.upstream_rq_active->add();
    cs.upstream_rq_completed->inc();
    cs.upstream_rq_active->sub();
    cs.recordResponseCode(200);
    cs.upstream_rq_time->record(1.0);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ClusterStatsPerRequest);

// Two workers bumping the same stat name, each on its own shard: no shared
// cache line, so the time per increment should match the one-thread case.
Registry g_registry;
Store* g_shards[2] = {&g_registry.newStore(), &g_registry.newStore()};

void BM_CounterIncPerWorkerShard(benchmark::State& state) {
  Counter& c = g_shards[state.thread_index() % 2]->counter("cluster", "kube_default_svc_80",
                                                           "upstream_rq_total");
  for (auto _ : state) {
    c.inc();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_CounterIncPerWorkerShard)->Threads(1)->Threads(2);

// Admin scrape: merge 3 shards of `range(0)` clusters' stats (not on the request path).
void BM_RegistryCollect(benchmark::State& state) {
  Registry registry;
  for (int shard = 0; shard < 3; ++shard) {
    Store& s = registry.newStore();
    for (int i = 0; i < state.range(0); ++i) {
      ClusterStats::make(s, "kube_default_svc" + std::to_string(i) + "_80");
    }
  }
  for (auto _ : state) {
    auto all = registry.collect();
    benchmark::DoNotOptimize(all.data());
  }
}
BENCHMARK(BM_RegistryCollect)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// The same scrape asking for one stat per cluster by name (what
// `/stats?filter=...` does): only matching entries are merged.
void BM_RegistryCollectFiltered(benchmark::State& state) {
  Registry registry;
  for (int shard = 0; shard < 3; ++shard) {
    Store& s = registry.newStore();
    for (int i = 0; i < state.range(0); ++i) {
      ClusterStats::make(s, "kube_default_svc" + std::to_string(i) + "_80");
    }
  }
  auto want = [](std::string_view name, StatType) {
    return name.size() >= 17 && name.substr(name.size() - 17) == "upstream_rq_total";
  };
  for (auto _ : state) {
    auto some = registry.collect(want);
    benchmark::DoNotOptimize(some.data());
  }
}
BENCHMARK(BM_RegistryCollectFiltered)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace portico::stats
