"""The stream idle timeout of upgraded connections (--stream-idle-timeout,
Envoy's stream_idle_timeout): a tunnel on which no byte moves either way for
that long is closed on both sides and logged with flag SI; a tunnel with
traffic in either direction (or a peer still draining what was sent) stays."""

import socket
import subprocess
import threading
import time
import unittest
import uuid

from harness import (PorticoCase, backend, backend_ref, free_port, gateway, gateway_class,
                     http_route, listener, read_request_head, rule, ws_accept)

TIMEOUT_S = 1  # --stream-idle-timeout
FLOOD = 16 << 20  # bytes the /flood backend sends down the tunnel


class TunnelBackend:
    """Answers an upgrade with 101, then acts by path: /echo-* echoes,
    /sink-* reads and drops, /drip-* sends 4 bytes every 0.3 s for 3 s
    without reading, /flood-* sends FLOOD bytes. Every mode waits for the
    end of the connection and records when it saw it (ends[path])."""

    def __init__(self):
        self.ends: dict[str, float | str] = {}
        self.lock = threading.Lock()

    def handler(self, sock: socket.socket) -> None:
        head = read_request_head(sock)
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                      + ws_accept(hdrs["sec-websocket-key"]) + "\r\n\r\n").encode())
        sock.settimeout(20)  # a tunnel Portico never closes ends here
        end: float | str = "timeout"
        try:
            if path.startswith("/echo-") and rest:
                sock.sendall(rest)
            if path.startswith("/drip-"):
                for _ in range(10):
                    sock.sendall(b"drip")
                    time.sleep(0.3)
            if path.startswith("/flood-"):
                sock.sendall(b"f" * FLOOD)
            while chunk := sock.recv(65536):
                if path.startswith("/echo-"):
                    sock.sendall(chunk)
            end = time.monotonic()
        except socket.timeout:
            pass
        except OSError:  # a reset is an end too
            end = time.monotonic()
        with self.lock:
            self.ends[path] = end

    def end(self, path: str) -> float | str | None:
        with self.lock:
            return self.ends.get(path)


class TunnelIdleTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.be = TunnelBackend()
        cls.py = cls.start_py(cls.be.handler)
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-t", cls.py.port)
        docs += [http_route("t", [rule([backend_ref("svc-t", 80)])],
                            hostnames=["t.example.com"])]
        cls.p = cls.make_portico(workers=1,
                                 extra_args=["--stream-idle-timeout", str(TIMEOUT_S)])
        cls.p.write("tunnel.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def tearDown(self):
        self.assertTrue(self.p.alive(), "portico died:\n" + self.p.stderr()[-3000:])

    def open_tunnel(self, mode: str, rcvbuf: int = 0) -> tuple[socket.socket, str]:
        path = f"/{mode}-{uuid.uuid4().hex}"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", self.port))
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: t.example.com\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)  # byte by byte: leave what follows the head in the socket
            self.assertTrue(chunk, f"closed during the handshake: {head!r}")
            head += chunk
        self.assertIn(b" 101 ", head.split(b"\r\n", 1)[0], head[:200])
        return s, path

    def recv_n(self, s: socket.socket, n: int) -> bytes:
        """Exactly n bytes from the tunnel; fails the test if it closes first."""
        got = b""
        while len(got) < n:
            chunk = s.recv(65536)
            self.assertTrue(chunk, f"tunnel closed after {got!r}")
            got += chunk
        return got

    def assertEchoed(self, s: socket.socket, msg: bytes):
        s.sendall(msg)
        self.assertEqual(self.recv_n(s, len(msg)), msg)

    def idle_timeouts(self) -> int:
        """http.<prefix>.downstream_rq_idle_timeout, summed over the listeners."""
        return sum(v for k, v in self.p.stats().items()
                   if k.startswith("http.") and k.endswith(".downstream_rq_idle_timeout")
                   and isinstance(v, int))

    def assertLoggedSI(self, path: str, idle_timeouts_before: int):
        """The tunnel's access log line (text format, on stdout) says 101 SI,
        and Envoy's counter for it went up."""
        def line():
            return next((ln for ln in self.p.stdout().splitlines() if path in ln), None)

        self.assertEventually(lambda: line() is not None, 5, "no access log line")
        self.assertRegex(line(), rf'"GET {path} HTTP/1\.1" 101 SI ')
        self.assertGreaterEqual(self.idle_timeouts() - idle_timeouts_before, 1)

    # (1) + (3)
    def test_silent_tunnel_is_closed_on_both_sides_and_logged_si(self):
        before = self.idle_timeouts()
        s, path = self.open_tunnel("echo")
        t0 = time.monotonic()
        try:
            s.settimeout(8)
            try:
                rest = s.recv(65536)
            except ConnectionResetError:
                rest = b""
            except socket.timeout:
                self.fail("a tunnel with no traffic was not closed within 8 s")
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(rest, b"")
        self.assertGreaterEqual(elapsed, 0.8 * TIMEOUT_S)
        self.assertLess(elapsed, 3.0)
        self.assertTrue(self.p.wait_for(lambda: self.be.end(path) is not None, 5),
                        "the backend never saw the tunnel end")
        end = self.be.end(path)
        self.assertIsInstance(end, float, "the backend's side was not closed by Portico")
        self.assertLess(end - t0, 3.5)
        self.assertLoggedSI(path, before)

    # (2): traffic both ways keeps the tunnel open far past the timeout
    def test_busy_tunnel_stays_open(self):
        s, path = self.open_tunnel("echo")
        try:
            t0, i = time.monotonic(), 0
            while time.monotonic() - t0 < 3 * TIMEOUT_S:
                self.assertEchoed(s, f"m{i:04d}".encode())
                i += 1
                time.sleep(0.3)
            self.assertGreaterEqual(i, 9)
            self.assertEchoed(s, b"still-there")
            self.assertIsNone(self.be.end(path), "the backend saw the tunnel end")
        finally:
            s.close()

    # Any byte in either direction restarts the wait: client -> backend only.
    def test_client_to_backend_traffic_alone_keeps_it_open(self):
        s, path = self.open_tunnel("sink")
        try:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3 * TIMEOUT_S:
                s.sendall(b"tick")
                time.sleep(0.3)
            self.assertIsNone(self.be.end(path), "the backend saw the tunnel end")
            s.settimeout(0.2)
            with self.assertRaises(socket.timeout, msg="tunnel closed"):
                s.recv(1)
        finally:
            s.close()

    # ... and backend -> client only.
    def test_backend_to_client_traffic_alone_keeps_it_open(self):
        s, path = self.open_tunnel("drip")
        try:
            self.assertEqual(self.recv_n(s, 40), b"drip" * 10)
            self.assertIsNone(self.be.end(path), "the backend saw the tunnel end")
        finally:
            s.close()

    # A client reading slowly: after a fast start the kernel grew Portico's
    # send buffer, and Linux reports the socket writable again only once a
    # third of it drained, which at this pace takes longer than the timeout.
    # Bytes leaving the send queue are traffic: the tunnel must not be cut.
    def test_slow_reader_of_a_busy_tunnel_is_not_cut(self):
        s, path = self.open_tunnel("flood", rcvbuf=32768)
        try:
            total = 0
            while total < 4 << 20:
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, f"tunnel closed after {total} bytes")
                total += len(chunk)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3 * TIMEOUT_S:
                chunk = s.recv(16384)
                self.assertTrue(chunk, f"tunnel cut while reading slowly, after {total} bytes")
                total += len(chunk)
                time.sleep(0.1)
            while total < FLOOD:
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, f"tunnel closed after {total} bytes")
                total += len(chunk)
            self.assertEqual(total, FLOOD)
        finally:
            s.close()

    # ... but a client that stops reading altogether is cut: bytes stuck in the
    # send queues earn one more period, not an unlimited one.
    def test_client_that_stops_reading_is_cut(self):
        before = self.idle_timeouts()
        s, path = self.open_tunnel("flood", rcvbuf=4096)
        t0 = time.monotonic()
        try:
            self.assertTrue(self.p.wait_for(lambda: self.be.end(path) is not None, 8),
                            "a tunnel whose client stopped reading stayed open")
        finally:
            s.close()
        end = self.be.end(path)
        self.assertIsInstance(end, float, "the backend's side was not closed by Portico")
        self.assertLess(end - t0, 2 * TIMEOUT_S + 2.5)
        self.assertLoggedSI(path, before)

    def test_option_is_validated(self):
        for bad in ("0", "86401", "x"):
            out = subprocess.run([str(self.p.binary), "run", "--config", str(self.p.config_dir),
                                  "--stream-idle-timeout", bad],
                                 capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn("--stream-idle-timeout needs 1..86400 seconds", out.stderr)


if __name__ == "__main__":
    unittest.main()
