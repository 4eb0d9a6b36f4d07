#!/usr/bin/env bash
# Installs the Debian 12 packages llm-proxy needs to build, test and benchmark.
# Idempotent: when everything is already present it only runs dpkg-query and exits.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  libcli11-dev libsqlite3-dev libpq-dev libmongoc-dev libbson-dev
  nlohmann-json3-dev libboost-dev libssl-dev ca-certificates
  libgoogle-perftools-dev libhiredis-dev
)
# chromium: the dashboard's browser test (tests/dashboard) drives Debian's Chromium.
# redis-server: the Redis client's tests (tests/redis) start their own servers.
TEST_PKGS=(libgtest-dev libgmock-dev postgresql curl openssl python3 nodejs npm chromium
  redis-server)
BENCH_PKGS=(nginx-light wrk)

want=("${BUILD_PKGS[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${TEST_PKGS[@]}") ;;
  bench) want+=("${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  # nodejs/npm may come from outside Debian (e.g. nodesource or a preinstalled toolchain).
  if [[ $pkg == nodejs || $pkg == npm ]] && command -v "${pkg/nodejs/node}" >/dev/null 2>&1; then
    continue
  fi
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are absent or older than a day.
if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1) ]]; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
