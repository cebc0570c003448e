#!/usr/bin/env python3
"""Admin scrape cost at scale: /stats, /stats/prometheus and a filtered /stats with N clusters.

Uses scenario 6's generated input (bench/control_plane.py: N HTTPRoutes, Services,
EndpointSlices and BackendTLSPolicies, so N clusters) and `--workers` workers (each one a stats
shard that every scrape merges). Prints the median wall time of 5 scrapes of each path.

    python3 bench/scrape.py --binary build-release/portico --routes 10000 --workers 2
"""
import argparse
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "integration"))
import control_plane  # noqa: E402

PATHS = ("/stats", "/stats/prometheus", "/stats?filter=downstream_rq_total$")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="build-release/portico")
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with control_plane.generated_portico(args.binary, args.routes, args.workers) as (_, admin, _work):
        for path in PATHS:
            times, size = [], 0
            for _ in range(5):
                t0 = time.monotonic()
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}", timeout=60) as r:
                    size = len(r.read())
                times.append(time.monotonic() - t0)
            print(f"{args.routes} clusters, {args.workers} workers, {path}: "
                  f"{1000 * sorted(times)[2]:.0f} ms (median of 5), {size / 1e6:.1f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
