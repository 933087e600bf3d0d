#!/usr/bin/env bash
# WebSocket servers side by side: snow-rt (snow-echo) against Bun (uWebSockets),
# libwebsockets, Node ws (+bufferutil) and Go gorilla/websocket, same machine,
# same run. One command:
#
#   bench/ws/run.sh [BUILD_DIR]        (default: build-release, made here)
#
# Each server runs alone pinned to CPU 0 (snow-rt with SNOW_WORKERS=1; the
# others are single-threaded or, for Go, GOMAXPROCS follows the affinity
# mask: 1), started fresh for every cell; the load generator runs pinned to
# CPU 1. Cells are interleaved: every repetition runs every cell on every
# server, the server order rotated from one repetition to the next. The
# report takes medians over the repetitions.
#
# Environment:
#   REPEAT=3          repetitions
#   QUICK=1           short run: 2 s cells, 2,000 idle connections, 2,000 fanout
#                     subscribers instead of 10,000; results named <date>-quick
#   SERVERS="snow-rt bun lws node-ws gorilla"   servers to run
#   CELLS="..."       cells to run (names as in the table below; default all)
#   SECS=10           measured seconds per throughput cell (after 1 s of warm-up)
#   NOTE="..."        a line written at the top of the report (e.g. the load)
#   RESULTS=bench/results   where <date>.md, .csv and the PNG plots go
#   STAMP=<date>      the name of those files instead of the date
#   PEERS_DIR=bench/ws/peers   where node_modules/ is installed (git-ignored)
#   STEAL_MAX=5       a timed run during which the host took more than this
#                     share (%) of either CPU's time (steal, /proc/stat) is
#                     not clean: it is run again, with a fresh server, up to
#   STEAL_RETRIES=2   times; the runs set aside stay in the report's raw list
#
# Writes RESULTS/<date>.md (tables of medians, ratios to the best peer, the
# exact command of every cell), RESULTS/<date>.csv (every run, one column per
# key), RESULTS/<date>.tsv (every run's raw result line, report.py's input),
# RESULTS/<date>-*.png (gnuplot), and prints every bench line as it goes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-release}
repeat=${REPEAT:-3}
quick=${QUICK:-0}
servers=${SERVERS:-snow-rt bun lws node-ws gorilla}
results=${RESULTS:-$root/bench/results}
peers_dir=${PEERS_DIR:-$here/peers}
stamp=${STAMP:-$(date -u +%Y-%m-%d)}
[ "$quick" = 1 ] && [ -z "${STAMP:-}" ] && stamp="$stamp-quick"

# The per-process open-file limit here is 20,000 (hard): 19,900 idle
# connections leave room for the listener, epoll and the rest.
idle_conns=19900
subs_big=10000
secs=${SECS:-10}
warm=1
if [ "$quick" = 1 ]; then
    idle_conns=2000
    subs_big=2000
    secs=${SECS:-2}
    warm=0.5
fi

# name | mode and options | servers it runs on (all, or a list)
cells=(
    "echo_64B_x100_d1|echo --path /echo --conns 100 --size 64 --depth 1|all"
    "echo_64B_x100_d16|echo --path /echo --conns 100 --size 64 --depth 16|all"
    "echo_16KiB_x10_d4|echo --path /echo --conns 10 --size 16384 --depth 4|all"
    "echo_1MiB_x2_d1|echo --path /echo --conns 2 --size 1048576 --depth 1|all"
    "handshake_c32|handshake --path /echo --concurrency 32|all"
    "fanout_1000_d1|fanout --path /broadcast --subscribers 1000 --depth 1 --size 64|all"
    "fanout_1000_d8|fanout --path /broadcast --subscribers 1000 --depth 8 --size 64|all"
    "fanout_${subs_big}_d1|fanout --path /broadcast --subscribers $subs_big --depth 1 --size 64|all"
    "fanout_${subs_big}_d8|fanout --path /broadcast --subscribers $subs_big --depth 8 --size 64|all"
    "idle_${idle_conns}|idle --path /echo --conns $idle_conns --batch 500 --hold 5|all"
    "wss_echo_64B_x100_d1|echo --path /echo --conns 100 --size 64 --depth 1 --tls|snow-rt bun"
    "wss_echo_64B_x100_d16|echo --path /echo --conns 100 --size 64 --depth 16 --tls|snow-rt bun"
    "wss_echo_16KiB_x10_d4|echo --path /echo --conns 10 --size 16384 --depth 4 --tls|snow-rt bun"
    "wss_echo_1MiB_x2_d1|echo --path /echo --conns 2 --size 1048576 --depth 1 --tls|snow-rt bun"
)

work=$(mktemp -d /tmp/snow-ws-bench.XXXXXX)
srv_pid=
cleanup() {
    stop_server
    rm -rf "$work"
}
stop_server() {
    if [ -n "$srv_pid" ]; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
        srv_pid=
    fi
}
trap cleanup EXIT
say() { echo "run.sh: $*" >&2; }

# --- Debian packages: the build's, and the peers' (libwebsockets-dev, Go
# with gorilla/websocket, gnuplot-nox for the plots), installed by the
# project's setup script when run as root on a machine that lacks them
# (SNOW_SETUP_BENCH=1 adds the benchmark packages to its list).
if [ "$(id -u)" = 0 ]; then
    SNOW_SETUP_BENCH=1 "$root/scripts/setup.sh" >&2
fi
if ! command -v gnuplot >/dev/null; then
    say "gnuplot is missing (run as root, or apt-get install gnuplot-nox); plots will be skipped"
fi

# --- snow-rt: a release build with snow-echo and the load generator
if [ ! -f "$build/build.ninja" ]; then
    say "configuring a release build in $build"
    meson setup "$build" "$root" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" -j2 bench/ws/snow-ws-loadgen >/dev/null
loadgen="$build/bench/ws/snow-ws-loadgen"
snow_echo="$build/compiler-abi/examples/snow-echo"
if ninja -C "$build" -j2 compiler-abi/examples/snow-echo >/dev/null 2>&1 && [ -x "$snow_echo" ]; then
    :
else
    say "no snow-echo target in $build: snow-rt is left out of this run"
    servers=$(echo "$servers" | sed 's/snow-rt//')
fi

# --- peers, built or installed outside the tracked tree
need() { [[ " $servers " == *" $1 "* ]]; }
if need bun || need node-ws; then
    if [ ! -d "$peers_dir/node_modules/ws" ] || [ ! -d "$peers_dir/node_modules/bun" ] ||
        [ ! -d "$peers_dir/node_modules/bufferutil" ]; then
        say "installing bun, ws and bufferutil with npm into $peers_dir/node_modules"
        (cd "$peers_dir" && npm ci --no-audit --no-fund >/dev/null)
    fi
fi
bun_bin=
if need bun; then
    for b in "$peers_dir/node_modules/bun/bin/bun.exe" "$peers_dir"/node_modules/@oven/bun-linux-x64*/bin/bun; do
        if [ -x "$b" ] && "$b" --version >/dev/null 2>&1; then bun_bin=$b; break; fi
    done
    [ -n "$bun_bin" ] || { say "no runnable bun binary under $peers_dir/node_modules"; exit 1; }
fi
if need lws && ! pkg-config --exists libwebsockets; then
    say "libwebsockets-dev is missing (run as root, or leave lws out of SERVERS)"
    exit 1
fi
if need gorilla && { ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]; }; then
    say "Go or golang-github-gorilla-websocket-dev is missing (run as root, or leave gorilla out of SERVERS)"
    exit 1
fi
if need lws; then
    gcc -O2 -o "$work/lws-server" "$peers_dir/lws-server.c" $(pkg-config --cflags --libs libwebsockets)
fi
if need gorilla; then
    (cd "$peers_dir/gorilla" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" \
        GOFLAGS= go build -o "$work/gorilla-server" main.go)
fi

# A fresh self-signed P-256 certificate for the wss cells.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null

# server_cmd NAME TLS: the command line that starts server NAME.
server_cmd() {
    local tls=()
    [ "$2" = 1 ] && tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
    case $1 in
    snow-rt) echo "env SNOW_WORKERS=1 $snow_echo --host 127.0.0.1 --port 0 ${tls[*]}" ;;
    bun) echo "$bun_bin $peers_dir/bun-server.js --host 127.0.0.1 --port 0 ${tls[*]}" ;;
    node-ws) echo "node $peers_dir/node-ws.js --host 127.0.0.1 --port 0" ;;
    lws) echo "$work/lws-server --host 127.0.0.1 --port 0" ;;
    gorilla) echo "$work/gorilla-server --host 127.0.0.1 --port 0" ;;
    esac
}

# start_server NAME TLS: starts it on CPU 0; sets srv_pid and srv_port.
start_server() {
    local cmd
    cmd=$(server_cmd "$1" "$2")
    # Emptied here, not by the background redirection, which may run after
    # the first look for the port and leave the last server's line visible.
    : >"$work/server.out"
    # shellcheck disable=SC2086
    taskset -c 0 $cmd >"$work/server.out" 2>"$work/server.err" &
    srv_pid=$!
    srv_port=
    for _ in $(seq 200); do
        srv_port=$(awk '/^listening on/ {print $3; exit}' "$work/server.out")
        [ -n "$srv_port" ] && break
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$srv_port" ]; then
        say "$1 did not start: $(tail -3 "$work/server.err")"
        srv_pid=
        return 1
    fi
    # env(1) execs the server, so $! is the server's own pid.
}

# A virtual machine's CPUs are shared with the host's other guests: the
# time the host gave elsewhere shows as steal in /proc/stat, and a run that
# lost some of it measured the host, not the servers. cpu_times prints the
# total and stolen ticks of CPUs 0 and 1; steal_pct BEFORE AFTER the larger
# of the two CPUs' stolen share of the ticks in between.
steal_max=${STEAL_MAX:-5}
steal_retries=${STEAL_RETRIES:-2}
cpu_times() {
    awk '/^cpu[01] / {t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", t, $9}' /proc/stat
}
steal_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x); split(b, y); m = 0
        for (i = 1; i <= 3; i += 2) {
            t = y[i] - x[i]; s = y[i + 1] - x[i + 1]
            if (t > 0 && s * 100 / t > m) m = s * 100 / t
        }
        printf "%.1f", m
    }'
}
above() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a > b)}'; }

raw="$work/raw.txt"
: >"$raw"
runs_csv="$work/runs.tsv"
printf 'rep\tcell\tserver\tstatus\tload1\tcommand\tline\n' >"$runs_csv"
read -ra server_list <<<"$servers"
nsrv=${#server_list[@]}
say "servers: ${server_list[*]}; repetitions: $repeat; quick=$quick; idle connections: $idle_conns (per-process fd limit here: 20,000)"

for rep in $(seq "$repeat"); do
    for cell in "${cells[@]}"; do
        IFS='|' read -r name opts only <<<"$cell"
        [ -n "${CELLS:-}" ] && [[ " $CELLS " != *" $name "* ]] && continue
        for k in $(seq 0 $((nsrv - 1))); do
            srv=${server_list[$(((k + rep - 1) % nsrv))]}
            [ "$only" != all ] && [[ " $only " != *" $srv "* ]] && continue
            tls=0
            extra=()
            if [[ "$opts" == *--tls* ]]; then
                tls=1
                extra=(--tls-ca "$work/cert.pem")
            fi
            retries=$steal_retries
            case $opts in
            idle*) timing=() retries=0 ;; # memory: the host's share does not change it
            *) timing=(--seconds "$secs" --warmup "$warm") ;;
            esac
            for attempt in $(seq 0 "$retries"); do
                start_server "$srv" "$tls" || {
                    printf '%s\t%s\t%s\tfail\t\t\tserver did not start\n' "$rep" "$name" "$srv" >>"$runs_csv"
                    break
                }
                # shellcheck disable=SC2206
                args=($opts "${extra[@]}" "${timing[@]}" --port "$srv_port" --server-pid "$srv_pid")
                cmdline="taskset -c 1 snow-ws-loadgen ${args[*]}"
                cmdline=${cmdline//"$work"\//}
                load1=$(cut -d' ' -f1 /proc/loadavg)
                before=$(cpu_times)
                if line=$(taskset -c 1 timeout 600 "$loadgen" "${args[@]}" --label "server=$srv cell=$name rep=$rep" \
                    2>"$work/loadgen.err" | tail -1) && [ -n "$line" ]; then
                    status=ok
                else
                    status=fail
                    line=${line:-$(tail -1 "$work/loadgen.err")}
                fi
                steal=$(steal_pct "$before" "$(cpu_times)")
                stop_server
                [ "$status" = ok ] && line="$line steal_pct=$steal"
                if [ "$status" = ok ] && [ "$attempt" -lt "$retries" ] && above "$steal" "$steal_max"; then
                    status=stolen
                    say "$name on $srv: the host took $steal % of a CPU's time (STEAL_MAX=$steal_max); again"
                fi
                echo "$line"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "$srv" "$status" "$load1" "$cmdline" "$line" >>"$runs_csv"
                [ "$status" = stolen ] || break
            done
        done
    done
done

mkdir -p "$results"
machine="$(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)"
commit=$(git -C "$root" log -1 --format='%h %s' 2>/dev/null || echo unknown)
cp "$runs_csv" "$results/$stamp.tsv"
python3 "$here/report.py" --runs "$runs_csv" --out "$results/$stamp" --machine "$machine" \
    --commit "$commit" --note "${NOTE:-}" --repeat "$repeat" --quick "$quick" --steal-max "$steal_max" --steal-retries "$steal_retries" \
    --servers "${server_list[*]}"
say "wrote $results/$stamp.md, $results/$stamp.csv and plots"
