#!/usr/bin/env bash
# Command 2 of the README (and what CI runs): install what is missing, build
# with AddressSanitizer + UndefinedBehaviorSanitizer, and run the whole suite
# through CTest against that build. Arguments go to ctest, e.g.
#   bash packaging/test.sh -L unit          # one tier (labels: unit storage e2e sdk browser)
#   bash packaging/test.sh -R cli_e2e_pg    # by name
# Prints the wall time of the build and of the tests at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh test
build=${LLM_PROXY_TEST_BUILD:-build-asan}

# (ccache, when installed, is set up by CMakeLists.txt: a fresh clone in
# another folder reuses the compiles of an earlier one.)
started=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM_PROXY_SANITIZE=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
built=$(date +%s)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@" || status=$?
finished=$(date +%s)

echo "test.sh: build $((built - started)) s, tests $((finished - built)) s," \
  "total $((finished - started)) s (ccache: $(ccache -s 2>/dev/null | awk '/Hits:/ {print $2 " hits"; exit}'))"
exit "$status"
