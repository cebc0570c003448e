#!/usr/bin/env python3
"""Req/s of one Portico listener that serves many hostnames: the first and the last of them.

Uses scenario 6's generated input (bench/control_plane.py: N HTTPRoutes, each with its own
hostname, Service, EndpointSlice and BackendTLSPolicy) in front of scenario 1's TLS backend, one
worker on CPU 0, wrk -c32 on CPU 1. Shows whether selecting a virtual host depends on how many
a listener has (it should not).

    python3 bench/hosts.py --binary build-release/portico --routes 10000
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "integration"))
import bench  # noqa: E402
import control_plane  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build-release/portico")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=4)
    args = ap.parse_args()
    with control_plane.generated_portico(args.binary, args.routes) as (port, _, work):
        script = bench.wrk_script(work, 0)
        for host in (control_plane.route_host(0), control_plane.route_host(args.routes - 1)):
            res, _ = bench.wrk(port, args.duration, 32, script, "/", host=host)
            print(f"{args.routes} hostnames, Host: {host}: {res.rps:.0f} req/s, "
                  f"errors {res.errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
