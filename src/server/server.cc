#include "server/server.h"

#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "admin/admin.h"
#include "admin/clusters.h"
#include "common/log.h"
#include "common/time.h"
#include "http/http1.h"
#include "k8s/object_tracker.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "server/certs.h"
#include "server/config_source.h"
#include "server/tls_checks.h"
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

using Clock = std::chrono::steady_clock;

int64_t elapsedMs(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// What one reload produced, handed from the control thread to the main
// thread. Everything in it is immutable once handed over.
struct ReloadResult {
  uint64_t version = 0;
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  std::shared_ptr<const k8s::ResourceSet> resources;
  std::shared_ptr<const translate::StatusReport> status;
  size_t errors = 0;
  LoadStats load;
  int64_t load_ms = 0, translate_ms = 0;
  Clock::time_point translated;  // "publish" is timed from here to applied
};

// The control thread: reads the config, translates it and resolves
// ExternalName Services, so that a reload of a 10,000-route config (0.3-0.5 s
// of CPU, and getaddrinfo blocks) never stalls the main loop, which answers
// the admin port (readiness probes, scrapes) and signals meanwhile.
//
// It owns everything the pipeline mutates: the FileConfigSource (last good
// objects per file), the ObjectTracker, the version counter and the previous
// StatusReport carryTransitionTimes needs. Results go to `deliver` in order;
// the main thread publishes them.
class Reloader {
 public:
  using Deliver = std::function<void(std::shared_ptr<ReloadResult>)>;
  Reloader(const RunOptions& opts, Deliver deliver)
      : opts_(opts), deliver_(std::move(deliver)), source_(opts.config_paths) {}
  ~Reloader() {
    stop();
    join();
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  // Thread-safe. Requests made while a reload runs coalesce into one more
  // reload after it: it reads the files as they are then, so the last edit is
  // never lost and a burst of edits never queues a burst of reloads.
  void request() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requested_ = true;
    }
    cv_.notify_one();
  }

  // Thread-safe. No reload starts after this; one in flight gives up at its
  // next step (after the load, after translate, between DNS names) and
  // delivers nothing.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Thread-safe. Drops a reference on the control thread, so that when it is
  // the last one the (large) object is freed there.
  void release(std::shared_ptr<const void> old) {
    if (!old) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      garbage_.push_back(std::move(old));
    }
    cv_.notify_one();
  }

  // Only reads the paths given at construction: safe from any thread.
  std::vector<std::string> watchDirectories() const { return source_.watchDirectories(); }

 private:
  void run() {
    for (;;) {
      std::vector<std::shared_ptr<const void>> garbage;
      bool reload_now = false;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return requested_ || stopping_ || !garbage_.empty(); });
        garbage.swap(garbage_);
        if (stopping_) return;
        reload_now = std::exchange(requested_, false);
      }
      garbage.clear();
      if (!reload_now) continue;
      std::shared_ptr<ReloadResult> result = reload();
      if (result) deliver_(std::move(result));
    }
  }

  // A checkpoint of a reload: says whether to stop, and frees what the main
  // thread released meanwhile. When reloads coalesce, the configs replaced
  // by the previous result arrive while this one runs; holding them to its
  // end would keep a third config in memory.
  bool stopping() {
    std::vector<std::shared_ptr<const void>> garbage;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      garbage.swap(garbage_);
      stop = stopping_;
    }
    return stop;  // `garbage` is freed here, outside the lock
  }

  // For tests only: PORTICO_TEST_RELOAD_DELAY_MS stretches every reload by
  // that long (after translate, before publishing), so that a test can act
  // while one is running however fast this machine translates. Unset, it
  // costs nothing. False when stopped meanwhile.
  bool testDelay() {
    static const long delay_ms = [] {
      const char* v = std::getenv("PORTICO_TEST_RELOAD_DELAY_MS");
      return v != nullptr ? std::strtol(v, nullptr, 10) : 0L;
    }();
    if (delay_ms <= 0) return true;
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, std::chrono::milliseconds(delay_ms), [this] { return stopping_; });
  }

  std::shared_ptr<ReloadResult> reload() {
    auto t0 = Clock::now();
    auto out = std::make_shared<ReloadResult>();
    std::vector<std::string> errors;
    auto set = std::make_shared<k8s::ResourceSet>(source_.load(errors));
    for (const auto& e : errors) PORTICO_LOG(Error, "config: {}", e);
    out->errors = errors.size();
    out->load = source_.lastLoad();
    auto t_load = Clock::now();
    if (stopping()) return nullptr;
    auto now = std::chrono::system_clock::now();
    tracker_.stamp(*set, now);
    translate::Options topts;
    topts.controller_name = opts_.controller_name;
    topts.listen_address = opts_.listen_address;
    topts.now = common::formatRfc3339(now);
    topts.version = ++version_;
    addTlsChecks(topts);
    translate::Result result = translate::translate(*set, topts);
    out->translated = Clock::now();
    out->load_ms = elapsedMs(t_load - t0);
    out->translate_ms = elapsedMs(out->translated - t_load);
    for (const auto& w : result.status.warnings) PORTICO_LOG(Warn, "config: {}", w);
    if (!testDelay()) return nullptr;
    if (stopping()) return nullptr;
    if (!resolveExternalNames(*result.snapshot)) return nullptr;
    result.snapshot->first_cert_expiry = cert_expiry_.first(*result.snapshot);
    if (prev_status_) translate::carryTransitionTimes(result.status, *prev_status_);
    for (const auto& note : result.status.notes) PORTICO_LOG(Info, "config: {}", note);
    prev_status_ = std::make_shared<const translate::StatusReport>(std::move(result.status));
    out->version = version_;
    out->snapshot = std::move(result.snapshot);
    out->resources = std::move(set);
    out->status = prev_status_;
    return out;
  }

  // ExternalName Services, resolved at each reload (getaddrinfo blocks: here,
  // never on the main thread or a worker). False when stopped meanwhile.
  bool resolveExternalNames(snapshot::Snapshot& snap) {
    for (auto& c : snap.clusters) {
      if (c.dns_name.empty()) continue;
      if (stopping()) return false;
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
    return true;
  }

  const RunOptions& opts_;
  Deliver deliver_;
  // The hand-off between the main thread and this one: `requested_`,
  // `stopping_` and `garbage_` only. Taken to ask for a reload, a stop or a
  // release (a few times per reload) and here between reloads and phases;
  // never held while working, never on the admin or request path.
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stopping_ = false;
  std::vector<std::shared_ptr<const void>> garbage_;  // see release()
  // Owned by the control thread.
  FileConfigSource source_;
  k8s::ObjectTracker tracker_;
  uint64_t version_ = 0;
  std::shared_ptr<const translate::StatusReport> prev_status_;
  CertExpiry cert_expiry_;
  std::thread thread_;
};

class MainServer {
 public:
  explicit MainServer(const RunOptions& o)
      : opts_(o),
        main_store_(registry_.newStore()),
        server_stats_(stats::ServerStats::make(main_store_)),
        reloader_(opts_,
                  [this](std::shared_ptr<ReloadResult> r) {
                    loop_.post([this, r = std::move(r)] { applyReload(*r); });
                  }),
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
    server_stats_.state->set(2);  // PRE_INITIALIZING until the first config is applied
    setUpWatch();
    reloader_.start();
    requestReload();
    onUptimeTimer(this);
    PORTICO_LOG(Info, "portico started: {} workers, admin on {}", n, opts_.admin_address);
    loop_.run();
    // A reload still in flight gives up at its next step; what it would have
    // posted is never run (the loop is done) and is freed with the loop.
    reloader_.stop();
    reloader_.join();
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
      static const k8s::ResourceSet kNoResources;
      static const translate::StatusReport kNoStatus;
      return translate::renderStatusList(resources_ ? *resources_ : kNoResources,
                                         status_ ? *status_ : kNoStatus,
                                         translate::OutputFormat::Json);
    };
    sources_.clusters_text = [this] { return clustersText(); };
    sources_.certs_json = [this] {
      static const snapshot::Snapshot kNothingLoaded;
      return certsJson(snapshot_ ? *snapshot_ : kNothingLoaded,
                       static_cast<int64_t>(std::time(nullptr)));
    };
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
    for (const auto& dir : reloader_.watchDirectories()) {
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
  static void onReloadTimer(void* self) { static_cast<MainServer*>(self)->requestReload(); }

  void requestReload() {
    if (!draining_) reloader_.request();
  }

  // On the main thread: what the control thread built goes live, and admin
  // answers from it from now on.
  void applyReload(ReloadResult& r) {
    if (draining_) {
      // The listeners are closed; nothing to publish to.
      reloader_.release(std::move(r.snapshot));
      reloader_.release(std::move(r.resources));
      reloader_.release(std::move(r.status));
      return;
    }
    std::shared_ptr<const snapshot::Snapshot> previous = snapshot_;
    publish(std::move(r.snapshot));
    // Freeing a 10,000-object config takes a good part of what building it
    // did: the control thread does it, not this one.
    reloader_.release(std::move(previous));
    reloader_.release(std::exchange(resources_, std::move(r.resources)));
    reloader_.release(std::exchange(status_, std::move(r.status)));
    if (!ready_) {
      ready_ = true;
      server_stats_.live->set(1);
      server_stats_.state->set(0);  // LIVE
    }
    PORTICO_LOG(Info,
                "config version {} applied: {} listeners, {} clusters, {} errors; {} files "
                "({} decoded, {} unchanged); load {} ms, translate {} ms, publish {} ms",
                r.version, snapshot_->listeners.size(), snapshot_->clusters.size(), r.errors,
                r.load.files, r.load.decoded, r.load.reused, r.load_ms, r.translate_ms,
                elapsedMs(Clock::now() - r.translated));
    // The previous snapshot goes when the workers let go of it; give what the
    // last reload freed back to the OS then (glibc keeps freed heap otherwise,
    // and RSS would grow by a config's worth per reload).
    trim_timer_.arm(kTrimDelayMs);
  }

  static void onTrimTimer(void*) { ::malloc_trim(0); }

  void publish(std::shared_ptr<const snapshot::Snapshot> published) {
    std::map<std::string, int> next;
    for (const auto& l : published->listeners) {
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
    updateCertExpiry();
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

  // Envoy's server.days_until_first_cert_expiring: whole days left (0 once
  // expired), UINT32_MAX with no certificate at all. Set on each publish, so
  // it follows an edit at once, and each second, so it follows the clock.
  void updateCertExpiry() {
    int64_t days = std::numeric_limits<uint32_t>::max();
    if (snapshot_ && snapshot_->first_cert_expiry != 0) {
      const int64_t left = snapshot_->first_cert_expiry - static_cast<int64_t>(std::time(nullptr));
      days = left > 0 ? left / 86400 : 0;
    }
    server_stats_.days_until_first_cert_expiring->set(days);
  }

  static void onUptimeTimer(void* self) {
    auto* s = static_cast<MainServer*>(self);
    s->server_stats_.uptime->set(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::steady_clock::now() - s->started_)
                                     .count());
    s->updateCertExpiry();
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
    reloader_.stop();             // no reload starts now; a result still coming is dropped
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
  // After loop_: its thread posts results to loop_ until joined.
  Reloader reloader_;
  // What admin reads; replaced only by applyReload, on this thread.
  std::shared_ptr<const k8s::ResourceSet> resources_;
  std::shared_ptr<const translate::StatusReport> status_;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::map<std::string, int> listen_fds_;
  admin::AdminSources sources_;
  net::Timer reload_timer_;
  net::Timer drain_timer_;
  net::Timer uptime_timer_;
  net::Timer trim_timer_;
  std::unique_ptr<FdHandler> signal_handler_, admin_handler_, inotify_handler_;
  int signal_fd_ = -1, admin_fd_ = -1, inotify_fd_ = -1;
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
