#pragma once
// The admin port's /certs: every certificate the running config loaded, in
// the shape of Envoy's admin Certificates message, so that "has the CA in my
// ConfigMap expired?" has an answer without kubectl and openssl.
#include <cstdint>
#include <string>

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

}  // namespace portico::server
