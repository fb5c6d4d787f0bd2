#!/usr/bin/env bash
# The benchmark at one scale on one backend: generate the shop (unless the
# database already has it), start the server and read its start-up time,
# run `bench --history` (every call beside the health Check, plus contexts
# of 10-, 1,000- and 100,000-event customers) and `bench --ingest`, and
# print the server's peak resident memory after each.
#
#   docs/scale.sh CUSTOMERS DATABASE_URL [PORT]
#
# The shop: CUSTOMERS customers, CUSTOMERS/10 products (at least 10,000),
# 20 x CUSTOMERS browsing events. Example:
#   docs/scale.sh 1000000 "sqlite:///tmp/scale/sq1m/cc.db?mode=rwc"
#   docs/scale.sh 1000000 postgres://postgres@127.0.0.1:5432/cc_1m
set -euo pipefail
customers="$1"; db="$2"; port="${3:-50071}"
bin="${CC_BIN:-./target/release/customer-context}"
products=$(( customers / 10 > 10000 ? customers / 10 : 10000 ))
events=$(( customers * 20 ))
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=""

echo "## $customers customers, $products products, $events events on ${db%%:*}"
if [ "${SKIP_GENERATE:-}" != 1 ]; then
    start=$(date +%s%N)
    "$bin" generate --database-url "$db" --customers "$customers" --products "$products" \
        --events "$events" 2>&1 | grep -v ' of .* customers'
    echo "generate: $(( ($(date +%s%N) - start) / 1000000 )) ms"
fi
key=$("$bin" keys create --role admin --name scale-bench --database-url "$db" 2>/dev/null)

"$bin" --log-format json serve --database-url "$db" --listen "127.0.0.1:$port" \
    --rate-limit-per-key 0 --model-rebuild-hours 0 > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q startup_ms "$work/serve.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
echo "start to serving: $(grep -o '"startup_ms":[0-9]*' "$work/serve.log" | cut -d: -f2) ms"

common=(--server "http://127.0.0.1:$port" --api-key "$key" --database-url "$db" --server-pid "$pid")
"$bin" bench "${common[@]}" --history --duration "${DURATION:-10}"
"$bin" bench "${common[@]}" --ingest --duration "${DURATION:-10}" --connections 4
