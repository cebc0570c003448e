// Gateway API conformance expectations that a spec review found Portico
// missing (both fixed since). Each test states what the named upstream
// conformance test (kubernetes-sigs/gateway-api, conformance/tests/) expects
// for the same manifests. Scenarios that were right from the start are
// golden cases: test/golden/cases/conformance_*.in.yaml.
#include <gtest/gtest.h>

#include "manifests.h"

#include <string>

#include "k8s/decode.h"
#include "tls/pem.h"
#include "translate/translate.h"

namespace portico::translate {
namespace {

constexpr const char* kPrelude = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: gateway-conformance-infra}
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1, namespace: gateway-conformance-infra}
spec: {ports: [{name: first-port, port: 8080, targetPort: 3000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
---
)";

k8s::ResourceSet load(const std::string& text) {
  return testing::loadManifests(std::string(kPrelude) + text, "conformance.yaml");
}

// The checks `portico check` and `portico run` inject (server/main.cc).
Options realOptions() {
  Options o;
  o.check_key_pair = tls::checkCertificateKeyPair;
  return o;
}

const Condition* findCondition(const std::vector<Condition>& cs, const std::string& type) {
  for (const auto& c : cs)
    if (c.type == type) return &c;
  return nullptr;
}

const ListenerStatus* findListener(const Result& r, const std::string& gateway,
                                   const std::string& listener) {
  auto it = r.status.gateways.find(gateway);
  if (it == r.status.gateways.end()) return nullptr;
  for (const auto& l : it->second.listeners)
    if (l.name == listener) return &l;
  return nullptr;
}

// GatewayInvalidTLSConfiguration, Gateway gateway-certificate-malformed-secret
// (conformance/tests/gateway-invalid-tls-configuration.yaml): the Secret's
// tls.crt and tls.key are base64 of "Hello world", not PEM. Expected: listener
// https ResolvedRefs=False, reason InvalidCertificateRef, attachedRoutes 0.
// Portico: ResolvedRefs=True and the listener is programmed, because
// validateListener (src/translate/translate.cc) only checks that tls.crt and
// tls.key are non-empty; Options::check_key_pair is used for backend client
// certificates only (src/translate/backend_tls.cc), never for listener certs.
TEST(Conformance, GatewayInvalidTlsConfigurationMalformedSecret) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-certificate-malformed-secret, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
  - name: https
    port: 443
    protocol: HTTPS
    allowedRoutes: {namespaces: {from: All}}
    tls:
      certificateRefs:
      - {group: "", kind: Secret, name: malformed-certificate}
---
apiVersion: v1
kind: Secret
metadata: {name: malformed-certificate, namespace: gateway-conformance-infra}
type: kubernetes.io/tls
data:
  tls.crt: SGVsbG8gd29ybGQK
  tls.key: SGVsbG8gd29ybGQK
)");
  Result r = translate(rs, realOptions());
  const ListenerStatus* https =
      findListener(r, "gateway-conformance-infra/gateway-certificate-malformed-secret", "https");
  ASSERT_NE(https, nullptr);
  const Condition* resolved = findCondition(https->conditions, "ResolvedRefs");
  ASSERT_NE(resolved, nullptr);
  EXPECT_EQ(resolved->status, "False");
  EXPECT_EQ(resolved->reason, "InvalidCertificateRef");
  EXPECT_EQ(https->attached_routes, 0);
  const Condition* programmed = findCondition(https->conditions, "Programmed");
  ASSERT_NE(programmed, nullptr);
  EXPECT_EQ(programmed->status, "False");
  // A certificate that can't be loaded must not reach the data plane.
  for (const auto& l : r.snapshot->listeners) EXPECT_NE(l.port, 443) << l.name;
  // The HTTP listener of the same Gateway is unaffected.
  const ListenerStatus* http =
      findListener(r, "gateway-conformance-infra/gateway-certificate-malformed-secret", "http");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(findCondition(http->conditions, "ResolvedRefs")->status, "True");
}

// RequestRedirect and URLRewrite in one rule. The Gateway API names a reason
// for exactly this case: RouteReasonIncompatibleFilters ("used with the
// Accepted condition when there are incompatible filters present on a route
// rule (for example if the URLRewrite and RequestRedirect are both present on
// an HTTPRoute)", apis/v1/shared_types.go). Expected: Accepted=False,
// reason IncompatibleFilters. Portico: Accepted=False, reason UnsupportedValue
// (attachRoute/compileRoute in src/translate/translate.cc route every
// validation failure to UnsupportedValue).
TEST(Conformance, RedirectWithRewriteIsIncompatibleFilters) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirect-and-rewrite, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - filters:
    - {type: RequestRedirect, requestRedirect: {hostname: example.org}}
    - {type: URLRewrite, urlRewrite: {hostname: example.net}}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
)");
  Result r = translate(rs, realOptions());
  auto it = r.status.http_routes.find("gateway-conformance-infra/redirect-and-rewrite");
  ASSERT_NE(it, r.status.http_routes.end());
  ASSERT_EQ(it->second.parents.size(), 1u);
  const Condition* accepted = findCondition(it->second.parents[0].conditions, "Accepted");
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->status, "False");
  EXPECT_EQ(accepted->reason, "IncompatibleFilters");
}

// ListenerStatus.attachedRoutes (apis/v1/gateway_types.go, since
// gateway-api #4341; conformance GatewayWithAttachedRoutes and
// HTTPRouteHostnameIntersection in v1.5): the count is set whatever the
// listener's own status, but "Routes with any other value for the Accepted
// condition [than True] MUST NOT be included in this count". Portico counted
// every selected route, Accepted or not (the pre-#4341 wording).
TEST(Conformance, AttachedRoutesCountOnlyAcceptedRoutes) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: unresolved-gateway-with-one-attached-unresolved-route, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - name: tls
    port: 443
    protocol: HTTPS
    allowedRoutes: {kinds: [{kind: HTTPRoute}], namespaces: {from: Same}}
    tls:
      certificateRefs: [{group: "", kind: Secret, name: does-not-exist}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-route-4, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: unresolved-gateway-with-one-attached-unresolved-route}]
  rules:
  - backendRefs: [{name: does-not-exist, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: unsupported-filter, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: t}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mixed, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 81, protocol: HTTP}
  - name: broken-https
    port: 444
    protocol: HTTPS
    tls: {certificateRefs: [{name: does-not-exist}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: accepted-route, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: mixed}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
)");
  Result r = translate(rs, realOptions());
  // The listener is not programmed, so the route is not Accepted there, and
  // the count stays 0 (it is still set: the listener's status doesn't matter).
  const ListenerStatus* tls = findListener(
      r, "gateway-conformance-infra/unresolved-gateway-with-one-attached-unresolved-route", "tls");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(findCondition(tls->conditions, "Programmed")->status, "False");
  EXPECT_EQ(findCondition(tls->conditions, "ResolvedRefs")->status, "False");
  auto it = r.status.http_routes.find("gateway-conformance-infra/http-route-4");
  ASSERT_NE(it, r.status.http_routes.end());
  ASSERT_EQ(it->second.parents.size(), 1u);
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "False");
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "ResolvedRefs")->status, "False");
  EXPECT_EQ(tls->attached_routes, 0);

  // A route that is not Accepted (unsupported filter) is not counted.
  const ListenerStatus* http = findListener(r, "gateway-conformance-infra/same-namespace", "http");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->attached_routes, 0);
  it = r.status.http_routes.find("gateway-conformance-infra/unsupported-filter");
  ASSERT_NE(it, r.status.http_routes.end());
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "False");

  // An Accepted route counts on every listener it selects, programmed or not.
  it = r.status.http_routes.find("gateway-conformance-infra/accepted-route");
  ASSERT_NE(it, r.status.http_routes.end());
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "True");
  EXPECT_EQ(findListener(r, "gateway-conformance-infra/mixed", "http")->attached_routes, 1);
  EXPECT_EQ(findListener(r, "gateway-conformance-infra/mixed", "broken-https")->attached_routes, 1);
}

// HTTPRouteBackendRequestHeaderModifier: the RequestHeaderModifier cases of
// HTTPRouteRequestHeaderModifier with the filters on the backendRef. The route
// is Accepted and the modifier belongs to that backend only; another filter
// type on a backendRef still refuses the route.
TEST(Conformance, BackendRefHeaderModifiers) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: request-header-modifier, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /set}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}]}
      - type: ResponseHeaderModifier
        responseHeaderModifier: {remove: [X-Header-Remove]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: backend-redirect, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [redirect.example]
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
)");
  Result r = translate(rs, realOptions());
  auto it = r.status.http_routes.find("gateway-conformance-infra/request-header-modifier");
  ASSERT_NE(it, r.status.http_routes.end());
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "True");
  const snapshot::Route* route = nullptr;
  for (const auto& l : r.snapshot->listeners)
    for (const auto& vh : l.virtual_hosts)
      for (const auto& rt : vh.routes)
        if (rt.name.rfind("gateway-conformance-infra/request-header-modifier/", 0) == 0)
          route = &rt;
  ASSERT_NE(route, nullptr);
  EXPECT_FALSE(route->request_header_modifier);
  ASSERT_EQ(route->backends.size(), 1u);
  ASSERT_TRUE(route->backends[0].request_header_modifier);
  EXPECT_EQ(route->backends[0].request_header_modifier->set.at(0).first, "X-Header-Set");
  ASSERT_TRUE(route->backends[0].response_header_modifier);
  EXPECT_EQ(route->backends[0].response_header_modifier->remove.at(0), "X-Header-Remove");

  it = r.status.http_routes.find("gateway-conformance-infra/backend-redirect");
  ASSERT_NE(it, r.status.http_routes.end());
  const Condition* accepted = findCondition(it->second.parents[0].conditions, "Accepted");
  EXPECT_EQ(accepted->status, "False");
  EXPECT_NE(accepted->message.find("RequestRedirect is not supported on a backendRef"),
            std::string::npos)
      << accepted->message;
}

// ProtocolType (apis/v1/gateway_types.go): "All Core ProtocolType values
// MUST be treated case-insensitively by implementations. For example, "HTTP",
// "http", and "hTtP" are all equivalent", and the CRD's pattern and CEL rules
// ((?i)^HTTPS$) admit them. Portico compared with "HTTP"/"HTTPS" exactly:
// protocol http was Accepted=False, UnsupportedProtocol.
TEST(Conformance, CoreProtocolsAreCaseInsensitive) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: lower, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 81, protocol: http}
  - {name: https, port: 444, protocol: hTtPs, tls: {certificateRefs: [{name: missing}]}}
  - {name: same-a, port: 82, protocol: HTTP, hostname: a.example.com}
  - {name: same-b, port: 82, protocol: Http, hostname: b.example.com}
  - {name: dup-a, port: 83, protocol: HTTP}
  - {name: dup-b, port: 83, protocol: http}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: lower, sectionName: http}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
)");
  Result r = translate(rs, realOptions());
  const std::string gw = "gateway-conformance-infra/lower";
  const ListenerStatus* http = findListener(r, gw, "http");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(findCondition(http->conditions, "Accepted")->status, "True");
  EXPECT_EQ(findCondition(http->conditions, "Programmed")->status, "True");
  ASSERT_EQ(http->supported_kinds.size(), 1u);
  EXPECT_EQ(http->supported_kinds[0].kind, "HTTPRoute");
  EXPECT_EQ(http->attached_routes, 1);
  auto it = r.status.http_routes.find("gateway-conformance-infra/r");
  ASSERT_NE(it, r.status.http_routes.end());
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "True");

  // Taken as HTTPS: its problem is the certificate, not the protocol.
  const ListenerStatus* https = findListener(r, gw, "https");
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(findCondition(https->conditions, "Accepted")->reason, "Accepted");
  EXPECT_EQ(findCondition(https->conditions, "ResolvedRefs")->reason, "InvalidCertificateRef");

  // HTTP and Http on one port are one protocol: distinct by hostname...
  EXPECT_EQ(findCondition(findListener(r, gw, "same-a")->conditions, "Conflicted")->status,
            "False");
  EXPECT_EQ(findCondition(findListener(r, gw, "same-b")->conditions, "Conflicted")->status,
            "False");
  // ...and without hostnames a HostnameConflict, not a ProtocolConflict.
  EXPECT_EQ(findCondition(findListener(r, gw, "dup-a")->conditions, "Conflicted")->reason,
            "HostnameConflict");
  EXPECT_EQ(findCondition(findListener(r, gw, "dup-b")->conditions, "Conflicted")->reason,
            "HostnameConflict");
}

// GatewaySpec.Listeners, "Handling indistinct Listeners": "ALL indistinct
// Listeners must not be accepted for processing", and the Listener status
// SHOULD indicate which Listeners are conflicted and not Accepted. Upstream
// GatewayListenerProtocolAndRouteKindConflicts expects Accepted=False (reason
// Invalid), Programmed=False and Conflicted=True (ProtocolConflict) on both
// listeners of a port whose protocols clash. Portico said Accepted=True.
TEST(Conformance, ConflictedListenersAreNotAccepted) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: clash, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: conflicted-http, port: 8443, protocol: HTTP}
  - {name: conflicted-https, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}
  - {name: host-a, port: 81, protocol: HTTP, hostname: a.example.com}
  - {name: host-b, port: 81, protocol: HTTP, hostname: A.example.com}
  - {name: fine, port: 82, protocol: HTTP}
)");
  Result r = translate(rs, realOptions());
  const std::string gw = "gateway-conformance-infra/clash";
  for (const char* name : {"conflicted-http", "conflicted-https", "host-a", "host-b"}) {
    const ListenerStatus* l = findListener(r, gw, name);
    ASSERT_NE(l, nullptr) << name;
    const Condition* accepted = findCondition(l->conditions, "Accepted");
    EXPECT_EQ(accepted->status, "False") << name;
    EXPECT_EQ(accepted->reason, "Invalid") << name;
    EXPECT_EQ(findCondition(l->conditions, "Programmed")->status, "False") << name;
    EXPECT_EQ(findCondition(l->conditions, "Conflicted")->status, "True") << name;
  }
  EXPECT_EQ(findCondition(findListener(r, gw, "conflicted-http")->conditions, "Conflicted")->reason,
            "ProtocolConflict");
  EXPECT_EQ(findCondition(findListener(r, gw, "host-a")->conditions, "Conflicted")->reason,
            "HostnameConflict");
  EXPECT_EQ(findCondition(findListener(r, gw, "fine")->conditions, "Accepted")->status, "True");
  // The Gateway keeps its distinct listener and says the others are not valid.
  const Condition* gw_accepted = findCondition(r.status.gateways.at(gw).conditions, "Accepted");
  EXPECT_EQ(gw_accepted->status, "True");
  EXPECT_EQ(gw_accepted->reason, "ListenersNotValid");
}

// AllowedRoutes.kinds: "When unspecified or empty, the kinds of Routes
// selected are determined using the Listener protocol." Portico took an empty
// list as "no kind": supportedKinds [] and every route NotAllowedByListeners.
TEST(Conformance, EmptyAllowedKindsMeansProtocolDefault) {
  auto rs = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: empty-kinds, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - {name: http, port: 81, protocol: HTTP, allowedRoutes: {kinds: []}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: empty-kinds}]
  rules:
  - backendRefs: [{name: infra-backend-v1, port: 8080}]
)");
  Result r = translate(rs, realOptions());
  const ListenerStatus* http = findListener(r, "gateway-conformance-infra/empty-kinds", "http");
  ASSERT_NE(http, nullptr);
  ASSERT_EQ(http->supported_kinds.size(), 1u);
  EXPECT_EQ(http->supported_kinds[0].group, "gateway.networking.k8s.io");
  EXPECT_EQ(http->supported_kinds[0].kind, "HTTPRoute");
  EXPECT_EQ(findCondition(http->conditions, "ResolvedRefs")->status, "True");
  EXPECT_EQ(http->attached_routes, 1);
  auto it = r.status.http_routes.find("gateway-conformance-infra/r");
  ASSERT_NE(it, r.status.http_routes.end());
  EXPECT_EQ(findCondition(it->second.parents[0].conditions, "Accepted")->status, "True");
}

// GatewayOverlappingTLSConfigHostnames (a core conformance test, only
// SupportGateway): ListenerConditionOverlappingTLSConfig, "Controllers MUST
// detect the presence of overlapping hostnames" among listeners with TLS on
// one port and set OverlappingTLSConfig=True, reason OverlappingHostnames, on
// all of them; "MUST NOT be set when it is False". Portico never set it.
TEST(Conformance, OverlappingTlsConfigHostnames) {
  auto rs = load(R"(
apiVersion: v1
kind: Secret
metadata: {name: tls-validity-checks-certificate, namespace: gateway-conformance-infra}
type: kubernetes.io/tls
stringData:
  tls.crt: "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
  tls.key: "-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-overlapping-hostnames, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: portico
  listeners:
  - name: foo-https
    port: 443
    protocol: HTTPS
    hostname: foo.example.com
    tls: &tls
      mode: Terminate
      certificateRefs: [{kind: Secret, group: "", name: tls-validity-checks-certificate}]
  - {name: bar-https, port: 443, protocol: HTTPS, hostname: bar.bar.example.com, tls: *tls}
  - {name: wildcard-https, port: 443, protocol: HTTPS, hostname: "*.example.com", tls: *tls}
  - {name: not-overlapping-https, port: 443, protocol: HTTPS, hostname: example.com, tls: *tls}
  - {name: not-overlapping-other-port, port: 9443, protocol: HTTPS, hostname: foo.example.com,
     tls: *tls}
)");
  Result r = translate(rs, Options{});
  const std::string gw = "gateway-conformance-infra/gateway-overlapping-hostnames";
  for (const char* name : {"foo-https", "bar-https", "wildcard-https"}) {
    const ListenerStatus* l = findListener(r, gw, name);
    ASSERT_NE(l, nullptr) << name;
    EXPECT_EQ(findCondition(l->conditions, "Accepted")->status, "True") << name;
    const Condition* overlap = findCondition(l->conditions, "OverlappingTLSConfig");
    ASSERT_NE(overlap, nullptr) << name;
    EXPECT_EQ(overlap->status, "True") << name;
    EXPECT_EQ(overlap->reason, "OverlappingHostnames") << name;
  }
  for (const char* name : {"not-overlapping-https", "not-overlapping-other-port"}) {
    const ListenerStatus* l = findListener(r, gw, name);
    ASSERT_NE(l, nullptr) << name;
    EXPECT_EQ(findCondition(l->conditions, "Programmed")->status, "True") << name;
    EXPECT_EQ(findCondition(l->conditions, "OverlappingTLSConfig"), nullptr) << name;
  }
}

}  // namespace
}  // namespace portico::translate
