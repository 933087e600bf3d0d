#!/usr/bin/env bash
# Installs the Node package the rooms interop test drives (Node `ws`, pinned
# in tests/ws/rooms_peers/package.json) into tests/ws/rooms_peers/node_modules,
# which git ignores. Does nothing when the pinned version is there already.
# Needs node and npm on PATH.
set -euo pipefail
cd "$(dirname "$0")/../tests/ws/rooms_peers"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "snow-rt setup-rooms-node: node and npm are needed for the rooms interop test" >&2
  exit 1
fi
want=$(node -p 'require("./package.json").dependencies.ws')
have=$(node -p 'try { require("./node_modules/ws/package.json").version } catch (e) { "" }')
if [ "$have" != "$want" ]; then
  echo "snow-rt setup-rooms-node: installing ws@$want into tests/ws/rooms_peers/node_modules"
  npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null
fi
