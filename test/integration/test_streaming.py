"""Bodies are streamed both ways with backpressure (memory stays flat while
100 MiB goes through), and WebSocket upgrades are tunnelled."""

import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import threading
import time
import unittest

import tls_helpers as t
from harness import (CertFactory, PorticoCase, backend, backend_ref, free_port, gateway,
                     gateway_class, http_route, listener, next_head, read_request_head, rule,
                     websocket_echo_handler, ws_frame, ws_handshake, ws_read_frame)

MIB = 1 << 20
SIZE_MIB = 100
# RSS growth allowed while 100 MiB passes through: far below the body size,
# so buffering the body (or a large part of it) fails the test.
MAX_GROWTH_KIB = 40 * 1024


def h2c_capable_handler(sock):
    """Takes an h2c upgrade the way an HTTP/2 server would (101, then HTTP/2
    bytes); answers anything else with 200 and the request head it saw."""
    head = read_request_head(sock)
    if b"\nupgrade: h2c" in head.lower():
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        return
    body = head.split(b"\r\n\r\n", 1)[0]
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))


class RssSampler:
    """Samples the process's VmRSS every 20 ms; keeps the maximum."""

    def __init__(self, portico):
        self.p = portico
        self.max_rss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.max_rss = max(self.max_rss, self.p.proc_status()["VmRSS"])
            except (OSError, KeyError):
                return
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


class StreamingTest(PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ng = cls.start_nginx("svc-big", large_file_mib=SIZE_MIB)
        cls.ws = cls.start_py(websocket_echo_handler)
        cls.h2c = cls.start_py(h2c_capable_handler)
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-big", cls.ng.port) + backend("svc-ws", cls.ws.port)
        docs += backend("svc-h2c", cls.h2c.port)
        docs += [http_route("big", [rule([backend_ref("svc-big", 80)])],
                            hostnames=["big.example.com"]),
                 http_route("ws", [rule([backend_ref("svc-ws", 80)])],
                            hostnames=["ws.example.com"]),
                 http_route("h2c", [rule([backend_ref("svc-h2c", 80)])],
                            hostnames=["h2c.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("streaming.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def warm_up(self):
        # Fresh connections: keep-alive is tested elsewhere; here it would only blur the cause.
        for _ in range(20):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request("GET", "/large/small.txt", headers={"Host": "big.example.com"})
            r = c.getresponse()
            r.read()
            c.close()
            self.assertEqual(r.status, 200)

    def memory_baseline(self):
        self.warm_up()
        st = self.p.proc_status()
        return st["VmRSS"], st["VmHWM"]

    def assertFlatMemory(self, base_rss, base_hwm, sampler, what):
        st = self.p.proc_status()
        growth_hwm = st["VmHWM"] - base_hwm
        growth_rss = sampler.max_rss - base_rss
        msg = (f"{what}: RSS {base_rss} KiB -> max {sampler.max_rss} KiB, "
               f"HWM {base_hwm} -> {st['VmHWM']} KiB")
        self.assertLess(growth_hwm, MAX_GROWTH_KIB, msg)
        self.assertLess(growth_rss, MAX_GROWTH_KIB, msg)

    def test_download_100mib_streamed_with_backpressure(self):
        base_rss, base_hwm = self.memory_baseline()
        h = hashlib.sha256()
        n = 0
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        with RssSampler(self.p) as sampler:
            c.request("GET", "/large/big.bin", headers={"Host": "big.example.com"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            # A slow start: a proxy without backpressure would now read the
            # whole body from the fast backend into memory.
            time.sleep(1.5)
            while True:
                chunk = r.read(256 * 1024)
                if not chunk:
                    break
                n += len(chunk)
                h.update(chunk)
        c.close()
        self.assertEqual(n, SIZE_MIB * MIB)
        self.assertEqual(h.hexdigest(), self.ng.large_file_sha256, "body corrupted in transit")
        self.assertFlatMemory(base_rss, base_hwm, sampler, "download")

    def _upload(self, name, chunked):
        block = hashlib.shake_256(b"upload").digest(MIB)
        h = hashlib.sha256()

        def body():
            for i in range(SIZE_MIB):
                chunk = i.to_bytes(8, "big") + block[8:]
                h.update(chunk)
                yield chunk

        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.putrequest("PUT", f"/upload/{name}", skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", "big.example.com")
        if chunked:
            c.putheader("Transfer-Encoding", "chunked")
        else:
            c.putheader("Content-Length", str(SIZE_MIB * MIB))
        c.endheaders(body(), encode_chunked=chunked)
        r = c.getresponse()
        text = r.read()
        c.close()
        self.assertIn(r.status, (201, 204), text[:300])
        stored = self.ng.upload_dir / name
        self.assertEqual(stored.stat().st_size, SIZE_MIB * MIB)
        sh = hashlib.sha256()
        with open(stored, "rb") as f:
            while chunk := f.read(4 * MIB):
                sh.update(chunk)
        self.assertEqual(sh.hexdigest(), h.hexdigest(), "upload corrupted in transit")
        stored.unlink()

    def test_upload_100mib_streamed(self):
        base_rss, base_hwm = self.memory_baseline()
        with RssSampler(self.p) as sampler:
            self._upload("big-cl.bin", chunked=False)
        self.assertFlatMemory(base_rss, base_hwm, sampler, "content-length upload")

    def test_upload_100mib_chunked_streamed(self):
        base_rss, base_hwm = self.memory_baseline()
        with RssSampler(self.p) as sampler:
            self._upload("big-chunked.bin", chunked=True)
        self.assertFlatMemory(base_rss, base_hwm, sampler, "chunked upload")

    def test_websocket_echo(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            status, hdrs, buf, accept = ws_handshake(s, "/chat", "ws.example.com")
            self.assertRegex(status, r"^HTTP/1\.1 101 ", hdrs)
            self.assertEqual(hdrs.get("sec-websocket-accept"), accept)
            self.assertEqual(hdrs.get("upgrade", "").lower(), "websocket")
            self.assertEqual(hdrs.get("x-echo-host"), "ws.example.com")
            s.sendall(ws_frame(0x1, b"hello portico", mask=True))
            self.assertEqual(ws_read_frame(s, buf), (0x1, b"hello portico"))
            big = os.urandom(300 * 1024)
            s.sendall(ws_frame(0x2, big, mask=True))
            op, payload = ws_read_frame(s, buf)
            self.assertEqual(op, 0x2)
            self.assertEqual(hashlib.sha256(payload).digest(), hashlib.sha256(big).digest())
            s.sendall(ws_frame(0x9, b"ping", mask=True))
            self.assertEqual(ws_read_frame(s, buf), (0xA, b"ping"))
            for i in range(50):  # many small frames, both ways interleaved
                s.sendall(ws_frame(0x1, f"m{i}".encode(), mask=True))
                self.assertEqual(ws_read_frame(s, buf), (0x1, f"m{i}".encode()))
            s.sendall(ws_frame(0x8, b"\x03\xe8bye", mask=True))
            self.assertEqual(ws_read_frame(s, buf)[0], 0x8)
        finally:
            s.close()

    def test_h2c_upgrade_is_not_carried(self):
        # curl --http2 on plain HTTP asks to upgrade to h2c. Carried as a
        # tunnel, the rest of the connection would reach this one backend
        # unrouted; Portico (like Envoy) drops the upgrade and serves
        # HTTP/1.1, and the backend never sees it asked for.
        out = subprocess.run(
            ["curl", "-sS", "--http2", "-o", "-", "-w", "\n%{http_version} %{http_code}",
             "-H", "Host: h2c.example.com", f"http://127.0.0.1:{self.port}/h2c"],
            capture_output=True, timeout=20, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        seen, _, status = out.stdout.rpartition("\n")
        self.assertEqual(status, "1.1 200", out.stdout)
        self.assertIn("GET /h2c HTTP/1.1", seen)
        for hop in ("upgrade:", "http2-settings:", "connection:"):
            self.assertNotIn(hop, seen.lower(), seen)


RECORD_PIECES = 64


def many_records_tls_handler(cert):
    """A TLS backend that answers each GET with a head and RECORD_PIECES small
    body pieces, each its own TLS record, all sent in one write(2): the proxy's
    one socket read then holds many records."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.chain), str(cert.key))

    def handler(sock):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_side=True)

        def flush():
            data = out.read()
            if data:
                sock.sendall(data)

        def feed():
            flush()
            data = sock.recv(65536)
            if not data:
                raise OSError("peer closed")
            inc.write(data)

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                feed()
        flush()
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    buf += tls.read(65536)
                except ssl.SSLWantReadError:
                    feed()
            _, buf = buf.split(b"\r\n\r\n", 1)
            pieces = [b"%04d:" % i + b"r" * 45 for i in range(RECORD_PIECES)]
            tls.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % sum(map(len, pieces)))
            for piece in pieces:
                tls.write(piece)
            flush()

    return handler


class TlsBackendStreamingTest(PorticoCase):
    """The same bodies through a BackendTLSPolicy backend: TLS reads skip the
    EAGAIN read(2) when OpenSSL says nothing is buffered (readDrained), so a
    record left behind in OpenSSL's read-ahead would stall these exchanges."""

    TLS_MIB = 24

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = CertFactory(cls.tmp / "certs")
        root = f.ca("root-ca")
        leaf = f.leaf("big", root, dns=["big.backend.test"])
        cls.ng = cls.start_nginx("tls-big", tls=leaf, large_file_mib=cls.TLS_MIB)
        cls.records = cls.start_py(many_records_tls_handler(leaf))
        cls.port = free_port()
        docs = [gateway_class(), gateway("gw", [listener(cls.port)])]
        docs += backend("svc-tls", cls.ng.port, svc_port=443)
        docs += backend("svc-records", cls.records.port, svc_port=443)
        docs += [t.ca_config_map("root-ca", root.pem()),
                 t.backend_tls_policy("tls", "svc-tls", "big.backend.test",
                                      ca_refs=[t.ca_ref("root-ca")]),
                 t.backend_tls_policy("records", "svc-records", "big.backend.test",
                                      ca_refs=[t.ca_ref("root-ca")]),
                 http_route("big", [rule([backend_ref("svc-tls", 443)])]),
                 http_route("records", [rule([backend_ref("svc-records", 443)])],
                            hostnames=["records.example.com"])]
        cls.p = cls.make_portico()
        cls.p.write("tls-streaming.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def test_download_through_tls_backend(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        # Several on one keep-alive connection (and one pooled TLS connection).
        for _ in range(2):
            c.request("GET", "/large/big.bin", headers={"Host": "x.example.com"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            h = hashlib.sha256()
            n = 0
            while chunk := r.read(256 * 1024):
                n += len(chunk)
                h.update(chunk)
            self.assertEqual(n, self.TLS_MIB * MIB)
            self.assertEqual(h.hexdigest(), self.ng.large_file_sha256, "body corrupted")
        c.close()

    def test_many_small_keep_alive_exchanges_through_tls_backend(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        for i in range(300):
            c.request("GET", "/large/small.txt", headers={"Host": "x.example.com"})
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"small file\n"), f"request {i}")
        c.close()

    def test_response_in_many_records_read_at_once(self):
        """OpenSSL holds the records after the first one in its read-ahead
        buffer; the socket is empty. The proxy must not wait for the socket."""
        want = b"".join(b"%04d:" % i + b"r" * 45 for i in range(RECORD_PIECES))
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for i in range(20):
            c.request("GET", "/", headers={"Host": "records.example.com"})
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, want), f"request {i}")
        c.close()

    def test_upload_through_tls_backend(self):
        block = hashlib.shake_256(b"tls-upload").digest(MIB)
        h = hashlib.sha256()

        def body():
            for i in range(self.TLS_MIB):
                chunk = i.to_bytes(8, "big") + block[8:]
                h.update(chunk)
                yield chunk

        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.putrequest("PUT", "/upload/tls.bin", skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", "x.example.com")
        c.putheader("Content-Length", str(self.TLS_MIB * MIB))
        c.endheaders(body())
        r = c.getresponse()
        text = r.read()
        c.close()
        self.assertIn(r.status, (201, 204), text[:300])
        stored = self.ng.upload_dir / "tls.bin"
        sh = hashlib.sha256(stored.read_bytes())
        self.assertEqual(sh.hexdigest(), h.hexdigest(), "upload corrupted in transit")
        stored.unlink()


def slow_echo_handler(sock):
    """Plain HTTP/1.1 backend: GET /slow answers after 300 ms, any other path
    at once; the body is the path. Keep-alive."""
    buf = b""
    while (got := next_head(sock, buf)) is not None:
        head, buf = got
        path = head.split(b" ", 2)[1]
        if path == b"/slow":
            time.sleep(0.3)
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(path), path))


class TlsRecords:
    """A TLS client over a plain socket with memory BIOs, so the test decides
    which TLS records go out in which write(2)."""

    def __init__(self, port, cafile, host):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        ctx = ssl.create_default_context(cafile=cafile)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise OSError("server closed")
        self.inc.write(data)

    def send_records(self, *records):
        """Each argument becomes its own TLS record; all in one write(2)."""
        for r in records:
            self.tls.write(r)
        self.flush()

    def read_until(self, predicate):
        got = b""
        while not predicate(got):
            try:
                got += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.feed()
        return got


class HttpsPipelinedRecordsTest(PorticoCase):
    """TLS reads may skip the EAGAIN read(2) only when that very read saw the
    socket drained. Here a record waits in OpenSSL's buffer while Portico
    serves the request before it; the next bytes arrive meanwhile, and their
    epoll edge is spent. Reading the buffered record must not be taken as
    "socket drained", or the rest of the second request is never read (the
    client would get a 408 after the header timeout)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = CertFactory(cls.tmp / "certs")
        cls.root = certs.ca()
        leaf = certs.leaf("https", cls.root, dns=["pipe.test"])
        cls.be = cls.start_py(slow_echo_handler)
        cls.port = free_port()
        ln = listener(cls.port, name="https", protocol="HTTPS", hostname="pipe.test")
        ln["tls"] = {"mode": "Terminate",
                     "certificateRefs": [{"kind": "Secret", "name": "https-cert"}]}
        docs = [gateway_class(), gateway("gw", [ln]), t.tls_secret("https-cert", leaf)]
        docs += backend("svc-slow", cls.be.port)
        docs += [http_route("pipe", [rule([backend_ref("svc-slow", 80)])], hostnames=["pipe.test"])]
        cls.p = cls.make_portico(workers=1)
        cls.p.write("https-pipe.yaml", docs)
        cls.p.start(wait_ports=[cls.port])

    def test_second_request_completed_while_first_is_served(self):
        c = TlsRecords(self.port, str(self.root.cert), "pipe.test")
        try:
            # One write(2), two records: a whole request, and the start of the next.
            c.send_records(b"GET /slow HTTP/1.1\r\nHost: pipe.test\r\n\r\n",
                           b"GET /two HTTP/1.1\r\n")
            time.sleep(0.1)  # /slow is being served; the rest arrives now
            c.send_records(b"Host: pipe.test\r\n\r\n")
            t0 = time.monotonic()
            got = c.read_until(lambda b: b.count(b"HTTP/1.1 200 OK") >= 2 and b.endswith(b"/two"))
            elapsed = time.monotonic() - t0
        finally:
            c.sock.close()
        self.assertIn(b"\r\n\r\n/slow", got)
        self.assertLess(elapsed, 2.0, got)


if __name__ == "__main__":
    unittest.main()
