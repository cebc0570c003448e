#!/usr/bin/env bash
# Portico vs nginx-as-proxy vs HAProxy, one worker each pinned to CPU 0, wrk and
# the nginx backend on CPU 1; every scenario of issue 4 (2,1,3,4,5,6), a table each on
# stdout and a PNG chart each in docs/. Builds Portico in release mode first. ~25 minutes.
#   bench/run.sh [--no-build] [bench.py options: --scenarios 2,1 --rounds 3 --duration 8 ...]
# Example: bench/run.sh --markdown /tmp/bench.md
#          bench/run.sh --scenarios 2 --rounds 5 --charts '' --markdown /tmp/bench.md
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-release"
if [ "${1:-}" = "--no-build" ]; then
  shift
else
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPORTICO_BUILD_TESTS=OFF >/dev/null
  ninja -C "$build" portico
fi
exec python3 "$root/bench/bench.py" --binary "$build/portico" "$@"
