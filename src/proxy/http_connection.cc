#include "proxy/http_connection.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "net/socket.h"
#include "proxy/mirror.h"
#include "snapshot/match.h"
#include "tls/tls.h"

namespace portico::proxy {
namespace {

using http::ParseEvent;
using IoStatus = net::IoResult::Status;

struct LocalReply {
  int status;
  const char* flag;
  const char* body;
};

// The one place a failure becomes a status code. Bodies follow Envoy's
// wording so operators can grep for what they already know.
LocalReply localReplyFor(Failure f) {
  switch (f) {
    case Failure::NoRoute:
      return {404, "NR", "route not found"};
    case Failure::NoHealthyUpstream:
      return {503, "UH", "no healthy upstream"};
    case Failure::ConnectFailure:
      return {503, "UF",
              "upstream connect error or disconnect/reset before headers. reset reason: connection "
              "failure"};
    case Failure::UpstreamReset:
      return {503, "UC",
              "upstream connect error or disconnect/reset before headers. reset reason: connection "
              "termination"};
    case Failure::BadUpstreamResponse:
      return {502, "UPE", "upstream sent an invalid response"};
    case Failure::UpstreamTimeout:
      return {504, "UT", "upstream request timeout"};
    case Failure::BadRequest:
      return {400, "DPE", "bad request"};
    case Failure::UriTooLong:
      return {414, "DPE", "request URI too long"};
    case Failure::HeadersTooLarge:
      return {431, "DPE", "request header fields too large"};
    case Failure::RequestTimeout:
      return {408, "DT", "request timeout"};
    case Failure::Overloaded:
      return {503, "LR", "too many connections"};
    case Failure::NoBackend:
      return {500, "-", "no valid backend for route"};
    case Failure::ConnectMethod:
      return {501, "-", "CONNECT is not supported"};
    case Failure::Misdirected:
      return {421, "-", "misdirected request"};
    case Failure::None:
      break;
  }
  return {500, "-", "internal error"};
}

Failure failureForParse(http::ParseError e) {
  switch (e) {
    case http::ParseError::UriTooLong:
      return Failure::UriTooLong;
    case http::ParseError::HeadersTooLarge:
      return Failure::HeadersTooLarge;
    default:
      return Failure::BadRequest;
  }
}

std::string_view headerLookup(const void* ctx, std::string_view lower_name, bool& found) {
  const auto* headers = static_cast<const http::Headers*>(ctx);
  for (const auto& f : headers->fields()) {
    if (http::iequals(f.name, lower_name)) {
      found = true;
      return f.value;
    }
  }
  found = false;
  return {};
}

void applyHeaderModifier(http::Headers& h, const snapshot::HeaderModifier& m) {
  for (const auto& name : m.remove) h.remove(name);
  for (const auto& [name, value] : m.set) h.set(name, value);
  for (const auto& [name, value] : m.add) {
    // HTTPHeaderFilter.Add "appends to any existing values": "my-header: foo"
    // plus "bar,baz" is "my-header: foo,bar,baz", one field, so a backend that
    // reads only the first field of a name still sees every value. Set-Cookie
    // cannot be folded (RFC 9110 5.3) and gets a field of its own.
    if (!h.has(name) || http::iequals(name, "set-cookie")) {
      h.add(name, value);
      continue;
    }
    // Cookie's list members are separated by "; " (RFC 6265 5.4), not ','.
    const std::string_view sep = http::iequals(name, "cookie") ? "; " : ",";
    std::string joined;
    for (const auto& f : h.fields()) {
      if (!http::iequals(f.name, name) || f.value.empty()) continue;
      joined.append(f.value);
      joined.append(sep);
    }
    joined.append(value);
    h.set(name, joined);
  }
}

// The path a PathModifier produces from `path` (which matched `route_prefix`).
std::string modifyPath(const snapshot::PathModifier& m, std::string_view path,
                       const snapshot::PathMatch& match) {
  if (m.type == snapshot::PathModifier::Type::ReplaceFullPath) return m.value;
  // ReplacePrefixMatch: swap the matched prefix, keeping a single '/' joint.
  std::string_view prefix = match.value;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  std::string_view rest = path.size() >= prefix.size() ? path.substr(prefix.size()) : "";
  if (prefix == "/") rest = path.substr(1);
  std::string out(m.value);
  if (rest.empty()) return out.empty() ? "/" : out;
  if (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  if (out.empty() || out.back() != '/') out.push_back('/');
  out.append(rest);
  return out;
}

std::string jsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

}  // namespace

// Everything that lives only while a request is on the connection.
struct Exchange {
  explicit Exchange(net::EventLoop& loop)
      : timer(loop, &HttpConnection::onRequestTimer, this),
        try_timer(loop, &HttpConnection::onTryTimer, this) {}

  void stopTimers() {
    timer.disarm();
    try_timer.disarm();
  }

  // Back to a fresh request; parsers and strings keep their capacity (the
  // pool has released the buffers already).
  void reset() {
    req_parser.reset();
    resp_parser.reset();
    up_target.clear();
    upstream_host.clear();
    start_ms = 0;
    route = nullptr;
    backend = nullptr;
    cluster = nullptr;
    cluster_cfg = nullptr;
    endpoint = nullptr;
    missing_host = req_done = req_chunked_out = resp_started = resp_done = false;
    rq_active = resp_chunked_out = upgrade = head_request = retried = reused_upstream = false;
    widened = tunnel_probed = cors_allowed = backing_off = deadline_passed = false;
    replay_overflow = false;
    replay.clear();
    tunnel_io_ms = 0;
    connect_attempts = 0;
    retries = 0;
    status = 0;
    flag = "-";
  }
  // Whether keeping it for reuse is worth its memory: a request with a huge
  // head (or a failed one, left in the parser) would otherwise pin that
  // capacity in the pool. Buffers are released before this is asked.
  bool worthKeeping() const {
    constexpr size_t kMaxRetained = 8 * 1024;
    return req_parser.retainedCapacity() + resp_parser.retainedCapacity() + up_target.capacity() +
               upstream_host.capacity() + replay.capacity() <=
           kMaxRetained;
  }

  HttpConnection* owner = nullptr;
  net::Timer timer;  // the route's request timeout
  // HTTPRoute retry: each try's timeout (timeouts.backendRequest) while a
  // try runs; the backoff before the next one while backing_off.
  net::Timer try_timer;
  bool backing_off = false;
  bool deadline_passed = false;  // the request timeout fired: no more tries
  uint32_t retries = 0;          // tries after the first
  std::string replay;            // the body so far, for another try (keepForReplay())
  bool replay_overflow = false;  // ... which did not fit: no other try
  http::RequestParser req_parser;
  http::ResponseParser resp_parser;
  net::Buffer up_in;
  net::Buffer up_out;
  std::string up_target;  // request-target sent upstream (after any rewrite)
  std::string upstream_host;
  uint64_t start_ms = 0;
  const snapshot::Route* route = nullptr;
  const snapshot::WeightedCluster* backend = nullptr;  // the route's backend picked
  upstream::ClusterRuntime* cluster = nullptr;
  const snapshot::Cluster* cluster_cfg = nullptr;  // in snap_, pinned for the request
  upstream::EndpointState* endpoint = nullptr;
  const char* flag = "-";
  int connect_attempts = 0;
  int status = 0;
  bool missing_host = false;
  bool req_done = false;  // downstream request fully read
  bool req_chunked_out = false;
  bool resp_started = false;  // response head written downstream
  bool resp_done = false;     // upstream response fully received
  bool rq_active = false;     // counted in upstream_rq_active
  bool resp_chunked_out = false;
  bool upgrade = false;
  bool head_request = false;
  bool retried = false;
  bool reused_upstream = false;
  bool widened = false;       // retried a narrowed TLS offer with the full one
  bool cors_allowed = false;  // the route's CORS filter allows the request's Origin
  // Copies of this request still being fed its body (RequestMirror); each
  // is ended with endOfRequest() or abort() exactly once.
  std::vector<Mirror*> mirrors;
  // Tunnel (upgraded connection) idle tracking, see checkTunnelIdle().
  bool tunnel_probed = false;  // the send queues below were sampled with no I/O since
  int tunnel_ds_unsent = 0;    // bytes in the client socket's send queue then
  int tunnel_up_unsent = 0;    // bytes in the upstream socket's send queue then
  uint64_t tunnel_io_ms = 0;   // when a byte last moved through the tunnel (pump())
};

ExchangePool::~ExchangePool() {
  for (Exchange* e : free_) delete e;
}

Exchange* ExchangePool::take(net::EventLoop& loop, HttpConnection* owner) {
  Exchange* e;
  if (free_.empty()) {
    e = new Exchange(loop);
  } else {
    e = free_.back();
    free_.pop_back();
  }
  e->owner = owner;
  return e;
}

void ExchangePool::give(Exchange* e) {
  e->stopTimers();
  e->owner = nullptr;
  // The request ended before all of it was read: its copies are incomplete.
  for (Mirror* m : e->mirrors) m->abort();
  e->mirrors.clear();
  // Upstream buffers go back to the worker's block cache, where any
  // connection can use them; a spare exchange keeps only small strings.
  e->up_in.clear();
  e->up_in.shrink();
  e->up_out.clear();
  e->up_out.shrink();
  if (free_.size() >= kMaxFree || !e->worthKeeping()) {
    delete e;
    return;
  }
  e->reset();
  free_.push_back(e);
}

bool ProxyContext::startUpstreamTls(upstream::UpstreamConnection& conn,
                                    const snapshot::UpstreamTls& tls,
                                    const snapshot::Listener& listener,
                                    const std::string& session_key, bool may_narrow,
                                    stats::SslStats* ssl_stats, std::string& error) {
  const auto& cert = listener.backend_client_certificate;
  auto client =
      tls_contexts.get(tls, cert ? &*cert : nullptr, listener.backend_client_fingerprint, error);
  if (!client) return false;
  conn.setTransport(
      tls::makeClientTransport(std::move(client), conn.fd(), session_key, may_narrow, ssl_stats));
  return true;
}

HttpConnection::HttpConnection(ProxyContext& ctx, int fd, std::string listener_name,
                               std::string client_ip, std::unique_ptr<net::Transport> transport)
    : ctx_(ctx),
      fd_(fd),
      listener_name_(std::move(listener_name)),
      client_ip_(std::move(client_ip)),
      transport_(std::move(transport)),
      ds_handshake_done_(!transport_->secure()),
      ds_timer_(ctx.loop, &HttpConnection::onDownstreamTimer, this) {}

HttpConnection::~HttpConnection() {
  if (up_ != nullptr) {
    dropUpstream(false);
  }
  if (fd_ >= 0) {
    transport_.reset();
    net::EventLoop::closeUnshared(fd_);
  }
  if (rq_ != nullptr) giveBackExchange();
}

void HttpConnection::takeExchange() {
  if (rq_ == nullptr) rq_ = ctx_.exchanges.take(ctx_.loop, this);
}

void HttpConnection::giveBackExchange() {
  ctx_.exchanges.give(rq_);
  rq_ = nullptr;
}

void HttpConnection::start(stats::Gauge* listener_cx_active) {
  listener_cx_active_ = listener_cx_active;
  refreshSnapshot();
  if (http_stats_ != nullptr) {
    http_stats_->downstream_cx_total->inc();
    http_stats_->downstream_cx_active->add();
  }
  ctx_.loop.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, this);
  ds_timer_.arm(ctx_.settings.idle_timeout_ms);
  if (ctx_.connections.size() > ctx_.settings.max_connections) {
    // Over the limit: a short 503 and close, without reading the request.
    auto reply = localReplyFor(Failure::Overloaded);
    out_.append(
        fmt::format("HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\ncontent-type: "
                    "text/plain\r\ndate: {}\r\nconnection: close\r\n\r\n{}\n",
                    std::string_view(reply.body).size() + 1, ctx_.httpDate(), reply.body));
    state_ = State::Closing;
    pump();
  }
}

void HttpConnection::drain() {
  startDrain();
  if (state_ == State::Closed) pump();  // deletes this
}

// Idle: close now. Busy: close after the current response. Never deletes
// `this` (callers inside pump() rely on that; pump() does the deleting).
void HttpConnection::startDrain() {
  draining_ = true;
  if (state_ == State::ReadingHead && !head_started_ && in_.empty()) {
    close();
    return;
  }
  close_after_ = true;
}

// Keeps snap_/listener_ in step with the worker's current snapshot. Returns
// false when this connection's listener no longer exists (it then drains).
bool HttpConnection::refreshSnapshot() {
  if (snap_.get() == ctx_.snapshot.get() && listener_ != nullptr) return true;
  snap_ = ctx_.snapshot;
  listener_ = nullptr;
  if (snap_) {
    for (const auto& l : snap_->listeners) {
      if (l.name == listener_name_) {
        listener_ = &l;
        break;
      }
    }
  }
  if (listener_ == nullptr) return false;
  if (http_stats_ == nullptr) http_stats_ = &ctx_.httpStats(listener_->stat_prefix);
  return true;
}

void HttpConnection::onIoEvent(uint32_t events) {
  if (state_ == State::Closed) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ds_readable_ = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ds_hup_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ds_writable_ = true;
  pump();
}

void HttpConnection::onUpstreamEvent(upstream::UpstreamConnection& conn, uint32_t events) {
  if (&conn != up_ || state_ == State::Closed) return;
  if (!conn.connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    int err = net::connectResult(conn.fd());
    if (err != 0) {
      onUpstreamFailure(Failure::ConnectFailure, std::strerror(err), true);
      pump();
      return;
    }
    onUpstreamConnected();
  }
  pump();
}

void HttpConnection::onUpstreamConnectTimeout(upstream::UpstreamConnection& conn) {
  if (&conn != up_) return;
  rq_->cluster->stats.upstream_cx_connect_timeout->inc();
  if (!(conn.connected && retryWithFullOffer("connect timeout during the TLS handshake")))
    onUpstreamFailure(Failure::ConnectFailure, "connect timeout", false);
  pump();
}

void HttpConnection::onUpstreamConnected() {
  up_->connected = true;
  rq_->endpoint->connect_failures_in_a_row = 0;
  const auto& tls = rq_->cluster_cfg->tls;
  if (!tls) {
    up_->handshake_done = true;
    up_->connect_timer.disarm();
    rq_->cluster->stats.upstream_cx_connect_ms->record(
        static_cast<double>(ctx_.loop.nowMs() - up_->connect_start_ms));
    return;
  }
  // TLS per the backend's policy (the client certificate is the one of the
  // Gateway the request came in on); the connect timer keeps running through
  // the handshake. A narrowed offer that fails is retried by connecting again
  // and sending the head anew (retryWithFullOffer()); a request body may
  // already be on its way into up_out, so only bodyless requests narrow. The
  // retry itself never narrows: another connection may have stored a new 1.2
  // session since the failure dropped the old one.
  const bool may_narrow = rq_->req_parser.framing() == http::BodyFraming::None && !rq_->widened;
  std::string error;
  if (!ctx_.startUpstreamTls(*up_, *tls, *listener_, rq_->upstream_host, may_narrow,
                             rq_->cluster->tls_stats.get(), error))
    onUpstreamFailure(Failure::ConnectFailure, "TLS_error: " + error, false);
}

// Advances the HTTPS handshake with the client. True when it finished or failed.
bool HttpConnection::driveDownstreamHandshake() {
  if (!ds_readable_ && !ds_writable_) return false;
  switch (transport_->handshake()) {
    case net::Transport::Handshake::Done:
      ds_handshake_done_ = true;
      return true;
    case net::Transport::Handshake::WantRead:
      ds_readable_ = false;
      return false;
    case net::Transport::Handshake::WantWrite:
      ds_writable_ = false;
      return false;
    case net::Transport::Handshake::Failed:
      PORTICO_LOG(Debug, "downstream TLS handshake failed from {}: {}", client_ip_,
                  transport_->failureReason());
      close();
      return true;
  }
  return false;
}

// Advances an upstream TLS handshake. True when it finished or failed.
bool HttpConnection::driveHandshake() {
  if (!up_->readable && !up_->writable) return false;
  switch (up_->transport().handshake()) {
    case net::Transport::Handshake::Done:
      up_->handshake_done = true;
      up_->connect_timer.disarm();
      rq_->cluster->stats.upstream_cx_connect_ms->record(
          static_cast<double>(ctx_.loop.nowMs() - up_->connect_start_ms));
      return true;
    case net::Transport::Handshake::WantRead:
      up_->readable = false;
      return false;
    case net::Transport::Handshake::WantWrite:
      up_->writable = false;
      return false;
    case net::Transport::Handshake::Failed: {
      std::string reason = up_->transport().failureReason();
      if (!retryWithFullOffer(reason)) onUpstreamFailure(Failure::ConnectFailure, reason, true);
      return true;
    }
  }
  return false;
}

// After an upstream TLS handshake failed or timed out: when our own TLS
// 1.2-only offer (tls::makeClientTransport) may be the cause (the server
// dropped 1.2, or something drops such offers), tries once more on the same
// endpoint with the full offer. Nothing was sent yet. The failed attempt
// counts in the endpoint's and ssl.* stats, but neither marks the endpoint
// as failing nor uses up one of the request's failover attempts.
bool HttpConnection::retryWithFullOffer(const std::string& reason) {
  if (rq_->widened || !up_->transport().widenAfterFailure()) return false;
  PORTICO_LOG(Debug, "narrowed TLS offer to {} failed ({}), retrying with the full offer",
              rq_->upstream_host, reason);
  rq_->widened = true;
  upstream::EndpointState* same = rq_->endpoint;
  endpointDone(false, false);
  dropUpstream(true);
  --rq_->connect_attempts;  // connectUpstream() counts it again
  connectUpstream(nullptr, same);
  return true;
}

// ---- the pump: make every step that can be made, until none can -------------

void HttpConnection::pump() {
  bool progress = true;
  bool moved = false;  // some step made progress
  while (progress && state_ != State::Closed) {
    progress = false;
    if (!ds_handshake_done_) {
      if (driveDownstreamHandshake()) progress = true;
      if (!ds_handshake_done_) break;
    }
    if (flushDownstream()) progress = true;
    if (state_ == State::Closed) break;
    if (processDownstreamInput()) progress = true;
    if (up_ != nullptr && up_->connected && !up_->handshake_done && driveHandshake())
      progress = true;
    if (up_ != nullptr && flushUpstream()) progress = true;
    if (up_ != nullptr && readUpstream()) progress = true;
    if (up_ != nullptr && processUpstreamInput()) progress = true;
    if (readDownstream()) progress = true;
    moved = moved || progress;
  }
  if (moved && state_ == State::Tunnel) {
    // In a tunnel every step that makes progress moves bytes (a read, a
    // write, client bytes handed to the upstream buffer). Noting the time is
    // all the stream idle timeout costs per pass: the timer re-checks this
    // when it fires (checkTunnelIdle()) instead of being re-armed per I/O.
    rq_->tunnel_io_ms = ctx_.loop.nowMs();
    rq_->tunnel_probed = false;
  }
  if (state_ == State::Closed && fd_ >= 0) {
    // Socket first (TLS close_notify needs it), then the fd; the object is
    // freed after this batch of events, which may still mention it.
    transport_.reset();
    net::EventLoop::closeUnshared(fd_);
    fd_ = -1;
    // Back to the pool now: the context may be gone by the time the loop
    // frees this object.
    if (rq_ != nullptr) giveBackExchange();
    if (ctx_.on_close != nullptr) ctx_.on_close(ctx_.worker, this);
    ctx_.loop.deleteLater(this);
  }
}

bool HttpConnection::wantDownstreamRead() const {
  switch (state_) {
    case State::ReadingHead:
      return in_.size() < 2 * kHighWatermark;
    case State::Proxying:
      return !rq_->req_done && rq_->up_out.size() < kHighWatermark && in_.size() < kHighWatermark;
    case State::Tunnel:
      return rq_->up_out.size() < kHighWatermark;
    default:
      return false;
  }
}

bool HttpConnection::readDownstream() {
  if (!ds_readable_ || ds_eof_ || !wantDownstreamRead()) return false;
  char* dst = in_.reserve(kReadChunk);
  const size_t want = in_.writableSize();
  auto r = transport_->read(dst, want);
  switch (r.status) {
    case IoStatus::Ok:
      in_.commit(r.n);
      // A short read drained the socket: the next bytes bring a new edge.
      if (!ds_hup_ && transport_->readDrained(r.n, want)) ds_readable_ = false;
      bytes_in_ += r.n;
      if (state_ == State::ReadingHead && !head_started_) {
        head_started_ = true;
        ds_timer_.arm(ctx_.settings.header_timeout_ms);
      }
      return true;
    case IoStatus::WouldBlock:
      ds_readable_ = false;
      in_.shrink();
      return false;
    case IoStatus::Eof:
    case IoStatus::Error:
      ds_eof_ = true;
      ds_readable_ = false;
      return true;
  }
  return false;
}

bool HttpConnection::flushDownstream() {
  bool progress = false;
  while (!out_.empty() && ds_writable_) {
    auto v = out_.view();
    auto r = transport_->write(v.data(), v.size());
    if (r.status == IoStatus::Ok) {
      out_.consume(r.n);
      bytes_out_ += r.n;
      progress = true;
    } else if (r.status == IoStatus::WouldBlock) {
      ds_writable_ = false;
    } else {
      // The client is gone: nothing more can be delivered.
      if (rq_ != nullptr && rq_->flag[0] == '-') rq_->flag = "DC";
      close();
      return true;
    }
  }
  if (out_.empty()) {
    out_.shrink();
    if (state_ == State::Closing) {
      close();
      return true;
    }
    if (state_ == State::LocalReply) {
      finishRequest();
      return true;
    }
  }
  if (progress) write_stalled_ = false;
  if (!out_.empty() && !ds_writable_ && !write_stalled_ &&
      (state_ == State::LocalReply || state_ == State::Closing || state_ == State::Proxying)) {
    // A client that does not read what we send gets the idle timeout from
    // the moment its writes stalled (Envoy's stream idle timeout), so it
    // cannot pin its connection, buffered response and upstream forever.
    // Any write progress clears the stall (the timer then finds nothing).
    write_stalled_ = true;
    stall_unsent_ = net::unsentBytes(fd_);
    ds_timer_.arm(ctx_.settings.idle_timeout_ms);
  }
  return progress;
}

bool HttpConnection::processDownstreamInput() {
  switch (state_) {
    case State::ReadingHead: {
      if (in_.empty()) {
        if (ds_eof_) close();
        return ds_eof_;
      }
      takeExchange();
      size_t used = 0;
      ParseEvent ev = rq_->req_parser.next(in_.view(), used);
      in_.consume(used);
      if (ev.type == ParseEvent::Type::NeedMore && in_.empty() &&
          rq_->req_parser.betweenMessages()) {
        // Only empty lines between requests (a stray CRLF after a body):
        // still idle, so hold no request state.
        giveBackExchange();
        return used > 0;
      }
      if (ev.type == ParseEvent::Type::HeadComplete) {
        onRequestHead();
        return true;
      }
      if (ev.type == ParseEvent::Type::Error) {
        close_after_ = true;
        rq_->start_ms = ctx_.loop.nowMs();
        // The parser names the method when it got that far.
        rq_->head_request = rq_->req_parser.head().method == "HEAD";
        beginDownstreamRequest();
        if (http_stats_) http_stats_->downstream_cx_protocol_error->inc();
        sendLocalReply(failureForParse(ev.error), http::toString(ev.error));
        return true;
      }
      if (ds_eof_) {
        close();
        return true;
      }
      return used > 0;
    }
    case State::Proxying: {
      if (rq_->req_done) return false;
      bool progress = false;
      // Called with empty input too: the end of a body may need no more bytes.
      while (!rq_->req_done && rq_->up_out.size() < kHighWatermark) {
        size_t used = 0;
        ParseEvent ev = rq_->req_parser.next(in_.view(), used);
        if (ev.type == ParseEvent::Type::Body) {
          std::string_view framed = ev.body;
          if (rq_->req_chunked_out) {
            ctx_.scratch.clear();
            http::appendChunk(ctx_.scratch, ev.body);
            framed = ctx_.scratch;
          }
          rq_->up_out.append(framed);
          keepForReplay(framed);
          for (Mirror* m : rq_->mirrors) m->body(framed);
        }
        in_.consume(used);
        if (ev.type == ParseEvent::Type::MessageComplete) {
          rq_->req_done = true;
          progress = true;
          if (rq_->req_chunked_out) {
            std::string last;
            http::appendLastChunk(last);
            rq_->up_out.append(last);
            keepForReplay(last);
            for (Mirror* m : rq_->mirrors) m->body(last);
          }
          if (!rq_->mirrors.empty()) endMirrors();
        } else if (ev.type == ParseEvent::Type::Error) {
          // A broken request body: the upstream exchange can't be completed.
          close_after_ = true;
          endUpstreamRequest();
          if (!rq_->resp_started) {
            releaseUpstream(false);
            sendLocalReply(Failure::BadRequest, http::toString(ev.error));
          } else {
            close();
          }
          return true;
        }
        progress = progress || used > 0;
        if (ev.type == ParseEvent::Type::NeedMore) break;
      }
      if (!rq_->req_done && in_.empty() && ds_eof_) {
        // Client went away mid-body.
        rq_->flag = "DC";
        close();
        return true;
      }
      return progress;
    }
    case State::Tunnel: {
      if (!in_.empty()) {
        rq_->up_out.append(in_.view());
        in_.consume(in_.size());
        return true;
      }
      if (ds_eof_) {
        close();
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

// ---- request start -----------------------------------------------------------

void HttpConnection::onRequestHead() {
  ds_timer_.disarm();
  // rq_ is fresh: taken when this head's first bytes were parsed.
  rq_->start_ms = ctx_.loop.nowMs();
  head_started_ = false;
  auto& head = rq_->req_parser.head();
  rq_->head_request = head.method == "HEAD";
  rq_->upgrade = rq_->req_parser.isUpgrade();
  if (!rq_->req_parser.keepAlive() || draining_ || ctx_.draining) close_after_ = true;

  const bool listener_live = refreshSnapshot();
  beginDownstreamRequest();
  if (!listener_live) {
    close_after_ = true;
    sendLocalReply(Failure::NoRoute, "listener removed");
    return;
  }

  if (head.method == "CONNECT") {
    // Forwarded, a backend's 2xx would turn the connection into a tunnel
    // nothing here expects; no route can want one.
    close_after_ = true;
    sendLocalReply(Failure::ConnectMethod, "");
    return;
  }

  // Envoy answers 100-continue itself and strips Expect, so a backend never
  // sees it; the client sends the body once routing has accepted the request.
  if (rq_->req_parser.expectsContinue()) {
    head.headers.remove("expect");
  }

  // Envoy's generate_request_id: a request without an x-request-id gets one
  // before routing, so the backend, a mirror and the access log see the same.
  // A client's own is kept (Envoy's preserve_external_request_id).
  if (head.headers.get(http::FieldId::XRequestId).empty()) {
    head.headers.remove(http::FieldId::XRequestId);  // an empty one, if any
    head.headers.add("x-request-id", ctx_.newRequestId());
  }

  // HTTPS: the connection belongs to the listener its SNI selected; a Host
  // that another listener on the port serves is not routed on it.
  if (listener_->tls && snapshot::misdirected(*listener_, transport_->serverName(), head.host())) {
    sendLocalReply(Failure::Misdirected, "");
    return;
  }
  const auto* vhost = snapshot::selectVirtualHost(*listener_, head.host());
  if (vhost != nullptr) {
    snapshot::MatchInput in;
    in.method = head.method;
    in.path = head.path();
    in.query = head.query();
    in.ctx = &head.headers;
    in.header = &headerLookup;
    rq_->route = snapshot::selectRoute(*vhost, in);
  }
  if (rq_->route == nullptr) {
    http_stats_->no_route->inc();
    sendLocalReply(Failure::NoRoute, "");
    return;
  }
  if (rq_->route->cors && applyCorsFilter()) return;
  if (rq_->route->redirect) {
    sendRedirect(*rq_->route->redirect);
    return;
  }
  if (rq_->route->direct_status != 0) {
    close_after_ = close_after_ || rq_->req_parser.framing() != http::BodyFraming::None;
    sendResponse(rq_->route->direct_status, rq_->route->direct_body, nullptr);
    return;
  }
  const auto* backend = snapshot::pickBackend(*rq_->route, ctx_.random());
  rq_->backend = backend;
  snapshot::HashedName cluster{{}, 0};
  if (backend != nullptr) cluster = {backend->cluster, backend->cluster_hash};
  rq_->cluster = backend ? ctx_.clusters.find(cluster) : nullptr;
  // The cluster as this request's snapshot defines it: a reload during the
  // exchange must not change its TLS settings or pool key halfway.
  rq_->cluster_cfg = backend ? snap_->findCluster(cluster) : nullptr;
  // No cluster: an invalid backendRef's share of a rule (its cluster name is
  // empty), answered with the spec's 500.
  if (rq_->cluster == nullptr || rq_->cluster_cfg == nullptr) {
    sendLocalReply(Failure::NoBackend, "");
    return;
  }
  if (rq_->cluster_cfg->tls && rq_->cluster_cfg->tls->fail_closed) {
    // A BackendTLSPolicy targets this backend but can't be honoured: never
    // fall back to plaintext or to an unverified connection.
    rq_->upstream_host.clear();
    PORTICO_LOG(
        Warn, "upstream request refused: cluster={} reason=backend TLS policy {} not usable: {}",
        rq_->cluster->name, rq_->cluster_cfg->tls->policy, rq_->cluster_cfg->tls->fail_reason);
    sendLocalReply(Failure::ConnectFailure,
                   ", transport failure reason: TLS_error: backend TLS policy " +
                       rq_->cluster_cfg->tls->policy +
                       " not usable: " + rq_->cluster_cfg->tls->fail_reason);
    return;
  }
  dispatch();
}

void HttpConnection::dispatch() {
  auto& head = rq_->req_parser.head();
  auto& h = head.headers;
  http::removeHopByHop(h, rq_->upgrade);
  if (rq_->upgrade) {
    h.set("connection", "upgrade");
  }
  // Several X-Forwarded-For fields are one list (RFC 9110 §5.3), as Envoy
  // joins them: every hop in order, then the client's address. Only the
  // first field's hops were kept before.
  std::string xff;
  for (const auto& f : h.fields()) {
    if (f.id != http::FieldId::XForwardedFor || f.value.empty()) continue;
    xff.append(f.value);
    xff.append(", ");
  }
  xff.append(client_ip_);
  h.set("x-forwarded-for", xff);
  h.set("x-forwarded-proto", transport_->secure() ? "https" : "http");
  if (rq_->route->request_header_modifier)
    applyHeaderModifier(h, *rq_->route->request_header_modifier);

  std::string target = head.target;
  if (rq_->route->rewrite) {
    if (rq_->route->rewrite->hostname) h.set("host", *rq_->route->rewrite->hostname);
    if (rq_->route->rewrite->path) {
      std::string query(head.query());
      target = modifyPath(*rq_->route->rewrite->path, head.path(), rq_->route->match.path);
      if (!query.empty()) target += "?" + query;
    }
  }
  rq_->req_chunked_out = false;
  switch (rq_->req_parser.framing()) {
    case http::BodyFraming::Chunked:
      h.set("transfer-encoding", "chunked");
      rq_->req_chunked_out = true;
      break;
    case http::BodyFraming::None:
      rq_->req_done = true;
      break;
    default:
      break;
  }
  rq_->up_target = std::move(target);
  // HTTP/1.0 allows no Host; HTTP/1.1 backends require one. Use the address
  // we connect to (set per attempt in connectUpstream()).
  rq_->missing_host = !h.has("host");

  // The backendRef's own modifier: this backend's requests only (the copies
  // below, taken from the same head, are the request as this backend got it).
  if (rq_->backend != nullptr && rq_->backend->request_header_modifier) {
    applyHeaderModifier(h, *rq_->backend->request_header_modifier);
    rq_->missing_host = !h.has("host");
  }

  rq_->cluster->stats.upstream_rq_total->inc();
  rq_->cluster->stats.upstream_rq_active->add();
  rq_->rq_active = true;
  state_ = State::Proxying;
  const uint32_t timeout = rq_->route->timeout_ms.value_or(rq_->cluster_cfg->request_timeout_ms);
  if (timeout != 0 && !rq_->upgrade) rq_->timer.arm(timeout);
  if (!connectUpstream(nullptr)) return;
  // Copies start once the primary has its connection: they share the
  // worker's pool, and a copy must not take the idle connection the request
  // would have reused. No upstream for the primary: no copy (as Envoy).
  if (!rq_->route->mirrors.empty() && !rq_->upgrade) startMirrors();
  if (rq_->req_parser.expectsContinue() && !rq_->req_done) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
}

// RequestMirror: copies of the request as the primary backend gets it, each
// sampled by its own fraction. A copy that can't start is skipped.
void HttpConnection::startMirrors() {
  auto& head = rq_->req_parser.head();
  Mirror::Request copy{head.method, rq_->up_target, &head.headers, rq_->missing_host,
                       rq_->route->timeout_ms};
  for (const auto& m : rq_->route->mirrors) {
    if (m.numerator < m.denominator && ctx_.random() % m.denominator >= m.numerator) continue;
    Mirror* mirror = Mirror::start(ctx_, snap_, *listener_, m, copy);
    if (mirror != nullptr) rq_->mirrors.push_back(mirror);
  }
  if (rq_->req_done) endMirrors();
}

void HttpConnection::endMirrors() {
  for (Mirror* m : rq_->mirrors) m->endOfRequest();
  rq_->mirrors.clear();
}

// Takes a pooled connection or opens a new one (to `only` when given); on
// failure answers the client. Returns false when the request already ended.
bool HttpConnection::connectUpstream(upstream::EndpointState* exclude,
                                     upstream::EndpointState* only) {
  rq_->endpoint =
      only != nullptr ? only : ctx_.clusters.pick(*rq_->cluster, ctx_.loop.nowMs(), exclude);
  if (rq_->endpoint == nullptr) {
    rq_->cluster->stats.upstream_cx_none_healthy->inc();
    onUpstreamFailure(Failure::NoHealthyUpstream, "", false);
    return false;
  }
  const upstream::PoolKey key =
      upstream::poolKey(*rq_->endpoint, *rq_->cluster_cfg, listener_->backend_client_fingerprint);
  rq_->upstream_host = rq_->endpoint->address.text;
  rq_->up_in.clear();
  rq_->up_out.clear();
  auto& head = rq_->req_parser.head();
  if (rq_->missing_host) head.headers.set("host", rq_->endpoint->address.text);
  ctx_.scratch.clear();
  http::appendRequestHead(ctx_.scratch, head.method, rq_->up_target, head.headers);
  rq_->up_out.append(ctx_.scratch);
  rq_->up_out.append(rq_->replay);  // a new try: the body so far goes again
  rq_->resp_parser.reset();
  rq_->resp_parser.expect(rq_->req_parser.head().method);
  ++rq_->connect_attempts;
  if (rq_->route->try_timeout_ms) rq_->try_timer.arm(*rq_->route->try_timeout_ms);
  up_ = ctx_.pool.takeIdle(key, this);
  rq_->reused_upstream = up_ != nullptr;
  if (up_ == nullptr) {
    std::string err;
    up_ = ctx_.pool.connect(key, rq_->endpoint, rq_->cluster, this,
                            rq_->cluster_cfg->connect_timeout_ms, err);
    if (up_ == nullptr) {
      onUpstreamFailure(Failure::ConnectFailure, err, false);
      return state_ == State::Proxying;
    }
  }
  ++up_->requests;
  rq_->endpoint->rq_total.inc();
  rq_->endpoint->rq_active.add();
  return true;
}

// An upstream failed before or during the exchange. Without a retry on the
// route, tries again at once when that is safe (nothing of the response
// seen, the request has no body to replay, or the connection never got
// established); a route's retry decides for itself. Else answers the client.
void HttpConnection::onUpstreamFailure(Failure failure, const std::string& detail, bool remote) {
  bool never_connected = up_ != nullptr && !up_->connected;
  if (up_ != nullptr) {
    if (never_connected || !up_->handshake_done) {
      // A TLS handshake that failed (or timed out) is a connect failure in
      // Envoy's stats too: its pool sees no Connected event before the
      // handshake is done.
      upstream::countConnectFailure(rq_->cluster->stats, *rq_->endpoint, never_connected,
                                    ctx_.loop.nowMs());
    }
    endpointDone(false, failure == Failure::UpstreamTimeout);
    dropUpstream(remote);
  } else if (failure == Failure::ConnectFailure && rq_->endpoint != nullptr) {
    upstream::countConnectFailure(rq_->cluster->stats, *rq_->endpoint, true, ctx_.loop.nowMs());
  }
  PORTICO_LOG(Debug, "upstream failure cluster={} endpoint={} reason={} {}",
              rq_->cluster ? rq_->cluster->name : "-", rq_->upstream_host,
              localReplyFor(failure).flag, detail);
  const bool body_replayable = replayable();
  // After the request was written, only idempotent methods may be sent again
  // (RFC 9110 9.2.2): the backend may have acted on the first copy.
  const std::string& m = rq_->req_parser.head().method;
  const bool idempotent =
      m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
  const bool can_retry =
      !rq_->resp_started && rq_->up_in.empty() && state_ == State::Proxying &&
      // Another endpoint may work; the same one again would fail the same way
      // (a refused port, a certificate that does not verify).
      ((failure == Failure::ConnectFailure && rq_->connect_attempts < 3 &&
        rq_->connect_attempts < static_cast<int>(rq_->cluster->endpoints.size()) &&
        body_replayable) ||
       (failure == Failure::UpstreamReset && rq_->reused_upstream && !rq_->retried &&
        body_replayable && idempotent));
  if (can_retry) {
    if (failure == Failure::UpstreamReset) rq_->retried = true;
    connectUpstream(failure == Failure::ConnectFailure ? rq_->endpoint : nullptr);
    return;
  }
  // The route's retry takes connection errors and the per-try timeout too;
  // once the request was sent, only an idempotent one goes again.
  if ((failure == Failure::ConnectFailure ||
       ((failure == Failure::UpstreamReset || failure == Failure::UpstreamTimeout) &&
        idempotent)) &&
      mayRetry()) {
    retryLater();
    return;
  }
  noteRetryLimit();
  if (rq_->cluster != nullptr) {
    endUpstreamRequest();
    // Like Envoy's router, a reply caused by the upstream counts as that
    // upstream's response code.
    if (!rq_->resp_started) rq_->cluster->stats.recordResponseCode(localReplyFor(failure).status);
  }
  rq_->stopTimers();
  if (rq_->resp_started || state_ == State::Tunnel) {
    cutResponseShort(localReplyFor(failure).flag);
    return;
  }
  if (!rq_->req_done) close_after_ = true;
  std::string body_detail = detail;
  if (failure == Failure::ConnectFailure && detail.rfind("TLS_error", 0) == 0) {
    body_detail = ", transport failure reason: " + detail;
  }
  PORTICO_LOG(Warn, "upstream request failed: cluster={} endpoint={} reason={}{}",
              rq_->cluster ? rq_->cluster->name : "-",
              rq_->upstream_host.empty() ? "-" : rq_->upstream_host, localReplyFor(failure).body,
              detail.empty() ? "" : " (" + detail + ")");
  sendLocalReply(failure, body_detail);
}

// ---- upstream I/O --------------------------------------------------------

bool HttpConnection::flushUpstream() {
  if (!up_->connected || !up_->handshake_done) return false;
  bool progress = false;
  while (!rq_->up_out.empty() && up_->writable) {
    auto v = rq_->up_out.view();
    auto r = up_->transport().write(v.data(), v.size());
    if (r.status == IoStatus::Ok) {
      rq_->up_out.consume(r.n);
      progress = true;
    } else if (r.status == IoStatus::WouldBlock) {
      up_->writable = false;
    } else {
      onUpstreamFailure(Failure::UpstreamReset, r.error, true);
      return true;
    }
  }
  if (rq_->up_out.empty()) rq_->up_out.shrink();
  return progress;
}

bool HttpConnection::readUpstream() {
  if (!up_->connected || !up_->handshake_done || !up_->readable) return false;
  if (out_.size() >= kHighWatermark) return false;  // downstream backpressure
  if (state_ == State::Tunnel) {
    char* dst = out_.reserve(kReadChunk);
    auto r = up_->transport().read(dst, out_.writableSize());
    if (r.status == IoStatus::Ok) {
      out_.commit(r.n);
      return true;
    }
    if (r.status == IoStatus::WouldBlock) {
      up_->readable = false;
      return false;
    }
    // Upstream ended the tunnel: deliver what is buffered, then close
    // (close() ends the request's accounting).
    releaseUpstream(false);
    state_ = State::Closing;
    return true;
  }
  char* dst = rq_->up_in.reserve(kReadChunk);
  const size_t want = rq_->up_in.writableSize();
  auto r = up_->transport().read(dst, want);
  switch (r.status) {
    case IoStatus::Ok:
      rq_->up_in.commit(r.n);
      if (!up_->hup && up_->transport().readDrained(r.n, want)) up_->readable = false;
      return true;
    case IoStatus::WouldBlock:
      up_->readable = false;
      return false;
    case IoStatus::Eof: {
      if (rq_->resp_started && rq_->resp_parser.framing() == http::BodyFraming::UntilClose) {
        ParseEvent ev = rq_->resp_parser.finish();
        if (ev.type == ParseEvent::Type::MessageComplete) {
          up_->readable = false;
          onResponseComplete();
          return true;
        }
      }
      onUpstreamFailure(Failure::UpstreamReset, "connection closed by upstream", true);
      return true;
    }
    case IoStatus::Error:
      onUpstreamFailure(Failure::UpstreamReset, r.error, true);
      return true;
  }
  return false;
}

bool HttpConnection::processUpstreamInput() {
  if (state_ != State::Proxying || (rq_->up_in.empty() && !rq_->resp_started)) return false;
  bool progress = false;
  // Called with empty input too: the end of a body may need no more bytes.
  while (up_ != nullptr && out_.size() < kHighWatermark && state_ == State::Proxying) {
    size_t used = 0;
    ParseEvent ev = rq_->resp_parser.next(rq_->up_in.view(), used);
    switch (ev.type) {
      case ParseEvent::Type::HeadComplete:
        rq_->up_in.consume(used);
        if (rq_->resp_parser.head().status == 101 && !rq_->upgrade) {
          // 101 answers only a request that asked to upgrade (RFC 9110
          // 15.2.2); forwarded, it would be followed on the same connection by
          // the next response, which the client reads as tunnelled bytes.
          onBadUpstreamResponse("101 Switching Protocols to a request without Upgrade");
          return true;
        }
        if (rq_->resp_parser.framedNoContent()) {
          // Forwarded, a client (or cache) framing by the header would take
          // the next response's first bytes as this one's body.
          onBadUpstreamResponse("1xx or 204 with Transfer-Encoding or a non-zero Content-Length");
          return true;
        }
        if (rq_->resp_parser.otherTransferCoding()) {
          // Re-chunked, "gzip, chunked" would reach the client as "chunked"
          // with gzip bytes inside: refused like such a request is.
          onBadUpstreamResponse("transfer coding other than chunked");
          return true;
        }
        if (rq_->resp_parser.isInformational() && rq_->resp_parser.head().status != 101) {
          // Interim responses (100, 103) are not forwarded: we answered
          // 100-continue ourselves. The parser reports the interim response's
          // end next, then the final response.
          break;
        }
        if (rq_->route->retry && retryOnAnswer(rq_->resp_parser.head().status)) return true;
        onResponseHead();
        break;
      case ParseEvent::Type::Body:
        if (rq_->resp_chunked_out) {
          ctx_.scratch.clear();
          http::appendChunk(ctx_.scratch, ev.body);
          out_.append(ctx_.scratch);
        } else {
          out_.append(ev.body);
        }
        rq_->up_in.consume(used);
        break;
      case ParseEvent::Type::MessageComplete:
        rq_->up_in.consume(used);
        if (!rq_->resp_started) {
          rq_->resp_parser.reset();
          rq_->resp_parser.expect(rq_->req_parser.head().method);
          break;  // end of an interim response
        }
        onResponseComplete();
        return true;
      case ParseEvent::Type::Error:
        rq_->up_in.consume(used);
        if (rq_->resp_started) {
          cutResponseShort("UPE");
          return true;
        }
        onBadUpstreamResponse(http::toString(ev.error));
        return true;
      case ParseEvent::Type::NeedMore:
        rq_->up_in.consume(used);
        return progress || used > 0;
    }
    progress = true;
  }
  return progress;
}

// Too late for a clean answer: the response broke off after its head was
// queued (the upstream reset, or its body stopped parsing). What is queued
// still goes out when its framing shows the cut (a Content-Length not
// reached, a chunked body without its last chunk), then the connection
// closes: the client sees its answer cut short, as from Envoy, rather than no
// answer at all. A close-delimited body (HTTP/1.0 client) would look complete
// when it ends, and a tunnel has no framing: those close at once.
void HttpConnection::cutResponseShort(const char* flag) {
  rq_->flag = flag;
  releaseUpstream(false);
  const bool cut_shows =
      state_ == State::Proxying &&
      (rq_->resp_chunked_out || rq_->resp_parser.framing() == http::BodyFraming::ContentLength);
  if (!cut_shows || out_.empty()) {
    close();
    return;
  }
  endUpstreamRequest();
  close_after_ = true;
  state_ = State::Closing;
  finishRequest();  // account and log now; the flush then closes
}

// A response that can't be forwarded, before any of it was: 502 UPE, and the
// upstream connection is not reused.
void HttpConnection::onBadUpstreamResponse(std::string_view why) {
  endUpstreamRequest();
  rq_->cluster->stats.recordResponseCode(502);
  rq_->stopTimers();
  endpointDone(false, false);
  dropUpstream(false);
  close_after_ = true;
  PORTICO_LOG(Warn, "bad response from upstream: cluster={} endpoint={} error={}",
              rq_->cluster->name, rq_->upstream_host, why);
  sendLocalReply(Failure::BadUpstreamResponse, std::string(why));
}

void HttpConnection::onResponseHead() {
  auto& resp = rq_->resp_parser.head();
  rq_->status = resp.status;
  auto& h = resp.headers;
  const bool switching = resp.status == 101 && rq_->upgrade;
  http::removeHopByHop(h, switching);
  if (rq_->route->response_header_modifier)
    applyHeaderModifier(h, *rq_->route->response_header_modifier);
  if (rq_->backend != nullptr && rq_->backend->response_header_modifier)
    applyHeaderModifier(h, *rq_->backend->response_header_modifier);
  if (rq_->route->cors) addCorsHeaders(h);
  // The backend answered before the request body was all read: this
  // connection can't carry another request, so say so in this very head.
  if (!rq_->req_done && !switching) close_after_ = true;
  rq_->resp_chunked_out = false;
  const bool no_body = rq_->head_request || resp.status == 204 || resp.status == 304 ||
                       (resp.status >= 100 && resp.status < 200);
  if (!no_body) {
    if (rq_->resp_parser.framing() == http::BodyFraming::Chunked ||
        rq_->resp_parser.framing() == http::BodyFraming::UntilClose) {
      if (rq_->req_parser.head().version_minor >= 1) {
        h.set("transfer-encoding", "chunked");
        rq_->resp_chunked_out = true;
      } else {
        close_after_ = true;  // HTTP/1.0: the body ends when we close
      }
    }
  }
  if (switching) {
    h.set("connection", "upgrade");
  } else if (close_after_) {
    h.set("connection", "close");
  } else if (rq_->req_parser.head().version_minor == 0) {
    h.set("connection", "keep-alive");
  }
  // RFC 9110 §6.6.1: a proxy with a clock adds the Date a response lacks
  // (Envoy sets it on every response).
  if (!h.has("date")) h.add("date", ctx_.httpDate());
  ctx_.scratch.clear();
  http::appendResponseHead(ctx_.scratch, resp.status, resp.reason, h);
  out_.append(ctx_.scratch);
  rq_->resp_started = true;
  if (switching) {
    // The rest of the bytes belong to the tunnel in both directions.
    rq_->stopTimers();
    state_ = State::Tunnel;
    // From here ds_timer_ is the stream idle timeout: a tunnel whose ends
    // went silent (or whose client vanished without a FIN) would otherwise
    // pin both connections and their buffers forever.
    write_stalled_ = false;
    rq_->tunnel_io_ms = ctx_.loop.nowMs();
    ds_timer_.arm(ctx_.settings.stream_idle_timeout_ms);
    if (!rq_->up_in.empty()) {
      out_.append(rq_->up_in.view());
      rq_->up_in.consume(rq_->up_in.size());
    }
    rq_->cluster->stats.recordResponseCode(101);  // the downstream side counts at finishRequest()
  }
}

void HttpConnection::onResponseComplete() {
  if (rq_->resp_chunked_out) {
    std::string last;
    http::appendLastChunk(last);
    out_.append(last);
  }
  rq_->stopTimers();
  rq_->resp_done = true;
  const uint64_t elapsed = ctx_.loop.nowMs() - rq_->start_ms;
  rq_->cluster->stats.upstream_rq_completed->inc();
  endUpstreamRequest();
  rq_->cluster->stats.recordResponseCode(rq_->status);
  rq_->cluster->stats.upstream_rq_time->record(static_cast<double>(elapsed));
  // Reuse only when both messages ended cleanly and nothing extra arrived.
  const bool reusable = rq_->req_done && rq_->resp_parser.keepAlive() && rq_->up_in.empty() &&
                        rq_->resp_parser.framing() != http::BodyFraming::UntilClose;
  if (!rq_->resp_parser.keepAlive() && rq_->req_done) up_->transport().peerIsClosing();
  releaseUpstream(reusable);
  if (!rq_->req_done) close_after_ = true;  // unread request body left on the wire
  if (close_after_) {
    state_ = State::Closing;
    finishRequest();  // account and log now; the flush then closes
  } else {
    state_ = State::LocalReply;  // i.e. "writing the rest of a response"
  }
}

// A request (or what parsed of one) is being answered: counted now,
// balanced exactly once by finishRequest().
void HttpConnection::beginDownstreamRequest() {
  if (ds_rq_open_) return;
  takeExchange();
  ds_rq_open_ = true;
  if (http_stats_ != nullptr) {
    http_stats_->downstream_rq_total->inc();
    http_stats_->downstream_rq_active->add();
  }
}

// The request to the cluster is over (however it ended): upstream_rq_active
// goes down exactly once per dispatch.
void HttpConnection::endUpstreamRequest() {
  if (rq_ == nullptr || !rq_->rq_active) return;
  rq_->rq_active = false;
  rq_->cluster->stats.upstream_rq_active->sub();
}

// One upstream attempt on rq_->endpoint ended: per-host accounting.
void HttpConnection::endpointDone(bool success, bool timeout) {
  if (rq_->endpoint == nullptr) return;
  rq_->endpoint->rq_active.sub();
  (success ? rq_->endpoint->rq_success : rq_->endpoint->rq_error).inc();
  if (timeout) rq_->endpoint->rq_timeout.inc();
}

// The upstream connection goes, whatever it still sends: this exchange no
// longer owns it. `remote`: the peer ended it.
void HttpConnection::dropUpstream(bool remote) {
  up_->owner = nullptr;
  ctx_.pool.destroy(up_, remote);
  up_ = nullptr;
}

void HttpConnection::releaseUpstream(bool reusable) {
  if (up_ == nullptr) return;
  endpointDone(rq_->resp_done && rq_->status < 500, false);
  // Unsent request bytes (a backend that answered before reading the whole
  // body) would be read by the backend as the start of the next request.
  if (reusable && rq_->up_out.empty() && !up_->hup && !ctx_.draining) {
    up_->readable = false;
    ctx_.pool.release(up_, rq_->cluster_cfg->idle_timeout_ms);
  } else {
    up_->owner = nullptr;
    ctx_.pool.destroy(up_, false);
  }
  up_ = nullptr;
}

// ---- local answers ---------------------------------------------------------

void HttpConnection::sendLocalReply(Failure failure, const std::string& detail) {
  auto reply = localReplyFor(failure);
  rq_->flag = reply.flag;
  std::string body = reply.body;
  // Envoy appends the transport failure reason to connect errors.
  if (failure == Failure::ConnectFailure && !detail.empty() && detail.rfind(", ", 0) == 0)
    body += detail;
  body += "\n";
  sendResponse(reply.status, body, nullptr);
}

void HttpConnection::sendRedirect(const snapshot::RequestRedirect& r) {
  auto& head = rq_->req_parser.head();
  std::string scheme = r.scheme.value_or(transport_->secure() ? "https" : "http");
  std::string host = r.hostname.value_or(std::string(head.host()));
  uint16_t port = 0;
  if (r.port) {
    port = *r.port;
  } else if (r.scheme) {
    port = *r.scheme == "https" ? 443 : 80;
  } else if (listener_ != nullptr) {
    port = listener_->port;
  }
  std::string path =
      r.path ? modifyPath(*r.path, head.path(), rq_->route->match.path) : std::string(head.path());
  std::string location = scheme + "://" + host;
  const bool well_known = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  if (port != 0 && !well_known) location += ":" + std::to_string(port);
  location += path;
  if (!head.query().empty()) location += "?" + std::string(head.query());
  http::Headers extra;
  extra.add("location", location);
  if (rq_->req_parser.framing() != http::BodyFraming::None) close_after_ = true;
  sendResponse(r.status_code, "", &extra);
}

// HTTPRoute's CORS filter (HTTPCORSFilter; the Fetch standard's CORS
// protocol). Notes whether the request's Origin is allowed, for
// addCorsHeaders(). A preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered here, 200 without CORS headers
// for an origin not allowed, and never reaches a backend. Returns true then.
bool HttpConnection::applyCorsFilter() {
  const snapshot::Cors& cors = *rq_->route->cors;
  const auto& head = rq_->req_parser.head();
  const std::string_view origin = head.headers.get("origin");
  rq_->cors_allowed = snapshot::corsOriginAllowed(cors, origin);
  const std::string_view method = head.headers.get("access-control-request-method");
  if (head.method != "OPTIONS" || origin.empty() || method.empty()) return false;
  http::Headers h;
  if (rq_->cors_allowed) {
    // "*" is answered with what was asked: with credentials the Fetch
    // standard reads "*" as a name, not a wildcard.
    const std::string_view asked_headers = head.headers.get("access-control-request-headers");
    const std::string_view methods = cors.allow_methods == "*" ? method : cors.allow_methods;
    const std::string_view headers = cors.allow_headers == "*" ? asked_headers : cors.allow_headers;
    if (!methods.empty()) h.add("access-control-allow-methods", methods);
    if (!headers.empty()) h.add("access-control-allow-headers", headers);
    h.add("access-control-max-age", std::to_string(cors.max_age));
  }
  sendResponse(200, "", &h);
  return true;
}

// A CORS route's answer, the backend's or a local one. From an allowed
// Origin it gets the CORS response headers, the Origin echoed rather than
// "*" (which credentials forbid). Every answer of the route says
// `Vary: Origin`, with or without an Origin, so no cache hands one origin's
// answer (or one without the headers) to another (Fetch, "CORS protocol and
// HTTP caches").
void HttpConnection::addCorsHeaders(http::Headers& h) const {
  if (rq_->cors_allowed) {
    const snapshot::Cors& cors = *rq_->route->cors;
    h.set("access-control-allow-origin", rq_->req_parser.head().headers.get("origin"));
    if (cors.allow_credentials) h.set("access-control-allow-credentials", "true");
    if (!cors.expose_headers.empty()) h.set("access-control-expose-headers", cors.expose_headers);
  }
  for (const auto& f : h.fields())
    if (http::iequals(f.name, "vary") && (f.value == "*" || http::listContains(f.value, "origin")))
      return;
  h.add("vary", "Origin");  // a field of its own: a backend's Vary fields stay as they are
}

void HttpConnection::sendResponse(int status, std::string_view body, const http::Headers* extra) {
  rq_->status = status;
  rq_->stopTimers();
  // A local answer leaves the request body (if any) unread: the connection
  // can't carry another request, or the body would be parsed as one.
  if (state_ == State::ReadingHead && rq_->req_parser.framing() != http::BodyFraming::None) {
    close_after_ = true;
  }
  http::Headers h;
  if (extra != nullptr) {
    for (const auto& f : extra->fields()) h.add(f.name, f.value);
  }
  if (rq_->route != nullptr && rq_->route->response_header_modifier) {
    applyHeaderModifier(h, *rq_->route->response_header_modifier);
  }
  if (rq_->route != nullptr && rq_->route->cors) addCorsHeaders(h);
  h.set("content-length", std::to_string(body.size()));
  if (!body.empty()) h.set("content-type", "text/plain");
  // We are this response's origin: it carries a Date (RFC 9110 §6.6.1),
  // unless a ResponseHeaderModifier set one.
  if (!h.has("date")) h.add("date", ctx_.httpDate());
  if (close_after_ || ctx_.draining) {
    close_after_ = true;
    h.set("connection", "close");
  }
  std::string out;
  http::appendResponseHead(out, status, http::reasonPhrase(status), h);
  if (!rq_->head_request) out.append(body);
  out_.append(out);
  rq_->resp_started = true;
  state_ = close_after_ ? State::Closing : State::LocalReply;
  if (close_after_) finishRequest();  // log now; the flush then closes
}

// The response is fully written (or queued before a close): account, log and
// get ready for the next request on this connection.
void HttpConnection::finishRequest() {
  if (ds_rq_open_) {
    ds_rq_open_ = false;
    if (http_stats_ != nullptr) {
      if (rq_->status != 0) http_stats_->recordResponseCode(rq_->status);
      http_stats_->downstream_rq_active->sub();
      http_stats_->downstream_rq_time->record(
          static_cast<double>(ctx_.loop.nowMs() - rq_->start_ms));
    }
    writeAccessLog();  // status 0: the exchange was cut short (see rq_->flag)
  }
  if (state_ == State::Closing || state_ == State::Closed) return;
  state_ = State::ReadingHead;
  head_started_ = false;
  write_stalled_ = false;
  bytes_in_ = 0;
  bytes_out_ = 0;
  // Between requests a connection keeps no request state and no buffers
  // (idle keep-alive connections are the many; the exchange pool and
  // glibc's bins make the next request's allocations cheap).
  giveBackExchange();
  in_.shrink();
  ds_timer_.arm(ctx_.settings.idle_timeout_ms);
  if (draining_ || ctx_.draining) startDrain();
}

void HttpConnection::writeAccessLog() {
  if (ctx_.settings.access_log == AccessLogFormat::Off) return;
  const auto& head = rq_->req_parser.head();
  const uint64_t duration = ctx_.loop.nowMs() - rq_->start_ms;
  std::string_view host = head.headers.get("host");
  std::string_view ua = head.headers.get("user-agent");
  std::string_view request_id = head.headers.get(http::FieldId::XRequestId);
  const std::string cluster = rq_->cluster ? rq_->cluster->name : "-";
  const std::string upstream = rq_->upstream_host.empty() ? "-" : rq_->upstream_host;
  if (ctx_.settings.access_log == AccessLogFormat::Json) {
    common::accessLogWrite(fmt::format(
        R"({{"start_time":"{}","method":"{}","path":"{}","protocol":"HTTP/1.{}","response_code":{},"response_flags":"{}","bytes_received":{},"bytes_sent":{},"duration":{},"downstream_remote_address":"{}","user_agent":"{}","x-request-id":"{}","authority":"{}","route_name":"{}","upstream_cluster":"{}","upstream_host":"{}"}})",
        common::formatRfc3339(std::chrono::system_clock::now(), true), jsonEscape(head.method),
        jsonEscape(head.target), head.version_minor, rq_->status, rq_->flag, bytes_in_, bytes_out_,
        duration, client_ip_, jsonEscape(ua), jsonEscape(request_id), jsonEscape(host),
        rq_->route ? jsonEscape(rq_->route->name) : "-", cluster, upstream));
    return;
  }
  common::accessLogWrite(fmt::format(
      "[{}] \"{} {} HTTP/1.{}\" {} {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" \"{}\"",
      common::formatRfc3339(std::chrono::system_clock::now(), true), head.method, head.target,
      head.version_minor, rq_->status, rq_->flag, bytes_in_, bytes_out_, duration, client_ip_,
      ua.empty() ? "-" : ua, request_id.empty() ? "-" : request_id, host.empty() ? "-" : host,
      cluster, upstream, rq_->route ? rq_->route->name : "-"));
}

void HttpConnection::close() {
  if (state_ == State::Closed) return;
  endUpstreamRequest();  // aborted mid-exchange, or a tunnel ending
  if (up_ != nullptr) releaseUpstream(false);
  if (ds_rq_open_) {
    // The request never finished normally: count and log it once.
    if (rq_->status == 0 && rq_->flag[0] == '-') rq_->flag = "DC";
    state_ = State::Closing;
    finishRequest();
  }
  if (http_stats_ != nullptr) http_stats_->downstream_cx_active->sub();
  if (listener_cx_active_ != nullptr) listener_cx_active_->sub();
  ds_timer_.disarm();
  if (rq_ != nullptr) rq_->stopTimers();
  state_ = State::Closed;
}

void HttpConnection::onRequestTimer(void* self) {
  auto* c = static_cast<Exchange*>(self)->owner;
  if (c->state_ != State::Proxying) return;
  if (c->rq_->cluster) c->rq_->cluster->stats.upstream_rq_timeout->inc();
  c->rq_->deadline_passed = true;  // the whole request's time is up: no retry
  c->rq_->try_timer.disarm();
  c->onUpstreamFailure(Failure::UpstreamTimeout, "", false);
  c->pump();
}

// The route's per-try timeout (a retry may follow), or the end of a backoff.
void HttpConnection::onTryTimer(void* self) {
  auto* c = static_cast<Exchange*>(self)->owner;
  if (c->state_ != State::Proxying) return;
  if (c->rq_->backing_off) {
    c->rq_->backing_off = false;
    c->connectUpstream(nullptr);
  } else {
    c->rq_->cluster->stats.upstream_rq_per_try_timeout->inc();
    c->onUpstreamFailure(Failure::UpstreamTimeout, "", false);
  }
  c->pump();
}

// ---- HTTPRoute retry ---------------------------------------------------------

// Whether this try may be followed by another: the rule has a retry with
// attempts left, the request time is not up, nothing of an answer went to
// the client, and the request can be sent again as it was (replayable());
// upgrades never are.
bool HttpConnection::mayRetry() const {
  const auto& retry = rq_->route->retry;
  return retry && rq_->retries < retry->attempts && !rq_->deadline_passed &&
         state_ == State::Proxying && !rq_->resp_started && !rq_->upgrade && replayable();
}

// Whether the request can be sent again as it was: it has no body, or the
// body read so far is all in `replay` (kept for routes with a retry).
bool HttpConnection::replayable() const {
  return rq_->req_parser.framing() == http::BodyFraming::None ||
         (rq_->route != nullptr && rq_->route->retry && !rq_->replay_overflow);
}

// A route's retry may send the request again: its body, framed as it went
// upstream, is kept while the whole of it fits in kMaxReplay. A bigger one
// is sent once, as Envoy does past its retry buffer limit.
void HttpConnection::keepForReplay(std::string_view framed) {
  if (!rq_->route->retry || rq_->replay_overflow) return;
  if (rq_->replay.size() + framed.size() > kMaxReplay) {
    rq_->replay_overflow = true;
    std::string().swap(rq_->replay);
    return;
  }
  rq_->replay.append(framed);
}

// A try's answer came in: one of the rule's retry codes is tried again while
// attempts last (the answer is dropped with its connection, counted as this
// try's). Returns true when it was.
bool HttpConnection::retryOnAnswer(int status) {
  const auto& codes = rq_->route->retry->codes;
  if (std::find(codes.begin(), codes.end(), status) == codes.end()) {
    if (rq_->retries > 0) rq_->cluster->stats.upstream_rq_retry_success->inc();
    return false;
  }
  if (!mayRetry()) {
    if (noteRetryLimit()) rq_->flag = "URX";  // Envoy's UpstreamRetryLimitExceeded
    return false;
  }
  rq_->cluster->stats.recordResponseCode(status);
  endpointDone(status < 500, false);
  dropUpstream(false);
  retryLater();
  return true;
}

// The route's retries all went (a retry with no attempts never retries, so
// never runs out): counted, and true.
bool HttpConnection::noteRetryLimit() {
  if (rq_->route == nullptr || !rq_->route->retry || rq_->cluster == nullptr) return false;
  const uint32_t attempts = rq_->route->retry->attempts;
  if (attempts == 0 || rq_->retries < attempts) return false;
  rq_->cluster->stats.upstream_rq_retry_limit_exceeded->inc();
  return true;
}

// Starts the backoff before the next try (up_ is already let go). It starts
// at the rule's backoff and doubles per try, up to ten times it, as Envoy's
// does, with up to half of it again as jitter: never shorter than asked.
void HttpConnection::retryLater() {
  rq_->up_in.clear();
  rq_->up_out.clear();
  ++rq_->retries;
  rq_->cluster->stats.upstream_rq_retry->inc();
  const uint64_t base = rq_->route->retry->backoff_ms;
  const uint64_t delay = std::min(base << std::min<uint32_t>(rq_->retries - 1, 16), 10 * base);
  rq_->backing_off = true;
  rq_->try_timer.arm(delay + ctx_.random() % (delay / 2 + 1));
}

// The stream idle timeout of a tunnel (Envoy's stream_idle_timeout for
// upgraded streams): closes both sides once no byte moved either way for a
// whole period. pump() notes the time of the last byte; this re-arms itself
// for the rest of the period while the tunnel is busy.
void HttpConnection::checkTunnelIdle() {
  const uint64_t timeout = ctx_.settings.stream_idle_timeout_ms;
  const uint64_t now = ctx_.loop.nowMs();
  const uint64_t quiet = now - rq_->tunnel_io_ms;
  if (quiet < timeout) {
    ds_timer_.arm(timeout - quiet);
    return;
  }
  // Nothing moved in user space for a period, but bytes we wrote may still be
  // leaving a send queue: Linux reports a socket writable again only once a
  // third of its send buffer drained, so a peer reading slowly shows up only
  // as a shrinking queue (see onDownstreamTimer()). Queued bytes earn one more
  // period; a queue that shrank in it counts as traffic. Two ioctls per idle
  // period at most, none per byte.
  auto queued = [](int fd) { return std::max(net::unsentBytes(fd), 0); };
  const int ds_unsent = queued(fd_);
  const int up_unsent = up_ != nullptr ? queued(up_->fd()) : 0;
  const bool drained = rq_->tunnel_probed &&
                       (ds_unsent < rq_->tunnel_ds_unsent || up_unsent < rq_->tunnel_up_unsent);
  const bool first_look = !rq_->tunnel_probed && (ds_unsent > 0 || up_unsent > 0);
  if (drained || first_look) {
    rq_->tunnel_probed = true;
    rq_->tunnel_ds_unsent = ds_unsent;
    rq_->tunnel_up_unsent = up_unsent;
    rq_->tunnel_io_ms = now;
    ds_timer_.arm(timeout);
    return;
  }
  cutIdleStream();  // releases the upstream connection too
}

// Envoy's stream idle timeout fired (a silent tunnel, or a client that stopped
// reading a response): flag SI, count it, close.
void HttpConnection::cutIdleStream() {
  if (rq_ != nullptr && rq_->flag[0] == '-') rq_->flag = "SI";
  if (http_stats_ != nullptr) http_stats_->downstream_rq_idle_timeout->inc();
  close();
  pump();
}

void HttpConnection::onDownstreamTimer(void* self) {
  auto* c = static_cast<HttpConnection*>(self);
  if (c->state_ == State::Tunnel) {
    c->checkTunnelIdle();
    return;
  }
  if (c->state_ == State::LocalReply || c->state_ == State::Closing ||
      c->state_ == State::Proxying) {
    // Armed when the client stopped reading (see flushDownstream()); writes
    // that progressed since cleared the stall.
    if (!c->write_stalled_) return;
    // Linux reports the socket writable again only once a third of its send
    // buffer drained (several MiB after a fast start): a client reading
    // slowly meanwhile shows up only as a shrinking send queue.
    const int unsent = net::unsentBytes(c->fd_);
    if (unsent >= 0 && unsent < c->stall_unsent_) {
      c->stall_unsent_ = unsent;
      c->ds_timer_.arm(c->ctx_.settings.idle_timeout_ms);
      return;
    }
    c->cutIdleStream();
    return;
  }
  if (c->state_ != State::ReadingHead) return;
  if (c->head_started_ || !c->in_.empty()) {
    c->close_after_ = true;
    if (c->refreshSnapshot() && c->http_stats_) c->http_stats_->downstream_rq_timeout->inc();
    c->beginDownstreamRequest();
    c->rq_->start_ms = c->ctx_.loop.nowMs();
    c->rq_->req_parser.nameMethodSoFar();
    c->rq_->head_request = c->rq_->req_parser.head().method == "HEAD";
    c->sendLocalReply(Failure::RequestTimeout, "");
  } else {
    // Idle between requests for --idle-timeout (Envoy's connection idle_timeout).
    if (c->refreshSnapshot() && c->http_stats_) c->http_stats_->downstream_cx_idle_timeout->inc();
    c->close();
  }
  c->pump();
}

}  // namespace portico::proxy
