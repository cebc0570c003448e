#include "snapshot/match.h"

#include <re2/re2.h>

#include <cctype>

namespace portico::snapshot {
namespace {

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
  const auto& vhs = listener.virtual_hosts;
  if (auto it = listener.exact_hosts.find(host); it != listener.exact_hosts.end())
    return &vhs[it->second];
  if (!listener.wildcard_hosts.empty()) {
    // "*.example.com" matches hosts ending in ".example.com" with at least
    // one label before it. The suffix starting at the first dot after a
    // label is the longest one, which wins.
    for (size_t dot = host.find('.', 1); dot != std::string_view::npos;
         dot = host.find('.', dot + 1)) {
      if (auto it = listener.wildcard_hosts.find(host.substr(dot));
          it != listener.wildcard_hosts.end())
        return &vhs[it->second];
    }
  }
  return listener.catch_all_host >= 0 ? &vhs[static_cast<size_t>(listener.catch_all_host)]
                                      : nullptr;
}

namespace {
// `any_case` equals `lower` (already lower-case) ignoring ASCII case.
bool lowerEq(std::string_view any_case, std::string_view lower) {
  if (any_case.size() != lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(any_case[i])) != lower[i]) return false;
  return true;
}
}  // namespace

int64_t selectTlsHostname(const std::vector<std::string>& hostnames, std::string_view name) {
  // The root's trailing dot ("example.com.") names the same host; SNI should
  // never carry it (RFC 6066 §3), a Host may.
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  int64_t wildcard = -1, any = -1;
  size_t wildcard_len = 0;
  for (size_t i = 0; i < hostnames.size(); ++i) {
    const std::string& h = hostnames[i];
    if (h == "*" || h.empty()) {
      if (any < 0) any = static_cast<int64_t>(i);
    } else if (h.size() > 2 && h[0] == '*' && h[1] == '.') {
      std::string_view suffix(h.data() + 1, h.size() - 1);  // ".example.com"
      if (name.size() > suffix.size() && suffix.size() > wildcard_len &&
          lowerEq(name.substr(name.size() - suffix.size()), suffix)) {
        wildcard = static_cast<int64_t>(i);
        wildcard_len = suffix.size();
      }
    } else if (lowerEq(name, h)) {
      return static_cast<int64_t>(i);
    }
  }
  return wildcard >= 0 ? wildcard : any;
}

bool misdirected(const Listener& listener, std::string_view sni, std::string_view host) {
  const auto& names = listener.tls_listener_hostnames;
  if (names.size() < 2) return false;  // one listener: nothing to tell apart
  const int64_t by_host = selectTlsHostname(names, host);
  if (by_host < 0) return false;
  // An SNI no listener takes got the first listener's certificate (src/tls
  // falls back the same way), so the connection is that listener's.
  const int64_t by_sni = selectTlsHostname(names, sni);
  return by_host != (by_sni < 0 ? 0 : by_sni);
}

int certificateNameMatch(std::string_view san, std::string_view sni) {
  if (!sni.empty() && sni.back() == '.') sni.remove_suffix(1);
  if (sni.empty()) return 0;
  if (lowerEq(sni, san)) return 2;
  const size_t dot = sni.find('.');
  if (dot == 0 || dot == std::string_view::npos || san.size() < 3 || san[0] != '*' || san[1] != '.')
    return 0;
  return lowerEq(sni.substr(dot), san.substr(1)) ? 1 : 0;
}

namespace {
// An origin split as "scheme://host[:port]"; the port is empty when it is the
// scheme's default (RFC 6454 §4: the default port is the same origin).
struct OriginParts {
  std::string_view scheme, host, port;
};

bool splitOrigin(std::string_view o, OriginParts& out) {
  const size_t sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  out.scheme = o.substr(0, sep);
  std::string_view rest = o.substr(sep + 3);
  const size_t colon = rest.rfind(':');
  const size_t bracket = rest.rfind(']');  // an IPv6 literal's colons are not a port's
  out.port = {};
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    out.port = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  out.host = rest;
  if (out.host.empty()) return false;
  if ((lowerEq(out.scheme, "https") && out.port == "443") ||
      (lowerEq(out.scheme, "http") && out.port == "80"))
    out.port = {};
  return true;
}

// `pattern` is lower-case and normalised; `o` comes from a request.
bool originMatches(std::string_view pattern, const OriginParts& o) {
  OriginParts p;
  if (!splitOrigin(pattern, p) || !lowerEq(o.scheme, p.scheme) || o.port != p.port) return false;
  if (p.host == "*") return true;
  if (p.host.size() > 2 && p.host[0] == '*' && p.host[1] == '.') {
    const std::string_view suffix = p.host.substr(1);  // ".example.com"
    return o.host.size() > suffix.size() &&
           lowerEq(o.host.substr(o.host.size() - suffix.size()), suffix);
  }
  return lowerEq(o.host, p.host);
}
}  // namespace

std::string normalizeCorsOrigin(std::string_view origin) {
  std::string out;
  OriginParts parts;
  if (!splitOrigin(origin, parts)) {
    out.assign(origin);
  } else {
    out.append(parts.scheme).append("://").append(parts.host);
    if (!parts.port.empty()) out.append(":").append(parts.port);
  }
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool corsOriginAllowed(const Cors& cors, std::string_view origin) {
  if (origin.empty()) return false;
  OriginParts o;
  const bool parsed = splitOrigin(origin, o);
  for (const std::string& pattern : cors.allow_origins) {
    if (pattern == "*") return true;
    if (parsed && originMatches(pattern, o)) return true;
  }
  return false;
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
