#include "server/server.h"

#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include "admin/admin.h"
#include "admin/clusters.h"
#include "common/log.h"
#include "common/time.h"
#include "http/http1.h"
#include "k8s/object_tracker.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "server/config_source.h"
#include "server/worker.h"
#include "snapshot/dump.h"
#include "stats/stats.h"
#include "tls/pem.h"
#include "tls/tls.h"
#include "translate/status.h"
#include "translate/translate.h"

namespace portico::server {
namespace {

// Workers switch to a new snapshot between requests; by then the old one is
// normally gone.
constexpr int kTrimDelayMs = 1000;

// Calls a member function when an fd becomes readable.
class FdHandler final : public net::IoHandler {
 public:
  explicit FdHandler(std::function<void()> fn) : fn_(std::move(fn)) {}
  void onIoEvent(uint32_t) override { fn_(); }

 private:
  std::function<void()> fn_;
};

// One admin request per connection (admin traffic is tiny; simplicity wins).
class AdminConnection final : public net::IoHandler {
 public:
  AdminConnection(net::EventLoop& loop, int fd, const admin::AdminSources& sources)
      : loop_(loop), fd_(fd), sources_(sources), timer_(loop, &AdminConnection::onTimeout, this) {
    loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLET, this);
    timer_.arm(10000);
  }
  ~AdminConnection() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void onIoEvent(uint32_t) override {
    if (fd_ < 0) return;
    if (!responded_) readRequest();
    if (responded_ && fd_ >= 0) flush();
  }

 private:
  static void onTimeout(void* self) { static_cast<AdminConnection*>(self)->finish(); }
  // Closes now; the object is freed after this batch of events.
  void finish() {
    if (fd_ < 0) return;
    timer_.disarm();
    loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
    loop_.deleteLater(this);
  }
  void readRequest() {
    for (;;) {
      char* dst = in_.reserve(4096);
      ssize_t n = ::recv(fd_, dst, in_.writableSize(), 0);
      if (n > 0) {
        in_.commit(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      finish();  // peer closed before a full request
      return;
    }
    size_t used = 0;
    auto ev = parser_.next(in_.view(), used);
    if (ev.type == http::ParseEvent::Type::NeedMore) return;
    responded_ = true;
    admin::AdminResponse resp;
    if (ev.type == http::ParseEvent::Type::Error) {
      resp.status = 400;
      resp.content_type = "text/plain";
      resp.body = "bad request\n";
    } else {
      auto& head = parser_.head();
      resp = admin::handleAdmin({head.method, head.path(), head.query()}, sources_);
    }
    http::Headers h;
    if (!resp.content_type.empty()) h.add("content-type", resp.content_type);
    for (const auto& [k, v] : resp.headers) h.add(k, v);
    h.add("content-length", std::to_string(resp.body.size()));
    h.add("connection", "close");
    std::string out;
    http::appendResponseHead(out, resp.status, http::reasonPhrase(resp.status), h);
    if (parser_.head().method != "HEAD") out += resp.body;
    out_ = std::move(out);
  }
  void flush() {
    while (off_ < out_.size()) {
      ssize_t n = ::send(fd_, out_.data() + off_, out_.size() - off_, MSG_NOSIGNAL);
      if (n > 0) {
        off_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      break;
    }
    finish();
  }

  net::EventLoop& loop_;
  int fd_;
  const admin::AdminSources& sources_;
  net::Timer timer_;
  net::Buffer in_;
  http::RequestParser parser_;
  bool responded_ = false;
  std::string out_;
  size_t off_ = 0;
};

class MainServer {
 public:
  explicit MainServer(const RunOptions& o)
      : opts_(o),
        main_store_(registry_.newStore()),
        server_stats_(stats::ServerStats::make(main_store_)),
        source_(o.config_paths),
        reload_timer_(loop_, &MainServer::onReloadTimer, this),
        drain_timer_(loop_, &MainServer::onDrainTimeout, this),
        uptime_timer_(loop_, &MainServer::onUptimeTimer, this),
        trim_timer_(loop_, &MainServer::onTrimTimer, this) {}

  int run() {
    if (!setUpSignals() || !setUpAdmin()) return 1;
    int n =
        opts_.workers > 0 ? opts_.workers : static_cast<int>(std::thread::hardware_concurrency());
    if (n <= 0) n = 1;
    proxy::ProxySettings settings = opts_.proxy;
    if (opts_.max_connections > 0) {
      // Connections land on workers unevenly (EPOLLEXCLUSIVE wakes one); the
      // per-worker share rounds up so the total is never below the limit.
      settings.max_connections = (opts_.max_connections + n - 1) / n;
    }
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, registry_.newStore(), settings));
    }
    for (auto& w : workers_) w->start();
    server_stats_.concurrency->set(n);
    server_stats_.state->set(2);  // PRE_INITIALIZING
    setUpWatch();
    reload();
    server_stats_.live->set(1);
    server_stats_.state->set(0);  // LIVE
    onUptimeTimer(this);
    PORTICO_LOG(Info, "portico started: {} workers, admin on {}", n, opts_.admin_address);
    loop_.run();
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    workers_.clear();
    for (auto& [name, fd] : listen_fds_) ::close(fd);
    PORTICO_LOG(Info, "portico stopped");
    return exit_code_;
  }

 private:
  bool setUpSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    // Block before workers start so every thread inherits the mask and the
    // signals arrive only through the signalfd.
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ < 0) return false;
    signal_handler_ = std::make_unique<FdHandler>([this] { onSignal(); });
    return loop_.add(signal_fd_, EPOLLIN, signal_handler_.get());
  }

  bool setUpAdmin() {
    net::Address addr;
    if (!net::parseHostPort(opts_.admin_address, addr)) {
      PORTICO_LOG(Error, "--admin-address {}: expected IP:PORT", opts_.admin_address);
      return false;
    }
    std::string err;
    admin_fd_ = net::listenTcp(addr, 128, err);
    if (admin_fd_ < 0) {
      PORTICO_LOG(Error, "admin: {}", err);
      return false;
    }
    sources_.registry = &registry_;
    sources_.version = PORTICO_VERSION;
    sources_.ready = [this] { return ready_ && !draining_; };
    sources_.config_dump_json = [this] {
      return snapshot_ ? snapshot::dumpSnapshotJson(*snapshot_) : std::string("{}");
    };
    sources_.status_list_json = [this] {
      return translate::renderStatusList(resources_, status_, translate::OutputFormat::Json);
    };
    sources_.clusters_text = [this] { return clustersText(); };
    auto start = std::chrono::steady_clock::now();
    sources_.uptime_seconds = [start] {
      return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                              start)
          .count();
    };
    admin_handler_ = std::make_unique<FdHandler>([this] { acceptAdmin(); });
    return loop_.add(admin_fd_, EPOLLIN, admin_handler_.get());
  }

  std::string clustersText() const {
    if (!snapshot_) return {};
    std::unordered_map<std::string, upstream::ClusterManager::HostTotals> totals;
    for (const auto& w : workers_) w->addHostTotals(totals);
    auto infos = admin::clusterInfos(*snapshot_);
    for (auto& c : infos) {
      for (auto& h : c.hosts) {
        net::Address addr;
        if (!net::parseAddress(h.address, h.port, addr)) continue;
        h.stats = admin::HostStats{};
        auto it = totals.find(c.name + "/" + addr.text);
        if (it == totals.end()) continue;
        const auto& t = it->second;
        h.stats = admin::HostStats{t.cx_active, t.cx_connect_fail, t.cx_total,   t.rq_active,
                                   t.rq_error,  t.rq_success,      t.rq_timeout, t.rq_total};
      }
    }
    return admin::renderClustersText(infos);
  }

  void acceptAdmin() {
    for (;;) {
      int fd = ::accept4(admin_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      new AdminConnection(loop_, fd, sources_);  // deletes itself
    }
  }

  void setUpWatch() {
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
      PORTICO_LOG(Warn, "inotify unavailable: config changes need a restart");
      return;
    }
    for (const auto& dir : source_.watchDirectories()) {
      if (inotify_add_watch(inotify_fd_, dir.c_str(),
                            IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                IN_MODIFY | IN_ATTRIB) < 0) {
        PORTICO_LOG(Warn, "cannot watch {}: {}", dir, std::strerror(errno));
      }
    }
    inotify_handler_ = std::make_unique<FdHandler>([this] { onInotify(); });
    loop_.add(inotify_fd_, EPOLLIN, inotify_handler_.get());
  }

  void onInotify() {
    alignas(inotify_event) char buf[8192];
    while (::read(inotify_fd_, buf, sizeof(buf)) > 0) {
    }
    // Editors write in several steps; wait for the burst to settle.
    reload_timer_.arm(100);
  }
  static void onReloadTimer(void* self) { static_cast<MainServer*>(self)->reload(); }

  void reload() {
    if (draining_) return;
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::duration d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    auto t0 = Clock::now();
    std::vector<std::string> errors;
    // The previous input is only kept for /status; the reload runs on this
    // thread, so nothing can ask for it until it is replaced below. Freeing
    // it first keeps one full copy alive instead of two.
    resources_ = k8s::ResourceSet{};
    k8s::ResourceSet set = source_.load(errors);
    for (const auto& e : errors) PORTICO_LOG(Error, "config: {}", e);
    auto t_load = Clock::now();
    auto now = std::chrono::system_clock::now();
    tracker_.stamp(set, now);
    translate::Options topts;
    topts.controller_name = opts_.controller_name;
    topts.listen_address = opts_.listen_address;
    topts.now = common::formatRfc3339(now);
    topts.version = ++version_;
    // OpenSSL-backed certificate checks for the backend TLS pass.
    topts.inspect_certificates = [](std::string_view pem) {
      tls::PemBundleInfo b = tls::inspectPemCertificates(pem);
      translate::PemInspection out;
      out.error = b.error;
      out.dates_known = true;
      for (const auto& c : b.certificates)
        out.certificates.push_back({c.subject, c.not_before, c.not_after});
      return out;
    };
    topts.check_key_pair = tls::checkCertificateKeyPair;
    topts.check_tls_settings = tls::validateClientSettings;
    translate::Result result = translate::translate(set, topts);
    auto t_translate = Clock::now();
    for (const auto& w : result.status.warnings) PORTICO_LOG(Warn, "config: {}", w);
    resolveExternalNames(*result.snapshot);
    publish(result.snapshot);
    result.snapshot.reset();
    resources_ = std::move(set);
    translate::carryTransitionTimes(result.status, status_);
    status_ = std::move(result.status);
    for (const auto& note : status_.notes) PORTICO_LOG(Info, "config: {}", note);
    ready_ = true;
    const LoadStats& ls = source_.lastLoad();
    PORTICO_LOG(Info,
                "config version {} applied: {} listeners, {} clusters, {} errors; {} files "
                "({} decoded, {} unchanged); load {} ms, translate {} ms, publish {} ms",
                version_, snapshot_->listeners.size(), snapshot_->clusters.size(), errors.size(),
                ls.files, ls.decoded, ls.reused, ms(t_load - t0), ms(t_translate - t_load),
                ms(Clock::now() - t_translate));
    // The previous snapshot goes when the workers let go of it; give what the
    // last reload freed back to the OS then (glibc keeps freed heap otherwise,
    // and RSS would grow by a config's worth per reload).
    trim_timer_.arm(kTrimDelayMs);
  }

  static void onTrimTimer(void*) { ::malloc_trim(0); }

  // ExternalName Services: resolved here, on the main thread, at each
  // reload (getaddrinfo blocks; workers never do).
  void resolveExternalNames(snapshot::Snapshot& snap) {
    for (auto& c : snap.clusters) {
      if (c.dns_name.empty()) continue;
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = getaddrinfo(c.dns_name.c_str(), nullptr, &hints, &res);
      if (rc != 0) {
        PORTICO_LOG(Warn, "cluster {}: cannot resolve {}: {}", c.name, c.dns_name,
                    gai_strerror(rc));
        continue;
      }
      for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        char host[NI_MAXHOST];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), nullptr, 0,
                        NI_NUMERICHOST) == 0) {
          snapshot::Endpoint ep;
          ep.address = host;
          ep.port = c.dns_port;
          bool dup = false;
          for (const auto& e : c.endpoints) dup = dup || (e.address == ep.address);
          if (!dup) c.endpoints.push_back(ep);
        }
      }
      freeaddrinfo(res);
    }
  }

  void publish(std::shared_ptr<snapshot::Snapshot> snap) {
    std::map<std::string, int> next;
    for (const auto& l : snap->listeners) {
      auto it = listen_fds_.find(l.name);
      if (it != listen_fds_.end()) {
        next.emplace(l.name, it->second);
        listen_fds_.erase(it);
        continue;
      }
      net::Address addr;
      if (!net::parseAddress(l.address, l.port, addr)) {
        PORTICO_LOG(Error, "listener {}: bad address {}", l.name, l.address);
        continue;
      }
      std::string err;
      int fd = net::listenTcp(addr, 1024, err);
      if (fd < 0) {
        PORTICO_LOG(Error, "listener {}: {}", l.name, err);
        continue;
      }
      PORTICO_LOG(Info, "listening on {}", addr.text);
      next.emplace(l.name, fd);
    }
    std::shared_ptr<const snapshot::Snapshot> published = snap;
    for (auto& w : workers_) {
      std::vector<ListenSocket> sockets;
      for (const auto& [name, fd] : next) sockets.push_back({name, ::dup(fd)});
      w->applySnapshot(published, std::move(sockets));
    }
    // Removed listeners: workers close their dups; this is the last copy.
    for (auto& [name, fd] : listen_fds_) {
      PORTICO_LOG(Info, "listener {} removed", name);
      ::close(fd);
    }
    listen_fds_ = std::move(next);
    updateMembership(*published);
    snapshot_ = std::move(published);
  }

  // Cluster membership is process-wide, so the main thread's shard holds it.
  void updateMembership(const snapshot::Snapshot& snap) {
    for (const auto& c : snap.clusters) {
      int64_t healthy = 0;
      for (const auto& e : c.endpoints) healthy += e.ready ? 1 : 0;
      main_store_.gauge("cluster", c.name, "membership_total")
          .set(static_cast<int64_t>(c.endpoints.size()));
      main_store_.gauge("cluster", c.name, "membership_healthy").set(healthy);
    }
    if (snapshot_) {
      for (const auto& c : snapshot_->clusters) {
        if (snap.findCluster(c.name) != nullptr) continue;
        main_store_.gauge("cluster", c.name, "membership_total").set(0);
        main_store_.gauge("cluster", c.name, "membership_healthy").set(0);
      }
    }
  }

  static void onUptimeTimer(void* self) {
    auto* s = static_cast<MainServer*>(self);
    s->server_stats_.uptime->set(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::steady_clock::now() - s->started_)
                                     .count());
    s->uptime_timer_.arm(1000);
  }

  void onSignal() {
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGHUP) {
        reload_timer_.arm(0);
        continue;
      }
      if (draining_) {
        PORTICO_LOG(Warn, "second signal: exiting without waiting for the drain");
        loop_.stop();
        return;
      }
      startDrain(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
    }
  }

  void startDrain(const char* why) {
    draining_ = true;
    server_stats_.state->set(1);  // DRAINING
    PORTICO_LOG(Info, "{}: draining (no new connections; in-flight requests finish)", why);
    for (auto& [name, fd] : listen_fds_) ::close(fd);
    listen_fds_.clear();
    drained_ = 0;
    for (auto& w : workers_) {
      w->drain([this] { loop_.post([this] { onWorkerDrained(); }); });
    }
    drain_timer_.arm(opts_.drain_timeout_ms);
  }

  void onWorkerDrained() {
    if (++drained_ == workers_.size()) {
      PORTICO_LOG(Info, "drained");
      loop_.stop();
    }
  }
  static void onDrainTimeout(void* self) {
    PORTICO_LOG(Warn, "drain timeout: closing remaining connections");
    static_cast<MainServer*>(self)->loop_.stop();
  }

  RunOptions opts_;
  net::EventLoop loop_;
  stats::Registry registry_;
  stats::Store& main_store_;
  stats::ServerStats server_stats_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Worker>> workers_;
  FileConfigSource source_;
  k8s::ObjectTracker tracker_;
  k8s::ResourceSet resources_;
  translate::StatusReport status_;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::map<std::string, int> listen_fds_;
  admin::AdminSources sources_;
  net::Timer reload_timer_;
  net::Timer drain_timer_;
  net::Timer uptime_timer_;
  net::Timer trim_timer_;
  std::unique_ptr<FdHandler> signal_handler_, admin_handler_, inotify_handler_;
  int signal_fd_ = -1, admin_fd_ = -1, inotify_fd_ = -1;
  uint64_t version_ = 0;
  size_t drained_ = 0;
  bool ready_ = false;
  bool draining_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run(const RunOptions& options) {
  MainServer server(options);
  return server.run();
}

}  // namespace portico::server
