#include "admin/clusters.h"

#include <gtest/gtest.h>

#include "snapshot/snapshot.h"

namespace portico::admin {
namespace {

TEST(ClustersText, HostsWithAndWithoutStats) {
  ClusterInfo c;
  c.name = "kube_default_nginx_8443";
  HostInfo healthy{"127.0.0.1", 8443, "", true, 1, HostStats{}};
  healthy.stats->cx_total = 3;
  healthy.stats->rq_total = 7;
  c.hosts.push_back(healthy);
  c.hosts.push_back(HostInfo{"::1", 8443, "", false, 2, std::nullopt});

  const std::string expected =
      "kube_default_nginx_8443::observability_name::kube_default_nginx_8443\n"
      "kube_default_nginx_8443::added_via_api::true\n"
      "kube_default_nginx_8443::127.0.0.1:8443::cx_active::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::cx_connect_fail::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::cx_total::3\n"
      "kube_default_nginx_8443::127.0.0.1:8443::rq_active::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::rq_error::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::rq_success::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::rq_timeout::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::rq_total::7\n"
      "kube_default_nginx_8443::127.0.0.1:8443::hostname::\n"
      "kube_default_nginx_8443::127.0.0.1:8443::health_flags::healthy\n"
      "kube_default_nginx_8443::127.0.0.1:8443::weight::1\n"
      "kube_default_nginx_8443::127.0.0.1:8443::region::\n"
      "kube_default_nginx_8443::127.0.0.1:8443::zone::\n"
      "kube_default_nginx_8443::127.0.0.1:8443::sub_zone::\n"
      "kube_default_nginx_8443::127.0.0.1:8443::canary::false\n"
      "kube_default_nginx_8443::127.0.0.1:8443::priority::0\n"
      "kube_default_nginx_8443::127.0.0.1:8443::success_rate::-1\n"
      "kube_default_nginx_8443::127.0.0.1:8443::local_origin_success_rate::-1\n"
      "kube_default_nginx_8443::[::1]:8443::hostname::\n"
      "kube_default_nginx_8443::[::1]:8443::health_flags::/failed_eds_health\n"
      "kube_default_nginx_8443::[::1]:8443::weight::2\n"
      "kube_default_nginx_8443::[::1]:8443::region::\n"
      "kube_default_nginx_8443::[::1]:8443::zone::\n"
      "kube_default_nginx_8443::[::1]:8443::sub_zone::\n"
      "kube_default_nginx_8443::[::1]:8443::canary::false\n"
      "kube_default_nginx_8443::[::1]:8443::priority::0\n"
      "kube_default_nginx_8443::[::1]:8443::success_rate::-1\n"
      "kube_default_nginx_8443::[::1]:8443::local_origin_success_rate::-1\n";
  EXPECT_EQ(renderClustersText({c}), expected);
}

TEST(ClustersText, FromSnapshot) {
  snapshot::Snapshot snap;
  snapshot::Cluster a;
  a.name = "kube_default_nginx_8443";
  a.endpoints.push_back(snapshot::Endpoint{"127.0.0.1", 8443, true});
  a.endpoints.push_back(snapshot::Endpoint{"127.0.0.2", 8443, false});
  snapshot::Cluster b;
  b.name = "kube_default_ext_80";
  b.dns_name = "example.com";
  b.dns_port = 80;
  snap.clusters = {a, b};

  auto infos = clusterInfos(snap);
  ASSERT_EQ(infos.size(), 2u);
  ASSERT_EQ(infos[0].hosts.size(), 2u);
  EXPECT_TRUE(infos[0].hosts[0].healthy);
  EXPECT_FALSE(infos[0].hosts[1].healthy);
  ASSERT_EQ(infos[1].hosts.size(), 1u);
  EXPECT_EQ(infos[1].hosts[0].address, "example.com");
  EXPECT_EQ(infos[1].hosts[0].hostname, "example.com");

  const std::string text = renderClustersText(infos);
  EXPECT_NE(text.find("kube_default_nginx_8443::127.0.0.1:8443::health_flags::healthy\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("kube_default_nginx_8443::127.0.0.2:8443::health_flags::/failed_eds_health\n"),
      std::string::npos);
  EXPECT_NE(text.find("kube_default_ext_80::example.com:80::hostname::example.com\n"),
            std::string::npos);
}

}  // namespace
}  // namespace portico::admin
