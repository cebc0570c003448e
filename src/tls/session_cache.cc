#include "tls/session_cache.h"

#include <openssl/ssl.h>

namespace portico::tls {

SessionCache::~SessionCache() {
  for (auto& [key, s] : sessions_) SSL_SESSION_free(s);
}

ssl_session_st* SessionCache::get(const std::string& key) const {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second;
}

void SessionCache::put(const std::string& key, ssl_session_st* session) {
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    SSL_SESSION_free(it->second);
    it->second = session;
    return;
  }
  if (capacity_ == 0) {
    SSL_SESSION_free(session);
    return;
  }
  if (sessions_.size() >= capacity_) {
    auto victim = sessions_.begin();
    SSL_SESSION_free(victim->second);
    sessions_.erase(victim);
  }
  sessions_.emplace(key, session);
}

void SessionCache::drop(const std::string& key) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  SSL_SESSION_free(it->second);
  sessions_.erase(it);
}

}  // namespace portico::tls
