#!/usr/bin/env python3
"""Where CPU 1's time goes per request: wrk and the backend, with each proxy in the middle.

bench.py's saturated runs of scenarios 1 and 2 are capped by CPU 1 (wrk + backend nginx); this
measures what that side does per request with each proxy: user and system CPU of wrk and of
the backend worker, their context switches (all threads), the proxy's, CPU 1's softirq share,
and TCP segments and bytes on loopback (`nstat`). Same setup as bench.py (proxy on CPU 0, one
worker). `--direct` adds wrk straight to the backend, both on CPU 1: the load side with no
proxy at all.

    python3 bench/loadside.py --scenario 2 --proxies portico,nginx --rounds 2 --direct
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "integration"))
import bench  # noqa: E402
from harness import CertFactory  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def task_stats(pid: int) -> tuple[int, int, int, int]:
    """utime, stime (ticks, whole process) and voluntary, involuntary switches (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol += int(line.split()[1])
    return int(fields[11]), int(fields[12]), vol, invol


def cpu1_fields() -> list[int]:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{bench.LOAD_CPU} "):
            return [int(x) for x in line.split()[1:]]
    return []


def nstat() -> dict[str, int]:
    out = subprocess.run(["nstat", "-z"], capture_output=True, text=True).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            vals[parts[0]] = int(parts[1])
    return vals


def run(name: str, port: int, scheme: str, proxy_pids: list[int], backend_pids: list[int],
        script: Path, seconds: int) -> None:
    wrk = subprocess.Popen(
        ["taskset", "-c", bench.LOAD_CPU, "wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(script),
         "-H", f"Host: {bench.HOST}", f"{scheme}://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    watched = {"wrk": [wrk.pid], "backend": backend_pids, "proxy": proxy_pids}
    before = {k: [task_stats(p) for p in v] for k, v in watched.items()}
    c0, t0 = cpu1_fields(), time.monotonic()
    subprocess.run(["nstat", "-n"])
    time.sleep(seconds - 1.5)
    net = nstat()
    after = {k: [task_stats(p) for p in v] for k, v in watched.items()}
    c1, t1 = cpu1_fields(), time.monotonic()
    res = bench.parse_wrk(wrk.communicate()[0])
    n = res.rps * (t1 - t0)
    if n <= 0:
        print(f"{name}: no requests", flush=True)
        return

    def per_req(key: str, i: int, scale: float = 1.0) -> float:
        return sum(a[i] - b[i] for a, b in zip(after[key], before[key])) * scale / n

    cpu = [y - x for x, y in zip(c0, c1)]
    us = 1e6 / HZ
    cols = [f"{name:8s} {res.rps:8.0f} req/s",
            f"wrk u {per_req('wrk', 0, us):4.2f} s {per_req('wrk', 1, us):4.2f} us",
            f"backend u {per_req('backend', 0, us):4.2f} s {per_req('backend', 1, us):4.2f} us",
            f"CPU 1 softirq {100 * cpu[6] / sum(cpu):4.1f}% idle {100 * cpu[3] / sum(cpu):4.1f}%",
            "switches wrk {:.3f} backend {:.3f}".format(
                per_req("wrk", 2) + per_req("wrk", 3), per_req("backend", 2) + per_req("backend", 3))]
    if proxy_pids:
        cols.append(f"proxy u {per_req('proxy', 0, us):4.2f} s {per_req('proxy', 1, us):4.2f} us, "
                    f"switches {per_req('proxy', 2) + per_req('proxy', 3):.3f}")
    cols.append(f"segments {net.get('TcpOutSegs', 0) / n:.2f} "
                f"bytes {net.get('IpExtOutOctets', 0) / n:.0f}")
    print(" | ".join(cols), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build-release/portico")
    ap.add_argument("--scenario", type=int, choices=(1, 2), default=2)
    ap.add_argument("--proxies", default="portico,nginx,haproxy")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--direct", action="store_true", help="also wrk straight to the backend")
    ap.add_argument("--paced-delay", type=int, default=0,
                    help="ms each connection waits between requests (bench.py's paced mode)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    be, tls = bench.start_backend(args.scenario, work, CertFactory(work / "certs"))
    backend_pids = [p for p in bench.children(be.proc.pid) if p != be.proc.pid]
    proxies = bench.make_proxies(args, work, be, tls, Path(args.binary))
    script = bench.wrk_script(work, args.paced_delay)
    print("per request; switches are voluntary + involuntary context switches", flush=True)
    try:
        for _ in range(args.rounds):
            for p in proxies:
                p.start()
                try:
                    bench.wrk(p.port, 2, 64, bench.wrk_script(work, 0))  # warm-up
                    run(p.name, p.port, "http", p.pids(), backend_pids, script, args.duration)
                finally:
                    p.stop()
            if args.direct:
                run("direct", be.port, "https" if tls else "http", [], backend_pids, script,
                    args.duration)
    finally:
        for p in proxies:
            p.stop()
        be.stop()
        subprocess.run(["rm", "-rf", str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
