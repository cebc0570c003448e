#include "k8s/decode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace portico::k8s {
namespace {

ResourceSet decode(const std::string& text, const std::string& file = "in.yaml") {
  ResourceSet set;
  decodeText(text, file, set);
  finalize(set);
  return set;
}

std::vector<std::string> lines(const std::vector<DecodeError>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.toString());
  return out;
}
std::vector<std::string> errorLines(const ResourceSet& set) { return lines(set.errors); }
std::vector<std::string> warningLines(const ResourceSet& set) { return lines(set.warnings); }

TEST(Decode, MultiDocumentYamlWithDefaults) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  labels: {a: b}
  generation: 7
  creationTimestamp: "2023-05-01T00:00:00Z"
  resourceVersion: "42"
  uid: abc
spec:
  gatewayClassName: portico
  listeners:
  - name: http
    protocol: HTTP
    port: 8080
    hostname: "*.example.com"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r, namespace: team}
spec:
  parentRefs: [{name: gw, namespace: default, sectionName: http, port: 8080}]
  hostnames: [a.example.com]
  rules:
  - matches:
    - path: {type: Exact, value: /x}
      headers: [{name: X-A, value: "1"}]
      queryParams: [{type: RegularExpression, name: q, value: "[0-9]+"}]
      method: GET
    backendRefs: [{name: svc, port: 80, weight: 3}]
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  ASSERT_EQ(set.gateways.size(), 1u);
  const Gateway& gw = set.gateways[0];
  EXPECT_EQ(gw.metadata.ns, "default");
  EXPECT_EQ(gw.metadata.generation, 7);
  EXPECT_EQ(gw.metadata.creation_timestamp, "2023-05-01T00:00:00Z");
  EXPECT_EQ(gw.metadata.resource_version, "42");
  EXPECT_EQ(gw.metadata.uid, "abc");
  EXPECT_EQ(gw.metadata.labels.at("a"), "b");
  EXPECT_EQ(gw.document, 1);
  ASSERT_EQ(gw.listeners.size(), 1u);
  EXPECT_EQ(gw.listeners[0].port, 8080);
  EXPECT_EQ(*gw.listeners[0].hostname, "*.example.com");
  EXPECT_EQ(gw.listeners[0].allowed_routes.from, "Same");

  ASSERT_EQ(set.http_routes.size(), 1u);
  const HttpRoute& r = set.http_routes[0];
  EXPECT_EQ(r.metadata.ns, "team");
  EXPECT_EQ(r.metadata.generation, 0);  // absent: the tracker stamps it
  EXPECT_EQ(r.document, 2);
  ASSERT_EQ(r.parent_refs.size(), 1u);
  EXPECT_EQ(r.parent_refs[0].group, kGatewayGroup);
  EXPECT_EQ(r.parent_refs[0].kind, "Gateway");
  EXPECT_EQ(*r.parent_refs[0].section_name, "http");
  EXPECT_EQ(*r.parent_refs[0].port, 8080);
  const auto& m = r.rules[0].matches[0];
  EXPECT_EQ(m.path->type, "Exact");
  EXPECT_EQ(m.headers[0].value, "1");
  EXPECT_EQ(m.query_params[0].type, "RegularExpression");
  EXPECT_EQ(*m.method, "GET");
  EXPECT_EQ(r.rules[0].backend_refs[0].weight, 3);
  EXPECT_EQ(r.rules[0].backend_refs[0].kind, "Service");
  ASSERT_TRUE(r.raw);
}

TEST(Decode, JsonAndListAndCoreKinds) {
  auto set = decode(R"({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"},
     "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"},
                        {"name": "admin", "port": 90, "targetPort": 9090}]}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
     "type": "kubernetes.io/tls",
     "data": {"tls.crt": "aGVsbG8=", "tls.key": "b2xk"},
     "stringData": {"tls.key": "new"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
     "data": {"ca.crt": "PEM"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"env": "prod"}}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "s", "namespace": "x"},
     "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}],
                  "ports": [{"name": "http", "port": 8080}]}]},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
     "metadata": {"name": "s-1", "namespace": "x", "labels": {"kubernetes.io/service-name": "s"}},
     "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
     "endpoints": [{"addresses": ["10.0.0.3"], "conditions": {"ready": false}}]}
  ]})",
                    "in.json");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  ASSERT_EQ(set.services.size(), 1u);
  EXPECT_EQ(*set.services[0].ports[0].target_port_name, "web");
  EXPECT_EQ(*set.services[0].ports[1].target_port_number, 9090);
  ASSERT_EQ(set.secrets.size(), 1u);
  EXPECT_EQ(set.secrets[0].data.at("tls.crt"), "hello");
  EXPECT_EQ(set.secrets[0].data.at("tls.key"), "new");  // stringData wins
  EXPECT_EQ(set.config_maps[0].data.at("ca.crt"), "PEM");
  ASSERT_EQ(set.namespaces.size(), 1u);
  EXPECT_EQ(set.namespaces[0].metadata.ns, "");  // cluster-scoped
  EXPECT_EQ(set.namespaces[0].metadata.labels.at("kubernetes.io/metadata.name"), "x");
  EXPECT_EQ(set.endpoints[0].subsets[0].not_ready_addresses[0], "10.0.0.2");
  ASSERT_EQ(set.endpoint_slices.size(), 1u);
  EXPECT_EQ(set.endpoint_slices[0].endpoints[0].ready, std::optional<bool>(false));
  EXPECT_EQ(*set.endpoint_slices[0].ports[0].port, 8080);
}

TEST(Decode, ReferenceGrantAndBackendTlsPolicyVersions) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g1, namespace: b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: a}]
  to: [{group: "", kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: g2, namespace: b}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: a}]
  to: [{group: "", kind: Secret, name: cert}]
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {name: p1}
spec:
  targetRefs: [{group: "", kind: Service, name: nginx, sectionName: https}]
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
    subjectAltNames:
    - {type: Hostname, hostname: a.example.com}
    - {type: URI, uri: "spiffe://td/ns/x/sa/y"}
  options: {portico.dev/min-tls-version: "1.3"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p2}
spec:
  targetRefs: [{group: "", kind: Service, name: nginx}]
  validation: {hostname: example.com, wellKnownCACertificates: System}
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  ASSERT_EQ(set.reference_grants.size(), 2u);
  EXPECT_FALSE(set.reference_grants[0].to[0].name.has_value());
  EXPECT_EQ(*set.reference_grants[1].to[0].name, "cert");
  ASSERT_EQ(set.backend_tls_policies.size(), 2u);
  const auto& p1 = set.backend_tls_policies[0];
  EXPECT_EQ(p1.api_version, "gateway.networking.k8s.io/v1alpha3");
  EXPECT_EQ(*p1.target_refs[0].section_name, "https");
  EXPECT_EQ(p1.validation.hostname, "example.com");
  EXPECT_EQ(p1.validation.ca_certificate_refs[0].kind, "ConfigMap");
  EXPECT_EQ(p1.validation.subject_alt_names[1].uri, "spiffe://td/ns/x/sa/y");
  EXPECT_EQ(p1.options.at("portico.dev/min-tls-version"), "1.3");
  EXPECT_EQ(*set.backend_tls_policies[1].validation.well_known_ca_certificates, "System");
}

TEST(Decode, UnknownKindsAreIgnoredWithoutError) {
  auto set = decode(R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t}
)");
  EXPECT_TRUE(set.errors.empty());
  EXPECT_TRUE(set.gateways.empty());
}

TEST(Decode, RequestMirrorFilters) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: all, port: 80}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: pct, namespace: other, port: 8080}, percent: 25}
    - type: RequestMirror
      requestMirror: {backendRef: {name: frac, port: 80}, fraction: {numerator: 1}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: frac2, port: 80}, fraction: {numerator: 2, denominator: 3}}
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  const auto& f = set.http_routes.at(0).rules.at(0).filters;
  ASSERT_EQ(f.size(), 4u);
  ASSERT_TRUE(f[0].request_mirror);
  EXPECT_EQ(f[0].request_mirror->backend.name, "all");
  EXPECT_EQ(f[0].request_mirror->backend.kind, "Service");
  EXPECT_EQ(*f[0].request_mirror->backend.port, 80);
  EXPECT_EQ(f[0].request_mirror->numerator, 100);
  EXPECT_EQ(f[0].request_mirror->denominator, 100);
  EXPECT_EQ(*f[1].request_mirror->backend.ns, "other");
  EXPECT_EQ(f[1].request_mirror->numerator, 25);
  EXPECT_EQ(f[1].request_mirror->denominator, 100);
  EXPECT_EQ(f[2].request_mirror->numerator, 1);  // denominator defaults to 100
  EXPECT_EQ(f[2].request_mirror->denominator, 100);
  EXPECT_EQ(f[3].request_mirror->numerator, 2);
  EXPECT_EQ(f[3].request_mirror->denominator, 3);
}

TEST(Decode, CorsFilter) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com", "http://*:8080", "https://127.0.0.1:8443"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1]
        exposeHeaders: [x-header-3]
        allowCredentials: true
        maxAge: 3600
    - type: CORS
      cors: {allowOrigins: ["*"]}
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  const auto& f = set.http_routes.at(0).rules.at(0).filters;
  ASSERT_EQ(f.size(), 2u);
  ASSERT_TRUE(f[0].cors);
  EXPECT_EQ(f[0].cors->allow_origins.size(), 4u);
  EXPECT_EQ(f[0].cors->allow_methods, (std::vector<std::string>{"GET", "OPTIONS"}));
  EXPECT_EQ(f[0].cors->allow_headers, (std::vector<std::string>{"x-header-1"}));
  EXPECT_EQ(f[0].cors->expose_headers, (std::vector<std::string>{"x-header-3"}));
  EXPECT_TRUE(f[0].cors->allow_credentials);
  EXPECT_EQ(f[0].cors->max_age, 3600);
  ASSERT_TRUE(f[1].cors);
  EXPECT_FALSE(f[1].cors->allow_credentials);
  EXPECT_EQ(f[1].cors->max_age, 5);  // the CRD's default
}

TEST(Decode, CorsFilterValuesTheCrdRefuses) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["www.foo.com", "ftp://a.com", "https://a.com:123456", "https://a..com", "*", "https://ok.com"]
        allowMethods: [get, "*"]
        allowHeaders: ["x header"]
        maxAge: 0
    - type: CORS
)");
  EXPECT_EQ(
      errorLines(set),
      (std::vector<std::string>{
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowOrigins[0]: invalid origin "
          "\"www.foo.com\" (want \"*\" or http(s)://host[:port])",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowOrigins[1]: invalid origin "
          "\"ftp://a.com\" (want \"*\" or http(s)://host[:port])",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowOrigins[2]: invalid origin "
          "\"https://a.com:123456\" (want \"*\" or http(s)://host[:port])",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowOrigins[3]: invalid origin "
          "\"https://a..com\" (want \"*\" or http(s)://host[:port])",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowOrigins: \"*\" cannot be "
          "combined with other values",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowMethods[0]: invalid method "
          "\"get\" (want GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH or \"*\")",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowMethods: \"*\" cannot be "
          "combined with other values",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.allowHeaders[0]: invalid header "
          "name \"x header\" (want a token)",
          "in.yaml: document 1: spec.rules[0].filters[0].cors.maxAge: must be between 1 and "
          "2147483647, got 0",
          "in.yaml: document 1: spec.rules[0].filters[1].cors: required field is missing",
      }));
  EXPECT_TRUE(set.http_routes.empty());
}

TEST(Decode, GatewayFrontendTls) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: portico
  listeners: [{name: https, port: 443, protocol: HTTPS}]
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
      perPort:
      - port: 8443
        tls:
          validation:
            caCertificateRefs: [{kind: ConfigMap, name: ca2, namespace: other}]
            mode: AllowInsecureFallback
      - port: 9443
        tls: {}
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  const auto& f = set.gateways.at(0).frontend_tls;
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->default_validation);
  EXPECT_EQ(f->default_validation->ca_certificate_refs.at(0).name, "ca");
  EXPECT_EQ(f->default_validation->mode, "AllowValidOnly");
  ASSERT_EQ(f->per_port.size(), 2u);
  EXPECT_EQ(f->per_port[0].first, 8443);
  ASSERT_TRUE(f->per_port[0].second);
  EXPECT_EQ(f->per_port[0].second->mode, "AllowInsecureFallback");
  EXPECT_EQ(*f->per_port[0].second->ca_certificate_refs.at(0).ns, "other");
  EXPECT_FALSE(f->per_port[1].second);  // an override without validation
}

TEST(Decode, GatewayFrontendTlsValuesTheCrdRefuses) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: portico
  listeners: [{name: https, port: 443, protocol: HTTPS}]
  tls:
    frontend:
      default:
        validation: {caCertificateRefs: [], mode: Sometimes}
      perPort:
      - port: 8443
        tls: {validation: {caCertificateRefs: [{name: ca}]}}
      - port: 8443
        tls: {}
)");
  EXPECT_EQ(errorLines(set),
            (std::vector<std::string>{
                "in.yaml: document 1: spec.tls.frontend.default.validation.caCertificateRefs: at "
                "least 1 item is required",
                "in.yaml: document 1: spec.tls.frontend.default.validation.mode: unsupported value "
                "\"Sometimes\" (want one of: AllowValidOnly, AllowInsecureFallback)",
                "in.yaml: document 1: "
                "spec.tls.frontend.perPort[0].tls.validation.caCertificateRefs[0].kind: required "
                "field is missing",
                "in.yaml: document 1: spec.tls.frontend.perPort[1].port: Port for TLS "
                "configuration must be unique within the Gateway",
            }));
  EXPECT_TRUE(set.gateways.empty());
}

TEST(Decode, RouteRetry) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - retry: {codes: [500, 503], attempts: 3, backoff: 100ms}
  - retry: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  rules:
  - retry: {codes: [200, "500"], attempts: -1}
)");
  EXPECT_EQ(errorLines(set),
            (std::vector<std::string>{
                "in.yaml: document 2: spec.rules[0].retry.codes[0]: must be a status code between "
                "400 and 599, got 200",
                "in.yaml: document 2: spec.rules[0].retry.codes[1]: must be a status code between "
                "400 and 599, got \"500\"",
                "in.yaml: document 2: spec.rules[0].retry.attempts: must be between 0 and "
                "2147483647, got -1",
            }));
  ASSERT_EQ(set.http_routes.size(), 1u);
  const auto& rules = set.http_routes[0].rules;
  ASSERT_TRUE(rules.at(0).retry);
  EXPECT_EQ(rules[0].retry->codes, (std::vector<int32_t>{500, 503}));
  EXPECT_EQ(*rules[0].retry->attempts, 3);
  EXPECT_EQ(*rules[0].retry->backoff, "100ms");
  ASSERT_TRUE(rules.at(1).retry);
  EXPECT_FALSE(rules[1].retry->attempts);
}

TEST(Decode, UnreadGatewayApiFieldsAreWarnedAbout) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p, annotations: {x: y}, managedFields: [{manager: kubectl}]}
spec:
  targetRefs: [{group: "", kind: Service, name: s}]
  validaton: {hostname: example.com}
status: {ancestors: []}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionNmae: http}]
  rules:
  - backendRefs: [{name: s, port: 80}]
    sessionPersistence: {sessionName: s}
    filters:
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Thing, name: t}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  selector: {app: nginx}
  ports: [{port: 80, targetPort: 8080, appProtocol: http}]
)");
  ASSERT_TRUE(set.errors.empty()) << errorLines(set)[0];
  // Everything still loads: a warning never drops an object.
  EXPECT_EQ(set.backend_tls_policies.size(), 1u);
  EXPECT_EQ(set.http_routes.size(), 1u);
  EXPECT_EQ(warningLines(set),
            (std::vector<std::string>{
                "in.yaml: document 1: spec.validaton: unknown field, ignored (did you mean "
                "validation?)",
                "in.yaml: document 2: spec.parentRefs[0].sectionNmae: unknown field, ignored "
                "(did you mean sectionName?)",
                "in.yaml: document 2: spec.rules[0].sessionPersistence: unknown field, ignored "
                "(misspelled, or not supported by Portico)",
            }));
}

TEST(Decode, ARejectedObjectStillNamesWhatLooksMisspelled) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRef: {kind: Service, name: s}
  validation: {hostname: example.com, wellKnownCACertificates: System, extra: 1}
)");
  EXPECT_EQ(errorLines(set),
            (std::vector<std::string>{
                "in.yaml: document 1: spec.targetRefs: required field is missing"}));
  EXPECT_EQ(warningLines(set),
            (std::vector<std::string>{"in.yaml: document 1: spec.targetRef: unknown field, ignored "
                                      "(did you mean targetRefs?)"}));
  EXPECT_TRUE(set.backend_tls_policies.empty());
}

TEST(Decode, ARefusedBackendTlsPolicyIsKeptAsideWithItsTargets) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p, namespace: team}
spec:
  targetRefs: [{group: "", kind: Service, name: s}]
  validation: {hostname: [example.com], wellKnownCACertificates: System}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: no-targets}
spec:
  validation: {hostname: [example.com]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: fine}
spec:
  targetRefs: [{group: "", kind: Service, name: t}]
  validation: {hostname: example.com, wellKnownCACertificates: System}
)");
  ASSERT_EQ(set.backend_tls_policies.size(), 1u);
  EXPECT_EQ(set.backend_tls_policies[0].metadata.name, "fine");
  EXPECT_FALSE(set.backend_tls_policies[0].refused);
  // Only a refused policy that names its targets can fail them closed.
  ASSERT_EQ(set.refused_backend_tls_policies.size(), 1u);
  const auto& r = set.refused_backend_tls_policies[0];
  EXPECT_EQ(r.key(), "team/p");
  ASSERT_EQ(r.target_refs.size(), 1u);
  EXPECT_EQ(r.target_refs[0].name, "s");
  EXPECT_EQ(*r.refused, "in.yaml: document 1: spec.validation.hostname: expected string, got list");
  ASSERT_TRUE(r.raw);
}

TEST(Decode, V1alpha2GatewayAndHttpRouteAreRead) {
  auto set = decode(R"(
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: Gateway
metadata: {name: g}
spec:
  gatewayClassName: c
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: g}]
)");
  EXPECT_TRUE(set.errors.empty());
  ASSERT_EQ(set.gateways.size(), 1u);
  ASSERT_EQ(set.http_routes.size(), 1u);
  EXPECT_EQ(set.http_routes[0].parent_refs.at(0).name, "g");
}

// Every malformed-input message shape: `file: document N: field.path: message`.
struct BadCase {
  const char* text;
  const char* expected;
};

class DecodeErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(DecodeErrors, ReportsFileDocumentPathAndMessage) {
  std::string text =
      std::string("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n") + GetParam().text;
  auto set = decode(text, "dir/bad.yaml");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].toString(), GetParam().expected);
  // The good document still loads.
  EXPECT_TRUE(std::any_of(set.config_maps.begin(), set.config_maps.end(),
                          [](const auto& c) { return c.metadata.name == "ok"; }));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeErrors,
    ::testing::Values(
        BadCase{"kind: Service\nmetadata: {name: s}\n",
                "dir/bad.yaml: document 2: apiVersion: required field is missing"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
                "dir/bad.yaml: document 2: metadata.name: required field is missing"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {name: [1]}\n",
                "dir/bad.yaml: document 2: metadata.name: expected string, got list"},
        BadCase{"apiVersion: v1\nkind: Service\n",
                "dir/bad.yaml: document 2: metadata: required field is missing"},
        BadCase{"a: [\n",
                "dir/bad.yaml: document 2: line 7, column 1: invalid YAML: end of sequence "
                "flow not found"},
        BadCase{"- a\n- b\n",
                "dir/bad.yaml: document 2: (root): expected a Kubernetes object (map), got list"},
        BadCase{"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"!!\"}\n",
                "dir/bad.yaml: document 2: data.k: invalid base64 data"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n",
                "dir/bad.yaml: document 2: spec.ports[0].port: must be between 1 and 65535, got 0"},
        BadCase{
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: \"80\"}]}\n",
            "dir/bad.yaml: document 2: spec.ports[0].port: expected integer, got string"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: Weird}\n",
                "dir/bad.yaml: document 2: spec.type: unsupported value \"Weird\" (want one of: "
                "ClusterIP, NodePort, LoadBalancer, ExternalName)"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec:\n  rules:\n  - matches:\n    - {}\n    - path: {type: Prefix}\n",
                "dir/bad.yaml: document 2: spec.rules[0].matches[1].path.type: unsupported value "
                "\"Prefix\" (want one of: Exact, PathPrefix, RegularExpression)"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{backendRefs: [{name: s}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].backendRefs[0].port: required when "
                "referring to a Service"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {hostnames: [\"bad host\"]}\n",
                "dir/bad.yaml: document 2: spec.hostnames[0]: invalid hostname \"bad host\""},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{matches: [{path: {value: relative}}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].matches[0].path.value: must be an "
                "absolute path starting with \"/\""},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{filters: [{type: RequestRedirect, requestRedirect: "
                "{statusCode: 305}}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].filters[0].requestRedirect.statusCode: "
                "unsupported value 305 (want 301, 302, 303, 307, 308)"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n"
                "metadata: {name: p}\nspec: {targetRef: {kind: Service, name: s}, "
                "validation: {hostname: example.com, wellKnownCACertificates: System}}\n",
                "dir/bad.yaml: document 2: spec.targetRefs: required field is missing"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\n"
                "metadata: {name: p}\nspec: {targetRefs: [], "
                "validation: {hostname: example.com, wellKnownCACertificates: System}}\n",
                "dir/bad.yaml: document 2: spec.targetRefs: must have at least 1 item"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{filters: [{type: RequestMirror, requestMirror: "
                "{backendRef: {name: m, port: 80}, percent: 10, fraction: {numerator: 1}}}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].filters[0].requestMirror.fraction: only "
                "one of percent or fraction may be specified"},
        BadCase{
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
            "spec: {rules: [{filters: [{type: RequestMirror, requestMirror: "
            "{backendRef: {name: m, port: 80}, fraction: {numerator: 3, denominator: 2}}}]}]}\n",
            "dir/bad.yaml: document 2: spec.rules[0].filters[0].requestMirror.fraction."
            "numerator: must be less than or equal to denominator (2)"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{filters: [{type: RequestMirror, requestMirror: "
                "{backendRef: {name: m}}}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].filters[0].requestMirror.backendRef.port: "
                "required when referring to a Service"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
                "spec: {rules: [{filters: [{type: RequestMirror, requestMirror: "
                "{backendRef: {name: m, port: 80}, percent: 101}}]}]}\n",
                "dir/bad.yaml: document 2: spec.rules[0].filters[0].requestMirror.percent: must be "
                "between 0 and 100, got 101"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
                "spec: {gatewayClassName: c, listeners: [{name: a, protocol: HTTP, port: 80},"
                " {name: a, protocol: HTTP, port: 81}]}\n",
                "dir/bad.yaml: document 2: spec.listeners[1].name: duplicate listener name \"a\""},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
                "spec: {gatewayClassName: c, listeners: [{name: a, protocol: HTTP, port: 80,"
                " allowedRoutes: {namespaces: {from: Selector}}}]}\n",
                "dir/bad.yaml: document 2: spec.listeners[0].allowedRoutes.namespaces.selector: "
                "required when from is Selector"},
        BadCase{"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                "  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {}\n",
                "dir/bad.yaml: document 2: items[1].metadata.name: required field is missing"},
        BadCase{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
                "dir/bad.yaml: document 2: metadata.name: duplicate ConfigMap default/ok (first "
                "defined in dir/bad.yaml: document 1, which is used)"}));

TEST(Decode, BadDocumentDoesNotStopOthersAndNeverThrows) {
  std::string garbage = "\x01\x02{[}]: :: - -\n\t\t---\n%YAML 9.9\n---\n";
  garbage += "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: survivor}\n";
  ResourceSet set;
  EXPECT_NO_THROW(decodeText(garbage, "g.yaml", set));
  finalize(set);
  EXPECT_FALSE(set.errors.empty());
  ASSERT_EQ(set.config_maps.size(), 1u);
  EXPECT_EQ(set.config_maps[0].metadata.name, "survivor");
}

TEST(Decode, LeadingMarkerAndEmptyDocumentsCountLikeKubectl) {
  auto set = decode(
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a "
      "comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].document, 3);
  EXPECT_EQ(set.config_maps[0].document, 1);
}

TEST(Decode, QuotedScalarsStayStrings) {
  auto set = decode(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: \"80\", y: \"true\"}\n");
  ASSERT_TRUE(set.errors.empty());
  EXPECT_EQ(set.config_maps[0].data.at("x"), "80");
  // Plain `80` would be a number, which ConfigMap data rejects.
  auto bad = decode("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: 80}\n");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_EQ(bad.errors[0].path, "data.x");
}

TEST(Decode, SortedByNamespaceAndName) {
  auto set = decode(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: z}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: z}\n");
  ASSERT_EQ(set.config_maps.size(), 3u);
  EXPECT_EQ(set.config_maps[0].key(), "default/c");
  EXPECT_EQ(set.config_maps[1].key(), "z/a");
  EXPECT_EQ(set.config_maps[2].key(), "z/b");
}

TEST(Base64, DecodesAndRejects) {
  EXPECT_EQ(*base64Decode("aGVsbG8gd29ybGQ="), "hello world");
  EXPECT_EQ(*base64Decode("aGVs\nbG8="), "hello");
  EXPECT_EQ(*base64Decode(""), "");
  EXPECT_FALSE(base64Decode("a").has_value());
  EXPECT_FALSE(base64Decode("a*bc").has_value());
  EXPECT_FALSE(base64Decode("aG==Vs").has_value());
}

TEST(LabelSelector, MatchLabelsAndExpressions) {
  LabelSelector s;
  s.match_labels = {{"env", "prod"}};
  s.match_expressions = {{"tier", "In", {"web", "api"}}, {"legacy", "DoesNotExist", {}}};
  EXPECT_TRUE(selectorMatches(s, {{"env", "prod"}, {"tier", "api"}}));
  EXPECT_FALSE(selectorMatches(s, {{"env", "dev"}, {"tier", "api"}}));
  EXPECT_FALSE(selectorMatches(s, {{"env", "prod"}, {"tier", "db"}}));
  EXPECT_FALSE(selectorMatches(s, {{"env", "prod"}, {"tier", "api"}, {"legacy", "1"}}));
  LabelSelector notin;
  notin.match_expressions = {{"env", "NotIn", {"prod"}}, {"team", "Exists", {}}};
  EXPECT_TRUE(selectorMatches(notin, {{"team", "a"}}));
  EXPECT_FALSE(selectorMatches(notin, {{"team", "a"}, {"env", "prod"}}));
  EXPECT_TRUE(selectorMatches(LabelSelector{}, {}));
}

// ---- decodeDocuments: re-parse only what changed ------------------------------------

std::string svcDoc(const std::string& name, int port) {
  return "---\napiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec:\n  ports: [{port: " + std::to_string(port) + "}]\n";
}

const Service& serviceIn(const DocumentMemo& memo, size_t doc) {
  return memo.documents.at(doc).objects.services.at(0);
}

TEST(DecodeDocuments, UnchangedDocumentsAreCopiedAndChangedOnesParsed) {
  DocumentMemo first, second;
  std::vector<DecodeError> errors;
  decodeDocuments(svcDoc("a", 80) + svcDoc("b", 80), "f.yaml", nullptr, first, errors);
  ASSERT_TRUE(errors.empty());
  ASSERT_EQ(first.documents.size(), 2u);

  // A new first document shifts the others; "b" changes its port.
  decodeDocuments(svcDoc("new", 80) + svcDoc("a", 80) + svcDoc("b", 81), "f.yaml", &first, second,
                  errors);
  ASSERT_TRUE(errors.empty());
  ASSERT_EQ(second.documents.size(), 3u);
  // "a" was copied: it shares the parsed tree of the first decode.
  EXPECT_EQ(serviceIn(second, 1).raw, serviceIn(first, 0).raw);
  EXPECT_EQ(serviceIn(second, 1).document, 2);  // where it stands now
  EXPECT_EQ(serviceIn(second, 1).file, "f.yaml");
  // "b" was parsed again.
  EXPECT_NE(serviceIn(second, 2).raw, serviceIn(first, 1).raw);
  EXPECT_EQ(serviceIn(second, 2).ports.at(0).port, 81);
  EXPECT_EQ(serviceIn(second, 2).document, 3);
  EXPECT_EQ(serviceIn(second, 0).metadata.name, "new");
}

TEST(DecodeDocuments, GivesWhatDecodeTextGives) {
  std::string text = svcDoc("a", 80) + "---\n# only a comment\n" + svcDoc("b", 80) +
                     "---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: "
                     "[{port: nope}]}\n";
  ResourceSet plain;
  decodeText(text, "f.yaml", plain);
  DocumentMemo memo;
  std::vector<DecodeError> errors;
  decodeDocuments(text, "f.yaml", nullptr, memo, errors);
  ResourceSet merged;
  for (const auto& d : memo.documents) appendResources(merged, d.objects);
  ASSERT_EQ(merged.services.size(), plain.services.size());
  for (size_t i = 0; i < plain.services.size(); ++i) {
    EXPECT_EQ(merged.services[i].metadata.name, plain.services[i].metadata.name);
    EXPECT_EQ(merged.services[i].document, plain.services[i].document);
  }
  ASSERT_EQ(errors.size(), plain.errors.size());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].toString(), plain.errors[0].toString());
  EXPECT_TRUE(merged.errors.empty());  // errors are not kept in the memo
}

TEST(DecodeDocuments, AJsonFileIsOneDocument) {
  DocumentMemo memo;
  std::vector<DecodeError> errors;
  decodeDocuments(R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"},
                      "spec": {"ports": [{"port": 80}]}})",
                  "f.json", nullptr, memo, errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(memo.documents.size(), 1u);
  EXPECT_EQ(serviceIn(memo, 0).metadata.name, "j");
}

}  // namespace
}  // namespace portico::k8s
