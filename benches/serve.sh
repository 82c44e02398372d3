#!/usr/bin/env bash
# HTTP load on `prioritize serve`, on SQLite and on PostgreSQL: requests per
# second and p50/p99 latency for worklist pages of 50, leases and durable
# actions. The load generator (benches/serve_load.rs) runs on the same
# machine as the server, so both share its cores.
#
#   benches/serve.sh [ACCOUNTS] [SECONDS] [CONNECTIONS]
#
# PostgreSQL is taken from PRIORITIZE_BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/prioritize_bench, created if missing);
# set it to "none" to skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${1:-100000}"
SECONDS_EACH="${2:-10}"
CONNECTIONS="${3:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prioritize-release}"
BIN="${PRIORITIZE_BIN:-$CARGO_TARGET_DIR/release/prioritize}"
DIR="${BENCH_DIR:-/tmp/prioritize-bench-serve}"
PG="${PRIORITIZE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/prioritize_bench}"
cargo build --release --bin prioritize --bench serve_load -q 2>/dev/null || cargo build --release --bin prioritize
LOAD=$(ls -t "$CARGO_TARGET_DIR"/release/deps/serve_load-* | grep -v '\.d$' | head -1)

mkdir -p "$DIR"
if [ ! -f "$DIR/data.$ACCOUNTS/accounts.parquet" ] && [ ! -f "$DIR/data.$ACCOUNTS/accounts.csv" ]; then
  "$BIN" simulate --accounts "$ACCOUNTS" --seed 7 --out "$DIR/data.$ACCOUNTS" > /dev/null
fi
KEY="bench-admin-$(date +%s%N)"
HASH=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
cat > "$DIR/serve.toml" <<TOML
[[api_keys]]
role = "admin"
key_sha256 = "$HASH"
TOML

run_store() { # NAME URL
  local name="$1" url="$2" port=18180
  "$BIN" serve --data "$DIR/data.$ACCOUNTS" --model models/default --as-of 2026-09-30 \
      --config "$DIR/serve.toml" --db "$url" --listen "127.0.0.1:$port" > "$DIR/serve.$name.log" 2>&1 &
  local pid=$!
  local started=$(date +%s.%N)
  until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$DIR/serve.$name.log"; exit 1; }
    sleep 0.2
  done
  printf '%s: ready after %.1f s (plan of %s accounts built and stored)\n' "$name" \
      "$(echo "$(date +%s.%N) - $started" | bc)" "$ACCOUNTS"
  for scenario in pages leases actions; do
    printf '  %s ' "$name"
    "$LOAD" --base "http://127.0.0.1:$port" --key "$KEY" --scenario "$scenario" \
        --seconds "$SECONDS_EACH" --concurrency "$CONNECTIONS"
  done
  kill -TERM "$pid"; wait "$pid" || true
}

rm -f "$DIR"/bench.db*
run_store sqlite "sqlite://$DIR/bench.db"
if [ "$PG" != "none" ]; then
  psql "${PG%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${PG##*/} WITH (FORCE)" > /dev/null
  psql "${PG%/*}/postgres" -qc "CREATE DATABASE ${PG##*/}" > /dev/null
  run_store postgres "$PG"
fi
