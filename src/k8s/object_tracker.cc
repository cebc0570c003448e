#include "k8s/object_tracker.h"

#include "common/time.h"

#include <ctime>

namespace portico::k8s {

template <typename T>
void ObjectTracker::stampAll(std::vector<T>& objects, const std::string& now,
                             std::unordered_map<std::string, Seen>& next) {
  for (T& obj : objects) {
    std::string key = obj.kind + "/" + obj.metadata.ns + "/" + obj.metadata.name;
    auto it = seen_.find(key);
    Seen s;
    if (it == seen_.end()) {
      s.generation = 1;
      s.creation_timestamp = now;
    } else {
      s = it->second;
      if (s.spec_digest != obj.spec_digest) ++s.generation;
    }
    s.spec_digest = obj.spec_digest;
    if (obj.metadata.generation > 0) s.generation = obj.metadata.generation;
    if (!obj.metadata.creation_timestamp.empty())
      s.creation_timestamp = obj.metadata.creation_timestamp;
    obj.metadata.generation = s.generation;
    obj.metadata.creation_timestamp = s.creation_timestamp;
    next[key] = std::move(s);
  }
}

void ObjectTracker::stamp(ResourceSet& set, std::chrono::system_clock::time_point now) {
  std::string ts = common::formatRfc3339(now);
  std::unordered_map<std::string, Seen> next;
  stampAll(set.gateway_classes, ts, next);
  stampAll(set.gateways, ts, next);
  stampAll(set.http_routes, ts, next);
  stampAll(set.reference_grants, ts, next);
  stampAll(set.backend_tls_policies, ts, next);
  stampAll(set.services, ts, next);
  stampAll(set.endpoints, ts, next);
  stampAll(set.endpoint_slices, ts, next);
  stampAll(set.config_maps, ts, next);
  stampAll(set.secrets, ts, next);
  stampAll(set.namespaces, ts, next);
  seen_ = std::move(next);
}

}  // namespace portico::k8s
