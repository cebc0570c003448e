"""HTTP/1.1 intermediary behaviour (RFC 9110 / RFC 9112 proxy requirements,
Envoy's defaults as the reference): what a scripted backend sees of odd
requests, and what a client sees of odd responses."""

import socket
import threading
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, cluster_name, free_port, gateway,
                     gateway_class, http_route, listener, match, next_head, parse_responses,
                     raw_exchange, rule)

HOST = b"i.example.com"

# Scripted answers by path prefix (the longest one that matches wins).
ANSWERS = {
    b"/": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"/204/cl5": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"/204/cl0": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    b"/204/chunked": b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"/dated": b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok",
    b"/status/600": b"HTTP/1.1 600 Beyond\r\nContent-Length: 2\r\n\r\nok",
    b"/switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"/100/cl": (b"HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
}


class Recorder:
    """A keep-alive backend that records each request head it gets and
    answers from ANSWERS."""

    def __init__(self):
        self.heads: list[bytes] = []
        self.lock = threading.Lock()

    def seen(self) -> list[bytes]:
        with self.lock:
            return list(self.heads)

    def paths(self) -> list[bytes]:
        return [h.split(b" ", 2)[1] for h in self.seen()]

    def clear(self) -> None:
        with self.lock:
            self.heads.clear()

    def handler(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            got = next_head(sock, buf)
            if got is None:
                return
            head, buf = got
            length, chunked = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.split(b",")[0].strip())
                elif name.strip().lower() == b"transfer-encoding":
                    chunked = True
            # A chunked body is taken to end at the first last-chunk: the
            # test bodies here hold no "0\r\n\r\n" of their own.
            while (b"0\r\n\r\n" not in buf) if chunked else (len(buf) < length):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf.split(b"0\r\n\r\n", 1)[1] if chunked else buf[length:]
            with self.lock:
                self.heads.append(head)
            path = head.split(b" ", 2)[1]
            best = max((p for p in ANSWERS if path.startswith(p)), key=len, default=b"/")
            sock.sendall(ANSWERS[best])
            if ANSWERS[best].endswith(b"CLOSE"):
                return


class IntermediaryTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.app = Recorder()
        cls.admin = Recorder()
        cls.app_srv = cls.start_py(cls.app.handler)
        cls.admin_srv = cls.start_py(cls.admin.handler)
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-app", cls.app_srv.port)
        docs += backend("svc-admin", cls.admin_srv.port)
        docs += [http_route("i", [
            rule([backend_ref("svc-admin", 80)], [match("/admin", "Exact")]),
            rule([backend_ref("svc-app", 80)], [match("/")]),
        ], hostnames=[HOST.decode()])]
        cls.p = cls.make_portico()
        cls.p.write("intermediary.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def setUp(self):
        self.app.clear()
        self.admin.clear()

    def exchange(self, data: bytes, responses: int = 1) -> list:
        raw = raw_exchange(self.port, data, timeout=5, read_until_close=False,
                           expect_responses=responses)
        return raw, parse_responses(raw)

    def get(self, target: bytes, extra: bytes = b"") -> tuple[bytes, list]:
        return self.exchange(b"GET " + target + b" HTTP/1.1\r\nHost: " + HOST + b"\r\n" + extra +
                             b"\r\n")

    def test_baseline(self):
        raw, rs = self.get(b"/x")
        self.assertEqual([r.status for r in rs], [200], raw)
        self.assertEqual(self.app.paths(), [b"/x"])

    def test_fragment_in_target_is_refused(self):
        # Routed as "/admin#x" it missed the Exact /admin rule and reached
        # svc-app, which (like nginx) may cut at '#' and serve /admin. Envoy
        # answers 400 (http_reject_path_with_fragment).
        for target in (b"/admin#x", b"/x?q#frag"):
            raw, rs = self.get(target)
            self.assertEqual([r.status for r in rs], [400], raw)
        self.assertEqual(self.app.seen() + self.admin.seen(), [])

    def test_invalid_host_is_refused(self):
        # The route match drops ":<port>" by cutting at the last ':', so each
        # of these was routed as i.example.com while the backend read
        # another path or host out of the field (RFC 9112 §3.2: 400).
        for host in (b"i.example.com:80/evil", b"i.example.com:@evil.example",
                     b"i.example.com:x"):
            raw, rs = self.exchange(b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertEqual([r.status for r in rs], [400], (host, raw))
        self.assertEqual(self.app.seen(), [])
        raw, rs = self.exchange(b"GET /x HTTP/1.1\r\nHost: i.example.com:8080\r\n\r\n")
        self.assertEqual([r.status for r in rs], [200], raw)

    def test_1xx_or_204_with_body_framing_is_a_bad_response(self):
        # Before, "204 + Content-Length: 5" reached the client as it was: one
        # framing by the header waits for 5 bytes or eats the next response's.
        # Envoy: require_strict_1xx_and_204_response_headers, a 502.
        cl = cluster_name("svc-app")
        before = self.p.stat(f"cluster.{cl}.upstream_rq_502")
        for path in (b"/204/cl5", b"/204/chunked", b"/100/cl"):
            raw, rs = self.get(path)
            self.assertEqual([r.status for r in rs], [502], (path, raw))
        self.assertEqual(self.p.stat(f"cluster.{cl}.upstream_rq_502") - before, 3)
        # "Content-Length: 0" is harmless: dropped, the 204 passes, and the
        # connection carries the next request.
        raw, rs = self.exchange(b"GET /204/cl0 HTTP/1.1\r\nHost: i.example.com\r\n\r\n"
                                b"GET /x HTTP/1.1\r\nHost: i.example.com\r\n\r\n", 2)
        self.assertEqual([r.status for r in rs], [204, 200], raw)
        self.assertNotIn("content-length", rs[0].headers)

    def test_every_x_forwarded_for_field_is_kept(self):
        # Two fields are one list (RFC 9110 §5.3); before, the second one's
        # hop was dropped from what the backend saw.
        raw, rs = self.get(b"/x", b"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n")
        self.assertEqual([r.status for r in rs], [200], raw)
        fields = [ln for ln in self.app.seen()[0].split(b"\r\n")
                  if ln.lower().startswith(b"x-forwarded-for:")]
        self.assertEqual(fields, [b"x-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"])

    def test_request_id_is_generated_or_kept(self):
        # Envoy's generate_request_id: each request without one reaches the backend with a
        # fresh version 4 UUID; a client's own passes unchanged, once.
        uuid4 = rb"^x-request-id: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
        for _ in range(2):
            raw, rs = self.get(b"/rid")
            self.assertEqual([r.status for r in rs], [200], raw)
        raw, rs = self.get(b"/rid", b"X-Request-Id: client-chosen-42\r\n")
        self.assertEqual([r.status for r in rs], [200], raw)
        ids = [[ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"x-request-id:")]
               for head in self.app.seen()]
        self.assertEqual([len(i) for i in ids], [1, 1, 1], ids)
        for generated in (ids[0][0], ids[1][0]):
            self.assertRegex(generated, uuid4)
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(ids[2][0].split(b":", 1)[1].strip(), b"client-chosen-42")

    def test_responses_carry_a_date(self):
        # RFC 9110 §6.6.1: the origin (Portico, for its own replies) sends
        # Date; a proxy adds one to a response that lacks it. Before, neither
        # a local reply nor a Date-less backend response had one.
        date_re = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$"
        raw, rs = self.get(b"/x")
        self.assertEqual([r.status for r in rs], [200], raw)
        self.assertRegex(rs[0].headers.get("date", ""), date_re)
        got = time.mktime(time.strptime(rs[0].headers["date"], "%a, %d %b %Y %H:%M:%S GMT"))
        self.assertLess(abs(got - time.mktime(time.gmtime())), 5)
        raw, rs = self.exchange(b"GET /x HTTP/1.1\r\nHost: nowhere.example\r\n\r\n")
        self.assertEqual([r.status for r in rs], [404], raw)
        self.assertRegex(rs[0].headers.get("date", ""), date_re)
        raw, rs = self.get(b"/dated")
        self.assertEqual([(k.lower(), v) for k, v in rs[0].header_list if k.lower() == "date"],
                         [("date", "Sun, 06 Nov 1994 08:49:37 GMT")], "the backend's is kept")

    def test_path_is_normalized_before_routing(self):
        # RFC 3986 §6.2.2 (Envoy's normalize_path): before, each of these
        # missed the Exact /admin rule and reached svc-app as sent, where a
        # backend resolving dots or escapes itself serves /admin.
        for target in (b"/public/../admin", b"/%61dmin", b"/./admin", b"/x/%2e%2E/admin"):
            raw, rs = self.get(target)
            self.assertEqual([r.status for r in rs], [200], (target, raw))
        self.assertEqual(self.admin.paths(), [b"/admin"] * 4)
        self.assertEqual(self.app.seen(), [])
        raw, rs = self.get(b"/a%2Fb/%7euser?q=/../x")  # %2F stays; the query is left alone
        self.assertEqual(self.app.paths(), [b"/a%2Fb/~user?q=/../x"])
        raw, rs = self.get(b"/bad%zz")
        self.assertEqual([r.status for r in rs], [400], raw)

    def test_status_outside_100_to_599_is_a_bad_response(self):
        # RFC 9110 §15: invalid; forwarded, a client can't know its class.
        raw, rs = self.get(b"/status/600")
        self.assertEqual([r.status for r in rs], [502], raw)

    def test_upgrade_in_http10_request_is_ignored(self):
        # RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request;
        # so the backend never sees it asked for, and its 101 is refused.
        raw, rs = self.exchange(b"GET /switch HTTP/1.0\r\nHost: i.example.com\r\n"
                                b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        self.assertEqual([r.status for r in rs], [502], raw)
        head = self.app.seen()[0].lower()
        self.assertNotIn(b"upgrade", head)

    def test_repeated_identical_content_length_passes_as_one(self):
        # RFC 9110 §8.6 allows replacing the list with its one value; nginx
        # answers 400 to the repetition.
        raw, rs = self.exchange(b"POST /x HTTP/1.1\r\nHost: i.example.com\r\n"
                                b"Content-Length: 2, 2\r\nContent-Length: 2\r\n\r\nhi")
        self.assertEqual([r.status for r in rs], [200], raw)
        fields = [ln for ln in self.app.seen()[0].split(b"\r\n")
                  if ln.lower().startswith(b"content-length:")]
        self.assertEqual([f.split(b":")[1].strip() for f in fields], [b"2"])


if __name__ == "__main__":
    unittest.main()
