#!/usr/bin/env bash
# HTTP hello-world throughput: snow-hello against nginx, same run, same box.
#
#   bench/http/run.sh BUILD_DIR        (use a -Dbuildtype=release build)
#
# Both servers run one worker pinned to CPU 0 (snow-hello: SNOW_WORKERS=1;
# nginx: worker_processes 1, no master) and serve a 13-byte text/plain body;
# wrk runs on CPU 1 with keep-alive connections. Prints:
#   bench http_hello server=snow-rt rps=X
#   bench http_hello server=nginx rps=Y
#   bench http_hello ratio=Z            (X / Y)
# Environment: BENCH_SECONDS (10), BENCH_CONNS (64), BENCH_ROUNDS (3: best of).
set -euo pipefail

build=${1:?usage: run.sh BUILD_DIR}
hello="$build/compiler-abi/examples/snow-hello"
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-64}
rounds=${BENCH_ROUNDS:-3}
[ -x "$hello" ] || { echo "no snow-hello in $build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

dir=$(mktemp -d /tmp/snow-bench-http.XXXXXX)
snow_pid=
nginx_pid=
cleanup() {
    [ -n "$snow_pid" ] && kill "$snow_pid" 2>/dev/null && wait "$snow_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Requests/sec of one wrk run against $1.
rps() {
    taskset -c 1 wrk -t1 -c"$conns" -d"${2}s" "$1" | awk '/^Requests\/sec:/ {print $2}'
}

# --- snow-hello
SNOW_WORKERS=1 taskset -c 0 "$hello" --host 127.0.0.1 --port 0 >"$dir/snow.out" 2>"$dir/snow.err" &
snow_pid=$!
for _ in $(seq 100); do grep -q '^listening on' "$dir/snow.out" && break; sleep 0.05; done
snow_port=$(awk '/^listening on/ {print $3}' "$dir/snow.out")
[ -n "$snow_port" ] || { echo "snow-hello did not start" >&2; cat "$dir/snow.err" >&2; exit 1; }
body=$(curl -s "http://127.0.0.1:$snow_port/")
[ "$body" = "Hello, World!" ] || { echo "snow-hello answered '$body'" >&2; exit 1; }

# --- nginx: the same 13-byte body, one worker process, no logging.
nginx_port=$(free_port)
mkdir -p "$dir/nginx"
cat >"$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
CONF
taskset -c 0 "$nginx_bin" -p "$dir/nginx" -e "$dir/nginx/error.log" -c "$dir/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$nginx_port/" >/dev/null && break; sleep 0.05; done
body=$(curl -s "http://127.0.0.1:$nginx_port/")
[ "$body" = "Hello, World!" ] || { echo "nginx answered '$body'" >&2; exit 1; }

# Rounds alternate between the two servers so that a noisy neighbour on the
# machine hurts both alike; the best round of each counts.
rps "http://127.0.0.1:$snow_port/" 2 >/dev/null
rps "http://127.0.0.1:$nginx_port/" 2 >/dev/null
snow_rps=0
nginx_rps=0
for _ in $(seq "$rounds"); do
    r=$(rps "http://127.0.0.1:$snow_port/" "$secs")
    snow_rps=$(python3 -c "print(max($snow_rps, ${r:-0}))")
    r=$(rps "http://127.0.0.1:$nginx_port/" "$secs")
    nginx_rps=$(python3 -c "print(max($nginx_rps, ${r:-0}))")
done

echo "bench http_hello server=snow-rt rps=$snow_rps"
echo "bench http_hello server=nginx rps=$nginx_rps"
python3 -c "print('bench http_hello ratio=%.3f' % ($snow_rps / $nginx_rps if $nginx_rps else 0))"
