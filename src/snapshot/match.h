#pragma once
// Request -> VirtualHost -> Route selection on an immutable Snapshot. Pure
// functions, called on workers for every request: no allocation on the common
// path, regexes precompiled by translate().
#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot/snapshot.h"

namespace portico::snapshot {

// What matching needs to know of a request, independent of the HTTP codec.
struct MatchInput {
  std::string_view method;
  std::string_view path;   // without query, as received (not decoded)
  std::string_view query;  // without '?'
  // Returns the first value of the header named `lower_name` (given
  // lower-case), or sets found=false.
  const void* ctx = nullptr;
  std::string_view (*header)(const void* ctx, std::string_view lower_name, bool& found) = nullptr;
};

// `host` is the Host header with any ":port" removed; compared
// case-insensitively. Exact domain beats wildcard (longest suffix first)
// beats "*". Returns nullptr when nothing matches.
const VirtualHost* selectVirtualHost(const Listener& listener, std::string_view host);

// The HTTPS listener (or certificate) a server name selects among
// `hostnames` (lower-cased; exact names, "*.suffix" wildcards, "*" or "" for
// the catch-all): an exact name, then the longest matching wildcard, then the
// first catch-all. `name` may come in any case, with a trailing dot. -1: none.
int64_t selectTlsHostname(const std::vector<std::string>& hostnames, std::string_view name);

// How a certificate's DNS subjectAltName `san` (lower-cased) names the TLS
// server name `sni` (any case, a trailing dot ignored): 2 exactly, 1 through
// a wildcard standing for one label ("*.example.com", RFC 6125 §6.4.3), 0 not.
int certificateNameMatch(std::string_view san, std::string_view sni);

// HTTPS listeners sharing a port (the Listener godoc's misdirected requests,
// feature GatewayHTTPSListenerDetectMisdirectedRequests): true when `host`
// (the Host header without port) selects another Gateway listener of
// `listener.tls_listener_hostnames` than the connection's SNI `sni` did, both
// chosen as for the certificate (exact name, then the longest wildcard
// suffix, then the catch-all; an SNI none of them takes, or none, belongs to
// the first listener, whose certificate it was given). The request then
// gets 421, so the client retries on a connection made for that name. A Host
// that selects no listener is not misdirected: routing answers it (404).
bool misdirected(const Listener& listener, std::string_view sni, std::string_view host);

// An origin ("scheme://host[:port]") lower-cased, without ":443" after
// https or ":80" after http: the form Cors::allow_origins holds.
std::string normalizeCorsOrigin(std::string_view origin);

// Whether a request's Origin header is one `cors` allows (HTTPCORSFilter's
// allowOrigins). Scheme and host compare case-insensitively; a default port
// written out matches one left out. "null" or a malformed origin matches
// only "*".
bool corsOriginAllowed(const Cors& cors, std::string_view origin);

// First route (routes are stored in precedence order) whose match accepts the
// request, or nullptr.
const Route* selectRoute(const VirtualHost& vhost, const MatchInput& input);

// Weighted pick: `r` is any uniformly distributed number. nullptr if the
// route has no backend with weight > 0.
const WeightedCluster* pickBackend(const Route& route, uint64_t r);

}  // namespace portico::snapshot
