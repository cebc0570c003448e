#pragma once
// A byte stream over a connected socket: plain TCP here, TLS (src/tls) behind
// the same interface, so the proxy never knows which one it is talking to.
#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace portico::net {

struct IoResult {
  enum class Status { Ok, WouldBlock, Eof, Error };
  Status status = Status::Ok;
  size_t n = 0;
  std::string error;  // for Error: the reason, e.g. "Connection reset by peer"
};

class Transport {
 public:
  enum class Handshake { Done, WantRead, WantWrite, Failed };
  virtual ~Transport() = default;
  virtual IoResult read(char* buf, size_t len) = 0;
  virtual IoResult write(const char* buf, size_t len) = 0;
  // Drives a TLS handshake; plain TCP is always Done.
  virtual Handshake handshake() { return Handshake::Done; }
  // Why handshake() returned Failed (Envoy-style "TLS_error:..." text).
  virtual std::string failureReason() const { return {}; }
  // After handshake() failed or timed out: true when the offer was narrower
  // than the configuration allows (TLS 1.2 only, to resume a 1.2 session);
  // the transport forgets what narrowed it, so a new connection to the same
  // endpoint makes the full offer. The failure may be the server's, not the
  // narrowing's; one retry tells.
  virtual bool widenAfterFailure() { return false; }
  virtual bool secure() const { return false; }
  // The server name (SNI) a TLS client sent in its hello; empty for plain
  // TCP, before the handshake, or when the client sent none.
  virtual std::string_view serverName() const { return {}; }
  // The peer said it is closing this connection (HTTP "Connection: close")
  // after a complete exchange: TLS skips its own close_notify, as nginx
  // does; nothing is left to protect from truncation.
  virtual void peerIsClosing() {}
  // After a read that returned `got` of the `want` bytes asked: true when the
  // socket and the transport's own buffers are known to be empty, so an
  // edge-triggered reader can wait for the next edge instead of making a read
  // that would only say EAGAIN. False when unsure (the reader reads again).
  virtual bool readDrained(size_t got, size_t want) const {
    (void)got;
    (void)want;
    return false;
  }
};

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}
  IoResult read(char* buf, size_t len) override;
  IoResult write(const char* buf, size_t len) override;
  // A short recv(2) means the kernel had nothing more at that moment; later
  // bytes bring a new edge.
  bool readDrained(size_t got, size_t want) const override { return got < want; }

 private:
  int fd_;
};

}  // namespace portico::net
