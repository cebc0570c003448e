"""Routing, load balancing, connection reuse and HTTP/1.1 semantics through
the real binary, against nginx backends that echo what they received."""

import collections
import hashlib
import http.client
import re
import socket
import time
import unittest
import uuid

from harness import (PorticoCase, backend, backend_ref, cluster_name, free_port, gateway,
                     gateway_class, http_route, listener, match, parse_responses, raw_exchange, request, rule)


class RoutingTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        names = ["svc-a", "svc-b", "svc-c", "svc-w1", "svc-w2", "svc-ka"]
        cls.ng = {n: cls.start_nginx(n) for n in names}
        cls.p = cls.make_portico()
        cls.port = free_port()
        ref = lambda n, **kw: backend_ref(n, 80, **kw)  # noqa: E731
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        for n, ng in cls.ng.items():
            docs += backend(n, ng.port)
        docs += backend("svc-a-alias", cls.ng["svc-a"].port)  # svc-a's address, another Service
        docs += [
            http_route("host-a", [rule([ref("svc-a")])], hostnames=["a.example.com"]),
            http_route("host-b", [rule([ref("svc-b")])], hostnames=["b.example.com"]),
            http_route("alias", [rule([ref("svc-a-alias")])], hostnames=["alias.example.com"]),
            http_route("wild", [rule([ref("svc-c")])], hostnames=["*.wild.example.com"]),
            http_route("paths", [
                rule([ref("svc-b")], [match("/prefix")]),
                rule([ref("svc-a")], [match("/exact", "Exact")]),
                rule([ref("svc-c")], [match("/prefix/exact", "Exact")]),
                rule([ref("svc-c")], [match("^/re/[0-9]+$", "RegularExpression")]),
            ], hostnames=["paths.example.com"]),
            http_route("headers", [
                rule([ref("svc-a")], [match("/")]),
                rule([ref("svc-b")], [match("/", headers={"x-version": "v2"})]),
                rule([ref("svc-c")], [match("/", query={"variant": "c"})]),
                rule([ref("svc-c")], [match("/", method="DELETE")]),
            ], hostnames=["headers.example.com"]),
            http_route("weights", [rule([ref("svc-w1", weight=3), ref("svc-w2", weight=1)])],
                       hostnames=["weights.example.com"]),
            http_route("keepalive", [rule([ref("svc-ka")])], hostnames=["ka.example.com"]),
            # One valid and one missing Service, equal weights: half the requests get 500.
            http_route("half-invalid", [rule([ref("svc-w1"), ref("svc-missing")])],
                       hostnames=["half-invalid.example.com"]),
            http_route("filters", [
                rule([ref("svc-a")], [match("/modify")], filters=[
                    {"type": "RequestHeaderModifier",
                     "requestHeaderModifier": {"set": [{"name": "X-Custom", "value": "from-route"}]}},
                    {"type": "ResponseHeaderModifier",
                     "responseHeaderModifier": {"add": [{"name": "X-Route", "value": "filters"},
                                                        {"name": "X-Backend", "value": "via-route"}]}}]),
                rule([ref("svc-a")], [match("/add")], filters=[
                    {"type": "RequestHeaderModifier",
                     "requestHeaderModifier": {"add": [{"name": "x-CUSTOM", "value": "added"},
                                                       {"name": "Cookie", "value": "b=2"}]}}]),
                rule([], [match("/redirect")], filters=[
                    {"type": "RequestRedirect",
                     "requestRedirect": {"scheme": "https", "statusCode": 301}}]),
                rule([ref("svc-b")], [match("/rewrite")], filters=[
                    {"type": "URLRewrite",
                     "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                             "replacePrefixMatch": "/rewritten"}}}]),
            ], hostnames=["filters.example.com"]),
        ]
        cls.p.write("routes.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def get(self, host, path="/", **kw):
        return request(self.port, path, host=host, **kw)

    def backend_of(self, host, path="/", **kw):
        r = self.get(host, path, **kw)
        self.assertEqual(r.status, 200, f"{host}{path}: {r.status} {r.text[:300]}")
        return r.json()["backend"]

    # --- matching -------------------------------------------------------------

    def test_route_by_host(self):
        self.assertEqual(self.backend_of("a.example.com"), "svc-a")
        self.assertEqual(self.backend_of("b.example.com"), "svc-b")
        # Host header with a port matches the bare hostname (the seed does this).
        self.assertEqual(self.backend_of("a.example.com:8080"), "svc-a")
        self.assertEqual(self.backend_of("B.Example.COM"), "svc-b")  # case-insensitive
        self.assertEqual(self.backend_of("x.wild.example.com"), "svc-c")
        self.assertEqual(self.backend_of("deep.x.wild.example.com"), "svc-c")

    def test_no_route_is_404_with_reason(self):
        for host in ("nope.example.com", "wild.example.com"):
            r = self.get(host)
            self.assertEqual(r.status, 404, f"{host}: {r.text[:200]}")
            self.assertTrue(r.body.strip(), "404 body should name the reason")
        r = self.get("paths.example.com", "/nothing-here")
        self.assertEqual(r.status, 404)

    def test_route_by_path(self):
        h = "paths.example.com"
        self.assertEqual(self.backend_of(h, "/exact"), "svc-a")
        self.assertEqual(self.get(h, "/exact/more").status, 404)  # Exact is exact
        self.assertEqual(self.backend_of(h, "/prefix"), "svc-b")
        self.assertEqual(self.backend_of(h, "/prefix/"), "svc-b")
        self.assertEqual(self.backend_of(h, "/prefix/deeper/x?q=1"), "svc-b")
        # PathPrefix matches whole path elements only.
        self.assertEqual(self.get(h, "/prefixed").status, 404)
        # Exact beats PathPrefix regardless of rule order.
        self.assertEqual(self.backend_of(h, "/prefix/exact"), "svc-c")
        self.assertEqual(self.backend_of(h, "/re/123"), "svc-c")
        self.assertEqual(self.get(h, "/re/12a").status, 404)

    def test_route_by_header_query_method(self):
        h = "headers.example.com"
        self.assertEqual(self.backend_of(h), "svc-a")
        self.assertEqual(self.backend_of(h, headers={"X-Version": "v2"}), "svc-b")
        self.assertEqual(self.backend_of(h, headers={"x-version": "v3"}), "svc-a")
        self.assertEqual(self.backend_of(h, "/?variant=c"), "svc-c")
        self.assertEqual(self.backend_of(h, "/?variant=d"), "svc-a")
        self.assertEqual(self.backend_of(h, method="DELETE"), "svc-c")

    def test_filters(self):
        h = "filters.example.com"
        r = self.get(h, "/modify", headers={"X-Custom": "from-client"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["x_custom"], "from-route")
        self.assertEqual(r.headers.get("x-route"), "filters")
        self.assertEqual(r.headers.get("x-backend"), "svc-a,via-route")  # appended to nginx's
        # add appends to the value a request already has ("my-header: foo,bar,baz"
        # in HTTPHeaderFilter.Add), names compared case-insensitively.
        r = self.get(h, "/add", headers={"X-Custom": "from-client"})
        self.assertEqual(r.json()["x_custom"], "from-client,added")
        self.assertEqual(self.get(h, "/add").json()["x_custom"], "added")
        # ... but a cookie is a cookie of its own ("; " between them, RFC 6265 5.4): joined
        # with ',', nginx read cookie a as "1,b=2".
        r = self.get(h, "/add", headers={"Cookie": "a=1"})
        self.assertEqual((r.json()["cookie_a"], r.json()["cookie_b"]), ("1", "2"), r.json())
        # An empty value adds no empty list element.
        self.assertEqual(self.get(h, "/add", headers={"X-Custom": ""}).json()["x_custom"],
                         "added")
        r = self.get(h, "/redirect/x")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.headers.get("location"), "https://filters.example.com/redirect/x")
        r = self.get(h, "/rewrite/x?y=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["uri"], "/rewritten/x?y=1")

    # --- load balancing and pooling -------------------------------------------

    def test_weights(self):
        counts = collections.Counter()
        n = 400
        for _ in range(n):
            counts[self.backend_of("weights.example.com")] += 1
        self.assertEqual(set(counts), {"svc-w1", "svc-w2"}, counts)
        share = counts["svc-w1"] / n
        self.assertAlmostEqual(share, 0.75, delta=0.08, msg=f"3:1 weights gave {counts}")

    def test_invalid_backend_keeps_its_share(self):
        # Gateway API: requests that would have gone to an invalid backendRef
        # get a 500; the valid backend must not take over its share.
        statuses = collections.Counter()
        n = 200
        for _ in range(n):
            r = self.get("half-invalid.example.com")
            statuses[r.status] += 1
            if r.status == 200:
                self.assertEqual(r.json()["backend"], "svc-w1")
        self.assertEqual(set(statuses), {200, 500}, statuses)
        self.assertAlmostEqual(statuses[500] / n, 0.5, delta=0.12, msg=f"1:1 gave {statuses}")

    def test_upstream_keepalive_reuse(self):
        cl = cluster_name("svc-ka")
        before_cx = self.p.stat(f"cluster.{cl}.upstream_cx_total")
        before_rq = self.p.stat(f"cluster.{cl}.upstream_rq_total")
        n = 200
        reused = 0
        for _ in range(n):  # a new client connection per request
            j = self.get("ka.example.com").json()
            self.assertEqual(j["backend"], "svc-ka")
            reused += int(j["connection_requests"]) > 1
        stats = self.p.stats()
        cx = stats.get(f"cluster.{cl}.upstream_cx_total", 0) - before_cx
        rq = stats.get(f"cluster.{cl}.upstream_rq_total", 0) - before_rq
        self.assertEqual(rq, n, f"upstream_rq_total delta {rq} for {n} requests")
        self.assertGreaterEqual(cx, 1)
        self.assertLessEqual(cx, 2 * self.p.workers + 2,
                             f"{cx} upstream connections for {n} requests: no keep-alive reuse")
        # The backend agrees: most requests arrived on a reused connection.
        self.assertGreater(reused, n - 2 * self.p.workers - 2)
        self.assertGreaterEqual(stats.get(f"cluster.{cl}.upstream_rq_2xx", 0), n)

    # --- HTTP/1.1 semantics -----------------------------------------------------

    def test_forwarded_headers_and_host(self):
        j = self.get("a.example.com:8080").json()
        self.assertEqual(j["host"], "a.example.com:8080", "Host must be kept as sent")
        self.assertEqual(j["x_forwarded_for"], "127.0.0.1")
        self.assertEqual(j["x_forwarded_proto"], "http")
        j = self.get("a.example.com", headers={"X-Forwarded-For": "203.0.113.7"}).json()
        parts = [x.strip() for x in j["x_forwarded_for"].split(",")]
        self.assertEqual(parts, ["203.0.113.7", "127.0.0.1"])

    def test_absolute_form_target_routes_by_its_authority(self):
        # RFC 9112 §3.2.2: the URI's authority overrides Host. Routed by one
        # host and forwarded with the other, a backend serving several names
        # would answer for a host the route never allowed.
        raw = raw_exchange(self.port, b"GET http://b.example.com:8080/abs?q=1 HTTP/1.1\r\n"
                           b"Host: a.example.com\r\nConnection: close\r\n\r\n")
        rs = parse_responses(raw)
        self.assertEqual([r.status for r in rs], [200], raw[:500])
        j = rs[0].json()
        self.assertEqual((j["backend"], j["uri"], j["host"]), ("svc-b", "/abs?q=1", "b.example.com:8080"))
        for bad in (b"GET http://user@a.example.com/ HTTP/1.1", b"GET a.example.com:80 HTTP/1.1",
                    b"GET ftp://a.example.com/ HTTP/1.1"):
            rs = parse_responses(raw_exchange(self.port, bad + b"\r\nHost: a.example.com\r\n\r\n"))
            self.assertEqual([r.status for r in rs], [400], bad)

    def test_connect_is_refused(self):
        raw = raw_exchange(self.port, b"CONNECT a.example.com:443 HTTP/1.1\r\n"
                           b"Host: a.example.com:443\r\n\r\nTUNNEL?")
        rs = parse_responses(raw)
        self.assertEqual([r.status for r in rs], [501], raw[:500])
        self.assertIn(b"CONNECT", rs[0].body)
        self.assertEqual(rs[0].headers.get("connection"), "close")

    def test_hop_by_hop_headers_removed(self):
        j = self.get("a.example.com", headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "must-not-pass",
            "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive",
            "TE": "gzip",
            "X-Custom": "end-to-end",
        }).json()
        self.assertEqual(j["x_hop"], "", "header named in Connection must be removed")
        self.assertEqual(j["hdr_keep_alive"], "")
        self.assertEqual(j["hdr_proxy_connection"], "")
        self.assertEqual(j["hdr_te"], "")
        self.assertNotIn("x-hop", j["hdr_connection"].lower())
        self.assertEqual(j["x_custom"], "end-to-end", "end-to-end headers must pass")

    def test_clusters_sharing_an_address_keep_their_own_connections(self):
        # Two Services with the same endpoint: one client connection (so one
        # worker's pool) asks for each in turn. The second must not borrow the
        # first one's idle upstream connection, or the connection would count
        # in one cluster's stats and carry the other's requests.
        alias = cluster_name("svc-a-alias")
        before = self.p.stat(f"cluster.{alias}.upstream_cx_total")
        raw = raw_exchange(self.port, b"GET /1 HTTP/1.1\r\nHost: a.example.com\r\n\r\n"
                           b"GET /2 HTTP/1.1\r\nHost: alias.example.com\r\nConnection: close\r\n\r\n")
        self.assertEqual([r.status for r in parse_responses(raw)], [200, 200], raw[:500])
        self.assertEqual(self.p.stat(f"cluster.{alias}.upstream_cx_total"), before + 1)
        self.assertEqual(self.p.stat(f"cluster.{alias}.upstream_rq_total"), 1)

    def test_pipelined_requests_one_connection(self):
        body = b"pipelined-body"
        reqs = (b"POST /p1 HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body
                + b"GET /p2 HTTP/1.1\r\nHost: b.example.com\r\n\r\n"
                + b"GET /p3 HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
        raw = raw_exchange(self.port, reqs, timeout=10)
        rs = parse_responses(raw)
        self.assertEqual(len(rs), 3, raw[:2000])
        got = [(r.status, r.json()["uri"], r.json()["backend"]) for r in rs]
        self.assertEqual(got, [(200, "/p1", "svc-a"), (200, "/p2", "svc-b"),
                               (200, "/p3", "svc-a")])

    def test_keepalive_downstream(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(20):
                r = request(self.port, f"/ka{i}", host="a.example.com", conn=c)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.json()["uri"], f"/ka{i}")
            sock_before = c.sock
            request(self.port, "/again", host="a.example.com", conn=c)
            self.assertIs(c.sock, sock_before, "client connection was not kept alive")
        finally:
            c.close()

    def test_expect_100_continue_upload(self):
        data = hashlib.shake_256(b"expect").digest(1 << 20)
        name = f"expect-{uuid.uuid4().hex}.bin"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall((f"PUT /upload/{name} HTTP/1.1\r\nHost: a.example.com\r\n"
                       f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n").encode())
            s.settimeout(5)
            interim = b""
            try:
                while b"\r\n\r\n" not in interim:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    interim += chunk
            except socket.timeout:
                pass
            self.assertRegex(interim.split(b"\r\n", 1)[0].decode("latin-1"),
                             r"^HTTP/1\.1 100 ",
                             f"expected 100 Continue before the body, got {interim[:200]!r}")
            s.sendall(data)
            s.settimeout(10)
            rest = interim.split(b"\r\n\r\n", 1)[1]
            while not parse_responses(rest):
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        rs = parse_responses(rest)
        self.assertTrue(rs, rest[:500])
        self.assertIn(rs[0].status, (201, 204), rs[0].text[:300])
        stored = self.ng["svc-a"].upload_dir / name
        self.assertEqual(hashlib.sha256(stored.read_bytes()).digest(),
                         hashlib.sha256(data).digest())

    def test_chunked_request_body(self):
        name = f"chunked-{uuid.uuid4().hex}.bin"
        parts = [b"a" * 1000, b"b" * 70000, b"c" * 5]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        raw = raw_exchange(self.port, (f"PUT /upload/{name} HTTP/1.1\r\nHost: a.example.com\r\n"
                                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                       ).encode() + body, timeout=10)
        rs = parse_responses(raw)
        self.assertTrue(rs and rs[-1].status in (201, 204), raw[:500])
        self.assertEqual((self.ng["svc-a"].upload_dir / name).read_bytes(), b"".join(parts))

    # --- access log -------------------------------------------------------------

    def test_access_log_line_per_request(self):
        marker = f"alog-{uuid.uuid4().hex}"
        for i in range(5):
            self.assertEqual(self.get("a.example.com", f"/{marker}/{i}").status, 200)
        self.assertEqual(self.get("nope.example.com", f"/{marker}/404").status, 404)

        def lines():
            return [ln for ln in self.p.stdout().splitlines() if marker in ln]

        self.assertEventually(lambda: len(lines()) >= 6, 5,
                              f"access log lines on stdout for {marker}: {lines()}")
        got = lines()
        self.assertEqual(len(got), 6, got)
        for i in range(5):
            self.assertEqual(sum(bool(re.search(rf"/{marker}/{i}\b", ln)) for ln in got), 1, got)
        self.assertTrue(any(re.search(r"\b404\b", ln) for ln in got if "/404" in ln), got)
        self.assertTrue(all(re.search(r"\b200\b", ln) for ln in got if "/404" not in ln), got)


if __name__ == "__main__":
    unittest.main()
