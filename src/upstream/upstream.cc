#include "upstream/upstream.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include "common/log.h"

namespace portico::upstream {

PoolKey poolKey(const EndpointState& endpoint, const snapshot::Cluster& cluster,
                uint64_t client_fp) {
  return PoolKey{&endpoint, cluster.tls ? cluster.tls->fingerprint : 0,
                 cluster.tls ? client_fp : 0};
}

void countConnectFailure(stats::ClusterStats& cluster, EndpointState& endpoint, bool refused,
                         uint64_t now_ms) {
  cluster.upstream_cx_connect_fail->inc();
  endpoint.cx_connect_fail.inc();
  if (refused) {
    endpoint.connect_failures_in_a_row++;
    endpoint.last_failure_ms = now_ms;
  }
}

UpstreamConnection::UpstreamConnection(Pool& pool, PoolKey key, int fd, ClusterRuntime* cluster,
                                       EndpointState* endpoint)
    : connect_timer(pool.loop(), &UpstreamConnection::onConnectTimeout, this),
      idle_timer(pool.loop(), &UpstreamConnection::onIdleTimeout, this),
      pool_(pool),
      key_(std::move(key)),
      fd_(fd),
      cluster_(cluster),
      endpoint_(endpoint),
      transport_(std::make_unique<net::PlainTransport>(fd)) {}

UpstreamConnection::~UpstreamConnection() { shutdown(); }

void UpstreamConnection::shutdown() {
  if (fd_ < 0) return;
  connect_timer.disarm();
  idle_timer.disarm();
  owner = nullptr;
  transport_.reset();  // TLS may write close_notify: before the fd goes
  net::EventLoop::closeUnshared(fd_);
  fd_ = -1;
}

void UpstreamConnection::onIoEvent(uint32_t events) {
  if (fd_ < 0) return;  // shut down earlier in this batch of events
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hup = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
  if (owner != nullptr) {
    owner->onUpstreamEvent(*this, events);
  } else {
    pool_.onIdleEvent(*this, events);
  }
}

void UpstreamConnection::onConnectTimeout(void* self) {
  auto* c = static_cast<UpstreamConnection*>(self);
  if (c->owner != nullptr) c->owner->onUpstreamConnectTimeout(*c);
}

void UpstreamConnection::onIdleTimeout(void* self) {
  auto* c = static_cast<UpstreamConnection*>(self);
  c->pool_.removeIdle(c);
  c->pool_.destroy(c, false);
}

Pool::~Pool() { closeIdle(); }

UpstreamConnection* Pool::takeIdle(const PoolKey& key, ConnectionOwner* owner) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  // LIFO: the most recently used connection is the least likely to have been
  // closed by the backend's own keep-alive timeout.
  UpstreamConnection* c = it->second.back();
  it->second.pop_back();
  c->idle_timer.disarm();
  c->owner = owner;
  return c;
}

UpstreamConnection* Pool::connect(const PoolKey& key, EndpointState* endpoint,
                                  ClusterRuntime* cluster, ConnectionOwner* owner,
                                  uint32_t connect_timeout_ms, std::string& err) {
  int fd = net::connectTcp(endpoint->address, err);
  if (fd < 0) return nullptr;
  auto* c = new UpstreamConnection(*this, key, fd, cluster, endpoint);
  c->owner = owner;
  c->connect_start_ms = loop_.nowMs();
  if (!loop_.add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c)) {
    err = "epoll registration failed";
    delete c;
    return nullptr;
  }
  c->connect_timer.arm(connect_timeout_ms);
  cluster->stats.upstream_cx_total->inc();
  cluster->stats.upstream_cx_active->add();
  endpoint->cx_total.inc();
  endpoint->cx_active.add();
  return c;
}

void Pool::release(UpstreamConnection* conn, uint32_t idle_timeout_ms) {
  conn->owner = nullptr;
  conn->idle_timer.arm(idle_timeout_ms);
  idle_[conn->key()].push_back(conn);
}

void Pool::removeIdle(UpstreamConnection* conn) {
  auto it = idle_.find(conn->key());
  if (it == idle_.end()) return;
  auto& v = it->second;
  v.erase(std::remove(v.begin(), v.end(), conn), v.end());
  if (v.empty()) idle_.erase(it);
}

void Pool::destroy(UpstreamConnection* conn, bool remote) {
  auto& s = conn->cluster()->stats;
  s.upstream_cx_destroy->inc();
  (remote ? s.upstream_cx_destroy_remote : s.upstream_cx_destroy_local)->inc();
  s.upstream_cx_active->sub();
  conn->endpoint_->cx_active.sub();
  conn->shutdown();
  loop_.deleteLater(conn);
}

void Pool::onIdleEvent(UpstreamConnection& conn, uint32_t events) {
  // An idle connection has nothing to say: any readability is the peer
  // closing (or garbage), so the connection can't be reused.
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    removeIdle(&conn);
    destroy(&conn, true);
  }
}

void Pool::closeIdle() {
  auto idle = std::move(idle_);
  idle_.clear();
  for (auto& [key, conns] : idle) {
    for (auto* c : conns) destroy(c, false);
  }
}

// ---- clusters -------------------------------------------------------------

void ClusterManager::update(const snapshot::Snapshot& snap) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& cfg : snap.clusters) {
    auto& rt = clusters_[cfg.name];
    if (!rt) {
      rt = std::make_unique<ClusterRuntime>();
      rt->name = cfg.name;
      rt->stats = stats::ClusterStats::make(store_, cfg.name);
    }
    rt->config = &cfg;
    rt->tls_fingerprint = cfg.tls ? cfg.tls->fingerprint : 0;
    if (cfg.tls && !rt->tls_stats) {
      rt->tls_stats =
          std::make_unique<stats::SslStats>(stats::SslStats::make(store_, "cluster", cfg.name));
      // Both versions we negotiate are listed from the start (at 0), so
      // `/stats | grep ssl.versions` shows what was and was not used.
      rt->tls_stats->valueCounter("versions", "TLSv1.2");
      rt->tls_stats->valueCounter("versions", "TLSv1.3");
    }
    rt->endpoints.clear();
    for (const auto& ep : cfg.endpoints) {
      std::string key = ep.address + ":" + std::to_string(ep.port);
      auto& st = rt->known[key];
      if (!st) {
        st = std::make_unique<EndpointState>();
        if (!net::parseAddress(ep.address, ep.port, st->address)) {
          PORTICO_LOG(Warn, "cluster {}: endpoint {} is not an IP address; skipped", cfg.name, key);
          continue;
        }
      }
      if (st->address.len == 0) continue;
      rt->endpoints.push_back(st.get());
    }
  }
  // membership_* gauges are set once per process by the main thread (a
  // per-worker copy would be summed at scrape).
  // Runtimes of removed clusters stay (requests in flight may hold them);
  // they point at nothing new and hold no connections of their own.
  for (auto& [name, rt] : clusters_) {
    if (snap.findCluster(name) == nullptr) {
      rt->config = nullptr;
      rt->endpoints.clear();
    }
  }
}

ClusterRuntime* ClusterManager::find(std::string_view name) {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

ClusterRuntime* ClusterManager::find(const snapshot::HashedName& name) {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

EndpointState* ClusterManager::pick(ClusterRuntime& c, uint64_t now_ms,
                                    const EndpointState* exclude) {
  const size_t n = c.endpoints.size();
  if (n == 0) return nullptr;
  // An endpoint that refused a connection within the last second is skipped
  // while any other is available (passive, per worker).
  auto usable = [&](const EndpointState* e) {
    return e != exclude &&
           !(e->connect_failures_in_a_row > 0 && now_ms - e->last_failure_ms < 1000);
  };
  if (c.config != nullptr && c.config->lb_policy == snapshot::LbPolicy::LeastRequest && n > 1) {
    // Power of two choices, as Envoy does.
    rand_state_ ^= rand_state_ << 13;
    rand_state_ ^= rand_state_ >> 7;
    rand_state_ ^= rand_state_ << 17;
    EndpointState* a = c.endpoints[rand_state_ % n];
    EndpointState* b = c.endpoints[(rand_state_ >> 32) % n];
    if (!usable(a)) std::swap(a, b);
    if (usable(a) && usable(b)) return a->rq_active.value() <= b->rq_active.value() ? a : b;
    if (usable(a)) return a;
  }
  for (size_t i = 0; i < n; ++i) {
    EndpointState* e = c.endpoints[c.rr_next++ % n];
    if (usable(e)) return e;
  }
  // Everything failed recently: still try (the backend may be back), but not
  // the one we were told to avoid if there is another.
  for (size_t i = 0; i < n; ++i) {
    EndpointState* e = c.endpoints[c.rr_next++ % n];
    if (e != exclude) return e;
  }
  return c.endpoints[0];
}

}  // namespace portico::upstream

namespace portico::upstream {

void ClusterManager::addHostTotals(std::unordered_map<std::string, HostTotals>& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, rt] : clusters_) {
    for (const auto& [key, e] : rt->known) {
      auto& t = out[name + "/" + key];
      t.cx_total += e->cx_total.value();
      t.cx_active += static_cast<uint64_t>(std::max<int64_t>(0, e->cx_active.value()));
      t.cx_connect_fail += e->cx_connect_fail.value();
      t.rq_total += e->rq_total.value();
      t.rq_active += static_cast<uint64_t>(std::max<int64_t>(0, e->rq_active.value()));
      t.rq_success += e->rq_success.value();
      t.rq_error += e->rq_error.value();
      t.rq_timeout += e->rq_timeout.value();
    }
  }
}

}  // namespace portico::upstream
