#pragma once
// Renders every Gateway API object of the input with its computed `status`
// as a Kubernetes `List` (what `kubectl get -o yaml|json` would show): the
// output of `portico check` and of the admin `/status` endpoint.
#include <string>

#include "k8s/resources.h"
#include "translate/translate.h"

namespace portico::translate {

enum class OutputFormat { Yaml, Json };

// Items: GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants,
// BackendTLSPolicies, each sorted by namespace/name. Objects this controller
// does not manage keep the status they were given.
std::string renderStatusList(const k8s::ResourceSet& resources, const StatusReport& status,
                             OutputFormat format);

// Kubernetes semantics for lastTransitionTime: a condition whose type and
// status are what they were in `before` keeps the time it had then (the
// server passes the previous reload's report).
void carryTransitionTimes(StatusReport& now, const StatusReport& before);

}  // namespace portico::translate
