#pragma once
// ResourceSet -> {Snapshot, StatusReport}: where Gateway API semantics live
// (class selection, listener validation and merging, route attachment,
// hostname intersection, precedence, backend resolution, conditions).
// Pure: no I/O, no clocks; the same input always gives the same output.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "k8s/resources.h"
#include "snapshot/snapshot.h"
#include "translate/backend_tls.h"

namespace portico::translate {

struct Options {
  std::string controller_name = "portico.dev/gateway-controller";
  std::string listen_address = "0.0.0.0";  // every Gateway listener binds here
  // lastTransitionTime of every condition set by this run (RFC3339).
  std::string now = "1970-01-01T00:00:00Z";
  uint64_t version = 0;  // Snapshot::version
  // Backend TLS certificate checks, injected by the caller because OpenSSL
  // lives in tls/ (see tls/pem.h). Unset: structural PEM checks only.
  PemInspector inspect_certificates;
  KeyPairChecker check_key_pair;
  TlsSettingsChecker check_tls_settings;
};

struct Condition {
  std::string type;
  std::string status;  // "True" / "False" / "Unknown"
  std::string reason;
  std::string message;
  int64_t observed_generation = 0;
  std::string last_transition_time;
};

struct ListenerStatus {
  std::string name;
  std::vector<k8s::RouteGroupKind> supported_kinds;
  int32_t attached_routes = 0;
  std::vector<Condition> conditions;
};

struct GatewayClassStatus {
  std::vector<Condition> conditions;
  // status.supportedFeatures (conformance feature names, sorted): set on the
  // classes Portico accepts. See kSupportedFeatures in translate.cc.
  std::vector<std::string> supported_features;
};

struct GatewayStatus {
  std::vector<std::string> addresses;  // IPAddress values
  std::vector<Condition> conditions;
  std::vector<ListenerStatus> listeners;  // in spec order
};

struct RouteParentStatus {
  k8s::ParentReference parent_ref;  // namespace filled in
  std::string controller_name;
  std::vector<Condition> conditions;
};

struct RouteStatus {
  std::vector<RouteParentStatus> parents;
};

struct PolicyAncestorStatus {
  k8s::ParentReference ancestor_ref;
  std::string controller_name;
  std::vector<Condition> conditions;
};

struct PolicyStatus {
  std::vector<PolicyAncestorStatus> ancestors;
};

// Computed status of every object this controller manages. Keys:
// "<name>" for GatewayClasses, "<namespace>/<name>" otherwise. Objects that
// belong to another controller are absent.
struct StatusReport {
  std::map<std::string, GatewayClassStatus> gateway_classes;
  std::map<std::string, GatewayStatus> gateways;
  std::map<std::string, RouteStatus> http_routes;
  std::map<std::string, PolicyStatus> backend_tls_policies;  // filled by the backend TLS pass
  // Notes for people (`portico check` prints them), e.g. that every Gateway is
  // served because the input holds no GatewayClass.
  std::vector<std::string> notes;
  // Problems worth a warning that don't change the translation (e.g. an
  // expired CA certificate: the handshake will say so too).
  std::vector<std::string> warnings;
  // One line per backend cluster: which BackendTLSPolicy governs it.
  std::vector<std::string> backends;
};

struct Result {
  std::shared_ptr<snapshot::Snapshot> snapshot;  // never null
  StatusReport status;
};

Result translate(const k8s::ResourceSet& resources, const Options& options);

// Hostname helpers (exposed for tests). Hostnames are lower-case; "" for a
// listener means "any hostname".
// True when wildcard `pattern` ("*.example.com") covers `host` (an exact name
// or a narrower wildcard): at least one extra label, any depth.
bool wildcardCovers(const std::string& pattern, const std::string& host);
// The hostnames a route attached to a listener serves there (empty: none
// intersect). "*" means every hostname.
std::vector<std::string> intersectHostnames(const std::string& listener_hostname,
                                            const std::vector<std::string>& route_hostnames);

}  // namespace portico::translate
