#!/usr/bin/env bash
# Command 1 of the README: install what is missing, build, and start
# `llm-proxy serve` on the embedded SQLite default. On first run it provisions
# a demo (a `mock` connection, a model alias and a virtual key) so the proxy
# can be called at once; later runs keep what is in the database.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLM_PROXY_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"

bin=build/llm-proxy
export LLM_PROXY_DB="${LLM_PROXY_DB:-sqlite://$PWD/llm-proxy.db}"
if ! "$bin" connection show demo >/dev/null 2>&1; then
  "$bin" connection add --name demo --provider mock >/dev/null
  "$bin" model add --name echo --remote echo-1 --conn-id demo >/dev/null
  key=$("$bin" vkey add --name demo-key --model-id echo --tps 10 --json | sed -n 's/.*"key": "\(sk-[^"]*\)".*/\1/p')
  echo "Demo provisioned: connection 'demo' (mock), model 'echo', virtual key:"
  echo "  $key"
  echo "Try:"
  echo "  curl -s http://127.0.0.1:${PORT:-8080}/v1/chat/completions -H 'Authorization: Bearer $key' \\"
  echo "    -d '{\"model\":\"echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'"
fi
"$bin" connection list
"$bin" model list
"$bin" vkey list
exec "$bin" serve --listen "0.0.0.0:${PORT:-8080}"
