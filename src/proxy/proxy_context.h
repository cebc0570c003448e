#pragma once
// What a downstream connection needs from the worker it lives on. One per
// worker; only that worker's thread reads or writes it.
#include <array>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "net/event_loop.h"
#include "snapshot/snapshot.h"
#include "stats/stats.h"
#include "tls/tls.h"
#include "upstream/upstream.h"

namespace portico::proxy {

enum class AccessLogFormat { Off, Text, Json };

struct ProxySettings {
  uint32_t header_timeout_ms = 10000;  // first byte -> full head, else 408
  uint32_t idle_timeout_ms = 60000;    // keep-alive idle between requests; stalled client writes
  size_t max_connections = 20000;      // per worker; above: 503 and close
  AccessLogFormat access_log = AccessLogFormat::Text;
  // An upgraded connection (tunnel) on which no byte moves either way for
  // this long is closed (Envoy's stream_idle_timeout, and its 5 min default).
  uint32_t stream_idle_timeout_ms = 300000;
};

class HttpConnection;
struct Exchange;
class Mirror;

// A doubly linked list threaded through its elements (each has `prev_` and
// `next_` and befriends IntrusiveList<T>): membership costs no allocation.
template <typename T>
class IntrusiveList {
 public:
  void push(T* x) {
    x->prev_ = nullptr;
    x->next_ = head_;
    if (head_ != nullptr) head_->prev_ = x;
    head_ = x;
    ++size_;
  }
  // Does nothing for an element that is not in the list.
  void remove(T* x) {
    if (x->prev_ != nullptr) {
      x->prev_->next_ = x->next_;
    } else if (head_ == x) {
      head_ = x->next_;
    } else {
      return;
    }
    if (x->next_ != nullptr) x->next_->prev_ = x->prev_;
    x->prev_ = x->next_ = nullptr;
    --size_;
  }
  T* front() const { return head_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::vector<T*> all() const {
    std::vector<T*> out;
    out.reserve(size_);
    for (T* x = head_; x != nullptr; x = x->next_) out.push_back(x);
    return out;
  }

 private:
  T* head_ = nullptr;
  size_t size_ = 0;
};

// The worker's open connections (drain walks them).
using ConnectionList = IntrusiveList<HttpConnection>;

// The worker's request copies in flight (RequestMirror); whatever is left
// when the worker ends is freed here.
class MirrorSet : public IntrusiveList<Mirror> {
 public:
  MirrorSet() = default;
  ~MirrorSet();
  MirrorSet(const MirrorSet&) = delete;
  MirrorSet& operator=(const MirrorSet&) = delete;
};

// Per-request state recycled across the worker's connections: a request
// takes one when its first bytes arrive and gives it back when answered, so
// idle connections hold none and busy ones reuse warm parsers and strings.
// Keeps at most kMaxFree spare (as many as ever ran at once, up to that).
class ExchangePool {
 public:
  static constexpr size_t kMaxFree = 256;
  ExchangePool() = default;
  ~ExchangePool();
  ExchangePool(const ExchangePool&) = delete;
  ExchangePool& operator=(const ExchangePool&) = delete;
  Exchange* take(net::EventLoop& loop, HttpConnection* owner);
  void give(Exchange* e);
  size_t spare() const { return free_.size(); }

 private:
  std::vector<Exchange*> free_;
};

struct ProxyContext {
  ProxyContext(net::EventLoop& l, stats::Store& s) : loop(l), store(s), clusters(s), pool(l) {}
  net::EventLoop& loop;
  stats::Store& store;
  // Declared before the pool: pooled connections point at cluster runtimes,
  // so those must outlive the pool's destruction.
  upstream::ClusterManager clusters;
  upstream::Pool pool;
  tls::ClientContextCache tls_contexts;
  std::shared_ptr<const snapshot::Snapshot> snapshot;  // the worker's current one
  ProxySettings settings;
  bool draining = false;
  // Serialization scratch (heads, chunk framing), shared by the worker's
  // connections: each use is clear, fill, copy out, within one call, so an
  // idle connection doesn't keep one of its own.
  std::string scratch;
  ConnectionList connections;
  ExchangePool exchanges;
  // Declared after the pool: a copy in flight gives its connection back to
  // the pool when the worker ends.
  MirrorSet mirrors;
  uint64_t rng = 0x9E3779B97F4A7C15ull;

  // The Date field value for the current second (RFC 9110 §6.6.1),
  // formatted once a second per worker rather than per response.
  std::string_view httpDate() {
    const std::time_t now = std::time(nullptr);
    if (now != date_second_) {
      date_second_ = now;
      date_ = common::formatHttpDate(static_cast<int64_t>(now));
    }
    return date_;
  }

  uint64_t random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
  // A version 4 UUID (RFC 9562), lower-case, for x-request-id: unique enough
  // to find one request's lines across logs, not a secret (the worker's
  // generator is seeded from getrandom(2) when it starts).
  std::string_view newRequestId() {
    uint64_t hi = random(), lo = random();
    hi = (hi & ~0xF000ull) | 0x4000ull;                  // version 4
    lo = (lo & ~(0xC000ull << 48)) | (0x8000ull << 48);  // variant 10
    // 8-4-4-4-12 hex digits: byte i goes to kAt[i], two digits at a time.
    static constexpr uint8_t kAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (int i = 0; i < 16; ++i) {
      const auto byte = static_cast<uint8_t>(i < 8 ? hi >> (56 - 8 * i) : lo >> (120 - 8 * i));
      std::memcpy(request_id_ + kAt[i], &kHexPairs[2 * byte], 2);
    }
    request_id_[8] = request_id_[13] = request_id_[18] = request_id_[23] = '-';
    return {request_id_, sizeof(request_id_)};
  }
  // Puts TLS on `conn` (connected) as `tls` asks, presenting the client
  // certificate of the Gateway `listener` belongs to; the handshake is the
  // caller's to drive. False + `error` when the settings can't be honoured.
  bool startUpstreamTls(upstream::UpstreamConnection& conn, const snapshot::UpstreamTls& tls,
                        const snapshot::Listener& listener, const std::string& session_key,
                        bool may_narrow, stats::SslStats* ssl_stats, std::string& error);
  stats::HttpStats& httpStats(const std::string& stat_prefix) {
    auto& s = http_stats_[stat_prefix];
    if (!s) s = std::make_unique<stats::HttpStats>(stats::HttpStats::make(store, stat_prefix));
    return *s;
  }
  // Called by a connection just before it deletes itself.
  void (*on_close)(void* worker, HttpConnection* conn) = nullptr;
  void* worker = nullptr;

 private:
  std::unordered_map<std::string, std::unique_ptr<stats::HttpStats>> http_stats_;
  std::time_t date_second_ = 0;
  std::string date_;
  char request_id_[36];
  // "000102...feff": each byte's two lower-case hex digits.
  static constexpr auto kHexPairs = [] {
    std::array<char, 512> t{};
    constexpr char kHex[] = "0123456789abcdef";
    for (int b = 0; b < 256; ++b) {
      t[2 * b] = kHex[b >> 4];
      t[2 * b + 1] = kHex[b & 15];
    }
    return t;
  }();
};

}  // namespace portico::proxy
