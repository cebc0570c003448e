#include "translate/translate.h"

#include "snapshot/match.h"
#include "translate/backend_tls.h"

#include <re2/re2.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace portico::translate {

namespace {

using k8s::kGatewayGroup;

const std::string kHttpRouteKind = "HTTPRoute";

Condition makeCondition(std::string type, bool status, std::string reason, std::string message,
                        int64_t generation, const Options& options) {
  return Condition{std::move(type),   status ? "True" : "False",
                   std::move(reason), std::move(message),
                   generation,        options.now};
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool isWildcard(const std::string& h) { return h.rfind("*.", 0) == 0; }

// The core ProtocolType values, which the spec makes case-insensitive, in
// their canonical spelling; anything else (a domain-prefixed protocol) as is.
std::string coreProtocol(const std::string& protocol) {
  std::string upper = protocol;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  for (const char* core : {"HTTP", "HTTPS", "TLS", "TCP", "UDP"})
    if (upper == core) return upper;
  return protocol;
}

// ---- indexes over the input ---------------------------------------------------

struct Index {
  explicit Index(const k8s::ResourceSet& rs) : rs(rs) {
    for (const auto& s : rs.services) services[s.key()] = &s;
    for (const auto& n : rs.namespaces) namespaces[n.metadata.name] = &n;
    for (const auto& e : rs.endpoints) endpoints[e.key()] = &e;
    for (const auto& s : rs.secrets) secrets[s.key()] = &s;
    for (const auto& c : rs.config_maps) config_maps[c.key()] = &c;
    for (const auto& s : rs.endpoint_slices) {
      auto it = s.metadata.labels.find("kubernetes.io/service-name");
      if (it != s.metadata.labels.end()) slices[s.metadata.ns + "/" + it->second].push_back(&s);
    }
  }

  // Labels of a namespace; one never declared still has the label the API
  // server always sets, so Selector on kubernetes.io/metadata.name works.
  std::map<std::string, std::string> namespaceLabels(const std::string& ns) const {
    auto it = namespaces.find(ns);
    if (it != namespaces.end()) return it->second->metadata.labels;
    return {{"kubernetes.io/metadata.name", ns}};
  }

  bool referenceAllowed(const std::string& from_group, const std::string& from_kind,
                        const std::string& from_ns, const std::string& to_group,
                        const std::string& to_kind, const std::string& to_ns,
                        const std::string& to_name) const {
    for (const auto& g : rs.reference_grants) {
      if (g.metadata.ns != to_ns) continue;
      bool from_ok = std::any_of(g.from.begin(), g.from.end(), [&](const auto& f) {
        return f.group == from_group && f.kind == from_kind && f.ns == from_ns;
      });
      bool to_ok = std::any_of(g.to.begin(), g.to.end(), [&](const auto& t) {
        return t.group == to_group && t.kind == to_kind && (!t.name || *t.name == to_name);
      });
      if (from_ok && to_ok) return true;
    }
    return false;
  }

  const k8s::ResourceSet& rs;
  std::map<std::string, const k8s::Service*> services;
  std::map<std::string, const k8s::Namespace*> namespaces;
  std::map<std::string, const k8s::Endpoints*> endpoints;
  std::map<std::string, const k8s::Secret*> secrets;
  std::map<std::string, const k8s::ConfigMap*> config_maps;
  std::map<std::string, std::vector<const k8s::EndpointSlice*>> slices;  // by ns/service
};

// ---- gateways and listeners ---------------------------------------------------

struct ListenerState {
  const k8s::Gateway* gateway = nullptr;
  const k8s::GatewayListener* spec = nullptr;
  std::string hostname;  // lower-cased; "" = any
  std::string protocol;  // a core protocol upper-cased, any other as written

  bool accepted = true;
  std::string accepted_reason = "Accepted";
  std::string accepted_message = "Listener is accepted";
  bool resolved = true;
  std::string resolved_reason = "ResolvedRefs";
  std::string resolved_message = "All references are resolved";
  bool conflicted = false;
  std::string conflicted_reason = "NoConflicts";
  std::string conflicted_message = "No conflicts";
  bool certificate_invalid = false;
  bool gateway_refused = false;  // its Gateway is not Accepted: nothing of it is served
  bool tls = false;

  std::vector<k8s::RouteGroupKind> supported_kinds;
  int32_t attached_routes = 0;
  std::vector<snapshot::CertificateKeyPair> certificates;
  std::vector<std::string> overlapping;  // HTTPS listeners on this port whose hostnames overlap
  // spec.tls.frontend for this listener's port: client certificates checked
  // against client_ca_pem (the usable CA references, concatenated).
  std::string client_ca_pem;
  std::string client_ca_sources;      // "ConfigMap ns/name, ..."
  bool client_cert_optional = false;  // AllowInsecureFallback

  bool programmed() const {
    return accepted && !conflicted && !certificate_invalid && !gateway_refused;
  }
  bool allowsKind(const std::string& group, const std::string& kind) const {
    return std::any_of(supported_kinds.begin(), supported_kinds.end(),
                       [&](const auto& k) { return k.group == group && k.kind == kind; });
  }
};

struct GatewayState {
  const k8s::Gateway* gateway = nullptr;
  std::vector<ListenerState> listeners;
  // Non-empty: why the Gateway is refused as a whole (Accepted=False with
  // reason InvalidParameters); its listeners are then never programmed.
  std::string invalid_parameters;
};

// spec.tls.frontend (GEP-91): an HTTPS listener asks for client certificates
// and checks them against the CAs of its port's perPort entry, else of the
// default. Unusable references make ResolvedRefs=False; with none usable the
// listener is not accepted (NoValidCACertificate): it is never served
// without the check it asks for.
void resolveFrontendValidation(const Index& index, const Options& options, const k8s::Gateway& gw,
                               ListenerState& ls) {
  const k8s::FrontendTlsConfig& f = *gw.frontend_tls;
  const std::optional<k8s::FrontendTlsValidation>* chosen = &f.default_validation;
  std::string where = "spec.tls.frontend.default.validation";
  for (size_t i = 0; i < f.per_port.size(); ++i) {
    if (f.per_port[i].first != ls.spec->port) continue;
    chosen = &f.per_port[i].second;
    where = "spec.tls.frontend.perPort[" + std::to_string(i) + "].tls.validation";
  }
  if (!*chosen) return;
  const k8s::FrontendTlsValidation& v = **chosen;
  ls.client_cert_optional = v.mode == "AllowInsecureFallback";
  auto problem = [&](const char* reason, std::string message) {
    if (!ls.resolved) return;  // the first problem is the one reported
    ls.resolved = false;
    ls.resolved_reason = reason;
    ls.resolved_message = std::move(message);
  };
  PemInspection held;
  auto inspect = [&](std::string_view pem) -> const PemInspection& {
    held = inspectPem(options, pem);
    return held;
  };
  for (size_t i = 0; i < v.ca_certificate_refs.size(); ++i) {
    const k8s::ObjectReference& ref = v.ca_certificate_refs[i];
    const std::string at = where + ".caCertificateRefs[" + std::to_string(i) + "]: ";
    const std::string ns = ref.ns.value_or(gw.metadata.ns);
    const std::string source = ref.kind + " " + ns + "/" + ref.name;
    if (!ref.group.empty() || (ref.kind != "ConfigMap" && ref.kind != "Secret")) {
      problem("InvalidCACertificateKind", at + "unsupported kind " +
                                              (ref.group.empty() ? "" : ref.group + "/") +
                                              ref.kind + " (ConfigMap or Secret)");
      continue;
    }
    if (ns != gw.metadata.ns && !index.referenceAllowed(kGatewayGroup, "Gateway", gw.metadata.ns,
                                                        "", ref.kind, ns, ref.name)) {
      problem("RefNotPermitted", at + source + " is not permitted by any ReferenceGrant");
      continue;
    }
    const k8s::ConfigMap* cm = nullptr;
    const k8s::Secret* secret = nullptr;
    if (ref.kind == "ConfigMap") {
      if (auto it = index.config_maps.find(ns + "/" + ref.name); it != index.config_maps.end())
        cm = it->second;
    } else if (auto it = index.secrets.find(ns + "/" + ref.name); it != index.secrets.end()) {
      secret = it->second;
    }
    const std::string* pem = nullptr;
    if (std::string why = readCaBundle(cm, secret, inspect, pem); !why.empty()) {
      problem("InvalidCACertificateRef", at + source + why);
      continue;
    }
    ls.client_ca_pem += *pem;
    if (ls.client_ca_pem.back() != '\n') ls.client_ca_pem += '\n';
    ls.client_ca_sources += (ls.client_ca_sources.empty() ? "" : ", ") + source;
  }
  if (ls.client_ca_pem.empty() && ls.accepted) {
    ls.accepted = false;
    ls.accepted_reason = "NoValidCACertificate";
    ls.accepted_message = where + " has no usable CA certificate: " + ls.resolved_message;
  }
}

void validateListener(const Index& index, const Options& options, const k8s::Gateway& gw,
                      ListenerState& ls) {
  const k8s::GatewayListener& l = *ls.spec;
  ls.hostname = l.hostname ? lower(*l.hostname) : "";
  // ProtocolType: "All Core ProtocolType values MUST be treated
  // case-insensitively" ("http" is HTTP; the API server admits either).
  ls.protocol = coreProtocol(l.protocol);
  bool http_like = ls.protocol == "HTTP" || ls.protocol == "HTTPS";
  if (!http_like) {
    ls.accepted = false;
    ls.accepted_reason = "UnsupportedProtocol";
    ls.accepted_message = "protocol " + l.protocol + " is not supported (HTTP and HTTPS are)";
  }
  // allowedRoutes.kinds: "When unspecified or empty, the kinds of Routes
  // selected are determined using the Listener protocol" (HTTPRoute here).
  if (http_like) {
    if (!l.allowed_routes.kinds || l.allowed_routes.kinds->empty()) {
      ls.supported_kinds.push_back(k8s::RouteGroupKind{kGatewayGroup, kHttpRouteKind});
    } else {
      std::vector<std::string> invalid;
      for (const auto& k : *l.allowed_routes.kinds) {
        if (k.group == kGatewayGroup && k.kind == kHttpRouteKind) {
          if (!ls.allowsKind(k.group, k.kind)) ls.supported_kinds.push_back(k);
        } else {
          invalid.push_back((k.group.empty() ? "core" : k.group) + "/" + k.kind);
        }
      }
      if (!invalid.empty()) {
        ls.resolved = false;
        ls.resolved_reason = "InvalidRouteKinds";
        std::string list;
        for (const auto& s : invalid) list += (list.empty() ? "" : ", ") + s;
        ls.resolved_message = "unsupported route kinds: " + list + " (only HTTPRoute is supported)";
      }
    }
  }
  if (ls.protocol == "HTTPS") {
    ls.tls = true;
    auto invalidCert = [&](std::string reason, std::string message) {
      if (ls.resolved) {  // the first problem is the one reported
        ls.resolved = false;
        ls.resolved_reason = std::move(reason);
        ls.resolved_message = std::move(message);
      }
      ls.certificate_invalid = true;
    };
    if (!l.tls || l.tls->certificate_refs.empty()) {
      invalidCert("InvalidCertificateRef", "an HTTPS listener needs tls.certificateRefs");
    } else if (l.tls->mode != "Terminate") {
      ls.accepted = false;
      ls.accepted_reason = "UnsupportedProtocol";
      ls.accepted_message = "tls.mode Passthrough is not supported with protocol HTTPS";
    } else {
      for (const auto& ref : l.tls->certificate_refs) {
        std::string ns = ref.ns.value_or(gw.metadata.ns);
        std::string id = ns + "/" + ref.name;
        if (!ref.group.empty() || ref.kind != "Secret") {
          invalidCert("InvalidCertificateRef",
                      "certificateRef " + id + ": unsupported " +
                          (ref.group.empty() ? "" : "group " + ref.group + " ") + "kind " +
                          ref.kind + " (only core Secret)");
          continue;
        }
        if (ns != gw.metadata.ns &&
            !index.referenceAllowed(kGatewayGroup, "Gateway", gw.metadata.ns, "", "Secret", ns,
                                    ref.name)) {
          invalidCert("RefNotPermitted",
                      "certificateRef " + id + " is not permitted by any ReferenceGrant");
          continue;
        }
        auto it = index.secrets.find(id);
        if (it == index.secrets.end()) {
          invalidCert("InvalidCertificateRef", "Secret " + id + " not found");
          continue;
        }
        const auto& data = it->second->data;
        auto crt = data.find("tls.crt");
        auto key = data.find("tls.key");
        if (crt == data.end() || key == data.end() || crt->second.empty() || key->second.empty()) {
          invalidCert("InvalidCertificateRef", "Secret " + id + " lacks tls.crt or tls.key");
          continue;
        }
        if (std::string why = checkCertificateKeyPair(options, crt->second, key->second);
            !why.empty()) {
          invalidCert("InvalidCertificateRef", "Secret " + id + ": " + why);
          continue;
        }
        ls.certificates.push_back(snapshot::CertificateKeyPair{id, crt->second, key->second});
      }
      if (gw.frontend_tls) resolveFrontendValidation(index, options, gw, ls);
    }
  }
}

// Listeners of one Gateway on the same port must agree on the protocol and
// must not repeat a hostname; every listener in a clash is Conflicted.
void findConflictsWithinGateway(GatewayState& gs) {
  for (size_t i = 0; i < gs.listeners.size(); ++i) {
    for (size_t j = 0; j < gs.listeners.size(); ++j) {
      if (i == j) continue;
      ListenerState& a = gs.listeners[i];
      const ListenerState& b = gs.listeners[j];
      if (!a.accepted || !b.accepted || a.spec->port != b.spec->port) continue;
      if (a.protocol != b.protocol) {
        a.conflicted = true;
        a.conflicted_reason = "ProtocolConflict";
        a.conflicted_message = "listener " + b.spec->name + " uses port " +
                               std::to_string(b.spec->port) + " with protocol " + b.protocol;
      } else if (a.hostname == b.hostname && !a.conflicted) {
        a.conflicted = true;
        a.conflicted_reason = "HostnameConflict";
        a.conflicted_message = "listener " + b.spec->name + " uses the same port and hostname";
      }
    }
  }
}

// ---- routes -----------------------------------------------------------------------

// Parses a Gateway API Duration ("1h", "10s", "500ms", "1m30s") into ms.
std::optional<uint64_t> parseDuration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + static_cast<uint64_t>(s[i] - '0');
      if (n > 99999) return std::nullopt;
      ++i;
    }
    if (i == start) return std::nullopt;
    if (s.compare(i, 2, "ms") == 0) {
      total += n;
      i += 2;
    } else if (s[i] == 's') {
      total += n * 1000;
      ++i;
    } else if (s[i] == 'm') {
      total += n * 60000;
      ++i;
    } else if (s[i] == 'h') {
      total += n * 3600000;
      ++i;
    } else {
      return std::nullopt;
    }
  }
  return total;
}

// Gateway API precedence between matches (ascending = higher priority).
struct MatchKey {
  int path_rank = 2;  // 0 Exact, 1 RegularExpression, 2 PathPrefix
  size_t path_length = 0;
  bool has_method = false;
  size_t headers = 0;
  size_t query_params = 0;
  std::string created;
  std::string route_key;  // namespace/name
  size_t rule = 0;
  size_t match = 0;

  bool operator<(const MatchKey& o) const {
    // Longer / more specific first, then oldest route, then name, then order.
    if (path_rank != o.path_rank) return path_rank < o.path_rank;
    if (path_length != o.path_length) return path_length > o.path_length;
    if (has_method != o.has_method) return has_method;
    if (headers != o.headers) return headers > o.headers;
    if (query_params != o.query_params) return query_params > o.query_params;
    if (created != o.created) return created < o.created;
    if (route_key != o.route_key) return route_key < o.route_key;
    return std::tie(rule, match) < std::tie(o.rule, o.match);
  }
};

struct CompiledMatch {
  snapshot::Route route;
  MatchKey key;
};

struct BackendProblem {
  std::string reason;
  std::string message;
};

// A route after validation and backend resolution; the same compiled matches
// are copied into every virtual host the route serves.
struct RouteState {
  const k8s::HttpRoute* route = nullptr;
  bool valid = true;  // false: Accepted=False with invalid_reason
  std::string invalid_reason = "UnsupportedValue";
  std::string invalid_message;
  std::vector<BackendProblem> backend_problems;
  std::vector<CompiledMatch> matches;
  RouteStatus status;
};

std::shared_ptr<const re2::RE2> compileRegex(const std::string& pattern, std::string& error) {
  RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(pattern, opts);
  if (!re->ok()) {
    error = re->error();
    return nullptr;
  }
  return re;
}

snapshot::HeaderModifier convertHeaderFilter(const k8s::HttpHeaderFilter& f) {
  snapshot::HeaderModifier m;
  m.set = f.set;
  m.add = f.add;
  m.remove = f.remove;
  return m;
}

std::optional<snapshot::PathModifier> convertPathModifier(
    const std::optional<k8s::HttpPathModifier>& p) {
  if (!p) return std::nullopt;
  snapshot::PathModifier m;
  m.type = p->type == "ReplacePrefixMatch" ? snapshot::PathModifier::Type::ReplacePrefixMatch
                                           : snapshot::PathModifier::Type::ReplaceFullPath;
  m.value = p->value;
  return m;
}

std::string clusterName(const std::string& ns, const std::string& service, int32_t port) {
  return "kube_" + ns + "_" + service + "_" + std::to_string(port);
}

// Builds the Cluster for one Service port: endpoints from EndpointSlices (and
// Endpoints), matched to the Service port by name, with the endpoint's port.
snapshot::Cluster buildCluster(const Index& index, const k8s::Service& svc,
                               const k8s::ServicePort* port, int32_t port_number) {
  snapshot::Cluster c;
  c.name = clusterName(svc.metadata.ns, svc.metadata.name, port_number);
  // The Gateway API has no load-balancing field; like other implementations
  // we take it from the Service (an annotation, since standalone mode has no
  // policy CRD for it). Anything else is round robin.
  auto lb = svc.metadata.annotations.find("portico.dev/load-balancer");
  if (lb != svc.metadata.annotations.end() && lb->second == "least-request") {
    c.lb_policy = snapshot::LbPolicy::LeastRequest;
  }
  if (svc.type == "ExternalName") {
    c.dns_name = svc.external_name;
    c.dns_port = static_cast<uint16_t>(port_number);
    return c;
  }
  std::string port_name = port ? port->name : "";
  std::set<std::pair<std::string, uint16_t>> seen;
  auto add = [&](const std::string& address, int32_t p) {
    if (seen.insert({address, static_cast<uint16_t>(p)}).second)
      c.endpoints.push_back(snapshot::Endpoint{address, static_cast<uint16_t>(p), true});
  };
  auto sit = index.slices.find(svc.key());
  if (sit != index.slices.end()) {
    for (const k8s::EndpointSlice* slice : sit->second) {
      if (slice->address_type == "FQDN") continue;  // Endpoint::address is an IP literal
      for (const auto& sp : slice->ports) {
        if (sp.name != port_name || !sp.port) continue;
        for (const auto& ep : slice->endpoints) {
          if (ep.ready && !*ep.ready) continue;
          for (const auto& a : ep.addresses) add(a, *sp.port);
        }
      }
    }
  }
  auto eit = index.endpoints.find(svc.key());
  if (eit != index.endpoints.end()) {
    for (const auto& subset : eit->second->subsets) {
      for (const auto& sp : subset.ports) {
        if (sp.name != port_name || !sp.port) continue;
        for (const auto& a : subset.addresses) add(a, *sp.port);
      }
    }
  }
  std::sort(c.endpoints.begin(), c.endpoints.end(), [](const auto& a, const auto& b) {
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  });
  return c;
}

class Translator {
 public:
  Translator(const k8s::ResourceSet& rs, const Options& options)
      : rs_(rs), options_(options), index_(rs) {}

  Result run() {
    selectClasses();
    buildGateways();
    buildRoutes();
    Result result;
    result.snapshot = buildSnapshot();
    writeGatewayStatus();
    for (auto& rs : routes_) {
      if (!rs.status.parents.empty()) status_.http_routes[rs.route->key()] = std::move(rs.status);
    }
    applyBackendTls(rs_, options_, *result.snapshot, status_);
    result.status = std::move(status_);
    return result;
  }

 private:
  // ---- classes --------------------------------------------------------------
  // GatewayClassStatus.supportedFeatures: the conformance features Portico
  // implements, each one a replayed upstream conformance test or our own
  // end-to-end test shows (test_conformance*.py, test_mirror.py,
  // test_backend_tls.py's Gateway client certificate). The spec
  // wants them sorted; conformance suites read them to pick their tests.
  static constexpr const char* kSupportedFeatures[] = {
      "BackendTLSPolicy",
      "BackendTLSPolicySANValidation",
      "Gateway",
      "GatewayAddressEmpty",
      "GatewayBackendClientCertificate",
      "GatewayFrontendClientCertificateValidation",
      "GatewayFrontendClientCertificateValidationInsecureFallback",
      "GatewayHTTPListenerIsolation",
      "GatewayHTTPSListenerDetectMisdirectedRequests",
      "GatewayPort8080",
      "HTTPRoute",
      "HTTPRoute303RedirectStatusCode",
      "HTTPRoute307RedirectStatusCode",
      "HTTPRoute308RedirectStatusCode",
      "HTTPRouteBackendProtocolWebSocket",
      "HTTPRouteBackendRequestHeaderModification",
      "HTTPRouteBackendTimeout",
      "HTTPRouteCORS",
      "HTTPRouteHostRewrite",
      "HTTPRouteMethodMatching",
      "HTTPRouteNamedRouteRule",
      "HTTPRouteParentRefPort",
      "HTTPRoutePathRedirect",
      "HTTPRoutePathRewrite",
      "HTTPRoutePortRedirect",
      "HTTPRouteQueryParamMatching",
      "HTTPRouteRequestMirror",
      "HTTPRouteRequestMultipleMirrors",
      "HTTPRouteRequestPercentageMirror",
      "HTTPRouteRequestTimeout",
      "HTTPRouteResponseHeaderModification",
      "HTTPRouteRetry",
      "HTTPRouteRetryBackendTimeout",
      "HTTPRouteRetryConnectionError",
      "HTTPRouteSchemeRedirect",
      "ReferenceGrant",
  };

  void selectClasses() {
    serve_all_ = rs_.gateway_classes.empty();
    if (serve_all_) {
      status_.notes.push_back("the input holds no GatewayClass: every Gateway is served by " +
                              options_.controller_name);
    }
    for (const auto& gc : rs_.gateway_classes) {
      if (gc.controller_name != options_.controller_name) continue;
      served_classes_.insert(gc.metadata.name);
      GatewayClassStatus st;
      st.conditions.push_back(makeCondition(
          "Accepted", true, "Accepted", "GatewayClass is accepted by " + options_.controller_name,
          gc.metadata.generation, options_));
      st.supported_features.assign(std::begin(kSupportedFeatures), std::end(kSupportedFeatures));
      status_.gateway_classes[gc.metadata.name] = std::move(st);
    }
  }

  bool served(const k8s::Gateway& gw) const {
    return serve_all_ || served_classes_.count(gw.gateway_class_name) > 0;
  }

  // ---- gateways ---------------------------------------------------------------
  void buildGateways() {
    std::vector<const k8s::Gateway*> order;
    for (const auto& gw : rs_.gateways)
      if (served(gw)) order.push_back(&gw);
    // Older Gateways win port conflicts across Gateways.
    std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
      return std::tie(a->metadata.creation_timestamp, a->metadata.ns, a->metadata.name) <
             std::tie(b->metadata.creation_timestamp, b->metadata.ns, b->metadata.name);
    });
    std::map<int32_t, std::pair<std::string, std::string>> port_owner;  // protocol, gateway
    // (port, hostname) -> (client certificate check, gateway) of HTTPS listeners
    std::map<std::pair<int32_t, std::string>, std::pair<std::string, std::string>> tls_check_owner;
    for (const k8s::Gateway* gw : order) {
      GatewayState gs;
      gs.gateway = gw;
      if (const auto& ref = gw->infrastructure_parameters_ref) {
        // GatewayInfrastructure.parametersRef: a referent that "refers to an
        // unsupported kind" SHOULD get the Gateway rejected; Portico supports
        // no parameters kind at all, so serving it would silently drop them.
        gs.invalid_parameters = "spec.infrastructure.parametersRef " +
                                (ref->group.empty() ? "" : ref->group + "/") + ref->kind + " " +
                                ref->name + ": Portico takes no parameters resource";
      }
      for (const auto& l : gw->listeners) {
        ListenerState ls;
        ls.gateway = gw;
        ls.spec = &l;
        validateListener(index_, options_, *gw, ls);
        ls.gateway_refused = !gs.invalid_parameters.empty();
        gs.listeners.push_back(std::move(ls));
      }
      findConflictsWithinGateway(gs);
      // All Gateways share the one listen address: a port keeps the protocol
      // of the oldest Gateway using it.
      for (auto& ls : gs.listeners) {
        if (!ls.programmed()) continue;
        auto [it, inserted] =
            port_owner.emplace(ls.spec->port, std::make_pair(ls.protocol, gw->key()));
        if (!inserted && it->second.first != ls.protocol) {
          ls.conflicted = true;
          ls.conflicted_reason = "ProtocolConflict";
          ls.conflicted_message = "port " + std::to_string(ls.spec->port) +
                                  " is already used with protocol " + it->second.first +
                                  " by Gateway " + it->second.second;
          continue;
        }
        // HTTPS listeners of several Gateways with one port and hostname are
        // one listener on the wire: one certificate choice, one client
        // certificate check. Another check (or none) for the same name would
        // let one Gateway's clients past the other's: the younger is refused.
        if (!ls.tls) continue;
        std::string check;
        if (!ls.client_ca_pem.empty())
          check = (ls.client_cert_optional ? "optional\n" : "required\n") + ls.client_ca_pem;
        auto [owner, first] = tls_check_owner.emplace(std::make_pair(ls.spec->port, ls.hostname),
                                                      std::make_pair(check, gw->key()));
        if (!first && owner->second.first != check) {
          ls.conflicted = true;
          ls.conflicted_reason = "HostnameConflict";
          ls.conflicted_message = "port " + std::to_string(ls.spec->port) + " hostname " +
                                  (ls.hostname.empty() ? "(any)" : ls.hostname) +
                                  " is already served by Gateway " + owner->second.second +
                                  " with another client certificate check (spec.tls.frontend)";
        }
      }
      gateways_.emplace(gw->key(), std::move(gs));
    }
    findOverlappingTls();
  }

  // ListenerConditionOverlappingTLSConfig: "Controllers MUST detect the
  // presence of overlapping hostnames" among HTTPS listeners on one port
  // (one matches *.example.com, another foo.example.com; no hostname matches
  // every name), and set the condition on all of them: with connection
  // coalescing a request can arrive over another listener's TLS session.
  // Every Gateway here shares one address, so listeners of different
  // Gateways on one port share the socket and are compared too.
  void findOverlappingTls() {
    std::map<int32_t, std::vector<ListenerState*>> by_port;
    for (auto& [key, gs] : gateways_)
      for (auto& ls : gs.listeners)
        if (ls.tls && ls.programmed()) by_port[ls.spec->port].push_back(&ls);
    auto overlap = [](const std::string& a, const std::string& b) {
      return a.empty() || b.empty() || a == b || wildcardCovers(a, b) || wildcardCovers(b, a);
    };
    for (auto& [port, listeners] : by_port)
      for (ListenerState* a : listeners)
        for (const ListenerState* b : listeners)
          if (a != b && overlap(a->hostname, b->hostname))
            a->overlapping.push_back((b->gateway == a->gateway ? "" : b->gateway->key() + "/") +
                                     b->spec->name);
  }

  // ---- routes -------------------------------------------------------------------
  void buildRoutes() {
    routes_.reserve(rs_.http_routes.size());
    for (const auto& r : rs_.http_routes) {
      RouteState st;
      st.route = &r;
      compileRoute(st);
      routes_.push_back(std::move(st));
    }
    for (auto& st : routes_) attachRoute(st);
  }

  // HTTPRouteTimeouts and HTTPRouteRetry. `request` bounds the whole
  // exchange, `backendRequest` each try to a backend. Without a retry there
  // is one try, so the shorter of the two applies; with one they are kept
  // apart. "0s" turns a timeout off (the spec's SHOULD), and neither set
  // leaves the cluster default.
  void ruleTimeoutsAndRetry(RouteState& st, const k8s::HttpRouteRule& rule, const std::string& rp,
                            snapshot::Route& out) {
    auto read = [&](const std::optional<std::string>& v, const std::string& field) {
      std::optional<uint64_t> ms;
      if (!v) return ms;
      ms = parseDuration(*v);
      if (!ms) invalid(st, rp + "." + field + ": invalid duration \"" + *v + "\"");
      return ms;
    };
    auto clamp = [](uint64_t ms) {
      return static_cast<uint32_t>(std::min<uint64_t>(ms, UINT32_MAX));
    };
    const auto request = read(rule.timeout_request, "timeouts.request");
    const auto backend = read(rule.timeout_backend_request, "timeouts.backendRequest");
    if (request && backend && *request != 0 && *backend > *request) {
      // The API server's own rule (CEL on HTTPRouteTimeouts).
      invalid(st, rp + ".timeouts.backendRequest: " + *rule.timeout_backend_request +
                      " is longer than timeouts.request " + *rule.timeout_request);
    }
    if (rule.retry) {
      snapshot::Retry retry;
      retry.codes.assign(rule.retry->codes.begin(), rule.retry->codes.end());
      if (rule.retry->attempts) retry.attempts = static_cast<uint32_t>(*rule.retry->attempts);
      if (const auto backoff = read(rule.retry->backoff, "retry.backoff"))
        retry.backoff_ms = clamp(*backoff);
      out.retry = std::move(retry);
      if (backend && *backend != 0) out.try_timeout_ms = clamp(*backend);
      // Without `request`, the tries bound the time (each by backendRequest),
      // not the cluster default, which could be shorter than one try.
      if (request)
        out.timeout_ms = clamp(*request);
      else if (out.try_timeout_ms)
        out.timeout_ms = 0;
      return;
    }
    std::optional<uint64_t> ms;
    for (const auto& t : {request, backend}) {
      if (!t) continue;
      if (!ms || *ms == 0 || (*t != 0 && *t < *ms)) ms = *t;
    }
    if (ms) out.timeout_ms = clamp(*ms);
  }

  void invalid(RouteState& st, std::string message, std::string reason = "UnsupportedValue") {
    if (st.valid) {
      st.invalid_message = std::move(message);
      st.invalid_reason = std::move(reason);
    }
    st.valid = false;
  }

  static snapshot::Cors convertCors(const k8s::HttpCorsFilter& f) {
    snapshot::Cors c;
    for (const auto& o : f.allow_origins)
      c.allow_origins.push_back(snapshot::normalizeCorsOrigin(o));
    c.allow_credentials = f.allow_credentials;
    auto joined = [](const std::vector<std::string>& items, bool drop_star) {
      std::string out;
      for (const auto& i : items) {
        if (drop_star && i == "*") continue;
        out += (out.empty() ? "" : ", ") + i;
      }
      return out;
    };
    c.allow_methods = joined(f.allow_methods, false);
    c.allow_headers = joined(f.allow_headers, false);
    // "*" exposes every header only without credentials; with them a
    // browser reads it as a header named "*", so it is left out (the
    // HTTPCORSFilter godoc: the wildcard only when allowCredentials is not true).
    c.expose_headers = joined(f.expose_headers, f.allow_credentials);
    c.max_age = static_cast<uint32_t>(f.max_age);
    return c;
  }

  void compileRoute(RouteState& st) {
    const k8s::HttpRoute& r = *st.route;
    std::vector<k8s::HttpRouteRule> rules = r.rules;
    if (rules.empty()) rules.emplace_back();  // no rules: one default rule
    for (size_t i = 0; i < rules.size(); ++i) {
      const auto& rule = rules[i];
      std::string rp = "spec.rules[" + std::to_string(i) + "]";
      snapshot::Route base;
      bool has_redirect = false;
      for (size_t f = 0; f < rule.filters.size(); ++f) {
        const auto& filter = rule.filters[f];
        std::string fp = rp + ".filters[" + std::to_string(f) + "]";
        if (filter.request_header_modifier)
          base.request_header_modifier = convertHeaderFilter(*filter.request_header_modifier);
        else if (filter.response_header_modifier)
          base.response_header_modifier = convertHeaderFilter(*filter.response_header_modifier);
        else if (filter.request_redirect) {
          const auto& rr = *filter.request_redirect;
          snapshot::RequestRedirect red;
          red.scheme = rr.scheme;
          red.hostname = rr.hostname;
          red.path = convertPathModifier(rr.path);
          if (rr.port) red.port = static_cast<uint16_t>(*rr.port);
          red.status_code = rr.status_code;
          base.redirect = std::move(red);
          has_redirect = true;
        } else if (filter.url_rewrite) {
          snapshot::UrlRewrite rw;
          rw.hostname = filter.url_rewrite->hostname;
          rw.path = convertPathModifier(filter.url_rewrite->path);
          base.rewrite = std::move(rw);
        } else if (filter.cors) {
          base.cors = convertCors(*filter.cors);
        } else if (filter.request_mirror) {
          // An unusable mirror is reported (ResolvedRefs=False) and left out;
          // the requests themselves are still served.
          const auto& rm = *filter.request_mirror;
          std::string cluster =
              resolveServiceRef(st, rm.backend, fp + ".requestMirror.backendRef", true);
          if (!cluster.empty() && rm.numerator > 0)
            base.mirrors.push_back(snapshot::Mirror{std::move(cluster),
                                                    static_cast<uint32_t>(rm.numerator),
                                                    static_cast<uint32_t>(rm.denominator)});
        } else {
          invalid(st, fp + ".type: filter " + filter.type + " is not supported");
        }
      }
      if (base.redirect && base.rewrite)
        invalid(st, rp + ".filters: RequestRedirect and URLRewrite cannot be combined",
                "IncompatibleFilters");  // the v1 API's reason for exactly this
      ruleTimeoutsAndRetry(st, rule, rp, base);
      resolveBackends(st, rule, i, base);
      bool any_valid = std::any_of(base.backends.begin(), base.backends.end(),
                                   [](const auto& b) { return !b.cluster.empty(); });
      if (!any_valid) {  // every request would get a 500: say so once, up front
        base.backends.clear();
        base.total_weight = 0;
      }
      if (base.backends.empty() && !has_redirect) {
        base.direct_status = 500;
        base.direct_body = rule.backend_refs.empty() ? "no backend configured for this route"
                                                     : "no valid backend for this route";
      }

      std::vector<k8s::HttpRouteMatch> matches = rule.matches;
      if (matches.empty()) matches.emplace_back();
      for (size_t j = 0; j < matches.size(); ++j) {
        const auto& m = matches[j];
        std::string mp = rp + ".matches[" + std::to_string(j) + "]";
        CompiledMatch cm;
        cm.route = base;
        cm.route.name = r.key() + "/rule/" + std::to_string(i) + "/match/" + std::to_string(j);
        snapshot::RouteMatch& sm = cm.route.match;
        k8s::HttpPathMatch path = m.path.value_or(k8s::HttpPathMatch{});
        sm.path.value = path.value;
        if (path.type == "Exact") {
          sm.path.type = snapshot::PathMatch::Type::Exact;
          cm.key.path_rank = 0;
        } else if (path.type == "RegularExpression") {
          sm.path.type = snapshot::PathMatch::Type::RegularExpression;
          cm.key.path_rank = 1;
          std::string err;
          sm.path.regex = compileRegex(path.value, err);
          if (!sm.path.regex) invalid(st, mp + ".path.value: invalid regular expression: " + err);
        } else {
          sm.path.type = snapshot::PathMatch::Type::PathPrefix;
          cm.key.path_rank = 2;
        }
        if (base.redirect && base.redirect->path &&
            base.redirect->path->type == snapshot::PathModifier::Type::ReplacePrefixMatch &&
            path.type != "PathPrefix")
          invalid(st, mp + ".path.type: ReplacePrefixMatch needs a PathPrefix match");
        if (base.rewrite && base.rewrite->path &&
            base.rewrite->path->type == snapshot::PathModifier::Type::ReplacePrefixMatch &&
            path.type != "PathPrefix")
          invalid(st, mp + ".path.type: ReplacePrefixMatch needs a PathPrefix match");
        cm.key.path_length = path.value.size();
        for (size_t h = 0; h < m.headers.size(); ++h) {
          const auto& hm = m.headers[h];
          snapshot::HeaderMatch out;
          out.name = lower(hm.name);
          out.value = hm.value;
          if (hm.type == "RegularExpression") {
            out.type = snapshot::HeaderMatch::Type::RegularExpression;
            std::string err;
            out.regex = compileRegex(hm.value, err);
            if (!out.regex)
              invalid(st, mp + ".headers[" + std::to_string(h) +
                              "].value: invalid regular expression: " + err);
          }
          sm.headers.push_back(std::move(out));
        }
        for (size_t q = 0; q < m.query_params.size(); ++q) {
          const auto& qm = m.query_params[q];
          snapshot::QueryParamMatch out;
          out.name = qm.name;
          out.value = qm.value;
          if (qm.type == "RegularExpression") {
            out.type = snapshot::QueryParamMatch::Type::RegularExpression;
            std::string err;
            out.regex = compileRegex(qm.value, err);
            if (!out.regex)
              invalid(st, mp + ".queryParams[" + std::to_string(q) +
                              "].value: invalid regular expression: " + err);
          }
          sm.query_params.push_back(std::move(out));
        }
        sm.method = m.method.value_or("");
        cm.key.has_method = m.method.has_value();
        cm.key.headers = m.headers.size();
        cm.key.query_params = m.query_params.size();
        cm.key.created = r.metadata.creation_timestamp;
        cm.key.route_key = r.key();
        cm.key.rule = i;
        cm.key.match = j;
        st.matches.push_back(std::move(cm));
      }
    }
  }

  void resolveBackends(RouteState& st, const k8s::HttpRouteRule& rule, size_t rule_index,
                       snapshot::Route& out) {
    for (size_t b = 0; b < rule.backend_refs.size(); ++b) {
      const auto& ref = rule.backend_refs[b];
      std::string where =
          "spec.rules[" + std::to_string(rule_index) + "].backendRefs[" + std::to_string(b) + "]";
      // HTTPBackendRef.filters: the header modifiers (the Extended
      // HTTPRouteBackendRequestHeaderModification) apply to this backend's
      // requests only; any other filter here is refused with the route.
      snapshot::WeightedCluster wc;
      for (size_t f = 0; f < ref.filters.size(); ++f) {
        const auto& filter = ref.filters[f];
        if (filter.request_header_modifier)
          wc.request_header_modifier = convertHeaderFilter(*filter.request_header_modifier);
        else if (filter.response_header_modifier)
          wc.response_header_modifier = convertHeaderFilter(*filter.response_header_modifier);
        else
          invalid(st, where + ".filters[" + std::to_string(f) + "].type: filter " + filter.type +
                          " is not supported on a backendRef");
      }
      if (ref.weight == 0) {  // takes no traffic, but a bad reference is still reported
        resolveServiceRef(st, ref, where, false);
        continue;
      }
      // An invalid reference keeps its weight as an entry without a cluster:
      // the spec answers the requests that would have gone to it with a 500
      // rather than handing its share to the valid ones.
      wc.cluster = resolveServiceRef(st, ref, where, true);
      wc.weight = static_cast<uint32_t>(ref.weight);
      out.backends.push_back(std::move(wc));
      out.total_weight += static_cast<uint64_t>(ref.weight);
    }
  }

  // The cluster name of one reference to a Service port (the cluster is
  // built on first use when `build`), or "" after recording in the route's
  // ResolvedRefs why it can't be used.
  std::string resolveServiceRef(RouteState& st, const k8s::BackendObjectRef& ref,
                                const std::string& where, bool build) {
    const k8s::HttpRoute& r = *st.route;
    std::string ns = ref.ns.value_or(r.metadata.ns);
    std::string id = ns + "/" + ref.name;
    auto problem = [&](std::string reason, std::string message) {
      st.backend_problems.push_back(BackendProblem{std::move(reason), where + ": " + message});
      return std::string();
    };
    if (!ref.group.empty() || ref.kind != "Service") {
      return problem("InvalidKind", "unsupported backend kind " +
                                        (ref.group.empty() ? std::string() : ref.group + "/") +
                                        ref.kind + " (only core Service is supported)");
    }
    if (ns != r.metadata.ns &&
        !index_.referenceAllowed(kGatewayGroup, kHttpRouteKind, r.metadata.ns, "", "Service", ns,
                                 ref.name)) {
      return problem("RefNotPermitted",
                     "Service " + id + " is in another namespace and no ReferenceGrant allows it");
    }
    auto sit = index_.services.find(id);
    if (sit == index_.services.end())
      return problem("BackendNotFound", "Service " + id + " not found");
    const k8s::Service& svc = *sit->second;
    int32_t port = ref.port.value_or(0);
    const k8s::ServicePort* sp = nullptr;
    for (const auto& p : svc.ports)
      if (p.port == port) sp = &p;
    if (!sp && !(svc.type == "ExternalName" && port > 0))
      return problem("BackendNotFound", "Service " + id + " has no port " + std::to_string(port));
    // kubernetes.io/h2c asks for HTTP/2 without TLS, which Portico does not
    // speak to backends: the spec's UnsupportedProtocol, not HTTP/1.1 sent to
    // a server that may only answer HTTP/2. kubernetes.io/ws needs nothing
    // more than the Upgrade Portico carries anyway.
    if (sp && sp->app_protocol && *sp->app_protocol == "kubernetes.io/h2c")
      return problem("UnsupportedProtocol", "Service " + id + " port " + std::to_string(port) +
                                                " has appProtocol kubernetes.io/h2c; Portico "
                                                "speaks HTTP/1.1 to backends");
    std::string name = clusterName(ns, ref.name, port);
    if (build && !clusters_.count(name))
      clusters_.emplace(name, buildCluster(index_, svc, sp, port));
    return name;
  }

  // One attachment: a route reaching a listener with the hostnames it serves there.
  struct Attachment {
    RouteState* route = nullptr;
    ListenerState* listener = nullptr;
    std::vector<std::string> hostnames;
    // Per hostname: the most specific route hostname it came from ("*" for a
    // route without hostnames), to order routes with the same intersection.
    std::vector<std::string> originals;
  };

  // The most specific of the route's own hostnames that yields `host` when
  // intersected with a listener hostname.
  static std::string originalHostname(const std::vector<std::string>& route_hosts,
                                      const std::string& host) {
    std::string best = "*";
    for (const auto& h : route_hosts) {
      if ((h == host || wildcardCovers(h, host)) && moreSpecific(h, best)) best = h;
    }
    return best;
  }

  void attachRoute(RouteState& st) {
    const k8s::HttpRoute& r = *st.route;
    std::vector<std::string> route_hosts;
    for (const auto& h : r.hostnames) route_hosts.push_back(lower(h));
    std::vector<const ListenerState*> counted;  // listeners whose attachedRoutes has this route
    for (const auto& pref : r.parent_refs) {
      if (pref.group != kGatewayGroup || pref.kind != "Gateway") continue;  // not ours
      std::string gw_ns = pref.ns.value_or(r.metadata.ns);
      std::string gw_key = gw_ns + "/" + pref.name;
      RouteParentStatus ps;
      ps.parent_ref = pref;
      ps.parent_ref.ns = gw_ns;
      ps.controller_name = options_.controller_name;
      int64_t gen = r.metadata.generation;
      auto accepted = [&](bool ok, std::string reason, std::string message) {
        ps.conditions.push_back(
            makeCondition("Accepted", ok, std::move(reason), std::move(message), gen, options_));
      };

      auto git = gateways_.find(gw_key);
      if (git == gateways_.end()) {
        bool exists = std::any_of(rs_.gateways.begin(), rs_.gateways.end(),
                                  [&](const auto& g) { return g.key() == gw_key; });
        if (exists) continue;  // another controller's Gateway: not ours to report on
        accepted(false, "NoMatchingParent", "Gateway " + gw_key + " not found");
      } else {
        GatewayState& gs = git->second;
        std::vector<ListenerState*> candidates;
        for (auto& ls : gs.listeners) {
          if (pref.section_name && ls.spec->name != *pref.section_name) continue;
          if (pref.port && ls.spec->port != *pref.port) continue;
          candidates.push_back(&ls);
        }
        std::vector<ListenerState*> allowed;
        std::vector<ListenerState*> selected;  // allowedRoutes and hostname select the route
        std::vector<Attachment> attachments;
        for (ListenerState* ls : candidates) {
          if (!ls->allowsKind(kGatewayGroup, kHttpRouteKind)) continue;
          if (!namespaceAllowed(*ls, r.metadata.ns)) continue;
          auto hosts = intersectHostnames(ls->hostname, route_hosts);
          if (!hosts.empty()) selected.push_back(ls);
          if (!ls->programmed()) continue;  // selects the route, but serves nothing
          allowed.push_back(ls);
          if (hosts.empty()) continue;
          std::vector<std::string> originals;
          for (const auto& h : hosts) originals.push_back(originalHostname(route_hosts, h));
          attachments.push_back(Attachment{&st, ls, std::move(hosts), std::move(originals)});
        }
        if (candidates.empty()) {
          std::string what = pref.section_name ? "no listener named " + *pref.section_name : "";
          if (pref.port)
            what += (what.empty() ? "no listener" : "") + std::string(" on port ") +
                    std::to_string(*pref.port);
          accepted(false, "NoMatchingParent", "Gateway " + gw_key + " has " + what);
        } else if (!gs.invalid_parameters.empty()) {
          // The spec has no reason for a parent that is refused as a whole;
          // none of its listeners takes the route, and the message says why.
          accepted(false, "NotAllowedByListeners",
                   "Gateway " + gw_key + " is not accepted: " + gs.invalid_parameters);
        } else if (allowed.empty()) {
          accepted(false, "NotAllowedByListeners",
                   "no listener of Gateway " + gw_key + " allows this route (namespace " +
                       r.metadata.ns + ", kind HTTPRoute)");
        } else if (attachments.empty()) {
          accepted(false, "NoMatchingListenerHostname",
                   "no route hostname intersects a listener hostname of Gateway " + gw_key);
        } else if (!st.valid) {
          accepted(false, st.invalid_reason, st.invalid_message);
        } else {
          accepted(true, "Accepted", "Route is accepted");
          for (auto& a : attachments) attachments_.push_back(std::move(a));
          // ListenerStatus.attachedRoutes counts the routes a listener's
          // allowedRoutes and a parentRef select, whatever the listener's
          // own status, but only those Accepted=True: "Routes with any other
          // value for the Accepted condition MUST NOT be included" (the
          // godoc since gateway-api #4341). Once per listener, however many
          // parentRefs select it.
          for (ListenerState* ls : selected) {
            if (std::find(counted.begin(), counted.end(), ls) != counted.end()) continue;
            counted.push_back(ls);
            ++ls->attached_routes;
          }
        }
      }
      if (st.backend_problems.empty()) {
        ps.conditions.push_back(makeCondition("ResolvedRefs", true, "ResolvedRefs",
                                              "All references are resolved", gen, options_));
      } else {
        std::string message;
        for (const auto& p : st.backend_problems)
          message += (message.empty() ? "" : "; ") + p.message;
        ps.conditions.push_back(makeCondition(
            "ResolvedRefs", false, st.backend_problems.front().reason, message, gen, options_));
      }
      st.status.parents.push_back(std::move(ps));
    }
  }

  bool namespaceAllowed(const ListenerState& ls, const std::string& route_ns) const {
    const auto& ar = ls.spec->allowed_routes;
    if (ar.from == "All") return true;
    if (ar.from == "Same") return route_ns == ls.gateway->metadata.ns;
    if (ar.from == "Selector" && ar.selector)
      return k8s::selectorMatches(*ar.selector, index_.namespaceLabels(route_ns));
    return false;
  }

  // ---- snapshot ---------------------------------------------------------------------
  std::shared_ptr<snapshot::Snapshot> buildSnapshot() {
    auto snap = std::make_shared<snapshot::Snapshot>();
    snap->version = options_.version;
    // Listeners by port; every programmed listener gets one even with no routes.
    std::map<int32_t, std::vector<ListenerState*>> by_port;
    for (auto& [key, gs] : gateways_)
      for (auto& ls : gs.listeners)
        if (ls.programmed()) by_port[ls.spec->port].push_back(&ls);

    for (auto& [port, listeners] : by_port) {
      snapshot::Listener out;
      out.address = options_.listen_address;
      out.port = static_cast<uint16_t>(port);
      out.name = options_.listen_address + "_" + std::to_string(port);
      out.stat_prefix = out.name;
      out.gateway = listeners.front()->gateway->key();  // one Gateway per port

      std::set<std::string> listener_hosts;
      for (ListenerState* ls : listeners)
        listener_hosts.insert(ls->hostname.empty() ? "*" : ls->hostname);
      std::set<std::string> domains = listener_hosts;
      std::vector<const Attachment*> here;
      for (const auto& a : attachments_) {
        if (a.listener->spec->port != port) continue;
        here.push_back(&a);
        for (const auto& h : a.hostnames) domains.insert(h);
      }
      // Which attachments can serve a domain: those naming it exactly, plus
      // every one with a wildcard hostname. Indexed so 10k routes don't cost
      // 10k x 10k comparisons.
      std::unordered_map<std::string, std::vector<const Attachment*>> by_exact;
      std::vector<const Attachment*> wildcards;
      for (const Attachment* a : here) {
        bool wild = false;
        for (const auto& h : a->hostnames) {
          if (h == "*" || isWildcard(h)) {
            wild = true;
          } else {
            auto& v = by_exact[h];
            if (v.empty() || v.back() != a) v.push_back(a);
          }
        }
        if (wild) wildcards.push_back(a);
      }
      for (const auto& domain : domains) {
        std::string selected = selectListenerHostname(listener_hosts, domain);
        std::vector<const Attachment*> candidates = wildcards;
        if (auto it = by_exact.find(domain); it != by_exact.end()) {
          for (const Attachment* a : it->second) {
            if (std::find(wildcards.begin(), wildcards.end(), a) == wildcards.end())
              candidates.push_back(a);
          }
        }
        struct Entry {
          size_t exact_len;
          size_t len;
          size_t original_exact_len;
          size_t original_len;
          const CompiledMatch* match;
        };
        std::vector<Entry> entries;
        for (const Attachment* a : candidates) {
          std::string lh = a->listener->hostname.empty() ? "*" : a->listener->hostname;
          if (lh != selected) continue;
          // The most specific of the route's hostnames covering this domain.
          std::optional<size_t> best;
          for (size_t i = 0; i < a->hostnames.size(); ++i) {
            const std::string& h = a->hostnames[i];
            if (!(h == domain || h == "*" || (isWildcard(h) && wildcardCovers(h, domain))))
              continue;
            if (!best || moreSpecific(h, a->hostnames[*best])) best = i;
          }
          if (!best) continue;
          auto exactLen = [](const std::string& h) {
            return (isWildcard(h) || h == "*") ? 0 : h.size();
          };
          auto len = [](const std::string& h) { return h == "*" ? 0 : h.size(); };
          const std::string& host = a->hostnames[*best];
          const std::string& original = a->originals[*best];
          for (const auto& m : a->route->matches)
            entries.push_back(
                Entry{exactLen(host), len(host), exactLen(original), len(original), &m});
        }
        // Hostnames first (HTTPRouteSpec.hostnames): the matching one, then,
        // for the same intersection, the one the route was configured with
        // (GatewayRouteHostnameIntersectionPrecedence); then the match.
        std::stable_sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) {
          if (x.exact_len != y.exact_len) return x.exact_len > y.exact_len;
          if (x.len != y.len) return x.len > y.len;
          if (x.original_exact_len != y.original_exact_len)
            return x.original_exact_len > y.original_exact_len;
          if (x.original_len != y.original_len) return x.original_len > y.original_len;
          return x.match->key < y.match->key;
        });
        // An empty catch-all vhost shadows nothing: leave it out.
        if (entries.empty() && domain == "*") continue;
        snapshot::VirtualHost vh;
        vh.name = out.name + "/" + domain;
        vh.domains.push_back(domain);
        std::set<std::string> seen;  // a route attached through two listeners appears once
        for (const auto& e : entries)
          if (seen.insert(e.match->route.name).second) vh.routes.push_back(e.match->route);
        out.virtual_hosts.push_back(std::move(vh));
      }
      // HTTPS: certificates of every listener on this port, selected by SNI.
      for (ListenerState* ls : listeners) {
        if (!ls->tls) continue;
        if (!out.tls) out.tls.emplace();
        if (!ls->certificates.empty())
          out.tls_listener_hostnames.push_back(ls->hostname.empty() ? "*" : ls->hostname);
        for (const auto& cert : ls->certificates) {
          snapshot::DownstreamTls::Entry e{{ls->hostname.empty() ? "*" : ls->hostname}, cert};
          e.client_ca_pem = ls->client_ca_pem;
          e.client_ca_name = ls->client_ca_sources;
          e.client_cert_optional = ls->client_cert_optional;
          out.tls->certificates.push_back(std::move(e));
        }
      }
      snap->listeners.push_back(std::move(out));
    }
    // Only clusters some route in the snapshot references.
    std::set<std::string> used;
    for (const auto& l : snap->listeners)
      for (const auto& vh : l.virtual_hosts)
        for (const auto& r : vh.routes) {
          for (const auto& b : r.backends)
            if (!b.cluster.empty()) used.insert(b.cluster);
          for (const auto& m : r.mirrors) used.insert(m.cluster);
        }
    for (auto& [name, cluster] : clusters_)
      if (used.count(name)) snap->clusters.push_back(cluster);
    snap->buildIndex();
    return snap;
  }

  // a more specific than b: exact beats wildcard, then longer beats shorter.
  static bool moreSpecific(const std::string& a, const std::string& b) {
    bool ae = !isWildcard(a) && a != "*";
    bool be = !isWildcard(b) && b != "*";
    if (ae != be) return ae;
    size_t al = a == "*" ? 0 : a.size();
    size_t bl = b == "*" ? 0 : b.size();
    return al > bl;
  }

  // Requests for `domain` go to the listener with the most specific hostname
  // covering it ("*" = a listener without hostname).
  static std::string selectListenerHostname(const std::set<std::string>& listener_hosts,
                                            const std::string& domain) {
    std::string best;
    for (const auto& lh : listener_hosts) {
      if (!(lh == domain || lh == "*" || (isWildcard(lh) && wildcardCovers(lh, domain)))) continue;
      if (best.empty() || moreSpecific(lh, best)) best = lh;
    }
    return best;
  }

  // ---- gateway status -------------------------------------------------------------------
  void writeGatewayStatus() {
    for (auto& [key, gs] : gateways_) {
      const k8s::Gateway& gw = *gs.gateway;
      int64_t gen = gw.metadata.generation;
      GatewayStatus st;
      st.addresses.push_back(options_.listen_address);
      size_t programmed = 0, invalid_listeners = 0;
      for (const auto& ls : gs.listeners) {
        ListenerStatus l;
        l.name = ls.spec->name;
        l.supported_kinds = ls.supported_kinds;
        l.attached_routes = ls.attached_routes;
        if (ls.accepted && ls.conflicted) {
          // GatewaySpec.Listeners: "ALL indistinct Listeners must not be
          // accepted for processing", and their status SHOULD say they are
          // conflicted and not Accepted. Reason as upstream conformance
          // (GatewayListenerProtocolAndRouteKindConflicts) expects it.
          l.conditions.push_back(
              makeCondition("Accepted", false, "Invalid", ls.conflicted_message, gen, options_));
        } else {
          l.conditions.push_back(makeCondition("Accepted", ls.accepted, ls.accepted_reason,
                                               ls.accepted_message, gen, options_));
        }
        if (ls.programmed()) {
          ++programmed;
          l.conditions.push_back(makeCondition("Programmed", true, "Programmed",
                                               "Listener is programmed", gen, options_));
        } else {
          ++invalid_listeners;
          std::string why = ls.gateway_refused ? "Gateway is not accepted: " + gs.invalid_parameters
                            : !ls.accepted     ? ls.accepted_message
                            : ls.conflicted    ? ls.conflicted_message
                                               : ls.resolved_message;
          l.conditions.push_back(makeCondition("Programmed", false, "Invalid", why, gen, options_));
        }
        l.conditions.push_back(makeCondition("ResolvedRefs", ls.resolved, ls.resolved_reason,
                                             ls.resolved_message, gen, options_));
        l.conditions.push_back(makeCondition("Conflicted", ls.conflicted, ls.conflicted_reason,
                                             ls.conflicted_message, gen, options_));
        if (!ls.overlapping.empty()) {  // negative polarity: absent when False
          std::string names;
          for (const auto& n : ls.overlapping) names += (names.empty() ? "" : ", ") + n;
          l.conditions.push_back(
              makeCondition("OverlappingTLSConfig", true, "OverlappingHostnames",
                            "hostname overlaps with HTTPS listener(s) on the same port: " + names,
                            gen, options_));
        }
        st.listeners.push_back(std::move(l));
      }
      std::string served_note =
          serve_all_ ? " (the input holds no GatewayClass: every Gateway is served)" : "";
      if (!gs.invalid_parameters.empty()) {
        st.conditions.push_back(makeCondition("Accepted", false, "InvalidParameters",
                                              gs.invalid_parameters, gen, options_));
      } else if (invalid_listeners == 0) {
        st.conditions.push_back(makeCondition("Accepted", true, "Accepted",
                                              "Gateway is accepted" + served_note, gen, options_));
      } else {
        st.conditions.push_back(makeCondition("Accepted", programmed > 0, "ListenersNotValid",
                                              std::to_string(invalid_listeners) + " of " +
                                                  std::to_string(gs.listeners.size()) +
                                                  " listeners are not valid" + served_note,
                                              gen, options_));
      }
      if (gw.frontend_tls) {
        // GatewayConditionInsecureFrontendValidationMode: said while any
        // client certificate check of the Gateway lets a connection without
        // a valid certificate through.
        std::vector<std::string> where;
        const auto& f = *gw.frontend_tls;
        if (f.default_validation && f.default_validation->mode == "AllowInsecureFallback")
          where.push_back("default");
        for (const auto& [port, v] : f.per_port)
          if (v && v->mode == "AllowInsecureFallback")
            where.push_back("port " + std::to_string(port));
        if (!where.empty()) {
          std::string list;
          for (const auto& w : where) list += (list.empty() ? "" : ", ") + w;
          st.conditions.push_back(makeCondition(
              "InsecureFrontendValidationMode", true, "ConfigurationChanged",
              "client certificates are asked for but not required (AllowInsecureFallback): " + list,
              gen, options_));
        }
      }
      if (programmed > 0) {
        st.conditions.push_back(makeCondition("Programmed", true, "Programmed",
                                              "Gateway is programmed on " + options_.listen_address,
                                              gen, options_));
      } else {
        st.conditions.push_back(makeCondition(
            "Programmed", false, "Invalid",
            gs.invalid_parameters.empty() ? "no listener can be programmed"
                                          : "Gateway is not accepted: " + gs.invalid_parameters,
            gen, options_));
      }
      status_.gateways[key] = std::move(st);
    }
  }

  const k8s::ResourceSet& rs_;
  const Options& options_;
  Index index_;
  bool serve_all_ = false;
  std::set<std::string> served_classes_;
  std::map<std::string, GatewayState> gateways_;  // by namespace/name
  std::vector<RouteState> routes_;
  std::vector<Attachment> attachments_;
  std::map<std::string, snapshot::Cluster> clusters_;
  StatusReport status_;
};

}  // namespace

bool wildcardCovers(const std::string& pattern, const std::string& host) {
  if (!isWildcard(pattern)) return false;
  std::string_view suffix(pattern.data() + 1, pattern.size() - 1);  // ".example.com"
  if (host.size() <= suffix.size()) return false;
  if (host.compare(host.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  // "*.example.com" covers "a.example.com" and "*.a.example.com" but not "*.example.com".
  std::string_view head(host.data(), host.size() - suffix.size());
  return head != "*";
}

std::vector<std::string> intersectHostnames(const std::string& listener_hostname,
                                            const std::vector<std::string>& route_hostnames) {
  std::vector<std::string> out;
  auto add = [&](const std::string& h) {
    if (std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
  };
  if (route_hostnames.empty()) {
    add(listener_hostname.empty() ? "*" : listener_hostname);
    return out;
  }
  for (const auto& h : route_hostnames) {
    if (listener_hostname.empty() || h == listener_hostname) {
      add(h);
    } else if (wildcardCovers(listener_hostname, h)) {
      add(h);  // the route's name is the narrower one
    } else if (wildcardCovers(h, listener_hostname)) {
      add(listener_hostname);
    }
  }
  return out;
}

Result translate(const k8s::ResourceSet& resources, const Options& options) {
  try {
    return Translator(resources, options).run();
  } catch (const std::exception& e) {
    // Translation must never take the process down; an empty snapshot with a
    // note is the honest answer to a bug here.
    Result r;
    r.snapshot = std::make_shared<snapshot::Snapshot>();
    r.snapshot->version = options.version;
    r.status.notes.push_back(std::string("internal error during translation: ") + e.what());
    return r;
  }
}

}  // namespace portico::translate
