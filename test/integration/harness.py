"""End-to-end harness: real build/portico, real nginx backends, real clients.

Everything binds 127.0.0.1 on ports picked at run time; certificates are made
with the openssl CLI into a temp dir at test time (checked-in certs expire).
Every process started here is registered so it is stopped in tearDown/cleanup
and, as a last resort, at interpreter exit even when a test fails or errors.

Python 3 stdlib only (CI has no PyPI).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEP_TMP = os.environ.get("PORTICO_IT_KEEP_TMP") == "1"


def portico_binary() -> Path:
    env = os.environ.get("PORTICO_BIN")
    return Path(env) if env else REPO_ROOT / "build" / "portico"


# ---------------------------------------------------------------------------
# processes: one registry so nothing outlives the test run
# ---------------------------------------------------------------------------

_live_procs: list[subprocess.Popen] = []
_live_lock = threading.Lock()


def _register(p: subprocess.Popen) -> None:
    with _live_lock:
        _live_procs.append(p)


def _unregister(p: subprocess.Popen) -> None:
    with _live_lock:
        if p in _live_procs:
            _live_procs.remove(p)


def _kill(p: subprocess.Popen, sig=signal.SIGTERM, timeout=5.0) -> int | None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=5)
    _unregister(p)
    return p.returncode


@atexit.register
def _kill_all() -> None:
    with _live_lock:
        procs = list(_live_procs)
    for p in procs:
        _kill(p, signal.SIGKILL, 2)


def which_or_none(tool: str) -> str | None:
    return shutil.which(tool) or next(
        (str(Path(d) / tool) for d in ("/usr/sbin", "/sbin") if (Path(d) / tool).exists()), None)


# ---------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------

_issued_ports: set[int] = set()


def free_port() -> int:
    """A loopback port free right now (bind :0, read it, close), and never one this process
    handed out before: the kernel may offer a just-closed port again, and two Gateways given
    the same port merge into one listener (a conformance run once routed one Gateway's Host
    through another's catch-all route that way)."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise RuntimeError("no loopback port left that this process has not handed out")


def wait_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# certificates (openssl CLI)
# ---------------------------------------------------------------------------

@dataclass
class Cert:
    name: str
    cert: Path          # the certificate alone
    key: Path
    chain: Path         # cert followed by any intermediates (what a server sends)
    ca: "Cert | None" = None  # issuer (None for self-signed)

    def pem(self) -> str:
        return self.cert.read_text()


class CertFactory:
    """Makes the certificate cases that matter, into dir. EC P-256 by default
    (fast); rsa=True for RSA 2048 like the kgateway seed."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _run(self, *args: str, cwd: Path | None = None) -> None:
        r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    def _key(self, path: Path, rsa: bool) -> None:
        if rsa:
            self._run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", str(path))
        else:
            self._run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(path))

    def _sign(self, name: str, subject: str, ext_lines: list[str], issuer: Cert | None,
              not_before: str, not_after: str, rsa: bool) -> Cert:
        """Signs with `openssl ca`, which (unlike `x509 -req`) takes explicit
        validity dates, so expired and not-yet-valid certs need no fake clock."""
        d = self.dir / name
        d.mkdir(parents=True, exist_ok=True)
        key, csr, crt = d / "tls.key", d / "req.csr", d / "tls.crt"
        self._key(key, rsa)
        self._run("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        (d / "index.txt").write_text("")
        (d / "serial").write_text(os.urandom(8).hex() + "\n")
        cnf = d / "ca.cnf"
        cnf.write_text(
            "[ ca ]\ndefault_ca = ca_default\n"
            "[ ca_default ]\n"
            f"database = {d}/index.txt\nnew_certs_dir = {d}\nserial = {d}/serial\n"
            "default_md = sha256\npolicy = policy_any\nunique_subject = no\n"
            "copy_extensions = none\n"
            "[ policy_any ]\ncommonName = supplied\norganizationName = optional\n"
            "[ ext ]\n" + "\n".join(ext_lines) + "\n")
        args = ["ca", "-batch", "-notext", "-config", str(cnf), "-extensions", "ext",
                "-startdate", not_before, "-enddate", not_after, "-in", str(csr),
                "-out", str(crt)]
        if issuer is None:
            args += ["-selfsign", "-keyfile", str(key)]
        else:
            args += ["-cert", str(issuer.cert), "-keyfile", str(issuer.key)]
        self._run(*args)
        chain = d / "chain.crt"
        parts = [crt.read_text()]
        # A server sends its intermediates, not the root.
        walk = issuer
        while walk is not None and walk.ca is not None:
            parts.append(walk.cert.read_text())
            walk = walk.ca
        chain.write_text("".join(parts))
        return Cert(name, crt, key, chain, issuer)

    @staticmethod
    def _dates(days_valid: int = 3650) -> tuple[str, str]:
        now = time.time()
        fmt = "%Y%m%d%H%M%SZ"
        return (time.strftime(fmt, time.gmtime(now - 3600)),
                time.strftime(fmt, time.gmtime(now + days_valid * 86400)))

    def ca(self, name: str = "root-ca", cn: str | None = None, issuer: Cert | None = None,
           rsa: bool = False) -> Cert:
        """A root CA, or an intermediate CA when issuer is given."""
        nb, na = self._dates()
        ext = ["basicConstraints = critical,CA:TRUE" + (",pathlen:0" if issuer else ""),
               "keyUsage = critical,keyCertSign,cRLSign",
               "subjectKeyIdentifier = hash"]
        if issuer:
            ext.append("authorityKeyIdentifier = keyid:always")
        return self._sign(name, f"/CN={cn or name}", ext, issuer, nb, na, rsa)

    def leaf(self, name: str, issuer: Cert | None, dns: Iterable[str] = (),
             uris: Iterable[str] = (), cn: str | None = None, client: bool = False,
             not_before: str | None = None, not_after: str | None = None,
             rsa: bool = False, key_usage: str | None = None) -> Cert:
        """A server (or client) certificate. issuer=None makes it self-signed
        with leaf extensions only, like the seed's example.com certificate."""
        dns, uris = list(dns), list(uris)
        nb, na = self._dates()
        sans = [f"DNS:{d}" for d in dns] + [f"URI:{u}" for u in uris]
        ku = key_usage or ("critical,digitalSignature" + ("" if client else ",keyEncipherment"))
        ext = ["keyUsage = " + ku,
               "extendedKeyUsage = " + ("clientAuth" if client else "serverAuth")]
        if sans:
            ext.append("subjectAltName = " + ",".join(sans))
        if issuer is not None:
            ext += ["basicConstraints = critical,CA:FALSE", "subjectKeyIdentifier = hash",
                    "authorityKeyIdentifier = keyid:always"]
        subject = f"/CN={cn or (dns[0] if dns else name)}"
        if client:
            subject += "/O=Portico"
        return self._sign(name, subject, ext, issuer, not_before or nb, not_after or na, rsa)

    # The cases named by the design notes -----------------------------------

    def self_signed_example_com(self) -> Cert:
        """The seed's shape: self-signed RSA leaf CN/SAN example.com, KU
        digitalSignature, EKU serverAuth; used as its own trust anchor."""
        return self.leaf("example-com", None, dns=["example.com"], rsa=True,
                         key_usage="digitalSignature")

    def expired(self, issuer: Cert, dns: str = "expired.example.com") -> Cert:
        return self.leaf("expired", issuer, dns=[dns], not_before="20200101000000Z",
                         not_after="20200201000000Z")

    def not_yet_valid(self, issuer: Cert, dns: str = "future.example.com") -> Cert:
        return self.leaf("future", issuer, dns=[dns], not_before="20990101000000Z",
                         not_after="20991231000000Z")

    def wildcard(self, issuer: Cert, domain: str = "example.com") -> Cert:
        return self.leaf("wildcard", issuer, dns=[f"*.{domain}"])

    def chain(self, root: Cert, dns: str = "chain.example.com") -> Cert:
        """leaf <- intermediate <- root; leaf.chain holds leaf + intermediate."""
        inter = self.ca("intermediate-ca", issuer=root)
        return self.leaf("chain-leaf", inter, dns=[dns])

    def client(self, issuer: Cert, cn: str = "portico-client") -> Cert:
        return self.leaf("client", issuer, cn=cn, client=True)


def verify_cert(cert: Path, ca: Path, untrusted: Path | None = None) -> tuple[bool, str]:
    args = ["openssl", "verify", "-CAfile", str(ca)]
    if untrusted:
        args += ["-untrusted", str(untrusted)]
    r = subprocess.run(args + [str(cert)], capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------
# nginx backend
# ---------------------------------------------------------------------------

# Echoed as JSON by every nginx backend: tells tests which backend answered and
# what the proxy actually sent it.
_ECHO_FIELDS = {
    "backend": None,  # filled with the backend's name
    "server_port": "$server_port",
    "method": "$request_method",
    "uri": "$request_uri",
    "host": "$http_host",
    "x_forwarded_for": "$http_x_forwarded_for",
    "x_forwarded_proto": "$http_x_forwarded_proto",
    "x_custom": "$http_x_custom",
    "cookie_a": "$cookie_a",
    "cookie_b": "$cookie_b",
    "x_hop": "$http_x_hop",
    "hdr_connection": "$http_connection",
    "hdr_keep_alive": "$http_keep_alive",
    "hdr_te": "$http_te",
    "hdr_upgrade": "$http_upgrade",
    "hdr_proxy_connection": "$http_proxy_connection",
    "hdr_transfer_encoding": "$http_transfer_encoding",
    "hdr_content_length": "$http_content_length",
    "remote_addr": "$remote_addr",
    "connection": "$connection",
    "connection_requests": "$connection_requests",
    "ssl_server_name": "$ssl_server_name",
    "ssl_protocol": "$ssl_protocol",
    "ssl_client_s_dn": "$ssl_client_s_dn",
    "ssl_client_verify": "$ssl_client_verify",
}


class Nginx:
    """nginx from Debian as a loopback backend (or as a proxy, with a raw
    server block, for bench/). Config, pid, logs and temp paths live in dir."""

    def __init__(self, directory: Path, name: str = "nginx", port: int | None = None,
                 tls: Cert | None = None, client_ca: Path | None = None,
                 verify_client: str = "on", ssl_protocols: str = "TLSv1.2 TLSv1.3",
                 keepalive_requests: int = 1000, large_file_mib: int = 0,
                 extra_server: str = "", extra_http: str = "", raw_server: str | None = None,
                 worker_processes: int = 1):
        self.dir = Path(directory) / name
        self.name = name
        self.port = port or free_port()
        self.tls = tls
        self.client_ca = client_ca
        self.verify_client = verify_client
        self.ssl_protocols = ssl_protocols
        self.keepalive_requests = keepalive_requests
        self.large_file_mib = large_file_mib
        self.large_file_sha256 = ""
        self.extra_server = extra_server
        self.extra_http = extra_http
        self.raw_server = raw_server
        self.worker_processes = worker_processes
        self.proc: subprocess.Popen | None = None

    @property
    def upload_dir(self) -> Path:
        return self.dir / "dav" / "upload"

    def _config(self) -> str:
        d = self.dir
        fields = dict(_ECHO_FIELDS, backend=self.name)
        body = "{" + ",".join(f'"{k}":"{v}"' for k, v in fields.items()) + "}"
        listen = f"listen 127.0.0.1:{self.port}" + (" ssl" if self.tls else "") + " reuseport;"
        tls = ""
        if self.tls:
            tls = (f"ssl_certificate {self.tls.chain};\n    ssl_certificate_key {self.tls.key};\n"
                   f"    ssl_protocols {self.ssl_protocols};\n"
                   "    ssl_session_cache shared:SSL:1m;\n    ssl_session_tickets on;\n")
            if self.client_ca:
                tls += (f"    ssl_client_certificate {self.client_ca};\n"
                        f"    ssl_verify_client {self.verify_client};\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        server = self.raw_server if self.raw_server is not None else f"""
  server {{
    {listen}
    server_name _;
    {tls}
    location / {{
      default_type application/json;
      add_header X-Backend {self.name} always;
      return 200 '{body}\\n';
    }}
    location /large/ {{
      alias {d}/www/;
      add_header X-Backend {self.name} always;
    }}
    location /upload/ {{
      root {d}/dav;
      dav_methods PUT DELETE;
      create_full_put_path on;
      client_max_body_size 0;
      client_body_temp_path {d}/davtmp;
      add_header X-Backend {self.name} always;
    }}
    location = /status/204 {{ return 204; }}
    location = /status/500 {{ return 500 'backend error\\n'; }}
    {self.extra_server}
  }}"""
        return f"""{user}worker_processes {self.worker_processes};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  keepalive_requests {self.keepalive_requests};
  keepalive_timeout 75s;
  sendfile on;
  {self.extra_http}
{server}
}}
"""

    def _make_large_file(self) -> None:
        # A 1 MiB pseudo-random block repeated: distinct content per offset
        # within a block, cheap to make, and any reordering changes the hash.
        block = hashlib.shake_256(b"portico-large-file").digest(1 << 20)
        h = hashlib.sha256()
        with open(self.dir / "www" / "big.bin", "wb") as f:
            for i in range(self.large_file_mib):
                chunk = i.to_bytes(8, "big") + block[8:]
                f.write(chunk)
                h.update(chunk)
        self.large_file_sha256 = h.hexdigest()

    def start(self) -> "Nginx":
        for sub in ("www", "dav/upload", "davtmp", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if self.large_file_mib:
            self._make_large_file()
        (self.dir / "www" / "small.txt").write_text("small file\n")
        conf = self.dir / "nginx.conf"
        conf.write_text(self._config())
        self.stderr = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.dir)],
                                     stdout=self.stderr, stderr=self.stderr,
                                     start_new_session=True)
        _register(self.proc)
        try:
            wait_port(self.port, 10, self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"nginx {self.name} failed to start: {e}\n"
                               f"{self.error_log()}") from e
        return self

    def error_log(self) -> str:
        out = ""
        for f in ("error.log", "stderr.log"):
            p = self.dir / f
            if p.exists():
                out += p.read_text(errors="replace")
        return out

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc, signal.SIGTERM, 5)
            self.proc = None
        with contextlib.suppress(Exception):
            self.stderr.close()


# ---------------------------------------------------------------------------
# the Gateway API conformance suite's echo backend
# ---------------------------------------------------------------------------

class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """What upstream's echo-basic does: answers 200 with JSON of what it got
    (backend, namespace, method, path, host, headers, the TLS SNI), sets the
    response headers a request lists in X-Echo-Set-Header ("name:value,..."),
    and waits first when the query has delay=<n>s|<n>ms (timeout tests).
    Retry simulation, as echo-basic's: the first succeedAfter requests with
    the same uuid get responseCode (after delayRetry), later ones 200; with
    resetFirst=<n> the first n have their connection reset instead."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    @staticmethod
    def _seconds(text: str) -> float:
        return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))

    def _simulated_failure(self, q: dict) -> bool:
        """True when this request was answered (or reset) as a failed try."""
        uuid = (q.get("uuid") or [""])[0]
        if not uuid:
            return False
        with self.server.tries_lock:
            tries = self.server.tries[uuid] = self.server.tries.get(uuid, 0) + 1
        reset = int((q.get("resetFirst") or ["0"])[0])
        if tries <= reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        fail = int((q.get("succeedAfter") or ["0"])[0])
        if tries > fail or "responseCode" not in q:
            return False
        delay = (q.get("delayRetry") or [""])[0]
        if delay:
            time.sleep(self._seconds(delay))
        body = b"simulated failure\n"
        self.send_response(int(q["responseCode"][0]))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass
        return True

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(n) if n else b""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self._simulated_failure(q):
            return
        delay = (q.get("delay") or [""])[0]
        if delay:
            time.sleep(self._seconds(delay))
        hdrs: dict[str, list[str]] = {}
        for k, v in self.headers.items():
            hdrs.setdefault(k.lower(), []).append(v)
        body = json.dumps({"backend": self.server.name, "namespace": self.server.ns,
                           "method": self.command, "path": self.path,
                           "host": self.headers.get("Host", ""), "headers": hdrs,
                           "sni": getattr(self.connection, "sni", None),
                           "body_sha256": hashlib.sha256(body_in).hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for item in (self.headers.get("X-Echo-Set-Header") or "").split(","):
            name, sep, value = item.partition(":")
            if sep:
                self.send_header(name.strip(), value.strip())
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:  # the gateway gave up (timeout tests)
                pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer


class EchoServer:
    """An echo-basic backend on 127.0.0.1; with `cert`, a TLS one (upstream's
    tls-backend) that reports the SNI each connection carried."""

    def __init__(self, name: str, namespace: str, cert: Cert | None = None):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.srv.daemon_threads = True
        self.srv.name = name
        self.srv.ns = namespace
        self.srv.tries = {}  # retry simulation: requests seen per uuid
        self.srv.tries_lock = threading.Lock()
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert.chain), str(cert.key))

            def remember_sni(sock, server_name, _ctx):
                sock.sni = server_name
            ctx.sni_callback = remember_sni
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def start(self) -> "EchoServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


# ---------------------------------------------------------------------------
# small Python backends for fault injection
# ---------------------------------------------------------------------------

class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class PyBackend:
    """A threaded TCP server on 127.0.0.1 running handler(sock) per connection."""

    def __init__(self, handler: Callable[[socket.socket], None], port: int = 0):
        self.handler = handler
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.requests_seen = threading.Event()
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                outer.accepted += 1
                outer.conns.append(self.request)
                with contextlib.suppress(OSError):
                    outer.handler(self.request)

        self.server = _Server(("127.0.0.1", port), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "PyBackend":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()


def read_request_head(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            break
    return buf


def next_head(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
    """Reads until `buf` + what arrives holds a whole request head. Returns
    (head without the blank line, the bytes after it), None at EOF. For
    backends serving keep-alive connections one request at a time."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def garbage_handler(sock: socket.socket) -> None:
    """Answers any request with bytes that are not HTTP (-> 502)."""
    read_request_head(sock)
    sock.sendall(b"this is not http at all\r\n\x00\x01\x02\r\n\r\n")
    time.sleep(0.2)
    sock.close()


def blackhole_handler(sock: socket.socket) -> None:
    """Reads the request and never answers (-> 504 on a route timeout)."""
    read_request_head(sock)
    sock.settimeout(30)
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


def slow_handler(delay: float, body: bytes = b"slow response done\n",
                 seen: threading.Event | None = None) -> Callable[[socket.socket], None]:
    """Answers each request after delay seconds (keep-alive aware)."""

    def handle(sock: socket.socket) -> None:
        while True:
            head = read_request_head(sock)
            if not head:
                return
            if seen is not None:
                seen.set()
            time.sleep(delay)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    return handle


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def _recv_exact(sock: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def ws_read_frame(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    b0, b1 = _recv_exact(sock, 2, buf)
    opcode = b0 & 0x0F
    masked = b1 & 0x80
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _recv_exact(sock, 2, buf))[0]
    elif n == 127:
        n = struct.unpack("!Q", _recv_exact(sock, 8, buf))[0]
    mask = _recv_exact(sock, 4, buf) if masked else None
    payload = _recv_exact(sock, n, buf)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return opcode, payload


def ws_frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


def ws_handshake(sock: socket.socket, path: str,
                 host: str) -> tuple[str, dict, bytearray, str]:
    """Client side of an RFC 6455 opening handshake on a connected socket:
    (status line, lower-cased response headers, bytes read past the head, the
    Sec-WebSocket-Accept the server must answer). Checks nothing itself."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed during the websocket handshake: {head!r}")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return lines[0], headers, bytearray(rest), ws_accept(key)


def websocket_echo_handler(sock: socket.socket) -> None:
    """A minimal RFC 6455 server: handshake, then echo every data frame."""
    head = read_request_head(sock)
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    rest = bytearray(head.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in head else bytearray()
    headers = {}
    for line in text.split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "websocket" not in headers.get("upgrade", "").lower() or "sec-websocket-key" not in headers:
        body = b"expected a websocket upgrade\n"
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        return
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                  + ws_accept(headers["sec-websocket-key"]) + "\r\n"
                  "X-Echo-Host: " + headers.get("host", "") + "\r\n\r\n").encode())
    while True:
        opcode, payload = ws_read_frame(sock, rest)
        if opcode == 0x8:
            sock.sendall(ws_frame(0x8, payload, mask=False))
            return
        if opcode == 0x9:
            sock.sendall(ws_frame(0xA, payload, mask=False))
            continue
        sock.sendall(ws_frame(opcode, payload, mask=False))


# ---------------------------------------------------------------------------
# HTTP client helpers
# ---------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> dict:
        return json.loads(self.body.decode())

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def request(port: int, path: str = "/", host: str | None = None, method: str = "GET",
            headers: dict[str, str] | None = None, body: bytes | None = None,
            timeout: float = 10.0, conn: http.client.HTTPConnection | None = None) -> Response:
    """One request with exactly the headers given (Host set explicitly)."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host or f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                        for k in (headers or {})):
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        hl = r.getheaders()
        return Response(r.status, {k.lower(): v for k, v in hl}, data, hl)
    finally:
        if own:
            c.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0, read_until_close: bool = True,
                 expect_responses: int = 1) -> bytes:
    """Sends raw bytes, returns what comes back (until close, or until
    expect_responses complete responses have arrived)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            buf += chunk
            if not read_until_close and len(parse_responses(buf)) >= expect_responses:
                break
        return buf


def parse_responses(buf: bytes) -> list[Response]:
    """Parses complete HTTP/1.1 responses (Content-Length or chunked) from buf."""
    out = []
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            break
        hl = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        hd = {k.lower(): v for k, v in hl}
        status = int(m.group(1))
        if status in (100, 101, 204, 304) or 100 <= status < 200:
            body, buf = b"", rest
        elif "content-length" in hd:
            n = int(hd["content-length"])
            if len(rest) < n:
                break
            body, buf = rest[:n], rest[n:]
        elif "chunked" in hd.get("transfer-encoding", "").lower():
            body, pos, done = b"", 0, False
            while True:
                eol = rest.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(rest[pos:eol].split(b";")[0], 16)
                if size == 0:
                    end = rest.find(b"\r\n\r\n", eol)
                    if end < 0:
                        break
                    pos, done = end + 4, True
                    break
                if len(rest) < eol + 2 + size + 2:
                    break
                body += rest[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
            if not done:
                break
            buf = rest[pos:]
        else:
            body, buf = rest, b""
        out.append(Response(status, hd, body, hl))
    return out


# ---------------------------------------------------------------------------
# manifests (YAML emitted from dicts; a tiny block-style emitter)
# ---------------------------------------------------------------------------

def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _emit(obj, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines += _emit(v, indent + 2)
            elif isinstance(v, list) and v:
                lines.append(f"{pad}{k}:")
                lines += _emit(v, indent + 2)
            elif isinstance(v, (dict, list)):
                lines.append(f"{pad}{k}: {'{}' if isinstance(v, dict) else '[]'}")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = _emit(item, indent + 2)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                lines += sub
            else:
                lines.append(f"{pad}- {_scalar(item) if not isinstance(item, (dict, list)) else '{}'}")
    else:
        lines.append(pad + _scalar(obj))
    return lines


def to_yaml(*docs) -> str:
    """Multi-document YAML from dicts (or lists of dicts)."""
    flat = []
    for d in docs:
        flat.extend(d if isinstance(d, list) else [d])
    return "".join("---\n" + "\n".join(_emit(d, 0)) + "\n" for d in flat)


GW_API = "gateway.networking.k8s.io/v1"
CONTROLLER = "portico.dev/gateway-controller"


def _meta(name: str, namespace: str | None, labels: dict | None = None) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


def gateway_class(name: str = "portico", controller: str = CONTROLLER) -> dict:
    return {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": _meta(name, None),
            "spec": {"controllerName": controller}}


def listener(port: int, name: str = "http", protocol: str = "HTTP", hostname: str | None = None,
             from_namespaces: str = "All") -> dict:
    ln: dict = {"name": name, "port": port, "protocol": protocol}
    if hostname:
        ln["hostname"] = hostname
    ln["allowedRoutes"] = {"namespaces": {"from": from_namespaces}}
    return ln


def gateway(name: str, listeners: list[dict], namespace: str = "default",
            class_name: str = "portico") -> dict:
    return {"apiVersion": GW_API, "kind": "Gateway", "metadata": _meta(name, namespace),
            "spec": {"gatewayClassName": class_name, "listeners": listeners}}


def backend_ref(name: str, port: int, weight: int | None = None,
                namespace: str | None = None) -> dict:
    r: dict = {"name": name, "port": port}
    if namespace:
        r["namespace"] = namespace
    if weight is not None:
        r["weight"] = weight
    return r


def match(path: str | None = None, path_type: str = "PathPrefix",
          headers: dict[str, str] | None = None, method: str | None = None,
          query: dict[str, str] | None = None) -> dict:
    m: dict = {}
    if path is not None:
        m["path"] = {"type": path_type, "value": path}
    if headers:
        m["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
    if query:
        m["queryParams"] = [{"name": k, "value": v} for k, v in query.items()]
    if method:
        m["method"] = method
    return m


def rule(backends: list[dict], matches: list[dict] | None = None,
         filters: list[dict] | None = None, timeout: str | None = None,
         backend_timeout: str | None = None) -> dict:
    r: dict = {}
    if matches:
        r["matches"] = matches
    if filters:
        r["filters"] = filters
    if backends:
        r["backendRefs"] = backends
    if timeout:
        r["timeouts"] = {"request": timeout}
    if backend_timeout:
        r.setdefault("timeouts", {})["backendRequest"] = backend_timeout
    return r


def http_route(name: str, rules: list[dict], parent: str = "gw", hostnames: list[str] | None = None,
               namespace: str = "default", parent_namespace: str | None = None,
               section_name: str | None = None) -> dict:
    pref: dict = {"name": parent}
    if parent_namespace:
        pref["namespace"] = parent_namespace
    if section_name:
        pref["sectionName"] = section_name
    spec: dict = {"parentRefs": [pref]}
    if hostnames:
        spec["hostnames"] = hostnames
    spec["rules"] = rules
    return {"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": _meta(name, namespace),
            "spec": spec}


def service(name: str, port: int = 80, port_name: str = "http", namespace: str = "default",
            target_port: int | None = None) -> dict:
    p: dict = {"name": port_name, "port": port, "protocol": "TCP"}
    if target_port is not None:
        p["targetPort"] = target_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace),
            "spec": {"ports": [p]}}


def endpoint_slice(service_name: str, target_port: int, port_name: str = "http",
                   addresses: list[str] | None = None, namespace: str = "default",
                   name: str | None = None) -> dict:
    addrs = ["127.0.0.1"] if addresses is None else addresses
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(name or f"{service_name}-slice", namespace,
                              {"kubernetes.io/service-name": service_name}),
            "addressType": "IPv4",
            "ports": [{"name": port_name, "port": target_port, "protocol": "TCP"}],
            "endpoints": ([{"addresses": [a], "conditions": {"ready": True}} for a in addrs]
                          if addrs else [])}


def backend(name: str, target_port: int, svc_port: int = 80, namespace: str = "default") -> list:
    """Service `name` port svc_port backed by 127.0.0.1:target_port."""
    return [service(name, svc_port, namespace=namespace),
            endpoint_slice(name, target_port, namespace=namespace)]


def cluster_name(service_name: str, port: int = 80, namespace: str = "default") -> str:
    return f"kube_{namespace}_{service_name}_{port}"


# ---------------------------------------------------------------------------
# portico
# ---------------------------------------------------------------------------

class Portico:
    """build/portico run against a temp config dir, with its admin port."""

    def __init__(self, directory: Path, workers: int = 2, extra_args: Iterable[str] = (),
                 binary: Path | None = None, env: dict | None = None):
        self.dir = Path(directory)
        self.config_dir = self.dir / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or portico_binary()
        self.workers = workers
        self.extra_args = list(extra_args)
        self.env = env
        self.admin_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.stdout_path = self.dir / "portico.stdout"
        self.stderr_path = self.dir / "portico.stderr"
        self.returncode: int | None = None

    # config files ----------------------------------------------------------
    def write(self, filename: str, content: str | list | dict, atomic: bool = True) -> Path:
        """Writes a manifest file. atomic: write a hidden temp file and rename
        it over the target (how editors and kubectl-like tools save)."""
        text = content if isinstance(content, str) else to_yaml(content)
        target = self.config_dir / filename
        if atomic:
            tmp = self.config_dir / f".{filename}.tmp{os.getpid()}"
            tmp.write_text(text)
            os.replace(tmp, target)
        else:
            target.write_text(text)
        return target

    def remove(self, filename: str) -> None:
        (self.config_dir / filename).unlink()

    # lifecycle -------------------------------------------------------------
    def command(self) -> list[str]:
        return [str(self.binary), "run", "--config", str(self.config_dir),
                "--admin-address", f"127.0.0.1:{self.admin_port}",
                "--workers", str(self.workers), "--listen-address", "127.0.0.1",
                *self.extra_args]

    def start(self, wait_ports: Iterable[int] = (), timeout: float = 15.0) -> "Portico":
        if not self.binary.exists():
            raise FileNotFoundError(f"portico binary not found at {self.binary} "
                                    "(build it, or set PORTICO_BIN)")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(self.command(), stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        _register(self.proc)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"portico exited with {self.proc.returncode} at startup")
                with contextlib.suppress(OSError, http.client.HTTPException):
                    st, body = self.admin("/ready", timeout=1)
                    if st == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"portico /ready not 200 after {timeout}s")
                time.sleep(0.05)
            for p in wait_ports:
                wait_port(p, max(1.0, deadline - time.monotonic()), self.proc)
        except Exception as e:
            self.stop(check=False)
            raise RuntimeError(f"{e}\n--- portico stderr ---\n{self.stderr()[-4000:]}"
                               f"\n--- portico stdout ---\n{self.stdout()[-2000:]}") from e
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        """Waits for exit; an AssertionError (not a crash of the test) on timeout."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"portico still running {timeout}s later\n"
                                 f"{self.stderr()[-2000:]}") from None
        _unregister(self.proc)
        self._close_logs()
        return self.returncode

    def _close_logs(self) -> None:
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            with contextlib.suppress(Exception):
                f.close()

    def stop(self, check: bool = True, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            self._close_logs()
            return self.returncode
        p, self.proc = self.proc, None
        killed = False
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                p.kill()
                p.wait(timeout=5)
        _unregister(p)
        self.returncode = p.returncode
        self._close_logs()
        if check:
            if killed:
                raise AssertionError(f"portico did not exit within {timeout}s of SIGTERM")
            if p.returncode != 0:
                raise AssertionError(f"portico exited with {p.returncode} after SIGTERM\n"
                                     f"{self.stderr()[-3000:]}")
        return p.returncode

    # observation -----------------------------------------------------------
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def logs(self) -> str:
        return self.stdout() + self.stderr()

    def proc_status(self) -> dict[str, int]:
        """VmRSS/VmHWM (KiB) etc. from /proc/<pid>/status."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[k] = int(parts[0])
        return out

    def admin(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def admin_response(self, path: str, timeout: float = 5.0) -> Response:
        return request(self.admin_port, path, timeout=timeout)

    def stats(self, filter_re: str | None = None) -> dict[str, object]:
        path = "/stats" + ("?filter=" + urllib.parse.quote(filter_re) if filter_re else "")
        st, body = self.admin(path)
        if st != 200:
            raise AssertionError(f"GET {path} -> {st}: {body[:500]}")
        return parse_stats(body)

    def stat(self, name: str, default: int = 0) -> int:
        v = self.stats().get(name, default)
        return v if isinstance(v, int) else default

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0,
                 interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if predicate():
                    return True
            time.sleep(interval)
        return False

    def check(self, *paths: str | Path, output: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess:
        return run_check(self.binary, *paths, output=output, timeout=timeout)


def run_check(binary: Path, *paths: str | Path, output: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess:
    args = [str(binary), "check", *map(str, paths)]
    if output:
        args += ["-o", output]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def parse_stats(body: str) -> dict[str, object]:
    """`name: value` lines -> dict; integer values as int, others (histograms) as str."""
    out: dict[str, object] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip()
        try:
            out[name] = int(value)
        except ValueError:
            out[name] = value
    return out


# ---------------------------------------------------------------------------
# test base class
# ---------------------------------------------------------------------------

def require_tools(*tools: str) -> None:
    missing = [t for t in tools if which_or_none(t) is None]
    if missing:
        raise unittest.SkipTest(f"tools not installed: {', '.join(missing)}")


class PorticoCase(unittest.TestCase):
    """Per-class temp dir and cleanup; helpers to start nginx/portico/py
    backends whose teardown is registered before they run."""

    @classmethod
    def setUpClass(cls) -> None:
        require_tools("nginx", "openssl", "curl")
        cls.tmp = Path(tempfile.mkdtemp(prefix=f"portico-it-{cls.__name__}-"))
        if not KEEP_TMP:
            cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
            # Also at exit: a runner that skips class cleanups must not leave it behind.
            atexit.register(shutil.rmtree, cls.tmp, ignore_errors=True)

    @classmethod
    def start_nginx(cls, name: str, **kw) -> Nginx:
        n = Nginx(cls.tmp, name, **kw)
        cls.addClassCleanup(n.stop)
        return n.start()

    @classmethod
    def start_py(cls, handler: Callable[[socket.socket], None]) -> PyBackend:
        b = PyBackend(handler)
        cls.addClassCleanup(b.stop)
        return b.start()

    @classmethod
    def make_portico(cls, sub: str = "portico", **kw) -> Portico:
        p = Portico(cls.tmp / sub, **kw)
        cls.addClassCleanup(p.stop, check=False)
        return p

    def assertEventually(self, predicate: Callable[[], bool], timeout: float = 5.0,
                         msg: str = "") -> None:
        deadline = time.monotonic() + timeout
        last_exc = None
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception as e:  # noqa: BLE001 - keep polling, report the last
                last_exc = e
            time.sleep(0.05)
        self.fail(f"condition not met within {timeout}s: {msg}"
                  + (f" (last error: {last_exc!r})" if last_exc else ""))
