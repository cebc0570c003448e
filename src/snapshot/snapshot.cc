#include "snapshot/snapshot.h"

namespace portico::snapshot {

namespace {
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

size_t HostHash::operator()(std::string_view s) const {
  uint64_t h = 14695981039346656037ull;  // FNV-1a over the lower-cased bytes
  for (char c : s) {
    h ^= static_cast<unsigned char>(lower(c));
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

bool HostEqual::operator()(std::string_view a, std::string_view b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void Listener::indexHosts() {
  exact_hosts.clear();
  wildcard_hosts.clear();
  catch_all_host = -1;
  for (size_t i = 0; i < virtual_hosts.size(); ++i) {
    const auto at = static_cast<uint32_t>(i);
    for (const std::string& d : virtual_hosts[i].domains) {
      // emplace keeps the first: of two virtual hosts with the same name or
      // suffix, the earlier one wins, as it did when they were scanned.
      if (d == "*") {
        if (catch_all_host < 0) catch_all_host = at;
      } else if (d.size() > 2 && d[0] == '*' && d[1] == '.') {
        wildcard_hosts.emplace(d.substr(1), at);
      } else {
        exact_hosts.emplace(d, at);
      }
    }
  }
}

void Snapshot::buildIndex() {
  cluster_index.clear();
  for (size_t i = 0; i < clusters.size(); ++i) cluster_index.emplace(clusters[i].name, i);
  for (Listener& l : listeners) l.indexHosts();
}

const Cluster* Snapshot::findCluster(std::string_view name) const {
  auto it = cluster_index.find(name);
  return it == cluster_index.end() ? nullptr : &clusters[it->second];
}

}  // namespace portico::snapshot
