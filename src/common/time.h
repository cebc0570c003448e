#pragma once
// RFC 3339 timestamps in UTC, the form Kubernetes writes
// ("2024-01-01T00:00:00Z"); logs add milliseconds ("...00.123Z").
#include <chrono>
#include <cstdint>
#include <string>

namespace portico::common {

std::string formatRfc3339(std::chrono::system_clock::time_point t, bool millis = false);
std::string formatRfc3339(int64_t unix_seconds);

}  // namespace portico::common
