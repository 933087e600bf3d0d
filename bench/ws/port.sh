# Sourced by the bench/ws scripts. wait_port FILE prints the port of the
# server whose output goes to FILE, once it has printed "listening on PORT"
# (up to 10 s); it fails when none came.
wait_port() {
    local p
    for _ in $(seq 200); do
        p=$(awk '/^listening on/ {print $3; exit}' "$1")
        if [ -n "$p" ]; then
            echo "$p"
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# split_cmd ARGS...: the words up to "--" go to srv_cmd (the server's
# command), the rest to largs (the load generator's arguments; by default
# 64 B echoes on 100 connections at depth 1).
split_cmd() {
    srv_cmd=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        srv_cmd+=("$1")
        shift
    done
    [ "${1:-}" = -- ] && shift
    largs=("$@")
    [ ${#largs[@]} -gt 0 ] || largs=(--path /echo --conns 100 --size 64 --depth 1)
}
