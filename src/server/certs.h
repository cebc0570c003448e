#pragma once
// The admin port's /certs: every certificate the running config loaded, in
// the shape of Envoy's admin Certificates message, so that "has the CA in my
// ConfigMap expired?" has an answer without kubectl and openssl.
#include <cstdint>
#include <string>
#include <unordered_map>

#include "snapshot/snapshot.h"

namespace portico::server {

// JSON: {"certificates": [{"name", "ca_cert": [...], "cert_chain": [...]}]}.
// One entry per backend TLS cluster (its trust anchors; "system trust store"
// for wellKnownCACertificates, and "error" when its policy fails closed), per
// HTTPS listener certificate and per Gateway backend client certificate.
// Each certificate:
// path, serial_number, subject, subject_alt_names, days_until_expiration (a
// string, as proto3 JSON prints Envoy's uint64; 0 once expired),
// valid_from, expiration_time (RFC 3339). `now` is unix seconds.
std::string certsJson(const snapshot::Snapshot& snapshot, int64_t now);

// The earliest notAfter among the certificates `snapshot` loads (0: none),
// for Envoy's server.days_until_first_cert_expiring. Runs on the reload
// thread; remembers each PEM's answer from the previous reload, so an edit
// re-parses only the certificates it changed (10,000 CA bundles would
// otherwise cost ~0.3 s per reload).
class CertExpiry {
 public:
  int64_t first(const snapshot::Snapshot& snapshot);

 private:
  std::unordered_map<std::string, int64_t> previous_;  // PEM -> earliest notAfter
};

}  // namespace portico::server
