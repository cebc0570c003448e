"""Error answers: each failure mode gets its own status code and a short
body that names the reason (Envoy-like), and the right cluster stats move."""

import re
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, blackhole_handler, cluster_name,
                     endpoint_slice, free_port, garbage_handler, gateway, gateway_class,
                     http_route, listener, match, parse_responses, raw_exchange, read_request_head,
                     request, rule, service)


def switching_handler(sock):
    """Answers every request with a 101 whatever it asked for."""
    while read_request_head(sock):
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\nraw bytes")


def answer_by_path(answers: dict[bytes, bytes]):
    """A backend that reads one request, answers with the bytes given for the
    longest prefix of its path, and closes."""
    def handler(sock):
        parts = read_request_head(sock).split(b" ", 2)
        path = parts[1] if len(parts) > 1 else b"/"
        sock.sendall(answers[max((p for p in answers if path.startswith(p)), key=len)])
    return handler


# A transfer coding other than chunked: gzip then chunked, or gzip alone
# (body until close).
gzip_coded_handler = answer_by_path({
    b"/gzip/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      b"4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
    b"/": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00"})

# A good response broken off, all in one write: a chunk-size line that isn't
# one, or 10 of 100 bytes then close.
cut_short_handler = answer_by_path({
    b"/cut/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    b"/": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"})


class ErrorAnswersTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ok = cls.start_nginx("svc-ok")
        cls.garbage = cls.start_py(garbage_handler)
        cls.blackhole = cls.start_py(blackhole_handler)
        cls.switching = cls.start_py(switching_handler)
        cls.gzip_coded = cls.start_py(gzip_coded_handler)
        cls.cut_short = cls.start_py(cut_short_handler)
        cls.refused_port = free_port()  # nothing listens here
        cls.port = free_port()
        ref = lambda n: backend_ref(n, 80)  # noqa: E731
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-ok", cls.ok.port)
        docs += backend("svc-garbage", cls.garbage.port)
        docs += backend("svc-blackhole", cls.blackhole.port)
        docs += backend("svc-refused", cls.refused_port)
        docs += backend("svc-switching", cls.switching.port)
        docs += backend("svc-gzip", cls.gzip_coded.port)
        docs += backend("svc-cut", cls.cut_short.port)
        docs += [service("svc-noep"), endpoint_slice("svc-noep", 8080, addresses=[])]
        docs += [service("svc-noslice")]
        # One dead endpoint and one live one: the dead one must be skipped.
        docs += [service("svc-mixed"),
                 endpoint_slice("svc-mixed", cls.refused_port, name="svc-mixed-dead"),
                 endpoint_slice("svc-mixed", cls.ok.port, name="svc-mixed-live")]
        docs += [http_route("errors", [
            rule([ref("svc-ok")], [match("/ok")]),
            rule([ref("svc-garbage")], [match("/garbage")]),
            rule([ref("svc-blackhole")], [match("/timeout")], timeout="1s"),
            rule([ref("svc-blackhole")], [match("/backend-timeout")], timeout="30s",
                 backend_timeout="1s"),
            rule([ref("svc-refused")], [match("/refused")]),
            rule([ref("svc-switching")], [match("/switching")]),
            rule([ref("svc-gzip")], [match("/gzip")]),
            rule([ref("svc-cut")], [match("/cut")]),
            rule([ref("svc-noep")], [match("/noep")]),
            rule([ref("svc-noslice")], [match("/noslice")]),
            rule([ref("svc-mixed")], [match("/mixed")]),
        ], hostnames=["errors.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("errors.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def get(self, path, **kw):
        return request(self.port, path, host="errors.example.com", **kw)

    def assertAnswer(self, r, status, *reason_words):
        self.assertEqual(r.status, status, r.text[:300])
        self.assertTrue(r.body.strip(), f"{status} body should name the reason")
        for w in reason_words:
            self.assertIn(w.lower(), r.text.lower(), f"{status} body {r.text[:200]!r}")
        self.assertNotIn("x-backend", r.headers, "the proxy, not a backend, must answer")

    def test_ok_baseline(self):
        r = self.get("/ok")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["backend"], "svc-ok")

    def test_503_no_endpoint(self):
        self.assertAnswer(self.get("/noep"), 503, "no healthy upstream")
        self.assertAnswer(self.get("/noslice"), 503, "no healthy upstream")
        st = self.p.stats()
        self.assertGreaterEqual(st.get(f"cluster.{cluster_name('svc-noep')}.upstream_cx_none_healthy", 0), 1)
        self.assertEqual(st.get(f"cluster.{cluster_name('svc-noep')}.membership_total"), 0)

    def test_503_connect_refused(self):
        cl = cluster_name("svc-refused")
        before = self.p.stat(f"cluster.{cl}.upstream_cx_connect_fail")
        r = self.get("/refused")
        self.assertAnswer(r, 503, "connect")
        self.assertGreater(self.p.stat(f"cluster.{cl}.upstream_cx_connect_fail"), before)

    def test_refusing_endpoint_is_skipped(self):
        st = self.p.stats(r"svc-mixed.*membership")
        self.assertEqual(st.get(f"cluster.{cluster_name('svc-mixed')}.membership_total"), 2, st)
        for i in range(20):
            r = self.get(f"/mixed/{i}")
            self.assertEqual(r.status, 200, f"request {i}: {r.text[:200]}")
            self.assertEqual(r.json()["backend"], "svc-ok")

    def assertTimesOutAfterOneSecond(self, path: str, what: str):
        t0 = time.monotonic()
        r = self.get(path, timeout=15)
        elapsed = time.monotonic() - t0
        self.assertAnswer(r, 504, "timeout")
        self.assertGreaterEqual(elapsed, 0.9, f"{what} is 1s")
        self.assertLess(elapsed, 4.0, f"{what} is 1s")

    def test_504_backend_request_timeout(self):
        # timeouts.backendRequest (1s) under a longer timeouts.request (30s): one try to the
        # backend, so the shorter one answers.
        self.assertTimesOutAfterOneSecond("/backend-timeout", "timeouts.backendRequest")

    def test_502_bad_upstream_response(self):
        r = self.get("/garbage")
        self.assertEqual(r.status, 502, r.text[:300])
        self.assertTrue(r.body.strip(), "502 body should name the reason")
        cl = cluster_name("svc-garbage")
        self.assertGreaterEqual(self.p.stat(f"cluster.{cl}.upstream_rq_5xx"), 1)

    def test_502_for_101_to_a_request_without_upgrade(self):
        # Forwarded, the 101 was followed on the same connection by the answer
        # to the next pipelined request: found by test_chaos.
        raw = raw_exchange(self.port, b"GET /switching HTTP/1.1\r\nHost: errors.example.com\r\n\r\n"
                           b"GET /ok HTTP/1.1\r\nHost: errors.example.com\r\n\r\n")
        rs = parse_responses(raw)
        self.assertEqual([r.status for r in rs], [502], raw[:500])
        self.assertEqual(rs[0].headers.get("connection"), "close")
        cl = cluster_name("svc-switching")
        self.assertGreaterEqual(self.p.stat(f"cluster.{cl}.upstream_rq_5xx"), 1)

    def test_502_for_a_transfer_coding_other_than_chunked(self):
        # Re-chunked, the gzip coding was dropped: the client got "chunked"
        # with gzip bytes inside (found with test_chaos's garbage backend).
        for path in ("/gzip/chunked", "/gzip/until-close"):
            r = self.get(path)
            self.assertEqual(r.status, 502, f"{path}: {r.headers} {r.body[:100]!r}")
            self.assertNotIn(b"\x1f\x8b", r.body, path)

    def test_response_broken_off_reaches_the_client_cut_short(self):
        # The head and body so far still go out, framed so the cut shows (no
        # last chunk; fewer bytes than Content-Length), then the connection
        # closes. Before, the client got nothing at all.
        raw = raw_exchange(self.port, b"GET /cut/chunked HTTP/1.1\r\nHost: errors.example.com\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw[:300])
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        self.assertEqual(body, b"5\r\nhello\r\n", "the chunk so far, and no last chunk")
        self.assertEqual(parse_responses(raw), [], "not a complete response")
        raw = raw_exchange(self.port, b"GET /cut/length HTTP/1.1\r\nHost: errors.example.com\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), raw[:300])
        self.assertIn(b"content-length: 100", head.lower())
        self.assertEqual(body, b"0123456789")
        for line in (r'"GET /cut/chunked HTTP/1.1" 200 UPE ', r'"GET /cut/length HTTP/1.1" 200 UC '):
            self.assertEventually(lambda: re.search(line, self.p.stdout()), 5,
                                  f"access log line {line}")

    def test_504_route_timeout(self):
        cl = cluster_name("svc-blackhole")
        self.assertTimesOutAfterOneSecond("/timeout", "timeouts.request")
        self.assertGreaterEqual(self.p.stat(f"cluster.{cl}.upstream_rq_timeout"), 1)

    def test_431_huge_header(self):
        r = self.get("/ok", headers={"X-Big": "a" * (128 * 1024)})
        self.assertEqual(r.status, 431, r.text[:300])
        self.assertNotIn("x-backend", r.headers)
        # Many moderate headers adding up count too.
        raw = raw_exchange(self.port, b"GET /ok HTTP/1.1\r\nHost: errors.example.com\r\n"
                           + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(200))
                           + b"\r\n")
        rs = parse_responses(raw)
        self.assertTrue(rs, raw[:300])
        self.assertEqual(rs[0].status, 431)

    def test_refused_head_request_gets_no_body(self):
        # RFC 9110 §9.3.2: no answer to HEAD has content, a local 4xx for a
        # head too big or malformed included. The body after a 431 once
        # reached a HEAD client as stray bytes (found by test_chaos).
        heads = {
            431: b"HEAD /ok HTTP/1.1\r\nHost: errors.example.com\r\nX-Big: "
                 + b"a" * (70 * 1024) + b"\r\n\r\n",
            400: b"HEAD /ok HTTP/1.1\r\nHost: errors.example.com\r\nBad Name: x\r\n\r\n",
        }
        heads["431 by count"] = (b"HEAD /ok HTTP/1.1\r\nHost: errors.example.com\r\n"
                                 + b"".join(b"X-H%d: b\r\n" % i for i in range(200)) + b"\r\n")
        heads["414"] = b"HEAD /" + b"u" * (20 * 1024) + b" HTTP/1.1\r\nHost: e\r\n\r\n"
        heads["400 bare LF"] = b"HEAD /ok HTTP/1.1\nHost: errors.example.com\r\n\r\n"
        for case, req in heads.items():
            raw = raw_exchange(self.port, req)
            head, sep, rest = raw.partition(b"\r\n\r\n")
            self.assertTrue(sep, f"{case}: {raw[:300]!r}")
            self.assertTrue(head.startswith(b"HTTP/1.1 %d " % int(str(case)[:3])), head[:200])
            self.assertEqual(rest, b"", f"{case}: bytes after the head of a HEAD answer")
            # The Content-Length a GET would have got is still announced.
            self.assertRegex(head.lower().decode(), r"content-length: [1-9]", case)

    def test_414_huge_uri(self):
        r = self.get("/ok/" + "u" * (128 * 1024))
        self.assertEqual(r.status, 414, r.text[:300])
        self.assertNotIn("x-backend", r.headers)

    def test_400_malformed_request(self):
        raw = raw_exchange(self.port, b"GARBAGE\r\n\r\n")
        rs = parse_responses(raw)
        self.assertTrue(rs, f"expected an HTTP 400 answer, got {raw[:200]!r}")
        self.assertEqual(rs[0].status, 400)

    def test_still_serving_after_errors(self):
        for path in ("/garbage", "/refused", "/noep"):
            self.get(path)
        self.assertTrue(self.p.alive())
        self.assertEqual(self.get("/ok").status, 200)


if __name__ == "__main__":
    unittest.main()
