#pragma once
// Typed Kubernetes objects as Portico understands them, and the ResourceSet
// that one load of the configuration produces. Plain data: decode.cc is the
// only place that knows about YAML/JSON, translate/ only sees these structs.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace portico::k8s {

inline constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";

struct ObjectMeta {
  std::string name;
  std::string ns = "default";  // kubectl's rule: no namespace means "default"
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  // 0 = absent in the input: ObjectTracker stamps it (1, bumped on spec change).
  int64_t generation = 0;
  // RFC3339; empty = absent in the input: ObjectTracker stamps first-seen time.
  std::string creation_timestamp;
  std::string resource_version;
  std::string uid;
};

// What every decoded object carries besides its typed fields.
struct ObjectBase {
  std::string api_version;
  std::string kind;
  ObjectMeta metadata;
  std::string file;  // where it came from, for messages
  int document = 0;  // 1-based document index in `file`
  // Hash of the canonical JSON of the spec (or data) part: ObjectTracker
  // bumps the generation when it changes. (A hash, not the text: it is
  // copied with every object on every reload.)
  uint64_t spec_digest = 0;
  // The whole object as given, so status output can echo it like kubectl.
  std::shared_ptr<const nlohmann::json> raw;

  std::string key() const { return metadata.ns + "/" + metadata.name; }
};

struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
};

struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;
};

// Does `labels` satisfy `selector`? (An empty selector matches everything.)
bool selectorMatches(const LabelSelector& selector,
                     const std::map<std::string, std::string>& labels);

// ---- Gateway API ------------------------------------------------------------

struct GatewayClass : ObjectBase {
  std::string controller_name;
  std::string description;
};

// SecretObjectReference / generic object reference with optional namespace.
struct ObjectReference {
  std::string group;  // "" = core
  std::string kind;
  std::string name;
  std::optional<std::string> ns;
};

struct RouteGroupKind {
  std::string group = kGatewayGroup;
  std::string kind;
};

struct AllowedRoutes {
  std::string from = "Same";  // Same, All, Selector
  std::optional<LabelSelector> selector;
  std::optional<std::vector<RouteGroupKind>> kinds;  // absent = protocol default
};

struct GatewayTlsConfig {
  std::string mode = "Terminate";  // Terminate, Passthrough
  std::vector<ObjectReference> certificate_refs;
  std::map<std::string, std::string> options;
};

struct GatewayListener {
  std::string name;
  std::optional<std::string> hostname;
  int32_t port = 0;
  std::string protocol;
  std::optional<GatewayTlsConfig> tls;
  AllowedRoutes allowed_routes;
};

// FrontendTLSValidation: client certificates checked against these CAs.
struct FrontendTlsValidation {
  std::vector<ObjectReference> ca_certificate_refs;  // 1..8
  std::string mode = "AllowValidOnly";               // or AllowInsecureFallback
};

// spec.tls.frontend: `default` for every HTTPS listener, unless a perPort
// entry names its port (an entry without validation turns it off there).
struct FrontendTlsConfig {
  std::optional<FrontendTlsValidation> default_validation;
  std::vector<std::pair<int32_t, std::optional<FrontendTlsValidation>>> per_port;
};

struct Gateway : ObjectBase {
  std::string gateway_class_name;
  std::vector<GatewayListener> listeners;
  // spec.tls.backend.clientCertificateRef (mTLS to backends; issue 3).
  std::optional<ObjectReference> backend_client_certificate_ref;
  std::optional<FrontendTlsConfig> frontend_tls;
  // spec.infrastructure.parametersRef: Portico reads no parameters kind, so a
  // Gateway naming one is refused (InvalidParameters).
  std::optional<ObjectReference> infrastructure_parameters_ref;
};

struct ParentReference {
  std::string group = kGatewayGroup;
  std::string kind = "Gateway";
  std::optional<std::string> ns;
  std::string name;
  std::optional<std::string> section_name;
  std::optional<int32_t> port;
};

struct HttpPathMatch {
  std::string type = "PathPrefix";  // Exact, PathPrefix, RegularExpression
  std::string value = "/";
};

struct HttpValueMatch {        // header and query parameter matches
  std::string type = "Exact";  // Exact, RegularExpression
  std::string name;
  std::string value;
};

struct HttpRouteMatch {
  std::optional<HttpPathMatch> path;  // absent = PathPrefix "/"
  std::vector<HttpValueMatch> headers;
  std::vector<HttpValueMatch> query_params;
  std::optional<std::string> method;
};

struct HttpHeaderFilter {
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
};

struct HttpPathModifier {
  std::string type;  // ReplaceFullPath, ReplacePrefixMatch
  std::string value;
};

struct HttpRequestRedirectFilter {
  std::optional<std::string> scheme;
  std::optional<std::string> hostname;
  std::optional<HttpPathModifier> path;
  std::optional<int32_t> port;
  int32_t status_code = 302;
};

struct HttpUrlRewriteFilter {
  std::optional<std::string> hostname;
  std::optional<HttpPathModifier> path;
};

// BackendObjectReference: what backendRefs and a mirror's backendRef name.
struct BackendObjectRef {
  std::string group;  // "" = core
  std::string kind = "Service";
  std::string name;
  std::optional<std::string> ns;
  std::optional<int32_t> port;
};

struct HttpRequestMirrorFilter {
  BackendObjectRef backend;
  // The share of requests mirrored, numerator / denominator (percent is
  // n / 100). Neither field set: every request.
  int32_t numerator = 100;
  int32_t denominator = 100;
};

// HTTPCORSFilter, validated as the CRD does: origins "*" or
// "http(s)://host[:port]" (host "*" or with a left-most "*."), methods from
// the enum or "*", header names as tokens.
struct HttpCorsFilter {
  std::vector<std::string> allow_origins;
  bool allow_credentials = false;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  int32_t max_age = 5;  // seconds; the CRD's default
};

struct HttpRouteFilter {
  // RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect,
  // URLRewrite, RequestMirror and CORS are decoded; other types (ExtensionRef,
  // ExternalAuth) are kept by name so translate can report them as unsupported.
  std::string type;
  std::optional<HttpHeaderFilter> request_header_modifier;
  std::optional<HttpHeaderFilter> response_header_modifier;
  std::optional<HttpRequestRedirectFilter> request_redirect;
  std::optional<HttpUrlRewriteFilter> url_rewrite;
  std::optional<HttpRequestMirrorFilter> request_mirror;
  std::optional<HttpCorsFilter> cors;
};

struct HttpBackendRef : BackendObjectRef {
  int32_t weight = 1;
  std::vector<HttpRouteFilter> filters;
};

// HTTPRouteRetry: try a backend request again on these answers (and on
// connection errors), `attempts` more times, `backoff` apart.
struct HttpRouteRetry {
  std::vector<int32_t> codes;
  std::optional<int32_t> attempts;
  std::optional<std::string> backoff;  // Gateway API Duration
};

struct HttpRouteRule {
  std::optional<std::string> name;
  std::vector<HttpRouteMatch> matches;  // empty = one default match
  std::vector<HttpRouteFilter> filters;
  std::vector<HttpBackendRef> backend_refs;
  std::optional<std::string> timeout_request;  // Gateway API Duration, e.g. "10s"
  std::optional<std::string> timeout_backend_request;
  std::optional<HttpRouteRetry> retry;
};

struct HttpRoute : ObjectBase {
  std::vector<ParentReference> parent_refs;
  std::vector<std::string> hostnames;
  std::vector<HttpRouteRule> rules;
};

struct ReferenceGrantFrom {
  std::string group;
  std::string kind;
  std::string ns;
};

struct ReferenceGrantTo {
  std::string group;
  std::string kind;
  std::optional<std::string> name;
};

struct ReferenceGrant : ObjectBase {
  std::vector<ReferenceGrantFrom> from;
  std::vector<ReferenceGrantTo> to;
};

struct PolicyTargetReference {
  std::string group;
  std::string kind;
  std::string name;
  std::optional<std::string> section_name;
};

struct SubjectAltName {
  std::string type;  // Hostname, URI
  std::string hostname;
  std::string uri;
};

struct BackendTlsValidation {
  std::string hostname;
  std::vector<ObjectReference> ca_certificate_refs;  // group, kind, name
  std::optional<std::string> well_known_ca_certificates;
  std::vector<SubjectAltName> subject_alt_names;
};

struct BackendTlsPolicy : ObjectBase {
  std::vector<PolicyTargetReference> target_refs;
  BackendTlsValidation validation;
  std::map<std::string, std::string> options;
  // Set on a policy whose manifest decode refused (ResourceSet::
  // refused_backend_tls_policies): the first error. Its targets fail closed.
  std::optional<std::string> refused;
};

// ---- core / discovery --------------------------------------------------------

struct ServicePort {
  std::string name;
  std::string protocol = "TCP";
  std::optional<std::string> app_protocol;
  int32_t port = 0;
  // IntOrString: exactly one of these is set when targetPort is given.
  std::optional<int32_t> target_port_number;
  std::optional<std::string> target_port_name;
};

struct Service : ObjectBase {
  std::string type = "ClusterIP";
  std::string cluster_ip;
  std::string external_name;
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
};

struct EndpointPort {
  std::string name;
  std::optional<int32_t> port;
  std::string protocol = "TCP";
};

struct EndpointSliceEndpoint {
  std::vector<std::string> addresses;
  std::optional<bool> ready;  // absent = ready (the API's rule)
};

struct EndpointSlice : ObjectBase {
  std::string address_type = "IPv4";  // IPv4, IPv6, FQDN
  std::vector<EndpointSliceEndpoint> endpoints;
  std::vector<EndpointPort> ports;
};

struct EndpointSubset {
  std::vector<std::string> addresses;            // ready
  std::vector<std::string> not_ready_addresses;  // never routed to
  std::vector<EndpointPort> ports;
};

struct Endpoints : ObjectBase {
  std::vector<EndpointSubset> subsets;
};

struct ConfigMap : ObjectBase {
  std::map<std::string, std::string> data;
  std::map<std::string, std::string> binary_data;  // base64-decoded
};

struct Secret : ObjectBase {
  std::string type = "Opaque";
  std::map<std::string, std::string> data;  // base64-decoded, stringData merged in
};

struct Namespace : ObjectBase {};

// ---- the whole input -------------------------------------------------------------

// One input problem. toString() renders `file: document N: field.path: message`
// (`file: message` for problems with the file itself, document == 0).
struct DecodeError {
  std::string file;
  int document = 0;
  std::string path;
  std::string message;
  std::string toString() const;
};

struct ResourceSet {
  std::vector<GatewayClass> gateway_classes;
  std::vector<Gateway> gateways;
  std::vector<HttpRoute> http_routes;
  std::vector<ReferenceGrant> reference_grants;
  std::vector<BackendTlsPolicy> backend_tls_policies;
  std::vector<Service> services;
  std::vector<Endpoints> endpoints;
  std::vector<EndpointSlice> endpoint_slices;
  std::vector<ConfigMap> config_maps;
  std::vector<Secret> secrets;
  std::vector<Namespace> namespaces;
  std::vector<DecodeError> errors;
  // BackendTLSPolicy documents refused for errors, as far as they decoded
  // (name and targetRefs at least), with `refused` set. Not objects of the
  // set: the file loader adds them when nothing better stands for their file
  // (no last good version), so their targets fail closed instead of going
  // plaintext.
  std::vector<BackendTlsPolicy> refused_backend_tls_policies;
  // Fields of Gateway API objects that nothing reads (a misspelling, or a
  // feature Portico does not implement): logged as warnings, the object loads.
  std::vector<DecodeError> warnings;

  bool hasErrors() const { return !errors.empty(); }
};

}  // namespace portico::k8s
