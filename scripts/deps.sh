#!/usr/bin/env bash
# Installs what building, testing and the demo need (Debian 12, as root).
# Skips apt entirely when everything is already there.
set -euo pipefail
packages=(g++ cmake ninja-build pkg-config libssl-dev libyaml-cpp-dev libyaml-dev nlohmann-json3-dev
  libre2-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev nginx haproxy wrk curl openssl
  python3 ca-certificates procps gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
