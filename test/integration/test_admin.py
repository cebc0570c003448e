"""The admin port: Envoy's endpoints and formats, with values that follow
real traffic."""

import json
import re
import socket
import unittest

from harness import (PorticoCase, backend, backend_ref, cluster_name, free_port, gateway,
                     gateway_class, http_route, listener, parse_stats, request, rule, run_check)

N = 25


def walk(obj):
    """Yields every (key, value) pair in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def strip_volatile(obj):
    """Drops fields that legitimately differ between `check` and a live
    server: times Portico stamps when it first sees an object, and the
    Gateway address (check knows no --listen-address; messages may name it)."""
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items()
                if k not in ("lastTransitionTime", "creationTimestamp", "resourceVersion", "uid",
                             "addresses", "message")}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


class AdminTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-a")
        cls.port = free_port()
        cls.cluster = cluster_name("svc-a")
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-a", cls.ng.port)
        docs += [http_route("admin-route", [rule([backend_ref("svc-a", 80)])],
                            hostnames=["a.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("admin.yaml", docs)
        cls.p.start(wait_ports=[cls.port])
        # start() probed the listener with one connection; let a worker count
        # it before the baseline is taken, or it lands in the deltas.
        lst = f"listener.127.0.0.1_{cls.port}.downstream_cx_total"
        cls.p.wait_for(lambda: cls.p.stat(lst) >= 1, 3)
        cls.before = cls.p.stats()
        for i in range(N):  # N requests, each on its own client connection
            r = request(cls.port, f"/{i}", host="a.example.com")
            assert r.status == 200, r
        r = request(cls.port, "/status/500", host="a.example.com")
        assert r.status == 500, r

    def delta(self, stats, name):
        return stats.get(name, 0) - self.before.get(name, 0)

    def test_ready(self):
        st, body = self.p.admin("/ready")
        self.assertEqual(st, 200)
        self.assertEqual(body.strip(), "LIVE")

    def test_stats_text_shape_and_values(self):
        st, body = self.p.admin("/stats")
        self.assertEqual(st, 200)
        lines = [ln for ln in body.splitlines() if ln]
        self.assertTrue(lines)
        for ln in lines:
            self.assertRegex(ln, r"^[A-Za-z0-9_.:\-\[\]]+: \S.*$")
        names = [ln.split(": ", 1)[0] for ln in lines]
        scalar = [n for n, ln in zip(names, lines) if re.match(r"^\S+: -?\d+$", ln)]
        self.assertEqual(scalar, sorted(scalar), "counters/gauges not sorted by name")
        s = parse_stats(body)
        c = f"cluster.{self.cluster}"
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_total"), N + 1)
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_completed"), N + 1)
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_2xx"), N)
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_200"), N)
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_5xx"), 1)
        self.assertEqual(self.delta(s, f"{c}.upstream_rq_500"), 1)
        self.assertEqual(s.get(f"{c}.upstream_rq_active"), 0)
        self.assertGreaterEqual(s.get(f"{c}.upstream_cx_total", 0), 1)
        self.assertGreaterEqual(s.get(f"{c}.upstream_cx_active", -1), 0)
        self.assertIn(f"{c}.upstream_cx_connect_fail", s)
        self.assertIn(f"{c}.upstream_cx_destroy", s)
        self.assertIn(f"{c}.upstream_rq_timeout", s)
        self.assertEqual(s.get(f"{c}.membership_healthy"), 1)
        self.assertEqual(s.get(f"{c}.membership_total"), 1)
        self.assertIn(f"{c}.upstream_rq_time", s)
        self.assertIn(f"{c}.upstream_cx_connect_ms", s)
        self.assertRegex(str(s[f"{c}.upstream_rq_time"]), r"P50\(")
        lst = f"listener.127.0.0.1_{self.port}.downstream_cx_total"
        self.assertEqual(self.delta(s, lst), N + 1, f"{lst} missing or wrong")
        self.assertIn(f"listener.127.0.0.1_{self.port}.downstream_cx_active", s)
        http_rq = [n for n in s if re.match(r"^http\..+\.downstream_rq_total$", n)]
        self.assertTrue(http_rq, "no http.<prefix>.downstream_rq_total")
        prefixes = [n[len("http."):-len(".downstream_rq_total")] for n in http_rq]
        self.assertTrue(any(self.delta(s, f"http.{p}.downstream_rq_2xx") >= N for p in prefixes),
                        {p: s.get(f"http.{p}.downstream_rq_2xx") for p in prefixes})
        self.assertTrue(any(self.delta(s, f"http.{p}.downstream_rq_5xx") >= 1 for p in prefixes))
        self.assertTrue(any(f"http.{p}.downstream_cx_active" in s for p in prefixes))

    def test_stats_filter(self):
        st, body = self.p.admin("/stats?filter=upstream_rq_total")
        self.assertEqual(st, 200)
        s = parse_stats(body)
        self.assertIn(f"cluster.{self.cluster}.upstream_rq_total", s)
        self.assertTrue(all("upstream_rq_total" in n for n in s), list(s)[:10])
        st, body = self.p.admin("/stats?filter=%5Ecluster%5C..%2A%5C.membership_total%24")
        self.assertEqual(st, 200)
        self.assertEqual(list(parse_stats(body)), [f"cluster.{self.cluster}.membership_total"])
        st, _ = self.p.admin("/stats?filter=(unclosed")
        self.assertEqual(st, 400, "an invalid RE2 filter is a 400")

    def test_stats_json(self):
        st, body = self.p.admin("/stats?format=json")
        self.assertEqual(st, 200)
        doc = json.loads(body)
        plain = {e["name"]: e["value"] for e in doc["stats"] if "name" in e}
        self.assertGreaterEqual(plain[f"cluster.{self.cluster}.upstream_rq_total"], N + 1)

    def test_stats_prometheus(self):
        st, body = self.p.admin("/stats/prometheus")
        self.assertEqual(st, 200)
        for ln in body.splitlines():
            if ln and not ln.startswith("#"):
                self.assertRegex(ln, r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfNa]+$')
        label = f'envoy_cluster_name="{self.cluster}"'
        m = re.search(r"(?m)^envoy_cluster_upstream_rq_total\{" + re.escape(label) + r"\} (\d+)$",
                      body)
        self.assertTrue(m, "envoy_cluster_upstream_rq_total{envoy_cluster_name=...} missing")
        self.assertGreaterEqual(int(m.group(1)), N + 1)
        self.assertRegex(body, r"(?m)^# TYPE envoy_cluster_upstream_rq_total counter$")
        self.assertRegex(body, r'(?m)^envoy_cluster_upstream_rq_xx\{[^}]*envoy_response_code_class="2"'
                         r"[^}]*\} \d+$")
        self.assertRegex(body, r'(?m)^envoy_cluster_upstream_rq\{[^}]*envoy_response_code="200"')
        self.assertRegex(body, r'(?m)^envoy_cluster_membership_healthy\{' + re.escape(label)
                         + r"\} 1$")
        self.assertRegex(body, r"(?m)^envoy_cluster_upstream_rq_time_bucket\{[^}]*le=")
        self.assertRegex(body, r"(?m)^envoy_listener_downstream_cx_total\{")
        self.assertRegex(body, r"(?m)^envoy_http_downstream_rq_total\{")

    def test_clusters(self):
        st, body = self.p.admin("/clusters")
        self.assertEqual(st, 200)
        host = f"{self.cluster}::127.0.0.1:{self.ng.port}::"
        self.assertIn(host + "health_flags::healthy", body)
        m = re.search(re.escape(host) + r"rq_total::(\d+)", body)
        self.assertTrue(m, f"no per-host rq_total in /clusters:\n{body[:1000]}")
        self.assertGreaterEqual(int(m.group(1)), N + 1)

    def test_config_dump(self):
        st, body = self.p.admin("/config_dump")
        self.assertEqual(st, 200)
        doc = json.loads(body)
        keys = {k.lower() for k, _ in walk(doc)}
        for want in ("listeners", "routes", "clusters", "endpoints"):
            self.assertTrue(any(want in k for k in keys), f"/config_dump has no {want}")
        self.assertIn(self.cluster, body)
        self.assertIn("a.example.com", body)
        self.assertIn(str(self.port), body)
        self.assertIn(str(self.ng.port), body)

    def test_status_matches_check(self):
        st, body = self.p.admin("/status")
        self.assertEqual(st, 200)
        live = json.loads(body)
        self.assertEqual(live.get("kind"), "List")
        gw = next(i for i in live["items"] if i["kind"] == "Gateway")
        acc = next(c for c in gw["status"]["conditions"] if c["type"] == "Accepted")
        self.assertEqual(acc["status"], "True")
        r = run_check(self.p.binary, self.p.config_dir, output="json")
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        offline = json.loads(r.stdout)
        key = lambda i: (i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"])  # noqa
        self.assertEqual({key(i): strip_volatile(i.get("status")) for i in live["items"]},
                         {key(i): strip_volatile(i.get("status")) for i in offline["items"]})

    def test_certs_without_tls(self):
        # Nothing loaded: an empty list, and Envoy's "no certificate" value.
        st, body = self.p.admin("/certs")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"certificates": []})
        self.assertEqual(self.p.stat("server.days_until_first_cert_expiring"), 2**32 - 1)

    def test_unknown_path_404(self):
        st, _ = self.p.admin("/no-such-endpoint")
        self.assertEqual(st, 404)


class ConnectionGaugeTest(PorticoCase):
    """Its own Portico: it opens connections that AdminTest's deltas must not see."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-g")
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-g", cls.ng.port)
        docs += [http_route("g", [rule([backend_ref("svc-g", 80)])], hostnames=["g.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("gauge.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def test_active_connection_gauges_follow_open_connections(self):
        lst = f"listener.127.0.0.1_{self.port}.downstream_cx_active"
        # start() probed the port: wait until that connection is gone too.
        self.assertEventually(lambda: self.p.stat(lst, -1) == 0, 5, f"{lst} never settled at 0")
        before = 0
        conns = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(3)]
        try:
            self.assertEventually(lambda: self.p.stat(lst) == before + 3, 5,
                                  f"{lst} did not count 3 open connections")
        finally:
            for c in conns:
                c.close()
        self.assertEventually(lambda: self.p.stat(lst) == before, 5,
                              f"{lst} did not return to {before} after the closes")


if __name__ == "__main__":
    unittest.main()
