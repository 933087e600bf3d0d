#!/usr/bin/env bash
# Cross-node fanout: redis-server (no persistence) on a free loopback port,
# three rooms-redis-node processes using it, and snow-bench-redis-fanout
# with the subscribers spread over the three; then the same load on one
# node without Redis, for the single-node figure.
#
# usage: bench/rooms_redis/run.sh BUILD_DIR [SUBSCRIBERS] [RATE] [SECONDS] [QUERY]
# QUERY: appended to the nodes' redis:// URL, e.g. '?mode=streams'.
set -euo pipefail
build=${1:?build dir}
subs=${2:-3000} rate=${3:-100} secs=${4:-5} query=${5:-}
node=$build/tests/rooms_redis/rooms-redis-node
gen=$build/bench/snow-bench-redis-fanout
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --loglevel warning >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

start_node() { # $1: output file, $2: redis URL or empty; sets $node_port
  if [ -n "$2" ]; then SNOW_ROOMS_REDIS=$2 "$node" --port 0 >"$1" 2>&1 & else "$node" --port 0 >"$1" 2>&1 & fi
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "$1" && break; sleep 0.05; done
  node_port=$(awk '{print $3; exit}' "$1")
}
start_node "$tmp/n1" "redis://127.0.0.1:$port/0$query"; p1=$node_port
start_node "$tmp/n2" "redis://127.0.0.1:$port/0$query"; p2=$node_port
start_node "$tmp/n3" "redis://127.0.0.1:$port/0$query"; p3=$node_port
echo "# 3 nodes through redis-server${query:+ ($query)}, $subs subscribers spread over them"
"$gen" --ports "$p1,$p2,$p3" --subscribers "$subs" --rate "$rate" --seconds "$secs"
start_node "$tmp/single" ""; s=$node_port
echo "# 1 node, in-process rooms, $subs subscribers"
"$gen" --ports "$s" --subscribers "$subs" --rate "$rate" --seconds "$secs"
