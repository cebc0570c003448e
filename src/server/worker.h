#pragma once
// A worker: one thread, one event loop, its own stats shard, upstream pool
// and cluster runtimes. The main thread talks to it only through post():
// a new snapshot with the listening sockets to accept on, a drain, a stop.
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "proxy/proxy_context.h"
#include "snapshot/snapshot.h"
#include "stats/stats.h"

namespace portico::server {

// A listening socket shared by all workers (each gets its own dup() and
// accepts with EPOLLEXCLUSIVE, so one connection wakes one worker).
struct ListenSocket {
  std::string name;  // snapshot::Listener::name
  int fd = -1;
};

class Worker {
 public:
  Worker(int index, stats::Store& store, proxy::ProxySettings settings);
  ~Worker();
  void start();
  // Thread-safe. The fds are dup()ed by the caller for this worker; the
  // worker owns (and closes) them.
  void applySnapshot(std::shared_ptr<const snapshot::Snapshot> snap,
                     std::vector<ListenSocket> sockets);
  // Thread-safe: stop accepting, finish in-flight requests, close idle
  // connections; `done` runs on the worker thread when nothing is left.
  void drain(std::function<void()> done);
  void stop();
  void join();
  // Thread-safe (takes the cluster manager's lock): per-host counters for /clusters.
  void addHostTotals(
      std::unordered_map<std::string, upstream::ClusterManager::HostTotals>& out) const {
    ctx_.clusters.addHostTotals(out);
  }

 private:
  class Acceptor;
  void onSnapshot(std::shared_ptr<const snapshot::Snapshot> snap,
                  std::vector<ListenSocket> sockets);
  void accept(Acceptor& acceptor);
  static void onConnectionClosed(void* self, proxy::HttpConnection* conn);
  void checkDrained();
  void retireAcceptors();

  int index_;
  net::EventLoop loop_;
  proxy::ProxyContext ctx_;
  std::thread thread_;
  std::unordered_map<std::string, std::unique_ptr<Acceptor>> acceptors_;
  std::function<void()> drained_;
};

}  // namespace portico::server
