#pragma once
// Envoy's /clusters text ("<cluster>::<host>:<port>::health_flags::healthy"),
// rendered from a plain description of the clusters so the caller decides
// where hosts and their counters come from.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace portico::snapshot {
struct Snapshot;
}

namespace portico::admin {

// Per-host counters, when the caller tracks them (Envoy's names).
struct HostStats {
  uint64_t cx_active = 0;
  uint64_t cx_connect_fail = 0;
  uint64_t cx_total = 0;
  uint64_t rq_active = 0;
  uint64_t rq_error = 0;
  uint64_t rq_success = 0;
  uint64_t rq_timeout = 0;
  uint64_t rq_total = 0;
};

struct HostInfo {
  std::string address;  // IP literal, or the DNS name for ExternalName
  uint16_t port = 0;
  std::string hostname;  // DNS name when the host came from one, else ""
  bool healthy = true;
  uint32_t weight = 1;
  std::optional<HostStats> stats;  // no per-host stat lines when absent
};

struct ClusterInfo {
  std::string name;
  std::vector<HostInfo> hosts;
};

// One block per cluster, in the given order:
//   <c>::observability_name::<c>
//   <c>::added_via_api::true
//   <c>::<addr>:<port>::cx_active::0          (the 8 HostStats lines, only if stats set)
//   <c>::<addr>:<port>::hostname::<name>
//   <c>::<addr>:<port>::health_flags::healthy | /failed_eds_health
//   <c>::<addr>:<port>::weight::1
//   <c>::<addr>:<port>::region::  zone::  sub_zone::  canary::false  priority::0
//   <c>::<addr>:<port>::success_rate::-1  local_origin_success_rate::-1
std::string renderClustersText(const std::vector<ClusterInfo>& clusters);

// Hosts as the snapshot describes them: endpoints with ready=false are
// unhealthy; an ExternalName cluster shows its DNS name as one host.
std::vector<ClusterInfo> clusterInfos(const snapshot::Snapshot& snapshot);

}  // namespace portico::admin
