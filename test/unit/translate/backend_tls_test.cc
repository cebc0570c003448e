#include "translate/backend_tls.h"

#include <gtest/gtest.h>

#include <map>
#include "common/time.h"
#include "manifests.h"

#include <algorithm>

#include "k8s/decode.h"
#include "translate/translate.h"

// The backend TLS pass through translate(), with the structural PEM check
// (no inspector injected) unless a test injects a fake one. The PEM below is
// deliberately fake: base64-shaped text, not a certificate.
namespace portico::translate {
namespace {

const char* kFakeCa =
    "-----BEGIN CERTIFICATE-----\\nTUlJQ2Zha2VjYQ==\\n-----END CERTIFICATE-----\\n";
const char* kFakeCa2 =
    "-----BEGIN CERTIFICATE-----\\nU0VDT05EZmFrZQ==\\n-----END CERTIFICATE-----\\n";
const char* kFakeKey = "-----BEGIN PRIVATE KEY-----\\nZmFrZWtleQ==\\n-----END PRIVATE KEY-----\\n";

k8s::ResourceSet load(const std::string& text) { return testing::loadManifests(text); }

// Gateway gw (ns default) + HTTPRoute r to Service svc: ports https 8443 and
// admin 9443, each with its own rule.
std::string base(const std::string& gateway_extra = "") {
  return R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, generation: 2}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8080}
)" + gateway_extra +
         R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: svc, port: 8443}]
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: svc, port: 9443}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {name: https, port: 8443}
  - {name: admin, port: 9443}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data:
  ca.crt: ")" +
         kFakeCa +
         R"("
---
)";
}

std::string policy(const std::string& name, const std::string& spec,
                   const std::string& meta_extra = "",
                   const std::string& api = "gateway.networking.k8s.io/v1") {
  return "apiVersion: " + api + "\nkind: BackendTLSPolicy\nmetadata: {name: " + name + meta_extra +
         "}\nspec:\n" + spec + "\n---\n";
}

const char* kSimpleSpec = R"(  targetRefs: [{group: "", kind: Service, name: svc}]
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])";

std::string specWith(const std::string& validation, const std::string& extra = "") {
  return "  targetRefs: [{group: \"\", kind: Service, name: svc}]\n  validation:\n" + validation +
         extra;
}

Result run(const std::string& text, Options options = {}) {
  options.now = "2025-01-01T00:00:00Z";
  k8s::ResourceSet set = load(text);
  return translate(set, options);
}

const snapshot::Cluster* cluster(const Result& r, const std::string& name) {
  const snapshot::Cluster* c = r.snapshot->findCluster(name);
  EXPECT_NE(c, nullptr) << name;
  return c;
}

const Condition* find(const std::vector<Condition>& cs, const std::string& type) {
  for (const auto& c : cs)
    if (c.type == type) return &c;
  return nullptr;
}

// The one ancestor's condition `type` of policy default/<name>.
Condition policyCondition(const Result& r, const std::string& name, const std::string& type) {
  auto it = r.status.backend_tls_policies.find("default/" + name);
  if (it == r.status.backend_tls_policies.end() || it->second.ancestors.size() != 1) {
    ADD_FAILURE() << "policy " << name << " has no single ancestor";
    return {};
  }
  const Condition* c = find(it->second.ancestors[0].conditions, type);
  if (!c) {
    ADD_FAILURE() << name << " lacks " << type;
    return {};
  }
  return *c;
}

bool hasNote(const std::vector<std::string>& notes, const std::string& part) {
  return std::any_of(notes.begin(), notes.end(),
                     [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

// ---- the happy path ------------------------------------------------------------------

TEST(BackendTls, SeedPolicyV1alpha3) {
  auto r = run(base() +
               policy("p", kSimpleSpec, ", generation: 4", "gateway.networking.k8s.io/v1alpha3"));
  for (const char* name : {"kube_default_svc_8443", "kube_default_svc_9443"}) {
    const auto* c = cluster(r, name);
    ASSERT_TRUE(c && c->tls) << name;
    EXPECT_EQ(c->tls->policy, "default/p");
    EXPECT_EQ(c->tls->sni, "example.com");
    EXPECT_EQ(c->tls->ca_pem,
              "-----BEGIN CERTIFICATE-----\nTUlJQ2Zha2VjYQ==\n-----END CERTIFICATE-----\n");
    EXPECT_FALSE(c->tls->use_system_trust);
    EXPECT_FALSE(c->tls->fail_closed);
    EXPECT_TRUE(c->tls->subject_alt_names.empty());
    EXPECT_NE(c->tls->fingerprint, 0u);
    EXPECT_EQ(c->tls->fingerprint, upstreamTlsFingerprint(*c->tls));
  }
  const auto& ps = r.status.backend_tls_policies.at("default/p");
  ASSERT_EQ(ps.ancestors.size(), 1u);
  const auto& a = ps.ancestors[0];
  EXPECT_EQ(a.ancestor_ref.group, "gateway.networking.k8s.io");
  EXPECT_EQ(a.ancestor_ref.kind, "Gateway");
  EXPECT_EQ(a.ancestor_ref.ns, "default");
  EXPECT_EQ(a.ancestor_ref.name, "gw");
  EXPECT_EQ(a.controller_name, "portico.dev/gateway-controller");
  ASSERT_EQ(a.conditions.size(), 2u);
  EXPECT_EQ(a.conditions[0].type, "Accepted");
  EXPECT_EQ(a.conditions[0].status, "True");
  EXPECT_EQ(a.conditions[0].observed_generation, 4);
  EXPECT_EQ(a.conditions[0].last_transition_time, "2025-01-01T00:00:00Z");
  EXPECT_EQ(a.conditions[1].type, "ResolvedRefs");
  EXPECT_EQ(a.conditions[1].status, "True");
  EXPECT_EQ(a.conditions[1].reason, "ResolvedRefs");
  // The route to a backend with a valid policy keeps ResolvedRefs=True.
  const auto& route = r.status.http_routes.at("default/r").parents.at(0);
  EXPECT_EQ(find(route.conditions, "ResolvedRefs")->status, "True");
}

TEST(BackendTls, ClustersWithoutPolicyStayPlain) {
  auto r = run(base());
  EXPECT_FALSE(cluster(r, "kube_default_svc_8443")->tls);
  EXPECT_TRUE(r.status.backend_tls_policies.empty());
  ASSERT_EQ(r.status.backends.size(), 2u);
  EXPECT_EQ(r.status.backends[0],
            "backend default/svc:8443 (cluster kube_default_svc_8443): plaintext (no "
            "BackendTLSPolicy)");
}

TEST(BackendTls, CheckSummaryLine) {
  auto r = run(base() + policy("p", kSimpleSpec));
  EXPECT_EQ(r.status.backends.at(0),
            "backend default/svc:8443 (cluster kube_default_svc_8443): BackendTLSPolicy "
            "default/p, SNI example.com, CA from ConfigMap default/ca");
}

// ---- caCertificateRefs ----------------------------------------------------------------

struct CaCase {
  const char* name;
  std::string extra_objects;
  std::string refs;
  const char* message_part;
  const char* reason;
};

TEST(BackendTls, UnusableCaRefsFailClosed) {
  std::vector<CaCase> cases = {
      {"missing", "", "[{group: \"\", kind: ConfigMap, name: nope}]",
       "ConfigMap default/nope not found", "InvalidCACertificateRef"},
      {"empty",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: empty}\ndata: {ca.crt: \"\"}\n---\n",
       "[{group: \"\", kind: ConfigMap, name: empty}]", "ca.crt is empty",
       "InvalidCACertificateRef"},
      {"nokey", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nokey}\ndata: {x: y}\n---\n",
       "[{group: \"\", kind: ConfigMap, name: nokey}]", "has no key ca.crt",
       "InvalidCACertificateRef"},
      {"badpem",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {ca.crt: \"not a "
       "certificate\"}\n---\n",
       "[{group: \"\", kind: ConfigMap, name: bad}]", "not a PEM certificate bundle",
       "InvalidCACertificateRef"},
      {"badbase64",
       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {ca.crt: \"-----BEGIN "
       "CERTIFICATE-----\\n%%%\\n-----END CERTIFICATE-----\\n\"}\n---\n",
       "[{group: \"\", kind: ConfigMap, name: bad}]", "is not base64", "InvalidCACertificateRef"},
      {"kind", "", "[{group: \"\", kind: Deployment, name: ca}]", "unsupported kind Deployment",
       "InvalidKind"},
      {"group", "", "[{group: example.com, kind: ConfigMap, name: ca}]",
       "unsupported kind example.com/ConfigMap", "InvalidKind"},
      {"secret-missing", "", "[{group: \"\", kind: Secret, name: nope}]",
       "Secret default/nope not found", "InvalidCACertificateRef"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r =
        run(base() + c.extra_objects +
            policy("p",
                   specWith("    hostname: example.com\n    caCertificateRefs: " + c.refs + "\n")));
    auto resolved = policyCondition(r, "p", "ResolvedRefs");
    EXPECT_EQ(resolved.status, "False");
    EXPECT_EQ(resolved.reason, c.reason);
    EXPECT_NE(resolved.message.find(c.message_part), std::string::npos) << resolved.message;
    EXPECT_NE(resolved.message.find("spec.validation.caCertificateRefs[0]"), std::string::npos);
    auto accepted = policyCondition(r, "p", "Accepted");
    EXPECT_EQ(accepted.status, "False");
    EXPECT_EQ(accepted.reason, "NoValidCACertificate");
    const auto* cl = cluster(r, "kube_default_svc_8443");
    ASSERT_TRUE(cl->tls);
    EXPECT_TRUE(cl->tls->fail_closed);
    EXPECT_NE(cl->tls->fail_reason.find(c.message_part), std::string::npos) << cl->tls->fail_reason;
    EXPECT_EQ(cl->tls->policy, "default/p");
    EXPECT_NE(cl->tls->fingerprint, 0u);
    EXPECT_NE(r.status.backends.at(0).find("cannot be honoured"), std::string::npos);
  }
}

TEST(BackendTls, SecretCaAndBinaryData) {
  std::string objs =
      std::string("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {ca.crt: \"") +
      kFakeCa2 + "\"}\n---\n";
  auto r = run(base() + objs +
               policy("p", specWith("    hostname: example.com\n    caCertificateRefs: "
                                    "[{group: \"\", kind: Secret, name: s}]\n")));
  const auto* c = cluster(r, "kube_default_svc_8443");
  ASSERT_TRUE(c->tls);
  EXPECT_FALSE(c->tls->fail_closed);
  EXPECT_NE(c->tls->ca_pem.find("U0VDT05EZmFrZQ=="), std::string::npos);
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
  EXPECT_NE(r.status.backends.at(0).find("CA from Secret default/s"), std::string::npos);
}

TEST(BackendTls, CombinedRefsMakeOneBundle) {
  std::string objs =
      std::string("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {ca.crt: \"") +
      kFakeCa2 + "\"}\n---\n";
  auto r = run(base() + objs +
               policy("p", specWith("    hostname: example.com\n    caCertificateRefs:\n"
                                    "    - {group: \"\", kind: ConfigMap, name: ca}\n"
                                    "    - {group: \"\", kind: Secret, name: s}\n")));
  const auto* c = cluster(r, "kube_default_svc_8443");
  ASSERT_TRUE(c->tls);
  EXPECT_EQ(
      c->tls->ca_pem,
      std::string("-----BEGIN CERTIFICATE-----\nTUlJQ2Zha2VjYQ==\n-----END CERTIFICATE-----\n") +
          "-----BEGIN CERTIFICATE-----\nU0VDT05EZmFrZQ==\n-----END CERTIFICATE-----\n");
  EXPECT_NE(r.status.backends.at(0).find("CA from ConfigMap default/ca + Secret default/s"),
            std::string::npos);
}

TEST(BackendTls, PartlyValidRefsKeepTheGoodOnes) {
  auto r = run(base() + policy("p", specWith("    hostname: example.com\n    caCertificateRefs:\n"
                                             "    - {group: \"\", kind: ConfigMap, name: gone}\n"
                                             "    - {group: \"\", kind: ConfigMap, name: ca}\n"
                                             "    - {group: \"\", kind: Pod, name: x}\n")));
  auto resolved = policyCondition(r, "p", "ResolvedRefs");
  EXPECT_EQ(resolved.status, "False");
  EXPECT_EQ(resolved.reason, "InvalidCACertificateRef");  // the first problem
  EXPECT_NE(resolved.message.find("caCertificateRefs[0]: ConfigMap default/gone not found"),
            std::string::npos);
  EXPECT_NE(resolved.message.find("caCertificateRefs[2]: unsupported kind Pod"), std::string::npos);
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
  const auto* c = cluster(r, "kube_default_svc_8443");
  EXPECT_FALSE(c->tls->fail_closed);
  EXPECT_NE(c->tls->ca_pem.find("TUlJQ2Zha2VjYQ=="), std::string::npos);
}

// ---- wellKnownCACertificates -----------------------------------------------------------

TEST(BackendTls, SystemTrust) {
  auto r = run(
      base() +
      policy("p", specWith("    hostname: example.com\n    wellKnownCACertificates: System\n")));
  const auto* c = cluster(r, "kube_default_svc_8443");
  ASSERT_TRUE(c->tls);
  EXPECT_TRUE(c->tls->use_system_trust);
  EXPECT_TRUE(c->tls->ca_pem.empty());
  EXPECT_FALSE(c->tls->fail_closed);
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
  EXPECT_EQ(policyCondition(r, "p", "ResolvedRefs").status, "True");
  EXPECT_NE(r.status.backends.at(0).find("CA from the system trust store"), std::string::npos);
}

TEST(BackendTls, UnknownWellKnownValueIsInvalid) {
  auto r = run(
      base() +
      policy("p", specWith("    hostname: example.com\n    wellKnownCACertificates: Mozilla\n")));
  auto accepted = policyCondition(r, "p", "Accepted");
  EXPECT_EQ(accepted.status, "False");
  EXPECT_EQ(accepted.reason, "Invalid");
  EXPECT_NE(accepted.message.find("spec.validation.wellKnownCACertificates"), std::string::npos);
  const auto* c = cluster(r, "kube_default_svc_8443");
  EXPECT_TRUE(c->tls->fail_closed);
  EXPECT_FALSE(c->tls->use_system_trust);
}

// ---- schema rules ---------------------------------------------------------------------------

struct SchemaCase {
  const char* name;
  std::string spec;
  const char* field;
};

TEST(BackendTls, SchemaViolationsAreInvalidAndFailClosed) {
  const std::string refs = "    caCertificateRefs: [{group: \"\", kind: ConfigMap, name: ca}]\n";
  std::string many_refs = "    caCertificateRefs:\n";
  for (int i = 0; i < 9; ++i) many_refs += "    - {group: \"\", kind: ConfigMap, name: ca}\n";
  std::string many_sans = "    subjectAltNames:\n";
  for (int i = 0; i < 6; ++i) many_sans += "    - {type: Hostname, hostname: a.example.com}\n";
  std::string many_options = "  options:\n";
  for (int i = 0; i < 17; ++i) many_options += "    example.com/o" + std::to_string(i) + ": x\n";
  std::string many_targets = "  targetRefs:\n";
  for (int i = 0; i < 17; ++i)
    many_targets +=
        "  - {group: \"\", kind: Service, name: svc, sectionName: s" + std::to_string(i) + "}\n";
  many_targets += "  - {group: \"\", kind: Service, name: svc, sectionName: https}\n";
  std::vector<SchemaCase> cases = {
      {"no hostname", specWith(refs), "spec.validation.hostname: required"},
      {"wildcard", specWith("    hostname: \"*.example.com\"\n" + refs), "no wildcard"},
      {"ip", specWith("    hostname: 10.0.0.1\n" + refs), "not an IP address"},
      {"ipv6", specWith("    hostname: \"::1\"\n" + refs), "not an IP address"},
      {"upper", specWith("    hostname: Example.com\n" + refs), "lower-case RFC 1123"},
      {"both trust",
       specWith("    hostname: example.com\n    wellKnownCACertificates: System\n" + refs),
       "must not contain both"},
      {"no trust", specWith("    hostname: example.com\n"), "must specify either"},
      {"9 refs", specWith("    hostname: example.com\n" + many_refs), "at most 8"},
      {"6 sans", specWith("    hostname: example.com\n" + refs + many_sans), "at most 5"},
      {"san hostname missing",
       specWith("    hostname: example.com\n" + refs + "    subjectAltNames: [{type: Hostname}]\n"),
       "subjectAltNames[0].hostname: required"},
      {"san hostname with uri",
       specWith("    hostname: example.com\n" + refs +
                "    subjectAltNames: [{type: Hostname, hostname: a.b, uri: \"spiffe://x/y\"}]\n"),
       "subjectAltNames[0].uri: must not be set"},
      {"san uri missing",
       specWith("    hostname: example.com\n" + refs + "    subjectAltNames: [{type: URI}]\n"),
       "subjectAltNames[0].uri: required"},
      {"san uri with hostname",
       specWith("    hostname: example.com\n" + refs +
                "    subjectAltNames: [{type: URI, uri: \"spiffe://x/y\", hostname: a.b}]\n"),
       "subjectAltNames[0].hostname: must not be set"},
      {"san uri not absolute",
       specWith("    hostname: example.com\n" + refs +
                "    subjectAltNames: [{type: URI, uri: \"just-a-name\"}]\n"),
       "not an absolute URI"},
      {"san type",
       specWith("    hostname: example.com\n" + refs +
                "    subjectAltNames: [{type: IPAddress, hostname: a.b}]\n"),
       "subjectAltNames[0].type: unsupported value"},
      {"17 options", specWith("    hostname: example.com\n" + refs, many_options), "at most 16"},
      {"18 targets", many_targets + "  validation:\n    hostname: example.com\n" + refs,
       "at most 16"},
      {"repeat without section",
       "  targetRefs:\n  - {group: \"\", kind: Service, name: svc}\n"
       "  - {group: \"\", kind: Service, name: svc}\n  validation:\n    hostname: example.com\n" +
           refs,
       "sectionName must be unique"},
      {"repeat mixed section",
       "  targetRefs:\n  - {group: \"\", kind: Service, name: svc, sectionName: https}\n"
       "  - {group: \"\", kind: Service, name: svc}\n  validation:\n    hostname: example.com\n" +
           refs,
       "sectionName must be specified"},
      {"repeat same section",
       "  targetRefs:\n  - {group: \"\", kind: Service, name: svc, sectionName: https}\n"
       "  - {group: \"\", kind: Service, name: svc, sectionName: https}\n  validation:\n"
       "    hostname: example.com\n" +
           refs,
       "sectionName must be unique"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(base() + policy("p", c.spec));
    auto accepted = policyCondition(r, "p", "Accepted");
    EXPECT_EQ(accepted.status, "False");
    EXPECT_EQ(accepted.reason, "Invalid");
    EXPECT_NE(accepted.message.find(c.field), std::string::npos) << accepted.message;
    const auto* cl = cluster(r, "kube_default_svc_8443");
    ASSERT_TRUE(cl->tls);
    EXPECT_TRUE(cl->tls->fail_closed);
    EXPECT_NE(cl->tls->fail_reason.find(c.field), std::string::npos) << cl->tls->fail_reason;
  }
}

TEST(BackendTls, SubjectAltNames) {
  auto r =
      run(base() + policy("p", specWith("    hostname: example.com\n"
                                        "    caCertificateRefs: [{group: \"\", kind: "
                                        "ConfigMap, name: ca}]\n"
                                        "    subjectAltNames:\n"
                                        "    - {type: Hostname, hostname: \"*.example.org\"}\n"
                                        "    - {type: URI, uri: \"spiffe://td/ns/a/sa/b\"}\n")));
  const auto* c = cluster(r, "kube_default_svc_8443");
  ASSERT_TRUE(c->tls);
  ASSERT_EQ(c->tls->subject_alt_names.size(), 2u);
  EXPECT_EQ(c->tls->subject_alt_names[0].type, snapshot::SanMatcher::Type::Hostname);
  EXPECT_EQ(c->tls->subject_alt_names[0].value, "*.example.org");
  EXPECT_EQ(c->tls->subject_alt_names[1].type, snapshot::SanMatcher::Type::Uri);
  EXPECT_EQ(c->tls->subject_alt_names[1].value, "spiffe://td/ns/a/sa/b");
  EXPECT_EQ(c->tls->sni, "example.com");  // still the SNI
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
}

// ---- targets ---------------------------------------------------------------------------------

TEST(BackendTls, SectionNameSelectsOnePort) {
  auto r =
      run(base() +
          policy("p", R"(  targetRefs: [{group: "", kind: Service, name: svc, sectionName: admin}]
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])"));
  EXPECT_FALSE(cluster(r, "kube_default_svc_8443")->tls);
  EXPECT_TRUE(cluster(r, "kube_default_svc_9443")->tls);
}

TEST(BackendTls, UnsupportedTargetKindIsNotApplied) {
  auto r = run(base() + policy("p", R"(  targetRefs:
  - {group: apps, kind: Deployment, name: svc}
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])"));
  EXPECT_FALSE(cluster(r, "kube_default_svc_8443")->tls);
  EXPECT_FALSE(r.status.backend_tls_policies.count("default/p"));
  EXPECT_TRUE(hasNote(r.status.notes, "apps/Deployment svc is not supported"));
  EXPECT_TRUE(hasNote(r.status.notes, "no Gateway route reaches its targets"));

  // Alongside a Service target the policy applies there and says what it skipped.
  auto r2 = run(base() + policy("p", R"(  targetRefs:
  - {group: apps, kind: Deployment, name: web}
  - {group: "", kind: Service, name: svc, sectionName: nope}
  - {group: "", kind: Service, name: svc, sectionName: https}
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])"));
  EXPECT_TRUE(cluster(r2, "kube_default_svc_8443")->tls);
  auto accepted = policyCondition(r2, "p", "Accepted");
  EXPECT_EQ(accepted.status, "True");
  EXPECT_NE(accepted.message.find("not applied to: spec.targetRefs[0]"), std::string::npos);
  EXPECT_NE(accepted.message.find("Service default/svc has no port named nope"), std::string::npos);
}

TEST(BackendTls, OneAncestorPerGatewayReachingTheService) {
  std::string text = base() + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: another, namespace: other}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8081, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: unrelated}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8082}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r2}
spec:
  parentRefs: [{name: another, namespace: other}]
  rules:
  - backendRefs: [{name: svc, port: 9443}]
---
)" + policy("p", kSimpleSpec);
  auto r = run(text);
  const auto& ps = r.status.backend_tls_policies.at("default/p");
  ASSERT_EQ(ps.ancestors.size(), 2u);
  EXPECT_EQ(*ps.ancestors[0].ancestor_ref.ns + "/" + ps.ancestors[0].ancestor_ref.name,
            "default/gw");
  EXPECT_EQ(*ps.ancestors[1].ancestor_ref.ns + "/" + ps.ancestors[1].ancestor_ref.name,
            "other/another");
}

TEST(BackendTls, PolicyWithoutRoutesHasNoStatus) {
  auto r = run(base() + policy("p", R"(  targetRefs: [{group: "", kind: Service, name: lonely}]
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])"));
  EXPECT_FALSE(r.status.backend_tls_policies.count("default/p"));
  EXPECT_TRUE(hasNote(r.status.notes, "Service default/lonely not found"));
}

// ---- options ---------------------------------------------------------------------------------

TEST(BackendTls, OptionsValid) {
  auto r = run(base() + policy("p", std::string(kSimpleSpec) + R"(
  options:
    portico.dev/min-tls-version: "1.2"
    portico.dev/max-tls-version: "1.3"
    portico.dev/cipher-suites: "TLS_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256"
    portico.dev/curves: "X25519:P-256"
    example.com/foreign: "1"
    kgateway.dev/other: x)"));
  const auto* c = cluster(r, "kube_default_svc_8443");
  ASSERT_TRUE(c->tls);
  EXPECT_EQ(c->tls->min_version, "1.2");
  EXPECT_EQ(c->tls->max_version, "1.3");
  EXPECT_EQ(c->tls->cipher_suites, "TLS_AES_128_GCM_SHA256,ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(c->tls->curves, "X25519:P-256");
  EXPECT_FALSE(c->tls->fail_closed);
  auto accepted = policyCondition(r, "p", "Accepted");
  EXPECT_EQ(accepted.status, "True");
  EXPECT_NE(accepted.message.find("example.com/foreign, kgateway.dev/other"), std::string::npos)
      << accepted.message;
}

TEST(BackendTls, OptionsInvalid) {
  struct Case {
    const char* options;
    const char* part;
  };
  std::vector<Case> cases = {
      {"portico.dev/min-tls-version: \"1.1\"", "unsupported value \"1.1\""},
      {"portico.dev/max-tls-version: TLSv1.3", "unsupported value \"TLSv1.3\""},
      {"{portico.dev/min-tls-version: \"1.3\", portico.dev/max-tls-version: \"1.2\"}",
       "is above portico.dev/max-tls-version"},
      {"portico.dev/cipher-suites: \"AES;RC4\"", "not a list of cipher suite names"},
      {"portico.dev/cipher-suites: \"\"", "not a list of cipher suite names"},
      {"portico.dev/curves: \"X25519,,\"", "not a list of curve names"},
      {"portico.dev/alpn: h2", "spec.options[portico.dev/alpn]: unknown option"},
      {"min-tls-version: \"1.2\"", "un-prefixed keys are reserved"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.options);
    auto r =
        run(base() + policy("p", std::string(kSimpleSpec) + "\n  options: " +
                                     (c.options[0] == '{' ? std::string(c.options)
                                                          : "{" + std::string(c.options) + "}")));
    auto accepted = policyCondition(r, "p", "Accepted");
    EXPECT_EQ(accepted.status, "False");
    EXPECT_EQ(accepted.reason, "Invalid");
    EXPECT_NE(accepted.message.find(c.part), std::string::npos) << accepted.message;
    EXPECT_TRUE(cluster(r, "kube_default_svc_8443")->tls->fail_closed);
  }
}

TEST(BackendTls, InjectedSettingsCheckRejectsUnknownCipher) {
  Options o;
  snapshot::UpstreamTls seen;
  o.check_tls_settings = [&](const snapshot::UpstreamTls& t) {
    seen = t;
    return t.cipher_suites == "NOPE" ? std::string("invalid cipher suites 'NOPE'") : std::string();
  };
  auto r = run(base() + policy("p", std::string(kSimpleSpec) +
                                        "\n  options: {portico.dev/cipher-suites: NOPE}"),
               o);
  EXPECT_EQ(seen.cipher_suites, "NOPE");
  EXPECT_TRUE(seen.ca_pem.empty());  // only the settings under test
  auto accepted = policyCondition(r, "p", "Accepted");
  EXPECT_EQ(accepted.reason, "Invalid");
  EXPECT_NE(accepted.message.find("invalid cipher suites 'NOPE'"), std::string::npos);
}

// ---- conflicts -------------------------------------------------------------------------------

TEST(BackendTls, ConflictOldestWins) {
  auto r =
      run(base() + policy("a-new", kSimpleSpec, ", creationTimestamp: \"2024-05-01T00:00:00Z\"") +
          policy("z-old",
                 specWith("    hostname: old.example.com\n    caCertificateRefs: [{group: "
                          "\"\", kind: ConfigMap, name: ca}]\n"),
                 ", creationTimestamp: \"2024-02-01T00:00:00Z\""));
  EXPECT_EQ(cluster(r, "kube_default_svc_8443")->tls->policy, "default/z-old");
  EXPECT_EQ(cluster(r, "kube_default_svc_8443")->tls->sni, "old.example.com");
  EXPECT_EQ(policyCondition(r, "z-old", "Accepted").status, "True");
  auto lost = policyCondition(r, "a-new", "Accepted");
  EXPECT_EQ(lost.status, "False");
  EXPECT_EQ(lost.reason, "Conflicted");
  EXPECT_NE(lost.message.find("default/z-old"), std::string::npos);
}

TEST(BackendTls, ConflictSameAgeByName) {
  auto r = run(base() + policy("b", kSimpleSpec) + policy("a", kSimpleSpec));
  EXPECT_EQ(cluster(r, "kube_default_svc_8443")->tls->policy, "default/a");
  EXPECT_EQ(policyCondition(r, "a", "Accepted").status, "True");
  EXPECT_EQ(policyCondition(r, "b", "Accepted").reason, "Conflicted");
}

TEST(BackendTls, SectionNameBeatsWholeServiceWithoutConflict) {
  auto r = run(
      base() + policy("all", kSimpleSpec, ", creationTimestamp: \"2020-01-01T00:00:00Z\"") +
      policy("port", R"(  targetRefs: [{group: "", kind: Service, name: svc, sectionName: https}]
  validation:
    hostname: port.example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])"));
  EXPECT_EQ(cluster(r, "kube_default_svc_8443")->tls->policy, "default/port");
  EXPECT_EQ(cluster(r, "kube_default_svc_9443")->tls->policy, "default/all");
  EXPECT_EQ(policyCondition(r, "all", "Accepted").status, "True");
  EXPECT_EQ(policyCondition(r, "port", "Accepted").status, "True");
}

TEST(BackendTls, SameSectionNameConflicts) {
  const char* spec = R"(  targetRefs: [{group: "", kind: Service, name: svc, sectionName: https}]
  validation:
    hostname: port.example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}])";
  auto r = run(base() + policy("one", spec) + policy("two", spec));
  EXPECT_EQ(policyCondition(r, "one", "Accepted").status, "True");
  EXPECT_EQ(policyCondition(r, "two", "Accepted").reason, "Conflicted");
  EXPECT_FALSE(cluster(r, "kube_default_svc_9443")->tls);
}

TEST(BackendTls, InvalidPolicyDoesNotCompeteButFailsClosedAlone) {
  // An older schema-invalid policy would never have been admitted by an API
  // server: the valid one governs and nobody is Conflicted.
  std::string bad = specWith(
      "    hostname: \"*.bad\"\n    caCertificateRefs: [{group: \"\", "
      "kind: ConfigMap, name: ca}]\n");
  auto r = run(base() + policy("bad", bad, ", creationTimestamp: \"2020-01-01T00:00:00Z\"") +
               policy("good", kSimpleSpec));
  EXPECT_EQ(cluster(r, "kube_default_svc_8443")->tls->policy, "default/good");
  EXPECT_FALSE(cluster(r, "kube_default_svc_8443")->tls->fail_closed);
  EXPECT_EQ(policyCondition(r, "good", "Accepted").status, "True");
  EXPECT_EQ(policyCondition(r, "bad", "Accepted").reason, "Invalid");

  auto alone = run(base() + policy("bad", bad));
  EXPECT_TRUE(cluster(alone, "kube_default_svc_8443")->tls->fail_closed);
  EXPECT_EQ(cluster(alone, "kube_default_svc_8443")->tls->policy, "default/bad");
}

TEST(BackendTls, OlderPolicyWithBrokenCaStillWinsAndFailsClosed) {
  auto r = run(base() +
               policy("old",
                      specWith("    hostname: example.com\n    caCertificateRefs: [{group: \"\", "
                               "kind: ConfigMap, name: gone}]\n"),
                      ", creationTimestamp: \"2020-01-01T00:00:00Z\"") +
               policy("new", kSimpleSpec));
  const auto* c = cluster(r, "kube_default_svc_8443");
  EXPECT_EQ(c->tls->policy, "default/old");
  EXPECT_TRUE(c->tls->fail_closed);
  EXPECT_EQ(policyCondition(r, "new", "Accepted").reason, "Conflicted");
  EXPECT_EQ(policyCondition(r, "old", "Accepted").reason, "NoValidCACertificate");
}

// ---- Gateway client certificate --------------------------------------------------------------

std::string tlsSecret(const std::string& name, const std::string& ns, bool with_key = true,
                      const char* cert = kFakeCa) {
  std::string s = "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: " + ns +
                  "}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"" + cert + "\"\n";
  if (with_key) s += "  tls.key: \"" + std::string(kFakeKey) + "\"\n";
  return s + "---\n";
}

std::string clientRef(const std::string& ref) {
  return "  tls:\n    backend:\n      clientCertificateRef: " + ref + "\n";
}

const Condition* gatewayCondition(const Result& r, const std::string& key,
                                  const std::string& type) {
  return find(r.status.gateways.at(key).conditions, type);
}

TEST(BackendTls, GatewayClientCertificate) {
  auto r = run(base(clientRef("{name: client}")) + tlsSecret("client", "default") +
               policy("p", kSimpleSpec));
  // The certificate belongs to the Gateway's listeners, not to the cluster.
  ASSERT_EQ(r.snapshot->listeners.size(), 1u);
  const auto& l = r.snapshot->listeners[0];
  EXPECT_EQ(l.gateway, "default/gw");
  ASSERT_TRUE(l.backend_client_certificate);
  EXPECT_EQ(l.backend_client_certificate->name, "default/client");
  EXPECT_NE(l.backend_client_certificate->key_pem.find("PRIVATE KEY"), std::string::npos);
  EXPECT_NE(l.backend_client_fingerprint, 0u);
  const auto* rr = gatewayCondition(r, "default/gw", "ResolvedRefs");
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->status, "True");
  EXPECT_EQ(rr->observed_generation, 2);
}

// The pool key is (cluster trust fingerprint, listener client fingerprint):
// adding a client certificate changes the second and leaves the first.
TEST(BackendTls, GatewayClientCertificateChangesListenerFingerprint) {
  auto with = run(base(clientRef("{name: client}")) + tlsSecret("client", "default") +
                  policy("p", kSimpleSpec));
  auto without = run(base() + policy("p", kSimpleSpec));
  EXPECT_EQ(cluster(with, "kube_default_svc_8443")->tls->fingerprint,
            cluster(without, "kube_default_svc_8443")->tls->fingerprint);
  EXPECT_NE(with.snapshot->listeners.at(0).backend_client_fingerprint, 0u);
  EXPECT_EQ(without.snapshot->listeners.at(0).backend_client_fingerprint, 0u);
}

TEST(BackendTls, GatewayClientCertificateProblems) {
  struct Case {
    const char* name;
    std::string gateway_extra;
    std::string objects;
    const char* reason;
    const char* part;
  };
  std::vector<Case> cases = {
      {"missing", clientRef("{name: nope}"), "", "InvalidClientCertificateRef",
       "Secret default/nope not found"},
      {"no key", clientRef("{name: client}"), tlsSecret("client", "default", false),
       "InvalidClientCertificateRef", "lacks tls.crt or tls.key"},
      {"kind", clientRef("{kind: ConfigMap, name: ca}"), "", "InvalidClientCertificateRef",
       "unsupported kind ConfigMap"},
      {"group", clientRef("{group: example.com, kind: Secret, name: client}"),
       tlsSecret("client", "default"), "InvalidClientCertificateRef",
       "unsupported kind example.com/Secret"},
      {"cross namespace", clientRef("{name: client, namespace: certs}"),
       tlsSecret("client", "certs"), "RefNotPermitted", "no ReferenceGrant"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(base(c.gateway_extra) + c.objects + policy("p", kSimpleSpec));
    const auto* rr = gatewayCondition(r, "default/gw", "ResolvedRefs");
    ASSERT_TRUE(rr);
    EXPECT_EQ(rr->status, "False");
    EXPECT_EQ(rr->reason, c.reason);
    EXPECT_NE(rr->message.find(c.part), std::string::npos) << rr->message;
    EXPECT_NE(rr->message.find("spec.tls.backend.clientCertificateRef"), std::string::npos);
    EXPECT_EQ(gatewayCondition(r, "default/gw", "Accepted")->status, "True");
    const auto* cl = cluster(r, "kube_default_svc_8443");
    ASSERT_TRUE(cl->tls);
    EXPECT_FALSE(r.snapshot->listeners.at(0).backend_client_certificate);
    EXPECT_FALSE(cl->tls->fail_closed);  // the policy itself is fine
  }
}

TEST(BackendTls, GatewayClientCertificateCrossNamespaceWithGrant) {
  auto r = run(base(clientRef("{name: client, namespace: certs}")) + tlsSecret("client", "certs") +
               R"(apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: "", kind: Secret}]
---
)" + policy("p", kSimpleSpec));
  EXPECT_EQ(gatewayCondition(r, "default/gw", "ResolvedRefs")->status, "True");
  EXPECT_EQ(r.snapshot->listeners.at(0).backend_client_certificate->name, "certs/client");
}

TEST(BackendTls, NoClientCertificateConditionWithoutRef) {
  auto r = run(base() + policy("p", kSimpleSpec));
  EXPECT_EQ(gatewayCondition(r, "default/gw", "ResolvedRefs"), nullptr);
}

TEST(BackendTls, TwoGatewaysEachPresentTheirOwnCertificate) {
  std::string text = base(clientRef("{name: client}")) + tlsSecret("client", "default") +
                     tlsSecret("other-client", "default", true, kFakeCa2) + R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: zz}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8081}
  tls:
    backend:
      clientCertificateRef: {name: other-client}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r2}
spec:
  parentRefs: [{name: zz}]
  rules:
  - backendRefs: [{name: svc, port: 8443}]
---
)" + policy("p", kSimpleSpec);
  auto r = run(text);
  // One cluster, one trust setting; the client certificate follows the
  // Gateway the request came through.
  ASSERT_TRUE(cluster(r, "kube_default_svc_8443")->tls);
  std::map<std::string, std::string> by_gateway;
  for (const auto& l : r.snapshot->listeners) {
    ASSERT_TRUE(l.backend_client_certificate) << l.gateway;
    by_gateway[l.gateway] = l.backend_client_certificate->name;
  }
  EXPECT_EQ(by_gateway["default/gw"], "default/client");
  EXPECT_EQ(by_gateway["default/zz"], "default/other-client");
  const auto* rr = gatewayCondition(r, "default/zz", "ResolvedRefs");
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->status, "True");
}

// ---- injected inspector: validity warnings ------------------------------------------------------

TEST(BackendTls, WarnsAboutExpiredAndNotYetValidCertificates) {
  Options o;
  int64_t now = 0;
  ASSERT_TRUE(parseRfc3339("2025-01-01T00:00:00Z", now));
  o.inspect_certificates = [&](std::string_view pem) {
    PemInspection out;
    out.dates_known = true;
    if (pem.find("TUlJ") != std::string_view::npos)
      out.certificates.push_back({"CN=example.com", now - 2000, now - 1000});  // expired
    else
      out.certificates.push_back({"CN=client", now + 1000, now + 2000});  // not yet valid
    return out;
  };
  o.check_key_pair = [](std::string_view, std::string_view) { return std::string(); };
  std::string secret = std::string("apiVersion: v1\nkind: Secret\nmetadata: {name: client}\n") +
                       "stringData: {tls.crt: \"" + kFakeCa2 + "\", tls.key: \"" + kFakeKey +
                       "\"}\n---\n";
  auto r = run(base(clientRef("{name: client}")) + secret + policy("p", kSimpleSpec), o);
  ASSERT_EQ(r.status.warnings.size(), 2u);
  EXPECT_EQ(r.status.warnings[0],
            "BackendTLSPolicy default/p: ConfigMap default/ca ca.crt: certificate 1 "
            "(CN=example.com) expired at " +
                common::formatRfc3339(now - 1000));
  EXPECT_EQ(r.status.warnings[1],
            "Gateway default/gw: client certificate Secret default/client tls.crt: certificate 1 "
            "(CN=client) is not valid before " +
                common::formatRfc3339(now + 1000));
  // Expiry is a warning, not a translation change: the handshake reports it.
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
  EXPECT_FALSE(cluster(r, "kube_default_svc_8443")->tls->fail_closed);
}

TEST(BackendTls, InjectedKeyCheckRejectsMismatchedKey) {
  Options o;
  o.check_key_pair = [](std::string_view, std::string_view) {
    return std::string("the private key does not match the certificate");
  };
  auto r = run(
      base(clientRef("{name: client}")) + tlsSecret("client", "default") + policy("p", kSimpleSpec),
      o);
  const auto* rr = gatewayCondition(r, "default/gw", "ResolvedRefs");
  EXPECT_EQ(rr->reason, "InvalidClientCertificateRef");
  EXPECT_NE(rr->message.find("does not match"), std::string::npos);
}

TEST(BackendTls, InjectedInspectorErrorMakesRefInvalid) {
  Options o;
  o.inspect_certificates = [](std::string_view) {
    PemInspection out;
    out.error = "certificate 1: bad base64 decode";
    return out;
  };
  auto r = run(base() + policy("p", kSimpleSpec), o);
  auto rr = policyCondition(r, "p", "ResolvedRefs");
  EXPECT_EQ(rr.reason, "InvalidCACertificateRef");
  EXPECT_NE(rr.message.find("bad base64 decode"), std::string::npos);
}

// ---- helpers ------------------------------------------------------------------------------------

TEST(BackendTlsHelpers, Fingerprint) {
  snapshot::UpstreamTls t;
  t.sni = "example.com";
  t.ca_pem = "ca";
  uint64_t f = upstreamTlsFingerprint(t);
  EXPECT_NE(f, 0u);
  EXPECT_EQ(f, upstreamTlsFingerprint(t));
  auto differs = [&](auto change) {
    snapshot::UpstreamTls u = t;
    change(u);
    return upstreamTlsFingerprint(u) != f;
  };
  EXPECT_TRUE(differs([](auto& u) { u.sni = "example.org"; }));
  EXPECT_TRUE(differs([](auto& u) { u.ca_pem = "cb"; }));
  EXPECT_TRUE(differs([](auto& u) { u.use_system_trust = true; }));
  EXPECT_TRUE(differs([](auto& u) { u.subject_alt_names.push_back({}); }));
  EXPECT_TRUE(differs([](auto& u) {
    u.subject_alt_names.push_back({snapshot::SanMatcher::Type::Uri, "x"});
  }));
  EXPECT_TRUE(differs([](auto& u) { u.min_version = "1.3"; }));
  EXPECT_TRUE(differs([](auto& u) { u.max_version = "1.2"; }));
  EXPECT_TRUE(differs([](auto& u) { u.cipher_suites = "X"; }));
  EXPECT_TRUE(differs([](auto& u) { u.curves = "X25519"; }));
  EXPECT_TRUE(differs([](auto& u) { u.fail_closed = true; }));
  // Field boundaries count: moving a character between fields changes it.
  snapshot::UpstreamTls a, b;
  a.sni = "ab";
  a.ca_pem = "c";
  b.sni = "a";
  b.ca_pem = "bc";
  EXPECT_NE(upstreamTlsFingerprint(a), upstreamTlsFingerprint(b));
  // The fingerprint field itself is not an input.
  snapshot::UpstreamTls c = t;
  c.fingerprint = 42;
  EXPECT_EQ(upstreamTlsFingerprint(c), f);
}

TEST(BackendTlsHelpers, PreciseHostname) {
  EXPECT_TRUE(isPreciseHostname("example.com"));
  EXPECT_TRUE(isPreciseHostname("a-b.c1.example"));
  EXPECT_TRUE(isPreciseHostname("localhost"));
  EXPECT_FALSE(isPreciseHostname(""));
  EXPECT_FALSE(isPreciseHostname("*.example.com"));
  EXPECT_FALSE(isPreciseHostname("Example.com"));
  EXPECT_FALSE(isPreciseHostname("-a.example.com"));
  EXPECT_FALSE(isPreciseHostname("a..b"));
  EXPECT_FALSE(isPreciseHostname("example.com."));
  EXPECT_FALSE(isPreciseHostname("192.168.0.1"));
  EXPECT_FALSE(isPreciseHostname("::1"));
  EXPECT_FALSE(isPreciseHostname(std::string(64, 'a') + ".com"));
}

TEST(BackendTlsHelpers, Rfc3339) {
  int64_t s = 0;
  ASSERT_TRUE(parseRfc3339("1970-01-01T00:00:00Z", s));
  EXPECT_EQ(s, 0);
  ASSERT_TRUE(parseRfc3339("2025-04-09T22:06:49Z", s));
  EXPECT_EQ(s, 1744236409);
  EXPECT_EQ(common::formatRfc3339(1744236409), "2025-04-09T22:06:49Z");
  ASSERT_TRUE(parseRfc3339("2024-02-29T12:00:00.123Z", s));
  EXPECT_EQ(common::formatRfc3339(s), "2024-02-29T12:00:00Z");
  EXPECT_FALSE(parseRfc3339("2024-02-29 12:00:00Z", s));
  EXPECT_FALSE(parseRfc3339("2024-02-29T12:00:00+01:00", s));
  EXPECT_FALSE(parseRfc3339("", s));
}

TEST(BackendTlsHelpers, StructuralPem) {
  auto one = inspectPemStructurally(
      "junk\n-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n");
  EXPECT_TRUE(one.error.empty());
  EXPECT_EQ(one.certificates.size(), 1u);
  EXPECT_FALSE(one.dates_known);
  auto two = inspectPemStructurally(
      "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
      "-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(two.certificates.size(), 2u);
  EXPECT_FALSE(inspectPemStructurally("").error.empty());
  EXPECT_FALSE(
      inspectPemStructurally("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----")
          .error.empty());
  EXPECT_NE(inspectPemStructurally("-----BEGIN CERTIFICATE-----\nQUJD\n").error.find("no END"),
            std::string::npos);
  EXPECT_NE(inspectPemStructurally("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----")
                .error.find("empty"),
            std::string::npos);
  EXPECT_NE(inspectPemStructurally("-----BEGIN CERTIFICATE-----\nA*B\n-----END CERTIFICATE-----")
                .error.find("not base64"),
            std::string::npos);
}

}  // namespace
}  // namespace portico::translate

namespace portico::translate {
namespace {

TEST(BackendTls, ExternalNameServiceWithSystemTrust) {
  auto r = run(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: ext, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: api.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: ext}]
  validation:
    hostname: api.example.com
    wellKnownCACertificates: System
)");
  const auto* c = cluster(r, "kube_default_ext_443");
  ASSERT_TRUE(c && c->tls);
  EXPECT_EQ(c->dns_name, "api.example.com");
  EXPECT_TRUE(c->tls->use_system_trust);
  EXPECT_EQ(c->tls->sni, "api.example.com");
  EXPECT_EQ(policyCondition(r, "p", "Accepted").status, "True");
}

}  // namespace
}  // namespace portico::translate
