#include "stats/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace portico::stats {

namespace {

std::string fullName(std::string_view kind, std::string_view scope, std::string_view suffix) {
  std::string out;
  out.reserve(kind.size() + scope.size() + suffix.size() + 2);
  for (std::string_view part : {kind, scope, suffix}) {
    if (part.empty()) continue;
    if (!out.empty()) out += '.';
    out += part;
  }
  return out;
}

// Index of the bucket that holds `value`: bounds are inclusive upper limits
// (Prometheus `le` semantics), the last index is the overflow bucket.
size_t bucketIndex(double value) {
  const auto& b = Histogram::kBounds;
  return static_cast<size_t>(std::lower_bound(b.begin(), b.end(), value) - b.begin());
}

}  // namespace

// ---- Histogram ------------------------------------------------------------

void Histogram::record(double value) {
  // A NaN has no bucket and would poison the sum for every later scrape.
  if (std::isnan(value)) return;
  auto& bucket = buckets_[bucketIndex(value)];
  // Single writer per shard: load+store instead of a locked read-modify-write.
  bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
  // count_ last: a concurrent reader may see buckets ahead of count, never behind.
  count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// ---- StatName / MergedStat ------------------------------------------------

std::string StatName::full() const { return fullName(kind, scope, suffix); }

double MergedStat::quantile(double q) const {
  uint64_t total = 0;
  for (uint64_t n : buckets) total += n;
  if (total == 0 || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(total);
  const auto& bounds = Histogram::kBounds;
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const uint64_t n = buckets[i];
    if (n == 0) continue;
    if (static_cast<double>(seen + n) >= rank) {
      // Values below the first bound are assumed non-negative (latencies, sizes).
      const double lower = i == 0 ? 0.0 : bounds[i - 1];
      // The overflow bucket has no upper edge; its lower edge is the best honest answer.
      if (i == bounds.size()) return lower;
      const double upper = bounds[i];
      const double fraction = (rank - static_cast<double>(seen)) / static_cast<double>(n);
      return lower + (upper - lower) * std::clamp(fraction, 0.0, 1.0);
    }
    seen += n;
  }
  return bounds.back();  // unreachable unless buckets changed under us
}

// ---- Store ----------------------------------------------------------------

Store::Entry& Store::get(StatType type, std::string_view kind, std::string_view scope,
                         std::string_view suffix) {
  std::string name = fullName(kind, scope, suffix);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::lower_bound(index_.begin(), index_.end(), name,
                             [](const auto& e, const std::string& n) { return e.first < n; });
  if (it != index_.end() && it->first == name) {
    // The first registration fixes the type; a later request of another type
    // still gets a valid object (every Entry holds all three), it just never
    // shows up in the output.
    return *it->second;
  }
  Entry& e = entries_.emplace_back();
  e.name = StatName{std::string(kind), std::string(scope), std::string(suffix)};
  e.type = type;
  index_.insert(it, {std::move(name), &e});
  return e;
}

Counter& Store::counter(std::string_view kind, std::string_view scope, std::string_view suffix) {
  return get(StatType::Counter, kind, scope, suffix).counter;
}

Gauge& Store::gauge(std::string_view kind, std::string_view scope, std::string_view suffix) {
  return get(StatType::Gauge, kind, scope, suffix).gauge;
}

Histogram& Store::histogram(std::string_view kind, std::string_view scope,
                            std::string_view suffix) {
  return get(StatType::Histogram, kind, scope, suffix).histogram;
}

void Store::forEach(const std::function<void(const std::string& full, const Entry&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, entry] : index_) fn(name, *entry);
}

// ---- Registry -------------------------------------------------------------

Store& Registry::newStore() {
  std::lock_guard<std::mutex> lock(mu_);
  return stores_.emplace_back();
}

namespace {
void addInto(MergedStat& m, const Store::Entry& e) {
  // Shards that disagree on a stat's type: the first shard (in creation
  // order) that has the stat wins.
  switch (m.type) {
    case StatType::Counter:
      m.counter += e.counter.value();
      break;
    case StatType::Gauge:
      m.gauge += e.gauge.value();
      break;
    case StatType::Histogram: {
      uint64_t bucket_total = 0;
      for (size_t i = 0; i < m.buckets.size(); ++i) {
        const uint64_t n = e.histogram.bucketCount(i);
        m.buckets[i] += n;
        bucket_total += n;
      }
      // Buckets are the truth: count is derived from what we actually read,
      // so count always equals the sum of buckets even mid-write.
      m.count += bucket_total;
      m.sum += e.histogram.sum();
      break;
    }
  }
}
}  // namespace

std::vector<MergedStat> Registry::collect(const Want& want) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Every shard's index is sorted by full name, so one k-way merge produces
  // the sorted result directly: no map of every name (with 10k clusters an
  // unfiltered scrape built ~250k map nodes and name copies, ~160 ms). The
  // shards' locks are held for the merge; workers take theirs only to create
  // a stat, never per request.
  std::vector<std::unique_lock<std::mutex>> locks;
  struct Cursor {
    const std::vector<std::pair<std::string, Store::Entry*>>* index;
    size_t pos;
  };
  std::vector<Cursor> cursors;
  size_t total = 0;
  for (const Store& store : stores_) {
    locks.emplace_back(store.mu_);
    cursors.push_back({&store.index_, 0});
    total = std::max(total, store.index_.size());
  }
  std::vector<MergedStat> out;
  out.reserve(total);
  for (;;) {
    const std::string* least = nullptr;
    for (const Cursor& c : cursors) {
      if (c.pos < c.index->size() && (least == nullptr || (*c.index)[c.pos].first < *least))
        least = &(*c.index)[c.pos].first;
    }
    if (least == nullptr) break;
    const std::string& name = *least;  // stays put: no index changes while locked
    bool started = false;
    for (Cursor& c : cursors) {  // shard order: the first one that has it names it
      if (c.pos >= c.index->size() || (*c.index)[c.pos].first != name) continue;
      const Store::Entry& e = *(*c.index)[c.pos].second;
      ++c.pos;
      if (want && !want(name, e.type)) continue;
      if (!started) {
        started = true;
        MergedStat& m = out.emplace_back();
        m.name = e.name;
        m.type = e.type;
      }
      addInto(out.back(), e);
    }
  }
  return out;
}

// ---- typed groups ---------------------------------------------------------

ClusterStats ClusterStats::make(Store& store, std::string_view cluster) {
  ClusterStats s;
  s.store = &store;
  s.scope = std::string(cluster);
#define PORTICO_MAKE_COUNTER(n) s.n = &store.counter("cluster", cluster, #n);
#define PORTICO_MAKE_GAUGE(n) s.n = &store.gauge("cluster", cluster, #n);
#define PORTICO_MAKE_HISTOGRAM(n) s.n = &store.histogram("cluster", cluster, #n);
  PORTICO_CLUSTER_COUNTERS(PORTICO_MAKE_COUNTER)
  PORTICO_CLUSTER_GAUGES(PORTICO_MAKE_GAUGE)
  PORTICO_CLUSTER_HISTOGRAMS(PORTICO_MAKE_HISTOGRAM)
  return s;
}

void ClusterStats::recordResponseCode(int code) {
  if (code < 100 || code >= static_cast<int>(by_code.size()) || store == nullptr) return;
  Counter*& exact = by_code[static_cast<size_t>(code)];
  if (exact == nullptr) {
    // First sight of this code on this worker: one locked lookup, then cached.
    exact = &store->counter("cluster", scope, "upstream_rq_" + std::to_string(code));
  }
  exact->inc();
  switch (code / 100) {
    case 1:
      if (upstream_rq_1xx == nullptr) {
        upstream_rq_1xx = &store->counter("cluster", scope, "upstream_rq_1xx");
      }
      upstream_rq_1xx->inc();
      break;
    case 2:
      upstream_rq_2xx->inc();
      break;
    case 3:
      upstream_rq_3xx->inc();
      break;
    case 4:
      upstream_rq_4xx->inc();
      break;
    case 5:
      upstream_rq_5xx->inc();
      break;
  }
}

HttpStats HttpStats::make(Store& store, std::string_view stat_prefix) {
  HttpStats s;
#define PORTICO_MAKE_HTTP_COUNTER(n) s.n = &store.counter("http", stat_prefix, #n);
#define PORTICO_MAKE_HTTP_GAUGE(n) s.n = &store.gauge("http", stat_prefix, #n);
#define PORTICO_MAKE_HTTP_HISTOGRAM(n) s.n = &store.histogram("http", stat_prefix, #n);
  PORTICO_HTTP_COUNTERS(PORTICO_MAKE_HTTP_COUNTER)
  PORTICO_HTTP_GAUGES(PORTICO_MAKE_HTTP_GAUGE)
  PORTICO_HTTP_HISTOGRAMS(PORTICO_MAKE_HTTP_HISTOGRAM)
  return s;
}

void HttpStats::recordResponseCode(int code) {
  switch (code / 100) {
    case 1:
      downstream_rq_1xx->inc();
      break;
    case 2:
      downstream_rq_2xx->inc();
      break;
    case 3:
      downstream_rq_3xx->inc();
      break;
    case 4:
      downstream_rq_4xx->inc();
      break;
    case 5:
      downstream_rq_5xx->inc();
      break;
  }
}

ListenerStats ListenerStats::make(Store& store, std::string_view listener_name) {
  ListenerStats s;
#define PORTICO_MAKE_LISTENER_COUNTER(n) s.n = &store.counter("listener", listener_name, #n);
#define PORTICO_MAKE_LISTENER_GAUGE(n) s.n = &store.gauge("listener", listener_name, #n);
  PORTICO_LISTENER_COUNTERS(PORTICO_MAKE_LISTENER_COUNTER)
  PORTICO_LISTENER_GAUGES(PORTICO_MAKE_LISTENER_GAUGE)
  return s;
}

SslStats SslStats::make(Store& store, std::string_view kind, std::string_view scope) {
  SslStats s;
  s.store = &store;
  s.kind = std::string(kind);
  s.scope = std::string(scope);
#define PORTICO_MAKE_SSL_COUNTER(n) s.n = &store.counter(kind, scope, "ssl." #n);
  PORTICO_SSL_COUNTERS(PORTICO_MAKE_SSL_COUNTER)
  return s;
}

Counter& SslStats::valueCounter(std::string_view group, std::string_view value) {
  std::string suffix = "ssl.";
  suffix.append(group).append(".").append(value);
  for (const auto& [name, counter] : by_value) {
    if (name == suffix) return *counter;
  }
  Counter& c = store->counter(kind, scope, suffix);
  by_value.emplace_back(std::move(suffix), &c);
  return c;
}

void SslStats::recordHandshake(std::string_view version, std::string_view cipher,
                               std::string_view curve, std::string_view sigalg) {
  if (store == nullptr) return;
  if (!version.empty()) valueCounter("versions", version).inc();
  if (!cipher.empty()) valueCounter("ciphers", cipher).inc();
  if (!curve.empty()) valueCounter("curves", curve).inc();
  if (!sigalg.empty()) valueCounter("sigalgs", sigalg).inc();
}

ServerStats ServerStats::make(Store& store) {
  ServerStats s;
#define PORTICO_MAKE_SERVER_GAUGE(n) s.n = &store.gauge("server", "", #n);
  PORTICO_SERVER_GAUGES(PORTICO_MAKE_SERVER_GAUGE)
  return s;
}

}  // namespace portico::stats
