#pragma once
// One downstream HTTP/1.1 connection and the request currently on it: the
// per-request state machine of the proxy. Requests on a connection are served
// one at a time (pipelined input waits in the read buffer). Bodies stream both
// ways through bounded buffers: a side stops reading while the other side's
// output is above kHighWatermark.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/http1.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/transport.h"
#include "proxy/proxy_context.h"
#include "snapshot/snapshot.h"
#include "upstream/upstream.h"

namespace portico::proxy {

// Why a request ended without a normal upstream response; maps to exactly
// one status code and one Envoy response flag (see localReplyFor()).
enum class Failure {
  None,
  NoRoute,              // 404 NR
  NoHealthyUpstream,    // 503 UH
  ConnectFailure,       // 503 UF
  UpstreamReset,        // 503 UC (reset before headers)
  BadUpstreamResponse,  // 502 UPE
  UpstreamTimeout,      // 504 UT
  BadRequest,           // 400
  UriTooLong,           // 414
  HeadersTooLarge,      // 431
  RequestTimeout,       // 408
  Overloaded,           // 503 (connection limit)
  NoBackend,            // 500 (route without usable backend)
  ConnectMethod,        // 501 (CONNECT: Portico is no forward proxy)
  Misdirected,          // 421 (Host of another HTTPS listener than the SNI's)
};

struct Exchange;

class HttpConnection final : public net::IoHandler, public upstream::ConnectionOwner {
 public:
  static constexpr size_t kHighWatermark = 64 * 1024;
  // The most of a request body kept to send again on a route's retry.
  static constexpr size_t kMaxReplay = 64 * 1024;
  static constexpr size_t kReadChunk = 16 * 1024;

  HttpConnection(ProxyContext& ctx, int fd, std::string listener_name, std::string client_ip,
                 std::unique_ptr<net::Transport> transport);
  ~HttpConnection() override;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // `listener_cx_active`: listener.<name>.downstream_cx_active, decremented
  // when this connection closes (the worker incremented it on accept).
  void start(stats::Gauge* listener_cx_active);
  // The worker is draining: close now if idle, else after this response.
  void drain();
  // Whether a request (or part of one) holds per-request state right now.
  bool holdsRequestState() const { return rq_ != nullptr; }

  // portico::net::IoHandler
  void onIoEvent(uint32_t epoll_events) override;
  // portico::upstream::ConnectionOwner
  void onUpstreamEvent(upstream::UpstreamConnection& conn, uint32_t epoll_events) override;
  void onUpstreamConnectTimeout(upstream::UpstreamConnection& conn) override;

 private:
  enum class State { ReadingHead, Proxying, LocalReply, Tunnel, Closing, Closed };

  void pump();
  void startDrain();
  bool readDownstream();
  bool flushDownstream();
  bool processDownstreamInput();
  bool readUpstream();
  bool flushUpstream();
  bool processUpstreamInput();
  bool wantDownstreamRead() const;

  void onRequestHead();
  bool refreshSnapshot();
  void dispatch();
  void startMirrors();
  void endMirrors();
  bool connectUpstream(upstream::EndpointState* exclude, upstream::EndpointState* only = nullptr);
  bool retryWithFullOffer(const std::string& reason);
  void onUpstreamConnected();
  bool driveHandshake();
  bool driveDownstreamHandshake();
  void onUpstreamFailure(Failure failure, const std::string& detail, bool remote);
  void cutResponseShort(const char* flag);
  void onBadUpstreamResponse(std::string_view why);
  void onResponseHead();
  void onResponseComplete();
  void finishRequest();
  void releaseUpstream(bool reusable);
  void dropUpstream(bool remote);
  void endpointDone(bool success, bool timeout);
  void endUpstreamRequest();
  void beginDownstreamRequest();
  void sendLocalReply(Failure failure, const std::string& detail);
  void sendResponse(int status, std::string_view body, const http::Headers* extra);
  void sendRedirect(const snapshot::RequestRedirect& redirect);
  bool mayRetry() const;
  bool replayable() const;
  void keepForReplay(std::string_view framed);
  bool retryOnAnswer(int status);
  bool noteRetryLimit();
  void retryLater();
  bool applyCorsFilter();
  void addCorsHeaders(http::Headers& h) const;
  void writeAccessLog();
  void close();
  void takeExchange();
  void giveBackExchange();
  friend struct Exchange;
  static void onRequestTimer(void* self);
  static void onTryTimer(void* self);
  static void onDownstreamTimer(void* self);
  void checkTunnelIdle();
  void cutIdleStream();

  ProxyContext& ctx_;
  int fd_;
  std::string listener_name_;
  std::string client_ip_;
  std::unique_ptr<net::Transport> transport_;
  State state_ = State::ReadingHead;
  bool ds_readable_ = false;
  bool ds_writable_ = true;
  bool ds_eof_ = false;
  bool ds_hup_ = false;            // peer half-closed/errored: read until EOF, no shortcuts
  bool ds_handshake_done_ = true;  // false until an HTTPS handshake completes
  bool close_after_ = false;
  bool draining_ = false;
  bool head_started_ = false;
  bool ds_rq_open_ = false;     // counted in downstream_rq_active
  bool write_stalled_ = false;  // idle timer armed for a client not reading (flushDownstream)
  net::Buffer in_;
  net::Buffer out_;
  net::Timer ds_timer_;  // header timeout while a head arrives, stream idle timeout in a
                         // tunnel, else idle timeout

  // The snapshot and listener this connection routes on (refreshed between
  // requests only by pointer comparison: no shared_ptr copy per request).
  std::shared_ptr<const snapshot::Snapshot> snap_;
  const snapshot::Listener* listener_ = nullptr;
  stats::HttpStats* http_stats_ = nullptr;
  stats::Gauge* listener_cx_active_ = nullptr;

  // The current request, if any: taken from the worker's pool when a request's
  // first bytes arrive and given back once it is answered, so an idle
  // keep-alive connection holds none of its parsers, buffers or strings.
  Exchange* rq_ = nullptr;
  upstream::UpstreamConnection* up_ = nullptr;
  int stall_unsent_ = 0;  // send-queue bytes when the stall was last seen moving
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;

  // The worker's list of its connections (drain walks it): intrusive, so a
  // connection costs no allocation of its own there.
  friend class IntrusiveList<HttpConnection>;
  HttpConnection* prev_ = nullptr;
  HttpConnection* next_ = nullptr;
};

}  // namespace portico::proxy
