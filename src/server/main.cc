// portico: `run`, `check`, `version`. Argument parsing is by hand: a dozen
// flags don't justify a CLI library in the build.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/time.h"
#include "k8s/object_tracker.h"
#include "server/config_source.h"
#include "server/server.h"
#include "server/tls_checks.h"
#include "tls/pem.h"
#include "tls/tls.h"
#include "translate/status.h"
#include "translate/translate.h"

namespace {

using portico::common::LogLevel;

constexpr const char* kUsage = R"(usage:
  portico run --config PATH [--config PATH ...] [options]
      --admin-address HOST:PORT   admin listener (default 127.0.0.1:19000)
      --listen-address ADDR       address every Gateway listener binds (default 0.0.0.0)
      --workers N                 worker threads (default: number of CPUs)
      --controller-name NAME      GatewayClass controllerName we serve
                                  (default portico.dev/gateway-controller)
      --log-level LEVEL           trace|debug|info|warning|error|off (default info)
      --access-log FORMAT         text|json|off (default text, to stdout)
      --drain-timeout SECONDS     SIGTERM drain limit (default 30)
      --max-connections N         downstream connections per process; above it a new
                                  connection gets 503 and is closed (default 20000 per worker)
      --request-headers-timeout SECONDS
                                  a started request head must be complete by then, else
                                  408 (default 10)
      --idle-timeout SECONDS      keep-alive idle limit between requests, and how long a
                                  client may leave a response unread (default 60)
      --stream-idle-timeout SECONDS
                                  an upgraded connection (WebSocket) on which no byte moves
                                  either way for this long is closed (default 300)
  portico check PATH... [-o yaml|json]
      parse, validate and translate; print every Gateway API object with its status
  portico version
)";

bool parseUint(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

int usageError(const std::string& msg) {
  std::cerr << "portico: " << msg << "\n\n" << kUsage;
  return 2;
}

int runCommand(const std::vector<std::string>& args) {
  portico::server::RunOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    std::string v;
    if (a == "--config" || a == "-c") {
      if (!value(v)) return usageError(a + " needs a path");
      o.config_paths.push_back(v);
    } else if (a == "--admin-address") {
      if (!value(o.admin_address)) return usageError(a + " needs HOST:PORT");
    } else if (a == "--listen-address") {
      if (!value(o.listen_address)) return usageError(a + " needs an address");
    } else if (a == "--controller-name") {
      if (!value(o.controller_name)) return usageError(a + " needs a name");
    } else if (a == "--workers") {
      uint64_t n = 0;
      if (!value(v) || !parseUint(v, n) || n == 0 || n > 256)
        return usageError("--workers needs 1..256");
      o.workers = static_cast<int>(n);
    } else if (a == "--max-connections") {
      uint64_t n = 0;
      if (!value(v) || !parseUint(v, n) || n == 0)
        return usageError("--max-connections needs N > 0");
      o.max_connections = n;
    } else if (a == "--request-headers-timeout" || a == "--idle-timeout" ||
               a == "--stream-idle-timeout") {
      uint64_t n = 0;
      if (!value(v) || !parseUint(v, n) || n == 0 || n > 86400) {
        return usageError(a + " needs 1..86400 seconds");
      }
      uint32_t& ms = a == "--idle-timeout"          ? o.proxy.idle_timeout_ms
                     : a == "--stream-idle-timeout" ? o.proxy.stream_idle_timeout_ms
                                                    : o.proxy.header_timeout_ms;
      ms = static_cast<uint32_t>(n * 1000);
    } else if (a == "--drain-timeout") {
      uint64_t n = 0;
      if (!value(v) || !parseUint(v, n)) return usageError("--drain-timeout needs seconds");
      o.drain_timeout_ms = static_cast<uint32_t>(n * 1000);
    } else if (a == "--log-level") {
      LogLevel level;
      if (!value(v) || !portico::common::parseLogLevel(v, level))
        return usageError("bad --log-level");
      portico::common::setLogLevel(level);
    } else if (a == "--access-log") {
      if (!value(v)) return usageError("--access-log needs text|json|off");
      if (v == "text") {
        o.proxy.access_log = portico::proxy::AccessLogFormat::Text;
      } else if (v == "json") {
        o.proxy.access_log = portico::proxy::AccessLogFormat::Json;
      } else if (v == "off") {
        o.proxy.access_log = portico::proxy::AccessLogFormat::Off;
      } else {
        return usageError("--access-log needs text|json|off");
      }
    } else {
      return usageError("unknown option " + a);
    }
  }
  if (o.config_paths.empty()) return usageError("run needs at least one --config PATH");
  return portico::server::run(o);
}

int checkCommand(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  auto format = portico::translate::OutputFormat::Yaml;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-o" || args[i] == "--output") {
      if (i + 1 >= args.size()) return usageError("-o needs yaml|json");
      const std::string& f = args[++i];
      if (f == "json") {
        format = portico::translate::OutputFormat::Json;
      } else if (f == "yaml") {
        format = portico::translate::OutputFormat::Yaml;
      } else {
        return usageError("-o needs yaml|json");
      }
    } else if (args[i] == "--config" || args[i] == "-c") {
      if (i + 1 >= args.size()) return usageError("--config needs a path");
      paths.push_back(args[++i]);
    } else {
      paths.push_back(args[i]);
    }
  }
  if (paths.empty()) return usageError("check needs at least one PATH");
  portico::common::setLogLevel(LogLevel::Warn);  // stdout is the List; keep stderr for problems
  portico::server::FileConfigSource source(paths, /*keep_objects=*/false);
  std::vector<std::string> errors;
  auto set = source.load(errors);
  auto now = std::chrono::system_clock::now();
  portico::k8s::ObjectTracker tracker;
  tracker.stamp(set, now);
  portico::translate::Options topts;
  topts.now = portico::common::formatRfc3339(now);
  portico::server::addTlsChecks(topts);
  auto result = portico::translate::translate(set, topts);
  std::cout << portico::translate::renderStatusList(set, result.status, format);
  std::cout.flush();
  for (const auto& note : result.status.notes) std::cerr << "note: " << note << "\n";
  // Which BackendTLSPolicy governs each backend port, and certificate dates:
  // informational, so the exit code is unchanged.
  for (const auto& line : result.status.backends) std::cerr << line << "\n";
  for (const auto& w : result.status.warnings) std::cerr << "warning: " << w << "\n";
  for (const auto& e : errors) std::cerr << e << "\n";
  // A one-shot command: skip freeing a 10k-object input piece by piece
  // (a fifth of `check`'s time on large inputs); the OS reclaims it at once.
  std::cout.flush();
  std::cerr.flush();
  std::_Exit(errors.empty() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  std::string cmd = args.front();
  args.erase(args.begin());
  if (cmd == "run") return runCommand(args);
  if (cmd == "check") return checkCommand(args);
  if (cmd == "version" || cmd == "--version") {
    std::cout << "portico " << PORTICO_VERSION << "\n";
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  return usageError("unknown command " + cmd);
}
