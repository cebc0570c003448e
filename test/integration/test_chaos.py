"""Randomized chaos: one portico (2 workers) against a zoo of real and broken
backends, several client threads sending a random mix of well- and
ill-behaved traffic, and a thread rewriting the config under it.

Asserted: portico never crashes or aborts (exit 0 after the closing SIGTERM
drain, no sanitizer report on stderr), every byte it sends a client parses as
HTTP/1.1 with a sane status (and the hosts whose backend never misbehaves
always get their expected answer), the admin port answers throughout, and
once traffic stops every *_active gauge returns to 0.

  CHAOS_SECONDS   how long traffic runs (default 20)
  CHAOS_SEED      replay a run (the seed is printed at the start)
  CHAOS_CLIENTS   client threads (default 6)
  CHAOS_HOSTS     comma-separated hosts to send to (narrows a replay down)
  CHAOS_PAUSE_ON_LEAK=1  keep portico running 10 min when a gauge leaks
  PORTICO_IT_KEEP_TMP=1  keep configs and logs (access log: portico.stdout)

A seed replays the random choices, not the timing: a failure found by one
run may need a few runs (or a longer one) to come back.

Run it under the sanitizers:
  PORTICO_BIN=build-asan/portico ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
      CHAOS_SECONDS=600 python3 -m unittest -v test_chaos
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter

import harness as h
import tls_helpers as t

SECONDS = float(os.environ.get("CHAOS_SECONDS", "20"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "6"))
HOSTS_ONLY = os.environ.get("CHAOS_HOSTS")  # comma-separated: narrow a replay down
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 32))))

SANITIZER_MARKERS = ("AddressSanitizer", "UndefinedBehaviorSanitizer", "LeakSanitizer",
                     "ThreadSanitizer", "runtime error:", "SUMMARY: ")

STATUS_RE = re.compile(rb"^HTTP/1\.1 ([1-5]\d\d) [^\r\n]*$")
HEADER_RE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t ]*[^\r\n]*$")


class Violation(Exception):
    """Portico sent something that is not HTTP/1.1 (or not what it must be)."""


# ---------------------------------------------------------------------------
# backends (each connection runs in its own thread; rng per connection)
# ---------------------------------------------------------------------------

def _rng() -> random.Random:
    return random.Random(random.getrandbits(64))


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_req(sock: socket.socket, buf: bytearray) -> tuple[bytes, dict, bytes] | None:
    """One request (head, lowercase headers, body) from a keep-alive
    connection; None at EOF. Answers Expect: 100-continue."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    i = buf.index(b"\r\n\r\n")
    head = bytes(buf[:i])
    del buf[:i + 4]
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if hdrs.get("expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = b""
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            j = buf.index(b"\r\n")
            size = int(bytes(buf[:j]).split(b";")[0] or b"0", 16)
            del buf[:j + 2]
            if size == 0:
                while b"\r\n" not in buf:  # trailers are not forwarded: just the CRLF
                    chunk = sock.recv(65536)
                    if not chunk:
                        return None
                    buf += chunk
                j = buf.index(b"\r\n")
                del buf[:j + 2]
                break
            while len(buf) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            body += bytes(buf[:size])
            del buf[:size + 2]
    elif hdrs.get("content-length", "").isdigit():
        n = int(hdrs["content-length"])
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        body = bytes(buf[:n])
        del buf[:n]
    return head, hdrs, body


def _requests(sock: socket.socket):
    """The requests on one keep-alive backend connection, until EOF."""
    buf = bytearray()
    while (req := _read_req(sock, buf)) is not None:
        yield req


def _method(head: bytes) -> bytes:
    return head.split(b" ", 1)[0]


def varied_handler(sock: socket.socket) -> None:
    """A correct HTTP/1.1 server answering with every framing it can."""
    rng = _rng()
    for req in _requests(sock):
        head, hdrs, body = req
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, 0.2))
        payload = (b"varied %d " % len(body)) + os.urandom(rng.choice((0, 10, 1000, 70000))).hex().encode()
        is_head = _method(head) == b"HEAD"
        mode = rng.choice(("cl", "cl", "chunked", "chunked", "close", "204", "interim"))
        extra = b"X-Varied: 1\r\nX-Req-Len: %d\r\n" % len(body)
        if mode == "interim":
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
            mode = "cl"
        if mode == "cl":
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(payload)
                         + (b"" if is_head else payload))
        elif mode == "204":
            sock.sendall(b"HTTP/1.1 204 No Content\r\n" + extra + b"\r\n")
        elif mode == "chunked":
            out = [b"HTTP/1.1 200 OK\r\n" + extra + b"Transfer-Encoding: chunked\r\n\r\n"]
            if not is_head:
                pos = 0
                while pos < len(payload):
                    n = rng.randint(1, 9000)
                    piece = payload[pos:pos + n]
                    out.append(b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n")
                    pos += n
                out.append(b"0\r\nX-Trailer: t\r\n\r\n")
            for piece in out:
                sock.sendall(piece)
                if rng.random() < 0.05:
                    time.sleep(0.01)
        else:  # close-delimited
            sock.sendall(b"HTTP/1.1 200 OK\r\n" + extra + b"Connection: close\r\n\r\n"
                         + (b"" if is_head else payload))
            sock.shutdown(socket.SHUT_WR)
            return


def reset_handler(sock: socket.socket) -> None:
    """Breaks off at a random point: before, inside or after the response."""
    rng = _rng()
    for req in _requests(sock):
        mode = rng.randrange(8)
        if mode == 0:
            sock.close()
        elif mode == 1:
            _rst(sock)
        elif mode == 2:
            sock.sendall(b"HTTP/1.1 200 O")
            _rst(sock)
        elif mode == 3:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * rng.randint(0, 70000))
            (_rst if rng.random() < 0.5 else socket.socket.close)(sock)
        elif mode == 4:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n5\r\nab")
            (_rst if rng.random() < 0.5 else socket.socket.close)(sock)
        else:  # a good answer: the connection is pooled, and breaks on a later request
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreset\n")
            continue
        return


GARBAGE = [
    b"this is not http at all\r\n\x00\x01\x02\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES AFTER THE BODY",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"Content-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nclose-delimited http/1.0",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nFoo\x00: bar\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"\r\n\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"",
]


def garbage_handler(sock: socket.socket) -> None:
    rng = _rng()
    for req in _requests(sock):
        data = rng.choice(GARBAGE)
        if rng.random() < 0.2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        step = rng.choice((len(data) or 1, 7, 1000))
        for i in range(0, len(data), step):
            sock.sendall(data[i:i + step])
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0, 0.3))
            return


def slow_handler(sock: socket.socket) -> None:
    """Takes its time before and inside the answer."""
    rng = _rng()
    for req in _requests(sock):
        time.sleep(rng.choice((0, 0.05, 0.3, 0.8, 1.5, 3.0)))
        body = b"s" * rng.choice((10, 5000, 100000))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        pieces = rng.choice((1, 3, 10))
        step = max(1, len(body) // pieces)
        for i in range(0, len(body), step):
            sock.sendall(body[i:i + step])
            time.sleep(rng.choice((0, 0.01, 0.2)))


def blackhole_handler(sock: socket.socket) -> None:
    sock.settimeout(60)
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


# ---------------------------------------------------------------------------
# client side: a strict reader of what portico sends
# ---------------------------------------------------------------------------

class Reader:
    def __init__(self, sock: socket.socket, slow: bool = False, rng: random.Random | None = None):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.slow = slow
        self.rng = rng or random.Random()
        self.total = 0
        self.raw = bytearray()  # everything received, for reports

    def _fill(self) -> bool:
        if self.eof:
            return False
        if self.slow:
            time.sleep(self.rng.choice((0.001, 0.01, 0.05)))
        try:
            chunk = self.sock.recv(self.rng.choice((1, 100, 4096)) if self.slow else 65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.total += len(chunk)
        self.buf += chunk
        self.raw += chunk
        return True

    def _line(self, limit: int = 1 << 20) -> bytes | None:
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise Violation(f"line longer than {limit}: {bytes(self.buf[:200])!r}")
            if not self._fill():
                return None
        i = self.buf.index(b"\r\n")
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def response(self, method: str = "GET") -> tuple[int, dict, int, bool] | None:
        """(status, headers, body length, complete) of the next final response;
        None when the connection closed cleanly before one started. Raises
        Violation on anything that is not HTTP/1.1 from the first byte on."""
        while True:
            if not self.buf and not self._fill():
                return None
            line = self._line()
            if line is None:
                raise Violation(f"connection closed inside a status line: {bytes(self.buf[:200])!r}")
            m = STATUS_RE.match(line)
            if not m:
                raise Violation(f"bad status line {line[:200]!r}")
            status = int(m.group(1))
            hdrs: dict[str, str] = {}
            while True:
                hl = self._line()
                if hl is None:
                    raise Violation(f"connection closed inside the head of a {status}")
                if hl == b"":
                    break
                if not HEADER_RE.match(hl):
                    raise Violation(f"bad header line {hl[:200]!r} in a {status}")
                k, _, v = hl.partition(b":")
                key = k.decode().lower()
                if key in hdrs and key in ("content-length", "transfer-encoding"):
                    raise Violation(f"repeated {key} in a {status}: {line!r} {hdrs}")
                hdrs[key] = v.strip().decode("latin-1")
            if 100 <= status < 200 and status != 101:
                continue  # interim
            break
        if "content-length" in hdrs and "transfer-encoding" in hdrs:
            raise Violation(f"both Content-Length and Transfer-Encoding in a {status}")
        if method == "HEAD" or status in (101, 204, 304):
            if status in (204, 304) and "transfer-encoding" in hdrs:
                raise Violation(f"Transfer-Encoding in a {status}")
            return status, hdrs, 0, True
        if "transfer-encoding" in hdrs:
            if hdrs["transfer-encoding"].lower() != "chunked":
                raise Violation(f"transfer-encoding {hdrs['transfer-encoding']!r}")
            n = 0
            while True:
                sl = self._line(4096)
                if sl is None:
                    return status, hdrs, n, False
                try:
                    size = int(sl.split(b";")[0].strip(), 16)
                except ValueError:
                    raise Violation(f"bad chunk size line {sl[:100]!r}") from None
                if size == 0:
                    while True:
                        tl = self._line()
                        if tl is None:
                            return status, hdrs, n, False
                        if tl == b"":
                            return status, hdrs, n, True
                while len(self.buf) < size + 2:
                    if not self._fill():
                        return status, hdrs, n + min(len(self.buf), size), False
                if self.buf[size:size + 2] != b"\r\n":
                    raise Violation(f"chunk of {size} not followed by CRLF")
                del self.buf[:size + 2]
                n += size
        if "content-length" in hdrs:
            v = hdrs["content-length"]
            if not v.isdigit():
                raise Violation(f"content-length {v!r}")
            want = int(v)
            while len(self.buf) < want:
                if not self._fill():
                    got = len(self.buf)
                    del self.buf[:]
                    return status, hdrs, got, False
            del self.buf[:want]
            return status, hdrs, want, True
        while self._fill():  # close-delimited
            pass
        n = len(self.buf)
        del self.buf[:]
        return status, hdrs, n, True


# ---------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------

# host -> statuses a complete bodyless GET/HEAD must get (None: any sane status)
STRICT = {
    "plain.test": {200},
    "tls.test": {200},
    "rewrite.test": {200},
    "redirect.test": {301, 302},
    "unknown.test": {404},
}
HOSTS = ["plain.test", "tls.test", "rewrite.test", "redirect.test", "unknown.test",
         "reset.test", "slow.test", "garbage.test", "refused.test", "mixed.test",
         "varied.test", "ws.test", "dyn1.test", "dyn2.test", "dyn3.test", "tlsdyn.test"]
PATHS = ["/", "/a/b?q=1", "/slow/x", "/large/big.bin", "/large/small.txt", "/status/204",
         "/status/500", "/upload/x", "/prefix/one", "/%2e%2e/x", "/" + "p" * 3000]


def mirror(service: str, port: int = 80, percent: int | None = None) -> dict:
    m: dict = {"backendRef": {"name": service, "port": port}}
    if percent is not None:
        m["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": m}


def hdr_mod(kind: str = "RequestHeaderModifier", key: str = "requestHeaderModifier") -> dict:
    return {"type": kind, key: {"set": [{"name": "X-Custom", "value": "chaos"}],
                                "add": [{"name": "X-Hop", "value": "1"}],
                                "remove": ["X-Remove-Me"]}}


class ChaosTest(h.PorticoCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        print(f"\nchaos: seed {SEED}, {SECONDS:g} s, {CLIENTS} clients "
              f"(replay: CHAOS_SEED={SEED})", file=sys.stderr, flush=True)
        random.seed(SEED)
        certs = h.CertFactory(cls.tmp / "certs")
        cls.root = certs.ca("root-ca")
        leaf = certs.leaf("secure", cls.root, dns=["secure.example.com"])
        cls.plain_a = cls.start_nginx("plain-a", large_file_mib=4)
        cls.plain_b = cls.start_nginx("plain-b", large_file_mib=4, keepalive_requests=7)
        cls.secure = cls.start_nginx("secure", tls=leaf, keepalive_requests=13)
        cls.shadow = cls.start_nginx("shadow")
        cls.py = {name: cls.start_py(fn) for name, fn in (
            ("reset", reset_handler), ("slow", slow_handler), ("garbage", garbage_handler),
            ("varied", varied_handler), ("blackhole", blackhole_handler),
            ("ws", h.websocket_echo_handler))}
        cls.refused_port = h.free_port()
        cls.port = h.free_port()
        cls.port2 = h.free_port()
        cls.p = cls.make_portico(workers=2, extra_args=[
            "--request-headers-timeout", "2", "--idle-timeout", "3",
            "--stream-idle-timeout", "3", "--drain-timeout", "10"])
        cls.p.write("gateway.yaml", cls.gateway_doc(False))
        cls.p.write("backends.yaml", cls.backend_docs())
        cls.p.write("routes.yaml", cls.route_docs(random.Random(SEED)))
        cls.p.start(wait_ports=[cls.port])

    # config ------------------------------------------------------------------
    @classmethod
    def gateway_doc(cls, second: bool) -> list:
        ls = [h.listener(cls.port)]
        if second:
            ls.append(h.listener(cls.port2, name="second"))
        return [h.gateway_class(), h.gateway("gw", ls)]

    @classmethod
    def backend_docs(cls) -> list:
        docs = []
        docs += h.backend("plain-a", cls.plain_a.port) + h.backend("plain-b", cls.plain_b.port)
        docs += h.backend("shadow", cls.shadow.port) + h.backend("refused", cls.refused_port)
        for name, b in cls.py.items():
            docs += h.backend(name, b.port)
        docs += t.tls_backend("secure", cls.secure.port)
        docs += [t.ca_config_map("secure-ca", cls.root.pem()),
                 t.backend_tls_policy("secure", "secure", "secure.example.com",
                                      ca_refs=[t.ca_ref("secure-ca")])]
        return docs

    @staticmethod
    def route_docs(rng: random.Random) -> list:
        ref = h.backend_ref
        slow_timeout = rng.choice(["300ms", "1s", "2s", None])

        def retried(rule: dict, codes: list[int]) -> dict:
            """The rule with a retry, half of the time."""
            if rng.random() < 0.5:
                rule["retry"] = {"codes": codes, "attempts": rng.randint(0, 3)}
                backoff = rng.choice([None, "0s", "10ms", "50ms"])
                if backoff:
                    rule["retry"]["backoff"] = backoff
            return rule
        cors = {"type": "CORS", "cors": {"allowOrigins": ["*"], "allowMethods": ["*"],
                                         "allowCredentials": rng.random() < 0.5}}
        docs = [
            h.http_route("plain", [h.rule(
                [ref("plain-a", 80, weight=3), ref("plain-b", 80, weight=1)],
                filters=[hdr_mod(), hdr_mod("ResponseHeaderModifier", "responseHeaderModifier"),
                         mirror("shadow", percent=50), mirror("blackhole", percent=10), cors],
                timeout="5s")], hostnames=["plain.test"]),
            h.http_route("tls", [h.rule([ref("secure", 443)], filters=[
                mirror("garbage"), mirror("slow", percent=30)], timeout="4s")],
                hostnames=["tls.test"]),
            h.http_route("rewrite", [h.rule([ref("plain-a", 80)], [h.match("/")], filters=[
                {"type": "URLRewrite", "urlRewrite": {
                    "hostname": "rewritten.test",
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/rw"}}}])],
                hostnames=["rewrite.test"]),
            h.http_route("redirect", [h.rule([], filters=[
                {"type": "RequestRedirect", "requestRedirect": {
                    "scheme": "https", "statusCode": rng.choice([301, 302])}}])],
                hostnames=["redirect.test"]),
            h.http_route("reset", [retried(h.rule([ref("reset", 80)], filters=[mirror("reset")],
                                                  timeout="2s"), [502])],
                         hostnames=["reset.test"]),
            h.http_route("slow", [
                h.rule([ref("slow", 80)], [h.match("/slow")], timeout="500ms",
                       filters=[mirror("blackhole")]),
                retried(h.rule([ref("slow", 80)], timeout=slow_timeout,
                               backend_timeout=rng.choice(["700ms", None])), [504])],
                hostnames=["slow.test"]),
            h.http_route("garbage", [h.rule([ref("garbage", 80)], timeout="2s")],
                         hostnames=["garbage.test"]),
            h.http_route("refused", [h.rule([ref("refused", 80)])], hostnames=["refused.test"]),
            h.http_route("mixed", [retried(h.rule(
                [ref("plain-a", 80, weight=rng.randint(0, 3)), ref("reset", 80, weight=1),
                 ref("refused", 80, weight=1), ref("slow", 80, weight=rng.randint(0, 2)),
                 ref("garbage", 80, weight=1), ref("secure", 443, weight=1)],
                filters=[mirror("slow"), mirror("refused"), mirror("varied", percent=50),
                         mirror("secure", 443, percent=20)],
                timeout=rng.choice(["1s", "3s"])), [500, 502, 503, 504])],
                hostnames=["mixed.test"]),
            h.http_route("varied", [retried(h.rule([ref("varied", 80)], filters=[
                mirror("varied"), mirror("garbage", percent=50), mirror("reset", percent=50)],
                timeout="3s"), [500, 503])], hostnames=["varied.test"]),
            h.http_route("ws", [h.rule([ref("ws", 80)])], hostnames=["ws.test"]),
        ]
        return docs

    def dynamic_docs(self, rng: random.Random) -> list:
        """Routes, clusters, mirrors and policies that come and go."""
        ref = h.backend_ref
        docs: list = []
        targets = [("plain-a", self.plain_a.port), ("varied", self.py["varied"].port),
                   ("reset", self.py["reset"].port), ("slow", self.py["slow"].port),
                   ("refused", self.refused_port), ("secure", self.secure.port)]
        for i in range(rng.randint(0, 3)):
            name = f"dyn{i + 1}"
            tgt, port = rng.choice(targets)
            svc = f"dynsvc{i}"
            docs += h.backend(svc, port)
            filters = []
            for _ in range(rng.randint(0, 2)):
                filters.append(mirror(rng.choice(["shadow", "dynsvc0", "slow", "garbage",
                                                  "nope", "blackhole"]),
                                      percent=rng.choice([None, 0, 50, 100])))
            if rng.random() < 0.5:
                filters.append(hdr_mod())
            docs.append(h.http_route(name, [h.rule(
                [ref(svc, 80, weight=rng.randint(1, 5)),
                 ref(rng.choice(["plain-b", "varied", "slow"]), 80, weight=rng.randint(0, 2))],
                filters=filters, timeout=rng.choice([None, "200ms", "1s", "0s"]))],
                hostnames=[f"{name}.test"]))
        if rng.random() < 0.7:
            # a TLS cluster whose policy sometimes has the wrong name (-> 503 UF)
            docs += t.tls_backend("secure2", self.secure.port)
            if rng.random() < 0.8:
                docs += [t.ca_config_map("secure2-ca", self.root.pem()),
                         t.backend_tls_policy("secure2", "secure2", rng.choice(
                             ["secure.example.com", "wrong.example.com"]),
                             ca_refs=[t.ca_ref("secure2-ca")])]
            docs.append(h.http_route("tlsdyn", [h.rule([ref("secure2", 443)], filters=[
                mirror("secure2", 443, percent=rng.choice([0, 100]))], timeout="2s")],
                hostnames=["tlsdyn.test"]))
        return docs

    # clients -----------------------------------------------------------------
    def record(self, kind: str, detail: str) -> None:
        with self.lock:
            if kind == "violation":
                self.violations.append(detail)
            else:
                self.counts[kind] += 1

    def connect(self, rng: random.Random) -> socket.socket:
        port = self.port2 if rng.random() < 0.05 else self.port
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.local.port = port
        if rng.random() < 0.1:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return s

    def make_request(self, rng: random.Random, host: str, method: str | None = None,
                     keep_alive: bool = True) -> tuple[bytes, str, bytes, bool]:
        """(head, method, body bytes to send, whether the body is complete).
        A bodyless GET or HEAD of a small path without odd headers is
        `strict`: its answer is checked against STRICT."""
        method = method or rng.choice(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE"])
        path = rng.choice(PATHS)
        if path.startswith("/upload/"):
            path = f"/upload/{rng.randrange(1 << 30)}"
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        if not keep_alive:
            lines.append("Connection: close")
        if rng.random() < 0.2:
            lines.append("X-Remove-Me: 1")
        self.local.strict = method in ("GET", "HEAD") and path in ("/", "/a/b?q=1")
        if rng.random() < 0.1:
            lines.append("X-Long: " + "v" * rng.choice((100, 8000, 70000)))
            self.local.strict = False
        body, complete = b"", True
        if method in ("POST", "PUT") or rng.random() < 0.05:
            size = rng.choice((0, 1, 100, 5000, 200000, 1 << 20))
            data = os.urandom(min(size, 4096)) * (size // 4096 + 1)
            data = data[:size]
            if rng.random() < 0.1:
                lines.append("Expect: 100-continue")
            if rng.random() < 0.5:
                lines.append(f"Content-Length: {size}")
                body = data
            else:
                lines.append("Transfer-Encoding: chunked")
                out = []
                pos = 0
                while pos < len(data):
                    n = rng.randint(1, 70000)
                    out.append(b"%x\r\n" % len(data[pos:pos + n]) + data[pos:pos + n] + b"\r\n")
                    pos += n
                out.append(b"0\r\n\r\n")
                body = b"".join(out)
            if rng.random() < 0.05:
                body, complete = body[:rng.randint(0, len(body))], False
            self.local.strict = False
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.local.last = head[:300]
        return head, method, body, complete

    def check_response(self, host: str, method: str, res, strict: bool) -> None:
        status, hdrs, n, complete = res
        with self.lock:
            self.statuses[status] += 1
        want = STRICT.get(host)
        # the second listener comes and goes: only the main one is strict
        strict = strict and self.local.port == self.port
        if want and strict and complete and status not in want:
            self.record("violation", f"{method} {host}: status {status} (want {sorted(want)}) "
                        f"headers {hdrs}")
        if host in ("plain.test", "tls.test", "rewrite.test") and not complete and strict:
            self.record("violation", f"{method} {host}: response cut off after {n} body bytes")

    def read_response(self, rd, host: str, method: str, strict: bool, closed: str):
        """The next response, checked and counted; None (counted as a client
        timeout or as `closed`) when there is none to read."""
        try:
            res = rd.response(method)
        except socket.timeout:
            self.record("client_timeout", host)
            return None
        if res is None:
            self.record(closed, host)
            return None
        self.check_response(host, method, res, strict)
        self.record("responses", host)
        return res

    def op_sequence(self, rng: random.Random) -> None:
        """Keep-alive (or not) requests one after another on one connection."""
        slow = rng.random() < 0.15
        with self.connect(rng) as s:
            rd = self.local.reader = Reader(s, slow=slow, rng=rng)
            for i in range(rng.randint(1, 6)):
                keep = rng.random() < 0.8
                host = rng.choice(HOSTS)
                head, method, body, complete = self.make_request(rng, host, keep_alive=keep)
                strict = self.local.strict
                try:
                    if "expect: 100-continue" in head.decode("latin-1").lower() and rng.random() < 0.7:
                        s.sendall(head)
                        s.settimeout(1.0)
                        with contextlib.suppress(socket.timeout):
                            rd._fill()
                        s.settimeout(10)
                        s.sendall(body)
                    else:
                        s.sendall(head + body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if not complete:
                    if rng.random() < 0.5:
                        return  # leave with the body half sent
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_WR)
                res = self.read_response(rd, host, method, strict, "closed_before_response")
                if res is None:
                    return
                if not res[3] or not keep or res[1].get("connection", "").lower() == "close":
                    return
                if res[0] == 101:
                    return

    def op_pipeline(self, rng: random.Random) -> None:
        with self.connect(rng) as s:
            reqs = []
            data = b""
            for _ in range(rng.randint(2, 8)):
                host = rng.choice(HOSTS)
                if host == "ws.test":
                    host = "plain.test"
                head, method, body, complete = self.make_request(
                    rng, host, method=rng.choice(["GET", "HEAD", "GET", "POST"]))
                if not complete:
                    continue
                reqs.append((host, method, self.local.strict))
                data += head + body
            close_early = rng.random() < 0.2
            try:
                if rng.random() < 0.3:
                    for i in range(0, len(data), 97):
                        s.sendall(data[i:i + 97])
                else:
                    s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            rd = self.local.reader = Reader(s, slow=rng.random() < 0.1, rng=rng)
            seen = []
            for idx, (host, method, strict) in enumerate(reqs):
                if close_early and idx == 1:
                    _rst(s)
                    return
                res = self.read_response(rd, host, method, strict, "pipeline_closed")
                if res is None:
                    return
                seen.append((host, method, res))
                if not res[3] or res[1].get("connection", "").lower() == "close" or res[0] == 101:
                    # nothing may follow a response that closes the connection
                    s.settimeout(2)
                    with contextlib.suppress(socket.timeout, OSError):
                        if res[3] and rd._fill():
                            self.record("violation", f"bytes after a closing response: "
                                                     f"{bytes(rd.buf[:200])!r}; requests "
                                                     f"{reqs}; responses {seen}")
                    return
            s.settimeout(1)
            with contextlib.suppress(socket.timeout, OSError):
                if rd.buf or rd._fill():
                    self.record("violation", f"extra bytes after {len(reqs)} pipelined "
                                             f"responses: {bytes(rd.buf[:200])!r}; requests "
                                             f"{reqs}; responses {seen}")

    def op_disconnect(self, rng: random.Random) -> None:
        """A client that leaves at a random point."""
        with self.connect(rng) as s:
            host = rng.choice(HOSTS)
            head, method, body, _ = self.make_request(rng, host, method=rng.choice(["GET", "POST"]))
            where = rng.choice(["head", "body", "response", "response", "idle"])
            try:
                if where == "head":
                    s.sendall(head[:rng.randint(0, len(head) - 1)])
                elif where == "body" and body:
                    s.sendall(head + body[:rng.randint(0, len(body) - 1)])
                else:
                    s.sendall(head + body)
                    if where == "response":
                        time.sleep(rng.choice((0, 0.01, 0.1, 0.5)))
                        with contextlib.suppress(OSError):
                            s.recv(rng.choice((1, 100, 10000)))
                    elif where == "idle":
                        time.sleep(rng.uniform(0, 0.5))
            except (BrokenPipeError, ConnectionResetError):
                pass
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0, 0.3))
            if rng.random() < 0.5:
                _rst(s)
        self.record("disconnects", where)

    def op_bad_request(self, rng: random.Random) -> None:
        bad = rng.choice([
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"GET / HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000 + b"\r\n",
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: plain.test\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: plain.test\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: plain.test\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: plain.test\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100),
            b"GET / HTTP/1.1\r\nHost: plain.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"CONNECT plain.test:80 HTTP/1.1\r\nHost: plain.test:80\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: plain.test\r\n\r\n",
            b"GET http://plain.test/abs HTTP/1.1\r\nHost: other.test\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: plain.test\r\n X-Folded: yes\r\n\r\n",
            b"GET / HTTP/1.1\nHost: plain.test\n\n",
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 500))),
        ])
        with self.connect(rng) as s:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(bad)
            if rng.random() < 0.5:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
            rd = self.local.reader = Reader(s, rng=rng)
            with contextlib.suppress(socket.timeout):
                for _ in range(3):
                    res = rd.response("GET")
                    if res is None:
                        break
                    with self.lock:
                        self.statuses[res[0]] += 1
                    if not res[3] or res[0] == 101:
                        break
        self.record("bad_requests", "")

    def op_websocket(self, rng: random.Random) -> None:
        key = h.base64.b64encode(os.urandom(16)).decode()
        with self.connect(rng) as s:
            s.sendall((f"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            rd = self.local.reader = Reader(s, rng=rng)
            res = rd.response("GET")
            if res is None:
                self.record("closed_before_response", "ws.test")
                return
            self.check_response("ws.test", "GET", res, True)
            if res[0] != 101:
                return
            buf = bytearray(rd.buf)
            for _ in range(rng.randint(0, 5)):
                payload = os.urandom(rng.choice((1, 125, 1000, 70000)))
                s.sendall(h.ws_frame(0x2, payload, mask=True))
                if rng.random() < 0.1:
                    _rst(s)
                    return
                op, got = h.ws_read_frame(s, buf)
                if got != payload:
                    self.record("violation", f"websocket echo mismatch ({len(got)} vs {len(payload)})")
                    return
            if rng.random() < 0.5:
                s.sendall(h.ws_frame(0x8, b"", mask=True))
            self.record("websockets", "")

    def client(self, idx: int, deadline: float) -> None:
        rng = random.Random(f"{SEED}-{idx}")
        if HOSTS_ONLY:
            global HOSTS
            HOSTS = HOSTS_ONLY.split(",")
        ops = [(self.op_sequence, 40), (self.op_pipeline, 15), (self.op_disconnect, 20),
               (self.op_bad_request, 8), (self.op_websocket, 5)]
        fns, weights = zip(*ops)
        while time.monotonic() < deadline and not self.stop.is_set():
            fn = rng.choices(fns, weights)[0]
            try:
                fn(rng)
            except Violation as e:
                self.record("violation", f"{fn.__name__}: {e} (last request "
                            f"{getattr(self.local, 'last', None)!r}; received "
                            f"{bytes(getattr(self.local, 'reader', Reader(None)).raw[-1500:])!r})")
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    socket.timeout, ConnectionError):
                self.record("conn_errors", fn.__name__)
            except Exception:  # noqa: BLE001 - a bug in the test is a failure too
                self.record("violation", f"{fn.__name__} raised:\n{traceback.format_exc()}")

    # config churn ----------------------------------------------------------
    def reloader(self, deadline: float) -> None:
        rng = random.Random(f"{SEED}-reload")
        while time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(rng.uniform(0.05, 0.8))
            r = rng.random()
            try:
                if r < 0.45:
                    self.p.write("dynamic.yaml", self.dynamic_docs(rng))
                elif r < 0.55:
                    self.p.write("routes.yaml", self.route_docs(rng))
                elif r < 0.65:
                    self.p.write("gateway.yaml", self.gateway_doc(rng.random() < 0.5))
                elif r < 0.75:
                    name = rng.choice(["dynamic.yaml", "routes.yaml", "backends.yaml",
                                       "extra.yaml"])
                    self.p.write(name, rng.choice([
                        "apiVersion: v1\nkind: Service\nmetadata: {name: [\n",
                        "---\nkind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\n"
                        "metadata:\n  name: broken\nspec:\n  rules: 7\n",
                        "\t\x00not yaml: : :\n"] + ([""] if name == "extra.yaml" else [])))
                    if name != "extra.yaml":
                        time.sleep(rng.uniform(0, 0.3))
                        self.p.write(name, {"dynamic.yaml": lambda: self.dynamic_docs(rng),
                                            "routes.yaml": lambda: self.route_docs(rng),
                                            "backends.yaml": self.backend_docs}[name]())
                elif r < 0.85:
                    with contextlib.suppress(FileNotFoundError):
                        self.p.remove(rng.choice(["dynamic.yaml", "extra.yaml"]))
                elif r < 0.95:
                    os.kill(self.p.pid, h.signal.SIGHUP)
                else:
                    self.p.write("dynamic.yaml", self.dynamic_docs(rng), atomic=False)
                self.record("reloads", "")
            except Exception:  # noqa: BLE001
                self.record("violation", f"reloader raised:\n{traceback.format_exc()}")

    def admin_watch(self, until: threading.Event) -> None:
        while not until.is_set():
            t0 = time.monotonic()
            try:
                for path in ("/ready", "/stats", "/clusters", "/config_dump"):
                    st, _ = self.p.admin(path, timeout=10)
                    if st != 200 and not (path == "/ready" and st == 503):
                        self.record("violation", f"admin {path} -> {st}")
                self.record("admin_ok", "")
            except Exception as e:  # noqa: BLE001
                self.record("violation", f"admin port did not answer: {e!r} "
                                         f"after {time.monotonic() - t0:.1f}s")
            until.wait(0.3)

    # assertions ------------------------------------------------------------
    def sanitizer_report(self) -> str:
        err = self.p.stderr()
        for m in SANITIZER_MARKERS:
            i = err.find(m)
            if i >= 0:
                return err[max(0, i - 2000):i + 6000]
        return ""

    def upstream_sockets(self) -> int:
        """portico's TCP sockets to anything but its own listeners and admin
        port: its upstream connections, pooled or busy."""
        inodes = set()
        for fd in os.listdir(f"/proc/{self.p.pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{self.p.pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        own = {self.port, self.port2, self.p.admin_port}
        n = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as f:
                for line in list(f)[1:]:
                    cols = line.split()
                    local_port = int(cols[1].rsplit(":", 1)[1], 16)
                    remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                    if cols[9] in inodes and remote_port != 0 and local_port not in own:
                        n += 1
        return n

    def active_gauges(self) -> dict[str, int]:
        """Non-zero *_active gauges. Pooled upstream connections idle for a
        minute (the cluster default), so upstream_cx_active only has to match
        the upstream sockets portico really holds."""
        stats = self.p.stats()
        out = {k: v for k, v in stats.items()
               if k.endswith("_active") and isinstance(v, int) and v != 0
               and not k.endswith(".upstream_cx_active")}
        cx = sum(v for k, v in stats.items()
                 if k.endswith(".upstream_cx_active") and isinstance(v, int))
        socks = self.upstream_sockets()
        if cx != socks:
            out["sum(upstream_cx_active) != upstream sockets"] = (cx, socks)
        return out

    def test_chaos(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.violations: list[str] = []
        self.counts: Counter = Counter()
        self.statuses: Counter = Counter()
        self.stop = threading.Event()
        admin_stop = threading.Event()
        deadline = time.monotonic() + SECONDS
        threads = [threading.Thread(target=self.client, args=(i, deadline), daemon=True)
                   for i in range(CLIENTS)]
        threads.append(threading.Thread(target=self.reloader, args=(deadline,), daemon=True))
        watcher = threading.Thread(target=self.admin_watch, args=(admin_stop,), daemon=True)
        watcher.start()
        for th in threads:
            th.start()
        last = time.monotonic()
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(1)
            if not self.p.alive():
                self.stop.set()
                break
            if time.monotonic() - last > 30:
                last = time.monotonic()
                print(f"chaos: {dict(self.counts)} statuses {dict(self.statuses)}",
                      file=sys.stderr, flush=True)
        t_stop = time.monotonic()
        for th in threads:
            th.join(30)
        print(f"chaos: clients done {time.monotonic() - t_stop:.1f} s after the deadline",
              file=sys.stderr, flush=True)
        hung = [th for th in threads if th.is_alive()]
        print(f"chaos: seed {SEED} counts {dict(self.counts)}\n"
              f"chaos: statuses {sorted(self.statuses.items())}", file=sys.stderr, flush=True)

        self.assertTrue(self.p.alive(), f"portico died (seed {SEED}):\n"
                        f"{self.sanitizer_report() or self.p.stderr()[-5000:]}")
        self.assertEqual(hung, [], f"client threads hung (seed {SEED})")

        # Traffic stopped: every gauge goes back to 0 (idle pooled connections
        # close after --idle-timeout, mirrors end at their rule's timeout).
        leaked: dict = {}
        clusters_dump = ""
        t_end = time.monotonic() + 30
        while time.monotonic() < t_end:
            leaked = self.active_gauges()
            if not leaked:
                break
            time.sleep(0.5)
        if leaked:
            clusters_dump = "\n".join(line for line in self.p.admin("/clusters")[1].splitlines()
                                      if "_active::" in line and not line.endswith("::0"))
            if os.environ.get("CHAOS_PAUSE_ON_LEAK"):
                print(f"chaos: leaked {leaked}; portico pid {self.p.pid} paused for 600 s",
                      file=sys.stderr, flush=True)
                time.sleep(600)
        print(f"chaos: gauges checked {time.monotonic() - t_stop:.1f} s after the deadline",
              file=sys.stderr, flush=True)
        # What the routes' retries did (their rules draw one half of the time).
        retry_stats = {k: sum(v for name, v in self.p.stats().items() if isinstance(v, int)
                              and name.startswith("cluster.") and name.endswith("." + k))
                       for k in ("upstream_rq_retry", "upstream_rq_retry_success",
                                 "upstream_rq_retry_limit_exceeded",
                                 "upstream_rq_per_try_timeout")}
        print(f"chaos: retries {retry_stats}", file=sys.stderr, flush=True)
        admin_stop.set()
        watcher.join(15)

        # A closing drain with requests in flight.
        drain_rng = random.Random(f"{SEED}-drain")
        drainers = []
        for i in range(4):
            def go(i=i):
                with contextlib.suppress(Exception):
                    self.op_sequence(random.Random(drain_rng.random()))
            th = threading.Thread(target=go, daemon=True)
            th.start()
            drainers.append(th)
        time.sleep(0.2)
        t_term = time.monotonic()
        rc = self.p.stop(check=False, timeout=30)
        print(f"chaos: exited {rc} {time.monotonic() - t_term:.1f} s after SIGTERM",
              file=sys.stderr, flush=True)
        for th in drainers:
            th.join(15)
        report = self.sanitizer_report()

        problems = []
        if report:
            problems.append(f"sanitizer report:\n{report}")
        if rc != 0:
            problems.append(f"portico exited {rc} on SIGTERM:\n{self.p.stderr()[-5000:]}")
        if leaked:
            problems.append(f"gauges still non-zero 30 s after traffic stopped: {leaked}\n"
                            f"/clusters:\n{clusters_dump}")
        if self.violations:
            problems.append(f"{len(self.violations)} violations, first ones:\n"
                            + "\n".join(self.violations[:15]))
        self.assertEqual(problems, [], f"seed {SEED}:\n" + "\n\n".join(problems))
        self.assertGreater(self.counts["responses"], 0)
        self.assertGreater(self.counts["admin_ok"], 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
