#pragma once
// Error and Result<T>: the leaf of the dependency graph. The data plane never
// throws; every fallible call returns a Result and the proxy maps the Error's
// source and kind to exactly one HTTP status (src/proxy is the only place that
// does that mapping).
#include <string>
#include <utility>
#include <variant>

namespace portico::common {

enum class ErrorSource { Downstream, Upstream, Internal, Config };

enum class ErrorKind {
  InvalidInput,   // malformed manifest / request
  NotFound,       // no route, missing object
  ConnectFailed,  // TCP connect refused / unreachable
  TlsFailed,      // handshake or verification failure
  Timeout,        // connect, request or idle timeout
  ProtocolError,  // bad HTTP from a peer
  ResetByPeer,    // peer closed / reset mid-message
  Overloaded,     // limit reached (connections, header size...)
  Unavailable,    // nothing to send to (no healthy endpoint)
  Io,             // other system call failure
};

struct Error {
  ErrorKind kind = ErrorKind::Io;
  ErrorSource source = ErrorSource::Internal;
  bool retryable = false;
  std::string context;  // human readable; shown in logs and 5xx bodies
};

const char* toString(ErrorKind kind);
const char* toString(ErrorSource source);

// Minimal expected-like type (std::expected is C++23).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace portico::common
