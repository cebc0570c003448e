#pragma once
// Test input for translate: manifests decoded, finalized and stamped by the
// real ObjectTracker at a fixed time (generation 1, creationTimestamp
// 2024-01-01T00:00:00Z unless the manifest gives them), failing the test on
// any decode error.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "k8s/decode.h"
#include "k8s/object_tracker.h"

namespace portico::testing {

inline k8s::ResourceSet loadManifests(const std::string& text, const std::string& file = "t.yaml") {
  k8s::ResourceSet set;
  k8s::decodeText(text, file, set);
  k8s::finalize(set);
  for (const auto& e : set.errors) ADD_FAILURE() << e.toString();
  k8s::ObjectTracker tracker;
  tracker.stamp(set, std::chrono::system_clock::time_point(std::chrono::seconds(1704067200)));
  return set;
}

}  // namespace portico::testing
