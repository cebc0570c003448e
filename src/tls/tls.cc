#include "tls/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "common/log.h"
#include "net/socket.h"
#include "snapshot/match.h"
#include "tls/pem.h"
#include "tls/session_cache.h"

namespace portico::tls {
namespace {

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::string lastSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(e);
}

int versionFromText(const std::string& v) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  return 0;
}

// Whether a client context may offer TLS 1.3 (no max, or a max of 1.3).
bool offersTls13(SSL_CTX* ctx) {
  const long max = SSL_CTX_get_max_proto_version(ctx);
  return max == 0 || max >= TLS1_3_VERSION;
}

// RFC 8446 4.1.3: a server that speaks TLS 1.3 and negotiates 1.2 ends its
// random with "DOWNGRD\x01". OpenSSL checks it only when the client itself
// offered 1.3.
bool serverCanTls13(const SSL* ssl) {
  static constexpr unsigned char kSentinel[8] = {'D', 'O', 'W', 'N', 'G', 'R', 'D', 1};
  unsigned char random[SSL3_RANDOM_SIZE];
  if (SSL_get_server_random(ssl, random, sizeof random) != sizeof random) return false;
  return std::memcmp(random + sizeof random - sizeof kSentinel, kSentinel, sizeof kSentinel) == 0;
}

// Index of our per-connection data on SSL objects.
int transportIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
int contextIndex() {
  static int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// Adds every certificate of `pem` to `store`, and its subject to `names`
// when given (a server's list of acceptable client certificate issuers).
bool loadCertificates(X509_STORE* store, const std::string& pem, int& count, std::string& error,
                      STACK_OF(X509_NAME) * names = nullptr) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  count = 0;
  for (;;) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    X509_STORE_add_cert(store, cert);
    if (names != nullptr) {
      X509_NAME* name = X509_NAME_dup(X509_get_subject_name(cert));
      if (name != nullptr && sk_X509_NAME_push(names, name) == 0) X509_NAME_free(name);
    }
    X509_free(cert);
    ++count;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (count == 0) {
    error = "no PEM certificate found in CA bundle";
    return false;
  }
  return true;
}

}  // namespace

class ClientContext {
 public:
  ClientContext(const snapshot::UpstreamTls& cfg, const snapshot::CertificateKeyPair* client)
      : cfg_(cfg) {
    if (client != nullptr) client_ = *client;
  }
  bool init(std::string& error);
  SSL_CTX* ctx() const { return ctx_.get(); }
  const snapshot::UpstreamTls& config() const { return cfg_; }
  SSL_SESSION* session(const std::string& key) { return sessions_.get(key); }
  void storeSession(const std::string& key, SSL_SESSION* s) { sessions_.put(key, s); }
  void dropSession(const std::string& key) { sessions_.drop(key); }
  // A narrowed offer to `key` failed or timed out: make full offers to it for
  // a while. Otherwise a 1.2-only server behind something that drops 1.2-only
  // offers would cost a failed handshake (or a connect timeout) every other
  // connection: the full offer's new session would narrow the next one.
  void stopNarrowing(const std::string& key) {
    const int64_t now = nowMs();
    if (no_narrowing_until_.size() >= kMaxEndpoints) {  // bounded like the sessions
      std::erase_if(no_narrowing_until_, [&](const auto& e) { return e.second <= now; });
      if (no_narrowing_until_.size() >= kMaxEndpoints) no_narrowing_until_.clear();
    }
    no_narrowing_until_[key] = now + kNoNarrowingMs;
  }
  bool mayNarrow(const std::string& key) {
    if (no_narrowing_until_.empty()) return true;
    auto it = no_narrowing_until_.find(key);
    if (it == no_narrowing_until_.end()) return true;
    if (nowMs() < it->second) return false;
    no_narrowing_until_.erase(it);
    return true;
  }

 private:
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  snapshot::UpstreamTls cfg_;
  std::optional<snapshot::CertificateKeyPair> client_;
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx_;
  // Endpoints remembered per context and worker (sessions, narrowing).
  static constexpr size_t kMaxEndpoints = 4096;
  SessionCache sessions_{kMaxEndpoints};
  static constexpr int64_t kNoNarrowingMs = 10 * 60 * 1000;
  static int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::unordered_map<std::string, int64_t> no_narrowing_until_;  // see stopNarrowing()
};

// ---- server contexts (HTTPS listeners) -------------------------------------------

bool loadCertificateKey(SSL_CTX* c, const snapshot::CertificateKeyPair& pair, std::string& error) {
  std::unique_ptr<BIO, BioDeleter> cb(
      BIO_new_mem_buf(pair.cert_pem.data(), static_cast<int>(pair.cert_pem.size())));
  X509* cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr || SSL_CTX_use_certificate(c, cert) != 1) {
    if (cert) X509_free(cert);
    error = "invalid certificate " + pair.name;
    ERR_clear_error();
    return false;
  }
  X509_free(cert);
  // Intermediates after the leaf form the chain we present.
  while (X509* extra = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add0_chain_cert(c, extra);
  }
  ERR_clear_error();
  std::unique_ptr<BIO, BioDeleter> kb(
      BIO_new_mem_buf(pair.key_pem.data(), static_cast<int>(pair.key_pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
  if (key == nullptr || SSL_CTX_use_PrivateKey(c, key) != 1 || SSL_CTX_check_private_key(c) != 1) {
    if (key) EVP_PKEY_free(key);
    error = "invalid private key for " + pair.name;
    ERR_clear_error();
    return false;
  }
  EVP_PKEY_free(key);
  return true;
}

// The session ticket keys of every listener context in the process (name,
// HMAC and AES keys, made once): a ticket from one worker, or from before a
// reload, resumes on any. Contexts otherwise each draw their own, and a
// client's next connection, taken by another worker, made a full handshake.
// Which listener's sessions may resume where is still up to the session ID
// context (see requireClientCertificates()).
const std::array<unsigned char, 80>& ticketKeys() {
  static const std::array<unsigned char, 80> keys = [] {
    std::array<unsigned char, 80> k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) std::abort();
    return k;
  }();
  return keys;
}

// AllowInsecureFallback: the client certificate is asked for and checked,
// but its outcome does not stop the handshake.
int acceptAnyClientCertificate(int, X509_STORE_CTX*) { return 1; }

// spec.tls.frontend on a listener's context: ask for a client certificate and
// verify it against the listener's CAs, which are also named to the client
// so one holding several certificates picks right. AllowValidOnly fails the
// handshake without a valid one. The session ID context is a digest of the
// CAs and the mode: a session made on a listener without this check, or with
// other CAs, is never resumed here.
bool requireClientCertificates(SSL_CTX* c, const snapshot::DownstreamTls::Entry& e,
                               std::string& error) {
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  int count = 0;
  if (names == nullptr ||
      !loadCertificates(SSL_CTX_get_cert_store(c), e.client_ca_pem, count, error, names)) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    error = "client certificate CAs (" + e.client_ca_name + "): " + error;
    return false;
  }
  SSL_CTX_set_client_CA_list(c, names);  // takes ownership
  SSL_CTX_set_verify(
      c,
      e.client_cert_optional ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
      e.client_cert_optional ? &acceptAnyClientCertificate : nullptr);
  std::string what = e.client_ca_pem + (e.client_cert_optional ? "optional" : "required");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(what.data(), what.size(), digest, &len, EVP_sha256(), nullptr) != 1 ||
      SSL_CTX_set_session_id_context(c, digest, std::min(len, unsigned{SSL_MAX_SID_CTX_LENGTH})) !=
          1) {
    error = "client certificate session context: " + lastSslError();
    return false;
  }
  return true;
}

// The host_name of a ClientHello's server_name extension (RFC 6066 §3), read
// before OpenSSL parses it: "" when absent or malformed.
std::string_view clientHelloServerName(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5) return {};
  const size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name) return {};
  const size_t name = (size_t{p[3]} << 8) | p[4];
  if (name + 5 > len) return {};
  return {reinterpret_cast<const char*>(p + 5), name};
}

class ServerContext {
 public:
  bool init(const snapshot::DownstreamTls& cfg, std::string& error) {
    auto lower = [](std::string h) {
      for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return h;
    };
    // Certificates are grouped by the hostnames they serve: one listener's,
    // or those of listeners of several Gateways sharing a port and hostname,
    // which are one listener on the wire.
    std::map<std::vector<std::string>, size_t> groups;
    for (const auto& e : cfg.certificates) {
      Entry entry;
      auto [group, first_of_group] = groups.emplace(e.hostnames, groups_.size());
      if (first_of_group) {
        groups_.emplace_back();
        for (const std::string& h : e.hostnames) {
          hostnames_.push_back(lower(h));
          owners_.push_back(group->second);
        }
      }
      groups_[group->second].push_back(entries_.size());
      const PemBundleInfo leaf = inspectPemCertificates(e.cert.cert_pem);
      if (!leaf.certificates.empty())
        for (const auto& [kind, value] : leaf.certificates.front().subject_alt_names)
          if (kind == "dns") entry.dns_names.push_back(lower(value));
      entry.ctx.reset(SSL_CTX_new(TLS_server_method()));
      if (!entry.ctx) {
        error = lastSslError();
        return false;
      }
      SSL_CTX* c = entry.ctx.get();
      SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
      // Our output buffers move when they grow between a WANT_WRITE and the
      // retry; partial writes let the proxy's own buffer track what was sent.
      SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
      // A client's TLS 1.2 renegotiation is refused (OpenSSL 3.0's default,
      // said here so no option turns it on; Envoy's BoringSSL has none). An
      // accepted one would make SSL_read write handshake messages, and a
      // read stuck on a full socket waits for a read edge that may not come.
      SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
      // One read(2) per record instead of two (header, then body). Bytes read
      // ahead are never stranded: readDrained() is false while OpenSSL holds any.
      SSL_CTX_set_read_ahead(c, 1);
      SSL_CTX_set_tlsext_ticket_keys(c, const_cast<unsigned char*>(ticketKeys().data()),
                                     ticketKeys().size());
      if (!loadCertificateKey(c, e.cert, error)) return false;
      if (!e.client_ca_pem.empty() && !requireClientCertificates(c, e, error)) return false;
      SSL_CTX_set_client_hello_cb(c, &ServerContext::onClientHello, this);
      SSL_CTX_set_tlsext_servername_callback(c, &ServerContext::onServerName);
      SSL_CTX_set_alpn_select_cb(c, &ServerContext::onAlpn, nullptr);
      entries_.push_back(std::move(entry));
    }
    if (entries_.empty()) {
      error = "no usable certificate";
      return false;
    }
    return true;
  }
  SSL* newSsl() { return SSL_new(entries_.front().ctx.get()); }

 private:
  struct Entry {
    std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx;
    std::vector<std::string> dns_names;  // the leaf's DNS subjectAltNames, lower-cased
  };

  // Certificate choice by SNI: the listener as an HTTPS listener is chosen
  // (snapshot::selectTlsHostname), else the first one. Among a listener's
  // certificates, the one whose DNS SAN names the SNI exactly, else the first
  // whose wildcard SAN covers it (one label, RFC 6125), else its first, as
  // Envoy picks among a filter chain's certificates.
  SSL_CTX* select(std::string_view sni) const {
    const int64_t i = snapshot::selectTlsHostname(hostnames_, sni);
    const std::vector<size_t>& members = groups_[i >= 0 ? owners_[static_cast<size_t>(i)] : 0];
    if (members.size() == 1) return entries_[members.front()].ctx.get();
    std::optional<size_t> wildcard;
    for (size_t k : members) {
      for (const std::string& name : entries_[k].dns_names) {
        const int match = snapshot::certificateNameMatch(name, sni);
        if (match == 2) return entries_[k].ctx.get();
        if (match == 1 && !wildcard) wildcard = k;
      }
    }
    return entries_[wildcard.value_or(members.front())].ctx.get();
  }

  // Runs first on a ClientHello, before a session is looked up: the listener
  // (its certificate, client certificate check and session ID context) is
  // chosen here, so no session resumes past another listener's check.
  // SSL_set_SSL_CTX() keeps the verify mode SSL_new() copied: set it too.
  static int onClientHello(SSL* ssl, int*, void* arg) {
    SSL_CTX* chosen = static_cast<ServerContext*>(arg)->select(clientHelloServerName(ssl));
    if (chosen != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, chosen);
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(chosen), SSL_CTX_get_verify_callback(chosen));
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  // Acknowledges the SNI, which keeps it in the session (SSL_get_servername
  // after the handshake); the choice was made in onClientHello.
  static int onServerName(SSL*, int*, void*) { return SSL_TLSEXT_ERR_OK; }

  // We speak HTTP/1.1 only: pick it when offered, else carry on without ALPN.
  static int onAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned int inlen, void*) {
    static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
      *out = selected;
      return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  std::vector<Entry> entries_;
  // Every group's hostnames, lower-cased; SNI picks one (selectTlsHostname).
  std::vector<std::string> hostnames_;
  std::vector<size_t> owners_;               // hostnames_[i] belongs to groups_[owners_[i]]
  std::vector<std::vector<size_t>> groups_;  // per listener hostname: its certificates
};

// ---- the transport -------------------------------------------------------------

class TlsTransport final : public net::Transport {
 public:
  // Client side: SNI, host check and session per the backend's policy.
  TlsTransport(std::shared_ptr<ClientContext> ctx, int fd, std::string session_key, bool may_narrow,
               stats::SslStats* stats)
      : ctx_(std::move(ctx)), session_key_(std::move(session_key)), stats_(stats) {
    ssl_ = SSL_new(ctx_->ctx());
    SSL_set_ex_data(ssl_, transportIndex(), this);
    attachSocket(fd);
    const auto& cfg = ctx_->config();
    SSL_set_tlsext_host_name(ssl_, cfg.sni.c_str());
    if (cfg.subject_alt_names.empty()) {
      // validation.hostname must be a DNS SAN of the certificate: no CN
      // fallback, wildcards only as a whole left-most label.
      SSL_set_hostflags(ssl_,
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      SSL_set1_host(ssl_, cfg.sni.c_str());
    }
    if (SSL_SESSION* s = ctx_->session(session_key_)) {
      SSL_set_session(ssl_, s);
      narrowed_ = may_narrow && SSL_SESSION_get_protocol_version(s) == TLS1_2_VERSION &&
                  offersTls13(ctx_->ctx()) && ctx_->mayNarrow(session_key_);
      // Resuming a TLS 1.2 session: offer TLS 1.2 only. Offering 1.3 as well
      // costs an X25519 key share per connection that a 1.2 server ignores
      // (scenario 3 against the seed's TLS 1.2 backend). Safe because a 1.2
      // session only ever comes from a handshake that proved the server is
      // 1.2-only: OpenSSL's downgrade check on a full offer, or ours on a
      // narrowed one (onHandshakeDone()). A narrowed handshake that fails or
      // times out is retried with the full offer (widenAfterFailure()).
      if (narrowed_) SSL_set_max_proto_version(ssl_, TLS1_2_VERSION);
    }
    SSL_set_connect_state(ssl_);
  }
  // Server side (HTTPS listeners): `server` keeps the contexts alive.
  TlsTransport(std::shared_ptr<ServerContext> server, SSL* ssl, int fd, stats::SslStats* stats)
      : server_(std::move(server)), stats_(stats), ssl_(ssl) {
    SSL_set_ex_data(ssl_, transportIndex(), this);
    attachSocket(fd);
    SSL_set_accept_state(ssl_);
  }
  ~TlsTransport() override {
    if (ssl_ != nullptr) {
      if (done_ && peer_closed_) {
        // The peer closed or said it will: mark the shutdown done without
        // sending close_notify, as nginx does (a write(2) per connection
        // under churn). Marked, not skipped: OpenSSL drops the session of an
        // SSL freed without a shutdown, and resumption with it.
        SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
      } else if (done_) {
        SSL_shutdown(ssl_);  // best effort close_notify; never blocks
      }
      SSL_free(ssl_);
    }
  }

  Handshake handshake() override {
    if (done_) return Handshake::Done;
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      done_ = true;
      onHandshakeDone();
      return Handshake::Done;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) return Handshake::WantRead;
    if (err == SSL_ERROR_WANT_WRITE) return Handshake::WantWrite;
    recordFailure(err);
    return Handshake::Failed;
  }
  bool widenAfterFailure() override {
    if (!narrowed_ || done_) return false;
    // The server may have dropped TLS 1.2: the next connection offers all.
    ctx_->dropSession(session_key_);
    ctx_->stopNarrowing(session_key_);
    return true;
  }

  std::string failureReason() const override { return failure_; }
  bool secure() const override { return true; }
  std::string_view serverName() const override {
    const char* name = ssl_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
    return name ? std::string_view(name) : std::string_view();
  }
  void peerIsClosing() override { peer_closed_ = true; }

  net::IoResult read(char* buf, size_t len) override {
    clearErrors();
    socket_read_ = false;
    int n = SSL_read(ssl_, buf, static_cast<int>(len));
    if (n > 0) return {net::IoResult::Status::Ok, static_cast<size_t>(n), {}};
    return ioError(SSL_get_error(ssl_, n));
  }

  // Drained when this very read() made a read(2) that came back short or
  // would-block (the kernel had nothing more then, so later bytes bring a
  // new edge) and OpenSSL holds no bytes (decrypted or read ahead). Saves the
  // EAGAIN read(2) (and SSL_read) after every response that fits one read.
  // A read served from OpenSSL's buffer alone says nothing about the socket:
  // bytes may have arrived while the reader paused, their edge long spent.
  bool readDrained(size_t, size_t) const override {
    return socket_read_ && socket_drained_ && SSL_has_pending(ssl_) == 0;
  }

  net::IoResult write(const char* buf, size_t len) override {
    clearErrors();
    int n = SSL_write(ssl_, buf, static_cast<int>(len));
    if (n > 0) return {net::IoResult::Status::Ok, static_cast<size_t>(n), {}};
    return ioError(SSL_get_error(ssl_, n));
  }

  bool san_mismatch = false;

 private:
  // SSL_get_error() needs an empty error queue before each call. It is
  // almost always empty already, and peeking costs a fraction of clearing
  // (OpenSSL 3.0's ERR_clear_error walks all 16 slots): 2.7% of user-space
  // instructions per proxied request went there.
  static void clearErrors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
  }

  // The socket under the SSL. OpenSSL's socket BIO plus a callback to see
  // its reads cost ~4% of the user-space instructions per proxied request
  // (the BIO_ctrl dispatch and the callback, called around every BIO
  // operation); this BIO does what a non-blocking TCP socket needs and notes
  // what readDrained() asks as it reads. As OpenSSL's bss_sock.c, except
  // that only EAGAIN/EINTR ask for a retry (bss_sock also retries ENOTCONN,
  // EINPROGRESS...: on a connected socket those mean failure, so failing
  // fast beats waiting for an edge that never comes); 0 marks EOF (BIO_eof);
  // errors return -1 with errno for SSL_ERROR_SYSCALL.
  void attachSocket(int fd) {
    fd_ = fd;
    BIO* bio = BIO_new(socketBioMethod());
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; the SSL owns it
  }
  static BIO_METHOD* socketBioMethod() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "portico socket");
      BIO_meth_set_read(m, &TlsTransport::bioRead);
      BIO_meth_set_write(m, &TlsTransport::bioWrite);
      BIO_meth_set_ctrl(m, &TlsTransport::bioCtrl);
      return m;
    }();
    return method;
  }
  static bool retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }
  static int bioRead(BIO* bio, char* buf, int len) {
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    ssize_t n = net::recvNow(self->fd_, buf, static_cast<size_t>(len));
    self->socket_read_ = true;
    self->socket_drained_ = n < len;
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      self->socket_eof_ = true;
    } else if (retryable(errno)) {
      BIO_set_retry_read(bio);
    }
    return static_cast<int>(n);
  }
  static int bioWrite(BIO* bio, const char* buf, int len) {
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    ssize_t n = net::sendNow(self->fd_, buf, static_cast<size_t>(len), MSG_NOSIGNAL);
    if (n < 0 && retryable(errno)) BIO_set_retry_write(bio);
    return static_cast<int>(n);
  }
  static long bioCtrl(BIO* bio, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:  // nothing buffered here
      case BIO_CTRL_DUP:
        return 1;
      case BIO_CTRL_EOF:
        return static_cast<TlsTransport*>(BIO_get_data(bio))->socket_eof_ ? 1 : 0;
      default:
        return 0;
    }
  }

  net::IoResult ioError(int err) {
    switch (err) {
      // The caller waits for an edge of its own direction. A read never needs
      // a write here: renegotiation is refused both ways, and OpenSSL 3.0
      // sends the answer to a peer's KeyUpdate with our next write, not from
      // SSL_read (test/unit/tls/transport_test.cc pins both).
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return {net::IoResult::Status::WouldBlock, 0, {}};
      case SSL_ERROR_ZERO_RETURN:
        peer_closed_ = true;
        return {net::IoResult::Status::Eof, 0, {}};
      case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
          peer_closed_ = true;
          return {net::IoResult::Status::Eof, 0, {}};
        }
        [[fallthrough]];
      default:
        return {net::IoResult::Status::Error, 0, "TLS_error: " + lastSslError()};
    }
  }

  void onHandshakeDone() {
    if (narrowed_ && serverCanTls13(ssl_)) {
      // The server answered our TLS 1.2-only offer with TLS 1.3's downgrade
      // sentinel: it speaks 1.3 now. This connection is sound (the sentinel
      // is authenticated, so no attacker put it there, and a resumed or full
      // 1.2 handshake with a verified peer is what we asked for), but its
      // session must not narrow the next offer.
      ctx_->dropSession(session_key_);
    }
    if (stats_ == nullptr) return;
    stats_->handshake->inc();
    if (SSL_session_reused(ssl_)) stats_->session_reused->inc();
    // Envoy's no_certificate: on a listener, a client that sent none.
    if (SSL_get0_peer_certificate(ssl_) == nullptr) stats_->no_certificate->inc();
    const char* version = SSL_get_version(ssl_);
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
    // Envoy (BoringSSL) spells TLS 1.2 ciphers the OpenSSL way
    // (ECDHE-RSA-AES128-GCM-SHA256) and TLS 1.3 ones by RFC name.
    const char* cipher_name = cipher ? SSL_CIPHER_get_name(cipher) : nullptr;
    std::string curve;
    int nid = SSL_get_negotiated_group(ssl_);
    if (nid != 0) {
      const char* g = SSL_group_to_name(ssl_, nid);
      if (g != nullptr) curve = g;
      // BoringSSL's names: X25519, P-256, P-384, P-521.
      if (curve == "x25519") curve = "X25519";
      if (curve == "secp256r1" || curve == "prime256v1") curve = "P-256";
      if (curve == "secp384r1") curve = "P-384";
      if (curve == "secp521r1") curve = "P-521";
    }
    std::string sigalg;
    int sig_nid = 0;
    if (SSL_get_peer_signature_type_nid(ssl_, &sig_nid) == 1) {
      int hash_nid = 0;
      SSL_get_peer_signature_nid(ssl_, &hash_nid);
      sigalg = sigalgName(sig_nid, hash_nid);
    }
    stats_->recordHandshake(version ? version : "", cipher_name ? cipher_name : "", curve, sigalg);
  }

  // BoringSSL-style signature algorithm names (rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256...).
  static std::string sigalgName(int sig_nid, int hash_nid) {
    std::string hash = hash_nid == NID_sha256   ? "sha256"
                       : hash_nid == NID_sha384 ? "sha384"
                       : hash_nid == NID_sha512 ? "sha512"
                       : hash_nid == NID_sha1   ? "sha1"
                                                : "";
    switch (sig_nid) {
      case EVP_PKEY_RSA_PSS:
        return "rsa_pss_rsae_" + hash;
      case EVP_PKEY_RSA:
        return "rsa_pkcs1_" + hash;
      case EVP_PKEY_EC:
        if (hash == "sha256") return "ecdsa_secp256r1_sha256";
        if (hash == "sha384") return "ecdsa_secp384r1_sha384";
        if (hash == "sha512") return "ecdsa_secp521r1_sha512";
        return "ecdsa_" + hash;
      case EVP_PKEY_ED25519:
        return "ed25519";
      default: {
        const char* sn = OBJ_nid2sn(sig_nid);
        return sn ? std::string(sn) + (hash.empty() ? "" : "_" + hash) : "unknown";
      }
    }
  }

  // Envoy's accounting: a certificate that does not verify counts in
  // fail_verify_san or fail_verify_error only; ssl.connection_error is "TLS
  // connection errors not including failed certificate verifications".
  void recordFailure(int ssl_err) {
    long verify = SSL_get_verify_result(ssl_);
    X509* peer = SSL_get0_peer_certificate(ssl_);
    if (san_mismatch) {
      failure_ = "TLS_error: CERTIFICATE_VERIFY_FAILED: verify SAN list";
      if (stats_) stats_->fail_verify_san->inc();
    } else if (verify != X509_V_OK) {
      failure_ = std::string("TLS_error: CERTIFICATE_VERIFY_FAILED: ") +
                 X509_verify_cert_error_string(verify);
      if (stats_) {
        (verify == X509_V_ERR_HOSTNAME_MISMATCH ? stats_->fail_verify_san
                                                : stats_->fail_verify_error)
            ->inc();
      }
    } else if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
      failure_ = "TLS_error: the client sent no certificate, and the listener requires one";
      if (stats_) stats_->fail_verify_no_cert->inc();
    } else if (peer == nullptr && ERR_peek_error() == 0 && ssl_err == SSL_ERROR_SYSCALL) {
      failure_ = "TLS_error: connection closed during handshake";
      if (stats_) stats_->connection_error->inc();
    } else {
      failure_ = "TLS_error: " + lastSslError();
      if (stats_) stats_->connection_error->inc();
    }
  }

  friend class ClientContext;
  std::shared_ptr<ClientContext> ctx_;     // client side
  std::shared_ptr<ServerContext> server_;  // server side
  std::string session_key_;
  stats::SslStats* stats_;
  SSL* ssl_ = nullptr;
  bool done_ = false;
  bool socket_read_ = false;     // read() made a read(2) (see readDrained())
  bool socket_drained_ = false;  // ... and the last one came back short
  bool socket_eof_ = false;      // a recv(2) returned 0
  int fd_ = -1;
  bool peer_closed_ = false;  // EOF, close_notify, or peerIsClosing()
  bool narrowed_ = false;     // client offering TLS 1.2 only (see the constructor)
  std::string failure_;
  friend int verifyCallback(int ok, X509_STORE_CTX* store);

 public:
  const std::string& sessionKey() const { return session_key_; }
};

// Runs for each certificate of the chain; at the leaf, applies the
// subjectAltNames list when the policy has one (OpenSSL's own host check
// covers the hostname-only case).
int verifyCallback(int ok, X509_STORE_CTX* store) {
  if (!ok) return 0;
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* t = static_cast<TlsTransport*>(SSL_get_ex_data(ssl, transportIndex()));
  if (t == nullptr || !t->ctx_) return 1;
  const auto& sans = t->ctx_->config().subject_alt_names;
  if (sans.empty()) return 1;
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  for (const auto& m : sans) {
    if (m.type == snapshot::SanMatcher::Type::Hostname) {
      if (X509_check_host(
              leaf, m.value.data(), m.value.size(),
              X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
              nullptr) == 1) {
        return 1;
      }
      continue;
    }
    // URI SANs (SPIFFE IDs) match exactly.
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
    bool found = false;
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type != GEN_URI) continue;
      const auto* uri = gn->d.uniformResourceIdentifier;
      std::string_view v(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                         static_cast<size_t>(ASN1_STRING_length(uri)));
      if (v == m.value) found = true;
    }
    GENERAL_NAMES_free(names);
    if (found) return 1;
  }
  t->san_mismatch = true;
  X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
  return 0;
}

int ClientContext::onNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* t = static_cast<TlsTransport*>(SSL_get_ex_data(ssl, transportIndex()));
  auto* self =
      static_cast<ClientContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), contextIndex()));
  if (t == nullptr || self == nullptr) return 0;
  self->storeSession(t->sessionKey(), session);
  return 1;  // we own the session now
}

bool ClientContext::init(std::string& error) {
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) {
    error = lastSslError();
    return false;
  }
  SSL_CTX* c = ctx_.get();
  SSL_CTX_set_ex_data(c, contextIndex(), this);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verifyCallback);
  if (cfg_.use_system_trust) {
    // OpenSSL's default paths honour SSL_CERT_FILE and SSL_CERT_DIR.
    if (SSL_CTX_set_default_verify_paths(c) != 1) {
      error = "cannot load the system trust store: " + lastSslError();
      return false;
    }
  } else {
    int count = 0;
    if (!loadCertificates(SSL_CTX_get_cert_store(c), cfg_.ca_pem, count, error)) return false;
  }
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // Our output buffers move when they grow between a WANT_WRITE and the
  // retry; partial writes let the proxy's own buffer track what was sent.
  SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  // A backend's TLS 1.2 renegotiation is refused, as Envoy does by default
  // (allow_renegotiation: false). It would also store a session that no
  // downgrade check saw (see the narrowed offer in TlsTransport).
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  // One read(2) per record instead of two (header, then body). Bytes read
  // ahead are never stranded: readDrained() is false while OpenSSL holds any.
  SSL_CTX_set_read_ahead(c, 1);
  if (!cfg_.min_version.empty())
    SSL_CTX_set_min_proto_version(c, versionFromText(cfg_.min_version));
  if (!cfg_.max_version.empty())
    SSL_CTX_set_max_proto_version(c, versionFromText(cfg_.max_version));
  // TLS 1.3 suites ("TLS_AES_128_GCM_SHA256") and TLS 1.2 ciphers
  // ("ECDHE-RSA-AES128-GCM-SHA256") are configured separately in OpenSSL.
  // Unless the policy names its own, Envoy's upstream defaults, AES-128-GCM
  // first (BoringSSL's order). OpenSSL's own put the SHA-384 suites first,
  // and their key schedule runs SHA-512 in software where SHA-256 has CPU
  // instructions: a third of a resumed TLS 1.3 handshake's cost here.
  std::string v13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
  std::string v12 =
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
  if (!cfg_.cipher_suites.empty()) {
    std::string own13, own12;
    size_t start = 0;
    const std::string& list = cfg_.cipher_suites;
    while (start <= list.size()) {
      size_t end = list.find_first_of(",:", start);
      if (end == std::string::npos) end = list.size();
      std::string item = list.substr(start, end - start);
      if (!item.empty()) {
        std::string& dst = item.rfind("TLS_", 0) == 0 ? own13 : own12;
        if (!dst.empty()) dst += ":";
        dst += item;
      }
      start = end + 1;
    }
    if (!own12.empty()) v12 = own12;
    if (!own13.empty()) v13 = own13;
  }
  if (SSL_CTX_set_cipher_list(c, v12.c_str()) != 1 ||
      SSL_CTX_set_ciphersuites(c, v13.c_str()) != 1) {
    error = "invalid cipher suites '" + cfg_.cipher_suites + "'";
    ERR_clear_error();
    return false;
  }
  if (!cfg_.curves.empty()) {
    std::string groups = cfg_.curves;
    for (auto& ch : groups)
      if (ch == ',') ch = ':';
    if (SSL_CTX_set1_groups_list(c, groups.c_str()) != 1) {
      error = "invalid curves '" + cfg_.curves + "'";
      ERR_clear_error();
      return false;
    }
  }
  if (client_ && !loadCertificateKey(c, *client_, error)) return false;
  // Client-side resumption: we keep one session per endpoint ourselves.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &ClientContext::onNewSession);
  return true;
}

// ---- cache / factory ------------------------------------------------------------

ClientContextCache::ClientContextCache() = default;
ClientContextCache::~ClientContextCache() = default;

std::shared_ptr<ClientContext> ClientContextCache::get(
    const snapshot::UpstreamTls& tls, const snapshot::CertificateKeyPair* client_certificate,
    uint64_t client_fingerprint, std::string& error) {
  const auto key = std::make_pair(tls.fingerprint, client_fingerprint);
  auto it = contexts_.find(key);
  if (it != contexts_.end()) return it->second;
  auto ctx = std::make_shared<ClientContext>(tls, client_certificate);
  if (!ctx->init(error)) return nullptr;
  contexts_.emplace(key, ctx);
  return ctx;
}

void ClientContextCache::retainOnly(const snapshot::Snapshot& snap) {
  std::set<uint64_t> upstream, client{0};
  for (const auto& c : snap.clusters) {
    if (c.tls) upstream.insert(c.tls->fingerprint);
  }
  for (const auto& l : snap.listeners) client.insert(l.backend_client_fingerprint);
  std::erase_if(contexts_, [&](const auto& entry) {
    return !upstream.count(entry.first.first) || !client.count(entry.first.second);
  });  // live connections hold their own reference
}

std::unique_ptr<net::Transport> makeClientTransport(std::shared_ptr<ClientContext> ctx, int fd,
                                                    const std::string& session_key, bool may_narrow,
                                                    stats::SslStats* stats) {
  return std::make_unique<TlsTransport>(std::move(ctx), fd, session_key, may_narrow, stats);
}

std::shared_ptr<ServerContext> makeServerContext(const snapshot::DownstreamTls& cfg,
                                                 std::string& error) {
  auto ctx = std::make_shared<ServerContext>();
  if (!ctx->init(cfg, error)) return nullptr;
  return ctx;
}

std::unique_ptr<net::Transport> makeServerTransport(std::shared_ptr<ServerContext> ctx, int fd,
                                                    stats::SslStats* stats) {
  SSL* ssl = ctx->newSsl();
  return std::make_unique<TlsTransport>(std::move(ctx), ssl, fd, stats);
}

std::string validateClientSettings(const snapshot::UpstreamTls& tls) {
  ClientContext ctx(tls, nullptr);
  std::string error;
  return ctx.init(error) ? std::string() : error;
}

}  // namespace portico::tls
