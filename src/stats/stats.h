#pragma once
// Envoy-style stats. Each worker owns one Store (a shard); the hot path bumps
// plain per-shard atomics with relaxed load+store (single writer, so no
// read-modify-write bus locking), and the admin thread merges all shards at
// scrape time. Creating a stat takes the shard's mutex: do it when a cluster
// or listener is first seen, keep the reference, never on a per-request path.
//
// Every stat has an Envoy dotted name ("cluster.kube_default_nginx_8443.upstream_rq_total")
// made of a scope kind ("cluster", "http", "listener", "server", ...), a scope
// name ("kube_default_nginx_8443") and a suffix ("upstream_rq_total"). Keeping
// the three apart lets the Prometheus renderer emit Envoy's tag-extracted names
// (envoy_cluster_upstream_rq_total{envoy_cluster_name="kube_default_nginx_8443"})
// without guessing where a dotted scope name ends.
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace portico::stats {

class Counter final {
 public:
  void inc(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge final {
 public:
  void add(int64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(int64_t n = 1) { add(-n); }
  void set(int64_t n) { v_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Fixed buckets (Envoy's defaults, in the unit of the stat, usually ms).
class Histogram final {
 public:
  static constexpr std::array<double, 19> kBounds = {
      0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
      2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
  void record(double value);
  // Cumulative-free per-bucket counts; index kBounds.size() is the overflow bucket.
  uint64_t bucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

enum class StatType { Counter, Gauge, Histogram };

struct StatName {
  std::string kind;          // "cluster", "http", "listener", "server", or "" for a bare name
  std::string scope;         // "kube_default_nginx_8443"; "" when kind is ""
  std::string suffix;        // "upstream_rq_total", "ssl.versions.TLSv1.3"
  std::string full() const;  // kind.scope.suffix (skipping empty parts)
};

// One shard. Addresses of stats are stable for the Store's lifetime.
class Store final {
 public:
  Counter& counter(std::string_view kind, std::string_view scope, std::string_view suffix);
  Gauge& gauge(std::string_view kind, std::string_view scope, std::string_view suffix);
  Histogram& histogram(std::string_view kind, std::string_view scope, std::string_view suffix);

  struct Entry {
    StatName name;
    StatType type;
    Counter counter;
    Gauge gauge;
    Histogram histogram;
  };
  // Calls fn for every stat in this shard with its full name (kept in the
  // index: no string built), under the shard's mutex.
  void forEach(const std::function<void(const std::string& full, const Entry&)>& fn) const;

 private:
  friend class Registry;  // collect() merges the shards' sorted indexes
  Entry& get(StatType type, std::string_view kind, std::string_view scope, std::string_view suffix);
  mutable std::mutex mu_;
  std::deque<Entry> entries_;                          // deque: stable addresses on growth
  std::vector<std::pair<std::string, Entry*>> index_;  // sorted by full name
};

// A stat with every shard's value merged (counters and gauges summed,
// histogram buckets added).
struct MergedStat {
  StatName name;
  StatType type;
  uint64_t counter = 0;
  int64_t gauge = 0;
  std::array<uint64_t, Histogram::kBounds.size() + 1> buckets{};
  uint64_t count = 0;
  double sum = 0;
  // Estimated quantile (0..1) from the buckets, linear inside a bucket; NaN if empty.
  double quantile(double q) const;
};

// Owns all shards. newStore() is called at startup (one per worker + main).
class Registry final {
 public:
  Store& newStore();
  // Which stats a caller wants, by full name and type; decided before any
  // merging, so a narrow filter over many clusters stays cheap.
  using Want = std::function<bool(std::string_view full_name, StatType type)>;
  // All stats (or those `want` accepts), merged, sorted by full name.
  std::vector<MergedStat> collect(const Want& want = nullptr) const;

 private:
  mutable std::mutex mu_;
  std::deque<Store> stores_;
};

// ---- typed stat groups (X-macro lists, Envoy naming) -----------------------

#define PORTICO_CLUSTER_COUNTERS(C)   \
  C(upstream_cx_total)                \
  C(upstream_cx_connect_fail)         \
  C(upstream_cx_connect_timeout)      \
  C(upstream_cx_destroy)              \
  C(upstream_cx_destroy_local)        \
  C(upstream_cx_destroy_remote)       \
  C(upstream_rq_total)                \
  C(upstream_rq_completed)            \
  C(upstream_rq_timeout)              \
  C(upstream_rq_retry)                \
  C(upstream_rq_retry_success)        \
  C(upstream_rq_retry_limit_exceeded) \
  C(upstream_rq_per_try_timeout)      \
  C(upstream_cx_none_healthy)         \
  C(upstream_rq_2xx)                  \
  C(upstream_rq_3xx)                  \
  C(upstream_rq_4xx)                  \
  C(upstream_rq_5xx)

#define PORTICO_CLUSTER_GAUGES(G) \
  G(upstream_cx_active)           \
  G(upstream_rq_active)           \
  G(membership_healthy)           \
  G(membership_total)

#define PORTICO_CLUSTER_HISTOGRAMS(H) \
  H(upstream_rq_time)                 \
  H(upstream_cx_connect_ms)

// Per-worker handle on one cluster's stats: resolved once, then only
// pointer bumps on the hot path.
struct ClusterStats {
#define PORTICO_DECLARE_COUNTER(n) Counter* n = nullptr;
#define PORTICO_DECLARE_GAUGE(n) Gauge* n = nullptr;
#define PORTICO_DECLARE_HISTOGRAM(n) Histogram* n = nullptr;
  PORTICO_CLUSTER_COUNTERS(PORTICO_DECLARE_COUNTER)
  PORTICO_CLUSTER_GAUGES(PORTICO_DECLARE_GAUGE)
  PORTICO_CLUSTER_HISTOGRAMS(PORTICO_DECLARE_HISTOGRAM)

  static ClusterStats make(Store& store, std::string_view cluster);
  // Counts a response: upstream_rq_<code> (created on first sight of a code)
  // and upstream_rq_<class>xx.
  void recordResponseCode(int code);

  Store* store = nullptr;
  std::string scope;
  std::array<Counter*, 600> by_code{};  // lazily created upstream_rq_<code>
  // 1xx upstream answers are rare (100-continue, 101 upgrades), so the class
  // counter is created on first sight rather than listed in the X-macro.
  Counter* upstream_rq_1xx = nullptr;
};

#define PORTICO_HTTP_COUNTERS(C)  \
  C(downstream_cx_total)          \
  C(downstream_rq_total)          \
  C(downstream_rq_1xx)            \
  C(downstream_rq_2xx)            \
  C(downstream_rq_3xx)            \
  C(downstream_rq_4xx)            \
  C(downstream_rq_5xx)            \
  C(downstream_cx_protocol_error) \
  C(downstream_rq_timeout)        \
  C(downstream_cx_idle_timeout)   \
  C(downstream_rq_idle_timeout)   \
  C(no_route)

#define PORTICO_HTTP_GAUGES(G) \
  G(downstream_cx_active)      \
  G(downstream_rq_active)

#define PORTICO_HTTP_HISTOGRAMS(H) H(downstream_rq_time)

struct HttpStats {
  PORTICO_HTTP_COUNTERS(PORTICO_DECLARE_COUNTER)
  PORTICO_HTTP_GAUGES(PORTICO_DECLARE_GAUGE)
  PORTICO_HTTP_HISTOGRAMS(PORTICO_DECLARE_HISTOGRAM)
  static HttpStats make(Store& store, std::string_view stat_prefix);
  void recordResponseCode(int code);
};

#define PORTICO_LISTENER_COUNTERS(C) \
  C(downstream_cx_total)             \
  C(downstream_cx_overflow)
#define PORTICO_LISTENER_GAUGES(G) G(downstream_cx_active)

struct ListenerStats {
  PORTICO_LISTENER_COUNTERS(PORTICO_DECLARE_COUNTER)
  PORTICO_LISTENER_GAUGES(PORTICO_DECLARE_GAUGE)
  static ListenerStats make(Store& store, std::string_view listener_name);
};

// Envoy's TLS stats under cluster.<name>.ssl.* (upstream) or
// listener.<address>.ssl.* (downstream). The fixed ones are listed here and
// named "ssl.<name>"; the negotiated parameters are counted by
// recordHandshake() into ssl.versions.<v>, ssl.ciphers.<c>, ssl.curves.<c>
// and ssl.sigalgs.<s>, created on first sight and cached in this handle.
#define PORTICO_SSL_COUNTERS(C) \
  C(handshake)                  \
  C(session_reused)             \
  C(connection_error)           \
  C(fail_verify_error)          \
  C(fail_verify_san)            \
  C(fail_verify_no_cert)        \
  C(no_certificate)

struct SslStats {
  PORTICO_SSL_COUNTERS(PORTICO_DECLARE_COUNTER)
  // kind is "cluster" or "listener"; scope the cluster name or listener address.
  static SslStats make(Store& store, std::string_view kind, std::string_view scope);
  // Counts one handshake's negotiated parameters (BoringSSL spellings, e.g.
  // "TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519", "rsa_pss_rsae_sha256");
  // empty ones are skipped. Does not bump `handshake`: the caller does.
  void recordHandshake(std::string_view version, std::string_view cipher, std::string_view curve,
                       std::string_view sigalg);
  // The per-value counter "ssl.<group>.<value>" (group: versions, ciphers,
  // curves, sigalgs), from the cache or created under the shard's mutex.
  Counter& valueCounter(std::string_view group, std::string_view value);

  Store* store = nullptr;
  std::string kind;
  std::string scope;
  // Handshake-rate cache: a worker sees a handful of distinct values.
  std::vector<std::pair<std::string, Counter*>> by_value;
};

// Envoy's server.* gauges, owned by the main thread's Store.
// state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING (Envoy's values).
#define PORTICO_SERVER_GAUGES(G) \
  G(live)                        \
  G(state)                       \
  G(uptime)                      \
  G(concurrency)                 \
  G(total_connections)           \
  G(days_until_first_cert_expiring)

struct ServerStats {
  PORTICO_SERVER_GAUGES(PORTICO_DECLARE_GAUGE)
  static ServerStats make(Store& store);
};

#undef PORTICO_DECLARE_COUNTER
#undef PORTICO_DECLARE_GAUGE
#undef PORTICO_DECLARE_HISTOGRAM

}  // namespace portico::stats
