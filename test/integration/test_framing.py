"""Message framing on a kept-alive client connection when Portico answers by
itself: a request body it never read must not be parsed as the next request
(that would be request smuggling)."""

import socket
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, parse_responses, rule)


class LocalReplyFramingTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-f")
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-f", cls.ng.port)
        docs += [http_route("f", [rule([backend_ref("svc-f", 80)])], hostnames=["f.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("framing.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def test_unread_body_after_404_is_not_a_request(self):
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: f.example.com\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            # The head alone first: the 404 is decided before any body arrives.
            s.sendall(b"POST /x HTTP/1.1\r\nHost: nope.example.com\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(smuggled))
            first = s.recv(65536)
            self.assertIn(b" 404 ", first.split(b"\r\n", 1)[0])
            time.sleep(0.1)
            try:
                s.sendall(smuggled)  # the body, shaped like a request
            except OSError:
                pass  # already closed: fine
            rest = b""
            s.settimeout(2)
            while True:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                rest += chunk
        finally:
            s.close()
        responses = parse_responses(first + rest)
        self.assertEqual([r.status for r in responses], [404], (first + rest)[:500])
        self.assertIn(b"connection: close", first.lower())


    def test_active_gauges_return_to_zero_after_a_broken_request_body(self):
        cl = "cluster.kube_default_svc-f_80"
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"PUT /upload/broken HTTP/1.1\r\nHost: f.example.com\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.2)  # dispatched upstream, body streaming
            s.sendall(b"zz\r\n")  # not a chunk size
            s.settimeout(3)
            got = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        rs = parse_responses(got)
        self.assertEqual([r.status for r in rs], [400], got[:300])
        self.assertEventually(lambda: self.p.stat(f"{cl}.upstream_rq_active", -1) == 0, 5,
                              "upstream_rq_active did not return to 0")
        self.assertEventually(
            lambda: self.p.stat(f"http.127.0.0.1_{self.port}.downstream_rq_active", -1) == 0, 5,
            "downstream_rq_active did not return to 0")


if __name__ == "__main__":
    unittest.main()
