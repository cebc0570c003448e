#include "stats/prometheus.h"

#include <gtest/gtest.h>

#include "stats/stats.h"

namespace portico::stats {
namespace {

std::string labelsOf(const PrometheusName& p) {
  std::string out;
  for (const auto& [k, v] : p.labels) out += k + "=" + v + ";";
  return out;
}

TEST(PrometheusName, ClusterScope) {
  auto p = prometheusName({"cluster", "kube_default_nginx_8443", "upstream_rq_total"});
  EXPECT_EQ(p.name, "envoy_cluster_upstream_rq_total");
  EXPECT_EQ(labelsOf(p), "envoy_cluster_name=kube_default_nginx_8443;");
}

TEST(PrometheusName, ResponseCodeAndClass) {
  auto code = prometheusName({"cluster", "c", "upstream_rq_200"});
  EXPECT_EQ(code.name, "envoy_cluster_upstream_rq");
  EXPECT_EQ(labelsOf(code), "envoy_response_code=200;envoy_cluster_name=c;");
  auto cls = prometheusName({"cluster", "c", "upstream_rq_2xx"});
  EXPECT_EQ(cls.name, "envoy_cluster_upstream_rq_xx");
  EXPECT_EQ(labelsOf(cls), "envoy_response_code_class=2;envoy_cluster_name=c;");
  auto http = prometheusName({"http", "ingress_http", "downstream_rq_5xx"});
  EXPECT_EQ(http.name, "envoy_http_downstream_rq_xx");
  EXPECT_EQ(labelsOf(http),
            "envoy_response_code_class=5;envoy_http_conn_manager_prefix=ingress_http;");
  // Not a code: left alone.
  auto total = prometheusName({"cluster", "c", "upstream_rq_total"});
  EXPECT_EQ(total.name, "envoy_cluster_upstream_rq_total");
}

TEST(PrometheusName, TlsStats) {
  auto v = prometheusName({"cluster", "c", "ssl.versions.TLSv1.3"});
  EXPECT_EQ(v.name, "envoy_cluster_ssl_versions");
  EXPECT_EQ(labelsOf(v), "envoy_ssl_version=TLSv1.3;envoy_cluster_name=c;");
  auto cipher = prometheusName({"cluster", "c", "ssl.ciphers.TLS_AES_256_GCM_SHA384"});
  EXPECT_EQ(cipher.name, "envoy_cluster_ssl_ciphers");
  EXPECT_EQ(labelsOf(cipher), "cipher_suite=TLS_AES_256_GCM_SHA384;envoy_cluster_name=c;");
  auto curve = prometheusName({"cluster", "c", "ssl.curves.X25519"});
  EXPECT_EQ(curve.name, "envoy_cluster_ssl_curves");
  EXPECT_EQ(labelsOf(curve), "envoy_ssl_curve=X25519;envoy_cluster_name=c;");
  auto sigalg = prometheusName({"cluster", "c", "ssl.sigalgs.rsa_pss_rsae_sha256"});
  EXPECT_EQ(sigalg.name, "envoy_cluster_ssl_sigalgs");
  EXPECT_EQ(labelsOf(sigalg), "envoy_ssl_sigalg=rsa_pss_rsae_sha256;envoy_cluster_name=c;");
  auto handshake = prometheusName({"cluster", "c", "ssl.handshake"});
  EXPECT_EQ(handshake.name, "envoy_cluster_ssl_handshake");
  EXPECT_EQ(labelsOf(handshake), "envoy_cluster_name=c;");

  auto lcipher =
      prometheusName({"listener", "0.0.0.0_8443", "ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256"});
  EXPECT_EQ(lcipher.name, "envoy_listener_ssl_ciphers");
  EXPECT_EQ(labelsOf(lcipher),
            "envoy_ssl_cipher=ECDHE-RSA-AES128-GCM-SHA256;envoy_listener_address=0.0.0.0_8443;");
}

TEST(PrometheusName, BareAndServer) {
  auto live = prometheusName({"server", "", "live"});
  EXPECT_EQ(live.name, "envoy_server_live");
  EXPECT_TRUE(live.labels.empty());
  auto bare = prometheusName({"", "", "portico.weird-name:x"});
  EXPECT_EQ(bare.name, "envoy_portico_weird_name_x");
  // Unknown kinds keep their whole name rather than guessing a tag.
  auto other = prometheusName({"vhost", "example.com", "upstream_rq_total"});
  EXPECT_EQ(other.name, "envoy_vhost_example_com_upstream_rq_total");
  EXPECT_TRUE(other.labels.empty());
}

TEST(PrometheusName, LabelValueEscaped) {
  Registry registry;
  registry.newStore().counter("cluster", "we\"ird\\", "x").inc();
  const std::string text = renderPrometheus(registry.collect());
  EXPECT_NE(text.find("envoy_cluster_x{envoy_cluster_name=\"we\\\"ird\\\\\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(RenderPrometheus, ExactText) {
  Registry registry;
  Store& w1 = registry.newStore();
  Store& w2 = registry.newStore();
  ClusterStats a1 = ClusterStats::make(w1, "b_cluster");
  ClusterStats a2 = ClusterStats::make(w2, "b_cluster");
  w1.counter("cluster", "a_cluster", "upstream_rq_total").inc(5);
  a1.upstream_rq_total->inc(2);
  a2.upstream_rq_total->inc(3);
  a1.recordResponseCode(200);
  a2.recordResponseCode(503);
  w1.counter("cluster", "b_cluster", "ssl.versions.TLSv1.3").inc(4);
  w1.gauge("server", "", "live").set(1);
  w2.histogram("http", "ingress", "downstream_rq_time").record(3);
  w2.histogram("http", "ingress", "downstream_rq_time").record(700);

  // Keep the cluster stats we asserted on and drop the rest of the X-macro
  // list, so the expected text stays readable.
  std::vector<MergedStat> picked;
  for (auto& s : registry.collect()) {
    const std::string n = s.name.full();
    if (n == "cluster.a_cluster.upstream_rq_total" || n == "cluster.b_cluster.upstream_rq_total" ||
        n == "cluster.b_cluster.upstream_rq_200" || n == "cluster.b_cluster.upstream_rq_503" ||
        n == "cluster.b_cluster.upstream_rq_2xx" || n == "cluster.b_cluster.upstream_rq_5xx" ||
        n == "cluster.b_cluster.ssl.versions.TLSv1.3" || n == "server.live" ||
        n == "http.ingress.downstream_rq_time") {
      picked.push_back(s);
    }
  }
  ASSERT_EQ(picked.size(), 9u);

  const std::string expected =
      "# TYPE envoy_cluster_ssl_versions counter\n"
      "envoy_cluster_ssl_versions{envoy_ssl_version=\"TLSv1.3\",envoy_cluster_name=\"b_cluster\"} "
      "4\n"
      "\n"
      "# TYPE envoy_cluster_upstream_rq counter\n"
      "envoy_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"b_cluster\"} 1\n"
      "envoy_cluster_upstream_rq{envoy_response_code=\"503\",envoy_cluster_name=\"b_cluster\"} 1\n"
      "\n"
      "# TYPE envoy_cluster_upstream_rq_total counter\n"
      "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a_cluster\"} 5\n"
      "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"b_cluster\"} 5\n"
      "\n"
      "# TYPE envoy_cluster_upstream_rq_xx counter\n"
      "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"b_"
      "cluster\"} 1\n"
      "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"b_"
      "cluster\"} 1\n"
      "\n"
      "# TYPE envoy_server_live gauge\n"
      "envoy_server_live{} 1\n"
      "\n"
      "# TYPE envoy_http_downstream_rq_time histogram\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"0.5\"} "
      "0\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"1\"} "
      "0\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"5\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"10\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"25\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"50\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"100\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"250\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"500\"} "
      "1\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"1000\"}"
      " 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"2500\"}"
      " 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"5000\"}"
      " 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"10000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"30000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"60000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"300000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"600000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"1800000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le="
      "\"3600000\"} 2\n"
      "envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=\"ingress\",le=\"+Inf\"}"
      " 2\n"
      "envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix=\"ingress\"} 703\n"
      "envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix=\"ingress\"} 2\n"
      "\n";
  EXPECT_EQ(renderPrometheus(picked), expected);
}

TEST(RenderPrometheus, EmptyInputRendersNothing) { EXPECT_EQ(renderPrometheus({}), ""); }

}  // namespace
}  // namespace portico::stats
