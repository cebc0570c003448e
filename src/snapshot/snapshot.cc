#include "snapshot/snapshot.h"

#include <cstring>

namespace portico::snapshot {

namespace {
constexpr uint64_t kOnes = 0x0101010101010101ull;

// ASCII upper-case letters of 8 bytes to lower case, other bytes as they are
// (no carry crosses a byte: each sum below stays under 0x100).
inline uint64_t lowerWord(uint64_t w) {
  const uint64_t ascii = ~w & (kOnes * 0x80);
  const uint64_t low7 = w & (kOnes * 0x7f);
  const uint64_t from_a = low7 + kOnes * (0x80 - 'A');  // 0x80 set: byte >= 'A'
  const uint64_t past_z = low7 + kOnes * (0x7f - 'Z');  // 0x80 set: byte > 'Z'
  return w | (((from_a ^ past_z) & ascii) >> 2);        // 0x80 >> 2 = the case bit
}

// Bytes i.. of s, at most 8, as a little-endian word padded with zeros.
inline uint64_t wordAt(std::string_view s, size_t i) {
  uint64_t w = 0;
  if (s.size() - i >= 8) {
    std::memcpy(&w, s.data() + i, 8);
    return w;
  }
  for (size_t k = 0; i + k < s.size(); ++k)
    w |= uint64_t{static_cast<unsigned char>(s[i + k])} << (8 * k);
  return w;
}
}  // namespace

// Host names are hashed and compared eight bytes at a time: a byte loop cost
// more than the scan of a one-host listener it replaced.
size_t HostHash::operator()(std::string_view s) const {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  for (size_t i = 0; i < s.size(); i += 8) {
    h ^= lowerWord(wordAt(s, i));
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  return static_cast<size_t>(h);
}

bool HostEqual::operator()(std::string_view a, std::string_view b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i += 8) {
    if (lowerWord(wordAt(a, i)) != lowerWord(wordAt(b, i))) return false;
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
  for (Listener& l : listeners) {
    l.indexHosts();
    for (VirtualHost& vh : l.virtual_hosts) {
      for (Route& r : vh.routes) {
        for (WeightedCluster& b : r.backends) b.cluster_hash = nameHash(b.cluster);
        for (Mirror& m : r.mirrors) m.cluster_hash = nameHash(m.cluster);
      }
    }
  }
}

const Cluster* Snapshot::findCluster(std::string_view name) const {
  auto it = cluster_index.find(name);
  return it == cluster_index.end() ? nullptr : &clusters[it->second];
}

const Cluster* Snapshot::findCluster(const HashedName& name) const {
  auto it = cluster_index.find(name);
  return it == cluster_index.end() ? nullptr : &clusters[it->second];
}

}  // namespace portico::snapshot
