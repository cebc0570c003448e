#pragma once
// RequestMirror: a copy of a request sent to another cluster, whose answer is
// read and dropped. Best effort by design: a copy never slows down or fails
// the request it copies. It holds at most kMaxBuffered bytes of the request
// (a mirror backend that falls further behind is cut off), ends at the
// route's timeout (its cluster's default when the route has none, or "0s"),
// and however it ends only its own cluster's stats say so.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/http1.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "proxy/proxy_context.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

namespace portico::proxy {

class Mirror final : public net::IoHandler, public upstream::ConnectionOwner {
 public:
  static constexpr size_t kMaxBuffered = 256 * 1024;

  // The request as the primary backend gets it (after filters and rewrites).
  struct Request {
    std::string_view method;
    std::string_view target;
    const http::Headers* headers = nullptr;
    bool missing_host = false;  // HTTP/1.0 without Host: the endpoint's address is used
    std::optional<uint32_t> route_timeout_ms;
  };

  // Starts a copy of `rq` to the mirror's cluster. nullptr when the copy is
  // skipped (no endpoint, a backend TLS policy that fails closed, connect
  // refused at once). Otherwise the caller feeds it the request's body with
  // body() and ends its part with endOfRequest() or abort(), exactly once.
  static Mirror* start(ProxyContext& ctx, const std::shared_ptr<const snapshot::Snapshot>& snap,
                       const snapshot::Listener& listener, const snapshot::Mirror& mirror,
                       const Request& rq);

  // Request body bytes, framed as for the upstream (chunk framing included).
  void body(std::string_view bytes);
  // The whole request has been handed over.
  void endOfRequest();
  // The request broke off (client gone, bad body): the copy is dropped.
  void abort();

  // portico::net::IoHandler: a mirror has no fd of its own; it is one only
  // to be freed with deleteLater().
  void onIoEvent(uint32_t) override {}
  // portico::upstream::ConnectionOwner
  void onUpstreamEvent(upstream::UpstreamConnection& conn, uint32_t epoll_events) override;
  void onUpstreamConnectTimeout(upstream::UpstreamConnection& conn) override;

  ~Mirror() override;

  // For tests: whether the copy holds any buffer (request or answer bytes).
  bool holdsBuffers() const {
    return out_.writableSize() + out_.size() + in_.writableSize() + in_.size() > 0;
  }

 private:
  Mirror(ProxyContext& ctx, std::shared_ptr<const snapshot::Snapshot> snap,
         const snapshot::Listener& listener, const snapshot::Cluster& cfg,
         upstream::ClusterRuntime& cluster);
  bool connect(std::string& err);
  void onConnected();
  void pump();
  bool read();
  void finish(int status, const char* why);
  // The status a cluster counts for a failed request: `status` (the local
  // reply's) before the answer's head came, none after (HttpConnection
  // counts an answer's status only when the answer ends).
  int failureStatus(int status) const { return status_ == 0 ? status : 0; }
  void dispose();
  static void onTimer(void* self);

  ProxyContext& ctx_;
  std::shared_ptr<const snapshot::Snapshot> snap_;  // pins cfg_
  const snapshot::Listener& listener_;
  const snapshot::Cluster& cfg_;
  upstream::ClusterRuntime& cluster_;
  upstream::EndpointState* endpoint_ = nullptr;
  upstream::UpstreamConnection* conn_ = nullptr;
  net::Timer timer_;
  net::Buffer out_;
  net::Buffer in_;
  http::ResponseParser parser_;
  uint64_t start_ms_ = 0;
  int status_ = 0;
  bool fed_ = false;       // the feeder is done with this copy
  bool complete_ = false;  // the whole request was handed over
  bool done_ = false;      // the upstream side ended
  bool disposed_ = false;  // handed to deleteLater()

  friend class IntrusiveList<Mirror>;
  Mirror* prev_ = nullptr;
  Mirror* next_ = nullptr;
};

}  // namespace portico::proxy
