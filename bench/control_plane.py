"""Scenario 6 (Portico only): the control plane at 10,000 objects of each kind.

1. Generates a config directory: 10,000 HTTPRoutes (one hostname each), 10,000 Services,
   10,000 EndpointSlices and 10,000 BackendTLSPolicies (all pointing at the scenario-1 TLS
   backend), one CA ConfigMap, the Gateway and the scenario-1 route/Service. One file per
   kind, as a generator or `kubectl get -o yaml` would write them.
2. `portico check DIR` under /usr/bin/time -v, pinned to CPU 0: wall time and peak RSS
   (median of 3; the output, every object with its status, goes to /dev/null). One more run
   with -o json verifies that every route is Accepted with resolved refs.
3. `portico run` on that directory (--workers 1, CPU 0, like scenarios 1-4): time to /ready
   and to the first proxied 200, RSS. Then scenario 1's load (wrk -c64, saturated, CPU 1)
   runs while the harness makes --edits edits of each kind: (a) rewrite the 10k-route file with
   one more route, (b) add a small file with one new route. For each, the time from the
   rename that publishes the file to the first 200 from the new hostname (polled every
   10 ms on fresh connections). wrk's non-2xx and socket errors over the whole run must be 0.
   Portico's downstream_rq_total is sampled every 0.25 s for the throughput timeline chart.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import bench
import chart
from bench import BODY, HOST, LOAD_CPU, PROXY_CPU, TLS_NAME, harness, parse_wrk, wrk_script

NS = "default"
EDIT_TIMEOUT = 30.0  # seconds an edit may take to serve before it counts as not served


def _route(name: str, host: str, svc: str) -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {NS}
spec:
  parentRefs:
  - name: gw
  hostnames:
  - {host}
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: {svc}
      port: 80
"""


def _service(name: str) -> str:
    return f"""---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {NS}
spec:
  ports:
  - name: http
    port: 80
    protocol: TCP
"""


def _slice(svc: str, port: int) -> str:
    return f"""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {svc}-slice
  namespace: {NS}
  labels:
    kubernetes.io/service-name: {svc}
addressType: IPv4
ports:
- name: http
  port: {port}
  protocol: TCP
endpoints:
- addresses:
  - 127.0.0.1
  conditions:
    ready: true
"""


def _policy(svc: str) -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata:
  name: {svc}-tls
  namespace: {NS}
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: {svc}
  validation:
    hostname: {TLS_NAME}
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: ca
"""


def svc_name(i: int) -> str:
    return f"svc-{i:05d}"


def route_host(i: int) -> str:
    return f"r{i}.bench.example.com"


def generate(d: Path, n: int, listen_port: int, backend_port: int, ca_pem: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    ca = "\n".join("    " + ln for ln in ca_pem.strip().splitlines())
    base = f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: portico
spec:
  controllerName: {harness.CONTROLLER}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: {NS}
spec:
  gatewayClassName: portico
  listeners:
  - name: http
    port: {listen_port}
    protocol: HTTP
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ca
  namespace: {NS}
data:
  ca.crt: |
{ca}
"""
    base += _service("bench") + _slice("bench", backend_port) + _policy("bench")
    base += _route("bench", HOST, "bench")
    (d / "00-base.yaml").write_text(base)
    (d / "services.yaml").write_text("".join(_service(svc_name(i)) for i in range(n)))
    (d / "endpointslices.yaml").write_text(
        "".join(_slice(svc_name(i), backend_port) for i in range(n)))
    (d / "backendtlspolicies.yaml").write_text("".join(_policy(svc_name(i)) for i in range(n)))
    (d / "httproutes.yaml").write_text(
        "".join(_route(f"route-{i:05d}", route_host(i), svc_name(i)) for i in range(n)))


@contextlib.contextmanager
def generated_portico(binary: str, routes: int, workers: int = 1):
    """Portico (on CPU 0) serving `generate()`'s input with `routes` routes in front of scenario
    1's TLS backend, for the small probes (hosts.py, scrape.py). Yields (listen port, admin
    port, work directory); stops everything and removes the directory afterwards."""
    import tempfile
    from harness import CertFactory, free_port
    work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    be, tls = bench.start_backend(1, work, CertFactory(work / "certs"))
    port, admin = free_port(), free_port()
    proxy = None
    try:
        generate(work / "cfg", routes, port, be.port, tls.cert.cert.read_text())
        proxy = subprocess.Popen(
            ["taskset", "-c", PROXY_CPU, binary, "run", "--config", str(work / "cfg"),
             "--workers", str(workers), "--admin-address", f"127.0.0.1:{admin}",
             "--listen-address", "127.0.0.1", "--log-level", "warning", "--access-log", "off"],
            stdout=subprocess.DEVNULL)
        bench.wait_port(port, 60, proxy)
        time.sleep(3)  # every worker has applied the snapshot and created its stats
        yield port, admin, work
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        be.stop()
        subprocess.run(["rm", "-rf", str(work)])


def publish(path: Path, text: str) -> None:
    """Write-then-rename, as editors and config generators do: readers never see half a file."""
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# portico check
# ---------------------------------------------------------------------------

@dataclass
class CheckRun:
    wall_s: float
    cpu_s: float
    max_rss_kib: int
    exit_code: int


def _time_v(out: str) -> CheckRun:
    def field_(label: str) -> str:
        m = re.search(rf"^\s*{re.escape(label)}.*:\s*(\S+)\s*$", out, re.M)
        return m.group(1) if m else "0"
    wall = field_("Elapsed (wall clock) time")
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    return CheckRun(secs, float(field_("User time")) + float(field_("System time")),
                    int(field_("Maximum resident set size")), int(field_("Exit status")))


def time_check(binary: Path, d: Path) -> CheckRun:
    r = subprocess.run(["/usr/bin/time", "-v", "taskset", "-c", PROXY_CPU, str(binary), "check",
                        str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       timeout=600)
    return _time_v(r.stderr)


def verify_check(binary: Path, d: Path, n: int) -> str:
    """Every generated route Accepted with ResolvedRefs, and no policy rejected."""
    r = subprocess.run([str(binary), "check", str(d), "-o", "json"], capture_output=True,
                       text=True, timeout=600)
    try:
        items = json.loads(r.stdout)["items"]
    except (ValueError, KeyError) as e:
        return f"check -o json unreadable ({e}); exit {r.returncode}; {r.stderr[-300:]}"
    routes_ok = policies_ok = 0
    for it in items:
        kind = it.get("kind")
        st = it.get("status", {})
        conds = [c for p in st.get("parents", []) + st.get("ancestors", [])
                 for c in p.get("conditions", [])]
        ok = {c["type"] for c in conds if c.get("status") == "True"}
        if kind == "HTTPRoute" and {"Accepted", "ResolvedRefs"} <= ok:
            routes_ok += 1
        if kind == "BackendTLSPolicy" and "Accepted" in ok:
            policies_ok += 1
    return (f"{routes_ok} of {n + 1} HTTPRoutes Accepted+ResolvedRefs, {policies_ok} of "
            f"{n + 1} BackendTLSPolicies Accepted; exit code {r.returncode}")


# ---------------------------------------------------------------------------
# run + edits under load
# ---------------------------------------------------------------------------

def get(port: int, host: str, timeout: float = 2.0) -> tuple[int, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest("GET", "/", skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


@dataclass
class Edit:
    kind: str  # "10k-route file rewritten" | "new small file"
    host: str
    ms: float = float("nan")
    polls: int = 0
    bad: list[str] = field(default_factory=list)  # poll answers other than 404 / 200
    at: float = 0.0  # seconds since the load started


def wait_serving(port: int, host: str, t0: float, timeout: float, e: Edit) -> None:
    while time.monotonic() - t0 < timeout:
        e.polls += 1
        try:
            st, body = get(port, host)
        except (OSError, http.client.HTTPException) as ex:
            e.bad.append(repr(ex))
            st, body = 0, ""
        if st == 200 and body == BODY:
            e.ms = (time.monotonic() - t0) * 1000
            return
        if st not in (0, 404):
            e.bad.append(f"{st} {body[:80]!r}")
        time.sleep(0.01)


class Counter:
    """Samples Portico's downstream_rq_total (all listeners) for a requests/s timeline."""

    def __init__(self, admin: int, interval: float = 0.25):
        self.admin, self.interval = admin, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def total(self) -> int:
        q = urllib.parse.quote("downstream_rq_total$")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats?filter={q}",
                                    timeout=2) as r:
            stats = harness.parse_stats(r.read().decode())
        return sum(v for v in stats.values() if isinstance(v, int))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.samples.append((time.monotonic() - self.t0, self.total()))
            self._stop.wait(self.interval)

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return [((t0 + t1) / 2, (n1 - n0) / (t1 - t0))
                for (t0, n0), (t1, n1) in zip(self.samples, self.samples[1:]) if t1 > t0]


def run(args, work: Path, certs, binary: Path) -> tuple[str, Path | None]:
    n = args.objects
    be, tls = bench.start_backend(1, work, certs)
    cfg = work / "s6-config"
    port = harness.free_port()
    generate(cfg, n, port, be.port, tls.cert.cert.read_text())
    size = sum(f.stat().st_size for f in cfg.iterdir())
    lines = [f"### Scenario 6: {bench.TITLES[6]} (Portico only)", ""]
    try:
        # -- check ------------------------------------------------------------------
        if args.quiet_wait > 0:
            bench.wait_quiet(args.quiet_wait)
        checks = [time_check(binary, cfg) for _ in range(3)]
        verdict = verify_check(binary, cfg, n)
        wall = statistics.median(c.wall_s for c in checks)
        print(f"  scenario 6 check: {', '.join(f'{c.wall_s:.2f}s' for c in checks)}; "
              f"{verdict}", file=sys.stderr)
        lines += [
            f"`portico check` on {n} HTTPRoutes + {n} Services + {n} EndpointSlices + {n} "
            f"BackendTLSPolicies (+1 of each for the load, a Gateway, a GatewayClass, a CA "
            f"ConfigMap): {4 * (n + 1) + 3} objects, 5 files, {size / 2**20:.1f} MiB of YAML. "
            "`/usr/bin/time -v taskset -c 0 portico check DIR >/dev/null`, 3 runs.", "",
            "| runs | wall s (median) | wall s (each) | CPU s (median) | peak RSS MiB (max) "
            "| exit code | target | verdict |",
            "|---|---:|---:|---:|---:|---:|---|---|",
            f"| 3 | {wall:.2f} | {', '.join(f'{c.wall_s:.2f}' for c in checks)} | "
            f"{statistics.median(c.cpu_s for c in checks):.2f} | "
            f"{max(c.max_rss_kib for c in checks) / 1024:.0f} | "
            f"{', '.join(str(c.exit_code) for c in checks)} | < 1 s | "
            f"{'met' if wall < 1 else f'missed ({wall:.2f} s = {wall:.1f}x the target)'} |",
            "", f"Statuses (`check -o json`): {verdict}.", ""]

        # -- run + edits under load -------------------------------------------------------
        if args.quiet_wait > 0:
            bench.wait_quiet(args.quiet_wait)
        admin = harness.free_port()
        log = open(work / "s6-portico.log", "wb")
        t_start = time.monotonic()
        proc = subprocess.Popen(
            ["taskset", "-c", PROXY_CPU, str(binary), "run", "--config", str(cfg), "--workers",
             "1", "--admin-address", f"127.0.0.1:{admin}", "--listen-address", "127.0.0.1",
             "--log-level", "warning", "--access-log", "off"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        harness._register(proc)
        try:
            ready_s = serving_s = float("nan")
            while time.monotonic() - t_start < 120 and proc.poll() is None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
                    c.request("GET", "/ready")
                    if c.getresponse().status == 200:
                        ready_s = time.monotonic() - t_start
                        break
                time.sleep(0.02)
            while time.monotonic() - t_start < 120 and proc.poll() is None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if get(port, HOST)[0] == 200:
                        serving_s = time.monotonic() - t_start
                        break
                time.sleep(0.02)
            if proc.poll() is not None or serving_s != serving_s:
                raise RuntimeError(f"portico did not serve the 10k config: exit {proc.poll()}, "
                                   f"{(work / 's6-portico.log').read_text()[-1000:]}")
            rss_start = bench.proc_rss_kib([proc.pid])
            script = wrk_script(work, 0)
            wrk_out = work / "s6-wrk.out"
            counter = Counter(admin)
            with open(wrk_out, "w") as f:
                wrk = subprocess.Popen(
                    ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{args.connections}", "-d300s",
                     "--latency", "-s", str(script), "-H", f"Host: {HOST}",
                     f"http://127.0.0.1:{port}/"], stdout=f, stderr=subprocess.STDOUT)
            harness._register(wrk)
            t_load = time.monotonic()
            cpu0 = bench.proc_cpu_seconds([proc.pid])
            edits: list[Edit] = []
            routes_file = cfg / "httproutes.yaml"
            routes_text = routes_file.read_text()
            time.sleep(3)
            for k in range(args.edits):
                # (a) the big file, rewritten with one more route
                e = Edit("10k-route file rewritten", f"new-{k}.bench.example.com")
                routes_text += _route(f"new-{k}", e.host, svc_name(k))
                t0 = time.monotonic()
                e.at = t0 - t_load
                publish(routes_file, routes_text)
                wait_serving(port, e.host, t0, EDIT_TIMEOUT, e)
                edits.append(e)
                time.sleep(1.5)
                # (b) a new small file with one route
                e = Edit("new small file", f"small-{k}.bench.example.com")
                t0 = time.monotonic()
                e.at = t0 - t_load
                publish(cfg / f"zz-edit-{k}.yaml", _route(f"small-{k}", e.host, svc_name(n - 1 - k)))
                wait_serving(port, e.host, t0, EDIT_TIMEOUT, e)
                edits.append(e)
                time.sleep(1.5)
            time.sleep(1.5)
            wrk.send_signal(signal.SIGINT)
            wrk.wait(timeout=30)
            harness._unregister(wrk)
            load_s = time.monotonic() - t_load
            cpu = bench.proc_cpu_seconds([proc.pid]) - cpu0
            timeline = counter.stop()
            res = parse_wrk(wrk_out.read_text())
            rss_end = bench.proc_rss_kib([proc.pid])
            hwm = bench.proc_hwm_kib([proc.pid])
        finally:
            harness._kill(proc, signal.SIGTERM, 15)
            log.close()
        for e in edits:
            print(f"  scenario 6 edit at {e.at:5.1f}s {e.kind:26s} serving after {e.ms:7.1f} ms "
                  f"({e.polls} polls, {len(e.bad)} bad answers)", file=sys.stderr)
        print(f"  scenario 6 load: {res.rps:.0f} req/s, p99 {res.p99_ms:.2f} ms, errors "
              f"{res.errors}", file=sys.stderr)
        lines += _run_tables(n, ready_s, serving_s, rss_start, rss_end, hwm, edits, res,
                             load_s, cpu, args.connections)
        png = None
        if args.charts:
            png = args.charts / "bench-s6.png"
            _chart(png, n, checks, ready_s, edits, timeline)
        return "\n".join(lines) + "\n", png
    finally:
        be.stop()
        subprocess.run(["rm", "-rf", str(cfg)])


def _run_tables(n, ready_s, serving_s, rss_start, rss_end, hwm, edits, res, load_s, cpu,
                conns) -> list[str]:
    out = [f"`portico run` on the same directory (`--workers 1`, CPU 0): /ready after "
           f"{ready_s:.2f} s, first proxied 200 after {serving_s:.2f} s; RSS {rss_start / 1024:.0f}"
           f" MiB after start, {rss_end / 1024:.0f} MiB after the edits (peak {hwm / 1024:.0f} "
           "MiB).", "",
           f"Edits while scenario 1's load runs (wrk -t1 -c{conns}, saturated, on the bench "
           "route); time from the rename that publishes the file to the first 200 from the new "
           "route:", "",
           "| edit | kind | at s | edit -> serving ms | polls | answers other than 404/200 |",
           "|---:|---|---:|---:|---:|---:|"]
    for i, e in enumerate(edits):
        ms = f"{e.ms:.0f}" if e.ms == e.ms else f"> {EDIT_TIMEOUT * 1000:.0f} (not serving)"
        out.append(f"| {i + 1} | {e.kind} | {e.at:.1f} | {ms} | {e.polls} | "
                   f"{len(e.bad)}{' (' + e.bad[0] + ')' if e.bad else ''} |")
    worst = max((e.ms for e in edits), default=float("nan"))
    worst_s = f"{worst:.0f} ms"
    if any(e.ms != e.ms for e in edits):
        worst, worst_s = float("inf"), f"not serving after {EDIT_TIMEOUT:.0f} s"
    failed = res.errors + sum(len(e.bad) for e in edits)
    out += ["",
            "| load during the edits | req/s | p50 ms | p99 ms | p99.9 ms | requests | failed "
            "(non-2xx + socket errors) | proxy CPU % | worst edit -> serving | target | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
            f"| wrk -c{conns}, {load_s:.0f} s | {res.rps:.0f} | {res.p50_ms:.3f} | "
            f"{res.p99_ms:.3f} | {res.p999_ms:.3f} | {res.requests} | {failed} | "
            f"{100 * cpu / load_s:.0f} | {worst_s} | < 2 s, 0 failed | "
            f"{'met' if worst < 2000 and failed == 0 else 'missed'} |", ""]
    return out


def _chart(png: Path, n: int, checks: list[CheckRun], ready_s: float, edits: list[Edit],
           timeline: list[tuple[float, float]]) -> None:
    kinds = list(dict.fromkeys(e.kind for e in edits))
    rounds = max(sum(1 for e in edits if e.kind == k) for k in kinds) if kinds else 0
    series = {k: [e.ms / 1000 for e in edits if e.kind == k] + [float("nan")] * rounds
              for k in kinds}
    panels = [
        chart.Panel(f"{n}-object input, seconds (lower is better)",
                    ["portico check", "run: /ready"],
                    {"portico": [statistics.median(c.wall_s for c in checks), ready_s]}, "%.2f"),
        chart.Panel("edit -> new route serving, s (target < 2)",
                    [f"edit {i + 1}" for i in range(rounds)],
                    {k: v[:rounds] for k, v in series.items()}, "%.2f"),
    ]
    chart.bar_chart(png, f"Scenario 6: control plane, {n} routes/services/slices/policies",
                    panels, extra=chart.Timeline(
                        "requests/s during the edits (Portico downstream_rq_total)", timeline,
                        [(e.at, f"{i + 1}") for i, e in enumerate(edits)]))
