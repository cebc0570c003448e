#include "snapshot/match.h"

#include <re2/re2.h>

namespace portico::snapshot {
namespace {

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// `b` is lower-case already (domains are stored lower-cased by translate()).
bool iequalsLower(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(lower_b[i])) return false;
  }
  return true;
}

bool iendsWith(std::string_view s, std::string_view lower_suffix) {
  return s.size() >= lower_suffix.size() &&
         iequalsLower(s.substr(s.size() - lower_suffix.size()), lower_suffix);
}

bool pathMatches(const PathMatch& m, std::string_view path) {
  switch (m.type) {
    case PathMatch::Type::Exact:
      return path == m.value;
    case PathMatch::Type::PathPrefix: {
      // Gateway API: the prefix matches whole path elements, and a trailing
      // '/' in the prefix is ignored ("/foo/" behaves like "/foo").
      std::string_view prefix = m.value;
      while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
      if (prefix.empty()) return true;  // "/" matches everything
      if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
      return path.size() == prefix.size() || path[prefix.size()] == '/';
    }
    case PathMatch::Type::RegularExpression:
      return m.regex != nullptr && RE2::FullMatch(path, *m.regex);
  }
  return false;
}

template <typename M>
bool valueMatches(const M& m, std::string_view value) {
  if (m.type == M::Type::Exact) return value == m.value;
  // Regexes must match the whole value, as for paths (and as Envoy's
  // safe_regex does), so "^...$" anchors are never needed.
  return m.regex != nullptr && RE2::FullMatch(value, *m.regex);
}

// First occurrence of `name` in a raw query string; no percent-decoding and
// no '+' to space, so matching sees exactly the bytes the client sent.
bool findQueryParam(std::string_view query, std::string_view name, std::string_view& value) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (key == name) {
      value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

bool routeMatches(const RouteMatch& m, const MatchInput& in) {
  if (!m.method.empty() && m.method != in.method) return false;
  if (!pathMatches(m.path, in.path)) return false;
  for (size_t i = 0; i < m.headers.size(); ++i) {
    const HeaderMatch& h = m.headers[i];
    // Gateway API: only the first entry for a given name counts.
    bool duplicate = false;
    for (size_t j = 0; j < i && !duplicate; ++j) duplicate = m.headers[j].name == h.name;
    if (duplicate) continue;
    bool found = false;
    const std::string_view value =
        in.header != nullptr ? in.header(in.ctx, h.name, found) : std::string_view();
    if (!found || !valueMatches(h, value)) return false;
  }
  for (size_t i = 0; i < m.query_params.size(); ++i) {
    const QueryParamMatch& q = m.query_params[i];
    bool duplicate = false;
    for (size_t j = 0; j < i && !duplicate; ++j) duplicate = m.query_params[j].name == q.name;
    if (duplicate) continue;
    std::string_view value;
    if (!findQueryParam(in.query, q.name, value) || !valueMatches(q, value)) return false;
  }
  return true;
}

}  // namespace

const VirtualHost* selectVirtualHost(const Listener& listener, std::string_view host) {
  // A fully qualified "example.com." names the same host as "example.com".
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  const VirtualHost* wildcard = nullptr;
  size_t wildcard_len = 0;
  const VirtualHost* catch_all = nullptr;
  for (const VirtualHost& vh : listener.virtual_hosts) {
    for (const std::string& d : vh.domains) {
      const std::string_view domain = d;
      if (domain == "*") {
        if (catch_all == nullptr) catch_all = &vh;
      } else if (domain.size() > 2 && domain[0] == '*' && domain[1] == '.') {
        // "*.example.com" needs at least one label before ".example.com".
        const std::string_view suffix = domain.substr(1);
        if (host.size() > suffix.size() && suffix.size() > wildcard_len &&
            iendsWith(host, suffix)) {
          wildcard = &vh;
          wildcard_len = suffix.size();
        }
      } else if (iequalsLower(host, domain)) {
        return &vh;
      }
    }
  }
  return wildcard != nullptr ? wildcard : catch_all;
}

const Route* selectRoute(const VirtualHost& vhost, const MatchInput& input) {
  for (const Route& r : vhost.routes) {
    if (routeMatches(r.match, input)) return &r;
  }
  return nullptr;
}

const WeightedCluster* pickBackend(const Route& route, uint64_t r) {
  // Summed here rather than trusting total_weight, so a snapshot built by
  // hand (tests, future translators) cannot make the pick run off the end.
  uint64_t total = 0;
  for (const WeightedCluster& b : route.backends) total += b.weight;
  if (total == 0) return nullptr;
  uint64_t x = r % total;
  for (const WeightedCluster& b : route.backends) {
    if (x < b.weight) return &b;
    x -= b.weight;
  }
  return nullptr;  // unreachable
}

}  // namespace portico::snapshot
