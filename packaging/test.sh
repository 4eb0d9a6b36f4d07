#!/usr/bin/env bash
# Command 2 of the README (and what CI runs): install what is missing, build
# with AddressSanitizer + UndefinedBehaviorSanitizer, and run the whole suite
# through CTest against that build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh test
build=${LLM_PROXY_TEST_BUILD:-build-asan}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM_PROXY_SANITIZE=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
