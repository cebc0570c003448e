#pragma once
// What a downstream connection needs from the worker it lives on. One per
// worker; only that worker's thread reads or writes it.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "net/event_loop.h"
#include "snapshot/snapshot.h"
#include "stats/stats.h"
#include "tls/tls.h"
#include "upstream/upstream.h"

namespace portico::proxy {

enum class AccessLogFormat { Off, Text, Json };

struct ProxySettings {
  uint32_t header_timeout_ms = 10000;  // first byte -> full head, else 408
  uint32_t idle_timeout_ms = 60000;    // keep-alive idle between requests
  size_t max_connections = 20000;      // per worker; above: 503 and close
  AccessLogFormat access_log = AccessLogFormat::Text;
};

class HttpConnection;

struct ProxyContext {
  ProxyContext(net::EventLoop& l, stats::Store& s) : loop(l), store(s), clusters(s), pool(l) {}
  net::EventLoop& loop;
  stats::Store& store;
  // Declared before the pool: pooled connections point at cluster runtimes,
  // so those must outlive the pool's destruction.
  upstream::ClusterManager clusters;
  upstream::Pool pool;
  tls::ClientContextCache tls_contexts;
  std::shared_ptr<const snapshot::Snapshot> snapshot;  // the worker's current one
  ProxySettings settings;
  bool draining = false;
  // Serialization scratch (heads, chunk framing), shared by the worker's
  // connections: each use is clear, fill, copy out, within one call, so an
  // idle connection doesn't keep one of its own.
  std::string scratch;
  size_t connections = 0;
  uint64_t rng = 0x9E3779B97F4A7C15ull;

  uint64_t random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
  stats::HttpStats& httpStats(const std::string& stat_prefix) {
    auto& s = http_stats_[stat_prefix];
    if (!s) s = std::make_unique<stats::HttpStats>(stats::HttpStats::make(store, stat_prefix));
    return *s;
  }
  // Called by a connection just before it deletes itself.
  void (*on_close)(void* worker, HttpConnection* conn) = nullptr;
  void* worker = nullptr;

 private:
  std::unordered_map<std::string, std::unique_ptr<stats::HttpStats>> http_stats_;
};

}  // namespace portico::proxy
