#!/usr/bin/env bash
# Smoke test of snow-ws-loadgen against snow-echo: correctness only (every
# handshake and payload checked by the load generator), never a timing.
#   smoke.sh LOADGEN SNOW_ECHO [plain|tls|both]
# Runs the smoke mode over plain TCP, and/or over TLS with a fresh
# self-signed P-256 certificate (default: both).
set -euo pipefail

loadgen=${1:?usage: smoke.sh LOADGEN SNOW_ECHO}
echo_bin=${2:?usage: smoke.sh LOADGEN SNOW_ECHO}
what=${3:-both}
dir=$(mktemp -d /tmp/snow-ws-smoke.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

# start NAME ARGS...: starts snow-echo on port 0; sets pid and port.
start() {
    local name=$1
    shift
    # The background job opens its redirections after this shell has moved
    # on: the files exist before the first look at them.
    : >"$dir/$name.out"
    : >"$dir/$name.err"
    "$echo_bin" --host 127.0.0.1 --port 0 "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    pid=$!
    port=
    for _ in $(seq 200); do
        port=$(awk '/^listening on/ {print $3; exit}' "$dir/$name.out")
        [ -n "$port" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "snow-echo ($name) did not start:" >&2
    cat "$dir/$name.err" >&2
    exit 1
}

stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
}

if [ "$what" != tls ]; then
    start plain
    "$loadgen" smoke --port "$port"
    stop
fi
[ "$what" = plain ] && exit 0

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null
start tls --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem"
"$loadgen" smoke --port "$port" --tls --tls-ca "$dir/cert.pem"
stop
