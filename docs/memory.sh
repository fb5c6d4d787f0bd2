#!/usr/bin/env bash
# What a replica keeps of the customers it read, against its resident
# memory: start a server on DATABASE_URL, wait for its catalogue warm-up,
# read VmRSS, read N customers once each (`bench --cold`), then print the
# replica-memory lines of /metrics and VmRSS again. More arguments go to
# `serve` (for example --customer-memory-mb 50).
#
#   docs/memory.sh DATABASE_URL N [serve arguments...]
#
# CC_BIN is the server's binary, CC_CLIENT the benchmark's (both default to
# ./target/release/customer-context).
set -euo pipefail
db="$1"; n="$2"; shift 2
port="${PORT:-50077}"
bin="${CC_BIN:-./target/release/customer-context}"
client="${CC_CLIENT:-./target/release/customer-context}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=""
key=$("$client" keys create --role admin --name memory-bench --database-url "$db" 2>/dev/null)
"$bin" --log-format json serve --database-url "$db" --listen "127.0.0.1:$port" \
    --rate-limit-per-key 0 --model-rebuild-hours 0 "$@" > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q 'most bought products read' "$work/serve.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
sleep 1
before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
"$client" bench --cold --server "http://127.0.0.1:$port" --api-key "$key" --database-url "$db" \
    --random "$n" --connections 4 --concurrency 16 --duration 10 --warmup 1 --server-pid "$pid" \
    | grep -E 'first read|customers read'
after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^cc_replica_memory'
echo "resident memory: $((before / 1024)) MiB before the reads, $((after / 1024)) MiB after"
