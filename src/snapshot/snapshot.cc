#include "snapshot/snapshot.h"

namespace portico::snapshot {

void Snapshot::buildIndex() {
  cluster_index.clear();
  for (size_t i = 0; i < clusters.size(); ++i) cluster_index.emplace(clusters[i].name, i);
}

const Cluster* Snapshot::findCluster(std::string_view name) const {
  auto it = cluster_index.find(name);
  return it == cluster_index.end() ? nullptr : &clusters[it->second];
}

}  // namespace portico::snapshot
