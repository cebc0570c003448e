#!/usr/bin/env python3
"""Side-by-side proxy benchmark: Portico vs nginx-as-proxy vs HAProxy.

Each proxy runs with one worker/thread pinned to CPU 0 (taskset) in front of
the same nginx backend; wrk and the backend share CPU 1. Runs alternate
(A B C A B C ...) because the machine is shared and noisy, and the median of
the rounds is reported, with Portico/peer ratios.

Scenarios (issue 4 numbering):
  1  keep-alive, small responses, HTTP client -> proxy -> TLS backend (BackendTLSPolicy)
  2  the same with a plain HTTP backend
  3  upstream churn: the TLS backend closes after every response (keepalive_requests 1), so
     every request is a new upstream TCP + TLS connection (session resumption)
  4  1 MiB responses and 1 MiB uploads streamed through the proxy to the TLS backend
  5  10,000 idle keep-alive client connections: memory per connection (bench/idle.py)
  6  control plane, Portico only: 10k-object `portico check`, edit-to-serving under load
     (bench/control_plane.py)
Each scenario's table goes to stdout (and --markdown); a PNG chart per scenario to --charts.
Python 3 stdlib only (plus gnuplot for the charts); reuses test/integration/harness.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402
import chart  # noqa: E402
from harness import (CertFactory, Nginx, backend, backend_ref, free_port, gateway,  # noqa: E402
                     gateway_class, http_route, listener, request, rule, to_yaml, wait_port)

HOST = "bench.example.com"
TLS_NAME = "example.com"
BODY = "hello from the backend\n"
PROXY_CPU = "0"
LOAD_CPU = "1"
# What the TLS backend offers (nginx ssl_protocols); --backend-tls-protocols changes it.
BACKEND_TLS_PROTOCOLS = "TLSv1.2 TLSv1.3"


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------

@dataclass
class RunResult:
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    mean_ms: float = float("nan")
    requests: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    cpu_util: float = 0.0  # proxy CPU seconds / wall seconds: < ~0.95 means it was not the bottleneck
    peak_rss_kib: int = 0
    noise: float = 0.0  # CPU time on CPUs 0+1 of anything but proxy/backend/wrk, plus steal
    cpu1_busy: float = 0.0  # CPU 1 (wrk + backend) busy fraction: ~1.0 means the load side saturated
    mib_s: float = float("nan")  # body MiB/s through the proxy (scenario 4)
    rss_growth_kib: int = 0  # max VmRSS during warm-up + run minus VmRSS before it
    resumed_backend: float = float("nan")  # fraction of TLS handshakes the backend saw resumed
    reuse_stats: float = float("nan")  # Portico: ssl.session_reused / ssl.handshake (/stats)
    key_exchange: str = ""  # scenario 3: TLS version + group the backend saw, with shares

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu_s / self.requests * 10000 if self.requests else float("nan")

    @property
    def load_us_per_req(self) -> float:
        """CPU 1 (wrk + backend, and the kernel's work for them) microseconds per request. When
        CPU 1 saturates, req/s is 1e6 / this: the proxy moves the ratio only as far as it
        changes the load side's cost per request."""
        return self.cpu1_busy / self.rps * 1e6 if self.rps else float("nan")

    @property
    def cpu_per_gib(self) -> float:
        """Proxy CPU seconds per GiB of body moved (scenario 4)."""
        moved = self.mib_s * (self.requests / self.rps if self.rps else 0) / 1024
        return self.cpu_s / moved if moved else float("nan")


def _ms(v: str, unit: str) -> float:
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse_wrk(out: str) -> RunResult:
    r = RunResult()
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r.rps = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    r.requests = int(m.group(1)) if m else 0
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            setattr(r, attr, _ms(m.group(1), m.group(2)))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r.errors += int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.errors += sum(int(x) for x in m.groups())
    # Exact percentiles (and p99.9, which --latency does not print) from bench/report.lua.
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if m:
        kv = dict(x.split("=", 1) for x in m.group(1).split())
        r.p50_ms = float(kv["p50_us"]) / 1e3
        r.p99_ms = float(kv["p99_us"]) / 1e3
        r.p999_ms = float(kv["p999_us"]) / 1e3
        if "mean_us" in kv:
            r.mean_ms = float(kv["mean_us"]) / 1e3
    return r


def proc_cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def cpu_times() -> dict[str, tuple[int, ...]]:
    """Per-CPU (busy, total, task, steal) jiffies from /proc/stat; task = user+nice+system
    (time charged to processes; irq/softirq time is not charged to any process)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0].startswith("cpu") and f[0] != "cpu":
            v = [int(x) for x in f[1:9]]  # user nice system idle iowait irq softirq steal
            out[f[0][3:]] = (sum(v) - v[3] - v[4], sum(v), v[0] + v[1] + v[2], v[7])
    return out


def cpu_busy(before: dict, after: dict, cpu: str, field: int = 0) -> tuple[float, float]:
    """(seconds of `field` -- 0 busy, 2 task, 3 steal --, wall seconds) of one CPU between two
    cpu_times() samples."""
    tick = os.sysconf("SC_CLK_TCK")
    b = after[cpu][field] - before[cpu][field]
    t = after[cpu][1] - before[cpu][1]
    return b / tick, t / tick


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_hwm_kib(pids: list[int]) -> int:
    out = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out += int(line.split()[1])
    return out


def proc_rss_kib(pids: list[int]) -> int:
    out = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out += int(line.split()[1])
    return out


class RssSampler:
    """Samples the summed VmRSS of a proxy's processes every `interval` seconds in a thread;
    `growth` is the largest sample minus the baseline taken when it started."""

    def __init__(self, pids: list[int], interval: float = 0.1):
        self.pids, self.interval = pids, interval
        self.baseline = proc_rss_kib(pids)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, proc_rss_kib(self.pids))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_rss_kib(self.pids))
        return self.peak - self.baseline


def children(pid: int) -> list[int]:
    """pid and its descendants (nginx/haproxy masters fork workers)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            for k in kids:
                out += children(int(k))
    return out


# ---------------------------------------------------------------------------
# proxies
# ---------------------------------------------------------------------------

class Proxy:
    name = ""

    def __init__(self, work: Path, port: int, backend_port: int, tls: "TlsSetup | None"):
        self.work, self.port, self.backend_port, self.tls = work, port, backend_port, tls
        self.proc: subprocess.Popen | None = None

    def cmd(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = open(self.work / f"{self.name}.log", "wb")
        self.proc = subprocess.Popen(["taskset", "-c", PROXY_CPU, *self.cmd()], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        harness._register(self.proc)
        wait_port(self.port, 15, self.proc)
        time.sleep(0.3)  # workers forked / config loaded

    def pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def stop(self) -> None:
        if self.proc:
            harness._kill(self.proc, signal.SIGTERM, 10)
            self.proc = None


class PorticoProxy(Proxy):
    name = "portico"

    def __init__(self, *a, binary: Path, **kw):
        super().__init__(*a, **kw)
        self.binary = binary
        self.admin = free_port()
        cfg = self.work / "portico-config"
        cfg.mkdir(exist_ok=True)
        docs = [gateway_class(), gateway("gw", [listener(self.port)])]
        docs += backend("bench", self.backend_port)
        docs += [http_route("bench", [rule([backend_ref("bench", 80)])], hostnames=[HOST])]
        if self.tls:
            docs += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ca"},
                      "data": {"ca.crt": self.tls.cert.cert.read_text()}},
                     {"apiVersion": "gateway.networking.k8s.io/v1alpha3",
                      "kind": "BackendTLSPolicy", "metadata": {"name": "bench-tls"},
                      "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "bench"}],
                               "validation": {"hostname": TLS_NAME, "caCertificateRefs": [
                                   {"group": "", "kind": "ConfigMap", "name": "ca"}]}}}]
        (cfg / "bench.yaml").write_text(to_yaml(docs))
        self.cfg = cfg

    def cmd(self):
        return [str(self.binary), "run", "--config", str(self.cfg), "--workers", "1",
                "--admin-address", f"127.0.0.1:{self.admin}", "--listen-address", "127.0.0.1",
                "--log-level", "warning", "--access-log", "off"]

    def ssl_counters(self) -> tuple[int, int]:
        """(ssl.handshake, ssl.session_reused) of the bench cluster, from the admin /stats."""
        url = f"http://127.0.0.1:{self.admin}/stats?filter=ssl"
        with urllib.request.urlopen(url, timeout=5) as r:
            stats = harness.parse_stats(r.read().decode())
        prefix = f"cluster.{harness.cluster_name('bench', 80)}.ssl."
        return (int(stats.get(prefix + "handshake", 0)), int(stats.get(prefix + "session_reused", 0)))

    def start(self):
        # --access-log off matches the peers' `access_log off`; stdout is discarded anyway.
        self.proc = subprocess.Popen(["taskset", "-c", PROXY_CPU, *self.cmd()],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "portico.log", "wb"),
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        harness._register(self.proc)
        wait_port(self.port, 15, self.proc)
        time.sleep(0.3)


class NginxProxy(Proxy):
    name = "nginx"

    def cmd(self):
        d = self.work / "nginx-proxy"
        for sub in ("tmp",):
            (d / sub).mkdir(parents=True, exist_ok=True)
        scheme = "https" if self.tls else "http"
        tls = ""
        if self.tls:
            tls = (f"proxy_ssl_verify on;\n      proxy_ssl_trusted_certificate {self.tls.cert.cert};\n"
                   f"      proxy_ssl_name {TLS_NAME};\n      proxy_ssl_server_name on;\n"
                   "      proxy_ssl_session_reuse on;\n"
                   # 1.22's default proxy_ssl_protocols stop at TLSv1.2 (1.23.4 added 1.3).
                   "      proxy_ssl_protocols TLSv1.2 TLSv1.3;\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
worker_rlimit_nofile 40000;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  keepalive_requests 100000;
  # Scenario 4: stream bodies both ways without temp files (proxy_buffering stays on, its
  # default, but never spills to disk); 1 MiB uploads are allowed.
  client_max_body_size 2m;
  proxy_request_buffering off;
  proxy_max_temp_file_size 0;
  upstream backend {{
    server 127.0.0.1:{self.backend_port};
    keepalive 128;
    keepalive_requests 100000;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass {scheme}://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      {tls}
    }}
  }}
}}
"""
        (d / "nginx.conf").write_text(conf)
        return ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)]


class HaproxyProxy(Proxy):
    name = "haproxy"
    maxconn = 8000  # scenario 5 raises it (10k client connections)
    global_extra = ""

    def server_tls(self) -> str:
        """The `server` line's TLS options: verified TLS to the backend, as the seed asks.
        Session reuse towards servers is on by default (`no-ssl-reuse` turns it off)."""
        if not self.tls:
            return ""
        return (f" ssl verify required ca-file {self.tls.cert.cert} sni str({TLS_NAME})"
                f" verifyhost {TLS_NAME}")

    def cmd(self):
        tls = self.server_tls()
        conf = f"""global
  nbthread 1
  maxconn {self.maxconn}
{self.global_extra}  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:{self.port}
  # Header parity: Portico and nginx both send X-Forwarded-For and X-Forwarded-Proto.
  http-request set-header X-Forwarded-Proto http
  default_backend be
backend be
  server s1 127.0.0.1:{self.backend_port}{tls}
"""
        path = self.work / "haproxy.cfg"
        path.write_text(conf)
        return ["haproxy", "-f", str(path), "-db"]


class TcpRelayProxy(HaproxyProxy):
    """Not a competitor: a reference point. HAProxy in `mode tcp` copies bytes between each
    client connection and its own backend connection (TLS to the backend in scenario 1), with
    no HTTP parsing at all. No HTTP proxy can do less work per request, so its req/s is about
    the most the load side (wrk + backend on CPU 1) lets any proxy reach here, within
    run-to-run noise."""
    name = "tcp-relay"
    busy_polling = False  # --relay-busy-polling: HAProxy never sleeps in its poller

    def cmd(self):
        tls = self.server_tls()
        conf = f"""global
  nbthread 1
  maxconn {self.maxconn}
{"  busy-polling" if self.busy_polling else ""}
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen relay
  bind 127.0.0.1:{self.port}
  server s1 127.0.0.1:{self.backend_port}{tls}
"""
        path = self.work / "tcp-relay.cfg"
        path.write_text(conf)
        return ["haproxy", "-f", str(path), "-db"]


@dataclass
class TlsSetup:
    cert: harness.Cert


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

REPORT_LUA = """
-- Exact percentiles (wrk --latency prints no p99.9) in one machine-readable line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""

MIB = 1 << 20
BIG_PATH = "/big.bin"  # 1 MiB static file on the backend (scenario 4 downloads)
UPLOAD_PATH = "/upload/blob"  # WebDAV PUT on the backend: it reads the whole body, then 201/204


def wrk_script(work: Path, delay_ms: int, upload_bytes: int = 0) -> Path:
    path = work / f"wrk-delay{delay_ms}-up{upload_bytes}.lua"
    text = REPORT_LUA
    if delay_ms:
        # Paced load: each connection waits delay_ms after a response before its next request,
        # so the offered rate is about connections / (delay + latency) for every proxy alike.
        text += f"\nfunction delay() return {delay_ms} end\n"
    if upload_bytes:
        # wrk adds Content-Length for a body; the same 1 MiB buffer is sent on every request.
        text += (f'\nwrk.method = "PUT"\nwrk.body = string.rep("u", {upload_bytes})\n'
                 'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    path.write_text(text)
    return path


def wrk(port: int, seconds: int, connections: int, script: Path,
        path: str = "/", host: str = HOST) -> tuple[RunResult, str]:
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "--latency", "-s", str(script), "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out), out


def measure(p: "Proxy", backend_pids: list[int], seconds: int, connections: int,
            script: Path, path: str = "/") -> tuple[RunResult, str]:
    pids = p.pids()
    cpu0, be0, wrk0, t0 = (proc_cpu_seconds(pids), proc_cpu_seconds(backend_pids),
                           children_cpu_seconds(), cpu_times())
    res, out = wrk(p.port, seconds, connections, script, path)
    t1 = cpu_times()
    res.cpu_s = proc_cpu_seconds(pids) - cpu0
    res.cpu_util = res.cpu_s / seconds
    res.peak_rss_kib = proc_hwm_kib(pids)
    busy1, wall = cpu_busy(t0, t1, LOAD_CPU)
    res.cpu1_busy = busy1 / wall if wall else float("nan")
    # Everything else that ran on our two CPUs: other people's builds and tests, and the
    # hypervisor's steal. Runs with much of it are retried (see --max-noise).
    ours = res.cpu_s + proc_cpu_seconds(backend_pids) - be0 + children_cpu_seconds() - wrk0
    task = sum(cpu_busy(t0, t1, c, 2)[0] for c in (PROXY_CPU, LOAD_CPU))
    steal = sum(cpu_busy(t0, t1, c, 3)[0] for c in (PROXY_CPU, LOAD_CPU))
    res.noise = (max(0.0, task - ours) + steal) / wall if wall else float("nan")
    return res, out


def wait_quiet(max_wait: float, threshold: float = 0.10) -> float:
    """Wait until both CPUs were under threshold busy for a whole second (others share this
    machine: builds and tests land on either CPU) or max_wait passes. Returns seconds waited."""
    start = time.monotonic()
    while True:
        t0 = cpu_times()
        time.sleep(1.0)
        t1 = cpu_times()
        worst = max(b / w if w else 0.0 for b, w in (cpu_busy(t0, t1, c) for c in t0))
        waited = time.monotonic() - start
        if worst < threshold or waited >= max_wait:
            if worst >= threshold:
                print(f"  machine still busy ({100 * worst:.0f}%) after {waited:.0f}s; "
                      "measuring anyway (see CPU 0 other %)", file=sys.stderr)
            return waited


def sanity(proxy: Proxy) -> str | None:
    try:
        r = request(proxy.port, "/", host=HOST, timeout=5)
    except Exception as e:  # noqa: BLE001
        return f"{proxy.name}: {e!r}"
    if r.status != 200 or r.text != BODY:
        return f"{proxy.name}: status {r.status}, body {r.text[:200]!r}"
    return None


@dataclass
class Column:
    runs: list[RunResult] = field(default_factory=list)
    error: str | None = None
    retried: int = 0  # runs repeated because other load landed on the machine

    def med(self, attr: str) -> float:
        vals = [getattr(r, attr) for r in self.runs]
        vals = [v for v in vals if v == v]  # NaN: not measured in that run
        return statistics.median(vals) if vals else float("nan")


@dataclass
class Mode:
    """One wrk measurement per proxy and round."""
    key: str  # saturated | paced | churn | download | upload
    label: str  # table subtitle
    connections: int
    script: Path
    path: str = "/"
    body_mib: float = 0.0  # body MiB each request moves through the proxy (MiB/s column)


@dataclass
class Metric:
    header: str
    attr: str  # RunResult attribute (median over rounds)
    fmt: str
    scale: float = 1.0
    better: str = ""  # "higher" / "lower": gets a Portico/peer column when listed in ratios


METRICS = {m.attr: m for m in (
    Metric("req/s", "rps", "{:.0f}", better="higher"),
    Metric("MiB/s", "mib_s", "{:.0f}", better="higher"),
    Metric("p50 ms", "p50_ms", "{:.3f}", better="lower"),
    Metric("p99 ms", "p99_ms", "{:.3f}", better="lower"),
    Metric("p99.9 ms", "p999_ms", "{:.3f}", better="lower"),
    Metric("proxy CPU s / 10k req", "cpu_per_10k", "{:.3f}", better="lower"),
    Metric("proxy CPU s / GiB", "cpu_per_gib", "{:.2f}", better="lower"),
    Metric("proxy CPU %", "cpu_util", "{:.0f}", 100),
    Metric("CPU 1 busy %", "cpu1_busy", "{:.0f}", 100),
    Metric("CPU 1 us / req", "load_us_per_req", "{:.1f}"),
    Metric("noise %", "noise", "{:.0f}", 100),
    Metric("RSS growth MiB", "rss_growth_kib", "{:.1f}", 1 / 1024, better="lower"),
    Metric("peak RSS MiB", "peak_rss_kib", "{:.1f}", 1 / 1024, better="lower"),
    Metric("backend saw resumed %", "resumed_backend", "{:.1f}", 100),
    Metric("ssl.session_reused / ssl.handshake", "reuse_stats", "{:.3f}"),
)}
RATIO_HEADERS = {"rps": "req/s", "mib_s": "MiB/s", "cpu_per_10k": "CPU per req",
                 "cpu_per_gib": "CPU per GiB", "p99_ms": "p99", "rss_growth_kib": "RSS growth"}


@dataclass
class Scenario:
    num: int
    title: str
    metrics: list[str]
    ratios: list[str]
    chart: list[str]  # metrics drawn side by side in the PNG, one panel each
    modes: list[Mode] = field(default_factory=list)


BASIC = ["rps", "p50_ms", "p99_ms", "p999_ms", "cpu_per_10k", "cpu_util", "cpu1_busy",
         "load_us_per_req", "noise", "peak_rss_kib"]


def scenario_spec(num: int, args, work: Path) -> Scenario:
    sat = Mode("saturated", f"saturated: wrk -t1 -c{args.connections}, as fast as it goes",
               args.connections, wrk_script(work, 0))
    paced = Mode("paced", f"paced: wrk -t1 -c{args.paced_connections}, each connection waits "
                 f"{args.paced_delay} ms between requests (same offered load for every proxy)",
                 args.paced_connections, wrk_script(work, args.paced_delay))
    if num in (1, 2):
        s = Scenario(num, TITLES[num], BASIC, ["rps", "cpu_per_10k", "p99_ms"],
                     ["rps", "p99_ms"], [sat] + ([paced] if args.paced_delay else []))
    elif num == 3:
        churn = Mode("churn", f"wrk -t1 -c{args.connections}, as fast as it goes; one upstream "
                     "connection per request", args.connections, wrk_script(work, 0))
        s = Scenario(3, TITLES[3], BASIC + ["resumed_backend", "reuse_stats"],
                     ["rps", "cpu_per_10k", "p99_ms"], ["rps", "p99_ms"], [churn])
    elif num == 4:
        c = args.stream_connections
        down = Mode("download", f"download: wrk -t1 -c{c} GET {BIG_PATH} (1 MiB response)", c,
                    wrk_script(work, 0), BIG_PATH, 1.0)
        up = Mode("upload", f"upload: wrk -t1 -c{c} PUT {UPLOAD_PATH} (1 MiB request body)", c,
                  wrk_script(work, 0, MIB), UPLOAD_PATH, 1.0)
        s = Scenario(4, TITLES[4], ["mib_s", "rps", "p50_ms", "p99_ms", "cpu_per_gib",
                                    "cpu_util", "cpu1_busy", "noise", "rss_growth_kib",
                                    "peak_rss_kib"],
                     ["mib_s", "cpu_per_gib", "p99_ms", "rss_growth_kib"],
                     ["mib_s", "p99_ms", "rss_growth_kib"], [down, up])
    else:
        raise ValueError(f"scenario {num} is not a wrk scenario")
    return s


def start_backend(num: int, work: Path, certs: CertFactory) -> tuple[Nginx, "TlsSetup | None"]:
    """The backend nginx (1 worker, on CPU 1) for wrk scenarios 1-4 (and 5, plain)."""
    tls = None
    backend_cert = None
    if num in (1, 3, 4):
        backend_cert = certs.self_signed_example_com()
        tls = TlsSetup(backend_cert)
    extra_http = ""
    extra_server = ""
    if num == 3:
        # Count resumed handshakes as the backend sees them, for every proxy alike
        # ($ssl_session_reused: "r" or "."), with the protocol version and key exchange group
        # ($ssl_curve); buffered, so the cost per request is tiny.
        extra_http = "log_format reuse '$ssl_session_reused $ssl_protocol $ssl_curve';"
        extra_server = f"access_log {work}/backend-reuse.log reuse buffer=64k flush=1s;"
    if num == 4:
        # 1 MiB download, and a WebDAV PUT that reads the whole 1 MiB body before it answers
        # (`return 200` would answer before the body arrived). The work directory is on tmpfs
        # when /dev/shm exists, so neither side touches a disk.
        extra_server = f"""
    location = {BIG_PATH} {{ root {work}/www; }}
    location /upload/ {{
      root {work}/dav;
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 2m;
      client_body_buffer_size 1m;
      client_body_temp_path {work}/davtmp;
    }}"""
        for sub in ("www", "dav/upload", "davtmp"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        (work / "www" / BIG_PATH.lstrip("/")).write_bytes(os.urandom(MIB))
    # One backend worker (the harness default): it shares CPU 1 with wrk. Scenario 3: the
    # backend closes every connection after one response.
    be = Nginx(work, f"backend-s{num}", tls=backend_cert,
               keepalive_requests=1 if num == 3 else 100000, raw_server=None,
               worker_processes=1, extra_http=extra_http)
    tls_lines = ""
    if tls:
        # nginx 1.22's default ssl_protocols stop at TLSv1.2; the seed's backend speaks 1.3.
        tls_lines = (f"ssl_certificate {backend_cert.chain}; ssl_certificate_key {backend_cert.key};"
                     f"\n    ssl_protocols {BACKEND_TLS_PROTOCOLS};"
                     "\n    ssl_session_cache shared:SSL:10m; ssl_session_tickets on;")
    be.raw_server = f"""
  server {{
    listen 127.0.0.1:{be.port}{' ssl' if tls else ''};
    {tls_lines}
    {extra_server}
    location / {{ default_type text/plain; return 200 '{BODY.replace(chr(10), chr(92) + "n")}'; }}
  }}"""
    be.start()
    # nginx was started without taskset; pin the running backend to the load CPU.
    for pid in children(be.proc.pid):
        subprocess.run(["taskset", "-pc", LOAD_CPU, str(pid)], capture_output=True)
    return be, tls


PROXIES = {c.name: c for c in (PorticoProxy, NginxProxy, HaproxyProxy, TcpRelayProxy)}


def make_proxies(args, work: Path, be: Nginx, tls: "TlsSetup | None",
                 binary: Path) -> list[Proxy]:
    out = []
    for cls in PROXIES.values():
        if cls.name in args.proxies:
            kw = {"binary": binary} if cls is PorticoProxy else {}
            out.append(cls(work, free_port(), be.port, tls, **kw))
    return out


class ReuseLog:
    """The scenario-3 backend's $ssl_session_reused log: resumed fraction since mark()."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def mark(self) -> None:
        time.sleep(1.2)  # the log is flushed every second
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def resumed(self) -> tuple[float, str]:
        """(resumed fraction, "TLSv1.3 X25519 100%"-style version/group shares) since mark()."""
        time.sleep(1.2)
        if not self.path.exists():
            return float("nan"), ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            lines = f.read().decode(errors="replace").splitlines()
        reused = sum(1 for ln in lines if ln.startswith("r"))
        groups: dict[str, int] = {}
        for ln in lines:
            f = ln.split() + ["", "", ""]
            g = f"{f[1]} {f[2] or '-'}"
            groups[g] = groups.get(g, 0) + 1
        kx = ", ".join(f"{g} {100 * k / len(lines):.0f}%" for g, k in
                       sorted(groups.items(), key=lambda x: -x[1]))
        return (reused / len(lines) if lines else float("nan")), kx


def run_scenario(num: int, args, work: Path, certs: CertFactory, binary: Path,
                 results: dict) -> str:
    spec = scenario_spec(num, args, work)
    be, tls = start_backend(num, work, certs)
    be_pids = children(be.proc.pid)
    reuse_log = ReuseLog(work / "backend-reuse.log") if num == 3 else None
    proxies = make_proxies(args, work, be, tls, binary)
    cols = {m.key: {p.name: Column() for p in proxies} for m in spec.modes}
    try:
        for rnd in range(args.rounds):
            # Alternate A B C A B C: slow drift on a shared machine hits every proxy alike.
            for p in proxies:
                if any(cols[m.key][p.name].error for m in spec.modes):
                    continue
                if args.quiet_wait > 0:
                    wait_quiet(args.quiet_wait)
                try:
                    p.start()
                except Exception as e:  # noqa: BLE001
                    for m in spec.modes:
                        cols[m.key][p.name].error = f"start failed: {e}"
                    p.stop()
                    continue
                try:
                    err = sanity(p)
                    if err:
                        for m in spec.modes:
                            cols[m.key][p.name].error = err
                        continue
                    # RSS growth: the peak during each mode (its warm-up included) over the
                    # just-started proxy's RSS.
                    sampler = RssSampler(p.pids())
                    for m in spec.modes:
                        col = cols[m.key][p.name]
                        sampler.peak = sampler.baseline
                        wrk(p.port, args.warmup, m.connections, m.script, m.path)
                        for attempt in range(args.retries + 1):
                            if reuse_log:
                                reuse_log.mark()
                            before = (p.ssl_counters() if num == 3 and
                                      isinstance(p, PorticoProxy) else None)
                            res, out = measure(p, be_pids, args.duration, m.connections,
                                               m.script, m.path)
                            if m.body_mib:
                                res.mib_s = res.rps * m.body_mib
                            if before:
                                hs, reused = (a - b for a, b in zip(p.ssl_counters(), before))
                                res.reuse_stats = reused / hs if hs else float("nan")
                            if reuse_log:
                                res.resumed_backend, res.key_exchange = reuse_log.resumed()
                            log_run(num, rnd, p.name, m.key, res, out, args.verbose)
                            if res.noise <= args.max_noise or attempt == args.retries:
                                break
                            print(f"  noisy run ({100 * res.noise:.0f}% foreign CPU), "
                                  "measuring again", file=sys.stderr)
                            col.retried += 1
                            wait_quiet(args.quiet_wait)
                        res.rss_growth_kib = sampler.peak - sampler.baseline
                        col.runs.append(res)
                    sampler.stop()
                finally:
                    p.stop()
        results[num] = (spec, cols)
        return "\n".join(table(num, spec, m, cols[m.key]) for m in spec.modes)
    finally:
        for p in proxies:
            p.stop()
        be.stop()


def log_run(num: int, rnd: int, name: str, mode: str, res: RunResult, out: str,
            verbose: bool) -> None:
    extra = ""
    if res.mib_s == res.mib_s:
        extra += f"  {res.mib_s:6.0f} MiB/s"
    if res.resumed_backend == res.resumed_backend:
        extra += f"  resumed {100 * res.resumed_backend:.1f}%"
    if res.key_exchange:
        extra += f"  kx {res.key_exchange}"
    if res.reuse_stats == res.reuse_stats:
        extra += f"  reused/handshake {res.reuse_stats:.3f}"
    print(f"  scenario {num} round {rnd + 1} {mode:9s} {name:8s} {res.rps:9.0f} req/s "
          f"p99 {res.p99_ms:6.2f} ms  mean {res.mean_ms:5.2f} ms  cpu/10k {res.cpu_per_10k:.3f} s  proxy {100 * res.cpu_util:3.0f}%"
          f"  cpu1 {100 * res.cpu1_busy:3.0f}%  noise {100 * res.noise:3.0f}%"
          f"  errors {res.errors}{extra}", file=sys.stderr)
    if verbose or (res.errors and not res.requests):
        print(out, file=sys.stderr)


TITLES = {1: "keep-alive, small responses, TLS backend (BackendTLSPolicy)",
          2: "keep-alive, small responses, plain HTTP backend",
          3: "upstream churn, TLS backend closes after every response",
          4: "1 MiB responses and 1 MiB uploads streamed through, TLS backend",
          5: "10,000 idle keep-alive client connections",
          6: "control plane: 10,000 HTTPRoutes, Services, EndpointSlices, BackendTLSPolicies"}


def fmt_metric(m: Metric, v: float) -> str:
    return m.fmt.format(v * m.scale) if v == v else "n/a"


def table(num: int, spec: Scenario, mode: Mode, cols: dict[str, Column]) -> str:
    metrics = [METRICS[k] for k in spec.metrics]
    ratios = [METRICS[k] for k in spec.ratios]
    head = ["proxy"] + [m.header for m in metrics] + ["errors"] + [
        f"Portico/peer {RATIO_HEADERS[m.attr]}" for m in ratios]
    lines = [f"### Scenario {num}: {spec.title} ({mode.label})", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    pc = cols.get("portico")
    pc_ok = pc is not None and pc.runs and not pc.error
    for name, c in cols.items():
        if c.error or not c.runs:
            lines.append(f"| {name} | n/a ({c.error or 'no runs'}) |" + " |" * (len(head) - 2))
            continue
        cells = [name] + [fmt_metric(m, c.med(m.attr)) for m in metrics]
        cells.append(str(sum(r.errors for r in c.runs)))
        for m in ratios:
            peer = c.med(m.attr)
            if name == "portico" or not pc_ok or not peer or peer != peer:
                cells.append("")
            else:
                cells.append(f"{pc.med(m.attr) / peer:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    key = "mib_s" if mode.body_mib else "rps"
    lines.append(f"Per-round {METRICS[key].header} (run order): " + "; ".join(
        f"{n}: " + ", ".join(fmt_metric(METRICS[key], getattr(r, key)) for r in c.runs)
        for n, c in cols.items()))
    retried = {n: c.retried for n, c in cols.items() if c.retried}
    if retried:
        lines.append("")
        lines.append("Runs repeated because of foreign load: " +
                     ", ".join(f"{n} {k}" for n, k in retried.items()))
    lines.append("")
    return "\n".join(lines) + "\n"


def chart_wrk_scenario(num: int, spec: Scenario, cols: dict, charts: Path) -> Path | None:
    """One PNG per scenario: one panel per chart metric, modes on the x axis, a bar per proxy."""
    panels = []
    for key in spec.chart:
        m = METRICS[key]
        groups = [mode.key for mode in spec.modes]
        series = {}
        for mode in spec.modes:
            for name, c in cols[mode.key].items():
                v = c.med(key) * m.scale if c.runs and not c.error else float("nan")
                series.setdefault(name, []).append(v)
        panels.append(chart.Panel(m.header + (" (higher is better)" if m.better == "higher"
                                              else " (lower is better)"), groups, series))
    png = charts / f"bench-s{num}.png"
    chart.bar_chart(png, f"Scenario {num}: {spec.title} (median of rounds)", panels)
    return png


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")

    def first_line(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]
        except OSError:
            return "?"

    commit = first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return (f"Machine: {os.cpu_count()} CPUs, {model}, Linux {os.uname().release}; "
            f"{first_line(['nginx', '-v'])}; {first_line(['haproxy', '-v'])}; "
            f"{first_line(['wrk', '--version'])}; Portico {commit}.")


def main() -> int:
    global BACKEND_TLS_PROTOCOLS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=ROOT / "build-release" / "portico")
    ap.add_argument("--scenarios", default="2,1,3,4,5,6", help="comma list, e.g. 2,1")
    ap.add_argument("--proxies", default="portico,nginx,haproxy",
                    help="comma list of portico, nginx, haproxy and tcp-relay (HAProxy in mode "
                    "tcp: the lower bound on any proxy's work, not a competitor)")
    ap.add_argument("--relay-busy-polling", action="store_true",
                    help="tcp-relay with HAProxy's `busy-polling` (its poller never sleeps), to "
                    "see whether sparing CPU 1 the wake-ups lifts the ceiling")
    ap.add_argument("--backend-tls-protocols", default=BACKEND_TLS_PROTOCOLS,
                    help="nginx ssl_protocols of the TLS backend, e.g. TLSv1.2 (the seed's)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--paced-delay", type=int, default=2,
                    help="ms each connection waits between requests in the paced run (0: skip)")
    ap.add_argument("--paced-connections", type=int, default=64)
    ap.add_argument("--stream-connections", type=int, default=16,
                    help="scenario 4: concurrent 1 MiB downloads / uploads")
    ap.add_argument("--idle-connections", type=int, default=10000, help="scenario 5")
    ap.add_argument("--objects", type=int, default=10000,
                    help="scenario 6: HTTPRoutes (and as many Services, EndpointSlices, "
                    "BackendTLSPolicies)")
    ap.add_argument("--edits", type=int, default=3,
                    help="scenario 6: edits of each kind (big file, new small file) under load")
    ap.add_argument("--quiet-wait", type=float, default=20,
                    help="before each proxy's runs, wait up to this many seconds for both CPUs "
                    "to be idle (shared machine); 0: do not wait")
    ap.add_argument("--max-noise", type=float, default=0.10,
                    help="repeat a run when foreign CPU + steal exceeded this fraction of a CPU")
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file "
                    "(rewritten after every scenario)")
    ap.add_argument("--charts", default=str(ROOT / "docs"),
                    help="directory for the PNG chart per scenario (bench-s<N>.png); "
                    "'' for none")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    BACKEND_TLS_PROTOCOLS = args.backend_tls_protocols
    TcpRelayProxy.busy_polling = args.relay_busy_polling
    # SIGTERM/SIGINT (also when started in the background, where SIGINT is ignored) unwind
    # through the finally blocks, so no proxy, backend or wrk outlives the run.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    args.proxies = args.proxies.split(",")
    args.charts = Path(args.charts) if args.charts else None  # Path("") would be "."
    scenarios = [int(x) for x in args.scenarios.split(",")]
    tools = ["wrk", "taskset", "nginx", "haproxy", "openssl"]
    if args.charts:
        tools.append("gnuplot")
    if 6 in scenarios:
        tools.append("/usr/bin/time")
    for tool in tools:
        if harness.which_or_none(tool) is None and not Path(tool).exists():
            print(f"bench: {tool} not installed (scripts/deps.sh installs it)", file=sys.stderr)
            return 2
    if os.cpu_count() and os.cpu_count() < 2:
        print("bench: needs 2 CPUs (proxy on CPU 0, load on CPU 1)", file=sys.stderr)
        return 2
    if ("portico" in args.proxies or 6 in scenarios) and not args.binary.exists():
        print(f"bench: {args.binary} not built", file=sys.stderr)
        return 2
    # Scenario 5 holds 10k sockets in the client and in each proxy (children inherit this).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # tmpfs when there is one: scenario 4's backend files and uploads stay off the disk.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="portico-bench-", dir=shm if shm.is_dir() else None))
    certs = CertFactory(work / "certs")
    out = [f"Portico bench: {time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} rounds x "
           f"{args.duration}s per proxy and mode, proxy on CPU {PROXY_CPU}, wrk + backend nginx "
           f"(1 worker) on CPU {LOAD_CPU}; medians of the rounds.", "", machine(), "",
           "Ratios are Portico/peer: req/s above 1 is better for Portico, CPU per request and "
           "p99 below 1 are better for Portico. \"CPU 1 busy\" near 100 with \"proxy CPU\" "
           "well below it means wrk + backend saturated first; \"noise\" is CPU time of other "
           "processes on the two CPUs plus hypervisor steal, in % of one CPU (runs above "
           f"{100 * args.max_noise:.0f}% are repeated, up to {args.retries} times).", ""]
    if args.charts:
        args.charts.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    started = time.monotonic()
    try:
        for num in scenarios:
            t0 = time.monotonic()
            print(f"scenario {num}: {TITLES[num]}", file=sys.stderr)
            png = None
            try:
                if num == 5:
                    import idle
                    text, png = idle.run(args, work, certs, args.binary)
                elif num == 6:
                    import control_plane
                    text, png = control_plane.run(args, work, certs, args.binary)
                else:
                    text = run_scenario(num, args, work, certs, args.binary, results)
                    if args.charts:
                        png = chart_wrk_scenario(num, *results[num], args.charts)
            except Exception as e:  # noqa: BLE001 -- one broken scenario must not lose the rest
                import traceback
                traceback.print_exc()
                text = f"### Scenario {num}: {TITLES[num]}\n\nFAILED: {type(e).__name__}: {e}\n"
            if png:
                text += f"\nChart: `{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}`\n"
            text += f"\n(scenario {num} took {time.monotonic() - t0:.0f} s)\n"
            out.append(text)
            print(text, flush=True)
            if args.markdown:
                args.markdown.write_text("\n".join(out))
    finally:
        harness._kill_all()
        if os.environ.get("PORTICO_BENCH_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", str(work)])
    out.append(f"Total: {time.monotonic() - started:.0f} s.\n")
    if args.markdown:
        args.markdown.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
