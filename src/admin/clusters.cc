#include "admin/clusters.h"

#include <string_view>

#include "snapshot/snapshot.h"

namespace portico::admin {

namespace {

void line(std::string& out, std::string_view a, std::string_view b, std::string_view c) {
  out.append(a).append("::").append(b).append("::").append(c).append("\n");
}

void line(std::string& out, std::string_view a, std::string_view b, std::string_view c,
          std::string_view d) {
  out.append(a).append("::").append(b).append("::").append(c).append("::").append(d).append("\n");
}

std::string hostKey(const HostInfo& h) {
  // IPv6 literals get brackets so the port stays unambiguous, as Envoy prints them.
  if (h.address.find(':') != std::string::npos) {
    return "[" + h.address + "]:" + std::to_string(h.port);
  }
  return h.address + ":" + std::to_string(h.port);
}

}  // namespace

std::string renderClustersText(const std::vector<ClusterInfo>& clusters) {
  std::string out;
  for (const ClusterInfo& c : clusters) {
    line(out, c.name, "observability_name", c.name);
    // Every Portico cluster comes from (re)loaded config, like Envoy's CDS clusters.
    line(out, c.name, "added_via_api", "true");
    for (const HostInfo& h : c.hosts) {
      const std::string host = hostKey(h);
      if (h.stats) {
        const HostStats& s = *h.stats;
        line(out, c.name, host, "cx_active", std::to_string(s.cx_active));
        line(out, c.name, host, "cx_connect_fail", std::to_string(s.cx_connect_fail));
        line(out, c.name, host, "cx_total", std::to_string(s.cx_total));
        line(out, c.name, host, "rq_active", std::to_string(s.rq_active));
        line(out, c.name, host, "rq_error", std::to_string(s.rq_error));
        line(out, c.name, host, "rq_success", std::to_string(s.rq_success));
        line(out, c.name, host, "rq_timeout", std::to_string(s.rq_timeout));
        line(out, c.name, host, "rq_total", std::to_string(s.rq_total));
      }
      line(out, c.name, host, "hostname", h.hostname);
      line(out, c.name, host, "health_flags", h.healthy ? "healthy" : "/failed_eds_health");
      line(out, c.name, host, "weight", std::to_string(h.weight));
      line(out, c.name, host, "region", "");
      line(out, c.name, host, "zone", "");
      line(out, c.name, host, "sub_zone", "");
      line(out, c.name, host, "canary", "false");
      line(out, c.name, host, "priority", "0");
      line(out, c.name, host, "success_rate", "-1");
      line(out, c.name, host, "local_origin_success_rate", "-1");
    }
  }
  return out;
}

std::vector<ClusterInfo> clusterInfos(const snapshot::Snapshot& snapshot) {
  std::vector<ClusterInfo> out;
  out.reserve(snapshot.clusters.size());
  for (const snapshot::Cluster& c : snapshot.clusters) {
    ClusterInfo info;
    info.name = c.name;
    if (!c.dns_name.empty()) {
      info.hosts.push_back(HostInfo{c.dns_name, c.dns_port, c.dns_name, true, 1, std::nullopt});
    }
    for (const snapshot::Endpoint& e : c.endpoints) {
      info.hosts.push_back(HostInfo{e.address, e.port, "", e.ready, 1, std::nullopt});
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace portico::admin
