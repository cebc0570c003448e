#include "stats/prometheus.h"

#include <algorithm>
#include <array>
#include <charconv>
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

bool nameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) || c == '_';
}

void appendLabelValue(std::string& out, std::string_view v) {
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
}

std::string formatLabels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    for (char c : name) out += nameChar(c) ? c : '_';
    out += "=\"";
    appendLabelValue(out, value);
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

// The bucket bounds as Prometheus `le` values, formatted once: a 10k-cluster
// scrape writes ~600k bucket lines.
const std::array<std::string, Histogram::kBounds.size()>& boundTexts() {
  static const auto texts = [] {
    std::array<std::string, Histogram::kBounds.size()> t;
    for (size_t i = 0; i < t.size(); ++i) t[i] = formatDouble(Histogram::kBounds[i]);
    return t;
  }();
  return texts;
}

template <typename Int>
void appendInt(std::string& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// One series' lines, appended to `out` piece by piece (no temporaries).
void renderSeries(std::string& out, const MergedStat& s, const PrometheusName& p) {
  const std::string tags = formatLabels(p.labels);
  auto open = [&](std::string_view suffix) {
    out += p.name;
    out += suffix;
    out += '{';
  };
  switch (s.type) {
    case StatType::Counter:
      open("");
      out += tags;
      out += "} ";
      appendInt(out, s.counter);
      out += '\n';
      break;
    case StatType::Gauge:
      open("");
      out += tags;
      out += "} ";
      appendInt(out, s.gauge);
      out += '\n';
      break;
    case StatType::Histogram: {
      const auto& bounds = boundTexts();
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= bounds.size(); ++i) {
        cumulative += i < bounds.size() ? s.buckets[i] : 0;
        open("_bucket");
        out += tags;
        if (!tags.empty()) out += ',';
        out += "le=\"";
        out += i < bounds.size() ? std::string_view(bounds[i]) : std::string_view("+Inf");
        out += "\"} ";
        appendInt(out, i < bounds.size() ? cumulative : s.count);
        out += '\n';
      }
      open("_sum");
      out += tags;
      out += "} ";
      out += formatDouble(s.sum);
      out += '\n';
      open("_count");
      out += tags;
      out += "} ";
      appendInt(out, s.count);
      out += '\n';
      break;
    }
  }
}

}  // namespace

std::string sanitizePrometheusName(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (!nameChar(c)) c = '_';
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
    Series& series = family.emplace_back();
    series.stat_name = s.name.full();
    renderSeries(series.text, s, p);
  }

  static constexpr const char* kTypeNames[3] = {"counter", "gauge", "histogram"};
  static_assert(static_cast<int>(StatType::Counter) == 0 &&
                static_cast<int>(StatType::Gauge) == 1 &&
                static_cast<int>(StatType::Histogram) == 2);
  std::string out;
  for (int t = 0; t < 3; ++t) {
    for (auto& [name, series] : families[t]) {
      // collect() hands stats over sorted by name, so families fill in order:
      // checking is linear, sorting is not.
      auto by_name = [](const Series& a, const Series& b) { return a.stat_name < b.stat_name; };
      if (!std::is_sorted(series.begin(), series.end(), by_name))
        std::sort(series.begin(), series.end(), by_name);
      out += "# TYPE " + name + " " + kTypeNames[t] + "\n";
      for (const Series& s : series) out += s.text;
      out += "\n";
    }
  }
  return out;
}

}  // namespace portico::stats
