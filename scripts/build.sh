#!/usr/bin/env bash
# Configures (once) and builds into build/ with Ninja. BUILD_TYPE overrides
# the default RelWithDebInfo, BUILD_DIR the directory; CMAKE_ARGS are passed
# to the first configure.
set -euo pipefail
cd "$(dirname "$0")/.."
type="${BUILD_TYPE:-RelWithDebInfo}"
dir="${BUILD_DIR:-build}"
if [ ! -f "$dir/build.ninja" ] || ! grep -q "CMAKE_BUILD_TYPE:STRING=$type" "$dir/CMakeCache.txt" 2>/dev/null; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" ${CMAKE_ARGS:-}
fi
ninja -C "$dir" ${NINJA_ARGS:-} "$@"
