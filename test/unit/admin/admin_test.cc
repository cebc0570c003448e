#include "admin/admin.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "stats/stats.h"

namespace portico::admin {
namespace {

class AdminTest : public ::testing::Test {
 protected:
  AdminTest() {
    stats::Store& w1 = registry_.newStore();
    stats::Store& w2 = registry_.newStore();
    auto c1 = stats::ClusterStats::make(w1, "kube_default_nginx_8443");
    auto c2 = stats::ClusterStats::make(w2, "kube_default_nginx_8443");
    c1.upstream_rq_total->inc(2);
    c2.upstream_rq_total->inc(3);
    c1.recordResponseCode(200);
    c1.upstream_cx_active->add(1);
    c1.upstream_rq_time->record(12);
    c2.upstream_rq_time->record(14);
    w1.counter("cluster", "kube_default_nginx_8443", "ssl.handshake").inc(4);
    w1.counter("cluster", "kube_default_nginx_8443", "ssl.versions.TLSv1.2").inc(4);
    w1.gauge("server", "", "live").set(1);
    sources_.registry = &registry_;
    sources_.ready = [this] { return ready_; };
    sources_.config_dump_json = [] { return std::string(R"({"configs":[]})"); };
    sources_.status_list_json = [] { return std::string(R"({"kind":"List","items":[]})"); };
    sources_.clusters_text = [] { return std::string("c::observability_name::c\n"); };
  }

  AdminResponse get(std::string_view path, std::string_view query = "") {
    return handleAdmin(AdminRequest{"GET", path, query}, sources_);
  }

  stats::Registry registry_;
  AdminSources sources_;
  bool ready_ = true;
};

bool hasLine(const std::string& body, const std::string& line) {
  return body.find(line + "\n") == 0 || body.find("\n" + line + "\n") != std::string::npos;
}

TEST_F(AdminTest, StatsTextMergedAndSorted) {
  auto r = get("/stats");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; charset=UTF-8");
  EXPECT_TRUE(hasLine(r.body, "cluster.kube_default_nginx_8443.upstream_rq_total: 5")) << r.body;
  EXPECT_TRUE(hasLine(r.body, "cluster.kube_default_nginx_8443.upstream_rq_200: 1"));
  EXPECT_TRUE(hasLine(r.body, "cluster.kube_default_nginx_8443.upstream_cx_active: 1"));
  EXPECT_TRUE(hasLine(r.body, "cluster.kube_default_nginx_8443.ssl.handshake: 4"));
  EXPECT_TRUE(hasLine(r.body, "server.live: 1"));
  // Non-histogram lines sorted by name, histograms after them.
  std::vector<std::string> names;
  size_t first_histogram = std::string::npos;
  size_t pos = 0;
  while (pos < r.body.size()) {
    size_t nl = r.body.find('\n', pos);
    std::string line = r.body.substr(pos, nl - pos);
    if (line.find(": P0(") != std::string::npos ||
        line.find("No recorded values") != std::string::npos) {
      if (first_histogram == std::string::npos) first_histogram = names.size();
    } else {
      EXPECT_EQ(first_histogram, std::string::npos) << "counter after histogram: " << line;
      names.push_back(line.substr(0, line.find(':')));
    }
    pos = nl + 1;
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST_F(AdminTest, StatsHistogramTextShape) {
  auto r = get("/stats", "filter=upstream_rq_time$");
  ASSERT_EQ(r.status, 200);
  // Two samples in (10, 25]: P0 at the bucket's lower edge, P50 halfway, P100 at its top.
  EXPECT_EQ(r.body,
            "cluster.kube_default_nginx_8443.upstream_rq_time: P0(nan,10) P25(nan,13.75) "
            "P50(nan,17.5) P75(nan,21.25) P90(nan,23.5) P95(nan,24.25) P99(nan,24.85) "
            "P99.5(nan,24.925) P99.9(nan,24.985) P100(nan,25)\n");
  auto empty = get("/stats", "filter=upstream_cx_connect_ms$");
  EXPECT_EQ(empty.body,
            "cluster.kube_default_nginx_8443.upstream_cx_connect_ms: No recorded values\n");
}

TEST_F(AdminTest, StatsFilterIsPartialRe2Match) {
  auto r = get("/stats", "filter=ssl%5C.");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            "cluster.kube_default_nginx_8443.ssl.handshake: 4\n"
            "cluster.kube_default_nginx_8443.ssl.versions.TLSv1.2: 4\n");
  // '+' is a regex quantifier here, not a space.
  auto plus = get("/stats", "filter=rq_2+00$");
  EXPECT_EQ(plus.body, "cluster.kube_default_nginx_8443.upstream_rq_200: 1\n");
}

TEST_F(AdminTest, StatsBadRegexIs400) {
  auto r = get("/stats", "filter=(unclosed");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Invalid re2 regex"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("(unclosed"), std::string::npos);
  EXPECT_EQ(get("/stats/prometheus", "filter=%5B").status, 400);
}

TEST_F(AdminTest, StatsUsedOnly) {
  auto all = get("/stats");
  auto used = get("/stats", "usedonly");
  EXPECT_TRUE(hasLine(all.body, "cluster.kube_default_nginx_8443.upstream_cx_connect_fail: 0"));
  EXPECT_FALSE(hasLine(used.body, "cluster.kube_default_nginx_8443.upstream_cx_connect_fail: 0"));
  EXPECT_TRUE(hasLine(used.body, "cluster.kube_default_nginx_8443.upstream_rq_total: 5"));
  EXPECT_EQ(used.body.find("No recorded values"), std::string::npos);
}

TEST_F(AdminTest, StatsType) {
  auto r = get("/stats", "type=Gauges&filter=kube");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(hasLine(r.body, "cluster.kube_default_nginx_8443.upstream_cx_active: 1"));
  EXPECT_EQ(r.body.find("upstream_rq_total"), std::string::npos);
  EXPECT_EQ(get("/stats", "type=Bogus").status, 400);
  EXPECT_EQ(get("/stats", "format=xml").status, 400);
}

TEST_F(AdminTest, StatsJson) {
  auto r =
      get("/stats",
          "format=json&filter=kube_default_nginx_8443%5C.(upstream_rq_total|upstream_rq_time)$");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto doc = nlohmann::json::parse(r.body);
  ASSERT_TRUE(doc["stats"].is_array());
  ASSERT_EQ(doc["stats"].size(), 2u);
  EXPECT_EQ(doc["stats"][0]["name"], "cluster.kube_default_nginx_8443.upstream_rq_total");
  EXPECT_EQ(doc["stats"][0]["value"], 5);
  const auto& h = doc["stats"][1]["histograms"];
  EXPECT_EQ(h["supported_quantiles"], nlohmann::json::parse("[0,25,50,75,90,95,99,99.5,99.9,100]"));
  ASSERT_EQ(h["computed_quantiles"].size(), 1u);
  EXPECT_EQ(h["computed_quantiles"][0]["name"], "cluster.kube_default_nginx_8443.upstream_rq_time");
  const auto& values = h["computed_quantiles"][0]["values"];
  ASSERT_EQ(values.size(), 10u);
  EXPECT_DOUBLE_EQ(values[2]["cumulative"].get<double>(), 17.5);
  EXPECT_TRUE(values[2]["interval"].is_null());
}

TEST_F(AdminTest, StatsJsonExactText) {
  auto r = get("/stats", "format=json&filter=(upstream_rq_200|connect_ms)$");
  EXPECT_EQ(
      r.body,
      "{\"stats\":[{\"name\":\"cluster.kube_default_nginx_8443.upstream_rq_200\",\"value\":1},"
      "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100]"
      ","
      "\"computed_quantiles\":[{\"name\":\"cluster.kube_default_nginx_8443.upstream_cx_connect_"
      "ms\","
      "\"values\":["
      "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
      "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
      "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
      "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null},"
      "{\"cumulative\":null,\"interval\":null},{\"cumulative\":null,\"interval\":null}]}]}}]}\n");
}

TEST_F(AdminTest, StatsJsonWithoutHistogramsHasNoHistogramEntry) {
  auto r = get("/stats", "format=json&type=Counters&filter=server");
  auto doc = nlohmann::json::parse(r.body);
  EXPECT_EQ(doc, nlohmann::json::parse(R"({"stats":[]})"));  // server.live is a gauge
}

TEST_F(AdminTest, Prometheus) {
  for (auto [path, query] : {std::pair<std::string_view, std::string_view>{"/stats/prometheus", ""},
                             {"/stats", "format=prometheus"}}) {
    auto r = get(path, query);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=UTF-8");
    EXPECT_TRUE(hasLine(r.body,
                        "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"kube_default_nginx_"
                        "8443\"} 5"))
        << r.body;
    EXPECT_TRUE(hasLine(r.body,
                        "envoy_cluster_ssl_versions{envoy_ssl_version=\"TLSv1.2\",envoy_cluster_"
                        "name=\"kube_default_nginx_8443\"} 4"));
    EXPECT_TRUE(hasLine(r.body, "# TYPE envoy_cluster_upstream_rq_time histogram"));
  }
  auto filtered = get("/stats/prometheus", "filter=ssl.handshake");
  EXPECT_EQ(filtered.body,
            "# TYPE envoy_cluster_ssl_handshake counter\n"
            "envoy_cluster_ssl_handshake{envoy_cluster_name=\"kube_default_nginx_8443\"} 4\n\n");
}

TEST_F(AdminTest, Ready) {
  auto live = get("/ready");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, "LIVE\n");
  ready_ = false;
  auto not_yet = get("/ready");
  EXPECT_EQ(not_yet.status, 503);
  EXPECT_EQ(not_yet.body, "PRE_INITIALIZING\n");
  sources_.ready = nullptr;
  EXPECT_EQ(get("/ready").status, 503);
}

TEST_F(AdminTest, ServerInfo) {
  sources_.version = "portico/0.1.0";
  sources_.uptime_seconds = [] { return int64_t{42}; };
  auto r = get("/server_info");
  ASSERT_EQ(r.status, 200);
  auto doc = nlohmann::json::parse(r.body);
  EXPECT_EQ(doc["version"], "portico/0.1.0");
  EXPECT_EQ(doc["state"], "LIVE");
  EXPECT_EQ(doc["uptime_current_epoch"], "42s");
}

TEST_F(AdminTest, CallbackEndpoints) {
  auto dump = get("/config_dump");
  EXPECT_EQ(dump.status, 200);
  EXPECT_EQ(dump.content_type, "application/json");
  EXPECT_EQ(dump.body, R"({"configs":[]})");
  auto status = get("/status");
  EXPECT_EQ(status.content_type, "application/json");
  EXPECT_EQ(status.body, R"({"kind":"List","items":[]})");
  auto clusters = get("/clusters");
  EXPECT_EQ(clusters.content_type, "text/plain; charset=UTF-8");
  EXPECT_EQ(clusters.body, "c::observability_name::c\n");
  sources_.config_dump_json = nullptr;
  EXPECT_EQ(get("/config_dump").status, 503);
}

TEST_F(AdminTest, CallbackThatThrowsIs500) {
  sources_.status_list_json = []() -> std::string { throw std::runtime_error("boom"); };
  auto r = get("/status");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("boom"), std::string::npos);
}

TEST_F(AdminTest, IndexAndNotFound) {
  auto index = get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("/stats/prometheus"), std::string::npos);
  EXPECT_EQ(get("/nope").status, 404);
  EXPECT_EQ(get("/stats/").status, 404);
}

TEST_F(AdminTest, MethodNotAllowed) {
  auto r = handleAdmin(AdminRequest{"POST", "/stats", ""}, sources_);
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Allow");
  EXPECT_EQ(handleAdmin(AdminRequest{"DELETE", "/nope", ""}, sources_).status, 404);
  auto head = handleAdmin(AdminRequest{"HEAD", "/ready", ""}, sources_);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "LIVE\n");  // caller sends only the headers
}

TEST_F(AdminTest, QueryLeftOnPath) {
  auto r = get("/stats?filter=server%2Elive");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "server.live: 1\n");
}

TEST_F(AdminTest, NoRegistry) {
  sources_.registry = nullptr;
  auto r = get("/stats");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
}

TEST(Query, PercentDecode) {
  EXPECT_EQ(percentDecode("a%2Fb%2fc"), "a/b/c");
  EXPECT_EQ(percentDecode("a+b"), "a+b");
  EXPECT_EQ(percentDecode("100%"), "100%");
  EXPECT_EQ(percentDecode("%zz%4"), "%zz%4");
  EXPECT_EQ(percentDecode("%41%42"), "AB");
}

TEST(Query, Parse) {
  auto q = parseQuery("filter=a%26b&usedonly&&format=json&x=");
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"filter", "a&b"}));
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"usedonly", ""}));
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>{"format", "json"}));
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"x", ""}));
}

}  // namespace
}  // namespace portico::admin
