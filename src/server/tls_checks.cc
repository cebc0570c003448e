#include "server/tls_checks.h"

#include "tls/pem.h"
#include "tls/tls.h"

namespace portico::server {

void addTlsChecks(translate::Options& options) {
  options.inspect_certificates = [](std::string_view pem) {
    tls::PemBundleInfo b = tls::inspectPemCertificates(pem);
    translate::PemInspection out;
    out.error = b.error;
    out.dates_known = true;
    for (const auto& c : b.certificates)
      out.certificates.push_back({c.subject, c.not_before, c.not_after});
    return out;
  };
  options.check_key_pair = tls::checkCertificateKeyPair;
  options.check_tls_settings = tls::validateClientSettings;
}

}  // namespace portico::server
