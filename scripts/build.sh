#!/usr/bin/env bash
# Configures (once) and builds into build/ with Ninja. BUILD_TYPE overrides
# the default RelWithDebInfo.
set -euo pipefail
cd "$(dirname "$0")/.."
type="${BUILD_TYPE:-RelWithDebInfo}"
if [ ! -f build/build.ninja ] || ! grep -q "CMAKE_BUILD_TYPE:STRING=$type" build/CMakeCache.txt 2>/dev/null; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$type" ${CMAKE_ARGS:-}
fi
ninja -C build ${NINJA_ARGS:-} "$@"
