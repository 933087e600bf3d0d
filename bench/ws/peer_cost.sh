#!/usr/bin/env bash
# What one echoed message costs the server AND the load generator, for any
# server (snow-echo or a peer), so that two servers can be compared on
# what they make the other side do (bench/README.md, "Depth-1 echo: what
# each server makes the load generator do").
#
#   bench/ws/peer_cost.sh BUILD_DIR SERVER-CMD... [-- LOADGEN-ARGS...]
#   e.g. bench/ws/peer_cost.sh build-release env SNOW_WORKERS=1 build-release/compiler-abi/examples/snow-echo
#        bench/ws/peer_cost.sh build-release /tmp/lws-server -- --path /echo --conns 100 --size 64 --depth 16
#
# The server runs on CPU 0 (SERVER-CMD gets --host 127.0.0.1 --port 0
# appended and must print "listening on PORT"), BUILD_DIR's
# snow-ws-loadgen on CPU 1 in echo mode with LOADGEN-ARGS (default: 64 B,
# 100 connections, depth 1) for SECS seconds (5) with no warm-up. Counted
# per echoed message (the generator's msgs= over its whole life):
#
# - each process's system calls by name, context switches and CPU time
#   (perf stat with the syscalls tracepoints and software events: the
#   server from its start, the generator over its whole life; both include
#   connection set-up, 100 handshakes against some 10^5 messages);
# - the TCP segments the server's sockets sent and received, and how many
#   carried data (ss -ti on the server's port, over 2 s mid-run, scaled by
#   the run's rate): more segments than data segments are pure ACKs.
#
# The counts do not depend on the machine's load except the waits (epoll,
# poll) and context switches, which depend on how often a side runs out of
# work; the rate and CPU times do.
set -euo pipefail
. "$(dirname "$0")/port.sh"
build=$1
shift
split_cmd "$@"
secs=${SECS:-5}
loadgen=$build/bench/ws/snow-ws-loadgen
work=$(mktemp -d /tmp/snow-ws-peer-cost.XXXXXX)
srv=
pst=
cleanup() {
    if [ -n "$pst" ]; then kill -INT "$pst" 2>/dev/null || true; fi
    if [ -n "$srv" ]; then kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
: >"$work/server.out"
taskset -c 0 "${srv_cmd[@]}" --host 127.0.0.1 --port 0 >"$work/server.out" 2>&1 &
srv=$!
port=$(wait_port "$work/server.out") || { echo "peer_cost.sh: the server did not start" >&2; exit 1; }
calls="epoll_wait epoll_pwait epoll_pwait2 poll ppoll read recvfrom readv write sendto writev sendmsg ioctl"
ev=raw_syscalls:sys_enter,task-clock,context-switches
for c in $calls; do ev+=",syscalls:sys_enter_$c"; done
perf stat -x, -e "$ev" -p "$srv" -o "$work/server.perf" &
pst=$!
sleep 0.3
# segs PORT: segs_out data_segs_out segs_in data_segs_in summed over the
# server's established sockets.
segs() {
    ss -tinH state established "( sport = :$port )" | tr ' ' '\n' | awk -F: '
        $1 == "segs_out" {a += $2} $1 == "data_segs_out" {b += $2}
        $1 == "segs_in" {c += $2} $1 == "data_segs_in" {d += $2}
        END {printf "%d %d %d %d\n", a, b, c, d}'
}
(
    sleep "$(awk -v s="$secs" 'BEGIN {print s / 2 - 1}')"
    t0=$(date +%s.%N)
    segs
    sleep 2
    t1=$(date +%s.%N)
    segs
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f\n", b - a}'
) >"$work/segs" &
sp=$!
perf stat -x, -e "$ev" -o "$work/loadgen.perf" taskset -c 1 "$loadgen" echo "${largs[@]}" \
    --seconds "$secs" --warmup 0 --port "$port" --server-pid "$srv" >"$work/lg.out" 2>&1
wait "$sp"
kill -INT "$pst"
wait "$pst" || true
pst=
line=$(tail -1 "$work/lg.out")
echo "$line"
msgs=$(echo "$line" | sed -n 's/.* msgs=\([0-9]*\).*/\1/p')
rate=$(echo "$line" | sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p')
[ -n "$msgs" ] && [ "$msgs" -gt 0 ] || { echo "peer_cost.sh: no messages echoed" >&2; exit 1; }
echo "messages=$msgs load_1min=$(cut -d' ' -f1 /proc/loadavg)"
for who in server loadgen; do
    awk -F, -v m="$msgs" -v who="$who" '
        $1 ~ /^[0-9.]+$/ {
            n = $3; sub(/^(raw_)?syscalls:sys_enter_?/, "", n)
            if (n == "") n = "syscalls"
            if (n == "task-clock") printf " cpu_us=%.2f", $1 * 1000 / m
            else if ($1 > 0) printf " %s=%.3f", n, $1 / m
        }
        BEGIN {printf "%-8s per message:", who}
        END {print ""}' "$work/$who.perf"
done
awk -v rate="$rate" 'NR == 1 {split($0, a)} NR == 2 {split($0, b)} NR == 3 {
        m = $1 * rate
        printf "server TCP segments per message: out %.3f (data %.3f), in %.3f (data %.3f)\n",
            (b[1] - a[1]) / m, (b[2] - a[2]) / m, (b[3] - a[3]) / m, (b[4] - a[4]) / m
    }' "$work/segs"
