#include "common/log.h"

#include "common/time.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

namespace portico::common {
namespace {
std::atomic<LogLevel> g_level{LogLevel::Info};

const char* levelName(LogLevel level) {
  switch (level) {
    case LogLevel::Trace:
      return "trace";
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warning";
    case LogLevel::Error:
      return "error";
    case LogLevel::Off:
      return "off";
  }
  return "?";
}

void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // nowhere to report a failing log write
    off += static_cast<size_t>(n);
  }
}
}  // namespace

LogLevel logLevel() { return g_level.load(std::memory_order_relaxed); }
void setLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

bool parseLogLevel(std::string_view text, LogLevel& out) {
  for (int i = 0; i <= static_cast<int>(LogLevel::Off); ++i) {
    auto level = static_cast<LogLevel>(i);
    if (text == levelName(level) || (level == LogLevel::Warn && text == "warn")) {
      out = level;
      return true;
    }
  }
  return false;
}

void logWrite(LogLevel level, std::string_view message) {
  std::string line =
      fmt::format("[{}] [{}] {}\n", formatRfc3339(std::chrono::system_clock::now(), true),
                  levelName(level), message);
  writeAll(STDERR_FILENO, line);
}

void accessLogWrite(std::string_view line) {
  std::string s(line);
  s.push_back('\n');
  writeAll(STDOUT_FILENO, s);
}

}  // namespace portico::common
