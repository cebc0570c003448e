#include "server/certs.h"

#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "tls/pem.h"

namespace portico::server {
namespace {

using nlohmann::json;

// Envoy's CertificateDetails, one per certificate. "path" names where the
// PEM came from: Portico reads certificates from objects, not files.
json certificateDetails(const std::vector<tls::PemCertificateInfo>& certs, const std::string& path,
                        int64_t now) {
  json out = json::array();
  for (const auto& c : certs) {
    json sans = json::array();
    for (const auto& [kind, value] : c.subject_alt_names) sans.push_back({{kind, value}});
    const int64_t days = c.not_after > now ? (c.not_after - now) / 86400 : 0;
    out.push_back({{"path", path},
                   {"serial_number", c.serial},
                   {"subject", c.subject},
                   {"subject_alt_names", std::move(sans)},
                   {"days_until_expiration", std::to_string(days)},
                   {"valid_from", common::formatRfc3339(c.not_before)},
                   {"expiration_time", common::formatRfc3339(c.not_after)}});
  }
  return out;
}

json entry(std::string name, json ca_cert, json cert_chain) {
  return {{"name", std::move(name)},
          {"ca_cert", std::move(ca_cert)},
          {"cert_chain", std::move(cert_chain)}};
}

// One place that says which certificates a snapshot loads, so /certs and the
// expiry gauge never disagree: each backend TLS cluster's trust bundle, then
// each HTTPS listener certificate and each Gateway backend client certificate
// (a Secret serving several listeners or ports once).
struct CertSource {
  std::string name;  // the /certs entry: which cluster, listener or Gateway
  std::string path;  // where the PEM came from
  const std::string& pem;
  const snapshot::UpstreamTls* trust;  // set for a cluster's trust anchors
};

template <typename Fn>
void forEachCertSource(const snapshot::Snapshot& snapshot, Fn&& fn) {
  for (const auto& c : snapshot.clusters) {
    if (c.tls)
      fn(CertSource{"cluster " + c.name, "BackendTLSPolicy " + c.tls->policy, c.tls->ca_pem,
                    &*c.tls});
  }
  std::set<std::string> seen;
  for (const auto& l : snapshot.listeners) {
    if (l.tls) {
      for (const auto& e : l.tls->certificates) {
        if (seen.insert("listener " + e.cert.name).second)
          fn(CertSource{"listener certificate " + e.cert.name, "Secret " + e.cert.name,
                        e.cert.cert_pem, nullptr});
      }
    }
    if (l.backend_client_certificate &&
        seen.insert("client " + l.backend_client_certificate->name).second) {
      const auto& cc = *l.backend_client_certificate;
      fn(CertSource{"backend client certificate of Gateway " + l.gateway, "Secret " + cc.name,
                    cc.cert_pem, nullptr});
    }
  }
}

}  // namespace

std::string certsJson(const snapshot::Snapshot& snapshot, int64_t now) {
  // Each distinct PEM is parsed once per call: thousands of clusters often
  // share one CA bundle.
  std::unordered_map<std::string_view, std::vector<tls::PemCertificateInfo>> parsed;
  json certs = json::array();
  forEachCertSource(snapshot, [&](const CertSource& src) {
    auto it = parsed.find(src.pem);
    if (it == parsed.end())
      it = parsed.emplace(src.pem, tls::inspectPemCertificates(src.pem).certificates).first;
    json details = certificateDetails(it->second, src.path, now);
    if (src.trust == nullptr) {
      certs.push_back(entry(src.name, json::array(), std::move(details)));
      return;
    }
    if (src.trust->use_system_trust) details.push_back({{"path", "system trust store"}});
    json e = entry(src.name, std::move(details), json::array());
    // A policy that can't be honoured has no usable trust: say why here too.
    if (src.trust->fail_closed) e["error"] = src.trust->fail_reason;
    certs.push_back(std::move(e));
  });
  // Subjects and SANs are the certificates' bytes: never let one that is not
  // UTF-8 throw.
  return json{{"certificates", std::move(certs)}}.dump(2, ' ', false,
                                                       json::error_handler_t::replace) +
         "\n";
}

int64_t CertExpiry::first(const snapshot::Snapshot& snapshot) {
  std::unordered_map<std::string, int64_t> current;  // PEM -> earliest notAfter
  int64_t first = 0;
  forEachCertSource(snapshot, [&](const CertSource& src) {
    if (src.pem.empty()) return;
    auto [it, fresh] = current.try_emplace(src.pem, 0);
    if (fresh) {
      if (auto old = previous_.find(src.pem); old != previous_.end()) {
        it->second = old->second;
      } else {
        for (const auto& c : tls::inspectPemCertificates(src.pem).certificates) {
          if (it->second == 0 || c.not_after < it->second) it->second = c.not_after;
        }
      }
    }
    if (it->second != 0 && (first == 0 || it->second < first)) first = it->second;
  });
  previous_ = std::move(current);
  return first;
}

}  // namespace portico::server
