# Sourced by the bench/ws scripts: wait_port FILE prints the port of the
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
