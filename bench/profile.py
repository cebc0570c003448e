#!/usr/bin/env python3
"""Profile one proxy under the bench load: syscalls per request (strace -c), a CPU profile
(perf record with the cpu-clock software event; this VM exposes no hardware counters) or
callgrind instructions per request.

The proxy and backend are set up exactly as in bench.py (one worker pinned to CPU 0, backend
nginx on CPU 1). The tool attaches to the running proxy after a warm-up, so start-up is not
counted, while wrk drives a paced load (default 64 connections x 10 ms between requests, a few
thousand req/s) so that every proxy sees the same request rate even when slowed by the tracer.

    python3 bench/profile.py --tool strace --proxy portico --scenario 1
    python3 bench/profile.py --tool perf --proxy portico --scenario 1 --duration 10
    python3 bench/profile.py --tool callgrind --scenario 2 --duration 5
    python3 bench/profile.py --tool massif --idle 2000     # heap held per idle connection
    python3 bench/profile.py --tool iosizes --scenario 4 --connections 16 --delay 0
                                                           # bytes per read/write, 1 MiB uploads

Scenario 4 here is the upload half of bench.py's scenario 4 (PUT of 1 MiB to the TLS backend).
iosizes: strace of the data syscalls (read/write/recvfrom/sendto and vector forms) with the
number of calls and the mean and distribution of bytes moved per call, per syscall and fd kind.

massif (Portico only): the scenario-5 setup with --idle connections open and idle; a detailed
heap snapshot is taken through vgdb while they are held, and its allocation tree is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from bench import PROXIES, CertFactory, harness, start_backend, wrk, wrk_script  # noqa: E402


def strace_summary(text: str, requests: int) -> str:
    """strace -c table plus a calls-per-request column, sorted by calls."""
    rows = []
    total = 0
    for line in text.splitlines():
        m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$", line)
        if m and m.group(3) != "total":
            calls = int(m.group(1))
            rows.append((calls, int(m.group(2) or 0), m.group(3)))
            total += calls
    rows.sort(reverse=True)
    out = [f"{requests} requests, {total} syscalls, {total / requests:.2f} per request", "",
           "| syscall | calls | per request | errors |", "|---|---:|---:|---:|"]
    for calls, errors, name in rows:
        if calls / requests >= 0.005:
            out.append(f"| {name} | {calls} | {calls / requests:.3f} | {errors} |")
    return "\n".join(out) + "\n"


UPLOAD_BYTES = 1 << 20
IO_CALLS = ("read", "write", "recvfrom", "sendto", "readv", "writev", "sendmsg", "recvmsg",
            "epoll_wait")  # for epoll_wait the "bytes" are the events returned


def io_sizes(text: str, requests: int) -> str:
    """Per data syscall: calls, EAGAINs, and how many bytes each successful call moved."""
    stats: dict[str, list[int]] = {}
    eagain: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\d+\s+(\w+)\((\d+),.*\)\s+=\s+(-?\d+)", line)
        if not m or m.group(1) not in IO_CALLS:
            continue
        name, n = m.group(1), int(m.group(3))
        if n < 0:
            eagain[name] = eagain.get(name, 0) + 1
        else:
            stats.setdefault(name, []).append(n)
    out = ["| syscall | calls per request | EAGAIN per request | mean bytes | p10 | p50 | p90 |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(set(stats) | set(eagain)):
        sizes = sorted(stats.get(name, [])) or [0]
        q = lambda f: sizes[min(len(sizes) - 1, int(f * len(sizes)))]  # noqa: E731
        out.append(f"| {name} | {len(stats.get(name, [])) / requests:.2f} | "
                   f"{eagain.get(name, 0) / requests:.2f} | {sum(sizes) / len(sizes):,.0f} | "
                   f"{q(0.1):,} | {q(0.5):,} | {q(0.9):,} |")
    return "\n".join(out) + "\n"


def callgrind_self_costs(path: Path) -> tuple[int, list[tuple[str, int]]]:
    """(total, [(function, self instructions), ...] largest first) of one
    callgrind dump. callgrind_annotate 3.19 charges a worker thread's whole
    cost to `clone` in the dumps taken here, so the file is read directly: a
    cost line belongs to the current fn= unless a calls= line just announced
    it as a callee's inclusive cost."""
    costs: dict[str, int] = {}
    names: dict[str, str] = {}
    fn, callee_cost, total = "?", False, 0

    def name(value: str) -> str:  # "(12) name" defines an id, "(12)" uses it
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), value)

    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("fn="):
            fn = name(line[3:])
        elif line.startswith("cfn="):
            name(line[4:])
        elif line.startswith("calls="):
            callee_cost = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) < 2:
                continue
            if callee_cost:
                callee_cost = False
                continue
            costs[fn] = costs.get(fn, 0) + int(parts[1])
            total += int(parts[1])
    return total, sorted(costs.items(), key=lambda kv: -kv[1])


def massif(args, proxy, raw: Path) -> int:
    """Heap held by --idle idle keep-alive connections (Portico under valgrind massif)."""
    if args.proxy != "portico":
        print("massif: Portico only", file=sys.stderr)
        return 2
    base_cmd = proxy.cmd
    proxy.cmd = lambda: ["valgrind", "--tool=massif", f"--massif-out-file={raw}",
                         "--vgdb=yes", *base_cmd()]
    proxy.start()
    time.sleep(3)  # valgrind start-up
    err = bench.sanity(proxy)
    if err:
        print(err, file=sys.stderr)
        return 1
    wrk(proxy.port, 2, 64, wrk_script(proxy.work, 0))  # buffers and pools as under load
    pid = proxy.proc.pid
    before = raw.with_suffix(".before")
    held = raw.with_suffix(".held")
    subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", str(before)],
                   capture_output=True, timeout=60)
    client = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "idle_clients.py"), "--port",
         str(proxy.port), "--host", bench.HOST, "--count", str(args.idle)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = client.stdout.readline().strip()
        print(ready)
        time.sleep(2)
        subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", str(held)],
                       capture_output=True, timeout=60)
        client.stdin.write("check\n")
        client.stdin.flush()
        print(client.stdout.readline().strip())
    finally:
        client.kill()
        client.wait()

    def heap(path: Path) -> int:
        text = path.read_text()
        b = re.search(r"mem_heap_B=(\d+)", text)
        x = re.search(r"mem_heap_extra_B=(\d+)", text)
        return int(b.group(1)) + int(x.group(1)) if b and x else 0
    h0, h1 = heap(before), heap(held)
    print(f"heap (requested + allocator overhead): {h0:,} B before, {h1:,} B with {args.idle} "
          f"idle connections: {(h1 - h0) / args.idle:,.0f} B per connection")
    rep = subprocess.run(["ms_print", "--threshold=2", str(held)], capture_output=True,
                         text=True).stdout
    tree = rep[rep.find("->"):] if "->" in rep else rep
    print("\n".join(tree.splitlines()[:80]))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=bench.ROOT / "build-release" / "portico")
    ap.add_argument("--proxy", default="portico", choices=sorted(PROXIES))
    ap.add_argument("--scenario", type=int, default=1, choices=(1, 2, 3, 4))
    ap.add_argument("--tool", default="strace",
                    choices=("strace", "iosizes", "perf", "callgrind", "massif"))
    ap.add_argument("--idle", type=int, default=2000, help="massif: idle connections to hold")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--delay", type=int, default=10, help="ms between requests per connection")
    ap.add_argument("--out", type=Path, help="keep the raw tool output here")
    ap.add_argument("--of", default="proxy", choices=("proxy", "backend"),
                    help="perf/strace/iosizes: whose process to trace; 'backend' shows what the "
                    "proxy in front makes the backend nginx (CPU 1) do")
    args = ap.parse_args()
    if args.of == "backend" and args.tool not in ("perf", "strace", "iosizes"):
        ap.error("--of backend: perf, strace or iosizes only")

    work = Path(tempfile.mkdtemp(prefix="portico-profile-"))
    certs = CertFactory(work / "certs")
    be, tls = start_backend(args.scenario, work, certs)
    cls = PROXIES[args.proxy]
    kw = {"binary": args.binary} if args.proxy == "portico" else {}
    proxy = cls(work, bench.free_port(), be.port, tls, **kw)
    raw = args.out or work / f"{args.tool}.out"
    if args.tool == "massif":
        try:
            return massif(args, proxy, raw)
        finally:
            proxy.stop()
            be.stop()
            harness._kill_all()
            if os.environ.get("PORTICO_BENCH_KEEP_TMP") != "1":
                subprocess.run(["rm", "-rf", str(work)])
    try:
        if args.tool == "callgrind":
            # callgrind must start the process; wrap the command line.
            base_cmd = proxy.cmd

            def wrapped():
                # Counters are zeroed before the measured wrk run and dumped (to raw.1)
                # right after it.
                # --compress-strings=no: each dump names its functions itself, so
                # callgrind_annotate can read the measured part (raw.1) alone.
                return ["valgrind", "--tool=callgrind", "--compress-strings=no",
                        f"--callgrind-out-file={raw}",
                        *base_cmd()]
            proxy.cmd = wrapped
        proxy.start()
        if args.tool == "callgrind":
            time.sleep(3)  # valgrind start-up
        err = bench.sanity(proxy)
        if err:
            print(err, file=sys.stderr)
            return 1
        script = wrk_script(work, args.delay, UPLOAD_BYTES if args.scenario == 4 else 0)
        path = bench.UPLOAD_PATH if args.scenario == 4 else "/"
        wrk(proxy.port, 2, args.connections, script, path)  # warm-up: pools filled, TLS up
        pids = [p for p in proxy.pids() if p != proxy.proc.pid] or [proxy.proc.pid]
        if args.proxy == "portico":
            pids = [proxy.proc.pid]
        if args.of == "backend":
            pids = [p for p in bench.children(be.proc.pid) if p != be.proc.pid]
        tool = None
        if args.tool in ("strace", "iosizes"):
            cmd = ["strace", "-c", "-f", "-o", str(raw)]
            if args.tool == "iosizes":
                cmd = ["strace", "-f", "-e", "trace=" + ",".join(IO_CALLS), "-e", "signal=none",
                       "-o", str(raw)]
            for pid in pids:
                cmd += ["-p", str(pid)]
            tool = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        elif args.tool == "perf":
            cmd = ["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g", "-o", str(raw)]
            for pid in pids:
                cmd += ["-p", str(pid)]
            tool = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-z", str(proxy.proc.pid)],
                           capture_output=True, timeout=30)
        time.sleep(1.0)  # tracer attached
        traced = pids if args.of == "backend" else proxy.pids()
        cpu0 = bench.proc_cpu_seconds(traced)
        res, out = wrk(proxy.port, args.duration, args.connections, script, path)
        cpu = bench.proc_cpu_seconds(traced) - cpu0
        if tool:
            tool.send_signal(signal.SIGINT)
            tool.wait(timeout=60)
        if args.tool == "callgrind":
            subprocess.run(["callgrind_control", "-d", str(proxy.proc.pid)],
                           capture_output=True, timeout=30)
        print(f"{args.proxy} scenario {args.scenario}: {res.requests} requests, {res.rps:.0f} "
              f"req/s, errors {res.errors}, {args.of} CPU {cpu:.2f} s "
              f"(under {args.tool}; {cpu / res.requests * 1e4:.3f} s / 10k req)")
        # The tracer saw a bit more than wrk's window (attach delay is before wrk starts;
        # the detach right after it ends), so per-request figures are upper bounds by a hair.
        if args.tool == "strace":
            print(strace_summary(raw.read_text(), res.requests))
        elif args.tool == "iosizes":
            print(io_sizes(raw.read_text(), res.requests))
        elif args.tool == "perf":
            rep = subprocess.run(["perf", "report", "-i", str(raw), "--no-children", "--stdio",
                                  "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.7"],
                                 capture_output=True, text=True).stdout
            print("\n".join(ln for ln in rep.splitlines() if ln and not ln.startswith("#")))
        elif args.tool == "callgrind":
            total, costs = callgrind_self_costs(Path(f"{raw}.1"))
            # Zeroed ~1 s before wrk and dumped right after it, with no traffic outside
            # wrk's window, so this is per request up to idle-loop noise.
            print(f"user-space instructions: {total:,} = {total / res.requests:,.0f} per "
                  "request (kernel work is invisible to callgrind)")
            print("self cost: share, instructions per request, function")
            for fn, c in costs[:30]:
                print(f"{c / total * 100:5.1f}% {c / res.requests:7,.0f}  {fn[:150]}")
        return 0
    finally:
        proxy.stop()
        be.stop()
        harness._kill_all()
        if os.environ.get("PORTICO_BENCH_KEEP_TMP") != "1":  # --out files live elsewhere
            subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    sys.exit(main())
