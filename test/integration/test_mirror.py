"""HTTPRoute RequestMirror through the real binary: real nginx backends log
what reached them (primary and mirror), uploads land on both; the client only
ever sees the primary's answer, whatever happens to the copy."""

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
