"""Downstream limits with their answers: too many connections (503 and
close) and a slow request head (408), set from the command line."""

import socket
import time
import unittest

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, parse_responses, request, rule)


class LimitsTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-l")
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-l", cls.ng.port)
        docs += [http_route("l", [rule([backend_ref("svc-l", 80)])], hostnames=["l.example.com"])]
        cls.p = cls.make_portico(workers=1, extra_args=[
            "--max-connections", "2", "--request-headers-timeout", "1"])
        cls.p.write("limits.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def read_all(self, sock, timeout=5.0):
        sock.settimeout(timeout)
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
        return buf

    def test_connection_over_the_limit_gets_503_and_close(self):
        lst = f"listener.127.0.0.1_{self.port}.downstream_cx_overflow"
        active = f"listener.127.0.0.1_{self.port}.downstream_cx_active"
        # Start from no open connections: the harness's port probe must be
        # accepted and closed first, or it would count against the limit (one
        # served request shows the worker accepts; the probe queued before it).
        self.assertEqual(request(self.port, "/", host="l.example.com").status, 200)
        self.assertEventually(lambda: self.p.stat(active) == 0, 5, "connections still open")
        before = self.p.stat(lst)
        held = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(2)]
        try:
            self.assertEventually(
                lambda: self.p.stat(active) >= 2, 5,
                "the two held connections were not accepted")
            extra = socket.create_connection(("127.0.0.1", self.port))
            raw = self.read_all(extra)  # the server answers and closes without a request
            extra.close()
            rs = parse_responses(raw)
            self.assertTrue(rs, raw[:200])
            self.assertEqual(rs[0].status, 503)
            self.assertIn(b"too many connections", raw)
            self.assertEqual(self.p.stat(lst), before + 1)
        finally:
            for s in held:
                s.close()
        # Below the limit again: requests are served.
        self.assertEventually(lambda: request(self.port, "/", host="l.example.com").status == 200,
                              5, "not serving after the held connections closed")

    def test_slow_request_head_gets_408(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: l.example.com\r\n")  # never finished
            t0 = time.monotonic()
            raw = self.read_all(s, timeout=6)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        rs = parse_responses(raw)
        self.assertTrue(rs, raw[:200])
        self.assertEqual(rs[0].status, 408)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 4.0)


if __name__ == "__main__":
    unittest.main()
