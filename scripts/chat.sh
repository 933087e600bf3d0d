#!/usr/bin/env bash
# Sets up, builds and starts snow-chat, the browser chat example, on
# http://127.0.0.1:8080/ (SNOW_CHAT_PORT / SNOW_CHAT_HOST change that).
# Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build compiler-abi/examples/snow-chat >/dev/null
exec build/compiler-abi/examples/snow-chat --host "${SNOW_CHAT_HOST:-127.0.0.1}" --port "${SNOW_CHAT_PORT:-8080}" "$@"
