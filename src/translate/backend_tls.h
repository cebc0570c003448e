#pragma once
// The backend TLS pass of translate(): BackendTLSPolicy (v1alpha3 and v1) and
// the Gateway's spec.tls.backend.clientCertificateRef become Cluster::tls in
// the snapshot, BackendTLSPolicy status ancestors, a Gateway ResolvedRefs
// condition, and lines for `portico check`.
//
// Pure like the rest of translate/: certificate parsing that needs OpenSSL is
// injected through Options (see tls/pem.h); without it, PEM is only checked
// structurally, which is what unit and golden tests use.
//
// Decisions where the spec is silent or leaves a choice:
// - Rules the API server would enforce (OpenAPI/CEL: targetRefs 1..16 and
//   distinct, hostname, caCertificateRefs XOR wellKnownCACertificates, SANs,
//   options <= 16, wellKnownCACertificates enum) give Accepted=False Invalid.
//   Such a policy could not exist in a real cluster, so it takes no part in
//   conflict resolution; but when no other policy covers its target, the
//   target fails closed (the user asked for TLS; we never send plaintext).
// - Implementation-specific problems (portico.dev options, unusable CA refs)
//   don't change precedence: the winner fails closed if it can't be honoured.
// - A targetRef that resolves to nothing (non-Service kind, missing Service,
//   unknown port name) has no Gateway to report under: it is named in
//   status.notes and in the Accepted message of ancestors reached otherwise.
//   A policy with no ancestor at all gets a note instead of status.
// - Un-prefixed option keys are reserved for Gateway API, which defines none
//   yet: Invalid (we can't honour them). Other domains' keys are ignored.
// - Expired / not-yet-valid certificates are warnings, not errors: the
//   handshake fails with a precise reason anyway.
// - One client certificate per cluster: when Gateways with different
//   certificates reach the same cluster, the first Gateway by namespace/name
//   with a valid one wins; the others say so in their ResolvedRefs message.
//   The Gateway ResolvedRefs condition is only set when clientCertificateRef is.
//   An unusable client certificate is simply not presented (the policy still
//   verifies the backend); the Secret's type isn't checked, its keys are.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::k8s {
struct ResourceSet;
struct ConfigMap;
struct Secret;
}  // namespace portico::k8s
namespace portico::snapshot {
struct Snapshot;
struct UpstreamTls;
}  // namespace portico::snapshot

namespace portico::translate {

struct Options;
struct StatusReport;

// One certificate of a PEM bundle, as an inspector read it.
struct PemCertificate {
  std::string subject;     // e.g. "CN=example.com"
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;
};

struct PemInspection {
  std::vector<PemCertificate> certificates;
  std::string error;         // non-empty: not a usable certificate bundle
  bool dates_known = false;  // false for the structural check (no validity dates)
};

// Parses every certificate of a PEM text.
using PemInspector = std::function<PemInspection(std::string_view pem)>;
// "" when `key_pem` holds a private key matching the first certificate of
// `cert_pem`; otherwise why not.
using KeyPairChecker =
    std::function<std::string(std::string_view cert_pem, std::string_view key_pem)>;
// "" when the TLS library accepts min/max version, cipher_suites and curves.
using TlsSettingsChecker = std::function<std::string(const snapshot::UpstreamTls& tls)>;

// What translate() uses when no inspector is injected: BEGIN/END CERTIFICATE
// blocks with base64 between them (no dates, no DER parsing).
PemInspection inspectPemStructurally(std::string_view pem);

// The certificates of a PEM text, read by the inspector Options injects, else
// structurally.
PemInspection inspectPem(const Options& options, std::string_view pem);

// "" when `cert_pem` holds a certificate and `key_pem` its private key: the
// injected Options checks when set, else the structural PEM checks (used by
// HTTPS listener certificates and Gateway backend client certificates).
struct Options;
std::string checkCertificateKeyPair(const Options& options, std::string_view cert_pem,
                                    std::string_view key_pem);

// The trust bundle under key ca.crt of a ConfigMap (data, then binaryData)
// or a Secret; pass the one found, or neither when the object does not
// exist. Returns "" and sets `pem`, or why it can't be a trust anchor, worded
// to follow its source's name ("ConfigMap ns/ca" + " not found").
// `inspect` parses a PEM bundle (callers cache it).
std::string readCaBundle(const k8s::ConfigMap* config_map, const k8s::Secret* secret,
                         const std::function<const PemInspection&(std::string_view)>& inspect,
                         const std::string*& pem);

// Runs the pass on a translated snapshot: sets Cluster::tls, fills
// status.backend_tls_policies, adds the Gateway ResolvedRefs condition for
// backend client certificates, and appends to status.notes / warnings /
// backends. Uses the HTTPRoute statuses already in `status` to know which
// Gateways reach which clusters.
void applyBackendTls(const k8s::ResourceSet& resources, const Options& options,
                     snapshot::Snapshot& snap, StatusReport& status);

// Stable 64-bit FNV-1a over every field of `tls` that changes a connection
// (never 0): the upstream pool and client-context key.
uint64_t upstreamTlsFingerprint(const snapshot::UpstreamTls& tls);

// Gateway API PreciseHostname (lower-case RFC 1123 subdomain, no wildcard),
// and not an IP address literal.
bool isPreciseHostname(std::string_view host);

// RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac]Z" <-> unix seconds (UTC only).
bool parseRfc3339(std::string_view text, int64_t& seconds);

}  // namespace portico::translate
