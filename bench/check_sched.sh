#!/bin/sh
# Smoke check for snow-bench-sched: runs it with --quick and checks that every
# required figure is printed with numeric values. It asserts that the program
# works, never how fast it is.
set -u
exe=${1:?usage: check_sched.sh path/to/snow-bench-sched}
out=$("$exe" --quick) || { echo "snow-bench-sched --quick exited with $?"; printf '%s\n' "$out"; exit 1; }
printf '%s\n' "$out"
num='[0-9]+(\.[0-9]+)?'
status=0
while read -r name keys; do
    line=$(printf '%s\n' "$out" | grep -E "^bench $name( |\$)") || {
        echo "missing: bench $name"; status=1; continue; }
    for k in $keys; do
        printf '%s\n' "$line" | grep -Eq " $k=-?$num( |\$)" || {
            echo "bench $name: no numeric $k="; status=1; }
    done
done <<'LIST'
context_switch ns
yield ns
pingpong_same_worker rtt_ns
pingpong_cross_worker rtt_ns
pingpong_unpinned rtt_ns
spawn actors_per_s peak_rss_kib
parked actors rss_per_actor_kib cpu_pct
hibernated actors rss_per_actor_kib
timers fires_per_s late_p99_us
ring hops_per_s
timer_lateness_busy late_p99_us
selective_receive queued ns_per_call
LIST
exit $status
