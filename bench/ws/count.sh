#!/usr/bin/env bash
# Load-independent counts for snow-echo under one snow-ws-loadgen cell:
# system calls (strace -c) or user-space instructions (callgrind) per room
# delivery or per echoed message, the denominator read from snow-echo's
# /stats before and after the counting window.
#
#   bench/ws/count.sh strace|callgrind BUILD_DIR LOADGEN-MODE-ARGS...
#   e.g. bench/ws/count.sh strace build-release fanout --path /broadcast --subscribers 1000 --depth 8 --size 64
#
# snow-echo runs with SNOW_WORKERS=1 on CPU 0, the load generator on CPU 1.
# strace: attached 3 s into an 8 s run, for 3 s. callgrind: counters zeroed
# 12 s into a 25 s run (valgrind is slow to get every subscriber in), dumped
# 8 s later (START=, SECS= override the start of the window and the run's
# length: a 10,000-subscriber room takes longer to fill). Prints the load
# generator's line, then the counts.
set -euo pipefail
tool=$1
build=$2
shift 2
work=$(mktemp -d /tmp/snow-ws-count.XXXXXX)
srv=
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
echo_bin="$build/compiler-abi/examples/snow-echo"
loadgen="$build/bench/ws/snow-ws-loadgen"
case $tool in
strace)
    secs=${SECS:-8} start=${START:-3} window=3
    taskset -c 0 env SNOW_WORKERS=1 "$echo_bin" --host 127.0.0.1 --port 0 >"$work/srv.out" 2>&1 &
    ;;
callgrind)
    secs=${SECS:-25} start=${START:-12} window=8
    taskset -c 0 env SNOW_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$echo_bin" --host 127.0.0.1 --port 0 >"$work/srv.out" 2>"$work/vg.err" &
    ;;
*)
    echo "count.sh: strace or callgrind" >&2
    exit 2
    ;;
esac
srv=$!
port=
for _ in $(seq 200); do
    port=$(awk '/^listening on/ {print $3; exit}' "$work/srv.out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "count.sh: snow-echo did not start" >&2; exit 1; }
taskset -c 1 "$loadgen" "$@" --seconds "$secs" --warmup 1 --port "$port" --server-pid "$srv" >"$work/lg.out" 2>&1 &
lg=$!
sleep "$start"
s0=$(curl -s "http://127.0.0.1:$port/stats")
if [ "$tool" = strace ]; then
    strace -c -f -p "$srv" -o "$work/counts" 2>/dev/null &
    sp=$!
    sleep "$window"
    kill -INT "$sp"
    wait "$sp" || true
else
    callgrind_control -z "$srv" >/dev/null
    sleep "$window"
    callgrind_control -d "$srv" >/dev/null
fi
s1=$(curl -s "http://127.0.0.1:$port/stats")
wait "$lg" || true
tail -1 "$work/lg.out"
if [ "$tool" = callgrind ]; then
    dump=$(ls -t "$work"/cg.out.* | head -1)
    awk '/^(summary|totals):/ {print $2; exit}' "$dump" >"$work/counts"
fi
python3 - "$tool" "$s0" "$s1" "$work/counts" <<'PY'
import json, sys
tool, a, b, path = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
deliveries = b["room"]["deliveries"] - a["room"]["deliveries"]
msgs = b["msgs_in"] - a["msgs_in"]
den, what = (deliveries, "delivery") if deliveries > msgs else (msgs, "message")
if tool == "callgrind":
    ir = int(open(path).read().split()[0])
    print("instructions=%d deliveries=%d messages=%d: %.0f instructions per %s" % (ir, deliveries, msgs, ir / den, what))
    sys.exit(0)
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
print("syscalls=%d deliveries=%d messages=%d: %.3f per %s (%s)" % (
    total, deliveries, msgs, total / den, what,
    " ".join("%s %.3f" % (k, v / den) for k, v in sorted(calls.items(), key=lambda x: -x[1]))))
PY
