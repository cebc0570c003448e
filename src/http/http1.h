#pragma once
// Sans-IO HTTP/1.1 codec: bytes in, events out; bytes out from message heads.
// No sockets, no allocation per body byte. Bodies are never buffered whole:
// the parser hands out views of the caller's input as it goes (chunked bodies
// are de-chunked; the proxy re-frames them for the other side).
#include <cstddef>
#include <cstdint>
#include <forward_list>
#include <string>
#include <string_view>
#include <vector>

namespace portico::http {

// The fields the codec and the proxy decide by, classified once (when a
// field is parsed or added) so that framing, hop-by-hop removal and lookups
// compare one byte per field instead of the name again and again.
enum class FieldId : uint8_t {
  Other,
  Host,
  ContentLength,
  TransferEncoding,
  Connection,
  KeepAlive,
  ProxyConnection,
  Te,
  Trailer,
  Upgrade,
  Expect,
  XForwardedFor,
  XForwardedProto,
  Http2Settings,
  XRequestId,
};
FieldId classifyField(std::string_view name);

struct HeaderField {
  std::string_view name;        // as received (case preserved)
  std::string_view value;       // OWS trimmed
  FieldId id = FieldId::Other;  // classifyField(name)
};

// Header list whose views point into storage owned by the object itself
// (the copied head bytes, plus an arena for fields added later), so it stays
// valid after the connection's read buffer is reused.
class Headers {
 public:
  Headers() = default;
  // A copy owns all of its bytes (its views are re-pointed into its own
  // arena), so it never dangles into the source's head buffer.
  Headers(const Headers& other);
  Headers& operator=(const Headers& other);
  // Moves keep views valid: vector and deque moves do not relocate elements.
  Headers(Headers&&) noexcept = default;
  Headers& operator=(Headers&&) noexcept = default;

  // Case-insensitive lookups. A name classifyField() knows is looked up by
  // its id.
  std::string_view get(std::string_view name) const;  // first match or ""
  bool has(std::string_view name) const;
  size_t count(std::string_view name) const;
  void add(std::string_view name, std::string_view value);  // copies both
  void set(std::string_view name, std::string_view value);  // replace all, or add
  size_t remove(std::string_view name);                     // returns removed count
  std::string_view get(FieldId id) const;
  size_t remove(FieldId id);
  const std::vector<HeaderField>& fields() const { return fields_; }
  std::vector<HeaderField>& mutableFields() { return fields_; }
  void clear();
  // Copies a view into storage owned by this object (for parser use).
  std::string_view intern(std::string_view s);
  // Heap bytes clear() keeps for the next message (see spare_).
  size_t retainedCapacity() const;

 private:
  void copyFrom(const Headers& other);
  std::string& newArenaString();

  std::vector<HeaderField> fields_;
  // A forward_list, not a deque: libstdc++'s deque allocates ~600 bytes
  // when constructed, and every pooled exchange holds two Headers.
  std::forward_list<std::string> arena_;
  // Arena strings clear() kept, with their capacity, for the next message's
  // added fields (X-Forwarded-For, X-Forwarded-Proto...): four allocations
  // and frees per proxied request otherwise. Bounded in count and size.
  std::forward_list<std::string> spare_;
};

struct RequestHead {
  std::string method;
  // request-target: origin-form ("/a/b?x=1"; an absolute-form target is
  // turned into this and its authority into Host), "*" for OPTIONS, or the
  // authority for CONNECT.
  std::string target;
  int version_minor = 1;  // HTTP/1.<minor>; 0 or 1
  Headers headers;
  std::string raw;  // the head bytes as received (fields() views point here)

  std::string_view path() const;   // target up to '?'
  std::string_view query() const;  // after '?', "" if none
  std::string_view host() const;   // Host header without port (case as received)
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  Headers headers;
  std::string raw;
};

// How the body of a message is framed, decided from its head.
enum class BodyFraming { None, ContentLength, Chunked, UntilClose };

struct Limits {
  size_t max_request_line = 16 * 1024;  // 414 above this
  size_t max_header_bytes = 60 * 1024;  // 431 above this (Envoy's default)
  size_t max_header_count = 100;        // 431 above this
};

enum class ParseError {
  None,
  BadRequest,          // malformed syntax -> 400
  UriTooLong,          // -> 414
  HeadersTooLarge,     // -> 431
  BadContentLength,    // conflicting/invalid -> 400
  BadChunk,            // -> 400 (request) / 502 (response)
  UnsupportedVersion,  // -> 505
  UnexpectedEof,       // peer closed mid-message
};
const char* toString(ParseError e);

namespace detail {
// Framing state shared by both parsers; implementation detail of http1.cc.
struct ParserState {
  enum class Phase : uint8_t {
    Head,          // looking for the end of the head
    NoBody,        // head done, MessageComplete next
    Fixed,         // Content-Length body, `remaining` bytes left
    ChunkSize,     // chunk-size line (may be split; partial bytes in `pending`)
    ChunkData,     // `remaining` bytes of chunk data left
    ChunkDataEnd,  // CRLF after chunk data; `crlf_seen` bytes of it matched
    Trailers,      // trailer section lines
    UntilClose,    // response body delimited by connection close
    Done,          // MessageComplete returned
    Failed,        // sticky error
  };
  Phase phase = Phase::Head;
  ParseError error = ParseError::None;
  uint64_t remaining = 0;
  std::string pending;  // partial head / chunk-size line / trailer line bytes
  // Head search progress inside `pending`, so split input is never rescanned.
  size_t scan = 0;        // bytes already searched for '\n'
  size_t line_start = 0;  // start of the line being searched
  size_t head_start = 0;  // skips empty lines before the start line
  bool start_line_done = false;
  uint8_t crlf_seen = 0;
  size_t trailer_bytes = 0;
  size_t trailer_count = 0;
  // Connection semantics, computed once while parsing the head.
  bool keep_alive = false;
  bool expect_continue = false;
  bool upgrade = false;
  void resetMessage();
};
}  // namespace detail

struct ParseEvent {
  enum class Type {
    NeedMore,         // all input consumed, feed more
    HeadComplete,     // head() is ready; body may follow
    Body,             // `body` is a view into the input just fed
    MessageComplete,  // end of this message; parser is ready for the next one
    Error,
  };
  Type type = Type::NeedMore;
  std::string_view body;
  ParseError error = ParseError::None;
};

// Pull-style parser for requests. Call next() repeatedly with the unconsumed
// input; it returns one event and how many bytes it used.
//   size_t used; auto ev = p.next(buf, used); buf.remove_prefix(used);
// Pipelined requests: after MessageComplete the remaining input belongs to the
// next request; the caller decides when to parse it (one request at a time).
class RequestParser {
 public:
  explicit RequestParser(Limits limits = {}) : limits_(limits) {}
  ParseEvent next(std::string_view input, size_t& consumed);
  // Peer closed: returns MessageComplete/NeedMore/Error(UnexpectedEof) as appropriate.
  ParseEvent finish();
  RequestHead& head() { return head_; }
  const RequestHead& head() const { return head_; }
  BodyFraming framing() const { return framing_; }
  uint64_t contentLength() const { return content_length_; }
  bool keepAlive() const;        // per version + Connection header
  bool expectsContinue() const;  // Expect: 100-continue
  bool isUpgrade() const;        // Connection: upgrade + Upgrade header other than h2c
  void reset();                  // ready for a new message
  // A head cut short (a timeout): head().method from the bytes so far, when
  // its method token and SP arrived. A failed head gets it by itself.
  void nameMethodSoFar();
  // No part of a message held: at most empty lines skipped before one.
  bool betweenMessages() const {
    return st_.phase == detail::ParserState::Phase::Head && st_.pending.size() == st_.head_start;
  }
  // Heap bytes the parser keeps across reset() (string and vector capacity).
  size_t retainedCapacity() const;

 private:
  ParseEvent parseHead(std::string_view input, size_t& consumed);
  template <typename Parser>
  friend ParseEvent nextEvent(Parser&, detail::ParserState&, std::string_view, size_t&,
                              const Limits&);
  Limits limits_;
  RequestHead head_;
  BodyFraming framing_ = BodyFraming::None;
  uint64_t content_length_ = 0;
  detail::ParserState st_;
};

class ResponseParser {
 public:
  explicit ResponseParser(Limits limits = {}) : limits_(limits) {}
  // The request's method matters (HEAD has no body) and so does whether it
  // was an upgrade/CONNECT.
  void expect(std::string_view request_method);
  ParseEvent next(std::string_view input, size_t& consumed);
  ParseEvent finish();  // peer closed: completes an UntilClose body
  ResponseHead& head() { return head_; }
  const ResponseHead& head() const { return head_; }
  BodyFraming framing() const { return framing_; }
  uint64_t contentLength() const { return content_length_; }
  bool keepAlive() const;
  // The body has a transfer coding other than chunked ("gzip, chunked", or
  // "gzip" read until close): bytes a proxy re-chunking it can't pass on as is.
  bool otherTransferCoding() const { return other_te_; }
  // A 1xx or 204 with Transfer-Encoding or a non-zero Content-Length: no
  // body is read (RFC 9112 §6.3), but the head can't be passed on as it is.
  // (A "Content-Length: 0" there is removed from the head instead.)
  bool framedNoContent() const { return framed_no_content_; }
  // 1xx: forward it, then keep calling next() for the final response.
  bool isInformational() const { return head_.status >= 100 && head_.status < 200; }
  // Clears the message state; the expect() setting is kept (it belongs to
  // the request, which a 1xx does not finish).
  void reset();
  size_t retainedCapacity() const;  // as RequestParser's

 private:
  ParseEvent parseHead(std::string_view input, size_t& consumed);
  template <typename Parser>
  friend ParseEvent nextEvent(Parser&, detail::ParserState&, std::string_view, size_t&,
                              const Limits&);
  Limits limits_;
  ResponseHead head_;
  BodyFraming framing_ = BodyFraming::None;
  uint64_t content_length_ = 0;
  bool head_request_ = false;
  bool connect_request_ = false;
  bool other_te_ = false;
  bool framed_no_content_ = false;
  detail::ParserState st_;
};

// ---- serialization -----------------------------------------------------------

// Appends "METHOD target HTTP/1.1\r\n" + fields + "\r\n".
void appendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       const Headers& headers);
// Appends "HTTP/1.1 <status> <reason>\r\n" + fields + "\r\n".
void appendResponseHead(std::string& out, int status, std::string_view reason,
                        const Headers& headers);
// Chunked framing helpers.
void appendChunk(std::string& out, std::string_view data);  // no-op for empty data
void appendLastChunk(std::string& out);                     // "0\r\n\r\n"

const char* reasonPhrase(int status);

// Removes hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection, TE,
// Trailer, Transfer-Encoding, Upgrade, HTTP2-Settings, and every header named
// in Connection). When keep_upgrade is set, Upgrade and "Connection: upgrade" survive.
void removeHopByHop(Headers& headers, bool keep_upgrade);

bool iequals(std::string_view a, std::string_view b);

// Whether a comma-separated field value (RFC 9110 §5.6.1) lists `element`,
// compared case-insensitively ("Vary: Accept, Origin" lists "origin").
bool listContains(std::string_view list, std::string_view element);

// Strips ":port" from a Host header value ("example.com:8080" -> "example.com",
// "[::1]:80" -> "[::1]"); a bare IPv6 literal has no port to strip.
std::string_view hostWithoutPort(std::string_view host);

}  // namespace portico::http
