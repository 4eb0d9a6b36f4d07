#!/usr/bin/env bash
# Drives the web dashboard (/admin/) of a built llm-proxy in a real Chromium.
#   LLM_PROXY_BIN=build/llm-proxy bash tests/dashboard/run.sh
# Needs node >= 20, npm and Debian's chromium (bash packaging/install-deps.sh test);
# CHROMIUM_PATH may point at another Chromium. Installs the pinned
# playwright-core from package-lock.json (npm ci) only when node_modules is
# missing or the lock file changed since the last install, so later runs need
# no network; playwright-core never downloads a browser. Screenshots of every
# page go to LLM_PROXY_ARTIFACTS (default: tests/dashboard/artifacts beside the
# binary, i.e. under the build dir). Exits non-zero when anything is missing:
# this test must never pass by not running.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# A relative LLM_PROXY_BIN is relative to where the script was started.
if [[ -n ${LLM_PROXY_BIN:-} && -x $LLM_PROXY_BIN ]]; then
  LLM_PROXY_BIN=$(cd "$(dirname "$LLM_PROXY_BIN")" && pwd)/$(basename "$LLM_PROXY_BIN")
fi
cd "$here"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "dashboard_browser: node and npm are required but not found; the dashboard test cannot run here" \
    "(install them with: bash packaging/install-deps.sh test)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "dashboard_browser: Node.js >= 20 is required (found $(node --version)); the dashboard test cannot run here" >&2
  exit 1
fi
chromium_path=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ ! -x $chromium_path ]]; then
  echo "dashboard_browser: Chromium is required but $chromium_path does not exist; the dashboard test cannot run" \
    "here (install it with: bash packaging/install-deps.sh test, or set CHROMIUM_PATH)" >&2
  exit 1
fi
export CHROMIUM_PATH=$chromium_path

if [[ -z ${LLM_PROXY_BIN:-} ]]; then
  echo "dashboard_browser: set LLM_PROXY_BIN to the llm-proxy binary" >&2
  exit 1
fi
if [[ ! -x $LLM_PROXY_BIN ]]; then
  echo "dashboard_browser: LLM_PROXY_BIN=$LLM_PROXY_BIN is not an executable file" >&2
  exit 1
fi
export LLM_PROXY_BIN
export LLM_PROXY_ARTIFACTS=${LLM_PROXY_ARTIFACTS:-$(dirname "$LLM_PROXY_BIN")/tests/dashboard/artifacts}

# npm ci keeps node_modules/.package-lock.json, a copy of the lock it installed.
lock_sum() { sha256sum package-lock.json | cut -d' ' -f1; }
stamp=node_modules/.llm-proxy-lock.sha256
if [[ ! -d node_modules/playwright-core || ! -f $stamp || $(cat "$stamp") != "$(lock_sum)" ]]; then
  echo "dashboard_browser: installing the pinned playwright-core (npm ci)" >&2
  # No browser download: the test uses the system's Chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  lock_sum >"$stamp"
fi

echo "dashboard_browser: screenshots go to $LLM_PROXY_ARTIFACTS" >&2
exec node --test --test-reporter=spec dashboard.test.mjs
