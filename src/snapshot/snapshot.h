#pragma once
// The immutable routing snapshot: the one contract between the control plane
// (translate/) and the data plane (server/, proxy/, upstream/). Built once per
// config change by translate(), then shared read-only by every worker through
// shared_ptr<const Snapshot>; a request pins the snapshot it started with.
//
// Plain data only: no sockets, no OpenSSL, no asio. Compiled regexes are held
// as shared_ptr<const re2::RE2> so matching costs no compilation per request.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace re2 {
class RE2;
}

namespace portico::snapshot {

// ---- matching -------------------------------------------------------------

struct PathMatch {
  enum class Type { Exact, PathPrefix, RegularExpression };
  Type type = Type::PathPrefix;
  std::string value = "/";
  std::shared_ptr<const re2::RE2> regex;  // set iff type == RegularExpression
};

struct HeaderMatch {
  enum class Type { Exact, RegularExpression };
  Type type = Type::Exact;
  std::string name;  // lower-cased: header names are case-insensitive
  std::string value;
  std::shared_ptr<const re2::RE2> regex;
};

struct QueryParamMatch {
  enum class Type { Exact, RegularExpression };
  Type type = Type::Exact;
  std::string name;  // case-sensitive, as the spec says
  std::string value;
  std::shared_ptr<const re2::RE2> regex;
};

struct RouteMatch {
  PathMatch path;
  std::vector<HeaderMatch> headers;
  std::vector<QueryParamMatch> query_params;
  std::string method;  // empty: any method
};

// ---- filters ----------------------------------------------------------------

struct HeaderModifier {
  std::vector<std::pair<std::string, std::string>> set;  // names as given
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
};

struct PathModifier {
  enum class Type { ReplaceFullPath, ReplacePrefixMatch };
  Type type = Type::ReplaceFullPath;
  std::string value;
};

struct RequestRedirect {
  std::optional<std::string> scheme;
  std::optional<std::string> hostname;
  std::optional<PathModifier> path;
  std::optional<uint16_t> port;
  int status_code = 302;
};

struct UrlRewrite {
  std::optional<std::string> hostname;
  std::optional<PathModifier> path;
};

// ---- routes -----------------------------------------------------------------

struct WeightedCluster {
  // Cluster::name; must exist in Snapshot::clusters. Empty: an invalid
  // backendRef, whose share of the requests is answered with a 500.
  std::string cluster;
  uint32_t weight = 1;
  size_t cluster_hash = 0;  // nameHash(cluster), set by Snapshot::buildIndex()
  // The backendRef's own filters: applied only to requests (and their
  // responses) sent to this backend, after the rule's.
  std::optional<HeaderModifier> request_header_modifier;
  std::optional<HeaderModifier> response_header_modifier;
};

// RequestMirror: a copy of the request goes to `cluster` too (its answer is
// read and dropped), for numerator out of every denominator requests.
struct Mirror {
  std::string cluster;  // Cluster::name; must exist in Snapshot::clusters
  uint32_t numerator = 100;
  uint32_t denominator = 100;
  size_t cluster_hash = 0;  // nameHash(cluster), set by Snapshot::buildIndex()
};

// An HTTPRoute rule's CORS filter, as translate prepared it.
struct Cors {
  // Lower-cased, each without its scheme's default port (normalizeCorsOrigin):
  // "*" (any origin), "https://*" (any host on the default port),
  // "https://*.example.com" (one or more labels before ".example.com") or an
  // exact "http://example.com:8080".
  std::vector<std::string> allow_origins;
  bool allow_credentials = false;
  // Header values as sent, comma-separated. "*" in allow_methods or
  // allow_headers: echo what the preflight asked for, which is valid with
  // credentials too (the Fetch standard gives "*" no wildcard meaning then).
  std::string allow_methods;
  std::string allow_headers;
  std::string expose_headers;
  uint32_t max_age = 5;  // seconds
};

// An HTTPRoute rule's retry (GEP-1731): a request whose try got
// one of `codes`, a failed or reset connection, or hit Route::try_timeout_ms
// is tried again, at most `attempts` more times, each after a backoff that
// starts at `backoff_ms` and doubles (up to 10x) with jitter on top.
struct Retry {
  std::vector<int> codes;
  uint32_t attempts = 1;     // Envoy's default num_retries
  uint32_t backoff_ms = 25;  // Envoy's default base interval
};

struct Route {
  // "<namespace>/<httproute>/rule/<i>/match/<j>": names the origin in logs.
  std::string name;
  RouteMatch match;
  std::optional<HeaderModifier> request_header_modifier;
  std::optional<HeaderModifier> response_header_modifier;
  std::optional<RequestRedirect> redirect;
  std::optional<UrlRewrite> rewrite;
  std::optional<Cors> cors;
  // Weighted backends. Weight-0 entries are dropped by translate(); invalid
  // ones stay (without a cluster) next to at least one valid one. Empty with
  // direct_status == 0 means "no backend": the proxy answers 500.
  std::vector<WeightedCluster> backends;
  uint64_t total_weight = 0;
  std::vector<Mirror> mirrors;
  // Non-zero: answer this status without contacting a backend (the spec's 500
  // for a rule whose backendRefs are all invalid).
  int direct_status = 0;
  std::string direct_body;
  // The HTTPRoute rule's timeouts. timeout_ms bounds the whole exchange:
  // without a retry the shorter of request and backendRequest (one try),
  // with one `request` alone, while try_timeout_ms (backendRequest) bounds
  // each try. Unset: the cluster default; 0: none ("0s").
  std::optional<uint32_t> timeout_ms;
  std::optional<Retry> retry;
  std::optional<uint32_t> try_timeout_ms;
};

struct VirtualHost {
  std::string name;
  // Exact names ("example.com"), left-most wildcards ("*.example.com") or "*".
  // Lower-cased. Selection: exact beats wildcard beats "*"; longer wildcard
  // suffix beats shorter.
  std::vector<std::string> domains;
  std::vector<Route> routes;  // already in Gateway API precedence order
};

// ---- TLS --------------------------------------------------------------------

struct CertificateKeyPair {
  std::string name;  // "<namespace>/<secret>" for logs; never the key itself
  std::string cert_pem;
  std::string key_pem;
};

struct DownstreamTls {
  // SNI selection: each certificate with the hostnames it serves ("*" = default).
  struct Entry {
    std::vector<std::string> hostnames;
    CertificateKeyPair cert;
    // Client certificates (the Gateway's spec.tls.frontend): when
    // client_ca_pem is set, one is asked for and verified against it;
    // client_cert_optional (AllowInsecureFallback) lets a connection without
    // a valid one go on.
    std::string client_ca_pem;
    std::string client_ca_name;  // its sources, for /config_dump and logs
    bool client_cert_optional = false;
  };
  std::vector<Entry> certificates;
};

struct SanMatcher {
  enum class Type { Hostname, Uri };
  Type type = Type::Hostname;
  std::string value;
};

// What a BackendTLSPolicy asks of every connection to one cluster.
struct UpstreamTls {
  std::string policy;  // "<namespace>/<name>" of the governing BackendTLSPolicy
  std::string sni;     // validation.hostname
  std::string ca_pem;  // combined trust bundle (may hold several certificates)
  bool use_system_trust = false;
  // Empty: the certificate must carry `sni` as a DNS SAN. Otherwise it must
  // match at least one of these.
  std::vector<SanMatcher> subject_alt_names;
  std::string min_version;  // "1.2" / "1.3" / "" (library default)
  std::string max_version;
  std::string cipher_suites;  // OpenSSL syntax, "" = default
  std::string curves;
  // The policy targets this backend but cannot be honoured (invalid, no usable
  // CA): fail closed with a 5xx naming this reason. Never plaintext.
  bool fail_closed = false;
  std::string fail_reason;
  // Hash of everything above: part of the upstream pool key, so a change of
  // trust settings never reuses a connection opened under the old ones.
  uint64_t fingerprint = 0;
};

// ---- listeners and clusters ------------------------------------------------

// Cluster names are looked up twice per request (the snapshot's Cluster and
// the worker's runtime of it) by a hash computed once, when the snapshot is
// built: maps keyed by name take a HashedName as well as a string_view.
inline size_t nameHash(std::string_view s) { return std::hash<std::string_view>()(s); }
struct HashedName {
  std::string_view name;
  size_t hash;  // nameHash(name)
};
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return nameHash(s); }
  size_t operator()(const HashedName& n) const { return n.hash; }
};
struct NameEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  bool operator()(const HashedName& a, std::string_view b) const { return a.name == b; }
  bool operator()(std::string_view a, const HashedName& b) const { return a == b.name; }
};

// Case-insensitive, transparent hashing of host names (keys are stored
// lower-cased; a request's Host may come in any case).
struct HostHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const;
};
struct HostEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};

struct Listener {
  std::string name;     // "<address>_<port>", e.g. "0.0.0.0_8080"
  std::string address;  // bind address
  uint16_t port = 0;
  std::string stat_prefix;  // http.<stat_prefix>.downstream_*
  std::vector<VirtualHost> virtual_hosts;
  // Positions in virtual_hosts by exact domain, by wildcard suffix
  // (".example.com" for "*.example.com"), and of the first "*": built by
  // indexHosts() (Snapshot::buildIndex() calls it), so that selecting a
  // virtual host is a hash lookup however many hostnames a listener has
  // (a linear scan served the last of 10,000 hostnames 10x slower).
  std::unordered_map<std::string, uint32_t, HostHash, HostEqual> exact_hosts;
  std::unordered_map<std::string, uint32_t, HostHash, HostEqual> wildcard_hosts;
  int64_t catch_all_host = -1;
  void indexHosts();
  std::optional<DownstreamTls> tls;  // HTTPS listeners (all share one port)
  // The hostname of each HTTPS Gateway listener serving on this port ("*" for
  // none), lower-cased. A TLS connection belongs to the one its SNI selects;
  // a request on it whose Host selects another one gets 421 (misdirected()).
  std::vector<std::string> tls_listener_hostnames;
  std::string gateway;  // "<namespace>/<name>" owning this port
  // The Gateway's spec.tls.backend.clientCertificateRef: presented on every
  // backend TLS connection made for requests arriving here (and only here).
  std::optional<CertificateKeyPair> backend_client_certificate;
  uint64_t backend_client_fingerprint = 0;  // mixed into the upstream pool key
};

struct Endpoint {
  std::string address;  // IP literal
  uint16_t port = 0;
  bool ready = true;
};

enum class LbPolicy { RoundRobin, LeastRequest };

struct Cluster {
  std::string name;  // kube_<namespace>_<service>_<port>
  std::vector<Endpoint> endpoints;
  // ExternalName Services: resolved by DNS on the main thread.
  std::string dns_name;
  uint16_t dns_port = 0;
  LbPolicy lb_policy = LbPolicy::RoundRobin;
  uint32_t connect_timeout_ms = 5000;
  uint32_t request_timeout_ms = 15000;  // Envoy's route default
  uint32_t idle_timeout_ms = 60000;     // pooled connection idle limit
  std::optional<UpstreamTls> tls;
};

struct Snapshot {
  uint64_t version = 0;
  // The earliest notAfter (unix seconds) of the certificates this config
  // loads (trust anchors, listener and client certificates); 0: none. Set by
  // the server after translate (server/certs.h): server.days_until_first_cert_expiring.
  int64_t first_cert_expiry = 0;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  // Index by name, and each listener's host index; filled by buildIndex()
  // (translate() calls it).
  std::unordered_map<std::string, size_t, NameHash, NameEqual> cluster_index;
  void buildIndex();
  const Cluster* findCluster(std::string_view name) const;
  const Cluster* findCluster(const HashedName& name) const;
};

}  // namespace portico::snapshot
