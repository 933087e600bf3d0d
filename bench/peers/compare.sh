#!/bin/sh
# compare.sh: the scheduler and allocation comparison. Builds snow-bench-sched
# and snow-bench-gc (release), the Erlang and Go peers, runs the same scenarios
# under all three runtimes on this machine in one go, prints every "bench" line
# and then a table with the median of each figure per runtime and the ratios
# snow-rt / peer.
#
#   bench/peers/compare.sh [--quick]
#
# Environment:
#   WORKERS    worker threads for every runtime (default 2): SNOW_WORKERS,
#              erl +S, GOMAXPROCS. The same-worker ping-pong uses one
#              scheduler in Erlang (+S 1) and GOMAXPROCS=1 in Go.
#   REPEAT     runs of each scenario per runtime (default 3), interleaved
#   TIMEOUT    seconds allowed for each run (default 300)
#   BUILD_DIR  meson build directory for the release build (default
#              build-release at the top of the source tree)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
quick=""
qarg=full
if [ "${1:-}" = "--quick" ]; then
    quick=--quick
    qarg=quick
elif [ $# -gt 0 ]; then
    echo "usage: $0 [--quick]" >&2
    exit 2
fi
workers=${WORKERS:-2}
repeat=${REPEAT:-3}
limit=${TIMEOUT:-300}
build=${BUILD_DIR:-$root/build-release}
work=$(mktemp -d "${TMPDIR:-/tmp}/snow-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

echo "compare.sh: building" >&2
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false >&2
fi
ninja -C "$build" -j2 bench/snow-bench-sched bench/snow-bench-gc >&2
snow=$build/bench/snow-bench-sched
snowgc=$build/bench/snow-bench-gc
erlc -o "$work" "$here/snowpeer.erl"
(cd "$here" && GO111MODULE=off go build -o "$work/gopeer" gopeer.go)

results=$work/results
: >"$results"
failures=0

# run RUNTIME COMMAND...: one timed run; its bench lines (tagged with the
# runtime) go to stdout and to the results file.
run() {
    rt=$1
    shift
    if out=$(timeout "$limit" "$@" 2>"$work/stderr"); then
        printf '%s\n' "$out" | grep '^bench ' | grep -v '^bench config ' |
            sed -e "/runtime=/!s/\$/ runtime=$rt/" | tee -a "$results"
    else
        rc=$?
        echo "compare.sh: FAILED ($rc): $*" >&2
        sed 's/^/  /' "$work/stderr" >&2
        failures=$((failures + 1))
    fi
}

scenarios="pingpong_same_worker pingpong_cross_worker pingpong_unpinned spawn ring gc_alloc"
i=1
while [ "$i" -le "$repeat" ]; do
    echo "compare.sh: round $i of $repeat" >&2
    for s in $scenarios; do
        case $s in
        pingpong_same_worker) sched=1 ;;
        *) sched=$workers ;;
        esac
        if [ "$s" = gc_alloc ]; then
            # One allocating actor / process / goroutine on one scheduler.
            sched=1
            run snow-rt env SNOW_WORKERS=1 "$snowgc" --only gc_alloc $quick
        else
            run snow-rt env SNOW_WORKERS="$workers" "$snow" --only "$s" $quick
        fi
        run erlang erl -noshell +S "$sched" -pa "$work" -run snowpeer main "$s" "$qarg"
        run go env GOMAXPROCS="$sched" "$work/gopeer" "$s" "$qarg"
    done
    i=$((i + 1))
done

echo
echo "median of $repeat runs; ratio = snow-rt / peer"
awk '
function median(fig, rt,    n, a, i, j, t) {
    n = cnt[fig, rt]
    if (n == 0)
        return ""
    for (i = 1; i <= n; i++)
        a[i] = val[fig, rt, i]
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(a, b) {
    return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.3f", a / b)
}
function show(x) {
    return x == "" ? "-" : sprintf("%.1f", x)
}
{
    rt = ""
    for (i = 3; i <= NF; i++)
        if ($i ~ /^runtime=/)
            rt = substr($i, 9)
    for (i = 3; i <= NF; i++) {
        split($i, kv, "=")
        fig = $2 " " kv[1]
        val[fig, rt, ++cnt[fig, rt]] = kv[2] + 0
    }
}
END {
    nf = split("pingpong_same_worker rtt_ns|pingpong_cross_worker rtt_ns|pingpong_unpinned rtt_ns|spawn actors_per_s|spawn peak_rss_kib|ring hops_per_s|gc_alloc allocs_per_s", figs, "|")
    split("lower|lower|lower|higher|lower|higher|higher", better, "|")
    printf "%-34s %-7s %14s %14s %14s %12s %12s  %s\n", "figure", "better", "snow-rt", "erlang", "go", "snow/erlang", "snow/go", "snow-rt ahead when"
    for (f = 1; f <= nf; f++) {
        s = median(figs[f], "snow-rt"); e = median(figs[f], "erlang"); g = median(figs[f], "go")
        printf "%-34s %-7s %14s %14s %14s %12s %12s  %s\n", figs[f], better[f], show(s), show(e), show(g),
            ratio(s, e), ratio(s, g), better[f] == "lower" ? "ratio < 1" : "ratio > 1"
    }
}' "$results"

if [ "$failures" -gt 0 ]; then
    echo "compare.sh: $failures run(s) failed" >&2
    exit 1
fi
