#!/usr/bin/env bash
# The strategy engine, end to end: `plan` time on a book of ACCOUNTS (load,
# features, rules, scoring every strategy, allocation, writing), and the
# headline — what the plan is truly worth against the staged rules baseline
# and the oracle — from `evaluate-policy --truth` on the same book, which the
# model (models/default, trained on another simulated book) has never seen.
#   benches/plan.sh [ACCOUNTS] [MODEL_DIR]   (defaults 1,000,000 and models/default)
# Capacities bind: the demo's, scaled to the book (see `capacities` in src/cmd/demo.rs).
# Needs a release build (cargo build --release). PLAN_RUNS (3) sets how many
# times plan runs. Stage times come from the plan's own log.
set -euo pipefail
accounts=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
model=${2:-$root/models/default}
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-plan}
mkdir -p "$work"
data="$work/data-$accounts"
truth="$work/truth-$accounts.parquet"
[ -d "$data" ] && [ -f "$truth" ] || "$bin" simulate --accounts "$accounts" --seed 7 --format parquet \
    --out "$data" --truth-out "$truth" >/dev/null
caps=()
for pair in call:25 settlement_offer:100 installment_plan:50 demand_letter:20 field_visit:500 legal:400 agency:200; do
    n=$(( accounts / ${pair#*:} )); [ "$n" -ge 1 ] || n=1
    caps+=(--capacity "${pair%%:*}=$n")
done
echo "capacities: ${caps[*]}"
# Each run prints its stages (seconds since start, from the plan's own log)
# and its wall time. The first run may read the book from disk.
runs=${PLAN_RUNS:-3}
for run in $(seq "$runs"); do
    start=$(date +%s.%N)
    RUST_LOG=info "$bin" plan --data "$data" --model "$model" --as-of 2026-09-30 "${caps[@]}" \
        --out "$work/plan-$accounts.csv" 2>"$work/plan-$accounts.log" >/dev/null
    end=$(date +%s.%N)
    stages=$(sed -e 's/\x1b\[[0-9;]*m//g' "$work/plan-$accounts.log" | awk '
        /data and model loaded/ { match($0, /seconds=[0-9.]+/); load = substr($0, RSTART + 8, RLENGTH - 8) }
        /stage="features and rules"/ { match($0, /seconds=[0-9.]+/); features = substr($0, RSTART + 8, RLENGTH - 8) }
        /stage="P\(paid\) under every strategy"/ { match($0, /seconds=[0-9.]+/); scored = substr($0, RSTART + 8, RLENGTH - 8) }
        / allocated / { match($0, /seconds=[0-9.]+/); allocated = substr($0, RSTART + 8, RLENGTH - 8) }
        /plan written/ { match($0, /seconds=[0-9.]+/); written = substr($0, RSTART + 8, RLENGTH - 8) }
        END { printf "load %.2f, features and rules %.2f, scoring %.2f, values and allocation %.2f, writing %.2f", load, features, scored - features, allocated - load - scored, written - allocated }')
    echo "run $run: prioritize plan on $accounts accounts: $(echo "$end - $start" | bc) s wall ($stages)"
done
echo
"$bin" evaluate-policy --data "$data" --model "$model" --truth "$truth" "${caps[@]}"
