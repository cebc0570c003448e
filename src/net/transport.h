#pragma once
// A byte stream over a connected socket: plain TCP here, TLS (src/tls) behind
// the same interface, so the proxy never knows which one it is talking to.
#include <sys/types.h>

#include <cstddef>
#include <string>

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
  virtual bool secure() const { return false; }
  // True when a read that returned less than asked means the socket had
  // nothing more at that moment (plain TCP). Edge-triggered readers then skip
  // the extra read that would only say EAGAIN. TLS may hold decrypted bytes
  // back, so it says no.
  virtual bool shortReadDrains() const { return false; }
};

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(int fd) : fd_(fd) {}
  IoResult read(char* buf, size_t len) override;
  IoResult write(const char* buf, size_t len) override;
  bool shortReadDrains() const override { return true; }

 private:
  int fd_;
};

}  // namespace portico::net
