#!/usr/bin/env bash
# The kernel's side of a cell, for snow-echo or a peer server run the way
# bench/ws/run.sh runs it (bench/README.md, "Fanout to 10,000 members in
# join order"):
#
#   bench/ws/kcost.sh perf|addr BUILD_DIR snow-rt|bun LOADGEN-ARGS...
#   e.g. bench/ws/kcost.sh perf build-release bun fanout --path /broadcast --subscribers 10000 --depth 1 --size 64
#
# The server on CPU 0 (snow-echo with SNOW_WORKERS=1; Bun from
# bench/ws/peers/node_modules, as run.sh installs it), BUILD_DIR's
# snow-ws-loadgen on CPU 1 for SECS seconds (12) after its warm-up; START
# seconds (10) after the start, once a 10,000-member room has filled, a
# window of SPAN seconds (3) on the server's process:
#
# perf: `perf stat -p` of tracepoints, per write the server made (sendto +
#   sendmsg + writev, one per delivery at depth 1): its CPU time
#   (task-clock, which depends on the machine's load), and counts that do
#   not: system calls, packets sent in its context (net_dev_xmit: on
#   loopback the receiving side's processing and its ACK run in the
#   sender's context too), wake-ups it made, softirqs, timers expired.
# addr: the kernel addresses of the sockets written, in order
#   (sock:sock_send_length): how far apart two consecutive writes' sockets
#   are, i.e. in what order the server walks its members.
set -euo pipefail
. "$(dirname "$0")/port.sh"
mode=$1 build=$2 server=$3
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
loadgen=$build/bench/ws/snow-ws-loadgen
start=${START:-10} span=${SPAN:-3} secs=${SECS:-12}
work=$(mktemp -d /tmp/snow-ws-kcost.XXXXXX)
srv=
cleanup() {
    if [ -n "$srv" ]; then kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
: >"$work/server.out"
case $server in
snow-rt) taskset -c 0 env SNOW_WORKERS=1 "$build/compiler-abi/examples/snow-echo" --host 127.0.0.1 --port 0 \
    >"$work/server.out" 2>&1 & ;;
bun) taskset -c 0 "$root/bench/ws/peers/node_modules/bun/bin/bun.exe" "$root/bench/ws/peers/bun-server.js" \
    --host 127.0.0.1 --port 0 >"$work/server.out" 2>&1 & ;;
*) echo "kcost.sh: server is snow-rt or bun" >&2; exit 2 ;;
esac
srv=$!
port=$(wait_port "$work/server.out") || { echo "kcost.sh: the server did not start" >&2; exit 1; }
taskset -c 1 "$loadgen" "$@" --seconds "$secs" --warmup 1 --port "$port" --server-pid "$srv" >"$work/lg.out" 2>&1 &
lg=$!
sleep "$start"
load=$(cut -d' ' -f1 /proc/loadavg)
case $mode in
perf)
    perf stat -x, -p "$srv" -o "$work/stat" -e task-clock,raw_syscalls:sys_enter,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,net:net_dev_xmit,sched:sched_wakeup,irq:softirq_entry,timer:timer_expire_entry \
        -- sleep "$span"
    ;;
addr)
    perf record -e sock:sock_send_length -p "$srv" -o "$work/addr.data" -- sleep "$span" >/dev/null 2>&1
    perf script -i "$work/addr.data" -F trace 2>/dev/null >"$work/addr.txt"
    ;;
*) echo "kcost.sh: mode is perf or addr" >&2; exit 2 ;;
esac
wait "$lg" || true
tail -1 "$work/lg.out"
echo "load1=$load at the window's start"
case $mode in
perf)
    awk -F, '$1 ~ /^[0-9.]+$/ {v[$3] = $1}
        END {
            w = v["syscalls:sys_enter_sendto"] + v["syscalls:sys_enter_sendmsg"] + v["syscalls:sys_enter_writev"]
            if (w == 0) { print "kcost.sh: no write in the window"; exit 1 }
            printf "writes=%d (sendto %d, sendmsg %d, writev %d)\n", w, v["syscalls:sys_enter_sendto"], v["syscalls:sys_enter_sendmsg"], v["syscalls:sys_enter_writev"]
            printf "per write: cpu_us=%.2f syscalls=%.3f epoll_wait=%.4f epoll_ctl=%.4f xmit=%.3f wakeups=%.3f softirqs=%.3f timers=%.4f\n",
                v["task-clock"] * 1000 / w, v["raw_syscalls:sys_enter"] / w, v["syscalls:sys_enter_epoll_wait"] / w,
                v["syscalls:sys_enter_epoll_ctl"] / w, v["net:net_dev_xmit"] / w, v["sched:sched_wakeup"] / w,
                v["irq:softirq_entry"] / w, v["timer:timer_expire_entry"] / w
        }' "$work/stat"
    ;;
addr)
    python3 - "$work/addr.txt" <<'PY'
import re, statistics, sys
v = [int(m.group(1), 16) for m in (re.search(r"sk address = (0x[0-9a-f]+)", l) for l in open(sys.argv[1])) if m]
if len(v) < 2:
    sys.exit("kcost.sh: no write in the window")
d = [abs(b - a) for a, b in zip(v, v[1:])]
n = len(d)
print(f"writes={len(v)} sockets={len(set(v))} consecutive_delta_median_b={statistics.median(d):.0f} "
      f"within_64kib={sum(x <= 65536 for x in d) / n:.3f} within_2mib={sum(x <= 2 << 20 for x in d) / n:.3f}")
PY
    ;;
esac
