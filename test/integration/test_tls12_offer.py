"""Backend TLS, the narrowed offer: a connection resuming a TLS 1.2 session
offers TLS 1.2 only, so it sends no TLS 1.3 key share (an X25519 key
generation per connection that a TLS 1.2 server ignores; scenario 3 of
docs/benchmarks.md against the seed's TLS 1.2 backend).

It must cost nothing in safety or availability:
- a backend that gains TLS 1.3 answers the narrowed offer with TLS 1.3's
  downgrade sentinel, and the next connection offers 1.3 again;
- a backend that drops TLS 1.2 fails the narrowed handshake, and the same
  request is retried on the same endpoint with the full offer;
- the same holds when the narrowed handshake times out instead (something
  on the way drops such offers);
- the retry does not use up one of the request's attempts at another endpoint;
- a request with a body (which cannot be re-sent) never narrows;
- a policy capping the version at 1.2 keeps resuming against a 1.3 server.

The backends are Python ssl servers that record each ClientHello's
extensions, the version negotiated and whether the session was resumed.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import unittest

import harness as h
import tls_helpers as t

KEY_SHARE = 0x0033
SUPPORTED_VERSIONS = 0x002B
HOST = "backend.example.com"


def client_hello_extensions(data: bytes) -> set[int]:
    """Extension types of a ClientHello handshake message (with its 4-byte header)."""
    if data[:1] != b"\x01":
        return set()
    p = 4 + 2 + 32  # header, legacy_version, random
    p += 1 + data[p]  # session id
    p += 2 + int.from_bytes(data[p:p + 2], "big")  # cipher suites
    p += 1 + data[p]  # compression methods
    end = p + 2 + int.from_bytes(data[p:p + 2], "big")
    p += 2
    types = set()
    while p + 4 <= end:
        types.add(int.from_bytes(data[p:p + 2], "big"))
        p += 4 + int.from_bytes(data[p + 2:p + 4], "big")
    return types


def peek_hello(sock: socket.socket) -> set[int]:
    """The extensions of the ClientHello waiting on `sock`, left unread."""
    data = b""
    for _ in range(100):
        data = sock.recv(16384, socket.MSG_PEEK)
        if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
            break
        time.sleep(0.01)
    return client_hello_extensions(data[5:])


class RecordingBackend:
    """Answers one request per connection and closes, so every request is a
    new upstream connection. The versions it accepts can change while it
    runs (same SSLContext, so its session tickets stay valid)."""

    def __init__(self, cert, min_version=ssl.TLSVersion.TLSv1_2,
                 max_version=ssl.TLSVersion.TLSv1_3):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert.chain), str(cert.key))
        self.set_versions(min_version, max_version)
        self.hellos: list[set[int]] = []  # per ClientHello, failed handshakes too
        self.done: list[tuple[str, bool]] = []  # (version, resumed) per served request
        self.lock = threading.Lock()

        def on_msg(conn, direction, version, content_type, msg_type, data):
            if direction == "read" and content_type == ssl._TLSContentType.HANDSHAKE \
                    and msg_type == ssl._TLSMessageType.CLIENT_HELLO:
                with self.lock:
                    self.hellos.append(client_hello_extensions(data))

        self.ctx._msg_callback = on_msg
        # "serve"; "refuse": close each connection at once (a crashed
        # backend); "ignore-narrowed": never answer a ClientHello without
        # supported_versions (a TLS 1.2-only offer), as a middlebox might.
        self.mode = "serve"
        self.ignored = 0

    def set_versions(self, lo, hi) -> None:
        self.ctx.minimum_version = lo
        self.ctx.maximum_version = hi

    def handler(self, sock) -> None:
        if self.mode == "refuse":
            sock.close()
            return
        if self.mode == "ignore-narrowed" and SUPPORTED_VERSIONS not in peek_hello(sock):
            self.ignored += 1
            while sock.recv(4096):  # until Portico gives up and closes
                pass
            return
        tls = self.ctx.wrap_socket(sock, server_side=True)
        head = h.read_request_head(tls)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            body += chunk
        with self.lock:
            self.done.append((tls.version(), tls.session_reused))
        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        tls.close()

    def mark(self) -> tuple[int, int]:
        with self.lock:
            return len(self.hellos), len(self.done)


class Tls12OfferTest(h.PorticoCase):
    BACKENDS = {
        # name: (min, max) TLS versions at the start
        "v12": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "v13": (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
        "gains13": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "drops12": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "body": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "capped": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
        "silent": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "pair-a": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        "pair-b": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
    }

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        f = h.CertFactory(cls.tmp / "certs")
        root = f.ca("root-ca")
        leaf = f.leaf("backend", root, dns=[HOST])
        cls.port = h.free_port()
        # One worker: sessions are cached per worker.
        cls.p = cls.make_portico(workers=1)
        docs = [h.gateway_class(), h.gateway("gw", [h.listener(cls.port)]),
                t.ca_config_map("root-ca", root.pem())]
        cls.b = {}
        ports = {}
        for name, (lo, hi) in cls.BACKENDS.items():
            be = RecordingBackend(leaf, lo, hi)
            cls.b[name] = be
            ports[name] = cls.start_py(be.handler).port
        # Service "pair": two endpoints, pair-a and pair-b.
        docs += [h.service("pair", 443, port_name="https"),
                 h.endpoint_slice("pair", ports["pair-a"], "https", name="pair-1"),
                 h.endpoint_slice("pair", ports["pair-b"], "https", name="pair-2"),
                 t.backend_tls_policy("pair", "pair", HOST, ca_refs=[t.ca_ref("root-ca")]),
                 t.route_to("pair", "pair.test", "pair", parent="gw", parent_namespace=None)]
        for name, port in ports.items():
            if name.startswith("pair-"):
                continue
            options = {"portico.dev/max-tls-version": "1.2"} if name == "capped" else None
            docs += t.tls_backend(name, port)
            docs += [t.backend_tls_policy(name, name, HOST, ca_refs=[t.ca_ref("root-ca")],
                                          options=options),
                     t.route_to(name, f"{name}.test", name, parent="gw", parent_namespace=None)]
        cls.p.write("backends.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def fetch(self, name: str, n: int = 1, method: str = "GET", body: bytes | None = None):
        for i in range(n):
            r = h.request(self.port, "/", host=f"{name}.test", method=method, body=body)
            self.assertEqual((r.status, r.body), (200, b"ok"), f"{name}: request {i + 1}")

    def connection_errors(self, name: str) -> int:
        return self.p.stat(f"cluster.{h.cluster_name(name, 443)}.ssl.connection_error")

    def test_tls12_backend_is_resumed_without_a_key_share(self):
        be = self.b["v12"]
        self.fetch("v12", 5)
        self.assertEqual(len(be.hellos), 5, "one upstream connection per request")
        self.assertIn(KEY_SHARE, be.hellos[0], "the first connection offers TLS 1.3 too")
        for i in range(1, 5):
            self.assertNotIn(KEY_SHARE, be.hellos[i], f"connection {i + 1} sent a key share")
            self.assertNotIn(SUPPORTED_VERSIONS, be.hellos[i], f"connection {i + 1}")
        self.assertEqual(be.done, [("TLSv1.2", False)] + [("TLSv1.2", True)] * 4)

    def test_tls13_backend_always_gets_the_full_offer(self):
        be = self.b["v13"]
        self.fetch("v13", 4)
        self.assertEqual(len(be.hellos), 4)
        for i, ext in enumerate(be.hellos):
            self.assertIn(KEY_SHARE, ext, f"connection {i + 1}")
            self.assertIn(SUPPORTED_VERSIONS, ext, f"connection {i + 1}")
        self.assertEqual(be.done, [("TLSv1.3", False)] + [("TLSv1.3", True)] * 3)

    def test_backend_that_gains_tls13_is_offered_it_again(self):
        be = self.b["gains13"]
        self.fetch("gains13", 3)
        self.assertNotIn(KEY_SHARE, be.hellos[2], "narrowed before the upgrade")
        be.set_versions(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
        hellos, done = be.mark()
        self.fetch("gains13", 3)
        # The narrowed offer still gets 1.2 (resumed), with the sentinel in the
        # server's random; the session is dropped, so the next one offers 1.3.
        self.assertNotIn(KEY_SHARE, be.hellos[hellos])
        self.assertEqual(be.done[done], ("TLSv1.2", True))
        self.assertIn(KEY_SHARE, be.hellos[hellos + 1], "TLS 1.3 offered again")
        self.assertEqual(be.done[done + 1:], [("TLSv1.3", False), ("TLSv1.3", True)])

    def test_backend_that_drops_tls12_fails_no_request(self):
        be = self.b["drops12"]
        self.fetch("drops12", 3)
        self.assertNotIn(KEY_SHARE, be.hellos[2], "narrowed before the change")
        errors = self.connection_errors("drops12")
        be.set_versions(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
        hellos, done = be.mark()
        self.fetch("drops12", 3)
        # The narrowed handshake fails; the same request retries, full offer.
        self.assertNotIn(KEY_SHARE, be.hellos[hellos], "the narrowed offer")
        self.assertIn(KEY_SHARE, be.hellos[hellos + 1], "the retry")
        self.assertEqual(len(be.hellos), hellos + 4, "one retry")
        self.assertEqual(be.done[done:], [("TLSv1.3", False), ("TLSv1.3", True), ("TLSv1.3", True)])
        self.assertEqual(self.connection_errors("drops12") - errors, 1)

    def test_narrowed_offer_that_times_out_is_retried_with_the_full_offer(self):
        be = self.b["silent"]
        self.fetch("silent", 2)
        self.assertNotIn(KEY_SHARE, be.hellos[1], "narrowed before the change")
        be.mode = "ignore-narrowed"
        hellos, done = be.mark()
        t0 = time.monotonic()
        self.fetch("silent", 3)  # the first waits out the 5 s connect timeout
        self.assertGreater(time.monotonic() - t0, 4.5)
        self.assertEqual(be.ignored, 1, "no more narrowed offers once one went unanswered")
        for i in (0, 1, 2):
            self.assertIn(KEY_SHARE, be.hellos[hellos + i], f"connection {i + 1} after")
        self.assertEqual(be.done[done:], [("TLSv1.2", False)] + [("TLSv1.2", True)] * 2)

    def test_retry_does_not_use_up_the_failover_to_another_endpoint(self):
        a, b = self.b["pair-a"], self.b["pair-b"]
        self.fetch("pair", 4)  # sessions with both
        self.assertTrue(a.done and b.done, "both endpoints served")
        a.mode = "refuse"
        try:
            # A request for pair-a: narrowed handshake fails, the full one
            # fails, then pair-b serves it.
            self.fetch("pair", 4)
        finally:
            a.mode = "serve"

    def test_request_with_a_body_is_never_narrowed(self):
        be = self.b["body"]
        self.fetch("body", 1)
        self.fetch("body", 2, method="POST", body=b"x" * 1000)
        self.assertEqual(len(be.hellos), 3)
        for i in (1, 2):
            self.assertIn(KEY_SHARE, be.hellos[i], f"POST {i}: its body could not be re-sent")
        self.assertEqual([r for _, r in be.done], [False, True, True], "still resumed")

    def test_policy_capped_at_tls12_keeps_resuming_a_tls13_server(self):
        # The server sends the downgrade sentinel every time; since the policy,
        # not Portico, limits the offer, the sessions must be kept.
        be = self.b["capped"]
        self.fetch("capped", 4)
        self.assertEqual(be.done, [("TLSv1.2", False)] + [("TLSv1.2", True)] * 3)
        for ext in be.hellos:
            self.assertNotIn(KEY_SHARE, ext)


if __name__ == "__main__":
    unittest.main()
