#pragma once
// The admin endpoints' content, sans-IO: the server owns the socket and the
// HTTP framing and hands each request here; this module only turns
// (method, path, query) into (status, content type, body) in Envoy's formats.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::stats {
class Registry;
}

namespace portico::admin {

struct AdminRequest {
  std::string_view method;
  std::string_view path;   // "/stats"; a "?query" left on the path is split off
  std::string_view query;  // "filter=...&format=json", still percent-encoded
};

struct AdminResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  // Extra response headers (e.g. Allow on 405).
  std::vector<std::pair<std::string, std::string>> headers;
};

// Where the content comes from. Every member may be left empty: the endpoint
// then answers 503 (or, for stats, an empty registry). Callbacks run on the
// admin thread and must be safe to call from it.
struct AdminSources {
  const stats::Registry* registry = nullptr;
  std::function<std::string()> config_dump_json;
  std::function<std::string()> status_list_json;
  std::function<std::string()> clusters_text;
  std::function<std::string()> certs_json;
  // True once the first config is applied and listeners are up. Unset counts
  // as not ready: a probe must never pass by accident.
  std::function<bool()> ready;
  std::string version = "portico";
  // Seconds since start, for /server_info; optional.
  std::function<int64_t()> uptime_seconds;
};

// Answers one admin request. For HEAD the body is filled as for GET so the
// caller can send the right Content-Length; the caller must not send it.
// Never throws.
AdminResponse handleAdmin(const AdminRequest& request, const AdminSources& sources);

// Percent-decodes one query component ("%2F" -> "/"). '+' stays '+' because
// filters are regexes. Malformed escapes are kept literally.
std::string percentDecode(std::string_view in);

// Splits "a=1&b&c=%20" into decoded (key, value) pairs, in order.
std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query);

}  // namespace portico::admin
