#pragma once
// Envoy's /stats/prometheus rendering: text exposition format 0.0.4 with
// Envoy's tag-extracted metric names, so dashboards and alerts written for
// Envoy (kgateway, Istio) work unchanged against Portico.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::stats {

struct StatName;
struct MergedStat;

// A stat's Prometheus identity after Envoy's tag extraction, e.g.
// cluster / kube_default_nginx_8443 / upstream_rq_200 ->
//   name "envoy_cluster_upstream_rq",
//   labels {envoy_response_code="200", envoy_cluster_name="kube_default_nginx_8443"}.
// Labels are in Envoy's output order: tags taken from the suffix first, then
// the scope's tag.
struct PrometheusName {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
};

PrometheusName prometheusName(const StatName& stat);

// Replaces every character outside [a-zA-Z0-9_] with '_' (Prometheus's rule
// for metric and label names; the "envoy_" prefix keeps the first character legal).
std::string sanitizePrometheusName(std::string_view name);

// Renders stats (as returned by Registry::collect(), possibly filtered) the
// way Envoy does: all counter families, then gauges, then histograms; each
// family is "# TYPE" + its series sorted by Envoy stat name + a blank line;
// families sorted by metric name. Histograms as cumulative _bucket{le=...},
// _sum and _count.
std::string renderPrometheus(const std::vector<MergedStat>& stats);

}  // namespace portico::stats
