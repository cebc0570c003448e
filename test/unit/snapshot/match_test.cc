#include "snapshot/match.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace portico::snapshot {
namespace {

// ---- helpers --------------------------------------------------------------------

VirtualHost vhost(std::string name, std::vector<std::string> domains) {
  VirtualHost vh;
  vh.name = std::move(name);
  vh.domains = std::move(domains);
  return vh;
}

std::shared_ptr<const re2::RE2> regex(const std::string& pattern) {
  auto re = std::make_shared<const re2::RE2>(pattern);
  EXPECT_TRUE(re->ok()) << pattern;
  return re;
}

Route route(std::string name, PathMatch::Type type, std::string value) {
  Route r;
  r.name = std::move(name);
  r.match.path.type = type;
  r.match.path.value = value;
  if (type == PathMatch::Type::RegularExpression) r.match.path.regex = regex(value);
  return r;
}

// A request for matching: headers keyed by lower-case name, first value only.
struct Request {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::multimap<std::string, std::string> headers;

  MatchInput input() const {
    MatchInput in;
    in.method = method;
    in.path = path;
    in.query = query;
    in.ctx = this;
    in.header = [](const void* ctx, std::string_view lower_name, bool& found) {
      const auto* self = static_cast<const Request*>(ctx);
      auto it = self->headers.find(std::string(lower_name));
      found = it != self->headers.end();
      return found ? std::string_view(it->second) : std::string_view();
    };
    return in;
  }
};

const Route* match(const VirtualHost& vh, const Request& req) {
  return selectRoute(vh, req.input());
}

std::string matchedName(const VirtualHost& vh, const Request& req) {
  const Route* r = match(vh, req);
  return r == nullptr ? "<none>" : r->name;
}

Request get(std::string path, std::string query = "") {
  Request r;
  r.path = std::move(path);
  r.query = std::move(query);
  return r;
}

// ---- selectVirtualHost ---------------------------------------------------------

Listener listenerWith(std::vector<VirtualHost> vhs) {
  Listener l;
  l.name = "0.0.0.0_8080";
  l.virtual_hosts = std::move(vhs);
  l.indexHosts();
  return l;
}

std::string vhostFor(const Listener& l, std::string_view host) {
  const VirtualHost* vh = selectVirtualHost(l, host);
  return vh == nullptr ? "<none>" : vh->name;
}

TEST(SelectVirtualHost, Precedence) {
  // Stored in an order that would give the wrong answer to first-match.
  const Listener l = listenerWith({
      vhost("any", {"*"}),
      vhost("wild-short", {"*.example.com"}),
      vhost("wild-long", {"*.api.example.com"}),
      vhost("exact", {"foo.api.example.com", "example.com"}),
  });
  EXPECT_EQ(vhostFor(l, "foo.api.example.com"), "exact");
  EXPECT_EQ(vhostFor(l, "bar.api.example.com"), "wild-long");
  EXPECT_EQ(vhostFor(l, "a.b.api.example.com"), "wild-long") << "wildcard spans labels";
  EXPECT_EQ(vhostFor(l, "api.example.com"), "wild-short")
      << "*.api.example.com does not match api.example.com itself";
  EXPECT_EQ(vhostFor(l, "www.example.com"), "wild-short");
  EXPECT_EQ(vhostFor(l, "example.com"), "exact");
  EXPECT_EQ(vhostFor(l, "other.org"), "any");
  EXPECT_EQ(vhostFor(l, ""), "any");
}

TEST(SelectVirtualHost, CaseInsensitiveAndTrailingDot) {
  const Listener l =
      listenerWith({vhost("exact", {"example.com"}), vhost("wild", {"*.example.org"})});
  EXPECT_EQ(vhostFor(l, "EXAMPLE.com"), "exact");
  EXPECT_EQ(vhostFor(l, "example.com."), "exact");
  EXPECT_EQ(vhostFor(l, "Www.Example.ORG"), "wild");
}

TEST(SelectVirtualHost, NoMatch) {
  const Listener l =
      listenerWith({vhost("exact", {"example.com"}), vhost("wild", {"*.example.com"})});
  EXPECT_EQ(vhostFor(l, "example.org"), "<none>");
  EXPECT_EQ(vhostFor(l, "notexample.com"), "<none>") << "suffix must start at a label";
  EXPECT_EQ(vhostFor(l, ".example.com"), "<none>") << "needs a non-empty label";
  EXPECT_EQ(vhostFor(listenerWith({}), "example.com"), "<none>");
}

// The old selection, a scan of every domain, kept here as the reference the
// index must agree with.
const VirtualHost* scanVirtualHosts(const Listener& listener, std::string_view host) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string h =
      lower(!host.empty() && host.back() == '.' ? host.substr(0, host.size() - 1) : host);
  const VirtualHost* wildcard = nullptr;
  size_t wildcard_len = 0;
  const VirtualHost* catch_all = nullptr;
  for (const VirtualHost& vh : listener.virtual_hosts) {
    for (const std::string& d : vh.domains) {
      if (d == "*") {
        if (catch_all == nullptr) catch_all = &vh;
      } else if (d.size() > 2 && d[0] == '*' && d[1] == '.') {
        const std::string suffix = d.substr(1);
        if (h.size() > suffix.size() && suffix.size() > wildcard_len &&
            h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) {
          wildcard = &vh;
          wildcard_len = suffix.size();
        }
      } else if (h == d) {
        return &vh;
      }
    }
  }
  return wildcard != nullptr ? wildcard : catch_all;
}

// Many listeners of random exact, wildcard and catch-all domains over a small
// alphabet of labels (so that names, suffixes and duplicates collide often),
// probed with random hosts in random case: the index picks what the scan did.
TEST(SelectVirtualHost, IndexAgreesWithAScanOfEveryDomain) {
  const char* labels[] = {"a", "b", "api", "example", "com", "x"};
  uint64_t seed = 42;
  auto next = [&](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  auto name = [&](size_t parts) {
    std::string s;
    for (size_t i = 0; i < parts; ++i) s += (i ? "." : "") + std::string(labels[next(6)]);
    return s;
  };
  size_t probes = 0, matched = 0;
  for (int round = 0; round < 200; ++round) {
    std::vector<VirtualHost> vhs;
    const size_t count = 1 + next(8);
    for (size_t i = 0; i < count; ++i) {
      std::vector<std::string> domains;
      for (size_t d = 0, n = 1 + next(3); d < n; ++d) {
        const uint64_t kind = next(10);
        domains.push_back(kind == 0  ? "*"
                          : kind < 5 ? "*." + name(1 + next(3))
                                     : name(1 + next(4)));
      }
      vhs.push_back(vhost("vh" + std::to_string(i), domains));
    }
    const Listener l = listenerWith(vhs);
    for (int p = 0; p < 30; ++p) {
      std::string host = next(8) == 0 ? "" : name(1 + next(4));
      if (next(5) == 0) host += ".";
      for (char& c : host)
        if (next(2)) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const VirtualHost* want = scanVirtualHosts(l, host);
      EXPECT_EQ(selectVirtualHost(l, host), want) << "host '" << host << "' round " << round;
      ++probes;
      matched += want != nullptr;
    }
  }
  EXPECT_GT(matched, probes / 4);  // the probes did hit virtual hosts
}

// Host hashing and equality ignore the case of ASCII letters only, at every
// length and byte position (they work eight bytes at a time).
TEST(SelectVirtualHost, HostHashAndEqualityFoldAsciiLettersOnly) {
  const HostHash hash;
  const HostEqual equal;
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const char folded = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : ch;
    for (size_t len : {1u, 7u, 8u, 9u, 17u}) {
      for (size_t at = 0; at < len; at += 3) {
        std::string a(len, 'x'), b(len, 'x');
        a[at] = ch;
        b[at] = folded;
        EXPECT_TRUE(equal(a, b)) << c << " len " << len << " at " << at;
        EXPECT_EQ(hash(a), hash(b)) << c << " len " << len << " at " << at;
        if (folded != 'x') {
          std::string other(len, 'x');
          EXPECT_FALSE(equal(a, other)) << c << " len " << len << " at " << at;
        }
        // '[' is not '{', nor 0xC1 0xE1: only letters differ by the case bit.
        std::string case_bit = a;
        case_bit[at] = static_cast<char>(c | 0x20);
        if (case_bit[at] != ch && folded == ch) {
          EXPECT_FALSE(equal(a, case_bit)) << c << " len " << len << " at " << at;
        }
      }
    }
  }
  EXPECT_FALSE(equal("a.example.com", "a.example.co"));
  EXPECT_NE(hash("a"), hash(std::string_view("a\0", 2)));  // the length takes part
}

TEST(SelectVirtualHost, ThousandsOfHostnames) {
  std::vector<VirtualHost> vhs;
  for (int i = 0; i < 10000; ++i)
    vhs.push_back(vhost("r" + std::to_string(i), {"r" + std::to_string(i) + ".example.com"}));
  const Listener l = listenerWith(vhs);
  EXPECT_EQ(vhostFor(l, "R9999.Example.COM"), "r9999");
  EXPECT_EQ(vhostFor(l, "r0.example.com"), "r0");
  EXPECT_EQ(vhostFor(l, "r10000.example.com"), "<none>");
}

// The request path finds a backend's Cluster by the hash buildIndex() stored
// with the route's backend, computing none itself.
TEST(SnapshotIndex, RouteBackendsCarryTheHashTheirClusterIsFoundBy) {
  Snapshot snap;
  snap.clusters.resize(2);
  snap.clusters[0].name = "kube_default_a_80";
  snap.clusters[1].name = "kube_default_b_80";
  Route r;
  r.backends = {{"kube_default_b_80", 1}, {"kube_default_a_80", 1}};
  snap.listeners.push_back(listenerWith({vhost("vh", {"*"})}));
  snap.listeners[0].virtual_hosts[0].routes.push_back(r);
  snap.buildIndex();
  const auto& backends = snap.listeners[0].virtual_hosts[0].routes[0].backends;
  for (const auto& b : backends) {
    EXPECT_EQ(b.cluster_hash, nameHash(b.cluster));
    const Cluster* c = snap.findCluster(HashedName{b.cluster, b.cluster_hash});
    ASSERT_NE(c, nullptr) << b.cluster;
    EXPECT_EQ(c->name, b.cluster);
  }
  EXPECT_EQ(snap.findCluster(HashedName{"kube_default_c_80", nameHash("kube_default_c_80")}),
            nullptr);
}

TEST(SelectVirtualHost, WildcardDoesNotMatchBareDomain) {
  const Listener l = listenerWith({vhost("wild", {"*.example.com"})});
  EXPECT_EQ(vhostFor(l, "example.com"), "<none>");
  EXPECT_EQ(vhostFor(l, "a.example.com"), "wild");
}

// ---- selectRoute: path ----------------------------------------------------------

// ---- misdirected -----------------------------------------------------------------

// The listeners and every case of upstream's
// HTTPRouteHTTPSListenerDetectMisdirectedRequests: the SNI picks the HTTPS
// listener; a Host that picks another listener on the port is misdirected
// (421), a Host that picks none is left to routing (404).
TEST(Misdirected, ConformanceCases) {
  Listener l;
  l.tls_listener_hostnames = {"*", "second-example.org", "*.wildcard.org",
                              "fourth-example.wildcard.org"};
  struct Case {
    const char* sni;
    const char* host;
    bool misdirected;
  };
  const Case cases[] = {
      {"example.org", "example.org", false},
      {"example.org", "second-example.org", true},
      {"example.org", "unknown-example.org", false},
      {"second-example.org", "second-example.org", false},
      {"second-example.org", "example.org", true},
      {"second-example.org", "unknown-example.org", true},
      {"third-example.wildcard.org", "third-example.wildcard.org", false},
      {"third-example.wildcard.org", "fith-example.wildcard.org", false},
      {"third-example.wildcard.org", "fourth-example.wildcard.org", true},
      {"third-example.wildcard.org", "second-example.org", true},
      {"third-example.wildcard.org", "unknown-example.org", true},
      {"fourth-example.wildcard.org", "fourth-example.wildcard.org", false},
      {"fourth-example.wildcard.org", "fith-example.wildcard.org", true},
      {"unknown-example.org", "example.org", false},
      {"unknown-example.org", "unknown-example.org", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(misdirected(l, c.sni, c.host), c.misdirected) << c.sni << " / " << c.host;
  }
}

TEST(Misdirected, CaseTrailingDotWildcardDepthAndNoSni) {
  Listener l;
  l.tls_listener_hostnames = {"second-example.org", "*.example.com", "*.foo.example.com"};
  EXPECT_FALSE(misdirected(l, "second-example.org", "Second-Example.ORG."));
  // Longest wildcard suffix, as for the certificate.
  EXPECT_FALSE(misdirected(l, "a.foo.example.com", "b.foo.example.com"));
  EXPECT_TRUE(misdirected(l, "a.example.com", "b.foo.example.com"));
  // A Host no listener serves is not misdirected, whatever the SNI.
  EXPECT_FALSE(misdirected(l, "second-example.org", "other.org"));
  // No SNI (or one no listener takes) and no catch-all listener: the connection
  // got the first listener's certificate, so it is that listener's.
  EXPECT_FALSE(misdirected(l, "", "second-example.org"));
  EXPECT_FALSE(misdirected(l, "nobody.org", "Second-Example.org"));
  EXPECT_TRUE(misdirected(l, "", "a.example.com"));
  EXPECT_TRUE(misdirected(l, "second-example.org.", "a.example.com"));
  // No SNI selects the catch-all listener when there is one.
  l.tls_listener_hostnames.push_back("*");
  EXPECT_FALSE(misdirected(l, "", "anything.org"));
  EXPECT_TRUE(misdirected(l, "", "second-example.org"));
}

TEST(CertificateNameMatch, ExactThenOneLabelWildcard) {
  EXPECT_EQ(certificateNameMatch("x.a.test", "X.A.test"), 2);
  EXPECT_EQ(certificateNameMatch("x.a.test", "x.a.test."), 2);
  EXPECT_EQ(certificateNameMatch("*.a.test", "y.A.test"), 1);
  EXPECT_EQ(certificateNameMatch("*.a.test", "z.y.a.test"), 0);  // one label only
  EXPECT_EQ(certificateNameMatch("*.a.test", "a.test"), 0);
  EXPECT_EQ(certificateNameMatch("*.a.test", ".a.test"), 0);
  EXPECT_EQ(certificateNameMatch("*.a.test", ""), 0);
  EXPECT_EQ(certificateNameMatch("a.test", "b.test"), 0);
}

TEST(Misdirected, OneListenerOrNoneNever) {
  Listener l;
  EXPECT_FALSE(misdirected(l, "a.org", "b.org"));
  l.tls_listener_hostnames = {"a.org"};
  EXPECT_FALSE(misdirected(l, "a.org", "b.org"));
}

TEST(SelectRoute, PathPrefixSegmentBoundary) {
  VirtualHost vh;
  vh.routes.push_back(route("foo", PathMatch::Type::PathPrefix, "/foo"));
  EXPECT_EQ(matchedName(vh, get("/foo")), "foo");
  EXPECT_EQ(matchedName(vh, get("/foo/")), "foo");
  EXPECT_EQ(matchedName(vh, get("/foo/bar")), "foo");
  EXPECT_EQ(matchedName(vh, get("/foobar")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/fo")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/FOO")), "<none>") << "paths are case-sensitive";
}

TEST(SelectRoute, PathPrefixTrailingSlashIgnored) {
  VirtualHost vh;
  vh.routes.push_back(route("foo", PathMatch::Type::PathPrefix, "/foo/"));
  EXPECT_EQ(matchedName(vh, get("/foo")), "foo");
  EXPECT_EQ(matchedName(vh, get("/foo/x")), "foo");
  EXPECT_EQ(matchedName(vh, get("/foox")), "<none>");
}

TEST(SelectRoute, PathPrefixRootMatchesEverything) {
  VirtualHost vh;
  vh.routes.push_back(route("root", PathMatch::Type::PathPrefix, "/"));
  for (const char* p : {"/", "/a", "/a/b/c", "/?"}) EXPECT_EQ(matchedName(vh, get(p)), "root") << p;
}

TEST(SelectRoute, PathPrefixMultiSegment) {
  VirtualHost vh;
  vh.routes.push_back(route("ab", PathMatch::Type::PathPrefix, "/a/b"));
  EXPECT_EQ(matchedName(vh, get("/a/b/c")), "ab");
  EXPECT_EQ(matchedName(vh, get("/a/bc")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/a")), "<none>");
}

TEST(SelectRoute, Exact) {
  VirtualHost vh;
  vh.routes.push_back(route("exact", PathMatch::Type::Exact, "/login"));
  EXPECT_EQ(matchedName(vh, get("/login")), "exact");
  EXPECT_EQ(matchedName(vh, get("/login/")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/login/x")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/logi")), "<none>");
}

TEST(SelectRoute, RegexIsFullMatch) {
  VirtualHost vh;
  vh.routes.push_back(route("re", PathMatch::Type::RegularExpression, "/v[0-9]+/items"));
  EXPECT_EQ(matchedName(vh, get("/v2/items")), "re");
  EXPECT_EQ(matchedName(vh, get("/v22/items")), "re");
  EXPECT_EQ(matchedName(vh, get("/v2/items/x")), "<none>") << "no partial match";
  EXPECT_EQ(matchedName(vh, get("/api/v2/items")), "<none>") << "no partial match";
}

TEST(SelectRoute, RegexWithoutCompiledRegexNeverMatches) {
  VirtualHost vh;
  Route r = route("broken", PathMatch::Type::RegularExpression, ".*");
  r.match.path.regex.reset();
  vh.routes.push_back(r);
  EXPECT_EQ(matchedName(vh, get("/")), "<none>");
}

TEST(SelectRoute, FirstInStoredOrderWins) {
  VirtualHost vh;
  vh.routes.push_back(route("exact", PathMatch::Type::Exact, "/a"));
  vh.routes.push_back(route("prefix-long", PathMatch::Type::PathPrefix, "/a/b"));
  vh.routes.push_back(route("prefix", PathMatch::Type::PathPrefix, "/a"));
  vh.routes.push_back(route("root", PathMatch::Type::PathPrefix, "/"));
  EXPECT_EQ(matchedName(vh, get("/a")), "exact");
  EXPECT_EQ(matchedName(vh, get("/a/b/c")), "prefix-long");
  EXPECT_EQ(matchedName(vh, get("/a/c")), "prefix");
  EXPECT_EQ(matchedName(vh, get("/z")), "root");
  VirtualHost empty;
  EXPECT_EQ(matchedName(empty, get("/")), "<none>");
}

// ---- method, headers, query ---------------------------------------------------

TEST(SelectRoute, Method) {
  VirtualHost vh;
  Route post = route("post", PathMatch::Type::PathPrefix, "/");
  post.match.method = "POST";
  vh.routes.push_back(post);
  vh.routes.push_back(route("any", PathMatch::Type::PathPrefix, "/"));
  Request r = get("/x");
  EXPECT_EQ(matchedName(vh, r), "any");
  r.method = "POST";
  EXPECT_EQ(matchedName(vh, r), "post");
  r.method = "post";
  EXPECT_EQ(matchedName(vh, r), "any") << "methods are case-sensitive";
}

TEST(SelectRoute, HeaderExact) {
  VirtualHost vh;
  Route r = route("hdr", PathMatch::Type::PathPrefix, "/");
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-env", "Canary", nullptr});
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-team", "a", nullptr});
  vh.routes.push_back(r);
  Request req = get("/");
  EXPECT_EQ(matchedName(vh, req), "<none>") << "missing headers";
  req.headers.emplace("x-env", "Canary");
  EXPECT_EQ(matchedName(vh, req), "<none>") << "all header matches must pass";
  req.headers.emplace("x-team", "a");
  EXPECT_EQ(matchedName(vh, req), "hdr");
  req.headers.clear();
  req.headers.emplace("x-env", "canary");
  req.headers.emplace("x-team", "a");
  EXPECT_EQ(matchedName(vh, req), "<none>") << "values compare case-sensitively";
}

TEST(SelectRoute, HeaderEmptyValueIsPresent) {
  VirtualHost vh;
  Route r = route("hdr", PathMatch::Type::PathPrefix, "/");
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-empty", "", nullptr});
  vh.routes.push_back(r);
  Request req = get("/");
  EXPECT_EQ(matchedName(vh, req), "<none>");
  req.headers.emplace("x-empty", "");
  EXPECT_EQ(matchedName(vh, req), "hdr");
}

TEST(SelectRoute, HeaderRegexIsFullMatch) {
  VirtualHost vh;
  Route r = route("hdr", PathMatch::Type::PathPrefix, "/");
  r.match.headers.push_back(
      {HeaderMatch::Type::RegularExpression, "x-ver", "v[0-9]+", regex("v[0-9]+")});
  vh.routes.push_back(r);
  Request req = get("/");
  req.headers.emplace("x-ver", "v12");
  EXPECT_EQ(matchedName(vh, req), "hdr");
  req.headers.clear();
  req.headers.emplace("x-ver", "xv12");
  EXPECT_EQ(matchedName(vh, req), "<none>");
}

TEST(SelectRoute, DuplicateHeaderMatchEntriesOnlyFirstCounts) {
  VirtualHost vh;
  Route r = route("hdr", PathMatch::Type::PathPrefix, "/");
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-a", "1", nullptr});
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-a", "2", nullptr});
  vh.routes.push_back(r);
  Request req = get("/");
  req.headers.emplace("x-a", "1");
  EXPECT_EQ(matchedName(vh, req), "hdr");
}

TEST(SelectRoute, NoHeaderCallbackMeansNoHeaders) {
  VirtualHost vh;
  Route r = route("hdr", PathMatch::Type::PathPrefix, "/");
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-a", "1", nullptr});
  vh.routes.push_back(r);
  MatchInput in;
  in.method = "GET";
  in.path = "/";
  EXPECT_EQ(selectRoute(vh, in), nullptr);
}

TEST(SelectRoute, QueryParams) {
  VirtualHost vh;
  Route r = route("q", PathMatch::Type::PathPrefix, "/");
  r.match.query_params.push_back({QueryParamMatch::Type::Exact, "animal", "whale", nullptr});
  vh.routes.push_back(r);
  EXPECT_EQ(matchedName(vh, get("/", "animal=whale")), "q");
  EXPECT_EQ(matchedName(vh, get("/", "x=1&animal=whale&y")), "q");
  EXPECT_EQ(matchedName(vh, get("/", "animal=dolphin&animal=whale")), "<none>")
      << "first occurrence decides";
  EXPECT_EQ(matchedName(vh, get("/", "animal=whale&animal=dolphin")), "q");
  EXPECT_EQ(matchedName(vh, get("/", "Animal=whale")), "<none>") << "names are case-sensitive";
  EXPECT_EQ(matchedName(vh, get("/", "animal=Whale")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/", "myanimal=whale")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/", "")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/", "animal")), "<none>");
}

TEST(SelectRoute, QueryParamsAreNotDecoded) {
  VirtualHost vh;
  Route r = route("q", PathMatch::Type::PathPrefix, "/");
  r.match.query_params.push_back({QueryParamMatch::Type::Exact, "q", "a b", nullptr});
  vh.routes.push_back(r);
  EXPECT_EQ(matchedName(vh, get("/", "q=a%20b")), "<none>");
  EXPECT_EQ(matchedName(vh, get("/", "q=a+b")), "<none>");
  Route raw = route("raw", PathMatch::Type::PathPrefix, "/");
  raw.match.query_params.push_back({QueryParamMatch::Type::Exact, "q", "a%20b", nullptr});
  vh.routes.push_back(raw);
  EXPECT_EQ(matchedName(vh, get("/", "q=a%20b")), "raw");
}

TEST(SelectRoute, QueryParamEmptyValueAndRegex) {
  VirtualHost vh;
  Route empty = route("empty", PathMatch::Type::PathPrefix, "/");
  empty.match.query_params.push_back({QueryParamMatch::Type::Exact, "flag", "", nullptr});
  vh.routes.push_back(empty);
  Route re = route("re", PathMatch::Type::PathPrefix, "/");
  re.match.query_params.push_back(
      {QueryParamMatch::Type::RegularExpression, "id", "[0-9]+", regex("[0-9]+")});
  vh.routes.push_back(re);
  EXPECT_EQ(matchedName(vh, get("/", "flag")), "empty");
  EXPECT_EQ(matchedName(vh, get("/", "flag=")), "empty");
  EXPECT_EQ(matchedName(vh, get("/", "id=123")), "re");
  EXPECT_EQ(matchedName(vh, get("/", "id=12a")), "<none>");
}

TEST(SelectRoute, AllConditionsCombined) {
  VirtualHost vh;
  Route r = route("all", PathMatch::Type::PathPrefix, "/api");
  r.match.method = "PUT";
  r.match.headers.push_back({HeaderMatch::Type::Exact, "x-a", "1", nullptr});
  r.match.query_params.push_back({QueryParamMatch::Type::Exact, "v", "2", nullptr});
  vh.routes.push_back(r);
  Request req = get("/api/x", "v=2");
  req.method = "PUT";
  req.headers.emplace("x-a", "1");
  EXPECT_EQ(matchedName(vh, req), "all");
  Request wrong_path = req;
  wrong_path.path = "/apix";
  EXPECT_EQ(matchedName(vh, wrong_path), "<none>");
  Request wrong_query = req;
  wrong_query.query = "v=3";
  EXPECT_EQ(matchedName(vh, wrong_query), "<none>");
}

// ---- pickBackend ------------------------------------------------------------------

TEST(PickBackend, WeightedExactlyOverOnePeriod) {
  Route r;
  r.backends = {{"a", 1}, {"b", 3}, {"c", 0}, {"d", 6}};
  r.total_weight = 10;
  std::map<std::string, int> counts;
  for (uint64_t i = 0; i < 1000; ++i) {
    const WeightedCluster* w = pickBackend(r, i * 7919);
    ASSERT_NE(w, nullptr);
    ++counts[w->cluster];
  }
  EXPECT_EQ(counts["a"], 100);
  EXPECT_EQ(counts["b"], 300);
  EXPECT_EQ(counts.count("c"), 0u);
  EXPECT_EQ(counts["d"], 600);
}

TEST(PickBackend, LargeRandomValues) {
  Route r;
  r.backends = {{"a", 1}, {"b", 1}};
  r.total_weight = 2;
  EXPECT_EQ(pickBackend(r, ~uint64_t{0})->cluster, "b");
  EXPECT_EQ(pickBackend(r, ~uint64_t{0} - 1)->cluster, "a");
}

TEST(PickBackend, NoUsableBackend) {
  Route none;
  EXPECT_EQ(pickBackend(none, 5), nullptr);
  Route zero;
  zero.backends = {{"a", 0}};
  EXPECT_EQ(pickBackend(zero, 5), nullptr);
}

TEST(PickBackend, StaleTotalWeightCannotRunOffTheEnd) {
  Route r;
  r.backends = {{"a", 1}};
  r.total_weight = 100;  // inconsistent on purpose
  for (uint64_t i = 0; i < 200; ++i) EXPECT_NE(pickBackend(r, i), nullptr);
}

// ---- CORS origins ----------------------------------------------------------------

Cors corsFor(std::vector<std::string> origins) {
  Cors c;
  for (const auto& o : origins) c.allow_origins.push_back(normalizeCorsOrigin(o));
  return c;
}

TEST(CorsOrigin, NormalisedWithoutDefaultPortsAndInLowerCase) {
  EXPECT_EQ(normalizeCorsOrigin("HTTPS://WWW.Foo.com:443"), "https://www.foo.com");
  EXPECT_EQ(normalizeCorsOrigin("http://a.com:80"), "http://a.com");
  EXPECT_EQ(normalizeCorsOrigin("http://a.com:443"), "http://a.com:443");
  EXPECT_EQ(normalizeCorsOrigin("https://*.bar.com"), "https://*.bar.com");
  EXPECT_EQ(normalizeCorsOrigin("*"), "*");
}

TEST(CorsOrigin, ExactAndWildcardHosts) {
  // The upstream HTTPRouteCORS cases.
  const Cors c = corsFor({"https://www.foo.com", "https://*.bar.com"});
  EXPECT_TRUE(corsOriginAllowed(c, "https://www.foo.com"));
  EXPECT_TRUE(corsOriginAllowed(c, "https://www.bar.com"));
  EXPECT_TRUE(corsOriginAllowed(c, "https://xpto.www.bar.com"));  // any labels to the left
  EXPECT_FALSE(corsOriginAllowed(c, "https://foobar.com"));
  EXPECT_FALSE(corsOriginAllowed(c, "https://bar.com"));  // "*." wants at least one label
  EXPECT_FALSE(corsOriginAllowed(c, "https://www.foo.com.evil.com"));
  EXPECT_FALSE(corsOriginAllowed(c, "https://evilbar.com"));
  // Scheme and port are part of the origin; a default port written out is
  // the same origin, and case does not matter.
  EXPECT_FALSE(corsOriginAllowed(c, "http://www.foo.com"));
  EXPECT_FALSE(corsOriginAllowed(c, "https://www.foo.com:8443"));
  EXPECT_TRUE(corsOriginAllowed(c, "https://www.foo.com:443"));
  EXPECT_TRUE(corsOriginAllowed(c, "HTTPS://WWW.FOO.COM"));
  EXPECT_FALSE(corsOriginAllowed(c, "null"));
  EXPECT_FALSE(corsOriginAllowed(c, ""));
  EXPECT_FALSE(corsOriginAllowed(c, "https://"));
}

TEST(CorsOrigin, AnyOriginAndAnyHost) {
  const Cors any = corsFor({"*"});
  EXPECT_TRUE(corsOriginAllowed(any, "https://foobar.com:12345"));
  EXPECT_TRUE(corsOriginAllowed(any, "null"));
  EXPECT_FALSE(corsOriginAllowed(any, ""));  // no Origin: not a CORS request
  const Cors host = corsFor({"http://*:8080"});
  EXPECT_TRUE(corsOriginAllowed(host, "http://a.b.c:8080"));
  EXPECT_FALSE(corsOriginAllowed(host, "http://a.b.c"));
  EXPECT_FALSE(corsOriginAllowed(host, "https://a.b.c:8080"));
  const Cors ported = corsFor({"https://*.example.com:8443"});
  EXPECT_TRUE(corsOriginAllowed(ported, "https://a.example.com:8443"));
  EXPECT_FALSE(corsOriginAllowed(ported, "https://a.example.com"));
  EXPECT_FALSE(corsOriginAllowed(corsFor({}), "https://a.com"));
}

}  // namespace
}  // namespace portico::snapshot
