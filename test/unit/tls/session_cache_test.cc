#include "tls/session_cache.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>

namespace portico::tls {
namespace {

// Sessions made without a handshake; the cache only stores and frees them.
// The test holds a second reference, so its pointers stay valid whatever the
// cache frees.
struct Held {
  SSL_SESSION* s = SSL_SESSION_new();
  Held() { SSL_SESSION_up_ref(s); }  // the cache takes over the other one
  ~Held() { SSL_SESSION_free(s); }
};

TEST(SessionCache, GetPutReplaceDrop) {
  SessionCache cache(8);
  Held a, b;
  EXPECT_EQ(cache.get("10.0.0.1:443"), nullptr);
  cache.put("10.0.0.1:443", a.s);
  EXPECT_EQ(cache.get("10.0.0.1:443"), a.s);
  cache.put("10.0.0.1:443", b.s);  // replaces, frees the cache's reference to a
  EXPECT_EQ(cache.get("10.0.0.1:443"), b.s);
  EXPECT_EQ(cache.size(), 1u);
  cache.drop("10.0.0.1:443");
  EXPECT_EQ(cache.get("10.0.0.1:443"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  cache.drop("10.0.0.1:443");  // absent: nothing happens
}

TEST(SessionCache, StaysWithinCapacityAsEndpointsChurn) {
  SessionCache cache(4);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "10.0.0." + std::to_string(i) + ":443";
    cache.put(key, SSL_SESSION_new());
    EXPECT_LE(cache.size(), 4u);
    EXPECT_NE(cache.get(key), nullptr) << "the newest endpoint's session is kept";
  }
  EXPECT_EQ(cache.size(), 4u);
}

TEST(SessionCache, ZeroCapacityKeepsNothing) {
  SessionCache cache(0);
  cache.put("a:1", SSL_SESSION_new());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.get("a:1"), nullptr);
}

}  // namespace
}  // namespace portico::tls
