#!/usr/bin/env bash
# Before/after on the demo: a fresh `serve --demo` per run, `bench
# --duration 5`, alternating the two builds twice (A, B, A, B), so the
# machine's drift shows in both. Usage: docs/bench-ab.sh OLD_BINARY NEW_BINARY
set -euo pipefail
run() { # label binary port
    local dir; dir="$(mktemp -d)"
    XDG_DATA_HOME="$dir" "$2" serve --demo --listen "127.0.0.1:$3" --rate-limit-per-key 0 \
        > "$dir/serve.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 60); do
        XDG_DATA_HOME="$dir" "$2" context --server "http://127.0.0.1:$3" \
            --email maya.chen@example.com > /dev/null 2>&1 && break
        sleep 1
    done
    echo "## $1"
    XDG_DATA_HOME="$dir" "$2" bench --server "http://127.0.0.1:$3" --duration 5 | grep '^|'
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
}
run before "$1" 50091
run after "$2" 50092
run before "$1" 50093
run after "$2" 50094
