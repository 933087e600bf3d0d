#!/usr/bin/env bash
# Sets up, builds and runs every test:
#   1. gcc build with -Werror, all Check suites and integration tests;
#   2. the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#      (clang, so the coroutine switches are annotated for ASan);
#   3. short libFuzzer runs of the HTTP parser and WebSocket decoder targets.
# SNOW_TEST_QUICK=1 runs only step 1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-rooms-node.sh

# Parked-actor tests and benchmarks need two memory mappings per stack.
if [ -w /proc/sys/vm/max_map_count ] && [ "$(cat /proc/sys/vm/max_map_count)" -lt 262144 ]; then
  echo 262144 > /proc/sys/vm/max_map_count || true
fi

status=0
run() {
  local dir=$1; shift
  echo "== $dir: meson test $*"
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
}

[ -f build-ci/build.ninja ] || meson setup build-ci -Dwerror=true >/dev/null
ninja -C build-ci
run build-ci

if [ "${SNOW_TEST_QUICK:-0}" != 1 ]; then
  [ -f build-asan/build.ninja ] || CC=clang meson setup build-asan -Db_sanitize=address,undefined \
      -Db_lundef=false -Dwerror=true >/dev/null
  ninja -C build-asan
  run build-asan --no-suite fuzz --timeout-multiplier 3

  [ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >/dev/null
  ninja -C build-fuzz tests/fuzz/fuzz-http-parser tests/fuzz/fuzz-ws-decoder tests/fuzz/fuzz-redis-resp
  run build-fuzz --suite fuzz
fi
exit $status
