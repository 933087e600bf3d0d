#!/usr/bin/env bash
# Sets up, builds, and runs the main example: snow-actors-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build compiler-abi/examples/snow-actors-demo >/dev/null
exec build/compiler-abi/examples/snow-actors-demo "$@"
