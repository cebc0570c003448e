#pragma once
// TLS for the data plane: client contexts built from a snapshot's UpstreamTls
// (trust bundle, SNI, SAN matching, versions, ciphers, curves, client cert,
// session resumption) and a Transport that speaks TLS over a socket. OpenSSL
// is visible only in src/tls/*.cc; this header is lean on purpose.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "net/transport.h"
#include "snapshot/snapshot.h"
#include "stats/stats.h"

namespace portico::tls {

class ClientContext;

// One worker's client contexts, keyed by the backend's UpstreamTls
// fingerprint and the client certificate's (the Gateway's
// tls.backend.clientCertificateRef, which depends on the listener a request
// came through). Built on first use, dropped when no snapshot uses it.
class ClientContextCache {
 public:
  ClientContextCache();
  ~ClientContextCache();
  // nullptr + `error` when the settings can't be honoured (bad PEM, bad
  // cipher list...): the caller fails the request closed.
  std::shared_ptr<ClientContext> get(const snapshot::UpstreamTls& tls,
                                     const snapshot::CertificateKeyPair* client_certificate,
                                     uint64_t client_fingerprint, std::string& error);
  void retainOnly(const snapshot::Snapshot& snap);

 private:
  std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<ClientContext>> contexts_;
};

// Starts a client TLS session on a connected socket. `session_key` (the
// endpoint) selects the cached session to resume. `may_narrow`: resuming a
// TLS 1.2 session may offer TLS 1.2 only, which the caller must be ready to
// retry (Transport::narrowedOfferFailed()).
std::unique_ptr<net::Transport> makeClientTransport(std::shared_ptr<ClientContext> ctx, int fd,
                                                    const std::string& session_key, bool may_narrow,
                                                    stats::SslStats* stats);

class ServerContext;
// Contexts for one HTTPS listener port (certificate chosen by SNI). nullptr +
// `error` when no certificate/key pair loads.
std::shared_ptr<ServerContext> makeServerContext(const snapshot::DownstreamTls& cfg,
                                                 std::string& error);
std::unique_ptr<net::Transport> makeServerTransport(std::shared_ptr<ServerContext> ctx, int fd,
                                                    stats::SslStats* stats);

// Builds an SSL_CTX once to validate settings without a socket (used by
// translate-time checks and `portico check`): "" when fine, else the reason.
std::string validateClientSettings(const snapshot::UpstreamTls& tls);

}  // namespace portico::tls
