#!/usr/bin/env bash
# System calls and instructions per unit of work in snow-echo, measures
# that do not depend on the machine's load (bench/README.md, "Cost per
# upgrade and per wss message").
#
#   bench/ws/cost.sh BUILD_DIR strace|callgrind [plain|tls] LOADGEN-ARGS...
#
# Starts BUILD_DIR's snow-echo (SNOW_WORKERS=1) under strace -c -f or
# valgrind --tool=callgrind, runs snow-ws-loadgen with LOADGEN-ARGS against
# it (over TLS with a fresh self-signed P-256 certificate for "tls"), reads
# the server's /stats, stops it with SIGTERM and prints, per connection
# opened (handshake mode) or per message echoed (every other mode), the
# system calls by name or the instructions. A baseline run is subtracted,
# so that start-up, teardown and (echo modes) connection set-up are not
# counted: for handshake mode a server that only answers /stats, for the
# others the same load generator command with 10 ms of echo.
set -euo pipefail
build=$1
tool=$2
tls=0
case ${3:-} in
plain) shift ;;
tls) tls=1; shift ;;
esac
shift 2
mode=${1:-echo}
work=$(mktemp -d /tmp/snow-ws-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
    *) echo "cost.sh: tool is strace or callgrind" >&2; exit 2 ;;
    esac
    local tpid=$! port=
    for _ in $(seq 600); do
        port=$(awk '/^listening on/ {print $3; exit}' "$work/server.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "cost.sh: the server did not start" >&2; exit 1; }
    if [ $# -gt 0 ]; then
        "$loadgen" "$@" "${largs[@]}" --port "$port" | tail -1 >&2
    fi
    # The server's /stats, over the same transport.
    python3 - "$port" "$tls" <<'PY'
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
    awk -v u="$units" '
        FNR == 1 { f++ }
        $1 ~ /^[0-9.]+$/ && $NF ~ /^[a-z_0-9]+$/ && $NF != "total" {
            s = (f == 1) ? 1 : -1
            n[$NF] += s * $4; e[$NF] += s * ((NF == 6) ? $5 : 0); tot += s * $4
            if ($NF != "futex" && $NF != "epoll_pwait2" && $NF != "epoll_wait") io += s * $4
        }
        END {
            printf "syscalls_per_unit=%.2f (without futex and epoll waits: %.2f)\n", tot / u, io / u
            for (k in n) if (n[k] / u >= 0.01) printf "  %-14s %6.2f per unit (%.2f of them failed)\n", k, n[k] / u, e[k] / u | "sort -k2 -nr"
        }' "$work/run.out" "$work/base.out"
else
    total=$(awk '/^totals:/ {print $2}' "$work/run.out")
    btotal=$(awk '/^totals:/ {print $2}' "$work/base.out")
    echo "instructions: run $total, baseline run $btotal"
    awk -v t="$total" -v b="$btotal" -v u="$units" 'BEGIN {printf "instructions_per_unit=%.0f\n", (t - b) / u}'
fi
