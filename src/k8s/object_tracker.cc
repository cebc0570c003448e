#include "k8s/object_tracker.h"

#include <ctime>

#include "common/time.h"

namespace portico::k8s {

template <typename T>
void ObjectTracker::stampAll(std::vector<T>& objects, const std::string& now, Map& next) {
  for (T& obj : objects) {
    std::string key = obj.kind + "/" + obj.metadata.ns + "/" + obj.metadata.name;
    uint64_t digest = obj.spec_digest;
    // Moves the entry over (key and timestamp included) instead of copying it.
    auto node = seen_.extract(key);
    Seen* s = nullptr;
    if (node.empty()) {
      s = &next.try_emplace(std::move(key), Seen{digest, 1, now}).first->second;
    } else {
      if (node.mapped().spec_digest != digest) ++node.mapped().generation;
      s = &next.insert(std::move(node)).position->second;
    }
    s->spec_digest = digest;
    if (obj.metadata.generation > 0) s->generation = obj.metadata.generation;
    if (!obj.metadata.creation_timestamp.empty())
      s->creation_timestamp = obj.metadata.creation_timestamp;
    obj.metadata.generation = s->generation;
    obj.metadata.creation_timestamp = s->creation_timestamp;
  }
}

void ObjectTracker::stamp(ResourceSet& set, std::chrono::system_clock::time_point now) {
  std::string ts = common::formatRfc3339(now);
  Map next;
  next.reserve(seen_.size());
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
