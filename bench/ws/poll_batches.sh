#!/usr/bin/env bash
# How many ready connections each of a server's polls returns, and how long
# the polls take (bench/README.md, "Depth-1 echo: what each server makes
# the load generator do"): the batch a reply may wait in behind the other
# connections' turns.
#
#   bench/ws/poll_batches.sh BUILD_DIR CALL SERVER-CMD... [-- LOADGEN-ARGS...]
#   e.g. bench/ws/poll_batches.sh build-release epoll_pwait2 env SNOW_WORKERS=1 build-release/compiler-abi/examples/snow-echo
#        bench/ws/poll_batches.sh build-release poll /tmp/lws-server
#
# CALL is the server's poll system call (epoll_pwait2 for snow-echo and
# Bun, poll for libwebsockets, epoll_wait elsewhere). The server runs on
# CPU 0 (SERVER-CMD gets --host 127.0.0.1 --port 0), BUILD_DIR's
# snow-ws-loadgen on CPU 1 in echo mode with LOADGEN-ARGS (default: 64 B,
# 100 connections, depth 1) for 5 s after 1 s of warm-up; perf records the
# call's entries and exits (syscalls tracepoints) for 2 s mid-run. Prints
# the polls, the mean of what they returned, its distribution, and the
# time spent in the call for polls that found nothing and for the others
# (a poll that found nothing at once was a look while busy; one that waited
# had run out of work).
set -euo pipefail
. "$(dirname "$0")/port.sh"
build=$1
call=$2
shift 2
split_cmd "$@"
work=$(mktemp -d /tmp/snow-ws-poll-batches.XXXXXX)
srv=
cleanup() {
    if [ -n "$srv" ]; then kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
: >"$work/server.out"
taskset -c 0 "${srv_cmd[@]}" --host 127.0.0.1 --port 0 >"$work/server.out" 2>&1 &
srv=$!
port=$(wait_port "$work/server.out") || { echo "poll_batches.sh: the server did not start" >&2; exit 1; }
taskset -c 1 "$build/bench/ws/snow-ws-loadgen" echo "${largs[@]}" --seconds 5 --warmup 1 --port "$port" \
    --server-pid "$srv" >"$work/lg.out" 2>&1 &
lg=$!
sleep 3
perf record -q -e "syscalls:sys_enter_$call" -e "syscalls:sys_exit_$call" -p "$srv" -o "$work/perf.data" \
    -- sleep 2 2>/dev/null
wait "$lg" || true
tail -1 "$work/lg.out"
echo "load_1min=$(cut -d' ' -f1 /proc/loadavg)"
perf script -i "$work/perf.data" 2>/dev/null | python3 -c '
import re, sys
call = sys.argv[1]
pat = re.compile(r" (\d+\.\d+):\s+syscalls:sys_(enter|exit)_%s: (\S+)" % re.escape(call))
enter = None
got, empty_us, full_us = [], [], []
for line in sys.stdin:
    m = pat.search(line)
    if not m:
        continue
    t = float(m.group(1))
    if m.group(2) == "enter":
        enter = t
        continue
    if enter is None:
        continue
    r = int(m.group(3), 16)
    if r >= 1 << 63:
        continue  # an error
    got.append(r)
    (empty_us if r == 0 else full_us).append((t - enter) * 1e6)
    enter = None
if not got:
    sys.exit("poll_batches.sh: no %s calls recorded" % call)
bins = [("0", 0, 1), ("1", 1, 2), ("2-3", 2, 4), ("4-7", 4, 8), ("8-15", 8, 16), ("16-31", 16, 32), ("32+", 32, 1 << 62)]
def q(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1))] if v else 0
print("polls=%d mean_ready=%.2f mean_ready_of_nonempty=%.2f" % (len(got), sum(got) / len(got),
      sum(got) / max(1, len(full_us))))
print("ready per poll: " + " ".join("%s:%.1f%%" % (n, 100.0 * sum(lo <= r < hi for r in got) / len(got)) for n, lo, hi in bins))
for name, v in (("found nothing", empty_us), ("found some", full_us)):
    print("%s: %d polls, time in the call (us) p50 %.0f p90 %.0f p99 %.0f" % (name, len(v), q(v, .5), q(v, .9), q(v, .99)))
' "$call"
