#!/usr/bin/env bash
# Installs the Node packages the WebSocket interop suite drives (Node `ws`,
# pinned in tests/wsinterop/package.json) into tests/wsinterop/node_modules,
# which git ignores. Safe to run again: it does nothing when the pinned
# version is already there. Installs Debian's nodejs and npm when there is
# no node on PATH (as root).
set -euo pipefail
cd "$(dirname "$0")/../tests/wsinterop"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "snow-rt setup-node: node and npm are needed for the interop suite (run as root to install them)" >&2
    exit 1
  fi
  echo "snow-rt setup-node: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
want=$(node -p 'require("./package.json").dependencies.ws')
have=$(node -p 'try { require("./node_modules/ws/package.json").version } catch (e) { "" }')
if [ "$have" != "$want" ]; then
  echo "snow-rt setup-node: installing ws@$want into tests/wsinterop/node_modules"
  npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null
fi
