#include "tls/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <vector>

#include "common/log.h"

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

// Index of our per-connection data on SSL objects.
int transportIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
int contextIndex() {
  static int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

bool loadCertificates(X509_STORE* store, const std::string& pem, int& count, std::string& error) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  count = 0;
  for (;;) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    X509_STORE_add_cert(store, cert);
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
  explicit ClientContext(const snapshot::UpstreamTls& cfg) : cfg_(cfg) {}
  ~ClientContext() {
    for (auto& [k, s] : sessions_) SSL_SESSION_free(s);
  }
  bool init(std::string& error);
  SSL_CTX* ctx() const { return ctx_.get(); }
  const snapshot::UpstreamTls& config() const { return cfg_; }
  SSL_SESSION* session(const std::string& key) {
    auto it = sessions_.find(key);
    return it == sessions_.end() ? nullptr : it->second;
  }
  void storeSession(const std::string& key, SSL_SESSION* s) {
    auto& slot = sessions_[key];
    if (slot != nullptr) SSL_SESSION_free(slot);
    slot = s;
  }

 private:
  static int onNewSession(SSL* ssl, SSL_SESSION* session);
  snapshot::UpstreamTls cfg_;
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx_;
  std::unordered_map<std::string, SSL_SESSION*> sessions_;
};

// ---- the transport -------------------------------------------------------------

class TlsTransport final : public net::Transport {
 public:
  TlsTransport(std::shared_ptr<ClientContext> ctx, int fd, std::string session_key,
               stats::SslStats* stats)
      : ctx_(std::move(ctx)), session_key_(std::move(session_key)), stats_(stats) {
    ssl_ = SSL_new(ctx_->ctx());
    SSL_set_fd(ssl_, fd);
    SSL_set_ex_data(ssl_, transportIndex(), this);
    const auto& cfg = ctx_->config();
    SSL_set_tlsext_host_name(ssl_, cfg.sni.c_str());
    if (cfg.subject_alt_names.empty()) {
      // validation.hostname must be a DNS SAN of the certificate: no CN
      // fallback, wildcards only as a whole left-most label.
      SSL_set_hostflags(ssl_,
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      SSL_set1_host(ssl_, cfg.sni.c_str());
    }
    if (SSL_SESSION* s = ctx_->session(session_key_)) SSL_set_session(ssl_, s);
    SSL_set_connect_state(ssl_);
  }
  ~TlsTransport() override {
    if (ssl_ != nullptr) {
      if (done_) SSL_shutdown(ssl_);  // best effort close_notify; never blocks
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

  std::string failureReason() const override { return failure_; }
  bool secure() const override { return true; }

  net::IoResult read(char* buf, size_t len) override {
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, static_cast<int>(len));
    if (n > 0) return {net::IoResult::Status::Ok, static_cast<size_t>(n), {}};
    return ioError(SSL_get_error(ssl_, n));
  }

  net::IoResult write(const char* buf, size_t len) override {
    ERR_clear_error();
    int n = SSL_write(ssl_, buf, static_cast<int>(len));
    if (n > 0) return {net::IoResult::Status::Ok, static_cast<size_t>(n), {}};
    return ioError(SSL_get_error(ssl_, n));
  }

  bool san_mismatch = false;

 private:
  net::IoResult ioError(int err) {
    switch (err) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return {net::IoResult::Status::WouldBlock, 0, {}};
      case SSL_ERROR_ZERO_RETURN:
        return {net::IoResult::Status::Eof, 0, {}};
      case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) return {net::IoResult::Status::Eof, 0, {}};
        [[fallthrough]];
      default:
        return {net::IoResult::Status::Error, 0, "TLS_error: " + lastSslError()};
    }
  }

  void onHandshakeDone() {
    if (stats_ == nullptr) return;
    stats_->handshake->inc();
    if (SSL_session_reused(ssl_)) stats_->session_reused->inc();
    const char* version = SSL_get_version(ssl_);
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
    // Envoy (BoringSSL) spells ciphers by their standard names.
    const char* cipher_name = cipher ? SSL_CIPHER_standard_name(cipher) : nullptr;
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
    } else if (peer == nullptr && ERR_peek_error() == 0 && ssl_err == SSL_ERROR_SYSCALL) {
      failure_ = "TLS_error: connection closed during handshake";
    } else {
      failure_ = "TLS_error: " + lastSslError();
    }
    if (stats_) stats_->connection_error->inc();
  }

  friend class ClientContext;
  std::shared_ptr<ClientContext> ctx_;
  std::string session_key_;
  stats::SslStats* stats_;
  SSL* ssl_ = nullptr;
  bool done_ = false;
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
  if (t == nullptr) return 1;
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
  if (!cfg_.min_version.empty())
    SSL_CTX_set_min_proto_version(c, versionFromText(cfg_.min_version));
  if (!cfg_.max_version.empty())
    SSL_CTX_set_max_proto_version(c, versionFromText(cfg_.max_version));
  if (!cfg_.cipher_suites.empty()) {
    // TLS 1.3 suites ("TLS_AES_128_GCM_SHA256") and TLS 1.2 ciphers
    // ("ECDHE-RSA-AES128-GCM-SHA256") are configured separately in OpenSSL.
    std::string v13, v12;
    size_t start = 0;
    const std::string& list = cfg_.cipher_suites;
    while (start <= list.size()) {
      size_t end = list.find_first_of(",:", start);
      if (end == std::string::npos) end = list.size();
      std::string item = list.substr(start, end - start);
      if (!item.empty()) {
        std::string& dst = item.rfind("TLS_", 0) == 0 ? v13 : v12;
        if (!dst.empty()) dst += ":";
        dst += item;
      }
      start = end + 1;
    }
    if ((!v12.empty() && SSL_CTX_set_cipher_list(c, v12.c_str()) != 1) ||
        (!v13.empty() && SSL_CTX_set_ciphersuites(c, v13.c_str()) != 1)) {
      error = "invalid cipher suites '" + cfg_.cipher_suites + "'";
      ERR_clear_error();
      return false;
    }
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
  if (cfg_.client_certificate) {
    const auto& cc = *cfg_.client_certificate;
    std::unique_ptr<BIO, BioDeleter> cb(
        BIO_new_mem_buf(cc.cert_pem.data(), static_cast<int>(cc.cert_pem.size())));
    X509* cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr || SSL_CTX_use_certificate(c, cert) != 1) {
      if (cert) X509_free(cert);
      error = "invalid client certificate " + cc.name;
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
        BIO_new_mem_buf(cc.key_pem.data(), static_cast<int>(cc.key_pem.size())));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
    if (key == nullptr || SSL_CTX_use_PrivateKey(c, key) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
      if (key) EVP_PKEY_free(key);
      error = "invalid client certificate key " + cc.name;
      ERR_clear_error();
      return false;
    }
    EVP_PKEY_free(key);
  }
  // Client-side resumption: we keep one session per endpoint ourselves.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &ClientContext::onNewSession);
  return true;
}

// ---- cache / factory ------------------------------------------------------------

ClientContextCache::ClientContextCache() = default;
ClientContextCache::~ClientContextCache() = default;

std::shared_ptr<ClientContext> ClientContextCache::get(const snapshot::UpstreamTls& tls,
                                                       std::string& error) {
  auto it = contexts_.find(tls.fingerprint);
  if (it != contexts_.end()) return it->second;
  auto ctx = std::make_shared<ClientContext>(tls);
  if (!ctx->init(error)) return nullptr;
  contexts_.emplace(tls.fingerprint, ctx);
  return ctx;
}

void ClientContextCache::retainOnly(const snapshot::Snapshot& snap) {
  std::unordered_map<uint64_t, std::shared_ptr<ClientContext>> keep;
  for (const auto& c : snap.clusters) {
    if (!c.tls) continue;
    auto it = contexts_.find(c.tls->fingerprint);
    if (it != contexts_.end()) keep.emplace(it->first, it->second);
  }
  contexts_ = std::move(keep);  // live connections hold their own reference
}

std::unique_ptr<net::Transport> makeClientTransport(std::shared_ptr<ClientContext> ctx, int fd,
                                                    const std::string& session_key,
                                                    stats::SslStats* stats) {
  return std::make_unique<TlsTransport>(std::move(ctx), fd, session_key, stats);
}

std::string validateClientSettings(const snapshot::UpstreamTls& tls) {
  ClientContext ctx(tls);
  std::string error;
  return ctx.init(error) ? std::string() : error;
}

}  // namespace portico::tls
