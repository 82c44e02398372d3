#!/usr/bin/env bash
# How long `prioritize serve` takes, on a fresh database, from start until
# `/readyz` answers 200 on a book of ACCOUNTS (the plan built, stored and its
# queues in memory), with the stages from serve's own log: planning, the
# calibration worked out beside the storing, the storing, the switch, and
# the rest (start-up, queues in memory). One line per run.
#
#   benches/ready.sh [ACCOUNTS] [RUNS] [STORE]
#
# STORE is `postgres` (default; PRIORITIZE_BENCH_POSTGRES_URL, default
# postgres://postgres@127.0.0.1:5432/prioritize_ready, dropped and created
# before each run) or `sqlite`.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${1:-1000000}"
RUNS="${2:-1}"
STORE="${3:-postgres}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prioritize-release}"
BIN="${PRIORITIZE_BIN:-$CARGO_TARGET_DIR/release/prioritize}"
[ -n "${PRIORITIZE_BIN:-}" ] || cargo build --release --bin prioritize -q
DIR="${BENCH_DIR:-/tmp/prioritize-bench-ready}"
PG="${PRIORITIZE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/prioritize_ready}"
mkdir -p "$DIR"
DATA="$DIR/data.$ACCOUNTS"
if [ ! -f "$DATA/accounts.parquet" ] && [ ! -f "$DATA/accounts.csv" ]; then
  "$BIN" simulate --accounts "$ACCOUNTS" --seed 7 --out "$DATA" > /dev/null
fi
KEY="bench-admin-$(date +%s%N)"
printf '[[api_keys]]\nrole = "admin"\nkey_sha256 = "%s"\n' "$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)" \
  > "$DIR/serve.toml"
port=18190
field() { # LOG MESSAGE FIELD: the field's value on the log line of MESSAGE
  grep -a "$2" "$1" | tail -1 | sed -n "s/.*$3=\([0-9.]*\).*/\1/p"
}
for run in $(seq "$RUNS"); do
  if [ "$STORE" = postgres ]; then
    PGOPTIONS="-c client_min_messages=warning" psql "${PG%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${PG##*/} WITH (FORCE)" > /dev/null
    psql "${PG%/*}/postgres" -qc "CREATE DATABASE ${PG##*/}" > /dev/null
    url="$PG"
  else
    rm -f "$DIR"/ready.db*
    url="sqlite://$DIR/ready.db"
  fi
  log="$DIR/serve.$STORE.$run.log"
  started=$(date +%s.%N)
  RUST_LOG=info,sqlx=error NO_COLOR=1 "$BIN" serve --data "$DATA" --model models/default \
      --as-of 2026-09-30 --config "$DIR/serve.toml" --db "$url" --listen "127.0.0.1:$port" \
      > "$log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
  done
  ready=$(echo "$(date +%s.%N) - $started" | bc)
  kill -TERM "$pid"; wait "$pid" || true
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  planning=$(field "$log" 'plan installed' planning_seconds)
  storing=$(field "$log" 'plan installed' storing_seconds)
  printf '%s, %s accounts, run %s: ready after %.1f s: planning %.1f s, storing %.1f s (calibration %.1f s beside it, the switch %.1f s), start-up and queues in memory %.1f s\n' \
    "$STORE" "$ACCOUNTS" "$run" "$ready" "$planning" "$storing" \
    "$(field "$log" 'calibration worked out' seconds)" \
    "$(field "$log" 'plan activated' switch_seconds)" \
    "$(echo "$ready - $planning - $storing" | bc)"
done
