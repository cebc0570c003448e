// proxy::Mirror driven directly, without running its worker's loop: the
// copy's connection never gets its connect event, so everything fed to it
// stays in its own buffer.
#include "proxy/mirror.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace portico::proxy {
namespace {

class MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A port that accepts (the kernel completes the handshake) and is never read.
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);

    auto snap = std::make_shared<snapshot::Snapshot>();
    snapshot::Listener l;
    l.name = "l";
    snap->listeners.push_back(l);
    snapshot::Cluster c;
    c.name = "mirror";
    c.request_timeout_ms = 100;  // the default a copy falls back to
    c.endpoints.push_back({"127.0.0.1", ntohs(a.sin_port), true});
    snap->clusters.push_back(c);
    snap->buildIndex();
    ctx_.clusters.update(*snap);
    ctx_.snapshot = snap;
    snap_ = snap;
    mirror_.cluster = "mirror";
    mirror_.cluster_hash = snapshot::nameHash("mirror");
    headers_.add("host", "a.example");
    headers_.add("content-length", std::to_string(kBody));
  }
  void TearDown() override { ::close(listen_fd_); }

  Mirror* start(std::optional<uint32_t> route_timeout_ms = std::nullopt) {
    Mirror::Request rq{"PUT", "/upload", &headers_, false, route_timeout_ms};
    return Mirror::start(ctx_, snap_, snap_->listeners[0], mirror_, rq);
  }
  // Runs the worker's loop for `ms`.
  void runFor(uint64_t ms) {
    net::Timer stop(
        loop_, [](void* l) { static_cast<net::EventLoop*>(l)->stop(); }, &loop_);
    stop.arm(ms);
    loop_.run();
  }
  int64_t activeRequests() {
    return ctx_.clusters.find("mirror")->stats.upstream_rq_active->value();
  }

  static constexpr size_t kBody = 1024 * 1024;
  int listen_fd_ = -1;
  net::EventLoop loop_;
  stats::Store store_;
  ProxyContext ctx_{loop_, store_};
  std::shared_ptr<const snapshot::Snapshot> snap_;
  snapshot::Mirror mirror_;
  http::Headers headers_;
};

TEST_F(MirrorTest, ACopyCutOffForFallingBehindLetsGoOfItsBuffers) {
  Mirror* m = start();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(activeRequests(), 1);
  const std::string piece(16 * 1024, 'x');
  for (size_t fed = 0; fed < kBody; fed += piece.size()) m->body(piece);
  // Cut off at kMaxBuffered: over for the cluster, and nothing of the
  // request is kept while the client goes on sending the rest of it.
  EXPECT_EQ(activeRequests(), 0);
  EXPECT_FALSE(m->holdsBuffers());
  m->endOfRequest();
  EXPECT_TRUE(ctx_.mirrors.empty());
}

TEST_F(MirrorTest, ACopyStillBeingSentKeepsItsBuffer) {
  Mirror* m = start();
  ASSERT_NE(m, nullptr);
  m->body(std::string(1000, 'x'));
  EXPECT_TRUE(m->holdsBuffers());
  EXPECT_EQ(activeRequests(), 1);
  m->abort();
  EXPECT_EQ(activeRequests(), 0);
  EXPECT_TRUE(ctx_.mirrors.empty());
}

TEST_F(MirrorTest, ARuleWithoutTimeoutStillEndsItsCopies) {
  // "0s" turns the client's timeout off; a backend that never answers must
  // not hold the copy (and its fd) for good: the cluster's default applies.
  Mirror* m = start(0);
  ASSERT_NE(m, nullptr);
  m->endOfRequest();
  EXPECT_EQ(ctx_.mirrors.size(), 1u);
  runFor(600);
  auto& s = ctx_.clusters.find("mirror")->stats;
  EXPECT_EQ(s.upstream_rq_timeout->value(), 1u);
  EXPECT_EQ(activeRequests(), 0);
  EXPECT_TRUE(ctx_.mirrors.empty());
}

}  // namespace
}  // namespace portico::proxy
