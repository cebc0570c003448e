// Portico's TLS transport (an HTTPS listener's) over a socketpair, with a
// plain OpenSSL client on the other end. Pins what the proxy's edge handling
// relies on: a read() that returns WouldBlock is waiting for bytes to come
// in, never for the socket to take some. The proxy then waits for the next
// read edge only; were a read ever blocked on a write (OpenSSL answering a
// peer's message inline into a full socket), bytes already received could
// wait for an edge that never comes.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "tls/tls.h"

namespace portico::tls {
namespace {

// A throwaway P-256 key and self-signed certificate, made when the test runs
// (a checked-in certificate would expire).
snapshot::CertificateKeyPair makeCertificate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("example.com"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:example.com");
  X509_add_ext(x, san, -1);
  X509_EXTENSION_free(san);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  auto pem = [](auto write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(b);
    return out;
  };
  snapshot::CertificateKeyPair pair;
  pair.name = "test/cert";
  pair.cert_pem = pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
  pair.key_pem =
      pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return pair;
}

class TlsTransportTest : public ::testing::Test {
 protected:
  void start(int max_version) {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
    snapshot::DownstreamTls cfg;
    cfg.certificates.push_back({{"*"}, makeCertificate()});
    std::string error;
    auto server = makeServerContext(cfg, error);
    ASSERT_TRUE(server) << error;
    transport_ = makeServerTransport(server, fds_[0], nullptr);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(client_ctx_, max_version);
    client_ = SSL_new(client_ctx_);  // no verification: the server is under test
    SSL_set_fd(client_, fds_[1]);
    SSL_set_connect_state(client_);
    bool server_done = false, client_done = false;
    for (int i = 0; i < 100 && !(server_done && client_done); ++i) {
      if (!server_done) server_done = transport_->handshake() == net::Transport::Handshake::Done;
      if (!client_done) client_done = SSL_do_handshake(client_) == 1;
    }
    ASSERT_TRUE(server_done && client_done);
  }
  void TearDown() override {
    transport_.reset();
    if (client_ != nullptr) SSL_free(client_);
    if (client_ctx_ != nullptr) SSL_CTX_free(client_ctx_);
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  // The client sends `text`; returns what one server read() gives.
  net::IoResult clientSends(const std::string& text, std::string& got) {
    EXPECT_EQ(SSL_write(client_, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()));
    char buf[256];
    auto r = transport_->read(buf, sizeof(buf));
    if (r.status == net::IoResult::Status::Ok) got.assign(buf, r.n);
    return r;
  }
  // Fills the server's direction of the socket (the client reads nothing).
  void fillServerToClient() {
    std::string junk(16384, 'x');
    while (::send(fds_[0], junk.data(), junk.size(), MSG_NOSIGNAL) > 0) {
    }
  }

  int fds_[2] = {-1, -1};
  std::unique_ptr<net::Transport> transport_;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
};

// TLS 1.3: a KeyUpdate that asks for ours in return, arriving while the
// socket cannot take a byte. OpenSSL 3.0 defers our KeyUpdate to the next
// write, so the read returns the data behind it. Should a later OpenSSL
// answer inline (and return WANT_WRITE), this fails: the proxy would then
// have to retry reads on write edges.
TEST_F(TlsTransportTest, ReadAfterPeerKeyUpdateIsNotBlockedOnAFullSocket) {
  start(TLS1_3_VERSION);
  std::string got;
  ASSERT_EQ(clientSends("first", got).status, net::IoResult::Status::Ok);  // tickets read
  fillServerToClient();
  ASSERT_EQ(SSL_key_update(client_, SSL_KEY_UPDATE_REQUESTED), 1);
  auto r = clientSends("after key update", got);
  ASSERT_EQ(r.status, net::IoResult::Status::Ok) << r.error;
  EXPECT_EQ(got, "after key update");
}

// TLS 1.2: a client's renegotiation is refused (SSL_OP_NO_RENEGOTIATION on
// server contexts): the read fails. Allowed, it would return WouldBlock,
// waiting for the full socket to take the server's handshake messages.
TEST_F(TlsTransportTest, ClientRenegotiationIsRefused) {
  start(TLS1_2_VERSION);
  std::string got;
  ASSERT_EQ(clientSends("first", got).status, net::IoResult::Status::Ok);
  fillServerToClient();
  ASSERT_EQ(SSL_renegotiate(client_), 1);
  ASSERT_LE(SSL_do_handshake(client_), 0);  // sends the ClientHello, waits for an answer
  char buf[64];
  auto r = transport_->read(buf, sizeof(buf));
  EXPECT_EQ(r.status, net::IoResult::Status::Error) << "status " << static_cast<int>(r.status);
}

// Portico as the client of a TLS 1.2 backend that asks to renegotiate (a
// HelloRequest): refused (SSL_OP_NO_RENEGOTIATION on client contexts, as
// Envoy's allow_renegotiation: false), so the backend's new handshake never
// completes, and data sent before it still arrives.
TEST(TlsClientTransport, BackendRenegotiationIsRefused) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const auto cert = makeCertificate();
  snapshot::UpstreamTls cfg;
  cfg.sni = "example.com";
  cfg.ca_pem = cert.cert_pem;
  cfg.fingerprint = 1;
  ClientContextCache cache;
  std::string error;
  auto ctx = cache.get(cfg, nullptr, 0, error);
  ASSERT_TRUE(ctx) << error;
  auto portico = makeClientTransport(ctx, fds[0], "127.0.0.1:1", false, nullptr);

  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_max_proto_version(server_ctx, TLS1_2_VERSION);
  BIO* b = BIO_new_mem_buf(cert.cert_pem.data(), static_cast<int>(cert.cert_pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  b = BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  ASSERT_EQ(SSL_CTX_use_certificate(server_ctx, x), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx, key), 1);
  X509_free(x);
  EVP_PKEY_free(key);
  SSL* server = SSL_new(server_ctx);
  SSL_set_fd(server, fds[1]);
  SSL_set_accept_state(server);

  bool portico_done = false, server_done = false;
  for (int i = 0; i < 100 && !(portico_done && server_done); ++i) {
    if (!portico_done) {
      auto h = portico->handshake();
      ASSERT_NE(h, net::Transport::Handshake::Failed) << portico->failureReason();
      portico_done = h == net::Transport::Handshake::Done;
    }
    if (!server_done) server_done = SSL_do_handshake(server) == 1;
  }
  ASSERT_TRUE(portico_done && server_done);

  ASSERT_EQ(SSL_write(server, "before", 6), 6);
  ASSERT_EQ(SSL_CTX_sess_accept_good(server_ctx), 1);
  ASSERT_EQ(SSL_renegotiate(server), 1);
  ASSERT_EQ(SSL_do_handshake(server), 1);  // sends the HelloRequest
  char buf[64];
  std::string got;
  for (int i = 0; i < 20; ++i) {
    auto r = portico->read(buf, sizeof(buf));
    if (r.status == net::IoResult::Status::Ok) got.append(buf, r.n);
    SSL_read(server, buf, sizeof(buf));  // takes a ClientHello, if one came
    ERR_clear_error();
  }
  EXPECT_EQ(got, "before");
  EXPECT_EQ(SSL_CTX_sess_accept_good(server_ctx), 1) << "the backend renegotiated";
  SSL_free(server);
  SSL_CTX_free(server_ctx);
  portico.reset();
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace portico::tls
