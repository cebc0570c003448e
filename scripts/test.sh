#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, golden,
# integration against real nginx). Exit status is ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
