#!/usr/bin/env bash
# Installs the Node `ws` package (for the permessage-deflate interop test,
# tests/ws/interop_pmd.py) into tests/ws/node_modules, which git ignores.
# Safe to run again: npm keeps what is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="$here/tests/ws"
if ! command -v npm >/dev/null; then
  echo "setup-node-ws: npm not found (Node 20 and npm are needed)" >&2
  exit 1
fi
npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error ws@8
