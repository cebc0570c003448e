#include "http/http1.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <iterator>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace portico::http {
namespace {

using Phase = detail::ParserState::Phase;
using Type = ParseEvent::Type;

// Byte classes from RFC 9110 §5.6.2 (tchar) and §5.5 (field values), as
// tables: the head parser looks every byte up once.
// ALPHA / DIGIT and the bytes of `extra`.
constexpr std::array<bool, 256> alnumAnd(std::string_view extra) {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : extra) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> makeTchar() { return alnumAnd("!#$%&'*+-.^_`|~"); }
// field-vchar / SP / HTAB / obs-text. NUL, CR, LF, other CTLs and DEL are out.
constexpr std::array<bool, 256> makeFieldChar() {
  std::array<bool, 256> t{};
  t['\t'] = true;
  for (int c = 0x20; c < 0x7f; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}
// request-target: visible ASCII and obs-text; whitespace and CTLs end it.
constexpr std::array<bool, 256> makeTargetChar() {
  std::array<bool, 256> t{};
  for (int c = 0x21; c < 0x7f; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}
// reg-name bytes (RFC 3986 §3.2.2): unreserved, sub-delims and the '%' of
// pct-encoded. Inside an IP-literal's brackets ':' is allowed too.
constexpr std::array<bool, 256> makeRegName() { return alnumAnd("-._~!$&'()*+,;=%"); }
constexpr auto kTchar = makeTchar();
constexpr auto kRegName = makeRegName();
constexpr auto kFieldChar = makeFieldChar();
constexpr auto kTargetChar = makeTargetChar();

inline unsigned char u8(char c) { return static_cast<unsigned char>(c); }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline bool isOws(char c) { return c == ' ' || c == '\t'; }

// A chunk-size line is a few hex digits; extensions are rare and short. A
// bound keeps a hostile peer from making us buffer an endless line.
constexpr size_t kMaxChunkLine = 4096;

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each element of a comma-separated list, OWS-trimmed,
// including empty ones (callers decide whether those are allowed).
template <typename F>
void forEachElement(std::string_view list, F&& f) {
  for (;;) {
    size_t comma = list.find(',');
    f(trimOws(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

ParseEvent fail(detail::ParserState& st, ParseError e) {
  st.phase = Phase::Failed;
  st.error = e;
  return {Type::Error, {}, e};
}

ParseEvent complete(detail::ParserState& st) {
  st.phase = Phase::Done;
  return {Type::MessageComplete, {}, ParseError::None};
}

ParseEvent bodyEvent(std::string_view data) { return {Type::Body, data, ParseError::None}; }

// Offset of the first '\n' in base[pos, n), or n. Inlined rather than a
// memchr call per line: heads are many short lines and the call overhead
// dominated.
inline size_t findLf(const char* base, size_t pos, size_t n) {
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  while (pos + 16 <= n) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + pos));
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return pos + static_cast<size_t>(__builtin_ctz(mask));
    pos += 16;
  }
#endif
  const void* hit = std::memchr(base + pos, '\n', n - pos);
  return hit == nullptr ? n : static_cast<size_t>(static_cast<const char*>(hit) - base);
}

// True when any byte of w is below `Limit` (<= 0x80) or is DEL. Exact as a
// yes/no answer (the classic "hasless"/"haszero" bit tricks).
template <uint64_t Limit>
inline bool hasBelowOrDel(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  const uint64_t below = (w - kOnes * Limit) & ~w & kHigh;
  const uint64_t x = w ^ (kOnes * 0x7f);
  const uint64_t del = (x - kOnes) & ~x & kHigh;
  return (below | del) != 0;
}

// Advances p over bytes allowed by `table`; stops at the first one that is
// not (the line's CR or the SP after a target when the input is valid).
// Eight bytes at a time while no byte is below `Limit` or DEL, byte by byte
// around the others (HTAB in values, for instance).
template <uint64_t Limit>
inline const char* skipAllowed(const char* p, const char* end, const std::array<bool, 256>& table) {
  for (;;) {
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (hasBelowOrDel<Limit>(w)) break;
      p += 8;
    }
    const char* stop = end - p >= 8 ? p + 8 : end;
    while (p < stop && table[u8(*p)]) ++p;
    if (p < stop || p == end) return p;
  }
}

enum class HeadScan { NeedMore, Found, Failed };

// The method token a head starts with, when it and its SP arrived ("" else).
std::string_view leadingMethod(std::string_view head) {
  size_t i = 0;
  while (i < head.size() && kTchar[u8(head[i])]) ++i;
  return i > 0 && i < head.size() && head[i] == ' ' ? head.substr(0, i) : std::string_view();
}

// A head refused before it ended (too large, a line too long, a bare LF):
// `raw` keeps its method, so the answer to a HEAD request can leave out its
// body (RFC 9110 §9.3.2), a 431's or 400's too.
void keepMethod(const detail::ParserState& st, const char* base, size_t n, std::string& raw) {
  raw.assign(leadingMethod(std::string_view(base + st.head_start, n - st.head_start)));
}

// Finds the end of a head ("\r\n\r\n") in pending + input. Bytes searched on an
// earlier call are not searched again. The common case (whole head in one
// read) never copies into `pending`. On Found, `raw` holds the head bytes
// (leading empty lines dropped) and `consumed` covers them exactly, so any
// pipelined bytes after the head stay in the caller's input.
HeadScan findHead(detail::ParserState& st, std::string_view input, size_t& consumed,
                  std::string& raw, const Limits& limits, ParseError line_error, ParseError& err) {
  const bool direct = st.pending.empty();
  const size_t old = st.pending.size();
  std::string_view buf = input;
  if (!direct) {
    // Never hold more than one byte past the limit: that is already an error.
    size_t room = limits.max_header_bytes + 1 - std::min(old, limits.max_header_bytes);
    st.pending.append(input.data(), std::min(input.size(), room));
    buf = st.pending;
  }
  const char* base = buf.data();
  const size_t n = buf.size();
  size_t pos = st.scan;
  while (pos < n) {
    const size_t lf = findLf(base, pos, n);
    if (lf == n) break;
    if (lf == 0 || base[lf - 1] != '\r' || lf - 1 < st.line_start) {
      err = ParseError::BadRequest;  // bare LF: lenient parsers disagree on it
      keepMethod(st, base, n, raw);
      return HeadScan::Failed;
    }
    const size_t line_len = lf - 1 - st.line_start;
    pos = lf + 1;
    if (line_len == 0) {
      if (st.line_start == st.head_start) {
        // RFC 9112 §2.2: ignore empty lines before the start line (clients
        // sometimes send a stray CRLF after a body).
        st.head_start = st.line_start = pos;
        continue;
      }
      if (pos > limits.max_header_bytes) {
        err = ParseError::HeadersTooLarge;
        keepMethod(st, base, pos, raw);
        return HeadScan::Failed;
      }
      raw.assign(base + st.head_start, pos - st.head_start);
      consumed = direct ? pos : pos - old;
      st.pending.clear();
      st.scan = st.line_start = st.head_start = 0;
      st.start_line_done = false;
      return HeadScan::Found;
    }
    if (!st.start_line_done) {
      st.start_line_done = true;
      if (line_len > limits.max_request_line) {
        err = line_error;
        keepMethod(st, base, n, raw);
        return HeadScan::Failed;
      }
    }
    st.line_start = pos;
  }
  if (!st.start_line_done && n - st.line_start > limits.max_request_line + 1) {
    err = line_error;
    keepMethod(st, base, n, raw);
    return HeadScan::Failed;
  }
  if (n > limits.max_header_bytes) {
    err = ParseError::HeadersTooLarge;
    keepMethod(st, base, n, raw);
    return HeadScan::Failed;
  }
  st.scan = n;
  if (direct) st.pending.assign(input.data(), input.size());
  consumed = input.size();
  return HeadScan::NeedMore;
}

// Parses "HTTP/1.x" at p. Returns false with err set when malformed.
bool parseVersion(const char*& p, int& minor, ParseError& err) {
  if (std::memcmp(p, "HTTP/", 5) != 0) {
    err = ParseError::BadRequest;
    return false;
  }
  p += 5;
  if (p[0] < '0' || p[0] > '9' || p[1] != '.' || p[2] < '0' || p[2] > '9') {
    err = ParseError::BadRequest;
    return false;
  }
  if (p[0] != '1') {
    err = ParseError::UnsupportedVersion;
    return false;
  }
  // RFC 9110 §6.2: a higher minor version is handled as the highest we speak.
  minor = p[2] == '0' ? 0 : 1;
  p += 3;
  return true;
}

// Parses field lines from p to the empty line that ends the head. `raw` is
// known (from findHead) to end with "\r\n\r\n" and to hold no LF that is not
// preceded by CR, so the scans below stop at the latest on that final CR.
bool parseFields(const char* p, const char* end, Headers& headers, size_t max_count,
                 ParseError& err) {
  auto& fields = headers.mutableFields();
  for (;;) {
    if (*p == '\r') {
      if (p[1] == '\n' && p + 2 == end) return true;
      err = ParseError::BadRequest;  // bare CR
      return false;
    }
    const char* name = p;
    while (kTchar[u8(*p)]) ++p;
    // Rejects an empty name, obs-fold (line starting with SP/HTAB), whitespace
    // before the colon and any non-token byte in the name.
    if (p == name || *p != ':') {
      err = ParseError::BadRequest;
      return false;
    }
    const size_t name_len = static_cast<size_t>(p - name);
    ++p;
    while (isOws(*p)) ++p;
    const char* value = p;
    p = skipAllowed<0x20>(p, end, kFieldChar);
    if (p[0] != '\r' || p[1] != '\n') {
      err = ParseError::BadRequest;  // NUL, bare CR or another CTL in the value
      return false;
    }
    const char* value_end = p;
    while (value_end > value && isOws(value_end[-1])) --value_end;
    if (fields.size() >= max_count) {
      err = ParseError::HeadersTooLarge;
      return false;
    }
    fields.push_back({{name, name_len},
                      {value, static_cast<size_t>(value_end - value)},
                      classifyField({name, name_len})});
    p += 2;
  }
}

// What the framing and connection decisions need from the fields, gathered in
// one pass.
struct FieldSummary {
  int host_count = 0;
  bool has_cl = false;
  bool cl_invalid = false;
  int cl_values = 0;  // elements over all Content-Length fields ("5, 5" is two)
  uint64_t cl = 0;
  bool has_te = false;
  int te_chunked = 0;  // how many times "chunked" is listed
  bool te_last_chunked = false;
  bool te_other = false;  // any coding other than chunked (or an empty list)
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  bool has_upgrade = false;
  bool expect_continue = false;
};

void addContentLength(FieldSummary& s, std::string_view value) {
  forEachElement(value, [&](std::string_view e) {
    if (e.empty()) {
      s.cl_invalid = true;
      return;
    }
    uint64_t v = 0;
    for (char c : e) {
      if (c < '0' || c > '9') {
        s.cl_invalid = true;
        return;
      }
      const uint64_t d = static_cast<uint64_t>(c - '0');
      if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) {
        s.cl_invalid = true;
        return;
      }
      v = v * 10 + d;
    }
    // Repeated identical values are allowed (RFC 9110 §8.6); different ones
    // are the classic smuggling vector.
    if (s.has_cl && v != s.cl) s.cl_invalid = true;
    ++s.cl_values;
    s.has_cl = true;
    s.cl = v;
  });
  s.has_cl = true;
}

// "5, 5" or two fields of 5: one field with the value passes on (RFC 9110
// §8.6 lets a recipient replace the list with it), since some next hops
// (nginx) refuse the repetition.
void collapseContentLength(Headers& headers, const FieldSummary& s) {
  if (s.cl_values > 1) headers.set("Content-Length", std::to_string(s.cl));
}

FieldSummary summarize(const Headers& headers) {
  FieldSummary s;
  for (const HeaderField& f : headers.fields()) {
    switch (f.id) {
      case FieldId::Host:
        ++s.host_count;
        break;
      case FieldId::Expect:
        s.expect_continue = iequals(f.value, "100-continue");
        break;
      case FieldId::Upgrade:
        // An h2c upgrade is not one Portico can carry: it would hand the
        // rest of the connection to one backend as an HTTP/2 tunnel that no
        // route match or filter sees. Envoy strips it the same way; the
        // request goes on as plain HTTP/1.1.
        s.has_upgrade = s.has_upgrade || (!f.value.empty() && !iequals(f.value, "h2c"));
        break;
      case FieldId::Connection:
        forEachElement(f.value, [&](std::string_view t) {
          if (iequals(t, "close"))
            s.conn_close = true;
          else if (iequals(t, "keep-alive"))
            s.conn_keep_alive = true;
          else if (iequals(t, "upgrade"))
            s.conn_upgrade = true;
        });
        break;
      case FieldId::ContentLength:
        addContentLength(s, f.value);
        break;
      case FieldId::TransferEncoding:
        s.has_te = true;
        forEachElement(f.value, [&](std::string_view coding) {
          if (coding.empty()) return;  // empty list elements are ignored
          if (iequals(coding, "chunked")) {
            ++s.te_chunked;
            s.te_last_chunked = true;
          } else {
            s.te_other = true;
            s.te_last_chunked = false;
          }
        });
        break;
      default:
        break;
    }
  }
  return s;
}

// The value of a hex digit, -1 for any other byte.
int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parseChunkSize(std::string_view line, uint64_t& size) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < line.size(); ++i) {
    const int d = hexDigit(line[i]);
    if (d < 0) break;
    if (v >> 60) return false;  // would overflow 64 bits
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  if (i == 0) return false;
  if (i < line.size()) {
    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ); the
    // extensions are ignored, but must not smuggle CTLs or whitespace-only
    // tails that other parsers read differently.
    size_t j = i;
    while (j < line.size() && isOws(line[j])) ++j;
    if (j == line.size() || line[j] != ';') return false;
    for (; j < line.size(); ++j) {
      if (!kFieldChar[u8(line[j])]) return false;
    }
  }
  size = v;
  return true;
}

bool validTrailerLine(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && kTchar[u8(line[i])]) ++i;
  if (i == 0 || i == line.size() || line[i] != ':') return false;
  for (++i; i < line.size(); ++i) {
    if (!kFieldChar[u8(line[i])]) return false;
  }
  return true;
}

// Body framing state machine shared by both parsers: runs the non-emitting
// steps (chunk-size lines, CRLFs, trailers) until it has an event to return.
ParseEvent bodyStep(detail::ParserState& st, std::string_view in, size_t& consumed,
                    const Limits& limits) {
  size_t pos = 0;
  for (;;) {
    switch (st.phase) {
      case Phase::NoBody:
        consumed = pos;
        return complete(st);
      case Phase::Fixed: {
        consumed = pos;
        if (st.remaining == 0) return complete(st);
        if (pos == in.size()) return {};
        const size_t n = static_cast<size_t>(std::min<uint64_t>(st.remaining, in.size() - pos));
        st.remaining -= n;
        consumed = pos + n;
        return bodyEvent(in.substr(pos, n));
      }
      case Phase::UntilClose:
        consumed = in.size();
        if (pos == in.size()) return {};
        return bodyEvent(in.substr(pos));
      case Phase::ChunkData: {
        consumed = pos;
        if (pos == in.size()) return {};
        const size_t n = static_cast<size_t>(std::min<uint64_t>(st.remaining, in.size() - pos));
        st.remaining -= n;
        if (st.remaining == 0) {
          st.phase = Phase::ChunkDataEnd;
          st.crlf_seen = 0;
        }
        consumed = pos + n;
        return bodyEvent(in.substr(pos, n));
      }
      case Phase::ChunkDataEnd:
        while (st.crlf_seen < 2 && pos < in.size()) {
          if (in[pos] != (st.crlf_seen == 0 ? '\r' : '\n')) {
            consumed = pos;
            return fail(st, ParseError::BadChunk);
          }
          ++pos;
          ++st.crlf_seen;
        }
        if (st.crlf_seen < 2) {
          consumed = pos;
          return {};
        }
        st.phase = Phase::ChunkSize;
        break;
      case Phase::ChunkSize:
      case Phase::Trailers: {
        const bool size_line = st.phase == Phase::ChunkSize;
        const size_t limit = size_line ? kMaxChunkLine : limits.max_header_bytes;
        const std::string_view rest = in.substr(pos);
        const void* hit = std::memchr(rest.data(), '\n', rest.size());
        if (hit == nullptr) {
          consumed = in.size();
          if (st.pending.size() + rest.size() > limit ||
              (!size_line && st.trailer_bytes + st.pending.size() + rest.size() > limit)) {
            return fail(st, ParseError::BadChunk);
          }
          st.pending.append(rest.data(), rest.size());
          return {};
        }
        const size_t len = static_cast<size_t>(static_cast<const char*>(hit) - rest.data()) + 1;
        std::string_view line = rest.substr(0, len);
        if (!st.pending.empty()) {
          st.pending.append(line.data(), line.size());
          line = st.pending;
        }
        pos += len;
        consumed = pos;
        if (line.size() > limit || line.size() < 2 || line[line.size() - 2] != '\r') {
          return fail(st, ParseError::BadChunk);
        }
        const size_t line_bytes = line.size();
        line.remove_suffix(2);
        if (size_line) {
          uint64_t size = 0;
          if (!parseChunkSize(line, size)) return fail(st, ParseError::BadChunk);
          st.pending.clear();
          if (size == 0) {
            st.phase = Phase::Trailers;
          } else {
            st.phase = Phase::ChunkData;
            st.remaining = size;
          }
          break;
        }
        if (line.empty()) {
          st.pending.clear();
          return complete(st);
        }
        // Trailer fields are checked and dropped: the proxy re-frames bodies
        // and forwarding trailers is optional (RFC 9110 §6.5.1).
        st.trailer_bytes += line_bytes;
        if (!validTrailerLine(line) || ++st.trailer_count > limits.max_header_count ||
            st.trailer_bytes > limits.max_header_bytes) {
          return fail(st, ParseError::BadChunk);
        }
        st.pending.clear();  // `line` may view it: clear only after use
        break;
      }
      case Phase::Head:
      case Phase::Done:
      case Phase::Failed:
        consumed = pos;
        return fail(st, ParseError::BadRequest);  // unreachable: callers dispatch these
    }
  }
}

// Peer closed the connection: what that means for the message in progress.
ParseEvent finishImpl(detail::ParserState& st) {
  switch (st.phase) {
    case Phase::Failed:
      return {Type::Error, {}, st.error};
    case Phase::Done:
      return {};
    case Phase::Head:
      // Closing between messages is clean; closing inside a head is not.
      if (st.pending.size() == st.head_start) return {};
      return fail(st, ParseError::UnexpectedEof);
    case Phase::NoBody:
    case Phase::UntilClose:
      return complete(st);
    case Phase::Fixed:
      if (st.remaining == 0) return complete(st);
      return fail(st, ParseError::UnexpectedEof);
    default:
      return fail(st, ParseError::UnexpectedEof);
  }
}

}  // namespace

// ---- detail -------------------------------------------------------------------

void detail::ParserState::resetMessage() {
  phase = Phase::Head;
  error = ParseError::None;
  remaining = 0;
  pending.clear();
  scan = line_start = head_start = 0;
  start_line_done = false;
  crlf_seen = 0;
  trailer_bytes = trailer_count = 0;
  keep_alive = expect_continue = upgrade = false;
}

// ---- Headers --------------------------------------------------------------------

namespace {
// A lower-case field name as up to three little-endian words, with a mask
// that has 0x20 at each letter: (bytes | mask) == word holds exactly when
// the bytes spell the name in any case (0x20 is the case bit of ASCII
// letters; '-' and digits must match as they are).
struct NameWords {
  uint64_t word[3] = {0, 0, 0};
  uint64_t mask[3] = {0, 0, 0};
};
constexpr NameWords nameWords(std::string_view lower_name) {
  NameWords w;
  for (size_t i = 0; i < lower_name.size(); ++i) {
    const auto c = static_cast<uint64_t>(static_cast<unsigned char>(lower_name[i]));
    w.word[i / 8] |= c << (8 * (i % 8));
    if (c >= 'a' && c <= 'z') w.mask[i / 8] |= uint64_t{0x20} << (8 * (i % 8));
  }
  return w;
}
// `n` spells the name of `w` (whose length the caller already checked).
// Inlined into classifyField's cases, where n.size() is a constant, so the
// copies below are plain loads.
inline bool spells(std::string_view n, const NameWords& w) {
  size_t i = 0;
  for (; i + 8 <= n.size(); i += 8) {
    uint64_t b;
    std::memcpy(&b, n.data() + i, 8);
    if ((b | w.mask[i / 8]) != w.word[i / 8]) return false;
  }
  if (i == n.size()) return true;
  uint64_t b = 0;
  std::memcpy(&b, n.data() + i, n.size() - i);
  return (b | w.mask[i / 8]) == w.word[i / 8];
}
constexpr NameWords kTe = nameWords("te"), kHost = nameWords("host"), kExpect = nameWords("expect"),
                    kUpgrade = nameWords("upgrade"), kTrailer = nameWords("trailer"),
                    kConnection = nameWords("connection"), kKeepAlive = nameWords("keep-alive"),
                    kContentLength = nameWords("content-length"),
                    kHttp2Settings = nameWords("http2-settings"),
                    kXForwardedFor = nameWords("x-forwarded-for"),
                    kProxyConnection = nameWords("proxy-connection"),
                    kTransferEncoding = nameWords("transfer-encoding"),
                    kXForwardedProto = nameWords("x-forwarded-proto"),
                    kXRequestId = nameWords("x-request-id");
}  // namespace

FieldId classifyField(std::string_view n) {
  // By length first: most names are none of these and cost one switch.
  switch (n.size()) {
    case 2:
      return spells(n, kTe) ? FieldId::Te : FieldId::Other;
    case 4:
      return spells(n, kHost) ? FieldId::Host : FieldId::Other;
    case 6:
      return spells(n, kExpect) ? FieldId::Expect : FieldId::Other;
    case 7:
      if (spells(n, kUpgrade)) return FieldId::Upgrade;
      return spells(n, kTrailer) ? FieldId::Trailer : FieldId::Other;
    case 10:
      if (spells(n, kConnection)) return FieldId::Connection;
      return spells(n, kKeepAlive) ? FieldId::KeepAlive : FieldId::Other;
    case 12:
      return spells(n, kXRequestId) ? FieldId::XRequestId : FieldId::Other;
    case 14:
      if (spells(n, kContentLength)) return FieldId::ContentLength;
      return spells(n, kHttp2Settings) ? FieldId::Http2Settings : FieldId::Other;
    case 15:
      return spells(n, kXForwardedFor) ? FieldId::XForwardedFor : FieldId::Other;
    case 16:
      return spells(n, kProxyConnection) ? FieldId::ProxyConnection : FieldId::Other;
    case 17:
      if (spells(n, kTransferEncoding)) return FieldId::TransferEncoding;
      return spells(n, kXForwardedProto) ? FieldId::XForwardedProto : FieldId::Other;
    default:
      return FieldId::Other;
  }
}

Headers::Headers(const Headers& other) { copyFrom(other); }

Headers& Headers::operator=(const Headers& other) {
  if (this != &other) copyFrom(other);
  return *this;
}

void Headers::copyFrom(const Headers& other) {
  // One allocation for all bytes: copies are rare (retries, mirroring) but
  // should not cost one allocation per field.
  size_t total = 0;
  for (const auto& f : other.fields_) total += f.name.size() + f.value.size();
  std::string buf;
  buf.reserve(total);
  for (const auto& f : other.fields_) {
    buf.append(f.name);
    buf.append(f.value);
  }
  std::vector<HeaderField> fields;
  fields.reserve(other.fields_.size());
  arena_.clear();
  const std::string& stored = arena_.emplace_front(std::move(buf));
  size_t off = 0;
  for (const auto& f : other.fields_) {
    std::string_view name(stored.data() + off, f.name.size());
    off += f.name.size();
    std::string_view value(stored.data() + off, f.value.size());
    off += f.value.size();
    fields.push_back({name, value, f.id});
  }
  fields_ = std::move(fields);
}

namespace {
// Which fields a lookup means. By name: a name classifyField() knows matches
// by id alone, exactly as by name (classification compares whole names,
// case-insensitively); any other name compares case-insensitively. By id:
// the fields carrying it.
struct Named {
  explicit Named(std::string_view n) : name(n), id(classifyField(n)), by_id(id != FieldId::Other) {}
  explicit Named(FieldId i) : id(i), by_id(true) {}
  bool operator()(const HeaderField& f) const { return by_id ? f.id == id : iequals(f.name, name); }
  std::string_view name;
  FieldId id;
  bool by_id;
};

// A plain loop: headers are a handful of fields, and std::find_if's 4-way
// unrolling cost ~50 instructions per proxied request here (callgrind).
const HeaderField* first(const std::vector<HeaderField>& fields, const Named& named) {
  for (const auto& f : fields) {
    if (named(f)) return &f;
  }
  return nullptr;
}

std::string_view firstValue(const std::vector<HeaderField>& fields, const Named& named) {
  const HeaderField* f = first(fields, named);
  return f != nullptr ? f->value : std::string_view();
}
}  // namespace

std::string_view Headers::get(std::string_view name) const {
  return firstValue(fields_, Named(name));
}

std::string_view Headers::get(FieldId id) const { return firstValue(fields_, Named(id)); }

bool Headers::has(std::string_view name) const { return first(fields_, Named(name)) != nullptr; }

size_t Headers::count(std::string_view name) const {
  return static_cast<size_t>(std::count_if(fields_.begin(), fields_.end(), Named(name)));
}

namespace {
constexpr size_t kMaxSpareStrings = 8;
constexpr size_t kMaxSpareCapacity = 256;
}  // namespace

// A string at the arena's front: a spare one (kept by clear()) when there is
// one, its capacity reused, else a new one.
std::string& Headers::newArenaString() {
  if (spare_.empty()) return arena_.emplace_front();
  arena_.splice_after(arena_.before_begin(), spare_, spare_.before_begin());
  arena_.front().clear();
  return arena_.front();
}

void Headers::add(std::string_view name, std::string_view value) {
  std::string& s = newArenaString();
  s.reserve(name.size() + value.size());
  s.append(name);
  s.append(value);
  fields_.push_back({std::string_view(s.data(), name.size()),
                     std::string_view(s.data() + name.size(), value.size()), classifyField(name)});
}

void Headers::set(std::string_view name, std::string_view value) {
  // `name`/`value` may be views of a field about to be removed; removal only
  // drops views, the bytes stay in raw/arena.
  remove(name);
  add(name, value);
}

size_t Headers::remove(std::string_view name) { return std::erase_if(fields_, Named(name)); }

size_t Headers::remove(FieldId id) { return std::erase_if(fields_, Named(id)); }

void Headers::clear() {
  fields_.clear();
  auto kept = static_cast<size_t>(std::distance(spare_.begin(), spare_.end()));
  while (!arena_.empty()) {
    if (kept < kMaxSpareStrings && arena_.front().capacity() <= kMaxSpareCapacity) {
      spare_.splice_after(spare_.before_begin(), arena_, arena_.before_begin());
      ++kept;
    } else {
      arena_.pop_front();
    }
  }
}

size_t Headers::retainedCapacity() const {
  size_t bytes = 0;
  for (const auto& s : spare_) bytes += sizeof(s) + s.capacity();
  return bytes;
}

std::string_view Headers::intern(std::string_view s) {
  std::string& stored = newArenaString();
  stored.assign(s);
  return stored;
}

// ---- heads ----------------------------------------------------------------------

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::query() const {
  std::string_view t = target;
  const size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string_view hostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) return host;
  if (host.find(':') != colon) return host;  // bare IPv6 literal: no port to strip
  return host.substr(0, colon);
}

std::string_view RequestHead::host() const { return hostWithoutPort(headers.get("host")); }

// Where a parser is in its message decides what the input means; the same
// for requests and responses (only parsing the head differs).
template <typename Parser>
ParseEvent nextEvent(Parser& parser, detail::ParserState& st, std::string_view input,
                     size_t& consumed, const Limits& limits) {
  consumed = 0;
  switch (st.phase) {
    case Phase::Failed:
      return {Type::Error, {}, st.error};
    case Phase::Done:
      if (input.empty()) return {};
      parser.reset();  // the next message starts (pipelining)
      return parser.parseHead(input, consumed);
    case Phase::Head:
      return parser.parseHead(input, consumed);
    default:
      return bodyStep(st, input, consumed, limits);
  }
}

// ---- RequestParser ----------------------------------------------------------------

namespace {
// RFC 3986 §6.2.2 normalization of an origin-form target's path, as Envoy's
// normalize_path (which Envoy's edge-proxy guidance and Envoy Gateway turn
// on): percent-encoded unreserved characters are decoded,
// other escapes get upper-case hex, and "." / ".." segments are resolved
// (§5.2.4; ".." never climbs above the root). Routing and the backend then
// see one path: "/public/../admin" or "/%61dmin" can't slip past an /admin
// rule to a backend that resolves them itself. An encoded '/' (%2F) stays
// encoded. A '%' not followed by two hex digits is refused (false).
bool normalizePath(std::string& target) {
  const size_t query = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, query);
  if (path.find('%') == std::string_view::npos && path.find("/.") == std::string_view::npos)
    return true;  // the common case: nothing to do
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      decoded += path[i];
      continue;
    }
    if (i + 2 >= path.size()) return false;
    const int hi = hexDigit(path[i + 1]), lo = hexDigit(path[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      decoded += c;
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded += '%';
      decoded += kHex[hi];
      decoded += kHex[lo];
    }
    i += 2;
  }
  // Segments after the leading '/'; "." and ".." resolved on a stack.
  std::vector<std::string_view> kept;
  bool trailing_slash = false;
  std::string_view rest = std::string_view(decoded).substr(1);
  for (;;) {
    const size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    if (seg == "." || seg == "..") {
      if (seg == ".." && !kept.empty()) kept.pop_back();
      trailing_slash = last;  // "/a/." and "/a/.." name a directory
    } else {
      kept.push_back(seg);
      trailing_slash = false;
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }
  std::string out = "/";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out += '/';
    out.append(kept[i]);
  }
  if (trailing_slash && !kept.empty()) out += '/';
  if (query != std::string::npos) out.append(std::string_view(target).substr(query));
  target = std::move(out);
  return true;
}

// The four request-target forms (RFC 9112 §3.2), each allowed only where it
// means something. An absolute-form target ("http://h:8080/p?q") becomes
// origin-form with its authority as Host, which RFC 9112 §3.2.2 says
// overrides any Host field: routing and the backend then see one host, never
// the Host field's for one and the URI's for the other (Envoy does the same).
bool normalizeTarget(RequestHead& head) {
  std::string_view t = head.target;
  // A fragment never belongs in a request-target (RFC 9112 §3.2, RFC 3986
  // §3.5). Routed with it, "/admin#x" misses an Exact "/admin" rule, yet
  // backends that cut the target at '#' (nginx does) serve /admin: refused,
  // as Envoy does by default (http_reject_path_with_fragment).
  if (t.find('#') != std::string_view::npos) return false;
  if (t.front() == '/') return normalizePath(head.target);
  if (t == "*") return head.method == "OPTIONS";
  if (head.method == "CONNECT") return true;  // authority-form; refused by the proxy
  const size_t colon = t.find("://");
  if (colon == std::string_view::npos) return false;
  const std::string_view scheme = t.substr(0, colon);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return false;
  t.remove_prefix(colon + 3);
  const size_t end = t.find_first_of("/?");
  const std::string_view authority = t.substr(0, end);
  // userinfo is deprecated for http(s) URIs (RFC 9110 §4.2.4) and a classic
  // way to make a host look like another one: refused.
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  head.headers.set("Host", authority);  // copies: the target is rewritten next
  std::string_view rest = end == std::string_view::npos ? std::string_view() : t.substr(end);
  std::string origin = rest.empty() || rest.front() != '/' ? "/" : "";
  origin.append(rest);
  head.target = std::move(origin);
  return normalizePath(head.target);
}

// RFC 9110 §7.2: Host = uri-host [ ":" port ], the host a bracketed
// IP-literal or a reg-name, the port digits; empty is allowed (§7.2, no
// authority). RFC 9112 §3.2 makes any other value a 400. Routing drops the
// port by cutting at the last ':', so "a.example:80/x" or "a.example:@b.example"
// would be routed as a.example while the backend reads another host or path
// out of the same field. (Envoy checks the bytes only: it refuses the first,
// not the second.)
bool validHost(std::string_view h) {
  size_t i = 0;
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      if (!kRegName[u8(h[i])] && h[i] != ':') return false;
    }
    i = close + 1;
  } else {
    while (i < h.size() && kRegName[u8(h[i])]) ++i;
  }
  if (i == h.size()) return true;
  if (h[i] != ':') return false;
  for (++i; i < h.size(); ++i) {
    if (h[i] < '0' || h[i] > '9') return false;
  }
  return true;
}
}  // namespace

ParseEvent RequestParser::next(std::string_view input, size_t& consumed) {
  return nextEvent(*this, st_, input, consumed, limits_);
}

ParseEvent RequestParser::parseHead(std::string_view input, size_t& consumed) {
  ParseError err = ParseError::None;
  switch (findHead(st_, input, consumed, head_.raw, limits_, ParseError::UriTooLong, err)) {
    case HeadScan::NeedMore:
      return {};
    case HeadScan::Failed:
      head_.method = head_.raw;  // findHead kept the method, if it got one
      return fail(st_, err);
    case HeadScan::Found:
      break;
  }
  const char* p = head_.raw.data();
  const char* end = p + head_.raw.size();
  // request-line = method SP request-target SP HTTP-version CRLF
  const char* method = p;
  while (kTchar[u8(*p)]) ++p;
  if (p == method || *p != ' ') return fail(st_, ParseError::BadRequest);
  head_.method.assign(method, p);
  const char* target = ++p;
  p = skipAllowed<0x21>(p, end, kTargetChar);
  if (p == target || *p != ' ') return fail(st_, ParseError::BadRequest);
  head_.target.assign(target, p);
  ++p;
  if (end - p < 10 || !parseVersion(p, head_.version_minor, err)) {
    return fail(st_, err == ParseError::None ? ParseError::BadRequest : err);
  }
  if (p[0] != '\r' || p[1] != '\n') return fail(st_, ParseError::BadRequest);
  p += 2;
  if (!parseFields(p, end, head_.headers, limits_.max_header_count, err)) return fail(st_, err);

  const FieldSummary s = summarize(head_.headers);
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in 1.0.
  if (s.host_count > 1 || (s.host_count == 0 && head_.version_minor >= 1)) {
    return fail(st_, ParseError::BadRequest);
  }
  if (!normalizeTarget(head_) || !validHost(head_.headers.get(FieldId::Host))) {
    return fail(st_, ParseError::BadRequest);
  }
  if (s.has_te) {
    // Request smuggling defence (RFC 9112 §6.1-6.3): TE with CL, TE in
    // HTTP/1.0, or any coding list other than exactly "chunked" is refused
    // rather than guessed at, since the next hop may guess differently.
    if (s.has_cl || head_.version_minor == 0 || s.te_chunked != 1 || s.te_other) {
      return fail(st_, ParseError::BadRequest);
    }
    framing_ = BodyFraming::Chunked;
    st_.phase = Phase::ChunkSize;
  } else if (s.has_cl) {
    if (s.cl_invalid) return fail(st_, ParseError::BadContentLength);
    collapseContentLength(head_.headers, s);
    framing_ = BodyFraming::ContentLength;
    content_length_ = s.cl;
    st_.remaining = s.cl;
    st_.phase = Phase::Fixed;
  } else {
    framing_ = BodyFraming::None;
    st_.phase = Phase::NoBody;
  }
  st_.keep_alive = head_.version_minor >= 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
  st_.expect_continue = head_.version_minor >= 1 && s.expect_continue;
  // RFC 9110 §7.8: an Upgrade in an HTTP/1.0 request is ignored.
  st_.upgrade = head_.version_minor >= 1 && s.conn_upgrade && s.has_upgrade;
  return {Type::HeadComplete, {}, ParseError::None};
}

ParseEvent RequestParser::finish() { return finishImpl(st_); }

bool RequestParser::keepAlive() const { return st_.keep_alive; }
bool RequestParser::expectsContinue() const { return st_.expect_continue; }
bool RequestParser::isUpgrade() const { return st_.upgrade; }

void RequestParser::nameMethodSoFar() {
  if (st_.phase != Phase::Head || !head_.method.empty()) return;
  head_.method.assign(leadingMethod(
      std::string_view(st_.pending).substr(std::min(st_.head_start, st_.pending.size()))));
}

void RequestParser::reset() {
  head_.method.clear();
  head_.target.clear();
  head_.version_minor = 1;
  head_.headers.clear();
  head_.raw.clear();
  framing_ = BodyFraming::None;
  content_length_ = 0;
  st_.resetMessage();
}

size_t RequestParser::retainedCapacity() const {
  return head_.method.capacity() + head_.target.capacity() + head_.raw.capacity() +
         st_.pending.capacity() + head_.headers.fields().capacity() * sizeof(HeaderField) +
         head_.headers.retainedCapacity();
}

// ---- ResponseParser ---------------------------------------------------------------

void ResponseParser::expect(std::string_view request_method) {
  head_request_ = request_method == "HEAD";
  connect_request_ = request_method == "CONNECT";
}

ParseEvent ResponseParser::next(std::string_view input, size_t& consumed) {
  return nextEvent(*this, st_, input, consumed, limits_);
}

ParseEvent ResponseParser::parseHead(std::string_view input, size_t& consumed) {
  ParseError err = ParseError::None;
  switch (findHead(st_, input, consumed, head_.raw, limits_, ParseError::HeadersTooLarge, err)) {
    case HeadScan::NeedMore:
      return {};
    case HeadScan::Failed:
      return fail(st_, err);
    case HeadScan::Found:
      break;
  }
  const char* p = head_.raw.data();
  const char* end = p + head_.raw.size();
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
  if (end - p < 14 || !parseVersion(p, head_.version_minor, err)) {
    return fail(st_, err == ParseError::None ? ParseError::BadRequest : err);
  }
  // RFC 9110 §15: 100..599; anything else is invalid (and would reach the
  // client as a class it can't know).
  if (p[0] != ' ' || p[1] < '1' || p[1] > '5' || p[2] < '0' || p[2] > '9' || p[3] < '0' ||
      p[3] > '9') {
    return fail(st_, ParseError::BadRequest);
  }
  head_.status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
  p += 4;
  const char* reason = p;
  if (*p == ' ') {
    reason = ++p;
    while (kFieldChar[u8(*p)]) ++p;
  }
  // Tolerate a missing SP before an empty reason ("HTTP/1.1 200\r\n"), as
  // many servers send it.
  if (p[0] != '\r' || p[1] != '\n') return fail(st_, ParseError::BadRequest);
  head_.reason.assign(reason, p);
  p += 2;
  if (!parseFields(p, end, head_.headers, limits_.max_header_count, err)) return fail(st_, err);

  const FieldSummary s = summarize(head_.headers);
  const int status = head_.status;
  const bool no_body = status < 200 || status == 204 || status == 304 || head_request_ ||
                       (connect_request_ && status < 300);
  content_length_ = 0;
  other_te_ = false;
  framed_no_content_ = false;
  if (no_body) {
    // RFC 9112 §6.3 rules 1-2: framing headers are ignored here. But a
    // Content-Length goes on to the client as it is, so an invalid one
    // ("5, 6", "x") fails here as it does on a response with a body.
    if (s.has_cl && s.cl_invalid) return fail(st_, ParseError::BadContentLength);
    // RFC 9110 §8.6, RFC 9112 §6.1: a 1xx or 204 carries neither field. A
    // "Content-Length: 0" is harmless and dropped; anything more says the
    // backend meant to send a body, which a client reading by the header
    // would wait for or take from the next response (flagged: Envoy's
    // require_strict_1xx_and_204_response_headers makes it a 502).
    if (status < 200 || status == 204) {
      if (s.has_te || (s.has_cl && s.cl != 0))
        framed_no_content_ = true;
      else if (s.has_cl)
        head_.headers.remove(FieldId::ContentLength);
    }
    framing_ = BodyFraming::None;
    st_.phase = Phase::NoBody;
  } else if (s.has_te) {
    if (head_.version_minor == 0) return fail(st_, ParseError::BadRequest);
    other_te_ = s.te_other;
    if (s.te_chunked == 1 && s.te_last_chunked) {
      framing_ = BodyFraming::Chunked;
      st_.phase = Phase::ChunkSize;
      // TE overrides CL (RFC 9112 §6.3 rule 3); drop the CL so nobody
      // forwards both.
      if (s.has_cl) head_.headers.remove("content-length");
    } else if (s.te_chunked == 0) {
      framing_ = BodyFraming::UntilClose;
      st_.phase = Phase::UntilClose;
    } else {
      return fail(st_, ParseError::BadRequest);  // chunked twice or not last
    }
  } else if (s.has_cl) {
    if (s.cl_invalid) return fail(st_, ParseError::BadContentLength);
    collapseContentLength(head_.headers, s);
    framing_ = BodyFraming::ContentLength;
    content_length_ = s.cl;
    st_.remaining = s.cl;
    st_.phase = Phase::Fixed;
  } else {
    framing_ = BodyFraming::UntilClose;
    st_.phase = Phase::UntilClose;
  }
  st_.keep_alive =
      framing_ != BodyFraming::UntilClose && !(connect_request_ && status >= 200 && status < 300) &&
      (head_.version_minor >= 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close));
  st_.upgrade = status == 101;
  return {Type::HeadComplete, {}, ParseError::None};
}

ParseEvent ResponseParser::finish() { return finishImpl(st_); }

bool ResponseParser::keepAlive() const { return st_.keep_alive; }

void ResponseParser::reset() {
  head_.status = 0;
  head_.reason.clear();
  head_.version_minor = 1;
  head_.headers.clear();
  head_.raw.clear();
  framing_ = BodyFraming::None;
  content_length_ = 0;
  st_.resetMessage();
}

size_t ResponseParser::retainedCapacity() const {
  return head_.reason.capacity() + head_.raw.capacity() + st_.pending.capacity() +
         head_.headers.fields().capacity() * sizeof(HeaderField) + head_.headers.retainedCapacity();
}

// ---- serialization --------------------------------------------------------------

namespace {

size_t fieldsSize(const Headers& headers) {
  size_t n = 2;
  for (const auto& f : headers.fields()) n += f.name.size() + f.value.size() + 4;
  return n;
}

// Writes the field lines and the empty line at p (fieldsSize() bytes); one
// resize by the caller instead of four appends per field, each with its own
// capacity check.
char* writeFields(char* p, const Headers& headers) {
  for (const auto& f : headers.fields()) {
    std::memcpy(p, f.name.data(), f.name.size());
    p += f.name.size();
    std::memcpy(p, ": ", 2);
    std::memcpy(p + 2, f.value.data(), f.value.size());
    p += 2 + f.value.size();
    std::memcpy(p, "\r\n", 2);
    p += 2;
  }
  std::memcpy(p, "\r\n", 2);
  return p + 2;
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

}  // namespace

void appendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       const Headers& headers) {
  const size_t old = out.size();
  const size_t line = method.size() + 1 + target.size() + 11;
  out.resize(old + line + fieldsSize(headers));
  char* p = put(out.data() + old, method);
  *p++ = ' ';
  p = put(p, target);
  p = put(p, " HTTP/1.1\r\n");
  writeFields(p, headers);
}

void appendResponseHead(std::string& out, int status, std::string_view reason,
                        const Headers& headers) {
  if (reason.empty()) reason = reasonPhrase(status);
  char code[16];
  auto r = std::to_chars(code, code + sizeof code, status);
  const std::string_view digits(code, static_cast<size_t>(r.ptr - code));
  const size_t old = out.size();
  out.resize(old + 9 + digits.size() + 1 + reason.size() + 2 + fieldsSize(headers));
  char* p = put(out.data() + old, "HTTP/1.1 ");
  p = put(p, digits);
  *p++ = ' ';
  p = put(p, reason);
  p = put(p, "\r\n");
  writeFields(p, headers);
}

void appendChunk(std::string& out, std::string_view data) {
  if (data.empty()) return;  // an empty chunk would end the body
  char buf[20];
  auto r = std::to_chars(buf, buf + sizeof buf, data.size(), 16);
  out.reserve(out.size() + static_cast<size_t>(r.ptr - buf) + data.size() + 4);
  out.append(buf, r.ptr);
  out.append("\r\n", 2);
  out.append(data);
  out.append("\r\n", 2);
}

void appendLastChunk(std::string& out) { out.append("0\r\n\r\n", 5); }

const char* reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 207:
      return "Multi-Status";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 507:
      return "Insufficient Storage";
    case 511:
      return "Network Authentication Required";
    default:
      return "Unknown";
  }
}

const char* toString(ParseError e) {
  switch (e) {
    case ParseError::None:
      return "none";
    case ParseError::BadRequest:
      return "bad request";
    case ParseError::UriTooLong:
      return "request line too long";
    case ParseError::HeadersTooLarge:
      return "headers too large";
    case ParseError::BadContentLength:
      return "invalid content-length";
    case ParseError::BadChunk:
      return "invalid chunked encoding";
    case ParseError::UnsupportedVersion:
      return "unsupported HTTP version";
    case ParseError::UnexpectedEof:
      return "connection closed mid-message";
  }
  return "unknown";
}

void removeHopByHop(Headers& headers, bool keep_upgrade) {
  auto& fields = headers.mutableFields();
  // The Connection options that could name a field still standing once the
  // fixed hop-by-hop fields go. "keep-alive" and "upgrade" (the usual ones)
  // name fields handled below anyway, so they are not collected, and the
  // common header then costs no per-field check at all. Views stay valid:
  // erasing moves fields around, but the bytes (raw/arena) stay put. The
  // inline slots are plain structs: nothing to initialise per call.
  struct Option {
    const char* data;
    size_t size;
  };
  constexpr size_t kInline = 8;
  Option inline_opts[kInline];
  std::vector<std::string_view> more_opts;
  size_t n_opts = 0;
  for (const auto& f : fields) {
    if (f.id != FieldId::Connection) continue;
    forEachElement(f.value, [&](std::string_view t) {
      if (t.empty() || iequals(t, "keep-alive") || iequals(t, "upgrade")) return;
      if (n_opts < kInline)
        inline_opts[n_opts] = {t.data(), t.size()};
      else
        more_opts.push_back(t);
      ++n_opts;
    });
  }
  auto namedInConnection = [&](std::string_view name) {
    for (size_t i = 0; i < std::min(n_opts, kInline); ++i) {
      if (iequals({inline_opts[i].data, inline_opts[i].size}, name)) return true;
    }
    for (std::string_view t : more_opts) {
      if (iequals(t, name)) return true;
    }
    return false;
  };
  bool kept_upgrade = false;
  std::erase_if(fields, [&](const HeaderField& f) {
    switch (f.id) {
      case FieldId::Te:
      case FieldId::Trailer:
      case FieldId::Connection:
      case FieldId::KeepAlive:
      case FieldId::ProxyConnection:
      case FieldId::TransferEncoding:
      case FieldId::Http2Settings:  // connection-specific by definition (RFC 7540 §3.2.1)
        return true;
      case FieldId::Host:
      case FieldId::ContentLength:
        // "Connection: host" or "Connection: content-length" would let a
        // client strip the fields the next hop routes and frames by; never
        // honour those.
        return false;
      case FieldId::Upgrade:
        kept_upgrade = kept_upgrade || keep_upgrade;
        return !keep_upgrade;
      default:
        return n_opts != 0 && namedInConnection(f.name);
    }
  });
  if (kept_upgrade) headers.add("Connection", "upgrade");
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool listContains(std::string_view list, std::string_view element) {
  bool found = false;
  forEachElement(list, [&](std::string_view e) { found = found || iequals(e, element); });
  return found;
}

}  // namespace portico::http
