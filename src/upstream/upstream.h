#pragma once
// Per-worker upstream state: cluster runtimes (load balancing, stats handles),
// upstream connections and the keep-alive pool. Everything here belongs to one
// worker thread; nothing is shared, nothing is locked.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "net/socket.h"
#include "net/transport.h"
#include "snapshot/snapshot.h"
#include "stats/stats.h"

namespace portico::upstream {

class Pool;

// One backend address of a cluster, kept across snapshots by "ip:port" and
// never freed while the worker runs (pooled connections and PoolKey point at it).
struct EndpointState {
  net::Address address;
  // Envoy's per-host counters (admin /clusters). Written by this worker only;
  // read by the admin thread, hence the relaxed atomics of stats::Counter.
  stats::Counter cx_total, cx_connect_fail, rq_total, rq_success, rq_error, rq_timeout;
  stats::Gauge cx_active, rq_active;  // rq_active also drives least-request
  uint64_t connect_failures_in_a_row = 0;
  uint64_t last_failure_ms = 0;
};

// Worker-local runtime of one cluster, rebuilt (not recreated) per snapshot.
struct ClusterRuntime {
  std::string name;
  const snapshot::Cluster* config = nullptr;  // points into the pinned snapshot
  stats::ClusterStats stats;
  std::vector<EndpointState*> endpoints;  // aligned with the current config's endpoints
  std::unordered_map<std::string, std::unique_ptr<EndpointState>> known;  // by "ip:port"
  uint64_t rr_next = 0;
  uint64_t tls_fingerprint = 0;
  std::unique_ptr<stats::SslStats> tls_stats;  // set once the cluster has used TLS
};

// What makes two upstream connections interchangeable. The endpoint is a
// cluster's own EndpointState, so two clusters whose Services share an address
// never share a connection: each connection's cx stats stay with the cluster
// whose requests it carries, as Envoy's per-cluster pools do.
struct PoolKey {
  const EndpointState* endpoint = nullptr;
  uint64_t tls_fingerprint = 0;     // 0: plaintext
  uint64_t client_fingerprint = 0;  // the client certificate presented, 0: none
  bool operator==(const PoolKey&) const = default;
};
struct PoolKeyHash {
  size_t operator()(const PoolKey& k) const {
    return std::hash<const void*>()(k.endpoint) ^ (k.tls_fingerprint * 0x9E3779B97F4A7C15ull) ^
           (k.client_fingerprint * 0xC2B2AE3D27D4EB4Full);
  }
};

// The key of connections to `endpoint` made under `cluster`'s TLS settings
// and, when it has any, the client certificate fingerprinted `client_fp`.
PoolKey poolKey(const EndpointState& endpoint, const snapshot::Cluster& cluster,
                uint64_t client_fp);

// A connection to `endpoint` failed before it could carry a request: counted
// for the cluster and the host (Envoy's upstream_cx_connect_fail). `refused`:
// TCP itself failed, so pick() skips the endpoint for a second; a failed TLS
// handshake only counts (TCP worked; the same endpoint may do better).
void countConnectFailure(stats::ClusterStats& cluster, EndpointState& endpoint, bool refused,
                         uint64_t now_ms);

class UpstreamConnection;

// Whoever has a connection checked out receives its socket events.
class ConnectionOwner {
 public:
  virtual void onUpstreamEvent(UpstreamConnection& conn, uint32_t epoll_events) = 0;
  virtual void onUpstreamConnectTimeout(UpstreamConnection& conn) = 0;

 protected:
  ~ConnectionOwner() = default;
};

class UpstreamConnection final : public net::IoHandler {
 public:
  UpstreamConnection(Pool& pool, PoolKey key, int fd, ClusterRuntime* cluster,
                     EndpointState* endpoint);
  ~UpstreamConnection() override;

  // portico::net::IoHandler
  void onIoEvent(uint32_t epoll_events) override;

  int fd() const { return fd_; }
  // Closes the socket now; the object itself is freed later (deleteLater).
  void shutdown();
  const PoolKey& key() const { return key_; }
  net::Transport& transport() { return *transport_; }
  void setTransport(std::unique_ptr<net::Transport> t) { transport_ = std::move(t); }
  ClusterRuntime* cluster() const { return cluster_; }

  bool connected = false;       // TCP connect finished
  bool handshake_done = false;  // TLS done (always true for plaintext once connected)
  bool readable = false;        // edge seen, not yet drained
  bool hup = false;             // the peer half-closed or errored: read to EOF
  bool writable = false;
  uint64_t requests = 0;  // requests sent on this connection
  uint64_t connect_start_ms = 0;
  ConnectionOwner* owner = nullptr;
  net::Timer connect_timer;
  net::Timer idle_timer;

 private:
  friend class Pool;
  static void onConnectTimeout(void* self);
  static void onIdleTimeout(void* self);
  Pool& pool_;
  PoolKey key_;
  int fd_;
  ClusterRuntime* cluster_;
  EndpointState* endpoint_;
  std::unique_ptr<net::Transport> transport_;
};

// Keep-alive pool of one worker.
class Pool {
 public:
  explicit Pool(net::EventLoop& loop) : loop_(loop) {}
  ~Pool();

  // Returns an idle pooled connection for `key` (reused) or nullptr.
  UpstreamConnection* takeIdle(const PoolKey& key, ConnectionOwner* owner);
  // Opens a new connection (connect in progress). nullptr + err on failure.
  UpstreamConnection* connect(const PoolKey& key, EndpointState* endpoint, ClusterRuntime* cluster,
                              ConnectionOwner* owner, uint32_t connect_timeout_ms,
                              std::string& err);
  // Gives a connection back after a complete exchange; it idles for at most
  // `idle_timeout_ms`.
  void release(UpstreamConnection* conn, uint32_t idle_timeout_ms);
  // Closes and frees. `remote`: the peer closed / failed it.
  void destroy(UpstreamConnection* conn, bool remote);
  // Drops every idle connection (drain, shutdown).
  void closeIdle();
  net::EventLoop& loop() { return loop_; }

 private:
  friend class UpstreamConnection;
  void onIdleEvent(UpstreamConnection& conn, uint32_t events);
  void removeIdle(UpstreamConnection* conn);
  net::EventLoop& loop_;
  std::unordered_map<PoolKey, std::vector<UpstreamConnection*>, PoolKeyHash> idle_;
};

// Worker-local cluster runtimes, refreshed for each snapshot.
class ClusterManager {
 public:
  explicit ClusterManager(stats::Store& store) : store_(store) {}
  // Points runtimes at the new snapshot's clusters (creating stats handles
  // for new clusters). The snapshot must outlive its use here.
  void update(const snapshot::Snapshot& snap);
  ClusterRuntime* find(std::string_view name);
  ClusterRuntime* find(const snapshot::HashedName& name);
  // Picks an endpoint per the cluster's LB policy, skipping endpoints that
  // refused connections in the last second when others are available.
  // `exclude` lets a retry avoid the endpoint that just failed.
  EndpointState* pick(ClusterRuntime& c, uint64_t now_ms, const EndpointState* exclude);

  // Per-host counters, for the admin thread: adds this worker's values into
  // `out` (keyed "<cluster>/<ip:port>").
  struct HostTotals {
    uint64_t cx_total = 0, cx_active = 0, cx_connect_fail = 0, rq_total = 0, rq_active = 0,
             rq_success = 0, rq_error = 0, rq_timeout = 0;
  };
  void addHostTotals(std::unordered_map<std::string, HostTotals>& out) const;

 private:
  stats::Store& store_;
  // Guards the maps' structure (changed only in update()) against the admin
  // thread's addHostTotals(); the request path never takes it.
  mutable std::mutex mu_;
  // Transparent hashing: find() per request allocates nothing, and with a
  // HashedName computes no hash either.
  std::unordered_map<std::string, std::unique_ptr<ClusterRuntime>, snapshot::NameHash,
                     snapshot::NameEqual>
      clusters_;
  uint64_t rand_state_ = 0x2545F4914F6CDD1Dull;
};

}  // namespace portico::upstream
