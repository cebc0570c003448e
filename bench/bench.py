#!/usr/bin/env python3
"""Side-by-side proxy benchmark: Portico vs nginx-as-proxy vs HAProxy.

Each proxy runs with one worker/thread pinned to CPU 0 (taskset) in front of
the same nginx backend; wrk and the backend share CPU 1. Runs alternate
(A B C A B C ...) because the machine is shared and noisy, and the median of
the rounds is reported, with Portico/peer ratios.

Scenarios (issue 4 numbering):
  1  keep-alive, small responses, HTTP client -> proxy -> TLS backend (BackendTLSPolicy)
  2  the same with a plain HTTP backend
Python 3 stdlib only; reuses the integration harness (test/integration/harness.py).
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
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "integration"))
import harness  # noqa: E402
from harness import (CertFactory, Nginx, backend, backend_ref, free_port, gateway,  # noqa: E402
                     gateway_class, http_route, listener, request, rule, to_yaml, wait_port)

HOST = "bench.example.com"
TLS_NAME = "example.com"
BODY = "hello from the backend\n"
PROXY_CPU = "0"
LOAD_CPU = "1"


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------

@dataclass
class RunResult:
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    requests: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    cpu_util: float = 0.0  # proxy CPU seconds / wall seconds: < ~0.95 means it was not the bottleneck
    peak_rss_kib: int = 0
    noise: float = 0.0  # CPU time on CPUs 0+1 of anything but proxy/backend/wrk, plus steal
    cpu1_busy: float = 0.0  # CPU 1 (wrk + backend) busy fraction: ~1.0 means the load side saturated

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu_s / self.requests * 10000 if self.requests else float("nan")


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
                   "      proxy_ssl_session_reuse on;\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes 1;
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

    def cmd(self):
        tls = ""
        if self.tls:
            tls = (f" ssl verify required ca-file {self.tls.cert.cert} sni str({TLS_NAME})"
                   f" verifyhost {TLS_NAME}")
        conf = f"""global
  nbthread 1
  maxconn 8000
  tune.ssl.default-dh-param 2048
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
    "BENCH requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def wrk_script(work: Path, delay_ms: int) -> Path:
    path = work / f"wrk-delay{delay_ms}.lua"
    text = REPORT_LUA
    if delay_ms:
        # Paced load: each connection waits delay_ms after a response before its next request,
        # so the offered rate is about connections / (delay + latency) for every proxy alike.
        text += f"\nfunction delay() return {delay_ms} end\n"
    path.write_text(text)
    return path


def wrk(port: int, seconds: int, connections: int, script: Path) -> tuple[RunResult, str]:
    out = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "--latency", "-s", str(script), "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out), out


def measure(p: "Proxy", backend_pids: list[int], seconds: int, connections: int,
            script: Path) -> tuple[RunResult, str]:
    pids = p.pids()
    cpu0, be0, wrk0, t0 = (proc_cpu_seconds(pids), proc_cpu_seconds(backend_pids),
                           children_cpu_seconds(), cpu_times())
    res, out = wrk(p.port, seconds, connections, script)
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
        return statistics.median(vals) if vals else float("nan")


def start_backend(num: int, work: Path, certs: CertFactory) -> tuple[Nginx, "TlsSetup | None"]:
    tls = None
    backend_cert = None
    if num == 1:
        backend_cert = certs.self_signed_example_com()
        tls = TlsSetup(backend_cert)
    # One backend worker (the harness default): it shares CPU 1 with wrk.
    be = Nginx(work, f"backend-s{num}", tls=backend_cert, keepalive_requests=100000,
               raw_server=None, worker_processes=1)
    # Small fixed response instead of the integration echo.
    be.raw_server = f"""
  server {{
    listen 127.0.0.1:{be.port}{' ssl' if tls else ''};
    {f'ssl_certificate {backend_cert.chain}; ssl_certificate_key {backend_cert.key};' if tls else ''}
    location / {{ default_type text/plain; return 200 '{BODY.replace(chr(10), chr(92) + "n")}'; }}
  }}"""
    be.start()
    # nginx was started without taskset; pin the running backend to the load CPU.
    for pid in children(be.proc.pid):
        subprocess.run(["taskset", "-pc", LOAD_CPU, str(pid)], capture_output=True)
    return be, tls


PROXIES = {c.name: c for c in (PorticoProxy, NginxProxy, HaproxyProxy)}


def run_scenario(num: int, args, work: Path, certs: CertFactory, binary: Path) -> str:
    be, tls = start_backend(num, work, certs)
    be_pids = children(be.proc.pid)
    sat_script = wrk_script(work, 0)
    paced_script = wrk_script(work, args.paced_delay) if args.paced_delay else None
    proxies: list[Proxy] = []
    try:
        for cls in (PorticoProxy, NginxProxy, HaproxyProxy):
            if cls.name not in args.proxies:
                continue
            port = free_port()
            kw = {"binary": binary} if cls is PorticoProxy else {}
            proxies.append(cls(work, port, be.port, tls, **kw))
        sat = {p.name: Column() for p in proxies}
        paced = {p.name: Column() for p in proxies}
        for rnd in range(args.rounds):
            # Alternate A B C A B C: slow drift on a shared machine hits every proxy alike.
            for p in proxies:
                if sat[p.name].error:
                    continue
                if args.quiet_wait > 0:
                    wait_quiet(args.quiet_wait)
                try:
                    p.start()
                except Exception as e:  # noqa: BLE001
                    sat[p.name].error = paced[p.name].error = f"start failed: {e}"
                    p.stop()
                    continue
                try:
                    err = sanity(p)
                    if err:
                        sat[p.name].error = paced[p.name].error = err
                        continue
                    wrk(p.port, args.warmup, args.connections, sat_script)
                    modes = [("saturated", sat, args.connections, sat_script)]
                    if paced_script:
                        modes.append(("paced", paced, args.paced_connections, paced_script))
                    for mode, cols, conns, script in modes:
                        for attempt in range(args.retries + 1):
                            res, out = measure(p, be_pids, args.duration, conns, script)
                            log_run(num, rnd, p.name, mode, res, out, args.verbose)
                            if res.noise <= args.max_noise or attempt == args.retries:
                                break
                            print(f"  noisy run ({100 * res.noise:.0f}% foreign CPU), "
                                  "measuring again", file=sys.stderr)
                            cols[p.name].retried += 1
                            wait_quiet(args.quiet_wait)
                        cols[p.name].runs.append(res)
                finally:
                    p.stop()
        text = table(num, sat, f"saturated: wrk -t1 -c{args.connections}, as fast as it goes")
        if paced_script:
            text += "\n" + table(
                num, paced, f"paced: wrk -t1 -c{args.paced_connections}, each connection waits "
                f"{args.paced_delay} ms between requests (same offered load for every proxy)")
        return text
    finally:
        for p in proxies:
            p.stop()
        be.stop()


def log_run(num: int, rnd: int, name: str, mode: str, res: RunResult, out: str,
            verbose: bool) -> None:
    print(f"  scenario {num} round {rnd + 1} {mode:9s} {name:8s} {res.rps:9.0f} req/s "
          f"p99 {res.p99_ms:6.2f} ms  cpu/10k {res.cpu_per_10k:.3f} s  proxy {100 * res.cpu_util:3.0f}%"
          f"  cpu1 {100 * res.cpu1_busy:3.0f}%  noise {100 * res.noise:3.0f}%"
          f"  errors {res.errors}", file=sys.stderr)
    if verbose:
        print(out, file=sys.stderr)


TITLES = {1: "keep-alive, small responses, TLS backend (BackendTLSPolicy)",
          2: "keep-alive, small responses, plain HTTP backend"}


def table(num: int, cols: dict[str, Column], mode: str) -> str:
    lines = [f"### Scenario {num}: {TITLES[num]} ({mode})", "",
             "| proxy | req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU s / 10k req | proxy CPU % "
             "| CPU 1 busy % | noise % | peak RSS MiB | errors "
             "| Portico/peer req/s | Portico/peer CPU per req | Portico/peer p99 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    pc = cols.get("portico")
    pc_ok = pc is not None and pc.runs and not pc.error
    for name, c in cols.items():
        if c.error or not c.runs:
            lines.append(f"| {name} | n/a ({c.error or 'no runs'}) |" + " |" * 13)
            continue
        rps, p99, cpr = c.med("rps"), c.med("p99_ms"), c.med("cpu_per_10k")
        ratios = ["", "", ""]
        if name != "portico" and pc_ok:
            ratios = [f"{pc.med('rps') / rps:.2f}x" if rps else "",
                      f"{pc.med('cpu_per_10k') / cpr:.2f}x" if cpr else "",
                      f"{pc.med('p99_ms') / p99:.2f}x" if p99 else ""]
        lines.append(f"| {name} | {rps:.0f} | {c.med('p50_ms'):.3f} | {p99:.3f} | "
                     f"{c.med('p999_ms'):.3f} | {cpr:.3f} | {100 * c.med('cpu_util'):.0f} | "
                     f"{100 * c.med('cpu1_busy'):.0f} | {100 * c.med('noise'):.0f} | "
                     f"{c.med('peak_rss_kib') / 1024:.1f} | "
                     f"{sum(r.errors for r in c.runs)} | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("Per-round req/s (run order): " + "; ".join(
        f"{n}: " + ", ".join(f"{r.rps:.0f}" for r in c.runs) for n, c in cols.items()))
    retried = {n: c.retried for n, c in cols.items() if c.retried}
    if retried:
        lines.append("")
        lines.append("Runs repeated because of foreign load: " +
                     ", ".join(f"{n} {k}" for n, k in retried.items()))
    lines.append("")
    return "\n".join(lines) + "\n"


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
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=ROOT / "build-release" / "portico")
    ap.add_argument("--scenarios", default="2,1", help="comma list, e.g. 2,1")
    ap.add_argument("--proxies", default="portico,nginx,haproxy")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--paced-delay", type=int, default=2,
                    help="ms each connection waits between requests in the paced run (0: skip)")
    ap.add_argument("--paced-connections", type=int, default=64)
    ap.add_argument("--quiet-wait", type=float, default=60,
                    help="before each proxy's runs, wait up to this many seconds for both CPUs "
                    "to be idle (shared machine); 0: do not wait")
    ap.add_argument("--max-noise", type=float, default=0.10,
                    help="repeat a run when foreign CPU + steal exceeded this fraction of a CPU")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    args.proxies = args.proxies.split(",")
    for tool in ("wrk", "taskset", "nginx", "haproxy", "openssl"):
        if harness.which_or_none(tool) is None:
            print(f"bench: {tool} not installed", file=sys.stderr)
            return 2
    if os.cpu_count() and os.cpu_count() < 2:
        print("bench: needs 2 CPUs (proxy on CPU 0, load on CPU 1)", file=sys.stderr)
        return 2
    if "portico" in args.proxies and not args.binary.exists():
        print(f"bench: {args.binary} not built", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="portico-bench-"))
    certs = CertFactory(work / "certs")
    out = [f"Portico bench: {time.strftime('%Y-%m-%d %H:%M')}, {args.rounds} rounds x "
           f"{args.duration}s per proxy and mode, proxy on CPU {PROXY_CPU}, wrk + backend nginx "
           f"(1 worker) on CPU {LOAD_CPU}; medians of the rounds.", "", machine(), "",
           "Ratios are Portico/peer: req/s above 1 is better for Portico, CPU per request and "
           "p99 below 1 are better for Portico. \"CPU 1 busy\" near 100 with \"proxy CPU\" "
           "well below it means wrk + backend saturated first; \"noise\" is CPU time of other "
           "processes on the two CPUs plus hypervisor steal, in % of one CPU (runs above "
           f"{100 * args.max_noise:.0f}% are repeated, up to {args.retries} times).", ""]
    try:
        for s in args.scenarios.split(","):
            out.append(run_scenario(int(s), args, work, certs, args.binary))
    finally:
        harness._kill_all()
        if os.environ.get("PORTICO_BENCH_KEEP_TMP") != "1":
            subprocess.run(["rm", "-rf", str(work)])
    text = "\n".join(out)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
