#!/usr/bin/env bash
# Installs what snow-rt needs to build and test on Debian 12, when run as
# root and something is missing. Safe to run again: it only installs what
# dpkg does not already list.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config python3
  check libbearssl-dev zlib1g-dev
  clang libclang-rt-14-dev
  curl openssl python3-websockets
  chromium nodejs
  redis-server
)
if [ "${SNOW_SETUP_BENCH:-0}" = 1 ]; then
  packages+=(erlang-base golang-go wrk nginx-light
    libwebsockets-dev golang-github-gorilla-websocket-dev gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "snow-rt setup: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "snow-rt setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node `ws` for the WebSocket interop suite.
"$(dirname "$0")/setup-node.sh"
