#pragma once
// Certificate inspection for the control plane: translate() stays free of
// OpenSSL and gets these injected (server reload and `portico check`) to
// check CA bundles and client certificates and warn about validity dates.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::tls {

struct PemCertificateInfo {
  std::string subject;     // RFC 2253, e.g. "CN=example.com"
  std::string serial;      // lower-case hex, as Envoy's /certs shows it
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;
  // subjectAltName entries as (kind, value), kind "dns", "uri" or
  // "ip_address" (Envoy's SubjectAlternateName field names); others skipped.
  std::vector<std::pair<std::string, std::string>> subject_alt_names;
};

struct PemBundleInfo {
  std::vector<PemCertificateInfo> certificates;
  std::string error;  // "" when every certificate block parsed and there is at least one
};

// Parses every CERTIFICATE block of `pem`.
PemBundleInfo inspectPemCertificates(std::string_view pem);

// "" when `key_pem` is a private key matching the first certificate of
// `cert_pem`; otherwise the reason.
std::string checkCertificateKeyPair(std::string_view cert_pem, std::string_view key_pem);

}  // namespace portico::tls
