#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, golden,
# integration against real nginx, micro-benchmark smoke), then the unit and
# integration tests again with everything built under AddressSanitizer +
# UndefinedBehaviorSanitizer: test/unit/robustness feeds mutated manifests and
# HTTP messages through the decoders and parsers, the integration tests drive
# the proxy with real traffic, and a memory error anywhere must fail the run,
# not pass by luck. Arguments go to the first ctest (and skip the sanitizer
# pass, as does PORTICO_SKIP_SANITIZERS=1). Exit status is non-zero if either
# pass fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure --timeout 900 "$@")
if [ $# -eq 0 ] && [ "${PORTICO_SKIP_SANITIZERS:-0}" != 1 ]; then
  san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  # CMake takes CXXFLAGS/LDFLAGS from the environment when it first configures build-asan.
  CXXFLAGS="$san" LDFLAGS="$san" BUILD_TYPE=Debug BUILD_DIR=build-asan scripts/build.sh portico \
    $(ninja -C build -t targets all | grep -o '^unit_[a-z0-9_]*:' | tr -d : | sort -u)
  # A small quarantine: the streaming tests assert that RSS stays flat, and ASan's default
  # keeps 256 MiB of freed memory. Leak checks are off for the proxy processes the tests
  # stop with signals.
  (cd build-asan && ctest -L unit --output-on-failure --timeout 900 &&
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:quarantine_size_mb=4 \
      ctest -L integration --output-on-failure --timeout 900)
fi
