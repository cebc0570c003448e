#!/usr/bin/env bash
# Portico vs nginx-as-proxy vs HAProxy, one worker each pinned to CPU 0, wrk and
# the nginx backend on CPU 1. Builds Portico in release mode first.
#   bench/run.sh [--no-build] [bench.py options: --scenarios 2,1 --rounds 3 --duration 10 ...]
# Example: bench/run.sh --scenarios 2 --rounds 5 --markdown /tmp/bench.md
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
