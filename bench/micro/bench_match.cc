// Route selection cost per request against a realistic virtual host.
#include <benchmark/benchmark.h>
#include <re2/re2.h>

#include <string>

#include "http/http1.h"
#include "snapshot/match.h"

namespace portico::snapshot {
namespace {

struct Fixture {
  Listener listener;
  Fixture() {
    listener.name = "0.0.0.0_8080";
    for (int i = 0; i < 8; ++i) {
      VirtualHost other;
      other.name = "other" + std::to_string(i);
      other.domains = {"svc" + std::to_string(i) + ".example.org"};
      listener.virtual_hosts.push_back(other);
    }
    VirtualHost wild;
    wild.name = "wild";
    wild.domains = {"*.example.com"};
    listener.virtual_hosts.push_back(wild);
    VirtualHost vh;
    vh.name = "shop";
    vh.domains = {"shop.example.com"};
    // ~20 routes in Gateway API precedence order: exact paths, long
    // prefixes with header/method conditions, a regex, then the catch-all.
    auto add = [&](PathMatch::Type type, std::string path, std::string method = "",
                   std::string header = "") {
      Route r;
      r.name = "route" + std::to_string(vh.routes.size());
      r.match.path.type = type;
      r.match.path.value = path;
      if (type == PathMatch::Type::RegularExpression) {
        r.match.path.regex = std::make_shared<const re2::RE2>(path);
      }
      r.match.method = std::move(method);
      if (!header.empty()) r.match.headers.push_back({HeaderMatch::Type::Exact, header, "1", {}});
      r.backends = {{"kube_default_shop_80", 1}};
      r.total_weight = 1;
      vh.routes.push_back(std::move(r));
    };
    for (const char* p : {"/login", "/logout", "/healthz", "/metrics", "/favicon.ico"}) {
      add(PathMatch::Type::Exact, p);
    }
    add(PathMatch::Type::RegularExpression, "/api/v[0-9]+/admin/.*");
    add(PathMatch::Type::PathPrefix, "/api/v2/orders", "POST");
    add(PathMatch::Type::PathPrefix, "/api/v2/orders", "", "x-canary");
    add(PathMatch::Type::PathPrefix, "/api/v2/orders");
    add(PathMatch::Type::PathPrefix, "/api/v2/users");
    add(PathMatch::Type::PathPrefix, "/api/v2/carts");
    add(PathMatch::Type::PathPrefix, "/api/v2/search");
    add(PathMatch::Type::PathPrefix, "/api/v1/orders", "", "x-canary");
    add(PathMatch::Type::PathPrefix, "/api/v1/orders");
    add(PathMatch::Type::PathPrefix, "/api/v1/users");
    add(PathMatch::Type::PathPrefix, "/api/v1");
    add(PathMatch::Type::PathPrefix, "/static");
    add(PathMatch::Type::PathPrefix, "/images");
    add(PathMatch::Type::PathPrefix, "/api");
    add(PathMatch::Type::PathPrefix, "/");
    listener.virtual_hosts.push_back(std::move(vh));
    VirtualHost any;
    any.name = "any";
    any.domains = {"*"};
    listener.virtual_hosts.push_back(any);
    listener.indexHosts();
  }
};

std::string_view noHeader(const void*, std::string_view, bool& found) {
  found = false;
  return {};
}

void BM_SelectVirtualHost(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        selectVirtualHost(f.listener, http::hostWithoutPort("shop.example.com:8080")));
  }
}
BENCHMARK(BM_SelectVirtualHost);

// A request that falls through to route 14 of 21 ("/api/v1/orders"), after
// the regex and two header-conditioned routes have been tried.
void BM_SelectRouteDeep(benchmark::State& state) {
  Fixture f;
  const VirtualHost* vh = selectVirtualHost(f.listener, "shop.example.com");
  MatchInput in;
  in.method = "GET";
  in.path = "/api/v1/orders/12345";
  in.query = "expand=items";
  in.header = noHeader;
  for (auto _ : state) benchmark::DoNotOptimize(selectRoute(*vh, in));
  if (selectRoute(*vh, in)->name != "route13") state.SkipWithError("fixture changed");
}
BENCHMARK(BM_SelectRouteDeep);

void BM_SelectRouteCatchAll(benchmark::State& state) {
  Fixture f;
  const VirtualHost* vh = selectVirtualHost(f.listener, "shop.example.com");
  MatchInput in;
  in.method = "GET";
  in.path = "/products/widget-3000";
  in.header = noHeader;
  for (auto _ : state) benchmark::DoNotOptimize(selectRoute(*vh, in));
}
BENCHMARK(BM_SelectRouteCatchAll);

void BM_HostRouteAndBackend(benchmark::State& state) {
  Fixture f;
  MatchInput in;
  in.method = "GET";
  in.path = "/api/v1/orders/12345";
  in.header = noHeader;
  uint64_t r = 0;
  for (auto _ : state) {
    const VirtualHost* vh =
        selectVirtualHost(f.listener, http::hostWithoutPort("shop.example.com:8080"));
    const Route* route = selectRoute(*vh, in);
    benchmark::DoNotOptimize(pickBackend(*route, r++));
  }
}
BENCHMARK(BM_HostRouteAndBackend);

}  // namespace
}  // namespace portico::snapshot
