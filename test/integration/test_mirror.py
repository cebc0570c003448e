"""HTTPRoute RequestMirror through the real binary: real nginx backends log
what reached them (primary and mirror), uploads land on both; the client only
ever sees the primary's answer, whatever happens to the copy."""

import http.client
import os
import socket
import time
import uuid

import harness as h
import tls_helpers as t

# nginx logs each request it gets: method, URI, Host, the route's header, XFF, body length.
LOG_FORMAT = ("log_format mirror '$request_method $request_uri host=$host "
              "custom=$http_x_custom xff=$http_x_forwarded_for len=$content_length';")


def logging_nginx(cls, name: str, **kw) -> h.Nginx:
    n = h.Nginx(cls.tmp, name, extra_http=LOG_FORMAT, **kw)
    n.extra_server = f"access_log {n.dir}/access.log mirror;"
    cls.addClassCleanup(n.stop)
    return n.start()


def log_lines(n: h.Nginx, needle: str) -> list[str]:
    p = n.dir / "access.log"
    if not p.exists():
        return []
    return [line for line in p.read_text().splitlines() if needle in line]


def mirror_filter(service: str, port: int = 80, percent: int | None = None,
                  fraction: tuple[int, int] | None = None) -> dict:
    m: dict = {"backendRef": {"name": service, "port": port}}
    if percent is not None:
        m["percent"] = percent
    if fraction is not None:
        m["fraction"] = {"numerator": fraction[0], "denominator": fraction[1]}
    return {"type": "RequestMirror", "requestMirror": m}


class MirrorTest(h.PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = h.CertFactory(cls.tmp / "certs")
        root = certs.ca("root-ca")
        leaf = certs.leaf("shadow", root, dns=["shadow.example.com"])
        cls.primary = logging_nginx(cls, "primary")
        cls.shadow = logging_nginx(cls, "shadow")
        cls.shadow2 = logging_nginx(cls, "shadow2")
        cls.shadow_tls = logging_nginx(cls, "shadow-tls", tls=leaf)
        cls.blackhole = cls.start_py(h.blackhole_handler)
        cls.refused_port = h.free_port()  # nothing listens there
        cls.port = h.free_port()
        cls.p = cls.make_portico()
        ref = lambda n: h.backend_ref(n, 80)  # noqa: E731
        header = {"type": "RequestHeaderModifier",
                  "requestHeaderModifier": {"set": [{"name": "X-Custom", "value": "routed"}]}}
        docs = [h.gateway_class(), h.gateway("gw", [h.listener(cls.port)])]
        docs += h.backend("primary", cls.primary.port)
        docs += h.backend("shadow", cls.shadow.port)
        docs += h.backend("shadow2", cls.shadow2.port)
        docs += h.backend("blackhole", cls.blackhole.port)
        docs += h.backend("refused", cls.refused_port)
        docs += t.tls_backend("shadow-tls", cls.shadow_tls.port)
        docs += [
            t.ca_config_map("shadow-ca", root.pem()),
            t.backend_tls_policy("shadow-tls", "shadow-tls", "shadow.example.com",
                                 ca_refs=[t.ca_ref("shadow-ca")]),
            h.http_route("all", [h.rule([ref("primary")], filters=[header, mirror_filter("shadow")])],
                         hostnames=["all.example.com"]),
            h.http_route("two", [h.rule([ref("primary")], filters=[
                mirror_filter("shadow"), mirror_filter("shadow2")])], hostnames=["two.example.com"]),
            h.http_route("half", [h.rule([ref("primary")], filters=[
                mirror_filter("shadow", fraction=(1, 2))])], hostnames=["half.example.com"]),
            h.http_route("none", [h.rule([ref("primary")], filters=[
                mirror_filter("shadow", percent=0)])], hostnames=["none.example.com"]),
            h.http_route("down", [h.rule([ref("primary")], filters=[mirror_filter("refused")])],
                         hostnames=["down.example.com"]),
            h.http_route("stuck", [h.rule([ref("primary")], filters=[mirror_filter("blackhole")],
                                          timeout="1s")], hostnames=["stuck.example.com"]),
            h.http_route("missing", [h.rule([ref("primary")], filters=[mirror_filter("nope")])],
                         hostnames=["missing.example.com"]),
            h.http_route("tls", [h.rule([ref("primary")], filters=[
                mirror_filter("shadow-tls", 443)])], hostnames=["tls.example.com"]),
        ]
        cls.p.write("all.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def unique(self) -> str:
        return "/m-" + uuid.uuid4().hex[:12]

    def wait_lines(self, n: h.Nginx, needle: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        self.assertEventually(lambda: len(log_lines(n, needle)) >= count, timeout,
                              f"{n.name} never logged {count} x {needle}")
        return log_lines(n, needle)

    def test_get_is_copied_as_the_primary_gets_it(self):
        path = self.unique()
        r = h.request(self.port, path + "?q=1", host="all.example.com")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers.get("x-backend"), "primary")  # the answer is the primary's
        primary = self.wait_lines(self.primary, path)
        shadow = self.wait_lines(self.shadow, path)
        self.assertEqual(len(shadow), 1, shadow)
        self.assertIn(f"GET {path}?q=1 host=all.example.com custom=routed xff=127.0.0.1", shadow[0])
        self.assertEqual(primary[0], shadow[0])

    def test_several_mirrors_each_get_a_copy(self):
        path = self.unique()
        self.assertEqual(h.request(self.port, path, host="two.example.com").status, 200)
        self.wait_lines(self.shadow, path)
        self.wait_lines(self.shadow2, path)

    def upload(self, host: str, path: str, body: bytes, chunked: bool) -> h.Response:
        head = f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        if chunked:
            data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
            for i in range(0, len(body), 7000):
                piece = body[i:i + 7000]
                data += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            data += b"0\r\n\r\n"
        else:
            data = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        responses = h.parse_responses(h.raw_exchange(self.port, data))
        self.assertEqual(len(responses), 1)
        return responses[0]

    def test_bodies_are_copied_whole(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                body = os.urandom(200 * 1024)
                name = uuid.uuid4().hex + ".bin"
                r = self.upload("all.example.com", "/upload/" + name, body, chunked)
                self.assertEqual(r.status, 201, r.body)
                self.assertEqual((self.primary.upload_dir / name).read_bytes(), body)
                copy = self.shadow.upload_dir / name
                self.assertEventually(lambda: copy.exists() and copy.read_bytes() == body, 5,
                                      f"mirror upload {name} (chunked={chunked})")

    def test_fraction_samples_and_zero_percent_never_copies(self):
        tag = self.unique()
        n = 200
        for i in range(n):
            self.assertEqual(h.request(self.port, f"{tag}/{i}", host="half.example.com").status, 200)
            self.assertEqual(h.request(self.port, f"{tag}/none/{i}",
                                       host="none.example.com").status, 200)
        self.wait_lines(self.primary, f"{tag}/none/{n - 1} ")
        time.sleep(0.3)  # copies in flight land
        copied = len([x for x in log_lines(self.shadow, tag) if "/none/" not in x])
        # Binomial(200, 0.5): mean 100, sd ~7; outside 60..140 is a broken sampler.
        self.assertTrue(60 <= copied <= 140, f"{copied} of {n} copied with fraction 1/2")
        self.assertEqual(log_lines(self.shadow, f"{tag}/none/"), [])

    def test_unreachable_mirror_does_not_touch_the_request(self):
        cluster = h.cluster_name("refused")
        before = self.p.stat(f"cluster.{cluster}.upstream_cx_connect_fail")
        for _ in range(5):
            r = h.request(self.port, self.unique(), host="down.example.com")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers.get("x-backend"), "primary")
        self.assertEventually(
            lambda: self.p.stat(f"cluster.{cluster}.upstream_cx_connect_fail") >= before + 5, 5,
            "connect failures of the mirror counted in its cluster")

    def test_stuck_mirror_times_out_without_delaying_the_request(self):
        cluster = h.cluster_name("blackhole")
        before = self.p.stat(f"cluster.{cluster}.upstream_rq_timeout")
        start = time.monotonic()
        r = h.request(self.port, self.unique(), host="stuck.example.com")
        elapsed = time.monotonic() - start
        self.assertEqual(r.status, 200, r.body)
        self.assertLess(elapsed, 0.9, "the answer waited for the mirror")
        self.assertEventually(
            lambda: self.p.stat(f"cluster.{cluster}.upstream_rq_timeout") == before + 1, 5,
            "the mirror's request timed out at the route's 1s")

    def host_stat(self, cluster: str, field_name: str) -> int:
        _, body = self.p.admin("/clusters")
        return sum(int(parts[3]) for parts in (line.split("::") for line in body.splitlines())
                   if len(parts) == 4 and parts[0] == cluster and parts[2] == field_name)

    def test_failed_copies_count_as_failed_requests_do(self):
        # What the cluster would count had the copy been the primary request:
        # a 504 and the host's rq_timeout for a timeout, a 503 for a refused
        # connection; no completed request for either.
        stuck, down = h.cluster_name("blackhole"), h.cluster_name("refused")
        names = [f"cluster.{stuck}.upstream_rq_504", f"cluster.{down}.upstream_rq_503",
                 f"cluster.{stuck}.upstream_rq_completed", f"cluster.{down}.upstream_rq_completed"]
        before = {n: self.p.stat(n) for n in names}
        timeouts = self.host_stat(stuck, "rq_timeout")
        self.assertEqual(h.request(self.port, self.unique(), host="stuck.example.com").status, 200)
        self.assertEqual(h.request(self.port, self.unique(), host="down.example.com").status, 200)
        self.assertEventually(lambda: self.p.stat(names[0]) == before[names[0]] + 1, 5,
                              "the mirror's timeout counted as a 504")
        self.assertEventually(lambda: self.p.stat(names[1]) == before[names[1]] + 1, 5,
                              "the mirror's refused connection counted as a 503")
        self.assertEqual(self.host_stat(stuck, "rq_timeout"), timeouts + 1)
        for n in names[2:]:
            self.assertEqual(self.p.stat(n), before[n], n)

    def test_missing_mirror_service_is_reported_and_requests_still_served(self):
        r = h.request(self.port, self.unique(), host="missing.example.com")
        self.assertEqual(r.status, 200, r.body)
        route = t.find_object(t.status_items(self.p), "HTTPRoute", "missing")
        conds = {c["type"]: c for c in route["status"]["parents"][0]["conditions"]}
        self.assertEqual(t.cond(conds, "Accepted"), ("True", "Accepted"))
        self.assertEqual(t.cond(conds, "ResolvedRefs"), ("False", "BackendNotFound"))
        self.assertIn("requestMirror.backendRef", conds["ResolvedRefs"]["message"])

    def test_mirror_to_a_tls_backend_follows_its_policy(self):
        path = self.unique()
        cluster = h.cluster_name("shadow-tls", 443)
        before = self.p.stat(f"cluster.{cluster}.ssl.handshake")
        self.assertEqual(h.request(self.port, path, host="tls.example.com").status, 200)
        self.wait_lines(self.shadow_tls, path)
        self.assertGreater(self.p.stat(f"cluster.{cluster}.ssl.handshake"), before)

    def test_client_gone_mid_body_drops_the_copy(self):
        # Half a body, then the client leaves: the mirror must not send a
        # request that looks complete (nginx logs a 400/408 or nothing).
        name = uuid.uuid4().hex + ".bin"
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"PUT /upload/{name} HTTP/1.1\r\nHost: all.example.com\r\n"
                  f"Content-Length: 100000\r\n\r\n".encode() + b"x" * 50000)
        time.sleep(0.3)
        s.close()
        time.sleep(0.5)
        self.assertFalse((self.shadow.upload_dir / name).exists())
        self.assertFalse((self.primary.upload_dir / name).exists())
        # Still serving.
        self.assertEqual(h.request(self.port, self.unique(), host="all.example.com").status, 200)


def peer_handler(sock: socket.socket) -> None:
    """Keep-alive backend that says which of its connections answered
    (X-Peer: the client port Portico connected from). Bodyless requests only."""
    buf = b""
    while True:
        got = h.next_head(sock, buf)
        if got is None:
            return
        _, buf = got
        peer = str(sock.getpeername()[1]).encode()
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Peer: " + peer + b"\r\n\r\nok\n")


def early_answer_handler(sock: socket.socket) -> None:
    """Answers as soon as the head is in, without reading the body, then closes."""
    h.read_request_head(sock)
    sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n")
    sock.close()


class MirrorEdgeTest(h.PorticoCase):
    """The copy's own failures and odd requests: the answer stays the
    primary's, the mirror cluster's stats balance."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = h.CertFactory(cls.tmp / "certs")
        root = certs.ca("root-ca")
        other = certs.ca("other-ca")
        leaf = certs.leaf("shadow", root, dns=["shadow.example.com"])
        cls.primary = logging_nginx(cls, "primary")
        cls.shadow = logging_nginx(cls, "shadow")
        cls.shadow_tls = logging_nginx(cls, "shadow-tls", tls=leaf)
        cls.peer = cls.start_py(peer_handler)
        cls.garbage = cls.start_py(h.garbage_handler)
        cls.early = cls.start_py(early_answer_handler)
        cls.port = h.free_port()
        cls.p = cls.make_portico()
        ref = lambda n: h.backend_ref(n, 80)  # noqa: E731
        docs = [h.gateway_class(), h.gateway("gw", [h.listener(cls.port)])]
        docs += h.backend("primary", cls.primary.port)
        docs += h.backend("shadow", cls.shadow.port)
        docs += h.backend("peer", cls.peer.port)
        # Another Service whose endpoint is the same address as "peer".
        docs += h.backend("peer-copy", cls.peer.port)
        docs += h.backend("garbage", cls.garbage.port)
        docs += h.backend("early", cls.early.port)
        docs += t.tls_backend("badca", cls.shadow_tls.port)
        docs += t.tls_backend("closed", cls.shadow_tls.port)
        docs += [
            t.ca_config_map("other-ca", other.pem()),
            t.backend_tls_policy("badca", "badca", "shadow.example.com",
                                 ca_refs=[t.ca_ref("other-ca")]),
            t.backend_tls_policy("closed", "closed", "shadow.example.com",
                                 ca_refs=[t.ca_ref("no-such-ca")]),
            h.http_route("all", [h.rule([ref("primary")], filters=[mirror_filter("shadow")])],
                         hostnames=["all.example.com"]),
            h.http_route("plain", [h.rule([ref("peer")])], hostnames=["plain.example.com"]),
            h.http_route("shared", [h.rule([ref("peer")], filters=[mirror_filter("peer-copy")])],
                         hostnames=["shared.example.com"]),
            h.http_route("garbage", [h.rule([ref("primary")], filters=[mirror_filter("garbage")])],
                         hostnames=["garbage.example.com"]),
            h.http_route("early", [h.rule([ref("primary")], filters=[mirror_filter("early")])],
                         hostnames=["early.example.com"]),
            h.http_route("badca", [h.rule([ref("primary")], filters=[
                mirror_filter("badca", 443)])], hostnames=["badca.example.com"]),
            h.http_route("closed", [h.rule([ref("primary")], filters=[
                mirror_filter("closed", 443)])], hostnames=["closed.example.com"]),
        ]
        cls.p.write("all.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def unique(self) -> str:
        return "/m-" + uuid.uuid4().hex[:12]

    def assertSettled(self, service: str, port: int = 80):
        c = h.cluster_name(service, port)
        self.assertEventually(lambda: self.p.stat(f"cluster.{c}.upstream_rq_active", -1) == 0, 5,
                              f"{c} upstream_rq_active back to 0")
        _, body = self.p.admin("/clusters")
        for line in body.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == c and parts[2] == "rq_active":
                self.assertEqual(parts[3], "0", line)

    def test_primary_keeps_its_warm_connection(self):
        # Only one idle connection to the shared address: the primary's, from
        # a request without a mirror. The next request (mirrored to another
        # Service with the same address) must still get it. One client
        # connection: one worker, so one pool.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            first = h.request(self.port, "/a", host="plain.example.com", conn=conn)
            time.sleep(0.1)
            second = h.request(self.port, "/b", host="shared.example.com", conn=conn)
        finally:
            conn.close()
        self.assertEqual(first.status, 200)
        self.assertEqual(second.status, 200)
        self.assertEqual(first.headers["x-peer"], second.headers["x-peer"],
                         "the mirror took the primary's pooled connection")
        self.assertSettled("peer-copy")

    def test_garbage_from_the_mirror(self):
        c = h.cluster_name("garbage")
        before = self.p.stats()
        for _ in range(3):
            r = h.request(self.port, self.unique(), host="garbage.example.com")
            self.assertEqual(r.status, 200, r.body)
        self.assertEventually(
            lambda: self.p.stat(f"cluster.{c}.upstream_rq_502") >= before.get(
                f"cluster.{c}.upstream_rq_502", 0) + 3, 5, "502s counted")
        self.assertSettled("garbage")
        # As for the primary: a response that isn't HTTP is no completed request.
        self.assertEqual(self.p.stat(f"cluster.{c}.upstream_rq_completed"),
                         before.get(f"cluster.{c}.upstream_rq_completed", 0))

    def test_mirror_answering_before_the_body(self):
        body = os.urandom(300 * 1024)
        for _ in range(3):
            r = h.request(self.port, "/upload/" + uuid.uuid4().hex, host="early.example.com",
                          method="PUT", body=body)
            self.assertEqual(r.status, 201, r.body)
        self.assertSettled("early")

    def test_tls_mirror_that_fails_verification_or_closed(self):
        for host, svc in (("badca.example.com", "badca"), ("closed.example.com", "closed")):
            with self.subTest(svc):
                c = h.cluster_name(svc, 443)
                before = self.p.stat(f"cluster.{c}.upstream_cx_connect_fail")
                r = h.request(self.port, self.unique(), host=host)
                self.assertEqual(r.status, 200, r.body)
                self.assertSettled(svc, 443)
                if svc == "badca":
                    self.assertEventually(
                        lambda: self.p.stat(f"cluster.{c}.upstream_cx_connect_fail") > before, 5)
        self.assertEqual(log_lines(self.shadow_tls, "/m-"), [])

    def test_head_then_get_on_pooled_mirror_connections(self):
        tag = self.unique()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(4):
                method = "HEAD" if i % 2 == 0 else "GET"
                r = h.request(self.port, f"{tag}/{i}", host="all.example.com", method=method,
                              conn=conn)
                self.assertEqual(r.status, 200)
                self.assertEventually(lambda: len(log_lines(self.shadow, f"{tag}/{i} ")) == 1, 5,
                                      f"mirror never logged {tag}/{i}")
        finally:
            conn.close()
        self.assertSettled("shadow")

    def test_expect_continue_upload_is_copied(self):
        body = os.urandom(100 * 1024)
        name = uuid.uuid4().hex + ".bin"
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(f"PUT /upload/{name} HTTP/1.1\r\nHost: all.example.com\r\n"
                  f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n"
                  "Connection: close\r\n\r\n".encode())
        got = s.recv(100)
        self.assertTrue(got.startswith(b"HTTP/1.1 100"), got)
        s.sendall(body)
        rest = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        s.close()
        self.assertIn(b" 201 ", rest)
        copy = self.shadow.upload_dir / name
        self.assertEventually(lambda: copy.exists() and copy.read_bytes() == body, 5)
        self.assertSettled("shadow")

    def test_pipelined_uploads_each_copied_once(self):
        names = [uuid.uuid4().hex + ".bin" for _ in range(3)]
        bodies = [os.urandom(20 * 1024 + i) for i in range(3)]
        data = b""
        for i, (n, b) in enumerate(zip(names, bodies)):
            conn = "Connection: close\r\n" if i == 2 else ""
            if i == 1:
                data += (f"PUT /upload/{n} HTTP/1.1\r\nHost: all.example.com\r\n{conn}"
                         "Transfer-Encoding: chunked\r\n\r\n").encode()
                data += f"{len(b):x}\r\n".encode() + b + b"\r\n0\r\n\r\n"
            else:
                data += (f"PUT /upload/{n} HTTP/1.1\r\nHost: all.example.com\r\n{conn}"
                         f"Content-Length: {len(b)}\r\n\r\n").encode() + b
        responses = h.parse_responses(h.raw_exchange(self.port, data))
        self.assertEqual([r.status for r in responses], [201, 201, 201])
        for n, b in zip(names, bodies):
            copy = self.shadow.upload_dir / n
            self.assertEventually(lambda: copy.exists() and copy.read_bytes() == b, 5, n)
        for n in names:
            self.assertEqual(len(log_lines(self.shadow, n)), 1)
        self.assertSettled("shadow")


class MirrorLifecycleTest(h.PorticoCase):
    """Copies in flight across a reload that removes their cluster and a
    SIGTERM drain (run it against an ASan build to see lifetimes)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.primary = logging_nginx(cls, "primary")
        cls.blackhole = cls.start_py(h.blackhole_handler)

    def docs(self, port: int, mirrored: bool, timeout: str = "1s") -> list:
        ref = h.backend_ref("primary", 80)
        docs = [h.gateway_class(), h.gateway("gw", [h.listener(port)])]
        docs += h.backend("primary", self.primary.port)
        filters = None
        if mirrored:
            docs += h.backend("blackhole", self.blackhole.port)
            filters = [mirror_filter("blackhole")]
        docs.append(h.http_route("r", [h.rule([ref], filters=filters, timeout=timeout)]))
        return docs

    def start(self, timeout: str = "1s") -> tuple[h.Portico, int]:
        port = h.free_port()
        p = h.Portico(self.tmp / uuid.uuid4().hex[:8], workers=1)
        self.addCleanup(p.stop, check=False)
        p.write("all.yaml", self.docs(port, True, timeout))
        p.start(wait_ports=[port])
        return p, port

    def test_reload_removes_the_mirror_cluster_mid_copy(self):
        p, port = self.start()
        cluster = h.cluster_name("blackhole")
        for _ in range(3):
            self.assertEqual(h.request(port, "/x").status, 200)
        version = t.config_version(p)
        p.write("all.yaml", self.docs(port, False))
        t.wait_reload(p, version)
        self.assertEventually(lambda: p.stat(f"cluster.{cluster}.upstream_rq_timeout") == 3, 5)
        self.assertEqual(p.stat(f"cluster.{cluster}.upstream_rq_active", -1), 0)
        self.assertEqual(h.request(port, "/y").status, 200)
        self.assertEqual(p.stop(), 0)

    def test_sigterm_with_copies_in_flight(self):
        p, port = self.start(timeout="30s")
        for _ in range(3):
            self.assertEqual(h.request(port, "/x").status, 200)
        # And one still being fed its body when the drain starts.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"PUT /upload/sig.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        time.sleep(0.2)
        p.terminate()
        time.sleep(0.2)
        s.sendall(b"67890")
        got = s.recv(4096)
        s.close()
        self.assertIn(b" 201 ", got)
        self.assertEqual(p.wait(10), 0, p.stderr()[-3000:])

    def test_second_signal_with_a_copy_being_fed(self):
        p, port = self.start(timeout="30s")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"PUT /upload/sig2.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        time.sleep(0.2)
        p.terminate()
        time.sleep(0.2)
        p.terminate()
        rc = p.wait(10)
        s.close()
        self.assertIn(rc, (0, 1), p.stderr()[-3000:])
        self.assertNotIn("Sanitizer", p.stderr())
