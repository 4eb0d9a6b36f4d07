#!/usr/bin/env bash
# Runs the OpenAI Node SDK and LangChain (ChatOpenAI) compatibility tests
# against a built llm-proxy.
#   LLM_PROXY_BIN=build/llm-proxy bash tests/sdk/run.sh
# Installs the pinned packages from package-lock.json (npm ci) only when
# node_modules is missing or the lock file changed since the last install, so
# later runs need no network. Exits non-zero when node/npm are missing: this
# test must never pass by not running.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "openai_node_sdk: node and npm are required but not found; the OpenAI SDK test cannot run here" \
    "(install them with: bash packaging/install-deps.sh test)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "openai_node_sdk: Node.js >= 20 is required (found $(node --version)); the SDK test cannot run here" >&2
  exit 1
fi

if [[ -z ${LLM_PROXY_BIN:-} ]]; then
  echo "openai_node_sdk: set LLM_PROXY_BIN to the llm-proxy binary" >&2
  exit 1
fi
if [[ ! -x $LLM_PROXY_BIN ]]; then
  echo "openai_node_sdk: LLM_PROXY_BIN=$LLM_PROXY_BIN is not an executable file" >&2
  exit 1
fi
LLM_PROXY_BIN=$(cd "$(dirname "$LLM_PROXY_BIN")" && pwd)/$(basename "$LLM_PROXY_BIN")
export LLM_PROXY_BIN

# npm ci keeps node_modules/.package-lock.json, a copy of the lock it installed.
lock_sum() { sha256sum package-lock.json | cut -d' ' -f1; }
stamp=node_modules/.llm-proxy-lock.sha256
if [[ ! -d node_modules/openai || ! -d node_modules/@langchain/openai || ! -f $stamp || $(cat "$stamp") != "$(lock_sum)" ]]; then
  echo "openai_node_sdk: installing the pinned SDK (npm ci)" >&2
  npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  lock_sum >"$stamp"
fi

exec node --test --test-reporter=spec openai_sdk.test.mjs translating.test.mjs langchain.test.mjs
