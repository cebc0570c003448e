#include "stats/prometheus.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "stats/stats.h"

namespace portico::stats {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Envoy's well-known tag names (source/common/config/well_known_names.h),
// already in their Prometheus spelling (dots -> underscores).
constexpr std::string_view kClusterNameTag = "envoy_cluster_name";
constexpr std::string_view kHttpPrefixTag = "envoy_http_conn_manager_prefix";
constexpr std::string_view kListenerAddressTag = "envoy_listener_address";
constexpr std::string_view kResponseCodeTag = "envoy_response_code";
constexpr std::string_view kResponseCodeClassTag = "envoy_response_code_class";
constexpr std::string_view kSslVersionTag = "envoy_ssl_version";
constexpr std::string_view kSslCipherTag = "envoy_ssl_cipher";
// Envoy's cluster-side cipher rule predates the envoy.* naming and was kept
// for compatibility, so cluster.<name>.ssl.ciphers.<c> carries a bare
// "cipher_suite" tag while the listener side uses envoy_ssl_cipher.
constexpr std::string_view kClusterCipherTag = "cipher_suite";
constexpr std::string_view kSslCurveTag = "envoy_ssl_curve";
constexpr std::string_view kSslSigalgTag = "envoy_ssl_sigalg";

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Response-code tags apply to any stat, as Envoy's regexes carry no prefix:
//   *_rq_<ddd>  -> *_rq   {envoy_response_code="<ddd>"}
//   *_rq_<d>xx  -> *_rq_xx {envoy_response_code_class="<d>"}
bool extractResponseCode(std::string& suffix, Labels& labels) {
  const size_t n = suffix.size();
  if (n >= 7 && suffix.compare(n - 7, 4, "_rq_") == 0) {
    const std::string_view tail(suffix.data() + n - 3, 3);
    if (isDigit(tail[0]) && isDigit(tail[1]) && isDigit(tail[2])) {
      labels.emplace_back(kResponseCodeTag, std::string(tail));
      suffix.resize(n - 4);
      return true;
    }
    if (isDigit(tail[0]) && tail[1] == 'x' && tail[2] == 'x') {
      labels.emplace_back(kResponseCodeClassTag, std::string(1, tail[0]));
      suffix.erase(n - 3, 1);
      return true;
    }
  }
  return false;
}

// TLS stats whose last segments are a value: ssl.versions.TLSv1.3 -> ssl.versions.
bool extractSsl(std::string_view kind, std::string& suffix, Labels& labels) {
  struct Rule {
    std::string_view prefix;
    std::string_view label;
  };
  const bool cluster = kind == "cluster";
  const Rule rules[] = {
      {"ssl.versions.", kSslVersionTag},
      {"ssl.ciphers.", cluster ? kClusterCipherTag : kSslCipherTag},
      {"ssl.curves.", kSslCurveTag},
      {"ssl.sigalgs.", kSslSigalgTag},
  };
  for (const Rule& r : rules) {
    if (suffix.size() > r.prefix.size() && suffix.compare(0, r.prefix.size(), r.prefix) == 0) {
      labels.emplace_back(r.label, suffix.substr(r.prefix.size()));
      suffix.resize(r.prefix.size() - 1);  // drop the trailing '.'
      return true;
    }
  }
  return false;
}

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string formatLabels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += sanitizePrometheusName(name);
    out += "=\"";
    out += escapeLabelValue(value);
    out += '"';
  }
  return out;
}

// Fixed-point where possible, up to 32 significant digits: "0.5", "3600000".
std::string formatDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.32g", v);
  return buf;
}

struct Series {
  std::string stat_name;  // Envoy name; orders the series inside a family
  std::string text;
};

std::string renderSeries(const MergedStat& s, const PrometheusName& p) {
  const std::string tags = formatLabels(p.labels);
  std::string out;
  switch (s.type) {
    case StatType::Counter:
      out = p.name + "{" + tags + "} " + std::to_string(s.counter) + "\n";
      break;
    case StatType::Gauge:
      out = p.name + "{" + tags + "} " + std::to_string(s.gauge) + "\n";
      break;
    case StatType::Histogram: {
      const std::string bucket_tags = tags.empty() ? "" : tags + ",";
      uint64_t cumulative = 0;
      for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
        cumulative += s.buckets[i];
        out += p.name + "_bucket{" + bucket_tags + "le=\"" + formatDouble(Histogram::kBounds[i]) +
               "\"} " + std::to_string(cumulative) + "\n";
      }
      out += p.name + "_bucket{" + bucket_tags + "le=\"+Inf\"} " + std::to_string(s.count) + "\n";
      out += p.name + "_sum{" + tags + "} " + formatDouble(s.sum) + "\n";
      out += p.name + "_count{" + tags + "} " + std::to_string(s.count) + "\n";
      break;
    }
  }
  return out;
}

}  // namespace

std::string sanitizePrometheusName(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '_';
    if (!ok) c = '_';
  }
  return out;
}

PrometheusName prometheusName(const StatName& stat) {
  std::string_view scope_tag;
  if (!stat.scope.empty()) {
    if (stat.kind == "cluster") scope_tag = kClusterNameTag;
    if (stat.kind == "http") scope_tag = kHttpPrefixTag;
    if (stat.kind == "listener") scope_tag = kListenerAddressTag;
  }

  Labels labels;
  std::string extracted;
  if (!scope_tag.empty()) {
    extracted = stat.suffix;
    if (!extractSsl(stat.kind, extracted, labels)) extractResponseCode(extracted, labels);
    labels.emplace_back(scope_tag, stat.scope);
    extracted = stat.kind + "." + extracted;
  } else {
    // Kinds without a tag ("server", bare names, anything new) keep their
    // whole dotted name, as Envoy does for stats no extractor matches.
    extracted = stat.full();
    extractResponseCode(extracted, labels);
  }
  return PrometheusName{"envoy_" + sanitizePrometheusName(extracted), std::move(labels)};
}

std::string renderPrometheus(const std::vector<MergedStat>& stats) {
  // type -> metric name -> series
  std::map<std::string, std::vector<Series>> families[3];
  for (const MergedStat& s : stats) {
    PrometheusName p = prometheusName(s.name);
    auto& family = families[static_cast<int>(s.type)][p.name];
    family.push_back(Series{s.name.full(), renderSeries(s, p)});
  }

  static constexpr const char* kTypeNames[3] = {"counter", "gauge", "histogram"};
  static_assert(static_cast<int>(StatType::Counter) == 0 &&
                static_cast<int>(StatType::Gauge) == 1 &&
                static_cast<int>(StatType::Histogram) == 2);
  std::string out;
  for (int t = 0; t < 3; ++t) {
    for (auto& [name, series] : families[t]) {
      std::sort(series.begin(), series.end(),
                [](const Series& a, const Series& b) { return a.stat_name < b.stat_name; });
      out += "# TYPE " + name + " " + kTypeNames[t] + "\n";
      for (const Series& s : series) out += s.text;
      out += "\n";
    }
  }
  return out;
}

}  // namespace portico::stats
