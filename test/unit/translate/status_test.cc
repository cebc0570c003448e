#include "translate/status.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include "k8s/decode.h"

namespace portico::translate {
namespace {

using nlohmann::json;

// YAML output read back must equal the JSON output (same data, two syntaxes).
json yamlToJson(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n) o[kv.first.Scalar()] = yamlToJson(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& i : n) a.push_back(yamlToJson(i));
    return a;
  }
  if (n.IsNull()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() == "?") {  // plain scalar: resolve like the core schema
    if (s == "true") return true;
    if (s == "false") return false;
    if (s == "null") return nullptr;
    try {
      size_t pos = 0;
      long long v = std::stoll(s, &pos);
      if (pos == s.size()) return v;
    } catch (...) {
    }
  }
  return s;
}

const char* kInput = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: portico.dev/gateway-controller, description: "true"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, annotations: {note: "a: b # c", num: "80", empty: ""}}
spec:
  gatewayClassName: portico
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: http}]
status:
  parents:
  - parentRef: {name: gw}
    controllerName: example.com/other
    conditions: []
  - parentRef: {name: gw}
    controllerName: portico.dev/gateway-controller
    conditions: [{type: Stale}]
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: s}]
  validation: {hostname: example.com, wellKnownCACertificates: System}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: x}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-listed}
data: {ca.crt: "-----BEGIN-----\nabc\n-----END-----\n"}
)";

struct Rendered {
  k8s::ResourceSet set;
  Result result;
};

Rendered run() {
  Rendered r;
  k8s::decodeText(kInput, "s.yaml", r.set);
  k8s::finalize(r.set);
  for (auto& o : r.set.http_routes) o.metadata.generation = 2;
  r.result = translate(r.set, Options{});
  return r;
}

TEST(StatusList, JsonListsGatewayApiObjectsWithStatus) {
  Rendered r = run();
  json list = json::parse(renderStatusList(r.set, r.result.status, OutputFormat::Json));
  EXPECT_EQ(list["apiVersion"], "v1");
  EXPECT_EQ(list["kind"], "List");
  std::vector<std::string> kinds;
  for (const auto& item : list["items"]) kinds.push_back(item["kind"]);
  EXPECT_EQ(kinds, (std::vector<std::string>{"GatewayClass", "Gateway", "HTTPRoute",
                                             "ReferenceGrant", "BackendTLSPolicy"}));
  const json& gc = list["items"][0];
  EXPECT_FALSE(gc["metadata"].contains("namespace"));
  EXPECT_EQ(gc["status"]["conditions"][0]["type"], "Accepted");
  const json& gw = list["items"][1];
  EXPECT_EQ(gw["metadata"]["namespace"], "default");
  EXPECT_EQ(gw["status"]["listeners"][0]["attachedRoutes"], 1);
  EXPECT_EQ(gw["status"]["listeners"][0]["supportedKinds"][0]["kind"], "HTTPRoute");
  const json& route = list["items"][2];
  // The other controller's entry is kept, our stale one replaced.
  ASSERT_EQ(route["status"]["parents"].size(), 2u);
  EXPECT_EQ(route["status"]["parents"][0]["controllerName"], "example.com/other");
  const json& ours = route["status"]["parents"][1];
  EXPECT_EQ(ours["controllerName"], "portico.dev/gateway-controller");
  EXPECT_EQ(ours["parentRef"]["sectionName"], "http");
  EXPECT_EQ(ours["parentRef"]["namespace"], "default");
  EXPECT_EQ(ours["conditions"][0]["observedGeneration"], 2);
  EXPECT_EQ(ours["conditions"][0]["status"], "True");
  EXPECT_FALSE(list["items"][3].contains("status"));  // ReferenceGrant has none
}

TEST(StatusList, YamlSaysTheSameAsJson) {
  Rendered r = run();
  json from_json = json::parse(renderStatusList(r.set, r.result.status, OutputFormat::Json));
  std::string yaml = renderStatusList(r.set, r.result.status, OutputFormat::Yaml);
  EXPECT_EQ(yaml.rfind("apiVersion: v1\n", 0), 0u) << yaml;
  EXPECT_NE(yaml.find("description: \"true\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("num: \"80\""), std::string::npos) << yaml;
  json from_yaml = yamlToJson(YAML::Load(yaml));
  EXPECT_EQ(from_yaml, from_json) << yaml;
}

}  // namespace
}  // namespace portico::translate
