"""Scenario 5: 10,000 idle keep-alive client connections, memory per connection.

For each proxy in turn (alternating, --rounds): start it on CPU 0 in front of the plain
backend, warm it up with 1 s of wrk, let it settle, read its RSS (VmRSS summed over its
processes), then bench/idle_clients.py (on CPU 1) opens the connections and sends one request
on each; once every response is in, wait 2 s and read the RSS again. Memory per connection is
the difference divided by the connections still open. Kernel socket memory is not in RSS (and
is the same for every proxy).
"""

from __future__ import annotations

import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench
import chart
from bench import (HOST, LOAD_CPU, HaproxyProxy, make_proxies, proc_hwm_kib, proc_rss_kib,
                   sanity, start_backend, wait_quiet, wrk, wrk_script)


@dataclass
class IdleRun:
    baseline_kib: int = 0
    loaded_kib: int = 0
    hwm_kib: int = 0
    open: int = 0
    failed: int = 0
    closed: int = 0  # closed by the proxy before the check
    setup_s: float = float("nan")  # time to open all connections and get every response
    cpu_s: float = 0.0  # proxy CPU to accept + serve them

    @property
    def per_conn_bytes(self) -> float:
        return (self.loaded_kib - self.baseline_kib) * 1024 / self.open if self.open else float("nan")


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"idle client said nothing for {timeout}s")
    return proc.stdout.readline().strip()


def _kv(line: str) -> dict[str, str]:
    return dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)


def measure(p: bench.Proxy, count: int) -> IdleRun:
    r = IdleRun()
    r.baseline_kib = proc_rss_kib(p.pids())
    cpu0 = bench.proc_cpu_seconds(p.pids())
    client = subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, sys.executable, str(Path(__file__).parent / "idle_clients.py"),
         "--port", str(p.port), "--host", HOST, "--count", str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bench.harness._register(client)
    try:
        ready = _readline(client, 180)
        if not ready.startswith("READY"):
            raise RuntimeError(f"idle client: {ready!r}")
        kv = _kv(ready)
        r.open, r.failed, r.setup_s = int(kv["open"]), int(kv["failed"]), float(kv["seconds"])
        if r.failed:
            print(f"  {p.name}: {r.failed} connections failed: {ready}", file=sys.stderr)
        r.cpu_s = bench.proc_cpu_seconds(p.pids()) - cpu0
        time.sleep(2.0)  # whatever the proxy frees after a request (buffers) is freed by now
        samples = []
        for _ in range(5):
            samples.append(proc_rss_kib(p.pids()))
            time.sleep(0.2)
        r.loaded_kib = int(statistics.median(samples))
        r.hwm_kib = proc_hwm_kib(p.pids())
        client.stdin.write("check\n")
        client.stdin.flush()
        check = _readline(client, 60)
        kv = _kv(check)
        r.closed = int(kv.get("closed", 0))
        r.open -= r.closed
    finally:
        bench.harness._kill(client, timeout=30)
    return r


def run(args, work: Path, certs, binary: Path) -> tuple[str, Path | None]:
    be, tls = start_backend(2, work, certs)
    proxies = make_proxies(args, work, be, tls, binary)
    for p in proxies:
        if isinstance(p, HaproxyProxy):
            # Its cap (8000 here) is too low. HAProxy reserves 2 fds per connection and refuses
            # to start when RLIMIT_NOFILE (20000 on this machine, and not raisable) is below
            # that; `no strict-limits` makes that a warning (10k clients + a few upstream
            # connections need far fewer than 20000 fds).
            p.maxconn = args.idle_connections + 100
            p.global_extra = "  no strict-limits\n"
    runs: dict[str, list[IdleRun]] = {p.name: [] for p in proxies}
    errors: dict[str, str] = {}
    warm = wrk_script(work, 0)
    try:
        for rnd in range(args.rounds):
            for p in proxies:
                if p.name in errors:
                    continue
                if args.quiet_wait > 0:
                    wait_quiet(args.quiet_wait)
                try:
                    p.start()
                    err = sanity(p)
                    if err:
                        errors[p.name] = err
                        continue
                    wrk(p.port, 1, 64, warm)
                    time.sleep(1.0)
                    r = measure(p, args.idle_connections)
                    runs[p.name].append(r)
                    print(f"  scenario 5 round {rnd + 1} {p.name:8s} open {r.open} failed "
                          f"{r.failed} closed {r.closed}  RSS {r.baseline_kib / 1024:.1f} -> "
                          f"{r.loaded_kib / 1024:.1f} MiB  {r.per_conn_bytes:.0f} B/conn  "
                          f"setup {r.setup_s:.1f}s", file=sys.stderr)
                except Exception as e:  # noqa: BLE001
                    errors[p.name] = f"{type(e).__name__}: {e}"
                    print(f"  {p.name}: {errors[p.name]}", file=sys.stderr)
                finally:
                    p.stop()
    finally:
        for p in proxies:
            p.stop()
        be.stop()
    return report(args, runs, errors)


def med(rs: list[IdleRun], attr: str) -> float:
    vals = [getattr(r, attr) for r in rs]
    vals = [v for v in vals if v == v]
    return statistics.median(vals) if vals else float("nan")


def report(args, runs: dict[str, list[IdleRun]], errors: dict[str, str]) -> tuple[str, Path | None]:
    n = args.idle_connections
    head = ["proxy", "connections open", "failed", "closed by proxy", "RSS before MiB",
            f"RSS with {n} idle MiB", "RSS delta MiB", "bytes per connection", "peak RSS MiB",
            "setup s", "Portico/peer bytes per connection"]
    lines = [f"### Scenario 5: {bench.TITLES[5]} ({n} connections, one request each, then "
             "idle; RSS = VmRSS summed over the proxy's processes)", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    pc = med(runs.get("portico", []), "per_conn_bytes")
    for name, rs in runs.items():
        if not rs:
            lines.append(f"| {name} | n/a ({errors.get(name, 'no runs')}) |" + " |" * (len(head) - 2))
            continue
        per = med(rs, "per_conn_bytes")
        ratio = f"{pc / per:.2f}x" if name != "portico" and per and pc == pc else ""
        lines.append(
            f"| {name} | {med(rs, 'open'):.0f} | {sum(r.failed for r in rs)} | "
            f"{sum(r.closed for r in rs)} | {med(rs, 'baseline_kib') / 1024:.1f} | "
            f"{med(rs, 'loaded_kib') / 1024:.1f} | "
            f"{(med(rs, 'loaded_kib') - med(rs, 'baseline_kib')) / 1024:.1f} | {per:.0f} | "
            f"{med(rs, 'hwm_kib') / 1024:.1f} | {med(rs, 'setup_s'):.1f} | {ratio} |")
    lines += ["", "Per-round bytes per connection (run order): " + "; ".join(
        f"{name}: " + ", ".join(f"{r.per_conn_bytes:.0f}" for r in rs) for name, rs in runs.items()),
        ""]
    png = None
    if args.charts:
        png = args.charts / "bench-s5.png"
        names = list(runs)
        chart.bar_chart(png, f"Scenario 5: {n} idle keep-alive connections (median of rounds)", [
            chart.Panel("RSS per idle connection, bytes (lower is better)", ["per connection"],
                        {k: [med(runs[k], "per_conn_bytes")] for k in names}, "%.0f"),
            chart.Panel(f"RSS with {n} idle connections, MiB (lower is better)",
                        ["before", f"with {n}"],
                        {k: [med(runs[k], "baseline_kib") / 1024,
                             med(runs[k], "loaded_kib") / 1024] for k in names}, "%.1f"),
        ])
    return "\n".join(lines) + "\n", png
