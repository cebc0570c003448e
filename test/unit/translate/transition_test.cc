#include "translate/status.h"

#include <gtest/gtest.h>

#include "k8s/decode.h"
#include "translate/translate.h"

namespace portico::translate {
namespace {

const char* kInput = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, generation: 1}
spec:
  gatewayClassName: any
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, generation: 1}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: svc, port: 80}]}]
)";

const char* kService = R"(---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
)";

StatusReport run(const std::string& text, const std::string& now) {
  k8s::ResourceSet set;
  k8s::decodeText(text, "t.yaml", set);
  k8s::finalize(set);
  Options o;
  o.now = now;
  return translate(set, o).status;
}

const Condition& find(const std::vector<Condition>& cs, const std::string& type) {
  for (const auto& c : cs) {
    if (c.type == type) return c;
  }
  static Condition none;
  return none;
}

TEST(TransitionTimes, UnchangedConditionsKeepTheirTimeChangedOnesMove) {
  const std::string t0 = "2024-01-01T00:00:00Z", t1 = "2024-01-01T01:00:00Z";
  StatusReport before = run(std::string(kInput), t0);  // no Service: ResolvedRefs False
  StatusReport now = run(std::string(kInput) + kService, t1);
  carryTransitionTimes(now, before);

  const auto& gw_before = before.gateways.at("default/gw");
  const auto& gw_now = now.gateways.at("default/gw");
  EXPECT_EQ(find(gw_now.conditions, "Accepted").last_transition_time, t0);
  EXPECT_EQ(find(gw_now.listeners.at(0).conditions, "Programmed").last_transition_time, t0);
  ASSERT_EQ(find(gw_before.conditions, "Accepted").status, "True");

  const auto& parent_before = before.http_routes.at("default/r").parents.at(0);
  const auto& parent_now = now.http_routes.at("default/r").parents.at(0);
  EXPECT_EQ(find(parent_before.conditions, "ResolvedRefs").status, "False");
  EXPECT_EQ(find(parent_now.conditions, "ResolvedRefs").status, "True");
  EXPECT_EQ(find(parent_now.conditions, "ResolvedRefs").last_transition_time, t1);  // changed
  EXPECT_EQ(find(parent_now.conditions, "Accepted").last_transition_time, t0);      // did not
}

}  // namespace
}  // namespace portico::translate
