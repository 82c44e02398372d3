#!/usr/bin/env bash
# Decision quality against peers: does the project's plan beat what a good
# data scientist builds in an afternoon on the same feature rows?
#   benches/decisions.sh [SEEDS] [ACCOUNTS] [WORLDS]   (defaults "1 2 3 4 5", 20000, "a b")
# For each world and seed: simulate a training book (seed 1000+s) and an
# evaluation book (seed 2000+s, with the simulator's hidden truth) of ACCOUNTS
# accounts; train the project's model on the first; plan the second (no
# exploration) under the demo's capacities for a book of that size; fit the
# peers (benches/peers.py: tuned LightGBM and scikit-learn's
# HistGradientBoosting S-learners, allocated by a regret greedy) on the
# training book's features and outcomes, and judge every plan with
# `evaluate-policy --truth --decisions` on the evaluation book. World `a` is the
# simulator's usual response, `b` one with a different latent response.
# Ends with benches/decisions_summary.py's table of each policy's share of the
# oracle's uplift over doing nothing.
# Needs a release build (cargo build --release) and python3; the peers' venv
# ($PEERS_VENV, default ~/.cache/prioritize-peers-venv) is made from
# benches/requirements-peers.txt when missing. BENCH_DIR sets the work folder.
set -euo pipefail
seeds=${1:-1 2 3 4 5}
accounts=${2:-20000}
worlds=${3:-a b}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/prioritize-target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-decisions}
venv=${PEERS_VENV:-$HOME/.cache/prioritize-peers-venv}
day=2026-09-30
[ -x "$bin" ] || { echo "error: no prioritize binary at $bin (cargo build --release, or set PRIORITIZE_BIN)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$root/benches/requirements-peers.txt"
fi
mkdir -p "$work"

caps=()
for pair in call:25 settlement_offer:100 installment_plan:50 demand_letter:20 field_visit:500 legal:400 agency:200; do
    n=$(( accounts / ${pair#*:} )); [ "$n" -ge 1 ] || n=1
    caps+=(--capacity "${pair%%:*}=$n")
done
echo "$accounts accounts; capacities: ${caps[*]}"

seconds() { echo "$(date +%s.%N) - $1" | bc; }

for world in $worlds; do
    for seed in $seeds; do
        dir="$work/$world-$seed"
        rm -rf "$dir"
        mkdir -p "$dir"
        "$bin" simulate --accounts "$accounts" --seed $((1000 + seed)) --world "$world" --format parquet \
            --as-of "$day" --out "$dir/train" >/dev/null
        "$bin" simulate --accounts "$accounts" --seed $((2000 + seed)) --world "$world" --format parquet \
            --as-of "$day" --truth-out "$dir/eval-truth.parquet" --out "$dir/eval" >/dev/null
        start=$(date +%s.%N)
        "$bin" train --data "$dir/train" --out "$dir/model" "${caps[@]}" >"$dir/train.log"
        train_seconds=$(seconds "$start")
        "$bin" plan --data "$dir/eval" --model "$dir/model" --as-of "$day" --explore 0 "${caps[@]}" \
            --out "$dir/eval-plan.csv" >/dev/null
        "$bin" features --data "$dir/train" --out "$dir/train-features.parquet" >/dev/null
        "$bin" features --data "$dir/eval" --as-of "$day" --out "$dir/eval-features.parquet" >/dev/null
        "$venv/bin/python" "$root/benches/peers.py" \
            --train-features "$dir/train-features.parquet" --train-outcomes "$dir/train/outcomes.parquet" \
            --eval-features "$dir/eval-features.parquet" --eval-plan "$dir/eval-plan.csv" \
            --accounts "$accounts" --out-dir "$dir/peers" --seed "$seed" | tee "$dir/peers.log"
        "$bin" evaluate-policy --data "$dir/eval" --model "$dir/model" --as-of "$day" "${caps[@]}" \
            --truth "$dir/eval-truth.parquet" \
            --decisions "lightgbm=$dir/peers/lightgbm.csv" --decisions "hgb=$dir/peers/hgb.csv" \
            --json "$dir/policy.json" >"$dir/policy.md"
        echo "$train_seconds" >"$dir/train-seconds.txt"
        printf 'world %s, seed %s: prioritize train %.1f s\n' "$world" "$seed" "$train_seconds"
    done
done
echo
"$venv/bin/python" "$root/benches/decisions_summary.py" "$work"
