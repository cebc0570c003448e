#pragma once
// Stamps metadata the API server would have set, across reloads of the same
// configuration: generation (1, bumped whenever the spec changes) and
// creationTimestamp (first time Portico saw the object). Values given in the
// input always win. Owned by whoever reloads (one thread); not thread-safe.
#include <chrono>
#include <string>
#include <unordered_map>

#include "k8s/resources.h"

namespace portico::k8s {

class ObjectTracker final {
 public:
  // Fills in absent generation / creationTimestamp of every object in `set`.
  // Objects no longer present are forgotten (a re-added object is new again,
  // as after kubectl delete + apply).
  void stamp(ResourceSet& set, std::chrono::system_clock::time_point now);

 private:
  struct Seen {
    uint64_t spec_digest = 0;
    int64_t generation = 1;
    std::string creation_timestamp;
  };
  using Map = std::unordered_map<std::string, Seen>;  // key: kind/namespace/name
  template <typename T>
  void stampAll(std::vector<T>& objects, const std::string& now, Map& next);

  Map seen_;
};

}  // namespace portico::k8s
