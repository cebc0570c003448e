// A real HttpConnection on one end of a socketpair, its worker's event loop
// on a thread, and a blocking client on the other end: checks that an idle
// keep-alive connection gives its per-request state back to the worker's
// pool (what keeps idle connections small, issue 4 scenario 5).
#include "proxy/http_connection.h"

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>
#include <string>
#include <thread>

namespace portico::proxy {
namespace {

std::shared_ptr<const snapshot::Snapshot> directResponseSnapshot() {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snapshot::Listener l;
  l.name = "test_listener";
  l.stat_prefix = "test_listener";
  snapshot::VirtualHost vh;
  vh.domains = {"*"};
  snapshot::Route r;
  r.name = "direct";
  r.direct_status = 200;
  r.direct_body = "hello";
  vh.routes.push_back(r);
  l.virtual_hosts.push_back(vh);
  snap->listeners.push_back(l);
  snap->buildIndex();
  return snap;
}

size_t countOf(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

class HttpConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.snapshot = directResponseSnapshot();
    ctx_.settings.access_log = AccessLogFormat::Off;
    ctx_.worker = this;
    ctx_.on_close = [](void* self, HttpConnection* c) {
      static_cast<HttpConnectionTest*>(self)->ctx_.connections.remove(c);
    };
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    client_ = fds[1];
    int flags = 0;
    ::ioctl(client_, FIONBIO, &flags);  // the client end blocks
    timeval tv{5, 0};
    ::setsockopt(client_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    conn_ = new HttpConnection(ctx_, fds[0], "test_listener", "127.0.0.1",
                               std::make_unique<net::PlainTransport>(fds[0]));
    ctx_.connections.push(conn_);
    conn_->start(nullptr);
    loop_thread_ = std::thread([this] { loop_.run(); });
  }
  void TearDown() override {
    loop_.stop();
    loop_thread_.join();
    for (auto* c : ctx_.connections.all()) delete c;
    ::close(client_);
  }

  // Sends `bytes`, reads until `responses` complete "hello" responses came.
  std::string exchange(const std::string& bytes, size_t responses) {
    EXPECT_EQ(::write(client_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    std::string got;
    char buf[4096];
    while (countOf(got, "\r\n\r\nhello") < responses) {
      ssize_t n = ::read(client_, buf, sizeof(buf));
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }
  // Stops the loop so the connection can be inspected from this thread.
  void stopLoop() {
    loop_.stop();
    loop_thread_.join();
    loop_thread_ = std::thread([] {});
  }

  net::EventLoop loop_;
  stats::Store store_;
  ProxyContext ctx_{loop_, store_};
  HttpConnection* conn_ = nullptr;
  int client_ = -1;
  std::thread loop_thread_;
};

TEST_F(HttpConnectionTest, IdleKeepAliveConnectionHoldsNoRequestState) {
  const std::string get = "GET / HTTP/1.1\r\nhost: a.example\r\n\r\n";
  std::string got = exchange(get, 1);
  EXPECT_EQ(countOf(got, "HTTP/1.1 200 OK\r\n"), 1u) << got;
  got = exchange(get, 1);
  EXPECT_EQ(countOf(got, "HTTP/1.1 200 OK\r\n"), 1u) << got;
  stopLoop();
  ASSERT_EQ(ctx_.connections.size(), 1u);  // still open: keep-alive
  EXPECT_FALSE(conn_->holdsRequestState());
  // Both requests used the same pooled exchange, which is back in the pool.
  EXPECT_EQ(ctx_.exchanges.spare(), 1u);
}

TEST_F(HttpConnectionTest, PipelinedRequestsAreAnsweredInOrderAndReleaseTheirState) {
  const std::string two =
      "GET /one HTTP/1.1\r\nhost: a.example\r\n\r\n"
      "GET /two HTTP/1.1\r\nhost: a.example\r\n\r\n";
  std::string got = exchange(two, 2);
  EXPECT_EQ(countOf(got, "HTTP/1.1 200 OK\r\n"), 2u) << got;
  stopLoop();
  EXPECT_FALSE(conn_->holdsRequestState());
  EXPECT_EQ(ctx_.exchanges.spare(), 1u);
}

TEST_F(HttpConnectionTest, ClosedConnectionGivesItsStateBack) {
  // Half a head, then the client goes away: the exchange taken for the
  // partial head must return to the pool, not leak with the connection.
  const std::string half = "GET / HTTP/1.1\r\nhost: a.exa";
  ASSERT_EQ(::write(client_, half.data(), half.size()), static_cast<ssize_t>(half.size()));
  ::shutdown(client_, SHUT_WR);
  char buf[256];
  while (::read(client_, buf, sizeof(buf)) > 0) {
  }
  stopLoop();
  EXPECT_EQ(ctx_.connections.size(), 0u);
  EXPECT_EQ(ctx_.exchanges.spare(), 1u);
}

TEST_F(HttpConnectionTest, StrayLineBreaksAfterARequestDoNotHoldRequestState) {
  // RFC 9112 2.2: empty lines before a request line are skipped. They arrive
  // after the answered request and must not leave the connection "busy".
  std::string got = exchange("GET / HTTP/1.1\r\nhost: a.example\r\n\r\n\r\n", 1);
  EXPECT_EQ(countOf(got, "HTTP/1.1 200 OK\r\n"), 1u) << got;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the CRLF is processed
  stopLoop();
  ASSERT_EQ(ctx_.connections.size(), 1u);
  EXPECT_FALSE(conn_->holdsRequestState());
  EXPECT_EQ(ctx_.exchanges.spare(), 1u);
}

TEST_F(HttpConnectionTest, ExchangeOfAnOversizedHeadIsNotKept) {
  // 431 after ~60 KiB of header lines: the parser's buffer holds all of it,
  // so pooling that exchange would pin the memory for the process's life.
  std::string head = "GET / HTTP/1.1\r\nhost: a.example\r\n";
  const std::string line = "x-filler: " + std::string(90, 'a') + "\r\n";
  while (head.size() < 70 * 1024) head += line;
  std::string got;
  std::thread writer([&] {
    // The server answers 431 and closes before reading it all.
    size_t off = 0;
    while (off < head.size()) {
      ssize_t n = ::send(client_, head.data() + off, std::min<size_t>(4096, head.size() - off),
                         MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  });
  char buf[4096];
  for (ssize_t n; (n = ::read(client_, buf, sizeof(buf))) > 0;) got.append(buf, n);
  writer.join();
  EXPECT_EQ(got.rfind("HTTP/1.1 431 ", 0), 0u) << got.substr(0, 200);
  stopLoop();
  EXPECT_EQ(ctx_.connections.size(), 0u);
  EXPECT_EQ(ctx_.exchanges.spare(), 0u);
}

TEST(ExchangePool, ReusesGivenExchangesUpToItsLimit) {
  net::EventLoop loop;
  ExchangePool pool;
  Exchange* a = pool.take(loop, nullptr);
  pool.give(a);
  EXPECT_EQ(pool.spare(), 1u);
  EXPECT_EQ(pool.take(loop, nullptr), a);
  EXPECT_EQ(pool.spare(), 0u);
  pool.give(a);
  std::vector<Exchange*> many;
  for (size_t i = 0; i < ExchangePool::kMaxFree + 10; ++i) many.push_back(pool.take(loop, nullptr));
  for (auto* e : many) pool.give(e);
  EXPECT_EQ(pool.spare(), ExchangePool::kMaxFree);
}

}  // namespace
// x-request-id values: RFC 9562 version 4 UUIDs, all distinct.
TEST(RequestId, Version4UuidsThatDoNotRepeat) {
  net::EventLoop loop;
  stats::Store store;
  ProxyContext ctx{loop, store};
  ctx.rng = 0x1234567887654321ull;
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const std::string id(ctx.newRequestId());
    ASSERT_EQ(id.size(), 36u) << id;
    for (size_t k = 0; k < id.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23)
        ASSERT_EQ(id[k], '-') << id;
      else
        ASSERT_TRUE(std::isxdigit(static_cast<unsigned char>(id[k])) && !std::isupper(id[k])) << id;
    }
    ASSERT_EQ(id[14], '4') << id;
    ASSERT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

}  // namespace portico::proxy
