#pragma once
// The main thread of `portico run`: reads config, translates, publishes
// snapshots to workers, owns the listening sockets, serves the admin port,
// watches config files and handles SIGTERM (drain) / SIGINT.
#include <memory>
#include <string>
#include <vector>

#include "proxy/proxy_context.h"

namespace portico::server {

struct RunOptions {
  std::vector<std::string> config_paths;
  std::string admin_address = "127.0.0.1:19000";
  std::string listen_address = "0.0.0.0";
  int workers = 0;  // 0: number of CPUs
  std::string controller_name = "portico.dev/gateway-controller";
  uint32_t drain_timeout_ms = 30000;
  uint64_t max_connections = 0;  // whole process; 0: ProxySettings' per-worker default
  proxy::ProxySettings proxy;
};

// Runs until SIGTERM/SIGINT has drained. Returns the process exit code.
int run(const RunOptions& options);

}  // namespace portico::server
