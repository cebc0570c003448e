#pragma once
// JSON view of a Snapshot: served by the admin /config_dump and compared by
// the golden tests. Private key material is never printed ("[redacted]").
#include <string>

#include "snapshot/snapshot.h"

namespace portico::snapshot {

// Pretty-printed (2-space) JSON: version, listeners -> virtual hosts ->
// routes, clusters -> endpoints. Empty/default optional fields are omitted.
std::string dumpSnapshotJson(const Snapshot& snapshot);

}  // namespace portico::snapshot
