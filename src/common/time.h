#pragma once
// RFC 3339 timestamps in UTC, the form Kubernetes writes
// ("2024-01-01T00:00:00Z"); logs add milliseconds ("...00.123Z"). And HTTP's
// Date form.
#include <chrono>
#include <cstdint>
#include <string>

namespace portico::common {

std::string formatRfc3339(std::chrono::system_clock::time_point t, bool millis = false);
std::string formatRfc3339(int64_t unix_seconds);
// IMF-fixdate, HTTP's Date form (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
// English names whatever the locale.
std::string formatHttpDate(int64_t unix_seconds);

}  // namespace portico::common
