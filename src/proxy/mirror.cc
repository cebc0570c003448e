#include "proxy/mirror.h"

#include <sys/epoll.h>

#include <cstring>

#include "common/log.h"
#include "net/socket.h"

namespace portico::proxy {

using IoStatus = net::IoResult::Status;
using ParseEvent = http::ParseEvent;

namespace {
constexpr size_t kReadChunk = 16 * 1024;
}  // namespace

Mirror::Mirror(ProxyContext& ctx, std::shared_ptr<const snapshot::Snapshot> snap,
               const snapshot::Listener& listener, const snapshot::Cluster& cfg,
               upstream::ClusterRuntime& cluster)
    : ctx_(ctx),
      snap_(std::move(snap)),
      listener_(listener),
      cfg_(cfg),
      cluster_(cluster),
      timer_(ctx.loop, &Mirror::onTimer, this) {}

Mirror::~Mirror() {
  if (conn_ != nullptr) {
    conn_->owner = nullptr;
    ctx_.pool.destroy(conn_, false);
  }
}

Mirror* Mirror::start(ProxyContext& ctx, const std::shared_ptr<const snapshot::Snapshot>& snap,
                      const snapshot::Listener& listener, const snapshot::Mirror& mirror,
                      const Request& rq) {
  const snapshot::HashedName name{mirror.cluster, mirror.cluster_hash};
  const snapshot::Cluster* cfg = snap->findCluster(name);
  upstream::ClusterRuntime* cluster = ctx.clusters.find(name);
  if (cfg == nullptr || cluster == nullptr) return nullptr;
  if (cfg->tls && cfg->tls->fail_closed) {
    // As for the primary: never plaintext, never unverified. Nothing to answer.
    PORTICO_LOG(Debug, "mirror to {} skipped: backend TLS policy {} not usable: {}", cfg->name,
                cfg->tls->policy, cfg->tls->fail_reason);
    return nullptr;
  }
  auto* m = new Mirror(ctx, snap, listener, *cfg, *cluster);
  m->endpoint_ = ctx.clusters.pick(*cluster, ctx.loop.nowMs(), nullptr);
  if (m->endpoint_ == nullptr) {
    cluster->stats.upstream_cx_none_healthy->inc();
    delete m;
    return nullptr;
  }
  ctx.scratch.clear();
  if (rq.missing_host) {
    http::Headers h = *rq.headers;
    h.set("host", m->endpoint_->address.text);
    http::appendRequestHead(ctx.scratch, rq.method, rq.target, h);
  } else {
    http::appendRequestHead(ctx.scratch, rq.method, rq.target, *rq.headers);
  }
  m->out_.append(ctx.scratch);
  m->parser_.expect(rq.method);
  m->start_ms_ = ctx.loop.nowMs();
  cluster->stats.upstream_rq_total->inc();
  cluster->stats.upstream_rq_active->add();
  m->endpoint_->rq_total.inc();
  m->endpoint_->rq_active.add();
  std::string err;
  if (!m->connect(err)) {
    PORTICO_LOG(Debug, "mirror to {} failed: {}", cfg->name, err);
    m->finish(503, "connect failed");
    delete m;
    return nullptr;
  }
  // A rule's "0s" turns the client's timeout off; a copy nobody waits for
  // still gets one, or a mirror that never answers would pin it (and an fd)
  // for good.
  uint32_t timeout = rq.route_timeout_ms.value_or(cfg->request_timeout_ms);
  if (timeout == 0) timeout = cfg->request_timeout_ms;
  if (timeout != 0) m->timer_.arm(timeout);
  ctx.mirrors.push(m);
  // A pooled connection brings no new event: send now.
  if (m->conn_->connected) m->pump();
  return m;
}

bool Mirror::connect(std::string& err) {
  const upstream::PoolKey key =
      upstream::poolKey(*endpoint_, cfg_, listener_.backend_client_fingerprint);
  conn_ = ctx_.pool.takeIdle(key, this);
  if (conn_ == nullptr) {
    conn_ = ctx_.pool.connect(key, endpoint_, &cluster_, this, cfg_.connect_timeout_ms, err);
    if (conn_ == nullptr) {
      upstream::countConnectFailure(cluster_.stats, *endpoint_, true, ctx_.loop.nowMs());
      return false;
    }
  }
  ++conn_->requests;
  return true;
}

void Mirror::onConnected() {
  conn_->connected = true;
  endpoint_->connect_failures_in_a_row = 0;
  if (!cfg_.tls) {
    conn_->handshake_done = true;
    conn_->connect_timer.disarm();
    return;
  }
  // The full offer: a mirror has no retry to fall back on (see
  // HttpConnection::retryWithFullOffer()).
  std::string error;
  if (!ctx_.startUpstreamTls(*conn_, *cfg_.tls, listener_, endpoint_->address.text, false,
                             cluster_.tls_stats.get(), error)) {
    PORTICO_LOG(Debug, "mirror to {}: TLS_error: {}", cfg_.name, error);
    finish(503, "TLS context");
  }
}

void Mirror::onUpstreamEvent(upstream::UpstreamConnection& conn, uint32_t events) {
  if (&conn != conn_ || done_) return;
  if (!conn.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = net::connectResult(conn.fd());
    if (err != 0) {
      PORTICO_LOG(Debug, "mirror to {} failed: {}", cfg_.name, std::strerror(err));
      upstream::countConnectFailure(cluster_.stats, *endpoint_, true, ctx_.loop.nowMs());
      finish(503, "connect failed");
      return;
    }
    onConnected();
  }
  pump();
}

void Mirror::onUpstreamConnectTimeout(upstream::UpstreamConnection& conn) {
  if (&conn != conn_ || done_) return;
  cluster_.stats.upstream_cx_connect_timeout->inc();
  upstream::countConnectFailure(cluster_.stats, *endpoint_, false, ctx_.loop.nowMs());
  finish(503, "connect timeout");
}

void Mirror::onTimer(void* self) {
  auto* m = static_cast<Mirror*>(self);
  if (m->done_) return;
  m->cluster_.stats.upstream_rq_timeout->inc();
  m->endpoint_->rq_timeout.inc();
  m->finish(m->failureStatus(504), "timeout");
}

void Mirror::body(std::string_view bytes) {
  if (fed_ || done_) return;
  if (out_.size() + bytes.size() > kMaxBuffered) {
    finish(0, "mirror backend too slow: copy dropped");
    return;
  }
  out_.append(bytes);
  pump();
}

void Mirror::endOfRequest() {
  if (fed_) return;
  fed_ = true;
  complete_ = true;
  if (done_) dispose();
}

void Mirror::abort() {
  if (fed_) return;
  fed_ = true;
  if (!done_) finish(0, "request broke off");
  dispose();
}

// Makes every step that can be made: handshake, send, read the answer.
void Mirror::pump() {
  while (!done_ && conn_->connected) {
    if (!conn_->handshake_done) {
      if (!conn_->readable && !conn_->writable) return;
      switch (conn_->transport().handshake()) {
        case net::Transport::Handshake::Done:
          conn_->handshake_done = true;
          conn_->connect_timer.disarm();
          break;
        case net::Transport::Handshake::WantRead:
          conn_->readable = false;
          return;
        case net::Transport::Handshake::WantWrite:
          conn_->writable = false;
          return;
        case net::Transport::Handshake::Failed:
          PORTICO_LOG(Debug, "mirror to {}: {}", cfg_.name, conn_->transport().failureReason());
          upstream::countConnectFailure(cluster_.stats, *endpoint_, false, ctx_.loop.nowMs());
          finish(503, "TLS handshake failed");
          return;
      }
    }
    bool progress = false;
    while (!out_.empty() && conn_->writable) {
      auto v = out_.view();
      auto r = conn_->transport().write(v.data(), v.size());
      if (r.status == IoStatus::Ok) {
        out_.consume(r.n);
        progress = true;
      } else if (r.status == IoStatus::WouldBlock) {
        conn_->writable = false;
      } else {
        finish(failureStatus(503), "upstream reset");
        return;
      }
    }
    if (out_.empty()) out_.shrink();
    if (conn_->readable && read()) progress = true;
    if (!progress) return;
  }
}

// Reads and parses what the backend sent; the answer itself is dropped.
bool Mirror::read() {
  char* dst = in_.reserve(kReadChunk);
  auto r = conn_->transport().read(dst, in_.writableSize());
  bool eof = false;
  switch (r.status) {
    case IoStatus::Ok:
      in_.commit(r.n);
      break;
    case IoStatus::WouldBlock:
      conn_->readable = false;
      return false;
    case IoStatus::Eof:
      eof = true;
      break;
    case IoStatus::Error:
      finish(failureStatus(503), "upstream reset");
      return true;
  }
  for (;;) {
    size_t used = 0;
    ParseEvent ev = parser_.next(in_.view(), used);
    in_.consume(used);
    if (ev.type == ParseEvent::Type::HeadComplete) {
      status_ = parser_.head().status;
    } else if (ev.type == ParseEvent::Type::MessageComplete) {
      if (parser_.isInformational() && status_ != 101) {
        status_ = 0;
        parser_.reset();  // a 100 or 103: the final answer follows
        continue;
      }
      finish(status_, nullptr);
      return true;
    } else if (ev.type == ParseEvent::Type::Error) {
      finish(failureStatus(502), "bad response");
      return true;
    } else if (ev.type == ParseEvent::Type::NeedMore) {
      break;
    }
  }
  if (eof) {
    if (status_ != 0 && parser_.framing() == http::BodyFraming::UntilClose &&
        parser_.finish().type == ParseEvent::Type::MessageComplete) {
      conn_->hup = true;  // not reusable
      finish(status_, nullptr);
    } else {
      finish(failureStatus(503), "connection closed by upstream");
    }
  }
  return true;
}

// The upstream side is over: accounting, and the connection back to the pool
// when it ended cleanly after a whole exchange. `why` null: the backend's
// whole answer, with its status. Otherwise what went wrong, and the status
// the primary's cluster would count for the same failure (Envoy's router
// charges the upstream with its local reply), 0 for none.
void Mirror::finish(int status, const char* why) {
  if (done_) return;
  done_ = true;
  timer_.disarm();
  if (why != nullptr) PORTICO_LOG(Debug, "mirror to {} ended: {}", cfg_.name, why);
  auto& s = cluster_.stats;
  s.upstream_rq_active->sub();
  endpoint_->rq_active.sub();
  (why == nullptr && status < 500 ? endpoint_->rq_success : endpoint_->rq_error).inc();
  if (status != 0) s.recordResponseCode(status);
  if (why == nullptr) {
    s.upstream_rq_completed->inc();
    s.upstream_rq_time->record(static_cast<double>(ctx_.loop.nowMs() - start_ms_));
  }
  if (conn_ != nullptr) {
    const bool reusable = why == nullptr && status != 101 && complete_ && out_.empty() &&
                          in_.empty() && parser_.keepAlive() && !conn_->hup && !ctx_.draining;
    if (reusable) {
      conn_->readable = false;
      ctx_.pool.release(conn_, cfg_.idle_timeout_ms);
    } else {
      conn_->owner = nullptr;
      ctx_.pool.destroy(conn_, false);
    }
    conn_ = nullptr;
  }
  // A copy can end long before its request does (cut off, or answered
  // early): it keeps nothing while the client sends the rest.
  out_.clear();
  out_.shrink();
  in_.clear();
  in_.shrink();
  if (fed_) dispose();
}

// Both sides are done with this copy: it goes.
void Mirror::dispose() {
  if (!done_ || disposed_) return;
  disposed_ = true;
  ctx_.mirrors.remove(this);
  ctx_.loop.deleteLater(this);
}

// ---- the worker's set --------------------------------------------------------

MirrorSet::~MirrorSet() {
  while (Mirror* m = front()) {
    remove(m);
    delete m;
  }
}

}  // namespace portico::proxy
