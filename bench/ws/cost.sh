#!/usr/bin/env bash
# System calls and instructions per unit of work in snow-echo, measures
# that do not depend on the machine's load (bench/README.md, "Handshake
# and wss path" and "Write path and fanout").
#
#   bench/ws/cost.sh [--window] BUILD_DIR strace|callgrind [plain|tls] LOADGEN-ARGS...
#   e.g. bench/ws/cost.sh build-release strace tls echo --conns 10 --size 16384 --depth 4 --seconds 3 --warmup 0
#        bench/ws/cost.sh --window build-release callgrind fanout --path /broadcast --subscribers 1000 --depth 8 --size 64
#
# BUILD_DIR's snow-echo runs with SNOW_WORKERS=1 (over TLS with a fresh
# self-signed P-256 certificate for "tls"), driven by snow-ws-loadgen with
# LOADGEN-ARGS. Two ways to count:
#
# Whole life (default): snow-echo runs under strace -c -f or valgrind
#   --tool=callgrind from start to SIGTERM; a baseline run is subtracted,
#   so that start-up, teardown and (echo modes) connection set-up are not
#   counted: for handshake mode a server that only answers /stats, for the
#   others the same load generator command with 10 ms of echo. The unit is
#   a connection opened (handshake mode) or a message echoed (the others),
#   from /stats at the end of each run.
#
# --window: snow-echo on CPU 0 and the load generator on CPU 1 for SECS
#   seconds (strace 8, callgrind 25), counted in a window of the run only:
#   strace attached START seconds in (3) for 3 s, or callgrind's counters
#   zeroed START seconds in (12) and dumped 8 s later. The unit is a room
#   delivery or a message echoed, whichever /stats counted more of in the
#   window. For cells whose set-up is long (a 10,000-subscriber room:
#   START=9 SECS=14); LOADGEN-ARGS then leave out --seconds and --warmup.
#
# Prints the load generator's line, then the counts per unit: system calls
# by name (and how many failed) or user-space instructions. With
# VALGRIND_OPTS="--cache-sim=yes" (and e.g. --LL=1048576,16,64 for a 1 MiB
# last level), --window callgrind also prints the simulated cache misses
# per unit.
set -euo pipefail
window=0
if [ "${1:-}" = --window ]; then
    window=1
    shift
fi
build=$1
tool=$2
tls=0
case ${3:-} in
plain) shift ;;
tls) tls=1; shift ;;
esac
shift 2
case $tool in
strace | callgrind) ;;
*) echo "cost.sh: tool is strace or callgrind" >&2; exit 2 ;;
esac
mode=${1:-echo}
work=$(mktemp -d /tmp/snow-ws-cost.XXXXXX)
srv=
cleanup() {
    if [ -n "$srv" ]; then kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
targs=()
largs=()
if [ "$tls" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost 2>/dev/null
    targs=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    largs=(--tls --tls-ca "$work/cert.pem")
fi
echo_bin=$build/compiler-abi/examples/snow-echo
loadgen=$build/bench/ws/snow-ws-loadgen

# wait_port: the port snow-echo printed, or exit.
wait_port() {
    local port=
    for _ in $(seq 600); do
        port=$(awk '/^listening on/ {print $3; exit}' "$work/server.out")
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.05
    done
    echo "cost.sh: the server did not start" >&2
    exit 1
}

# stats PORT: the server's /stats (JSON), over the same transport.
stats() {
    python3 - "$1" "$tls" <<'PY'
import socket, ssl, sys
port, tls = int(sys.argv[1]), sys.argv[2] == "1"
s = socket.create_connection(("127.0.0.1", port))
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname="localhost")
s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b"\r\n\r\n", 1)[1].decode())
PY
}

# strace_per_unit UNITS RUN [BASELINE]: strace -c tables (the baseline's
# counts subtracted) per unit.
strace_per_unit() {
    awk -v u="$1" '
        FNR == 1 { f++ }
        $1 ~ /^[0-9.]+$/ && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" {
            s = (f == 1) ? 1 : -1
            n[$NF] += s * $4; e[$NF] += s * ((NF == 6) ? $5 : 0); tot += s * $4
            if ($NF != "futex" && $NF != "epoll_pwait2" && $NF != "epoll_wait") io += s * $4
        }
        END {
            printf "syscalls_per_unit=%.2f (without futex and epoll waits: %.2f)\n", tot / u, io / u
            for (k in n) if (n[k] / u >= 0.01) printf "  %-14s %6.3f per unit (%.3f of them failed)\n", k, n[k] / u, e[k] / u | "sort -k2 -nr"
        }' "${@:2}"
}

if [ "$window" = 1 ]; then
    # created before the background start, which opens it later (wait_port)
    : >"$work/server.out"
    case $tool in
    strace)
        secs=${SECS:-8} start=${START:-3} span=3
        taskset -c 0 env SNOW_WORKERS=1 "$echo_bin" --host 127.0.0.1 --port 0 "${targs[@]}" \
            >"$work/server.out" 2>&1 &
        ;;
    callgrind)
        secs=${SECS:-25} start=${START:-12} span=8
        taskset -c 0 env SNOW_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
            "$echo_bin" --host 127.0.0.1 --port 0 "${targs[@]}" >"$work/server.out" 2>"$work/vg.err" &
        ;;
    esac
    srv=$!
    port=$(wait_port)
    taskset -c 1 "$loadgen" "$@" "${largs[@]}" --seconds "$secs" --warmup 1 --port "$port" --server-pid "$srv" \
        >"$work/lg.out" 2>&1 &
    lg=$!
    sleep "$start"
    s0=$(stats "$port")
    if [ "$tool" = strace ]; then
        strace -c -f -p "$srv" -o "$work/counts" 2>/dev/null &
        sp=$!
        sleep "$span"
        kill -INT "$sp"
        wait "$sp" || true
    else
        callgrind_control -z "$srv" >/dev/null 2>&1
        sleep "$span"
        callgrind_control -d "$srv" >/dev/null 2>&1
    fi
    s1=$(stats "$port")
    wait "$lg" || true
    tail -1 "$work/lg.out"
    read -r units what < <(python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
d = b.get("room", {}).get("deliveries", 0) - a.get("room", {}).get("deliveries", 0)
m = b["msgs_in"] - a["msgs_in"]
print(*((d, "room deliveries") if d > m else (m, "messages echoed")))' "$s0" "$s1")
    [ "$units" -gt 0 ] || { echo "cost.sh: no work was done in the window" >&2; exit 1; }
    echo "units=$units ($what in the window)"
    if [ "$tool" = strace ]; then
        strace_per_unit "$units" "$work/counts"
    else
        dump=$(ls -t "$work"/cg.out.* | head -1)
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        awk -v t="$ir" -v u="$units" 'BEGIN {printf "instructions=%d instructions_per_unit=%.0f\n", t, t / u}'
        # With VALGRIND_OPTS=--cache-sim=yes the dump has the simulated
        # cache's events too (D1mr: first-level data read misses, DLmr:
        # last-level ones, ...): each per unit.
        awk -v u="$units" '/^events:/ {for (i = 2; i <= NF; i++) ev[i] = $i}
            /^(summary|totals):/ && !done {done = 1; for (i = 3; i <= NF; i++) printf "  %-5s %.2f per unit\n", ev[i], $i / u}' "$dump"
    fi
    exit 0
fi

# run_server OUT [LOADGEN ARGS...]: one server life under the tool; prints
# the /stats line. No loadgen args: the idle run.
run_server() {
    local out=$1
    shift
    : >"$work/server.out"
    case $tool in
    strace) SNOW_WORKERS=1 strace -c -f -o "$out" -- "$echo_bin" --host 127.0.0.1 --port 0 "${targs[@]}" \
        >"$work/server.out" 2>"$work/server.err" & ;;
    callgrind) SNOW_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$out" -- "$echo_bin" \
        --host 127.0.0.1 --port 0 "${targs[@]}" >"$work/server.out" 2>"$work/server.err" & ;;
    esac
    local tpid=$! port
    port=$(wait_port)
    if [ $# -gt 0 ]; then
        "$loadgen" "$@" "${largs[@]}" --port "$port" | tail -1 >&2
    fi
    stats "$port"
    # The server is strace's or valgrind's child.
    local spid
    spid=$(pgrep -P "$tpid" | head -1 || true)
    kill -TERM "${spid:-$tpid}"
    wait "$tpid" || true
}

units_of() {
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$key"
}
if [ "$mode" = handshake ]; then
    key=opened
    what="connection opened"
    base=()
else
    key=msgs_in
    what="message echoed"
    # The same connections echoing for 10 ms: its counts, subtracted,
    # take out connection set-up (for wss, the TLS handshakes) and teardown.
    base=("$@" --seconds 0.01 --warmup 0)
fi
stats=$(run_server "$work/run.out" "$@")
bstats=$(run_server "$work/base.out" "${base[@]}")
units=$(( $(units_of "$stats") - $(units_of "$bstats") ))
[ "$units" -gt 0 ] || { echo "cost.sh: no work was done" >&2; exit 1; }
echo "units=$units ($what; $(units_of "$stats") in the run, $(units_of "$bstats") in the baseline run)"
if [ "$tool" = strace ]; then
    strace_per_unit "$units" "$work/run.out" "$work/base.out"
else
    total=$(awk '/^totals:/ {print $2}' "$work/run.out")
    btotal=$(awk '/^totals:/ {print $2}' "$work/base.out")
    echo "instructions: run $total, baseline run $btotal"
    awk -v t="$total" -v b="$btotal" -v u="$units" 'BEGIN {printf "instructions_per_unit=%.0f\n", (t - b) / u}'
fi
