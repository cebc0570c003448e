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

}  // namespace

std::string certsJson(const snapshot::Snapshot& snapshot, int64_t now) {
  // Each distinct PEM is parsed once per call: thousands of clusters often
  // share one CA bundle.
  std::unordered_map<std::string_view, std::vector<tls::PemCertificateInfo>> parsed;
  auto details = [&](const std::string& pem, const std::string& path) {
    auto it = parsed.find(pem);
    if (it == parsed.end())
      it = parsed.emplace(pem, tls::inspectPemCertificates(pem).certificates).first;
    return certificateDetails(it->second, path, now);
  };
  json certs = json::array();
  for (const auto& c : snapshot.clusters) {
    if (!c.tls) continue;
    json ca = details(c.tls->ca_pem, "BackendTLSPolicy " + c.tls->policy);
    if (c.tls->use_system_trust) ca.push_back({{"path", "system trust store"}});
    json e = entry("cluster " + c.name, std::move(ca), json::array());
    // A policy that can't be honoured has no usable trust: say why here too.
    if (c.tls->fail_closed) e["error"] = c.tls->fail_reason;
    certs.push_back(std::move(e));
  }
  // A Secret serving several listeners (or ports) is listed once.
  std::set<std::string> seen;
  for (const auto& l : snapshot.listeners) {
    if (l.tls) {
      for (const auto& e : l.tls->certificates) {
        if (!seen.insert("listener " + e.cert.name).second) continue;
        certs.push_back(entry("listener certificate " + e.cert.name, json::array(),
                              details(e.cert.cert_pem, "Secret " + e.cert.name)));
      }
    }
    if (l.backend_client_certificate &&
        seen.insert("client " + l.backend_client_certificate->name).second) {
      const auto& cc = *l.backend_client_certificate;
      certs.push_back(entry("backend client certificate of Gateway " + l.gateway, json::array(),
                            details(cc.cert_pem, "Secret " + cc.name)));
    }
  }
  // Subjects and SANs are the certificates' bytes: never let one that is not
  // UTF-8 throw.
  return json{{"certificates", std::move(certs)}}.dump(2, ' ', false,
                                                       json::error_handler_t::replace) +
         "\n";
}

int64_t CertExpiry::first(const snapshot::Snapshot& snapshot) {
  std::unordered_map<std::string, int64_t> current;
  int64_t first = 0;
  auto add = [&](const std::string& pem) {
    if (pem.empty()) return;
    auto [it, fresh] = current.try_emplace(pem, 0);
    if (fresh) {
      if (auto old = previous_.find(pem); old != previous_.end()) {
        it->second = old->second;
      } else {
        for (const auto& c : tls::inspectPemCertificates(pem).certificates) {
          if (it->second == 0 || c.not_after < it->second) it->second = c.not_after;
        }
      }
    }
    if (it->second != 0 && (first == 0 || it->second < first)) first = it->second;
  };
  for (const auto& c : snapshot.clusters) {
    if (c.tls) add(c.tls->ca_pem);
  }
  for (const auto& l : snapshot.listeners) {
    if (l.tls) {
      for (const auto& e : l.tls->certificates) add(e.cert.cert_pem);
    }
    if (l.backend_client_certificate) add(l.backend_client_certificate->cert_pem);
  }
  previous_ = std::move(current);
  return first;
}

}  // namespace portico::server
