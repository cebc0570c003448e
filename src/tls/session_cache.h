#pragma once
// One worker's TLS sessions to resume, one per backend endpoint, for one
// client context. Bounded: keys are endpoint addresses, and a long-lived
// context (one BackendTLSPolicy) sees pods come and go; without a bound the
// sessions of every endpoint it ever met would stay.
#include <cstddef>
#include <string>
#include <unordered_map>

struct ssl_session_st;  // OpenSSL's SSL_SESSION; OpenSSL stays out of headers

namespace portico::tls {

class SessionCache {
 public:
  explicit SessionCache(size_t capacity) : capacity_(capacity) {}
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  ssl_session_st* get(const std::string& key) const;
  // Takes ownership of `session` and frees the key's previous one. A new
  // key in a full cache first evicts another key's session (any: the cost
  // is one full handshake to that endpoint, if it is still there).
  void put(const std::string& key, ssl_session_st* session);
  void drop(const std::string& key);
  size_t size() const { return sessions_.size(); }

 private:
  size_t capacity_;
  std::unordered_map<std::string, ssl_session_st*> sessions_;
};

}  // namespace portico::tls
