#include "http/http1.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace portico::http {
namespace {

using Type = ParseEvent::Type;

// What a parser reported for one message, copied out so the test can compare
// results of different feeding patterns.
struct Message {
  std::string method;
  std::string target;
  int status = 0;
  std::string reason;
  int version_minor = -1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  BodyFraming framing = BodyFraming::None;
  bool keep_alive = false;
  bool complete = false;
  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;
  ParseError error = ParseError::None;
  std::string leftover;  // input nobody consumed
  bool operator==(const Outcome&) const = default;
};

void PrintTo(const Outcome& o, std::ostream* os) {
  *os << "{error=" << toString(o.error) << " leftover=" << testing::PrintToString(o.leftover);
  for (const auto& m : o.messages) {
    *os << " [" << m.method << " " << m.target << " " << m.status
        << " body=" << testing::PrintToString(m.body) << " fields=" << m.headers.size()
        << " ka=" << m.keep_alive << "]";
  }
  *os << "}";
}

void captureHead(const RequestParser& p, Message& m) {
  m.method = p.head().method;
  m.target = p.head().target;
  m.version_minor = p.head().version_minor;
  m.headers.clear();
  for (const auto& f : p.head().headers.fields()) m.headers.emplace_back(f.name, f.value);
  m.framing = p.framing();
  m.keep_alive = p.keepAlive();
}

void captureHead(const ResponseParser& p, Message& m) {
  m.status = p.head().status;
  m.reason = p.head().reason;
  m.version_minor = p.head().version_minor;
  m.headers.clear();
  for (const auto& f : p.head().headers.fields()) m.headers.emplace_back(f.name, f.value);
  m.framing = p.framing();
  m.keep_alive = p.keepAlive();
}

// Feeds `pieces` the way a connection would: append to a reused buffer, parse
// until NeedMore, erase what was consumed. Consumed bytes are overwritten
// before erasing so any view into the caller's input would show garbage. The
// head is captured at MessageComplete, after that scribbling.
template <typename Parser>
Outcome feed(Parser& p, const std::vector<std::string>& pieces, bool eof = false) {
  Outcome run;
  std::string buf;
  Message current;
  auto handle = [&](const ParseEvent& ev) {
    switch (ev.type) {
      case Type::HeadComplete:
        current = Message{};
        break;
      case Type::Body:
        current.body.append(ev.body);
        break;
      case Type::MessageComplete:
        captureHead(p, current);
        current.complete = true;
        run.messages.push_back(current);
        current = Message{};
        break;
      case Type::Error:
        run.error = ev.error;
        break;
      case Type::NeedMore:
        break;
    }
  };
  for (const std::string& piece : pieces) {
    buf.append(piece);
    for (int guard = 0; guard < 100000; ++guard) {
      size_t used = 0;
      ParseEvent ev = p.next(buf, used);
      EXPECT_LE(used, buf.size());
      std::string body_copy(ev.body);
      if (ev.type == Type::Body) ev.body = body_copy;
      std::memset(buf.data(), '#', used);
      buf.erase(0, used);
      handle(ev);
      if (ev.type == Type::Error) {
        run.leftover = buf;
        return run;
      }
      if (ev.type == Type::NeedMore) {
        EXPECT_TRUE(buf.empty()) << "NeedMore must consume all input";
        break;
      }
      if (ev.type == Type::MessageComplete && buf.empty()) break;
    }
  }
  if (eof) {
    ParseEvent ev = p.finish();
    handle(ev);
  }
  run.leftover = buf;
  return run;
}

template <typename Parser = RequestParser>
Outcome feedWhole(std::string_view s, bool eof = false, Limits limits = {}) {
  Parser p(limits);
  return feed(p, {std::string(s)}, eof);
}

ParseError requestError(std::string_view s, Limits limits = {}) {
  return feedWhole<RequestParser>(s, false, limits).error;
}

// Every split into two pieces, and byte-at-a-time, must give the same result
// as the whole input at once.
template <typename Parser = RequestParser>
void expectSplitInvariant(std::string_view s, bool eof = false) {
  // After an error, how much input was consumed depends on the split: only
  // the events and the error itself must agree.
  auto normalize = [](Outcome o) {
    if (o.error != ParseError::None) o.leftover.clear();
    return o;
  };
  const Outcome whole = normalize(feedWhole<Parser>(s, eof));
  for (size_t i = 0; i <= s.size(); ++i) {
    Parser p;
    const Outcome split =
        normalize(feed(p, {std::string(s.substr(0, i)), std::string(s.substr(i))}, eof));
    ASSERT_EQ(split, whole) << "split at " << i;
  }
  std::vector<std::string> bytes;
  for (char c : s) bytes.emplace_back(1, c);
  Parser p;
  EXPECT_EQ(normalize(feed(p, bytes, eof)), whole) << "byte at a time";
}

// ---- requests: basics -----------------------------------------------------------

TEST(RequestParser, SimpleGet) {
  const std::string in =
      "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent:  curl/8 \r\n"
      "X-Empty:\r\n\r\n";
  RequestParser p;
  size_t used = 0;
  ParseEvent ev = p.next(in, used);
  ASSERT_EQ(ev.type, Type::HeadComplete);
  EXPECT_EQ(used, in.size());
  EXPECT_EQ(p.head().method, "GET");
  EXPECT_EQ(p.head().target, "/a/b?x=1&y=2");
  EXPECT_EQ(p.head().path(), "/a/b");
  EXPECT_EQ(p.head().query(), "x=1&y=2");
  EXPECT_EQ(p.head().host(), "Example.com");
  EXPECT_EQ(p.head().version_minor, 1);
  ASSERT_EQ(p.head().headers.fields().size(), 3u);
  EXPECT_EQ(p.head().headers.fields()[0].name, "Host");
  EXPECT_EQ(p.head().headers.get("user-agent"), "curl/8");
  EXPECT_TRUE(p.head().headers.has("x-empty"));
  EXPECT_EQ(p.head().headers.get("X-EMPTY"), "");
  EXPECT_EQ(p.framing(), BodyFraming::None);
  EXPECT_TRUE(p.keepAlive());
  ev = p.next("", used);
  EXPECT_EQ(ev.type, Type::MessageComplete);
  EXPECT_EQ(used, 0u);
}

TEST(RequestParser, HeaderViewsPointIntoRawNotInput) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-Long-Header-Name: some value here\r\n\r\n";
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  const std::string& raw = p.head().raw;
  EXPECT_EQ(raw, in);
  for (const auto& f : p.head().headers.fields()) {
    EXPECT_GE(f.name.data(), raw.data());
    EXPECT_LE(f.value.data() + f.value.size(), raw.data() + raw.size());
  }
  std::fill(in.begin(), in.end(), 'Z');
  EXPECT_EQ(p.head().headers.get("x-long-header-name"), "some value here");
}

TEST(RequestParser, AbsoluteFormAndAsterisk) {
  // RFC 9112 §3.2.2: the authority of an absolute-form target overrides
  // Host. The target becomes origin-form so routing and the backend agree.
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("GET HTTP://h.example:81/p/q?z=9 HTTP/1.1\r\nHost: other\r\n\r\n", used).type,
            Type::HeadComplete);
  EXPECT_EQ(p.head().target, "/p/q?z=9");
  EXPECT_EQ(p.head().path(), "/p/q");
  EXPECT_EQ(p.head().query(), "z=9");
  EXPECT_EQ(p.head().headers.get("host"), "h.example:81");
  EXPECT_EQ(p.head().host(), "h.example");
  EXPECT_EQ(p.head().headers.fields().size(), 1u) << "Host replaced, not added";
  RequestParser p2;
  ASSERT_EQ(p2.next("GET https://h.example?x HTTP/1.0\r\n\r\n", used).type, Type::HeadComplete);
  EXPECT_EQ(p2.head().target, "/?x");
  EXPECT_EQ(p2.head().headers.get("host"), "h.example") << "HTTP/1.0 without Host gains one";
  RequestParser p3;
  ASSERT_EQ(p3.next("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", used).type, Type::HeadComplete);
  EXPECT_EQ(p3.head().path(), "*");
  RequestParser p4;
  ASSERT_EQ(p4.next("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n", used).type,
            Type::HeadComplete)
      << "authority-form is CONNECT's (the proxy refuses the method)";
  EXPECT_EQ(p4.head().target, "h.example:443");
}

// RFC 3986 §6.2.2 path normalization (Envoy's normalize_path): routing and
// the backend see the same path.
TEST(RequestParser, PathIsNormalized) {
  const std::pair<const char*, const char*> cases[] = {
      {"/a/b", "/a/b"},
      {"/public/../admin", "/admin"},
      {"/a/./b/../c?x=/../y", "/a/c?x=/../y"},  // the query is left alone
      {"/%61dmin/%7Euser", "/admin/~user"},     // unreserved bytes decoded
      {"/a%2fb/%2E%2E/c", "/c"},                // %2F stays a character; %2E%2E is ".."
      {"/a%2Fb", "/a%2Fb"},
      {"/x/%3c%3E", "/x/%3C%3E"},  // other escapes: upper-case hex
      {"/../../etc/passwd", "/etc/passwd"},
      {"/a/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/b/.", "/a/b/"},
      {"/.", "/"},
      {"//a/../b", "//b"},
      {"/a/b/", "/a/b/"},
      {"/a/.b/..c", "/a/.b/..c"},
      {"http://h.example/p/../q?r", "/q?r"},
  };
  for (const auto& [in, want] : cases) {
    RequestParser p;
    size_t used = 0;
    ASSERT_EQ(p.next(std::string("GET ") + in + " HTTP/1.1\r\nHost: h\r\n\r\n", used).type,
              Type::HeadComplete)
        << in;
    EXPECT_EQ(p.head().target, want) << in;
  }
  for (const char* bad : {"/a%", "/a%2", "/a%zz", "/%g0"}) {
    RequestParser p;
    size_t used = 0;
    EXPECT_EQ(p.next(std::string("GET ") + bad + " HTTP/1.1\r\nHost: h\r\n\r\n", used).type,
              Type::Error)
        << bad;
  }
}

TEST(RequestParser, TargetFormsOutOfPlaceAreBadRequests) {
  for (const char* line : {"GET * HTTP/1.1", "GET h.example:443 HTTP/1.1", "GET p/q HTTP/1.1",
                           "GET ftp://h.example/ HTTP/1.1", "GET http:///p HTTP/1.1",
                           "GET http://user@h.example/ HTTP/1.1", "GET http:/p HTTP/1.1"}) {
    RequestParser p;
    size_t used = 0;
    const auto ev = p.next(std::string(line) + "\r\nHost: h\r\n\r\n", used);
    EXPECT_EQ(ev.type, Type::Error) << line;
    EXPECT_EQ(ev.error, ParseError::BadRequest) << line;
  }
}

// Routed with its fragment, "/admin#x" missed an Exact "/admin" rule and
// went to the catch-all backend, which (nginx) served /admin.
TEST(RequestParser, FragmentInTargetIsBadRequest) {
  for (const char* target : {"/admin#x", "/a?b#c", "/#", "http://h.example/p#f", "http://h#f"}) {
    EXPECT_EQ(requestError(std::string("GET ") + target + " HTTP/1.1\r\nHost: h\r\n\r\n"),
              ParseError::BadRequest)
        << target;
  }
}

// A Host the route match reads one way and a backend another is refused
// (RFC 9112 §3.2: an invalid Host is a 400).
TEST(RequestParser, InvalidHostIsBadRequest) {
  for (const char* host :
       {"h.example:80/evil", "h.example:@evil.example", "h.example:abc", "h.example:8080:1",
        "h.example x", "h.example/", "user@h.example", "h\\x", "h\"x", "[::1", "[]", "[::1]x",
        "[::1]:8a", "h.example?", "::1"}) {
    EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"),
              ParseError::BadRequest)
        << host;
  }
  for (const char* host :
       {"", "h.example", "h.example:8080", "h.example:", "H-1_x~.example", "10.0.0.1:443", "[::1]",
        "[::1]:80", "[fe80::1%25eth0]", "xn--bcher-kva", "a%2eb", "!$&'()*+,;="}) {
    EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"),
              ParseError::None)
        << host;
  }
  EXPECT_EQ(requestError("GET http://h.example:x/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            ParseError::BadRequest)
      << "the authority of an absolute-form target is the Host";
}

TEST(RequestParser, HostWithoutPort) {
  auto host = [](std::string_view value) {
    RequestParser p;
    size_t used = 0;
    std::string in = "GET / HTTP/1.1\r\nHost: " + std::string(value) + "\r\n\r\n";
    EXPECT_EQ(p.next(in, used).type, Type::HeadComplete);
    return std::string(p.head().host());
  };
  EXPECT_EQ(host("example.com"), "example.com");
  EXPECT_EQ(host("example.com:8080"), "example.com");
  EXPECT_EQ(host("[::1]:80"), "[::1]");
  EXPECT_EQ(host("[::1]"), "[::1]");
}

TEST(RequestParser, LeadingEmptyLinesIgnored) {
  Outcome r = feedWhole("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].method, "GET");
}

TEST(RequestParser, Http10WithoutHostIsFine) {
  Outcome r = feedWhole("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].version_minor, 0);
  EXPECT_FALSE(r.messages[0].keep_alive);
}

TEST(RequestParser, HigherMinorVersionTreatedAs11) {
  Outcome r = feedWhole("GET / HTTP/1.7\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).version_minor, 1);
}

// ---- keep-alive matrix -------------------------------------------------------------

struct KeepAliveCase {
  const char* version;
  const char* connection;  // nullptr: no header
  bool keep_alive;
};

TEST(RequestParser, KeepAliveMatrix) {
  const KeepAliveCase cases[] = {
      {"1.1", nullptr, true},
      {"1.1", "close", false},
      {"1.1", "Close", false},
      {"1.1", "keep-alive", true},
      {"1.1", "foo, CLOSE", false},
      {"1.1", "upgrade", true},
      {"1.0", nullptr, false},
      {"1.0", "keep-alive", true},
      {"1.0", "Keep-Alive, foo", true},
      {"1.0", "close", false},
      {"1.0", "keep-alive, close", false},
  };
  for (const auto& c : cases) {
    std::string in = std::string("GET / HTTP/") + c.version + "\r\nHost: a\r\n";
    if (c.connection != nullptr) in += std::string("Connection: ") + c.connection + "\r\n";
    in += "\r\n";
    RequestParser p;
    size_t used = 0;
    ASSERT_EQ(p.next(in, used).type, Type::HeadComplete) << in;
    EXPECT_EQ(p.keepAlive(), c.keep_alive) << in;
  }
}

TEST(RequestParser, ExpectContinue) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(
      p.next("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
             used)
          .type,
      Type::HeadComplete);
  EXPECT_TRUE(p.expectsContinue());
  RequestParser p10;
  ASSERT_EQ(
      p10.next("PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", used).type,
      Type::HeadComplete);
  EXPECT_FALSE(p10.expectsContinue()) << "RFC 9110: ignore 100-continue from HTTP/1.0";
  RequestParser none;
  ASSERT_EQ(none.next("GET / HTTP/1.1\r\nHost: a\r\n\r\n", used).type, Type::HeadComplete);
  EXPECT_FALSE(none.expectsContinue());
}

TEST(RequestParser, Upgrade) {
  RequestParser p;
  size_t used = 0;
  const std::string in =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "\r\nTUNNELDATA";
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  EXPECT_TRUE(p.isUpgrade());
  size_t used2 = 0;
  EXPECT_EQ(p.next(std::string_view(in).substr(used), used2).type, Type::MessageComplete);
  EXPECT_EQ(used2, 0u);
  EXPECT_EQ(in.substr(used + used2), "TUNNELDATA") << "tunnel bytes stay with the caller";

  RequestParser no_conn;
  ASSERT_EQ(no_conn.next("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", used).type,
            Type::HeadComplete);
  EXPECT_FALSE(no_conn.isUpgrade()) << "Upgrade without Connection: upgrade is not an upgrade";

  RequestParser http10;
  ASSERT_EQ(
      http10.next("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", used)
          .type,
      Type::HeadComplete);
  EXPECT_FALSE(http10.isUpgrade()) << "RFC 9110 §7.8: ignored in an HTTP/1.0 request";

  // curl --http2 on plain HTTP: the h2c upgrade is dropped, the request is
  // served as HTTP/1.1 (as Envoy does).
  RequestParser h2c;
  ASSERT_EQ(h2c.next("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     "Upgrade: H2C\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
                     used)
                .type,
            Type::HeadComplete);
  EXPECT_FALSE(h2c.isUpgrade()) << "an h2c upgrade is not carried";
  EXPECT_TRUE(h2c.keepAlive());
}

// ---- Content-Length -------------------------------------------------------------

TEST(RequestParser, ContentLengthBody) {
  Outcome r = feedWhole("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].body, "hello world");
  EXPECT_EQ(r.messages[0].framing, BodyFraming::ContentLength);
}

TEST(RequestParser, ContentLengthZero) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", used).type,
            Type::HeadComplete);
  EXPECT_EQ(p.framing(), BodyFraming::ContentLength);
  EXPECT_EQ(p.contentLength(), 0u);
  EXPECT_EQ(p.next("", used).type, Type::MessageComplete);
}

TEST(RequestParser, ContentLengthBodyViewsPointIntoInput) {
  const std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  std::string_view rest = std::string_view(in).substr(used);
  ParseEvent ev = p.next(rest, used);
  ASSERT_EQ(ev.type, Type::Body);
  EXPECT_EQ(ev.body, "abcd");
  EXPECT_EQ(ev.body.data(), rest.data()) << "no copy of body bytes";
  EXPECT_EQ(used, 4u);
}

TEST(RequestParser, ContentLengthLargeStreamsInPieces) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n", used).type,
            Type::HeadComplete);
  EXPECT_EQ(p.contentLength(), 100000u);
  std::string chunk(4096, 'x');
  size_t total = 0;
  while (total < 100000) {
    ParseEvent ev = p.next(chunk, used);
    ASSERT_EQ(ev.type, Type::Body);
    total += ev.body.size();
    ASSERT_EQ(used, ev.body.size());
  }
  EXPECT_EQ(total, 100000u);
  EXPECT_EQ(p.next(chunk, used).type, Type::MessageComplete);
  EXPECT_EQ(used, 0u);
}

TEST(RequestParser, ContentLengthDuplicates) {
  const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\n";
  EXPECT_EQ(requestError(pre + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
            ParseError::None);
  EXPECT_EQ(requestError(pre + "Content-Length: 3, 3\r\n\r\nabc"), ParseError::None);
  EXPECT_EQ(requestError(pre + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
            ParseError::BadContentLength);
  EXPECT_EQ(requestError(pre + "Content-Length: 3, 4\r\n\r\nabcd"), ParseError::BadContentLength);
}

TEST(RequestParser, ContentLengthInvalid) {
  const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ";
  for (const char* v : {"abc", "-1", "+5", "5 5", "", "0x10", "5,", "1.0", ",5"}) {
    EXPECT_EQ(requestError(pre + v + "\r\n\r\n"), ParseError::BadContentLength) << v;
  }
  EXPECT_EQ(requestError(pre + "99999999999999999999\r\n\r\n"), ParseError::BadContentLength);
  EXPECT_EQ(requestError(pre + "18446744073709551616\r\n\r\n"), ParseError::BadContentLength);
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(pre + "18446744073709551615\r\n\r\n", used).type, Type::HeadComplete);
  EXPECT_EQ(p.contentLength(), 18446744073709551615ull);
}

// ---- chunked ------------------------------------------------------------------------

const char kChunkedPost[] =
    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n"
    "6;name=value;quoted=\"a b\"\r\n world\r\n"
    "A \t;ext\r\n0123456789\r\n"
    "0\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n";

TEST(RequestParser, ChunkedBody) {
  Outcome r = feedWhole(kChunkedPost);
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].body, "hello world0123456789");
  EXPECT_EQ(r.messages[0].framing, BodyFraming::Chunked);
  EXPECT_TRUE(r.leftover.empty());
}

TEST(RequestParser, ChunkedNoTrailersUpperHex) {
  Outcome r = feedWhole(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).body.size(), 31u);
}

TEST(RequestParser, ChunkedBodyViewsPointIntoInput) {
  const std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  std::string_view rest = std::string_view(in).substr(used);
  ParseEvent ev = p.next(rest, used);
  ASSERT_EQ(ev.type, Type::Body);
  EXPECT_EQ(ev.body, "abc");
  EXPECT_EQ(ev.body.data(), rest.data() + 3) << "view into the caller's input, after '3\\r\\n'";
  rest.remove_prefix(used);
  EXPECT_EQ(p.next(rest, used).type, Type::MessageComplete);
  EXPECT_EQ(used, rest.size());
}

TEST(RequestParser, ChunkedErrors) {
  const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  const char* bad[] = {
      "zz\r\n",                    // not hex
      "\r\n",                      // empty size
      "5\nhello\r\n0\r\n\r\n",     // bare LF
      "5\r\nhelloXX0\r\n\r\n",     // missing CRLF after data
      "5\r\nhello\rX",             // CR not followed by LF
      "5 \r\nhello\r\n0\r\n\r\n",  // whitespace tail without extension
      "5;a\x01\r\nhello\r\n",      // CTL in extension
      "10000000000000000\r\n",     // 2^64: overflows
      "-1\r\n",                    // sign
      "0x5\r\nhello\r\n",          // prefix
      "0\r\nbad trailer\r\n\r\n",  // trailer without colon
      "0\r\nX : y\r\n\r\n",        // whitespace before colon in trailer
      "0\r\n folded\r\n\r\n",      // obs-fold in trailers
  };
  for (const char* b : bad) {
    EXPECT_EQ(requestError(pre + b), ParseError::BadChunk) << b;
  }
  EXPECT_EQ(requestError(pre + "5;" + std::string(5000, 'e') + "\r\n"), ParseError::BadChunk)
      << "extension line bound";
  // Leading zeros are just zeros.
  EXPECT_EQ(requestError(pre + "00000000000000000005\r\nhello\r\n0\r\n\r\n"), ParseError::None);
}

TEST(RequestParser, ChunkedLongExtensionSplitStillBounded) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", used).type,
            Type::HeadComplete);
  ParseEvent ev = p.next("5;", used);
  EXPECT_EQ(ev.type, Type::NeedMore);
  std::string ext(1000, 'e');
  int needs = 0;
  for (int i = 0; i < 10 && ev.type == Type::NeedMore; ++i) {
    ev = p.next(ext, used);
    needs += ev.type == Type::NeedMore;
  }
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::BadChunk);
  EXPECT_GE(needs, 3);
}

TEST(RequestParser, TrailerLimits) {
  const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  Limits limits;
  limits.max_header_count = 3;
  std::string three, four;
  for (int i = 0; i < 3; ++i) three += "T" + std::to_string(i) + ": v\r\n";
  four = three + "T9: v\r\n";
  EXPECT_EQ(requestError(pre + three + "\r\n", limits), ParseError::None);
  EXPECT_EQ(requestError(pre + four + "\r\n", limits), ParseError::BadChunk);
}

// ---- smuggling defences -----------------------------------------------------------

TEST(RequestParser, SmugglingVectorsRejected) {
  const std::string pre = "POST / HTTP/1.1\r\nHost: a\r\n";
  const char* bad[] = {
      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      "Transfer-Encoding: chunked, chunked\r\n\r\n",
      "Transfer-Encoding: gzip, chunked\r\n\r\n",
      "Transfer-Encoding: chunked, gzip\r\n\r\n",
      "Transfer-Encoding: identity\r\n\r\n",
      "Transfer-Encoding: xchunked\r\n\r\n",
      "Transfer-Encoding: \r\n\r\n",
      "Transfer-Encoding : chunked\r\n\r\n",
      "Transfer-Encoding\t: chunked\r\n\r\n",
      "X: y\r\n Transfer-Encoding: chunked\r\n\r\n",
      "Transfer-Encoding:\x0b"
      "chunked\r\n\r\n",
      "Transfer-Encoding: chunked\r\r\n\r\n",
  };
  for (const char* b : bad) {
    EXPECT_EQ(requestError(pre + b), ParseError::BadRequest) << b;
  }
  EXPECT_EQ(requestError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            ParseError::BadRequest)
      << "HTTP/1.0 with Transfer-Encoding has faulty framing";
  // Listed with empty elements and odd case it is still exactly "chunked".
  EXPECT_EQ(requestError(pre + "Transfer-Encoding: , CHUNKED\r\n\r\n0\r\n\r\n"), ParseError::None);
}

TEST(RequestParser, HostRules) {
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\n\r\n"), ParseError::BadRequest) << "missing Host";
  EXPECT_EQ(requestError("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), ParseError::BadRequest);
  EXPECT_EQ(requestError("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), ParseError::BadRequest);
}

// ---- syntax -------------------------------------------------------------------------

TEST(RequestParser, MalformedHeadsRejected) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n",   // obs-fold
      "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n",  // obs-fold, tab
      "GET / HTTP/1.1\r\n Host: a\r\n\r\n",                // first field folded
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                // space before colon
      "GET / HTTP/1.1\r\nHost: a\r\nBad Name: y\r\n\r\n",  // space in name
      "GET / HTTP/1.1\r\nHost: a\r\nBad@Name: y\r\n\r\n",  // non-token
      "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n",          // empty name
      "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",      // no colon
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",      // bare CR in value
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n",     // DEL
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n",    // CTL
      "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",           // bare LF
      "GET / HTTP/1.1\nHost: a\r\n\r\n",                   // bare LF after request line
      "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n",           // CR alone on a line
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",                // double space
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",                // trailing space
      "G(ET / HTTP/1.1\r\nHost: a\r\n\r\n",                // bad method token
      " GET / HTTP/1.1\r\nHost: a\r\n\r\n",                // leading space
      "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n",             // tab in target
      "GET HTTP/1.1\r\nHost: a\r\n\r\n",                   // no target
      "GET / http/1.1\r\nHost: a\r\n\r\n",                 // version case
      "GET / HTTP/1\r\nHost: a\r\n\r\n",                   // short version
      "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",                // junk after version
      "GET /\r\nHost: a\r\n\r\n",                          // HTTP/0.9 style
  };
  for (const char* b : bad) {
    EXPECT_EQ(requestError(b), ParseError::BadRequest) << b;
  }
  std::string nul = "GET / HTTP/1.1\r\nHost: a\r\nX: a";
  nul.push_back('\0');
  nul += "b\r\n\r\n";
  EXPECT_EQ(requestError(nul), ParseError::BadRequest) << "NUL in value";
  std::string nul_name = "GET / HTTP/1.1\r\nHost: a\r\nX";
  nul_name.push_back('\0');
  nul_name += ": b\r\n\r\n";
  EXPECT_EQ(requestError(nul_name), ParseError::BadRequest) << "NUL in name";
}

TEST(RequestParser, UnsupportedVersion) {
  EXPECT_EQ(requestError("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), ParseError::UnsupportedVersion);
  EXPECT_EQ(requestError("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), ParseError::UnsupportedVersion);
}

TEST(RequestParser, ObsTextAllowedInValuesAndTarget) {
  Outcome r = feedWhole("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).target, "/caf\xc3\xa9");
}

TEST(RequestParser, ErrorsAreSticky) {
  RequestParser p;
  size_t used = 0;
  ParseEvent ev = p.next("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", used);
  ASSERT_EQ(ev.type, Type::Error);
  ev = p.next("GET / HTTP/1.1\r\nHost: a\r\n\r\n", used);
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::BadRequest);
  EXPECT_EQ(used, 0u);
  p.reset();
  EXPECT_EQ(p.next("GET / HTTP/1.1\r\nHost: a\r\n\r\n", used).type, Type::HeadComplete);
}

// ---- limits ---------------------------------------------------------------------------

TEST(RequestParser, RequestLineLimit) {
  Limits limits;
  limits.max_request_line = 64;
  const std::string ok_line = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";  // 64 bytes
  ASSERT_EQ(ok_line.size(), 64u);
  EXPECT_EQ(requestError(ok_line + "\r\nHost: a\r\n\r\n", limits), ParseError::None);
  const std::string long_line = "GET /" + std::string(64 - 13, 'a') + " HTTP/1.1";
  EXPECT_EQ(requestError(long_line + "\r\nHost: a\r\n\r\n", limits), ParseError::UriTooLong);
  // Detected before the line ends, without waiting for the whole head.
  RequestParser p(limits);
  size_t used = 0;
  ParseEvent ev = p.next("GET /" + std::string(40, 'a'), used);
  EXPECT_EQ(ev.type, Type::NeedMore);
  ev = p.next(std::string(40, 'a'), used);
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::UriTooLong);
}

TEST(RequestParser, HeaderBytesLimit) {
  Limits limits;
  limits.max_header_bytes = 200;
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
  const std::string ok = head + std::string(200 - head.size() - 4, 'v') + "\r\n\r\n";
  ASSERT_EQ(ok.size(), 200u);
  EXPECT_EQ(requestError(ok, limits), ParseError::None);
  const std::string big = head + std::string(200 - head.size() - 3, 'v') + "\r\n\r\n";
  EXPECT_EQ(requestError(big, limits), ParseError::HeadersTooLarge);
  // Fed in pieces without a terminator: stops once the limit is passed.
  RequestParser p(limits);
  size_t used = 0;
  ParseEvent ev;
  std::string piece = "GET / HTTP/1.1\r\n";
  ev = p.next(piece, used);
  ASSERT_EQ(ev.type, Type::NeedMore);
  int rounds = 0;
  while (ev.type == Type::NeedMore && rounds < 100) {
    ev = p.next("X-A: 0123456789\r\n", used);
    ++rounds;
  }
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::HeadersTooLarge);
  EXPECT_LE(rounds, 12);
}

TEST(RequestParser, HeadTooLargeStillNamesItsMethod) {
  // The proxy must know a refused request was HEAD: its 431 then has no body.
  Limits limits;
  limits.max_header_bytes = 100;
  const std::string big = "HEAD /x HTTP/1.1\r\nHost: a\r\nX: " + std::string(120, 'v');
  for (const std::string& input : {big + "\r\n\r\n", big}) {  // whole, and cut off
    RequestParser p(limits);
    size_t used = 0;
    ParseEvent ev = p.next(input, used);
    EXPECT_EQ(ev.error, ParseError::HeadersTooLarge);
    EXPECT_EQ(p.head().method, "HEAD");
  }
  // Fed in pieces: the start line sits in the parser's own buffer by then.
  RequestParser q(limits);
  size_t used = 0;
  ParseEvent ev = q.next("HEAD /x HTTP/1.1\r\n", used);
  ASSERT_EQ(ev.type, Type::NeedMore);
  while (ev.type == Type::NeedMore) ev = q.next("X-A: 0123456789\r\n", used);
  EXPECT_EQ(ev.error, ParseError::HeadersTooLarge);
  EXPECT_EQ(q.head().method, "HEAD");
  // A request line too long, or a bare LF: the method still comes first.
  Limits short_line;
  short_line.max_request_line = 50;
  RequestParser r(short_line);
  ev = r.next("HEAD /" + std::string(200, 'u'), used);
  EXPECT_EQ(ev.error, ParseError::UriTooLong);
  EXPECT_EQ(r.head().method, "HEAD");
  RequestParser lf;
  ev = lf.next("HEAD / HTTP/1.1\nHost: a\r\n\r\n", used);
  EXPECT_EQ(ev.error, ParseError::BadRequest);
  EXPECT_EQ(lf.head().method, "HEAD");
  // Without the method token's SP there is no method to name.
  RequestParser none(limits);
  ev = none.next(std::string(200, 'H'), used);
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(none.head().method, "");
  // A head cut short by a timeout: named from what arrived.
  RequestParser slow;
  ASSERT_EQ(slow.next("\r\nHEAD / HTTP/1.1\r\nHost:", used).type, Type::NeedMore);
  slow.nameMethodSoFar();
  EXPECT_EQ(slow.head().method, "HEAD");
  RequestParser early;
  ASSERT_EQ(early.next("HEA", used).type, Type::NeedMore);
  early.nameMethodSoFar();
  EXPECT_EQ(early.head().method, "");
}

TEST(RequestParser, HeaderCountLimit) {
  Limits limits;
  limits.max_header_count = 5;
  std::string five = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 4; ++i) five += "X" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(requestError(five + "\r\n", limits), ParseError::None);
  EXPECT_EQ(requestError(five + "Y: v\r\n\r\n", limits), ParseError::HeadersTooLarge);
}

TEST(RequestParser, CrlfFloodBounded) {
  Limits limits;
  limits.max_header_bytes = 1000;
  RequestParser p(limits);
  size_t used = 0;
  ParseEvent ev;
  int rounds = 0;
  do {
    ev = p.next(
        std::string(100, '\r').replace(0, 100, std::string(50, '\r') + std::string(50, '\n')),
        used);
    ++rounds;
  } while (ev.type == Type::NeedMore && rounds < 100);
  EXPECT_EQ(ev.type, Type::Error);
  RequestParser q(limits);
  rounds = 0;
  std::string crlfs;
  for (int i = 0; i < 50; ++i) crlfs += "\r\n";
  do {
    ev = q.next(crlfs, used);
    ++rounds;
  } while (ev.type == Type::NeedMore && rounds < 100);
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::HeadersTooLarge);
}

// ---- pipelining --------------------------------------------------------------------

const char kPipeline[] =
    "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    "POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
    "GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

TEST(RequestParser, Pipelined) {
  Outcome r = feedWhole(kPipeline);
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].target, "/1");
  EXPECT_EQ(r.messages[1].target, "/2");
  EXPECT_EQ(r.messages[1].body, "abc");
  EXPECT_EQ(r.messages[2].target, "/3");
  EXPECT_EQ(r.messages[2].body, "xy");
  EXPECT_EQ(r.messages[3].target, "/4");
  EXPECT_FALSE(r.messages[3].keep_alive);
  EXPECT_TRUE(r.messages[2].keep_alive);
}

TEST(RequestParser, MessageCompleteLeavesNextRequestUntouched) {
  const std::string in = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHo";
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  EXPECT_EQ(in.substr(used), "GET /2 HTTP/1.1\r\nHo");
  size_t used2 = 0;
  ASSERT_EQ(p.next(std::string_view(in).substr(used), used2).type, Type::MessageComplete);
  EXPECT_EQ(used2, 0u);
  // The head of message 1 is still readable until the caller asks for more.
  EXPECT_EQ(p.head().target, "/1");
  EXPECT_EQ(p.next("", used2).type, Type::NeedMore);
  EXPECT_EQ(p.head().target, "/1");
  ASSERT_EQ(p.next(std::string_view(in).substr(used), used2).type, Type::NeedMore);
  ASSERT_EQ(p.next("st: b\r\n\r\n", used2).type, Type::HeadComplete);
  EXPECT_EQ(p.head().target, "/2");
  EXPECT_EQ(p.head().headers.get("host"), "b");
}

TEST(RequestParser, HeadInPiecesKeepsPipelinedBytes) {
  // Head split across calls; the piece that completes it also carries the
  // next request, which must not be swallowed into the head buffer.
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("GET /1 HTTP/1.1\r\nHost: a\r", used).type, Type::NeedMore);
  const std::string second = "\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_EQ(p.next(second, used).type, Type::HeadComplete);
  EXPECT_EQ(used, 3u);
  EXPECT_EQ(p.head().raw, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
}

// ---- split invariance ------------------------------------------------------------

TEST(RequestParser, SplitAtEveryOffsetSimple) {
  expectSplitInvariant(
      "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Y:  z  \r\n\r\n");
}

TEST(RequestParser, SplitAtEveryOffsetContentLength) {
  expectSplitInvariant("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789");
}

TEST(RequestParser, SplitAtEveryOffsetChunked) { expectSplitInvariant(kChunkedPost); }

TEST(RequestParser, SplitAtEveryOffsetPipeline) {
  expectSplitInvariant(std::string("\r\n") + kPipeline);
}

TEST(RequestParser, SplitAtEveryOffsetErrorsToo) {
  expectSplitInvariant(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX");
  expectSplitInvariant("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n");
  expectSplitInvariant("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n");
}

// ---- finish (peer closed) --------------------------------------------------------

TEST(RequestParser, Finish) {
  {
    RequestParser p;
    EXPECT_EQ(p.finish().type, Type::NeedMore) << "clean close before any request";
  }
  {
    RequestParser p;
    size_t used = 0;
    p.next("GET / HTTP/1.1\r\nHo", used);
    ParseEvent ev = p.finish();
    EXPECT_EQ(ev.type, Type::Error);
    EXPECT_EQ(ev.error, ParseError::UnexpectedEof);
  }
  {
    RequestParser p;
    size_t used = 0;
    p.next("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", used);
    p.next("abc", used);
    EXPECT_EQ(p.finish().error, ParseError::UnexpectedEof);
  }
  {
    Outcome r = feedWhole("GET / HTTP/1.1\r\nHost: a\r\n\r\n", /*eof=*/true);
    EXPECT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(r.error, ParseError::None);
  }
}

// ---- responses ---------------------------------------------------------------------

Outcome responses(std::string_view s, std::string_view method = "GET", bool eof = false) {
  ResponseParser p;
  p.expect(method);
  return feed(p, {std::string(s)}, eof);
}

TEST(ResponseParser, ContentLength) {
  Outcome r = responses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello");
  ASSERT_EQ(r.error, ParseError::None);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].status, 200);
  EXPECT_EQ(r.messages[0].reason, "OK");
  EXPECT_EQ(r.messages[0].body, "hello");
  EXPECT_TRUE(r.messages[0].keep_alive);
}

// A repeated identical Content-Length passes on as one value (RFC 9110 §8.6).
TEST(Framing, RepeatedIdenticalContentLengthBecomesOne) {
  RequestParser rq;
  size_t used = 0;
  ASSERT_EQ(rq.next("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n"
                    "Content-Length: 2\r\n\r\nhi",
                    used)
                .type,
            Type::HeadComplete);
  ASSERT_EQ(rq.head().headers.fields().size(), 2u) << "one Content-Length field";
  EXPECT_EQ(rq.head().headers.get("content-length"), "2");
  Outcome r = responses("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages[0].body, "hello");
  ResponseParser rp;
  ASSERT_EQ(rp.next("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", used).type,
            Type::HeadComplete);
  EXPECT_EQ(rp.head().headers.get("content-length"), "5");
}

TEST(ResponseParser, StatusOutside100To599IsInvalid) {
  for (const char* line : {"HTTP/1.1 600 X", "HTTP/1.1 999 X", "HTTP/1.1 099 X"}) {
    Outcome r = responses(std::string(line) + "\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(r.error, ParseError::BadRequest) << line;
  }
  EXPECT_EQ(responses("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n").error, ParseError::None);
}

TEST(ResponseParser, Chunked) {
  Outcome r = responses(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).body, "Wikipedia");
  EXPECT_EQ(r.messages[0].framing, BodyFraming::Chunked);
}

TEST(ResponseParser, UntilClose) {
  ResponseParser p;
  p.expect("GET");
  Outcome r = feed(p, {"HTTP/1.1 200 OK\r\n\r\nsome ", "bytes"}, /*eof=*/false);
  EXPECT_TRUE(r.messages.empty());
  EXPECT_EQ(p.framing(), BodyFraming::UntilClose);
  EXPECT_FALSE(p.keepAlive());
  EXPECT_EQ(p.finish().type, Type::MessageComplete);

  Outcome full = responses("HTTP/1.1 200 OK\r\n\r\nsome bytes", "GET", /*eof=*/true);
  ASSERT_EQ(full.messages.size(), 1u);
  EXPECT_EQ(full.messages[0].body, "some bytes");
}

TEST(ResponseParser, NoBodyCases) {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    Outcome r =
        responses(std::string("HTTP/1.1 ") + status +
                  "\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    ASSERT_EQ(r.error, ParseError::None) << status;
    ASSERT_EQ(r.messages.size(), 2u) << status;
    EXPECT_EQ(r.messages[0].body, "");
    EXPECT_EQ(r.messages[1].status, 200);
  }
  Outcome head = responses("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "HEAD");
  ASSERT_EQ(head.messages.size(), 1u);
  EXPECT_EQ(head.messages[0].body, "");
  EXPECT_TRUE(head.messages[0].keep_alive);
  Outcome head_chunked = responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD");
  ASSERT_EQ(head_chunked.messages.size(), 1u);
  EXPECT_TRUE(head_chunked.leftover.empty());
}

// Envoy's require_strict_1xx_and_204_response_headers: before, a 204 with
// "Content-Length: 5" reached the client as it was.
// Feeds two responses to one parser and returns `flag` after each head: a
// per-message flag must not carry over to the next response.
template <typename Flag>
std::pair<bool, bool> flagPerMessage(const std::string& two, Flag flag) {
  ResponseParser p;
  size_t used = 0;
  std::string_view rest = two;
  EXPECT_EQ(p.next(rest, used).type, Type::HeadComplete);
  const bool first = flag(p);
  rest.remove_prefix(used);
  EXPECT_EQ(p.next(rest, used).type, Type::MessageComplete);
  rest.remove_prefix(used);
  EXPECT_EQ(p.next(rest, used).type, Type::HeadComplete);
  return {first, flag(p)};
}

TEST(ResponseParser, FramingFieldsOnA1xxOr204AreFlagged) {
  auto parse = [](const std::string& head, ResponseParser& p) {
    size_t used = 0;
    EXPECT_EQ(p.next(head + "\r\n\r\n", used).type, Type::HeadComplete) << head;
  };
  for (const char* head :
       {"HTTP/1.1 204 No Content\r\nContent-Length: 5",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked",
        "HTTP/1.1 100 Continue\r\nContent-Length: 1",
        "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 0"}) {
    ResponseParser p;
    parse(head, p);
    EXPECT_TRUE(p.framedNoContent()) << head;
    EXPECT_EQ(p.framing(), BodyFraming::None) << head;
  }
  ResponseParser zero;
  parse("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX: y", zero);
  EXPECT_FALSE(zero.framedNoContent());
  EXPECT_FALSE(zero.head().headers.has("content-length")) << "never sent on a 204";
  EXPECT_EQ(zero.head().headers.fields().size(), 1u);
  for (const char* head : {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5",
                           "HTTP/1.1 200 OK\r\nContent-Length: 5", "HTTP/1.1 204 No Content"}) {
    ResponseParser p;
    p.expect(std::string_view(head).find("200") != std::string_view::npos ? "HEAD" : "GET");
    parse(head, p);
    EXPECT_FALSE(p.framedNoContent()) << head;
    EXPECT_EQ(p.head().headers.has("content-length"),
              std::string_view(head).find("Length") != std::string_view::npos)
        << head << ": a 304's or HEAD's Content-Length is the representation's, kept";
  }
  // Per message: the next response on the connection starts clean.
  EXPECT_EQ(flagPerMessage("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                           [](const ResponseParser& p) { return p.framedNoContent(); }),
            std::make_pair(true, false));
}

// What a proxy re-chunking the body must not pass on as plain "chunked".
TEST(ResponseParser, ReportsTransferCodingsOtherThanChunked) {
  auto other = [](const std::string& te) {
    ResponseParser p;
    size_t used = 0;
    EXPECT_EQ(p.next("HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + "\r\n\r\n", used).type,
              Type::HeadComplete)
        << te;
    return p.otherTransferCoding();
  };
  EXPECT_FALSE(other("chunked"));
  EXPECT_FALSE(other("Chunked"));
  EXPECT_TRUE(other("gzip, chunked"));
  EXPECT_TRUE(other("gzip"));
  // and it is per message
  EXPECT_EQ(flagPerMessage("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                           [](const ResponseParser& p) { return p.otherTransferCoding(); }),
            std::make_pair(true, false));
}

// Found by test_chaos: a HEAD answered with "Content-Length: 5" and
// "Content-Length: 6" went to the client with both (a GET got a 502).
TEST(ResponseParser, NoBodyCasesStillRejectAnInvalidContentLength) {
  for (const char* cl : {"Content-Length: 5\r\nContent-Length: 6", "Content-Length: 5, 6",
                         "Content-Length: x", "Content-Length: -1"}) {
    const std::string head = std::string("HTTP/1.1 200 OK\r\n") + cl + "\r\n\r\n";
    EXPECT_EQ(responses(head, "HEAD").error, ParseError::BadContentLength) << cl;
    EXPECT_EQ(responses(std::string("HTTP/1.1 204 No Content\r\n") + cl + "\r\n\r\n").error,
              ParseError::BadContentLength)
        << cl;
    EXPECT_EQ(responses(std::string("HTTP/1.1 304 Not Modified\r\n") + cl + "\r\n\r\n").error,
              ParseError::BadContentLength)
        << cl;
  }
  // Repeated identical values stay allowed (RFC 9110 §8.6).
  Outcome same =
      responses("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "HEAD");
  EXPECT_EQ(same.error, ParseError::None);
  EXPECT_EQ(same.messages.size(), 1u);
}

TEST(ResponseParser, InformationalThenFinal) {
  const std::string in =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  ResponseParser p;
  p.expect("HEAD");  // must survive the 1xx responses
  size_t used = 0;
  std::string_view rest = in;
  ASSERT_EQ(p.next(rest, used).type, Type::HeadComplete);
  EXPECT_EQ(p.head().status, 100);
  EXPECT_TRUE(p.isInformational());
  rest.remove_prefix(used);
  ASSERT_EQ(p.next(rest, used).type, Type::MessageComplete);
  rest.remove_prefix(used);
  ASSERT_EQ(p.next(rest, used).type, Type::HeadComplete);
  EXPECT_EQ(p.head().status, 103);
  rest.remove_prefix(used);
  ASSERT_EQ(p.next(rest, used).type, Type::MessageComplete);
  rest.remove_prefix(used);
  ASSERT_EQ(p.next(rest, used).type, Type::HeadComplete);
  EXPECT_EQ(p.head().status, 201);
  EXPECT_FALSE(p.isInformational());
  EXPECT_EQ(p.framing(), BodyFraming::None) << "expect(HEAD) kept across 1xx";

  Outcome r = responses(in);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[2].body, "ok");
}

TEST(ResponseParser, SwitchingProtocolsLeavesTunnelBytes) {
  const std::string in = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05";
  ResponseParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(in, used).type, Type::HeadComplete);
  size_t used2 = 0;
  ASSERT_EQ(p.next(std::string_view(in).substr(used), used2).type, Type::MessageComplete);
  EXPECT_EQ(in.substr(used + used2), "\x81\x05");
}

TEST(ResponseParser, ConnectSuccessHasNoBody) {
  ResponseParser p;
  p.expect("CONNECT");
  size_t used = 0;
  ASSERT_EQ(p.next("HTTP/1.1 200 Connection Established\r\n\r\n", used).type, Type::HeadComplete);
  EXPECT_EQ(p.framing(), BodyFraming::None);
  EXPECT_FALSE(p.keepAlive());
}

TEST(ResponseParser, TransferEncodingOverridesContentLength) {
  ResponseParser p;
  size_t used = 0;
  ASSERT_EQ(
      p.next("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n", used)
          .type,
      Type::HeadComplete);
  EXPECT_EQ(p.framing(), BodyFraming::Chunked);
  EXPECT_FALSE(p.head().headers.has("content-length")) << "never forward both";
}

TEST(ResponseParser, NonChunkedTransferEncodingReadsUntilClose) {
  ResponseParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", used).type,
            Type::HeadComplete);
  EXPECT_EQ(p.framing(), BodyFraming::UntilClose);
  EXPECT_EQ(responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").error,
            ParseError::BadRequest);
}

TEST(ResponseParser, KeepAlive) {
  auto ka = [](std::string_view in) {
    ResponseParser p;
    size_t used = 0;
    EXPECT_EQ(p.next(in, used).type, Type::HeadComplete) << in;
    return p.keepAlive();
  };
  EXPECT_TRUE(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(ka("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_TRUE(ka("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_FALSE(ka("HTTP/1.1 200 OK\r\n\r\n")) << "until-close body";
}

TEST(ResponseParser, StatusLineVariants) {
  Outcome r = responses("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).reason, "");
  Outcome r2 = responses("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r2.error, ParseError::None);
  EXPECT_EQ(r2.messages.at(0).status, 404);
  for (const char* bad :
       {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n"}) {
    EXPECT_EQ(responses(bad).error, ParseError::BadRequest) << bad;
  }
  EXPECT_EQ(responses("HTTP/2.0 200 OK\r\n\r\n").error, ParseError::UnsupportedVersion);
  EXPECT_EQ(responses("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").error,
            ParseError::BadContentLength);
}

TEST(ResponseParser, StatusLineLimit) {
  Limits limits;
  limits.max_request_line = 32;
  ResponseParser p(limits);
  size_t used = 0;
  ParseEvent ev = p.next("HTTP/1.1 200 " + std::string(40, 'r') + "\r\n\r\n", used);
  EXPECT_EQ(ev.type, Type::Error);
  EXPECT_EQ(ev.error, ParseError::HeadersTooLarge);
}

TEST(ResponseParser, SplitAtEveryOffset) {
  expectSplitInvariant<ResponseParser>(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n"
      "3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz");
  expectSplitInvariant<ResponseParser>("HTTP/1.0 200 OK\r\nServer: s\r\n\r\nuntil close",
                                       /*eof=*/true);
}

TEST(ResponseParser, FinishMidBody) {
  ResponseParser p;
  size_t used = 0;
  p.next("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", used);
  p.next("abc", used);
  EXPECT_EQ(p.finish().error, ParseError::UnexpectedEof);
  ResponseParser q;
  q.next("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", used);
  EXPECT_EQ(q.finish().error, ParseError::UnexpectedEof);
}

// ---- Headers ---------------------------------------------------------------------------

TEST(Headers, AddSetRemoveCount) {
  Headers h;
  h.add("X-A", "1");
  h.add("x-a", "2");
  h.add("Other", "o");
  EXPECT_EQ(h.count("X-a"), 2u);
  EXPECT_EQ(h.get("x-A"), "1");
  h.set("X-A", "3");
  EXPECT_EQ(h.count("x-a"), 1u);
  EXPECT_EQ(h.get("x-a"), "3");
  EXPECT_EQ(h.remove("OTHER"), 1u);
  EXPECT_FALSE(h.has("other"));
  EXPECT_EQ(h.get("missing"), "");
  h.clear();
  EXPECT_TRUE(h.fields().empty());
}

// Every name the codec decides by is classified, in any case, and only whole
// names are: a near miss of the same length stays Other.
TEST(Headers, ClassifiesTheFieldsTheCodecDecidesBy) {
  const std::pair<const char*, FieldId> known[] = {
      {"TE", FieldId::Te},
      {"host", FieldId::Host},
      {"Expect", FieldId::Expect},
      {"UPGRADE", FieldId::Upgrade},
      {"Trailer", FieldId::Trailer},
      {"Connection", FieldId::Connection},
      {"Keep-Alive", FieldId::KeepAlive},
      {"content-LENGTH", FieldId::ContentLength},
      {"X-Forwarded-For", FieldId::XForwardedFor},
      {"Proxy-Connection", FieldId::ProxyConnection},
      {"Transfer-Encoding", FieldId::TransferEncoding},
      {"x-forwarded-proto", FieldId::XForwardedProto},
      {"HTTP2-Settings", FieldId::Http2Settings},
  };
  for (const auto& [name, id] : known) EXPECT_EQ(classifyField(name), id) << name;
  for (const char* other : {"", "t", "tf", "hosts", "hist", "Content-Lengtx", "connectiom",
                            "keep_alive", "x-forwarded-prot", "Content-Type", "http2-settingz",
                            // 0x0D is '-' without the case bit: '-' must match as is.
                            "content\rlength", "Keep\rAlive", "HOST\x7f"}) {
    EXPECT_EQ(classifyField(other), FieldId::Other) << other;
  }
}

// Parsed, added, set and copied fields carry their id, and lookups by a known
// name (which go by id) agree with lookups by an unknown one (by name).
TEST(Headers, ParsedAddedAndCopiedFieldsCarryTheirId) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("GET / HTTP/1.1\r\nHOST: a.example\r\nX-Other: 1\r\n"
                   "Content-Length: 0\r\n\r\n",
                   used)
                .type,
            Type::HeadComplete);
  Headers& h = p.head().headers;
  ASSERT_EQ(h.fields().size(), 3u);
  EXPECT_EQ(h.fields()[0].id, FieldId::Host);
  EXPECT_EQ(h.fields()[1].id, FieldId::Other);
  h.add("x-FORWARDED-for", "10.0.0.1");
  EXPECT_EQ(h.fields().back().id, FieldId::XForwardedFor);
  EXPECT_EQ(h.get("X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(h.get(FieldId::XForwardedFor), "10.0.0.1");
  EXPECT_EQ(h.get("host"), "a.example");
  EXPECT_TRUE(h.has("x-other"));
  h.set("Host", "b.example");
  EXPECT_EQ(h.count("HOST"), 1u);
  EXPECT_EQ(h.get(FieldId::Host), "b.example");
  Headers copy = h;
  EXPECT_EQ(copy.get(FieldId::Host), "b.example");
  EXPECT_EQ(copy.remove(FieldId::XForwardedFor), 1u);
  EXPECT_FALSE(copy.has("x-forwarded-for"));
  EXPECT_EQ(copy.remove("x-other"), 1u);
  EXPECT_EQ(copy.fields().size(), 2u);
}

TEST(Headers, SetWithViewOfItself) {
  Headers h;
  h.add("A", "value-that-is-long-enough-to-allocate");
  std::string_view v = h.get("a");
  h.set("B", v);
  h.set("A", h.get("b"));
  EXPECT_EQ(h.get("a"), "value-that-is-long-enough-to-allocate");
}

TEST(Headers, CopyIsSelfContained) {
  auto p = std::make_unique<RequestParser>();
  size_t used = 0;
  ASSERT_EQ(p->next("GET / HTTP/1.1\r\nHost: copy.example\r\nX-Long: abcdefghijklmnopqrstuvwxyz\r\n"
                    "\r\n",
                    used)
                .type,
            Type::HeadComplete);
  RequestHead copy = p->head();
  Headers assigned;
  assigned.add("old", "x");
  assigned = p->head().headers;
  p.reset();  // the source head and its raw bytes are gone
  EXPECT_EQ(copy.headers.get("host"), "copy.example");
  EXPECT_EQ(copy.headers.get("x-long"), "abcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(assigned.get("x-long"), "abcdefghijklmnopqrstuvwxyz");
  EXPECT_FALSE(assigned.has("old"));
  EXPECT_EQ(copy.host(), "copy.example");
}

TEST(Headers, MoveKeepsViewsValid) {
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next("GET / HTTP/1.1\r\nHost: move.example\r\n\r\n", used).type, Type::HeadComplete);
  p.head().headers.add("Added", "short");
  RequestHead moved = std::move(p.head());
  p.reset();
  EXPECT_EQ(moved.headers.get("host"), "move.example");
  EXPECT_EQ(moved.headers.get("added"), "short");
}

// ---- serialization -----------------------------------------------------------------

TEST(Serialize, RequestHeadRoundTrip) {
  Headers h;
  h.add("Host", "example.com");
  h.add("X-Forwarded-For", "10.0.0.1");
  std::string out = "prefix:";
  appendRequestHead(out, "POST", "/p?q=1", h);
  EXPECT_EQ(
      out, "prefix:POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
  RequestParser p;
  size_t used = 0;
  ASSERT_EQ(p.next(std::string_view(out).substr(7), used).type, Type::HeadComplete);
  EXPECT_EQ(p.head().headers.get("x-forwarded-for"), "10.0.0.1");
}

TEST(Serialize, ResponseHead) {
  Headers h;
  h.add("Content-Length", "0");
  std::string out;
  appendResponseHead(out, 503, "", h);
  EXPECT_EQ(out, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  out.clear();
  appendResponseHead(out, 200, "Fine", Headers{});
  EXPECT_EQ(out, "HTTP/1.1 200 Fine\r\n\r\n");
}

TEST(Serialize, Chunks) {
  std::string out;
  appendChunk(out, "");
  EXPECT_EQ(out, "") << "an empty chunk would terminate the body";
  appendChunk(out, std::string(26, 'z'));
  EXPECT_EQ(out, "1a\r\n" + std::string(26, 'z') + "\r\n");
  appendLastChunk(out);
  // What we write, we parse back.
  RequestParser p;
  Outcome r = feed(p, {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + out});
  ASSERT_EQ(r.error, ParseError::None);
  EXPECT_EQ(r.messages.at(0).body, std::string(26, 'z'));
}

TEST(Misc, ReasonPhraseAndToString) {
  EXPECT_STREQ(reasonPhrase(200), "OK");
  EXPECT_STREQ(reasonPhrase(404), "Not Found");
  EXPECT_STREQ(reasonPhrase(414), "URI Too Long");
  EXPECT_STREQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(reasonPhrase(599), "Unknown");
  EXPECT_STRNE(toString(ParseError::BadChunk), toString(ParseError::BadRequest));
  EXPECT_TRUE(iequals("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(iequals("abc", "abd"));
  EXPECT_FALSE(iequals("abc", "abcd"));
}

// iequals folds ASCII letters only (bytes of 0x80 and above, '@', '[' ...
// compare as they are): every pair of single bytes, then random strings of
// lengths 0-33, equal up to case or differing in one byte.
bool referenceIequals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  auto fold = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };
  for (size_t i = 0; i < a.size(); ++i) {
    if (fold(static_cast<unsigned char>(a[i])) != fold(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

TEST(Misc, IequalsMatchesByteByByteFoldForEveryBytePair) {
  for (int x = 0; x < 256; ++x) {
    for (int y = 0; y < 256; ++y) {
      std::string a(1, static_cast<char>(x)), b(1, static_cast<char>(y));
      ASSERT_EQ(iequals(a, b), referenceIequals(a, b)) << x << " " << y;
    }
  }
}

TEST(Misc, IequalsMatchesByteByByteFoldOnRandomStrings) {
  std::mt19937 rng(7);
  // Letters both ways, the bytes next to them ('@', '[', '`', '{'), a digit,
  // '-' and bytes with the top bit set.
  const std::string alphabet = "aAzZmM@[`{0-\x80\xc1\xe1\xff";
  for (size_t len = 0; len <= 33; ++len) {
    for (int round = 0; round < 300; ++round) {
      std::string a(len, ' ');
      for (auto& c : a) c = alphabet[rng() % alphabet.size()];
      std::string b = a;
      for (auto& c : b) {
        if (rng() % 2 && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
        if (rng() % 2 && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      }
      if (len > 0 && round % 3 == 0) b[rng() % len] = alphabet[rng() % alphabet.size()];
      ASSERT_EQ(iequals(a, b), referenceIequals(a, b)) << len << " '" << a << "' '" << b << "'";
    }
  }
}

// Added fields live in strings clear() keeps for the next message; what
// they hold must be exactly what was added, and what is kept stays bounded.
TEST(HeadersArena, ClearKeepsSpareStringsThatLaterAddsReuse) {
  Headers h;
  h.add("X-Forwarded-For", "192.0.2.1, 198.51.100.7");
  h.add("X-Forwarded-Proto", "https");
  std::string_view interned = h.intern("a value long enough to need the heap");
  EXPECT_EQ(interned, "a value long enough to need the heap");
  h.clear();
  EXPECT_TRUE(h.fields().empty());
  EXPECT_GT(h.retainedCapacity(), 0u);
  h.add("x-forwarded-for", "10.0.0.1");
  h.add("Via", "1.1 portico");
  ASSERT_EQ(h.fields().size(), 2u);
  EXPECT_EQ(h.get("X-Forwarded-For"), "10.0.0.1");
  EXPECT_EQ(h.get("via"), "1.1 portico");
  EXPECT_EQ(h.get("x-forwarded-proto"), "");
  // A copy owns its bytes (not the spare strings) and survives the source.
  Headers copy = h;
  h.clear();
  h.add("x-forwarded-for", "overwritten");
  EXPECT_EQ(copy.get("x-forwarded-for"), "10.0.0.1");
  EXPECT_EQ(copy.get("via"), "1.1 portico");
}

TEST(HeadersArena, SpareStringsStayBounded) {
  Headers h;
  const std::string big(1000, 'b');
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i) h.add("x-field-" + std::to_string(i), i % 2 ? big : "v");
    EXPECT_EQ(h.get("x-field-3"), big);
    h.clear();
    // At most 8 strings of at most 256 bytes each are kept.
    EXPECT_LE(h.retainedCapacity(), 8 * (sizeof(std::string) + 256));
  }
}

// ---- hop-by-hop ----------------------------------------------------------------------

std::vector<std::string> names(const Headers& h) {
  std::vector<std::string> out;
  for (const auto& f : h.fields()) out.emplace_back(f.name);
  return out;
}

TEST(HopByHop, RemovesStandardAndConnectionNamed) {
  Headers h;
  h.add("Host", "a");
  h.add("Connection", "keep-alive, X-Secret");
  h.add("connection", "x-other");
  h.add("Keep-Alive", "timeout=5");
  h.add("Proxy-Connection", "keep-alive");
  h.add("TE", "trailers");
  h.add("Trailer", "X-T");
  h.add("Transfer-Encoding", "chunked");
  h.add("Upgrade", "websocket");
  h.add("X-Secret", "s");
  h.add("X-Other", "o");
  h.add("Accept", "*/*");
  removeHopByHop(h, /*keep_upgrade=*/false);
  EXPECT_EQ(names(h), (std::vector<std::string>{"Host", "Accept"}));
}

TEST(HopByHop, Http2SettingsIsConnectionSpecific) {
  Headers h;
  h.add("Host", "a");
  h.add("Upgrade", "h2c");
  h.add("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA");  // even when Connection does not name it
  h.add("Connection", "Upgrade");
  removeHopByHop(h, /*keep_upgrade=*/false);
  EXPECT_EQ(names(h), (std::vector<std::string>{"Host"}));
}

TEST(HopByHop, NeverStripsHostOrContentLengthViaConnection) {
  Headers h;
  h.add("Host", "a");
  h.add("Content-Length", "5");
  h.add("Connection", "host, content-length, x-a");
  h.add("X-A", "1");
  removeHopByHop(h, false);
  EXPECT_EQ(names(h), (std::vector<std::string>{"Host", "Content-Length"}));
}

TEST(HopByHop, KeepUpgrade) {
  Headers h;
  h.add("Host", "a");
  h.add("Connection", "Upgrade, x-a");
  h.add("Upgrade", "websocket");
  h.add("X-A", "1");
  h.add("Sec-WebSocket-Key", "k");
  removeHopByHop(h, /*keep_upgrade=*/true);
  EXPECT_EQ(names(h),
            (std::vector<std::string>{"Host", "Upgrade", "Sec-WebSocket-Key", "Connection"}));
  EXPECT_EQ(h.get("connection"), "upgrade");
  Headers none;
  none.add("Connection", "close");
  removeHopByHop(none, true);
  EXPECT_TRUE(none.fields().empty()) << "no Upgrade header: no Connection: upgrade either";
}

TEST(HopByHop, ManyConnectionHeaders) {
  Headers h;
  for (int i = 0; i < 12; ++i) h.add("Connection", "x-" + std::to_string(i));
  for (int i = 0; i < 12; ++i) h.add("X-" + std::to_string(i), "v");
  h.add("X-Keep", "v");
  removeHopByHop(h, false);
  EXPECT_EQ(names(h), (std::vector<std::string>{"X-Keep"}));
}

}  // namespace
}  // namespace portico::http

namespace portico::http {
namespace {

// Randomized round trip: build pipelined messages with random fields and
// bodies (Content-Length or chunked with random chunk sizes), serialize them,
// feed them in random-sized pieces and check every message comes back intact.
TEST(RequestParser, RandomizedPipelinesRoundTrip) {
  std::mt19937 rng(12345);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  for (int round = 0; round < 200; ++round) {
    std::string wire;
    std::vector<std::pair<std::string, std::string>> expected;  // target, body
    const size_t n_messages = 1 + pick(5);
    for (size_t m = 0; m < n_messages; ++m) {
      const std::string target = "/r" + std::to_string(round) + "/m" + std::to_string(m);
      std::string body(pick(3) == 0 ? 0 : pick(300), '\0');
      for (char& c : body) c = static_cast<char>(rng());  // any byte, NUL and CRLF included
      Headers h;
      h.add("Host", "h" + std::to_string(m));
      for (size_t i = pick(6); i > 0; --i)
        h.add("X-F" + std::to_string(i), std::string(pick(40), 'v'));
      const bool chunked = pick(2) == 0;
      if (chunked) {
        h.add("Transfer-Encoding", "chunked");
      } else if (!body.empty() || pick(2) == 0) {
        h.add("Content-Length", std::to_string(body.size()));
      }
      appendRequestHead(wire, body.empty() && !chunked ? "GET" : "POST", target, h);
      if (chunked) {
        for (size_t off = 0; off < body.size();) {
          const size_t n = std::min(body.size() - off, 1 + pick(64));
          appendChunk(wire, std::string_view(body).substr(off, n));
          off += n;
        }
        appendLastChunk(wire);
      } else {
        wire += body;
      }
      expected.emplace_back(target, body);
    }
    std::vector<std::string> pieces;
    for (size_t off = 0; off < wire.size();) {
      const size_t n = std::min(wire.size() - off, 1 + pick(pick(2) == 0 ? 8 : 200));
      pieces.push_back(wire.substr(off, n));
      off += n;
    }
    RequestParser p;
    const Outcome got = feed(p, pieces);
    ASSERT_EQ(got.error, ParseError::None) << "round " << round;
    ASSERT_EQ(got.messages.size(), expected.size()) << "round " << round;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(got.messages[i].target, expected[i].first);
      EXPECT_EQ(got.messages[i].body, expected[i].second) << "round " << round << " message " << i;
      EXPECT_EQ(got.messages[i].headers.at(0).second, "h" + std::to_string(i));
    }
    EXPECT_TRUE(got.leftover.empty());
  }
}

}  // namespace
}  // namespace portico::http

namespace portico::http {
namespace {

// The value and target scanners work 8 bytes at a time; every offset and
// every kind of byte must still be judged individually.
TEST(RequestParser, ValueBytesJudgedAtEveryOffset) {
  const std::string base(40, 'v');
  for (size_t i = 0; i < base.size(); ++i) {
    for (unsigned char bad : {0x00, 0x01, 0x0b, 0x1f, 0x7f, 0x0d, 0x0a}) {
      std::string value = base;
      value[i] = static_cast<char>(bad);
      const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n";
      EXPECT_EQ(requestError(in), ParseError::BadRequest) << "byte " << int(bad) << " at " << i;
    }
    for (unsigned char ok : {0x09, 0x20, 0x80, 0xff, 0x7e, 0x21}) {
      std::string value = base;
      value[i] = static_cast<char>(ok);
      const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n";
      RequestParser p;
      size_t used = 0;
      ASSERT_EQ(p.next(in, used).type, Type::HeadComplete) << "byte " << int(ok) << " at " << i;
      std::string_view trimmed = value;  // OWS at either end is not part of the value
      while (trimmed.front() == ' ' || trimmed.front() == '\t') trimmed.remove_prefix(1);
      while (trimmed.back() == ' ' || trimmed.back() == '\t') trimmed.remove_suffix(1);
      EXPECT_EQ(p.head().headers.get("x"), trimmed) << "byte " << int(ok) << " at " << i;
    }
  }
}

TEST(RequestParser, TargetBytesJudgedAtEveryOffset) {
  const std::string base = "/" + std::string(39, 't');
  for (size_t i = 1; i < base.size(); ++i) {
    for (unsigned char bad : {0x00, 0x09, 0x1f, 0x20, 0x7f, 0x0d}) {
      std::string target = base;
      target[i] = static_cast<char>(bad);
      EXPECT_EQ(requestError("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"),
                ParseError::BadRequest)
          << "byte " << int(bad) << " at " << i;
    }
    // ('%' is judged with what follows it: see PathIsNormalized.)
    for (unsigned char ok : {0x21, 0x7e, 0x80, 0xff, 0x3f}) {
      std::string target = base;
      target[i] = static_cast<char>(ok);
      RequestParser p;
      size_t used = 0;
      ASSERT_EQ(p.next("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", used).type,
                Type::HeadComplete)
          << "byte " << int(ok) << " at " << i;
      EXPECT_EQ(p.head().target, target);
    }
  }
}

// ---- hostWithoutPort -----------------------------------------------------------

TEST(HostWithoutPort, Cases) {
  EXPECT_EQ(hostWithoutPort("example.com"), "example.com");
  EXPECT_EQ(hostWithoutPort("example.com:8080"), "example.com");
  EXPECT_EQ(hostWithoutPort("example.com:"), "example.com");
  EXPECT_EQ(hostWithoutPort("[::1]:80"), "[::1]");
  EXPECT_EQ(hostWithoutPort("[::1]"), "[::1]");
  EXPECT_EQ(hostWithoutPort("::1"), "::1") << "bare IPv6 literal has no port";
  EXPECT_EQ(hostWithoutPort("10.0.0.1:443"), "10.0.0.1");
  EXPECT_EQ(hostWithoutPort(""), "");
}

}  // namespace
}  // namespace portico::http
