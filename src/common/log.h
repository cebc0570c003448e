#pragma once
// Tiny leveled logger on top of fmt. One write(2) per line so lines from
// different threads never interleave; no locks. Access log lines go to stdout,
// everything else to stderr.
#include <fmt/core.h>

#include <string_view>

namespace portico::common {

enum class LogLevel { Trace = 0, Debug, Info, Warn, Error, Off };

LogLevel logLevel();
void setLogLevel(LogLevel level);
bool parseLogLevel(std::string_view text, LogLevel& out);
void logWrite(LogLevel level, std::string_view message);
// Writes one already formatted line (a newline is appended) to stdout.
void accessLogWrite(std::string_view line);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < logLevel()) return;
  logWrite(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace portico::common

#define PORTICO_LOG(level, ...) \
  ::portico::common::log(::portico::common::LogLevel::level, __VA_ARGS__)
