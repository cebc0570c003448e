#include "translate/translate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include <re2/re2.h>
#include "manifests.h"

#include "k8s/decode.h"
#include "snapshot/dump.h"
#include "translate/status.h"

namespace portico::translate {
namespace {

k8s::ResourceSet load(const std::string& text) { return testing::loadManifests(text); }

const char* kGateway = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, generation: 3}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8080, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
---
)";

const RouteParentStatus& onlyParent(const Result& r, const std::string& key) {
  auto it = r.status.http_routes.find(key);
  EXPECT_NE(it, r.status.http_routes.end()) << key;
  EXPECT_EQ(it->second.parents.size(), 1u);
  return it->second.parents.at(0);
}

const Condition* find(const std::vector<Condition>& cs, const std::string& type) {
  for (const auto& c : cs)
    if (c.type == type) return &c;
  return nullptr;
}

TEST(Hostnames, WildcardCovers) {
  EXPECT_TRUE(wildcardCovers("*.example.com", "a.example.com"));
  EXPECT_TRUE(wildcardCovers("*.example.com", "a.b.example.com"));
  EXPECT_TRUE(wildcardCovers("*.example.com", "*.b.example.com"));
  EXPECT_FALSE(wildcardCovers("*.example.com", "example.com"));
  EXPECT_FALSE(wildcardCovers("*.example.com", "*.example.com"));
  EXPECT_FALSE(wildcardCovers("*.example.com", "aexample.com"));
  EXPECT_FALSE(wildcardCovers("a.example.com", "a.example.com"));
}

TEST(Hostnames, Intersection) {
  using V = std::vector<std::string>;
  EXPECT_EQ(intersectHostnames("", {}), V{"*"});
  EXPECT_EQ(intersectHostnames("a.example.com", {}), V{"a.example.com"});
  EXPECT_EQ(intersectHostnames("", {"x.org", "*.y.org"}), (V{"x.org", "*.y.org"}));
  EXPECT_EQ(intersectHostnames("a.example.com", {"*.example.com"}), V{"a.example.com"});
  EXPECT_EQ(intersectHostnames("*.example.com", {"a.example.com", "example.com", "b.org"}),
            V{"a.example.com"});
  EXPECT_EQ(intersectHostnames("*.example.com", {"*.a.example.com"}), V{"*.a.example.com"});
  EXPECT_EQ(intersectHostnames("*.a.example.com", {"*.example.com"}), V{"*.a.example.com"});
  EXPECT_TRUE(intersectHostnames("a.example.com", {"b.example.com"}).empty());
}

TEST(Translate, BasicRouteToClusterWithOptions) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, generation: 4}
spec:
  parentRefs: [{name: gw}]
  hostnames: [WWW.Example.COM]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/v[0-9]+"}}]
    backendRefs: [{name: svc, port: 80}]
)");
  Options o;
  o.listen_address = "127.0.0.1";
  o.controller_name = "example.com/ctl";
  o.now = "2030-01-01T00:00:00Z";
  o.version = 9;
  Result r = translate(set, o);
  ASSERT_TRUE(r.snapshot);
  EXPECT_EQ(r.snapshot->version, 9u);
  ASSERT_EQ(r.snapshot->listeners.size(), 1u);
  const auto& l = r.snapshot->listeners[0];
  EXPECT_EQ(l.name, "127.0.0.1_8080");
  EXPECT_EQ(l.stat_prefix, "127.0.0.1_8080");
  EXPECT_EQ(l.address, "127.0.0.1");
  EXPECT_EQ(l.port, 8080);
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  EXPECT_EQ(l.virtual_hosts[0].domains, std::vector<std::string>{"www.example.com"});
  ASSERT_EQ(l.virtual_hosts[0].routes.size(), 1u);
  const auto& route = l.virtual_hosts[0].routes[0];
  EXPECT_EQ(route.name, "default/r/rule/0/match/0");
  ASSERT_TRUE(route.match.path.regex);
  EXPECT_TRUE(RE2::FullMatch("/v12", *route.match.path.regex));
  EXPECT_FALSE(RE2::FullMatch("/x", *route.match.path.regex));
  ASSERT_EQ(route.backends.size(), 1u);
  EXPECT_EQ(route.backends[0].cluster, "kube_default_svc_80");
  ASSERT_NE(r.snapshot->findCluster("kube_default_svc_80"), nullptr);

  const auto& parent = onlyParent(r, "default/r");
  EXPECT_EQ(parent.controller_name, "example.com/ctl");
  const Condition* acc = find(parent.conditions, "Accepted");
  ASSERT_NE(acc, nullptr);
  EXPECT_EQ(acc->status, "True");
  EXPECT_EQ(acc->observed_generation, 4);
  EXPECT_EQ(acc->last_transition_time, "2030-01-01T00:00:00Z");
  const auto& gs = r.status.gateways.at("default/gw");
  EXPECT_EQ(gs.addresses, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(find(gs.conditions, "Programmed")->observed_generation, 3);
  EXPECT_EQ(gs.listeners.at(0).attached_routes, 1);
  EXPECT_EQ(r.status.notes.size(), 1u);  // no GatewayClass: every Gateway served
}

// HTTPRouteTimeouts: the shorter of request and backendRequest bounds the
// exchange (one try per request), "0s" turns a timeout off, neither set
// leaves the cluster default, and backendRequest over request is refused as
// the API server refuses it.
TEST(Translate, RuleTimeouts) {
  struct Case {
    const char* timeouts;  // YAML flow map, or "" for none
    std::optional<uint32_t> want_ms;
    bool accepted;
  };
  const Case cases[] = {
      {"", std::nullopt, true},
      {"{request: 2s}", 2000, true},
      {"{backendRequest: 500ms}", 500, true},
      {"{request: 10s, backendRequest: 1s}", 1000, true},
      {"{request: 0s}", 0, true},
      {"{request: 0s, backendRequest: 3s}", 3000, true},
      {"{request: 4s, backendRequest: 0s}", 4000, true},
      {"{request: 1s, backendRequest: 2s}", std::nullopt, false},
      {"{backendRequest: 1x}", std::nullopt, false},
  };
  for (const Case& c : cases) {
    std::string rule = "  - backendRefs: [{name: svc, port: 80}]\n";
    if (*c.timeouts) rule += std::string("    timeouts: ") + c.timeouts + "\n";
    auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
)" + rule);
    Result r = translate(set, Options{});
    const Condition* acc = find(onlyParent(r, "default/r").conditions, "Accepted");
    ASSERT_NE(acc, nullptr) << c.timeouts;
    EXPECT_EQ(acc->status, c.accepted ? "True" : "False") << c.timeouts << ": " << acc->message;
    if (!c.accepted) continue;
    ASSERT_TRUE(r.snapshot);
    const auto& routes = r.snapshot->listeners.at(0).virtual_hosts.at(0).routes;
    ASSERT_EQ(routes.size(), 1u) << c.timeouts;
    EXPECT_EQ(routes[0].timeout_ms, c.want_ms) << c.timeouts;
  }
}

TEST(Translate, IsDeterministic) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  hostnames: [b.example.com, a.example.com, "*.example.com"]
  rules:
  - backendRefs: [{name: svc, port: 80, weight: 2}, {name: svc, port: 80, weight: 3}]
)");
  std::string a = snapshot::dumpSnapshotJson(*translate(set, Options{}).snapshot);
  std::string b = snapshot::dumpSnapshotJson(*translate(set, Options{}).snapshot);
  EXPECT_EQ(a, b);
  auto snap = translate(set, Options{}).snapshot;
  const auto& vhosts = snap->listeners.at(0).virtual_hosts;
  ASSERT_EQ(vhosts.size(), 3u);
  EXPECT_EQ(vhosts[0].domains[0], "*.example.com");
  EXPECT_EQ(vhosts[1].domains[0], "a.example.com");
  EXPECT_EQ(vhosts[2].domains[0], "b.example.com");
  EXPECT_EQ(vhosts[1].routes.at(0).total_weight, 5u);
}

TEST(Translate, GatewayClassSelection) {
  auto set = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: other
  listeners: [{name: http, protocol: HTTP, port: 80}]
)");
  Result r = translate(set, Options{});
  EXPECT_TRUE(r.snapshot->listeners.empty());
  EXPECT_TRUE(r.status.gateways.empty());
  EXPECT_TRUE(r.status.gateway_classes.empty());
  EXPECT_TRUE(r.status.notes.empty());

  Options mine;
  mine.controller_name = "example.com/other";
  Result r2 = translate(set, mine);
  EXPECT_EQ(r2.snapshot->listeners.size(), 1u);
  EXPECT_EQ(find(r2.status.gateway_classes.at("other").conditions, "Accepted")->status, "True");
  // GatewayClassStatus.supportedFeatures "MUST be sorted in ascending
  // alphabetical order"; what conformance suites read to pick their tests.
  const auto& features = r2.status.gateway_classes.at("other").supported_features;
  EXPECT_TRUE(std::is_sorted(features.begin(), features.end()));
  EXPECT_EQ(std::adjacent_find(features.begin(), features.end()), features.end());
  for (const char* f : {"BackendTLSPolicy", "Gateway", "HTTPRoute", "ReferenceGrant"})
    EXPECT_NE(std::find(features.begin(), features.end(), f), features.end()) << f;
  const std::string listed = renderStatusList(set, r2.status, OutputFormat::Json);
  EXPECT_NE(listed.find("\"supportedFeatures\""), std::string::npos);
}

TEST(Translate, BackendProblemsAndDirectStatus) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {value: /missing}}]
    backendRefs: [{name: nope, port: 80}]
  - matches: [{path: {value: /zero}}]
    backendRefs: [{name: svc, port: 80, weight: 0}]
  - matches: [{path: {value: /kind}}]
    backendRefs: [{group: example.com, kind: Thing, name: t}]
)");
  Result r = translate(set, Options{});
  const auto& routes = r.snapshot->listeners.at(0).virtual_hosts.at(0).routes;
  ASSERT_EQ(routes.size(), 3u);
  for (const auto& route : routes) {
    EXPECT_TRUE(route.backends.empty()) << route.name;
    EXPECT_EQ(route.direct_status, 500) << route.name;
  }
  EXPECT_TRUE(r.snapshot->clusters.empty());  // weight-0 Service is not referenced
  const auto& parent = onlyParent(r, "default/r");
  const Condition* rr = find(parent.conditions, "ResolvedRefs");
  EXPECT_EQ(rr->status, "False");
  EXPECT_EQ(rr->reason, "BackendNotFound");
  EXPECT_NE(rr->message.find("Service default/nope not found"), std::string::npos);
  EXPECT_NE(rr->message.find("unsupported backend kind example.com/Thing"), std::string::npos);
  EXPECT_EQ(find(parent.conditions, "Accepted")->status, "True");
}

// GatewayInvalidParametersRef: Portico reads no parameters kind, so a Gateway
// whose spec.infrastructure.parametersRef names one is refused as a whole;
// another Gateway in the same input is served as before.
TEST(Translate, GatewayWithParametersRefIsRefused) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: with-params}
spec:
  gatewayClassName: c
  listeners: [{name: http, protocol: HTTP, port: 9090}]
  infrastructure:
    parametersRef: {group: invalid.io, kind: InvalidParameters, name: invalid}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}, {name: with-params}]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
)");
  Result r = translate(set, Options{});
  ASSERT_EQ(r.snapshot->listeners.size(), 1u);
  EXPECT_EQ(r.snapshot->listeners.at(0).port, 8080);
  const auto& gs = r.status.gateways.at("default/with-params");
  const Condition* acc = find(gs.conditions, "Accepted");
  ASSERT_NE(acc, nullptr);
  EXPECT_EQ(acc->status, "False");
  EXPECT_EQ(acc->reason, "InvalidParameters");
  EXPECT_NE(acc->message.find("invalid.io/InvalidParameters invalid"), std::string::npos);
  EXPECT_EQ(find(gs.conditions, "Programmed")->status, "False");
  EXPECT_EQ(find(gs.listeners.at(0).conditions, "Programmed")->status, "False");
  EXPECT_EQ(find(r.status.gateways.at("default/gw").conditions, "Accepted")->status, "True");
  const auto& parents = r.status.http_routes.at("default/r").parents;
  ASSERT_EQ(parents.size(), 2u);
  EXPECT_EQ(find(parents.at(0).conditions, "Accepted")->status, "True");
  const Condition* refused = find(parents.at(1).conditions, "Accepted");
  EXPECT_EQ(refused->status, "False");
  EXPECT_NE(refused->message.find("is not accepted"), std::string::npos);
}

// Gateway API (HTTPRouteRule.backendRefs): with some backendRefs invalid, the
// share of requests that would have gone to them must get a 500; the valid
// ones must not absorb it.
TEST(Translate, InvalidBackendKeepsItsShareOfTraffic) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs:
    - {name: svc, port: 80, weight: 3}
    - {name: nope, port: 80, weight: 1}
    - {group: example.com, kind: Thing, name: t, weight: 2}
    - {name: gone, port: 80, weight: 0}
)");
  Result r = translate(set, Options{});
  const auto& routes = r.snapshot->listeners.at(0).virtual_hosts.at(0).routes;
  ASSERT_EQ(routes.size(), 1u);
  const auto& route = routes[0];
  EXPECT_EQ(route.direct_status, 0);
  ASSERT_EQ(route.backends.size(), 3u);
  EXPECT_EQ(route.backends[0].cluster, "kube_default_svc_80");
  EXPECT_EQ(route.backends[0].weight, 3u);
  EXPECT_EQ(route.backends[1].cluster, "");  // invalid: answered with a 500
  EXPECT_EQ(route.backends[1].weight, 1u);
  EXPECT_EQ(route.backends[2].cluster, "");
  EXPECT_EQ(route.backends[2].weight, 2u);
  EXPECT_EQ(route.total_weight, 6u);
  ASSERT_EQ(r.snapshot->clusters.size(), 1u);
  EXPECT_EQ(find(onlyParent(r, "default/r").conditions, "ResolvedRefs")->reason, "BackendNotFound");
}
TEST(Translate, CrossNamespaceNeedsReferenceGrant) {
  std::string base = std::string(kGateway) + R"(
apiVersion: v1
kind: Service
metadata: {name: far, namespace: other}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: far, namespace: other, port: 80}]
)";
  Result denied = translate(load(base), Options{});
  EXPECT_EQ(find(onlyParent(denied, "default/r").conditions, "ResolvedRefs")->reason,
            "RefNotPermitted");
  EXPECT_EQ(denied.snapshot->listeners.at(0).virtual_hosts.at(0).routes.at(0).direct_status, 500);

  Result allowed = translate(load(base + R"(---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
)"),
                             Options{});
  EXPECT_EQ(find(onlyParent(allowed, "default/r").conditions, "ResolvedRefs")->status, "True");
  const auto& route = allowed.snapshot->listeners.at(0).virtual_hosts.at(0).routes.at(0);
  EXPECT_EQ(route.direct_status, 0);
  EXPECT_EQ(route.backends.at(0).cluster, "kube_other_far_80");
}

TEST(Translate, InvalidRegexRejectsRoute) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{queryParams: [{type: RegularExpression, name: q, value: "(("}]}]
    backendRefs: [{name: svc, port: 80}]
)");
  Result r = translate(set, Options{});
  const Condition* acc = find(onlyParent(r, "default/r").conditions, "Accepted");
  EXPECT_EQ(acc->status, "False");
  EXPECT_EQ(acc->reason, "UnsupportedValue");
  EXPECT_NE(acc->message.find("spec.rules[0].matches[0].queryParams[0].value"), std::string::npos);
  EXPECT_TRUE(r.snapshot->listeners.at(0).virtual_hosts.empty());
  // Not Accepted, so not counted: attachedRoutes counts Accepted routes only.
  EXPECT_EQ(r.status.gateways.at("default/gw").listeners.at(0).attached_routes, 0);
}

TEST(Translate, PrecedenceOrder) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {value: /a}
    - path: {value: /a}
      queryParams: [{name: q, value: x}]
    - path: {value: /a}
      headers: [{name: h, value: x}]
    - path: {value: /a}
      method: PUT
    - path: {value: /a/b}
    - path: {type: Exact, value: /a}
)");
  Result r = translate(set, Options{});
  std::vector<std::string> names;
  for (const auto& route : r.snapshot->listeners.at(0).virtual_hosts.at(0).routes)
    names.push_back(route.name.substr(route.name.size() - 1));
  EXPECT_EQ(names, (std::vector<std::string>{"5", "4", "3", "2", "1", "0"}));
}

// HTTPRouteSpec.hostnames: routes whose Listener/Route intersection is the
// same hostname SHOULD be ordered by the hostnames they were configured with
// (feature GatewayRouteHostnameIntersectionPrecedence; conformance
// *MultipleRoutesAttachmentSameHostnameIntersection): the exact route beats
// the older wildcard one, the longer wildcard beats the shorter.
TEST(Translate, SameIntersectionOrderedByOriginalHostnames) {
  auto set = load(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: c
  listeners:
  - {name: exact, protocol: HTTP, port: 8080, hostname: abc.example.com}
  - {name: wild, protocol: HTTP, port: 8081, hostname: "*.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wc-older, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: exact}]
  hostnames: ["*.example.com"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: exact-newer, creationTimestamp: "2021-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: exact}]
  hostnames: [abc.example.com]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: short-wc-older, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  hostnames: ["*.com"]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: long-wc-newer, creationTimestamp: "2021-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: wild}]
  hostnames: ["*.example.com"]
)");
  Result r = translate(set, Options{});
  auto first = [&](size_t listener) {
    const auto& l = r.snapshot->listeners.at(listener);
    EXPECT_EQ(l.virtual_hosts.size(), 1u);
    return l.virtual_hosts.at(0).routes.at(0).name;
  };
  EXPECT_EQ(first(0), "default/exact-newer/rule/0/match/0");
  EXPECT_EQ(first(1), "default/long-wc-newer/rule/0/match/0");
}

TEST(Translate, EndpointsFromSlicesByPortName) {
  auto set = load(std::string(kGateway) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: two, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: two}
spec: {ports: [{name: a, port: 80}, {name: b, port: 443, targetPort: 8443}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: two-x, labels: {kubernetes.io/service-name: two}}
addressType: IPv4
ports: [{name: a, port: 8080}, {name: b, port: 9443}]
endpoints:
- addresses: [127.0.0.2, 127.0.0.1]
- addresses: [127.0.0.3]
  conditions: {ready: false}
)");
  Result r = translate(set, Options{});
  const auto* c = r.snapshot->findCluster("kube_default_two_443");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->endpoints.size(), 2u);
  EXPECT_EQ(c->endpoints[0].address, "127.0.0.1");
  EXPECT_EQ(c->endpoints[0].port, 9443);
  EXPECT_EQ(c->endpoints[1].address, "127.0.0.2");
}

TEST(Translate, NeverThrowsOnOddInput) {
  k8s::ResourceSet set;
  k8s::Gateway gw;
  gw.metadata.name = "gw";
  gw.listeners.push_back(k8s::GatewayListener{});  // no name, port 0, no protocol
  set.gateways.push_back(gw);
  k8s::HttpRoute route;
  route.metadata.name = "r";
  route.parent_refs.push_back(k8s::ParentReference{});
  set.http_routes.push_back(route);
  Result r;
  EXPECT_NO_THROW(r = translate(set, Options{}));
  ASSERT_TRUE(r.snapshot);
}

}  // namespace
}  // namespace portico::translate
