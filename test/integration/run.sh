#!/usr/bin/env bash
# Runs the integration tests against a built portico, with a pass/fail summary.
#   test/integration/run.sh [BUILD_DIR] [test_module[.Class[.test]] ...]
# BUILD_DIR defaults to build/; PORTICO_BIN overrides the binary.
# PORTICO_IT_KEEP_TMP=1 keeps each test's temp dir (configs, logs) for a post-mortem.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
[ $# -gt 0 ] && shift
build="$(cd "$build" 2>/dev/null && pwd || echo "$build")"  # tests run from this dir
export PORTICO_BIN="$(realpath -m "${PORTICO_BIN:-$build/portico}")"
export PYTHONDONTWRITEBYTECODE=1
if [ ! -x "$PORTICO_BIN" ]; then
  echo "run.sh: $PORTICO_BIN is not built" >&2
  exit 2
fi
for tool in nginx openssl curl python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "run.sh: $tool not installed" >&2; exit 2; }
done
cd "$here"
if [ $# -gt 0 ]; then
  modules=("$@")
else
  modules=()
  for f in test_*.py; do modules+=("${f%.py}"); done
fi
declare -a summary
fail=0
start=$(date +%s)
for m in "${modules[@]}"; do
  t0=$(date +%s)
  if python3 -m unittest -v "$m"; then
    summary+=("PASS  $m ($(( $(date +%s) - t0 ))s)")
  else
    summary+=("FAIL  $m ($(( $(date +%s) - t0 ))s)")
    fail=1
  fi
done
echo
echo "== integration summary ($(( $(date +%s) - start ))s, binary $PORTICO_BIN) =="
printf '%s\n' "${summary[@]}"
exit $fail
