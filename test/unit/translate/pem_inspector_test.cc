// The OpenSSL inspector (tls/pem.h) injected into translate() the way the
// server and `portico check` do it, with certificates generated here at test
// time (never checked in).
#include "server/tls_checks.h"
#include "tls/pem.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "common/time.h"

#include <ctime>
#include <memory>

#include "k8s/decode.h"
#include "tls/tls.h"
#include "translate/translate.h"

namespace portico::translate {
namespace {

struct Generated {
  std::string cert_pem;
  std::string key_pem;
};

std::string bioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<size_t>(n));
}

// A self-signed P-256 certificate for `cn`, valid [now+from, now+to] seconds.
Generated makeCert(const std::string& cn, long from, long to) {
  Generated g;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), from);
  X509_gmtime_adj(X509_getm_notAfter(x), to);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  BIO* cb = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cb, x);
  g.cert_pem = bioText(cb);
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
  g.key_pem = bioText(kb);
  BIO_free(cb);
  BIO_free(kb);
  X509_free(x);
  EVP_PKEY_free(key);
  return g;
}

Options realOptions(const std::string& now) {
  Options o;
  o.now = now;
  server::addTlsChecks(o);
  return o;
}

std::string nowText() { return common::formatRfc3339(static_cast<int64_t>(std::time(nullptr))); }

// YAML block scalar of `pem` indented by `indent` spaces.
std::string block(const std::string& pem, int indent) {
  std::string out = "|\n";
  size_t pos = 0;
  while (pos < pem.size()) {
    size_t end = pem.find('\n', pos);
    if (end == std::string::npos) end = pem.size();
    out += std::string(static_cast<size_t>(indent), ' ') + pem.substr(pos, end - pos) + "\n";
    pos = end + 1;
  }
  return out;
}

std::string manifests(const std::string& ca_pem, const std::string& client_cert,
                      const std::string& client_key, const std::string& options = "") {
  return R"(
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: c
  listeners:
  - {name: http, protocol: HTTP, port: 8080}
  tls:
    backend:
      clientCertificateRef: {name: client}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: svc, port: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{name: https, port: 8443}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data:
  ca.crt: )" +
         block(ca_pem, 4) +
         R"(---
apiVersion: v1
kind: Secret
metadata: {name: client}
type: kubernetes.io/tls
stringData:
  tls.crt: )" +
         block(client_cert, 4) + "  tls.key: " + block(client_key, 4) + R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: svc}]
  validation:
    hostname: example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]
)" + options;
}

Result run(const std::string& text, const Options& o) {
  k8s::ResourceSet set;
  k8s::decodeText(text, "t.yaml", set);
  k8s::finalize(set);
  for (auto& e : set.errors) ADD_FAILURE() << e.toString();
  for (auto& p : set.backend_tls_policies) p.metadata.generation = 1;
  return translate(set, o);
}

// What /certs shows of a certificate: serial as lower-case hex, each
// subjectAltName with Envoy's field name.
TEST(PemInspector, SerialAndSubjectAltNames) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 0x0102AB);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(
      nullptr, &ctx, NID_subject_alt_name,
      "DNS:a.example.com,URI:spiffe://td/ns/default/sa/b,IP:10.0.0.1,IP:2001:db8::1,email:x@y");
  ASSERT_NE(ext, nullptr);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x, key, EVP_sha256());
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  const std::string pem = bioText(b);
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(key);

  const auto info = tls::inspectPemCertificates(pem);
  ASSERT_EQ(info.error, "");
  ASSERT_EQ(info.certificates.size(), 1u);
  EXPECT_EQ(info.certificates[0].serial, "0102ab");
  const std::vector<std::pair<std::string, std::string>> want = {
      {"dns", "a.example.com"},
      {"uri", "spiffe://td/ns/default/sa/b"},
      {"ip_address", "10.0.0.1"},
      {"ip_address", "2001:db8::1"}};
  EXPECT_EQ(info.certificates[0].subject_alt_names, want) << "email SANs are not listed";
}

TEST(PemInspector, ParsesGeneratedBundle) {
  auto a = makeCert("a.example", -60, 3600);
  auto b = makeCert("b.example", -60, 7200);
  auto info = tls::inspectPemCertificates(a.cert_pem + b.cert_pem);
  ASSERT_TRUE(info.error.empty()) << info.error;
  ASSERT_EQ(info.certificates.size(), 2u);
  EXPECT_EQ(info.certificates[0].subject, "CN=a.example");
  EXPECT_EQ(info.certificates[1].subject, "CN=b.example");
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  EXPECT_NEAR(static_cast<double>(info.certificates[0].not_after), static_cast<double>(now + 3600),
              5.0);
  EXPECT_NEAR(static_cast<double>(info.certificates[0].not_before), static_cast<double>(now - 60),
              5.0);
  EXPECT_FALSE(tls::inspectPemCertificates("").error.empty());
  EXPECT_FALSE(tls::inspectPemCertificates(a.key_pem).error.empty());
  // Structurally fine, but not DER inside: only the real parser sees it.
  std::string fake = "-----BEGIN CERTIFICATE-----\nQUJDREVG\n-----END CERTIFICATE-----\n";
  EXPECT_TRUE(inspectPemStructurally(fake).error.empty());
  EXPECT_FALSE(tls::inspectPemCertificates(fake).error.empty());
  // A good certificate followed by a broken one is an error, not a silent drop.
  EXPECT_FALSE(tls::inspectPemCertificates(a.cert_pem + fake).error.empty());
}

TEST(PemInspector, KeyPairCheck) {
  auto a = makeCert("a.example", -60, 3600);
  auto b = makeCert("b.example", -60, 3600);
  EXPECT_EQ(tls::checkCertificateKeyPair(a.cert_pem, a.key_pem), "");
  EXPECT_NE(tls::checkCertificateKeyPair(a.cert_pem, b.key_pem), "");
  EXPECT_NE(tls::checkCertificateKeyPair(a.cert_pem, "nonsense"), "");
}

TEST(PemInspector, TranslateWithRealInspector) {
  auto ca = makeCert("example.com", -60, 3600);
  auto client = makeCert("portico-client", -60, 3600);
  auto r = run(manifests(ca.cert_pem, client.cert_pem, client.key_pem), realOptions(nowText()));
  const auto* c = r.snapshot->findCluster("kube_default_svc_8443");
  ASSERT_TRUE(c && c->tls);
  EXPECT_FALSE(c->tls->fail_closed);
  EXPECT_EQ(c->tls->ca_pem, ca.cert_pem);
  ASSERT_TRUE(r.snapshot->listeners.at(0).backend_client_certificate);
  EXPECT_TRUE(r.status.warnings.empty());
  // The data plane accepts what translate produced.
  EXPECT_EQ(tls::validateClientSettings(*c->tls), "");
}

TEST(PemInspector, ExpiredAndFutureCertificatesWarn) {
  auto ca = makeCert("example.com", -7200, -3600);       // expired an hour ago
  auto client = makeCert("portico-client", 3600, 7200);  // valid in an hour
  auto r = run(manifests(ca.cert_pem, client.cert_pem, client.key_pem), realOptions(nowText()));
  ASSERT_EQ(r.status.warnings.size(), 2u);
  EXPECT_NE(r.status.warnings[0].find("(CN=example.com) expired at"), std::string::npos)
      << r.status.warnings[0];
  EXPECT_NE(r.status.warnings[1].find("(CN=portico-client) is not valid before"), std::string::npos)
      << r.status.warnings[1];
}

TEST(PemInspector, MismatchedClientKeyIsInvalidRef) {
  auto ca = makeCert("example.com", -60, 3600);
  auto client = makeCert("portico-client", -60, 3600);
  auto other = makeCert("other", -60, 3600);
  auto r = run(manifests(ca.cert_pem, client.cert_pem, other.key_pem), realOptions(nowText()));
  const auto& conds = r.status.gateways.at("default/gw").conditions;
  auto it = std::find_if(conds.begin(), conds.end(),
                         [](const Condition& c) { return c.type == "ResolvedRefs"; });
  ASSERT_NE(it, conds.end());
  EXPECT_EQ(it->reason, "InvalidClientCertificateRef");
  EXPECT_NE(it->message.find("does not match"), std::string::npos) << it->message;
}

TEST(PemInspector, UnknownCipherIsInvalidPolicy) {
  auto ca = makeCert("example.com", -60, 3600);
  auto client = makeCert("portico-client", -60, 3600);
  auto r = run(manifests(ca.cert_pem, client.cert_pem, client.key_pem,
                         "  options: {portico.dev/cipher-suites: NOT-A-CIPHER}\n"),
               realOptions(nowText()));
  const auto& a = r.status.backend_tls_policies.at("default/p").ancestors.at(0);
  EXPECT_EQ(a.conditions.at(0).reason, "Invalid");
  EXPECT_NE(a.conditions.at(0).message.find("NOT-A-CIPHER"), std::string::npos)
      << a.conditions.at(0).message;
  EXPECT_TRUE(r.snapshot->findCluster("kube_default_svc_8443")->tls->fail_closed);
}

}  // namespace
}  // namespace portico::translate
