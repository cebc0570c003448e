#include "common/time.h"

#include <ctime>

#include <fmt/format.h>

namespace portico::common {

std::string formatRfc3339(int64_t unix_seconds) {
  std::time_t secs = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);  // pure: no clock, no locale
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string formatHttpDate(int64_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t secs = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{}, {:02d} {} {:04d} {:02d}:{:02d}:{:02d} GMT", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string formatRfc3339(std::chrono::system_clock::time_point t, bool millis) {
  const auto since = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  std::string s = formatRfc3339(static_cast<int64_t>(secs.count()));
  if (!millis) return s;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  s.pop_back();  // 'Z'
  return s + fmt::format(".{:03d}Z", static_cast<int>(ms));
}

}  // namespace portico::common
