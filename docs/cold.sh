#!/usr/bin/env bash
# The cold-read benchmark on one database: start a server for the run (so
# no customer is remembered), wait for its catalogue warm-up, read each of
# N customers exactly once with `bench --cold` (1 call in flight, then
# saturated, beside Check), print what the replica keeps in memory
# (`cc_replica_memory_*` of /metrics) and its resident memory before and
# after the reads, stop.
#
#   docs/cold.sh DATABASE_URL [CUSTOMERS] [CONCURRENCY]
#
# CC_BIN is the server's binary, CC_CLIENT the benchmark's (both default to
# ./target/release/customer-context); CC_SERVE_ARGS, more `serve` arguments
# (for example "--customer-memory-mb 50"). To compare two builds on the
# same data, point CC_BIN at each in turn and keep one client. Example:
#   docs/cold.sh "sqlite:///tmp/cj/cj.db" 1500
#   CC_BIN=/tmp/cc-before docs/cold.sh postgres://postgres@127.0.0.1:5432/cc_cj 1500
set -euo pipefail
db="$1"; customers="${2:-1500}"; concurrency="${3:-16}"; port="${PORT:-50073}"
bin="${CC_BIN:-./target/release/customer-context}"
client="${CC_CLIENT:-./target/release/customer-context}"
read -r -a serve_args <<< "${CC_SERVE_ARGS:-}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=""
key=$("$client" keys create --role admin --name cold-bench --database-url "$db" 2>/dev/null)
"$bin" --log-format json serve --database-url "$db" --listen "127.0.0.1:$port" \
    --rate-limit-per-key 0 --model-rebuild-hours 0 "${serve_args[@]}" > "$work/serve.log" 2>&1 &
pid=$!
# The warm-up logs one line when done (or failed), after the server serves.
for _ in $(seq 1 600); do
    grep -q 'most bought products' "$work/serve.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
rss() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status"; }
before=$(rss)
"$client" bench --cold --server "http://127.0.0.1:$port" --api-key "$key" --database-url "$db" \
    --random "$customers" --connections 4 --concurrency "$concurrency" --duration 10 --warmup 1 \
    --server-pid "$pid"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^cc_replica_memory' || true
echo "server resident memory: $before MiB before the reads, $(rss) MiB after"
