#include "server/worker.h"

#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/log.h"
#include "net/socket.h"
#include "net/transport.h"
#include "proxy/http_connection.h"
#include "tls/tls.h"

namespace portico::server {

class Worker::Acceptor final : public net::IoHandler {
 public:
  Acceptor(Worker& w, ListenSocket s) : socket_(std::move(s)), worker_(w) {
    listener_stats_ = stats::ListenerStats::make(w.ctx_.store, socket_.name);
  }
  ~Acceptor() override { closeSocket(); }
  void closeSocket() {
    if (socket_.fd < 0) return;
    worker_.loop_.remove(socket_.fd);
    ::close(socket_.fd);
    socket_.fd = -1;
  }
  void onIoEvent(uint32_t) override {
    if (socket_.fd >= 0) worker_.accept(*this);
  }
  ListenSocket socket_;
  stats::ListenerStats listener_stats_;
  // HTTPS listeners: contexts for this snapshot's certificates (rebuilt per
  // snapshot, so a rotated Secret applies to the next connection).
  std::shared_ptr<tls::ServerContext> tls_;
  std::unique_ptr<stats::SslStats> ssl_stats_;

 private:
  Worker& worker_;
};

Worker::Worker(int index, stats::Store& store, proxy::ProxySettings settings)
    : index_(index), ctx_(loop_, store) {
  ctx_.settings = settings;
  ctx_.worker = this;
  ctx_.on_close = &Worker::onConnectionClosed;
  // Seeded per process and worker: request ids must not repeat across
  // workers or restarts. The clock stands in should getrandom(2) fail.
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), 0) != static_cast<ssize_t>(sizeof(seed)))
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           (static_cast<uint64_t>(getpid()) << 32);
  ctx_.rng ^= seed ^ (static_cast<uint64_t>(index + 1) * 0xBF58476D1CE4E5B9ull);
  if (ctx_.rng == 0) ctx_.rng = 0x9E3779B97F4A7C15ull;  // xorshift's one stuck state
}

Worker::~Worker() {
  // Connections delete themselves from pump(); at shutdown we free the rest.
  for (auto* c : ctx_.connections.all()) delete c;
  acceptors_.clear();
}

void Worker::start() {
  thread_ = std::thread([this] { loop_.run(); });
}

void Worker::stop() { loop_.stop(); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::applySnapshot(std::shared_ptr<const snapshot::Snapshot> snap,
                           std::vector<ListenSocket> sockets) {
  loop_.post([this, snap = std::move(snap), sockets = std::move(sockets)]() mutable {
    onSnapshot(std::move(snap), std::move(sockets));
  });
}

void Worker::onSnapshot(std::shared_ptr<const snapshot::Snapshot> snap,
                        std::vector<ListenSocket> sockets) {
  ctx_.clusters.update(*snap);
  ctx_.tls_contexts.retainOnly(*snap);
  ctx_.snapshot = std::move(snap);
  if (ctx_.draining) {
    for (auto& s : sockets) ::close(s.fd);
    return;
  }
  // Keep acceptors whose listener is still wanted; drop the rest (their
  // connections finish their current request, then close: see
  // HttpConnection::refreshSnapshot).
  std::unordered_map<std::string, std::unique_ptr<Acceptor>> next;
  for (auto& s : sockets) {
    auto it = acceptors_.find(s.name);
    if (it != acceptors_.end()) {
      ::close(s.fd);  // already accepting on our own dup of this socket
      next.emplace(s.name, std::move(it->second));
      acceptors_.erase(it);
      continue;
    }
    auto acc = std::make_unique<Acceptor>(*this, s);
    if (!loop_.add(s.fd, EPOLLIN | EPOLLEXCLUSIVE, acc.get())) {
      PORTICO_LOG(Error, "worker {}: cannot accept on {}: errno {}", index_, s.name, errno);
      continue;
    }
    next.emplace(s.name, std::move(acc));
  }
  retireAcceptors();  // the listeners no longer wanted
  acceptors_ = std::move(next);
  for (const auto& l : ctx_.snapshot->listeners) {
    auto it = acceptors_.find(l.name);
    if (it == acceptors_.end()) continue;
    Acceptor& acc = *it->second;
    acc.tls_.reset();
    if (!l.tls) continue;
    std::string error;
    acc.tls_ = tls::makeServerContext(*l.tls, error);
    if (!acc.tls_ && index_ == 0)
      PORTICO_LOG(Error, "listener {}: TLS disabled: {}", l.name, error);
    if (!acc.ssl_stats_) {
      acc.ssl_stats_ =
          std::make_unique<stats::SslStats>(stats::SslStats::make(ctx_.store, "listener", l.name));
    }
  }
}

// Stops accepting on every acceptor in acceptors_ now; frees them after this
// batch of events (one of which may be theirs).
void Worker::retireAcceptors() {
  for (auto& [name, acc] : acceptors_) {
    acc->closeSocket();
    loop_.deleteLater(acc.release());
  }
  acceptors_.clear();
}

void Worker::accept(Acceptor& acceptor) {
  for (int i = 0; i < 64; ++i) {  // bounded: let other events run too
    int fd = ::accept4(acceptor.socket_.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        PORTICO_LOG(Warn, "accept on {} failed: errno {}", acceptor.socket_.name, errno);
      }
      return;
    }
    net::setNoDelay(fd);
    acceptor.listener_stats_.downstream_cx_total->inc();
    if (ctx_.connections.size() >= ctx_.settings.max_connections) {
      acceptor.listener_stats_.downstream_cx_overflow->inc();
    }
    bool https = false;
    for (const auto& l : ctx_.snapshot->listeners) {
      if (l.name == acceptor.socket_.name) https = l.tls.has_value();
    }
    if (https && !acceptor.tls_) {
      // An HTTPS listener without a usable certificate never serves plaintext.
      ::close(fd);
      continue;
    }
    std::unique_ptr<net::Transport> transport;
    if (https) {
      transport = tls::makeServerTransport(acceptor.tls_, fd, acceptor.ssl_stats_.get());
    } else {
      transport = std::make_unique<net::PlainTransport>(fd);
    }
    auto* conn = new proxy::HttpConnection(ctx_, fd, acceptor.socket_.name, net::peerIp(fd),
                                           std::move(transport));
    ctx_.connections.push(conn);
    acceptor.listener_stats_.downstream_cx_active->add();
    conn->start(acceptor.listener_stats_.downstream_cx_active);  // may close itself at once
  }
}

void Worker::onConnectionClosed(void* self, proxy::HttpConnection* conn) {
  auto* w = static_cast<Worker*>(self);
  w->ctx_.connections.remove(conn);
  if (w->ctx_.draining) w->checkDrained();
}

void Worker::drain(std::function<void()> done) {
  loop_.post([this, done = std::move(done)]() mutable {
    ctx_.draining = true;
    drained_ = std::move(done);
    retireAcceptors();  // stop accepting: new connections are refused
    ctx_.pool.closeIdle();
    // A copy: drain() may close (and unlink) the connection it is called on.
    for (auto* c : ctx_.connections.all()) c->drain();
    checkDrained();
  });
}

void Worker::checkDrained() {
  if (ctx_.connections.empty() && drained_) {
    auto done = std::move(drained_);
    drained_ = nullptr;
    done();
  }
}

}  // namespace portico::server
