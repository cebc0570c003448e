#!/usr/bin/env python3
"""Req/s of one Portico listener that serves many hostnames: the first and the last of them.

Uses scenario 6's generated input (bench/control_plane.py: N HTTPRoutes, each with its own
hostname, Service, EndpointSlice and BackendTLSPolicy) in front of scenario 1's TLS backend, one
worker on CPU 0, wrk -c32 on CPU 1. Shows whether selecting a virtual host depends on how many
a listener has (it should not).

    python3 bench/hosts.py --binary build-release/portico --routes 10000
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "integration"))
import bench  # noqa: E402
import control_plane  # noqa: E402
from harness import CertFactory, free_port  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build-release/portico")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    be, tls = bench.start_backend(1, work, CertFactory(work / "certs"))
    port, admin = free_port(), free_port()
    cfg = work / "cfg"
    control_plane.generate(cfg, args.routes, port, be.port, tls.cert.cert.read_text())
    proxy = subprocess.Popen(
        ["taskset", "-c", bench.PROXY_CPU, args.binary, "run", "--config", str(cfg), "--workers",
         "1", "--admin-address", f"127.0.0.1:{admin}", "--listen-address", "127.0.0.1",
         "--log-level", "warning", "--access-log", "off"], stdout=subprocess.DEVNULL)
    try:
        bench.wait_port(port, 60, proxy)
        time.sleep(2)
        script = bench.wrk_script(work, 0)
        for host in (control_plane.route_host(0), control_plane.route_host(args.routes - 1)):
            res, _ = bench.wrk(port, args.duration, 32, script, "/", host=host)
            print(f"{args.routes} hostnames, Host: {host}: {res.rps:.0f} req/s, "
                  f"errors {res.errors}", flush=True)
    finally:
        proxy.terminate()
        proxy.wait()
        be.stop()
        subprocess.run(["rm", "-rf", str(work)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
