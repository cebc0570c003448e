"""Downstream limits with their answers: too many connections (503 and
close), a slow request head (408), and the idle timeout (an idle keep-alive
connection, and a client that stops reading a response), set from the
command line."""

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
        # A HEAD request's 408 has no body either (RFC 9110 §9.3.2).
        s = socket.create_connection(("127.0.0.1", self.port))
        try:
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: l.example.com\r\n")  # never finished
            raw = self.read_all(s, timeout=6)
        finally:
            s.close()
        head, sep, rest = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 408 ") and sep, raw[:200])
        self.assertEqual(rest, b"", "bytes after the head of a HEAD answer")


class IdleTimeoutTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-i", large_file_mib=16)
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-i", cls.ng.port)
        docs += [http_route("i", [rule([backend_ref("svc-i", 80)])], hostnames=["i.example.com"])]
        cls.p = cls.make_portico(workers=1, extra_args=["--idle-timeout", "1"])
        cls.p.write("idle.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def active(self):
        return self.p.stat(f"listener.127.0.0.1_{self.port}.downstream_cx_active")

    def http_stat(self, suffix):
        """A counter summed over the http.<prefix>. scopes (one per listener)."""
        return sum(v for k, v in self.p.stats().items()
                   if k.startswith("http.") and k.endswith("." + suffix) and isinstance(v, int))

    def test_idle_keep_alive_connection_is_closed(self):
        closed_before = self.http_stat("downstream_cx_idle_timeout")
        s = socket.create_connection(("127.0.0.1", self.port))
        try:
            s.sendall(b"GET /large/small.txt HTTP/1.1\r\nHost: i.example.com\r\n\r\n")
            s.settimeout(5)
            got = b""
            while b"small file" not in got:
                got += s.recv(65536)
            t0 = time.monotonic()
            rest = s.recv(65536)  # nothing more is sent: the server closes after 1 s idle
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(rest, b"")
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 4.0)
        # Envoy's name for it: http.<prefix>.downstream_cx_idle_timeout.
        self.assertEventually(
            lambda: self.http_stat("downstream_cx_idle_timeout") - closed_before >= 1, 3)

    def test_client_that_stops_reading_a_response_is_closed(self):
        # 16 MiB asked for, nothing read: the backend's answer fills the
        # socket buffers and Portico's own, then the writes stall. Without a
        # timeout for that, the connection (and its buffered response) would
        # stay forever.
        cut_before = self.http_stat("downstream_rq_idle_timeout")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        try:
            s.sendall(b"GET /large/big.bin HTTP/1.1\r\nHost: i.example.com\r\n\r\n")
            self.assertEventually(lambda: self.active() >= 1, 5, "not accepted")
            t0 = time.monotonic()
            self.assertEventually(lambda: self.active() == 0, 8,
                                  "a connection whose client stopped reading stayed open")
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertGreaterEqual(elapsed, 0.5)
        self.assertGreaterEqual(self.http_stat("downstream_rq_idle_timeout") - cut_before, 1)

    def download(self, rcvbuf, read):
        """GET the 16 MiB file on a connection with SO_RCVBUF `rcvbuf`;
        read(sock) consumes the body as it likes and returns the bytes it got."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", self.port))
        s.settimeout(10)
        try:
            s.sendall(b"GET /large/big.bin HTTP/1.1\r\nHost: i.example.com\r\n"
                      b"Connection: close\r\n\r\n")
            return read(s)
        finally:
            s.close()

    def test_slow_but_reading_client_is_not_cut(self):
        # Reads 16 MiB over ~3 s in small bites: the writes stall all the time,
        # but never for the 1 s idle timeout, so the download completes.
        def read(s):
            total, t0 = 0, time.monotonic()
            while chunk := s.recv(256 * 1024):
                total += len(chunk)
                if time.monotonic() - t0 < 3:
                    time.sleep(0.02)
            return total

        self.assertGreater(self.download(65536, read), 16 * 1024 * 1024, "download cut short")

    def test_client_slowing_down_after_a_fast_start_is_not_cut(self):
        # A fast start lets the kernel grow Portico's send buffer; then the
        # client reads ~160 KB/s for 3 s. Linux reports the socket writable
        # again only once a third of that buffer drained, which at this pace
        # takes longer than the 1 s idle timeout: the stall check must count
        # bytes leaving the send queue as progress, or this reader is cut.
        def read(s):
            total = 0
            while total < 4 * 1024 * 1024 and (chunk := s.recv(1 << 20)):
                total += len(chunk)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3 and (chunk := s.recv(16384)):
                total += len(chunk)
                time.sleep(0.1)
            while chunk := s.recv(1 << 20):
                total += len(chunk)
            return total

        self.assertGreater(self.download(32768, read), 16 * 1024 * 1024, "download cut short")

if __name__ == "__main__":
    unittest.main()
