#include "admin/admin.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <cmath>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "stats/prometheus.h"
#include "stats/stats.h"

namespace portico::admin {

namespace {

constexpr std::string_view kTextPlain = "text/plain; charset=UTF-8";
constexpr std::string_view kJson = "application/json";
// Prometheus text exposition format 0.0.4.
constexpr std::string_view kPrometheus = "text/plain; version=0.0.4; charset=UTF-8";

// Envoy's quantile set for /stats, in the order it prints them, with the
// percent labels spelled out (0.995 * 100 is not exactly 99.5 in binary).
constexpr double kQuantiles[] = {0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1};
constexpr double kPercents[] = {0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100};
static_assert(std::size(kQuantiles) == std::size(kPercents));

AdminResponse text(int status, std::string body) {
  return AdminResponse{status, std::string(kTextPlain), std::move(body), {}};
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

enum class StatsFormat { Text, Json, Prometheus };
enum class TypeFilter { All, Counters, Gauges, Histograms };

struct StatsParams {
  StatsFormat format = StatsFormat::Text;
  TypeFilter type = TypeFilter::All;
  bool used_only = false;
  std::unique_ptr<RE2> filter;
};

// Parses /stats parameters; on a bad one returns the 400 to send.
std::optional<AdminResponse> parseStatsParams(std::string_view query, StatsParams& params) {
  for (const auto& [key, value] : parseQuery(query)) {
    if (key == "filter") {
      if (value.empty()) continue;  // Envoy treats an empty filter as none
      auto re = std::make_unique<RE2>(value, RE2::Quiet);
      if (!re->ok()) {
        return text(400, fmt::format("Invalid re2 regex in filter '{}': {}\n", value, re->error()));
      }
      params.filter = std::move(re);
    } else if (key == "format") {
      if (value == "json") {
        params.format = StatsFormat::Json;
      } else if (value == "prometheus") {
        params.format = StatsFormat::Prometheus;
      } else if (value == "text" || value.empty()) {
        params.format = StatsFormat::Text;
      } else {
        return text(
            400, fmt::format("usage: format must be text, json or prometheus, not '{}'\n", value));
      }
    } else if (key == "usedonly") {
      params.used_only = true;
    } else if (key == "type") {
      if (value == "All" || value.empty()) {
        params.type = TypeFilter::All;
      } else if (value == "Counters") {
        params.type = TypeFilter::Counters;
      } else if (value == "Gauges") {
        params.type = TypeFilter::Gauges;
      } else if (value == "Histograms") {
        params.type = TypeFilter::Histograms;
      } else {
        return text(
            400, fmt::format("usage: type must be All, Counters, Gauges or Histograms, not '{}'\n",
                             value));
      }
    }
    // Unknown parameters are ignored, as Envoy does.
  }
  return std::nullopt;
}

bool used(const stats::MergedStat& s) {
  // No per-stat "used" flag exists; a stat that was never touched reads zero.
  switch (s.type) {
    case stats::StatType::Counter:
      return s.counter != 0;
    case stats::StatType::Gauge:
      return s.gauge != 0;
    case stats::StatType::Histogram:
      return s.count != 0;
  }
  return false;
}

bool typeMatches(TypeFilter f, stats::StatType t) {
  switch (f) {
    case TypeFilter::All:
      return true;
    case TypeFilter::Counters:
      return t == stats::StatType::Counter;
    case TypeFilter::Gauges:
      return t == stats::StatType::Gauge;
    case TypeFilter::Histograms:
      return t == stats::StatType::Histogram;
  }
  return false;
}

std::vector<stats::MergedStat> selectStats(const AdminSources& sources, const StatsParams& p) {
  if (sources.registry == nullptr) return {};
  // Name and type are decided per shard entry before merging: a filtered
  // scrape of 10k clusters must not merge all of their stats first.
  auto want = [&p](std::string_view name, stats::StatType type) {
    return typeMatches(p.type, type) && (!p.filter || RE2::PartialMatch(name, *p.filter));
  };
  std::vector<stats::MergedStat> out = sources.registry->collect(want);
  // In place: a second vector of every stat was ~75 MB at 10k clusters.
  if (p.used_only) std::erase_if(out, [](const stats::MergedStat& s) { return !used(s); });
  return out;
}

// Envoy's text form: "P0(interval,cumulative) P25(...) ...". Portico keeps no
// per-flush interval histograms, so the interval column is always nan, which
// is what Envoy prints for an interval without samples.
void appendHistogramSummary(std::string& out, const stats::MergedStat& s) {
  if (s.count == 0) {
    out += "No recorded values";
    return;
  }
  for (size_t i = 0; i < std::size(kQuantiles); ++i) {
    if (i != 0) out += ' ';
    fmt::format_to(std::back_inserter(out), "P{}(nan,{})", kPercents[i], s.quantile(kQuantiles[i]));
  }
}

// kind.scope.suffix, skipping empty parts, as StatName::full() without the copy.
void appendName(std::string& out, const stats::StatName& n) {
  bool first = true;
  for (const std::string* part : {&n.kind, &n.scope, &n.suffix}) {
    if (part->empty()) continue;
    if (!first) out += '.';
    out += *part;
    first = false;
  }
}

std::string renderStatsText(const std::vector<stats::MergedStat>& stats) {
  // Envoy prints counters and gauges interleaved by name, then histograms.
  // Written straight into one string (a 10k-cluster scrape is ~250k lines).
  std::string out;
  for (const auto& s : stats) {
    if (s.type == stats::StatType::Histogram) continue;
    appendName(out, s.name);
    if (s.type == stats::StatType::Counter)
      fmt::format_to(std::back_inserter(out), ": {}\n", s.counter);
    else
      fmt::format_to(std::back_inserter(out), ": {}\n", s.gauge);
  }
  for (const auto& s : stats) {
    if (s.type != stats::StatType::Histogram) continue;
    appendName(out, s.name);
    out += ": ";
    appendHistogramSummary(out, s);
    out += '\n';
  }
  return out;
}

// Envoy prints 25 rather than 25.0 and null for NaN.
nlohmann::ordered_json jsonNumber(double v) {
  if (std::isnan(v)) return nullptr;
  if (std::trunc(v) == v && std::fabs(v) < 9e15) return static_cast<int64_t>(v);
  return v;
}

std::string renderStatsJson(const std::vector<stats::MergedStat>& stats) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  nlohmann::ordered_json computed = nlohmann::ordered_json::array();
  for (const auto& s : stats) {
    switch (s.type) {
      case stats::StatType::Counter:
        list.push_back({{"name", s.name.full()}, {"value", s.counter}});
        break;
      case stats::StatType::Gauge:
        list.push_back({{"name", s.name.full()}, {"value", s.gauge}});
        break;
      case stats::StatType::Histogram: {
        nlohmann::ordered_json values = nlohmann::ordered_json::array();
        for (double q : kQuantiles) {
          values.push_back({{"cumulative", jsonNumber(s.quantile(q))}, {"interval", nullptr}});
        }
        computed.push_back({{"name", s.name.full()}, {"values", std::move(values)}});
        break;
      }
    }
  }
  if (!computed.empty()) {
    nlohmann::ordered_json supported = nlohmann::ordered_json::array();
    for (double p : kPercents) supported.push_back(jsonNumber(p));
    list.push_back({{"histograms",
                     {{"supported_quantiles", std::move(supported)},
                      {"computed_quantiles", std::move(computed)}}}});
  }
  // Key order as Envoy prints it (ordered_json keeps insertion order).
  nlohmann::ordered_json doc = {{"stats", std::move(list)}};
  // Stat names come from config (cluster and listener names); replace rather
  // than throw on bytes that are not UTF-8.
  return doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

AdminResponse statsEndpoint(std::string_view query, const AdminSources& sources,
                            bool force_prometheus) {
  StatsParams params;
  if (auto bad = parseStatsParams(query, params)) return std::move(*bad);
  if (force_prometheus) params.format = StatsFormat::Prometheus;
  const auto selected = selectStats(sources, params);
  switch (params.format) {
    case StatsFormat::Json:
      return AdminResponse{200, std::string(kJson), renderStatsJson(selected), {}};
    case StatsFormat::Prometheus:
      return AdminResponse{200, std::string(kPrometheus), stats::renderPrometheus(selected), {}};
    case StatsFormat::Text:
      break;
  }
  return text(200, renderStatsText(selected));
}

bool isReady(const AdminSources& sources) { return sources.ready && sources.ready(); }

AdminResponse fromCallback(const std::function<std::string()>& fn, std::string_view content_type,
                           std::string_view what) {
  if (!fn) return text(503, fmt::format("{} is not available yet\n", what));
  return AdminResponse{200, std::string(content_type), fn(), {}};
}

AdminResponse serverInfo(const AdminSources& sources) {
  nlohmann::json doc = {
      {"version", sources.version},
      {"state", isReady(sources) ? "LIVE" : "PRE_INITIALIZING"},
  };
  if (sources.uptime_seconds) {
    const std::string uptime = std::to_string(sources.uptime_seconds()) + "s";
    doc["uptime_current_epoch"] = uptime;
    doc["uptime_all_epochs"] = uptime;
  }
  return AdminResponse{200,
                       std::string(kJson),
                       doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                       {}};
}

constexpr std::string_view kIndex =
    "admin commands are:\n"
    "  /: this list\n"
    "  /certs: print certs on machine (the loaded ones: backend trust anchors, listener and\n"
    "      client certificates, with days until expiration; JSON)\n"
    "  /clusters: upstream cluster status\n"
    "  /config_dump: dump current configuration (JSON)\n"
    "  /ready: print server state, return 200 if LIVE, otherwise 503\n"
    "  /server_info: print server version/status information\n"
    "  /stats: print server stats\n"
    "      filter=<re2 regex>  only stats whose name matches\n"
    "      format=text|json|prometheus\n"
    "      type=All|Counters|Gauges|Histograms\n"
    "      usedonly  only stats that have been written\n"
    "  /stats/prometheus: print server stats in prometheus format\n"
    "  /status: Gateway API objects with their computed status (JSON List)\n";

AdminResponse dispatch(std::string_view path, std::string_view query, const AdminSources& sources) {
  if (path == "/" || path == "/help") return text(200, std::string(kIndex));
  if (path == "/stats") return statsEndpoint(query, sources, false);
  if (path == "/stats/prometheus") return statsEndpoint(query, sources, true);
  if (path == "/ready") {
    return isReady(sources) ? text(200, "LIVE\n") : text(503, "PRE_INITIALIZING\n");
  }
  if (path == "/server_info") return serverInfo(sources);
  if (path == "/config_dump") return fromCallback(sources.config_dump_json, kJson, "config dump");
  if (path == "/status") return fromCallback(sources.status_list_json, kJson, "status");
  if (path == "/clusters") return fromCallback(sources.clusters_text, kTextPlain, "clusters");
  if (path == "/certs") return fromCallback(sources.certs_json, kJson, "certs");
  return text(404, fmt::format("no admin endpoint at {}; see /\n", path));
}

bool knownPath(std::string_view path) {
  for (std::string_view p : {"/", "/help", "/stats", "/stats/prometheus", "/ready", "/server_info",
                             "/config_dump", "/status", "/clusters", "/certs"}) {
    if (path == p) return true;
  }
  return false;
}

}  // namespace

std::string percentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = hexValue(in[i + 1]);
      const int lo = hexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(percentDecode(part), std::string());
    } else {
      out.emplace_back(percentDecode(part.substr(0, eq)), percentDecode(part.substr(eq + 1)));
    }
  }
  return out;
}

AdminResponse handleAdmin(const AdminRequest& request, const AdminSources& sources) {
  try {
    std::string_view path = request.path;
    std::string_view query = request.query;
    if (const size_t q = path.find('?'); q != std::string_view::npos) {
      if (query.empty()) query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    if (request.method != "GET" && request.method != "HEAD") {
      if (!knownPath(path)) return text(404, fmt::format("no admin endpoint at {}; see /\n", path));
      AdminResponse r = text(405, fmt::format("method {} not allowed; use GET\n", request.method));
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    return dispatch(path, query, sources);
  } catch (const std::exception& e) {
    // A callback or allocation failed: the admin port answers, it never dies.
    return text(500, fmt::format("admin error: {}\n", e.what()));
  } catch (...) {
    return text(500, "admin error\n");
  }
}

}  // namespace portico::admin
