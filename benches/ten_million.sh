#!/usr/bin/env bash
# A book of SHARDS million accounts (default 10) planned on this machine as
# PARTS partitions (default 10), AT_ONCE of them running at a time (default
# 2), then merged: each stage's wall time and peak memory (max RSS from
# /usr/bin/time -v). One process could not plan the whole book here: a plan
# of 1 M accounts peaks at about 3.6 GB.
#   benches/ten_million.sh [SHARDS] [PARTS] [AT_ONCE]
# The book is SHARDS simulated books of 1 M accounts (seeds 7, 8, …) joined by
# benches/concat_shards.py (Python polars, streaming) with their ids prefixed.
# Needs a release build and the peers' venv (see benches/features_peer.sh).
set -euo pipefail
shards=${1:-10}
parts=${2:-10}
at_once=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
model=$root/models/default
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-ten-million}
venv=${PEERS_VENV:-$HOME/.cache/prioritize-peers-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$root/benches/requirements-peers.txt"
fi
accounts=$((shards * 1000000))
data="$work/data-$accounts"
mkdir -p "$work"
peak() { awk -F': ' '/Maximum resident set size/ { printf "%.2f GB", $2 / 1048576 }' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$1"; }
timed() { # NAME COMMAND…: runs it under /usr/bin/time into $work/NAME.time
    local name=$1; shift
    /usr/bin/time -v "$@" > "$work/$name.out" 2> "$work/$name.time" \
        || { cat "$work/$name.out" "$work/$name.time" >&2; exit 1; }
}
if [ ! -d "$data" ]; then
    shard_dirs=()
    for k in $(seq 0 $((shards - 1))); do
        shard="$work/shard-$k"
        timed "simulate-$k" "$bin" simulate --accounts 1000000 --seed $((7 + k)) --format parquet --out "$shard"
        shard_dirs+=("$shard")
    done
    echo "| simulate $shards books of 1 M accounts, one after another | $(wall "$work/simulate-0.time") each | $(peak "$work/simulate-0.time") |"
    timed concat "$venv/bin/python" "$root/benches/concat_shards.py" --out "$data.tmp" "${shard_dirs[@]}"
    mv "$data.tmp" "$data"
    rm -rf "${shard_dirs[@]}"
    echo "| join them into one folder ($(du -sh "$data" | cut -f1) of Parquet) | $(wall "$work/concat.time") | $(peak "$work/concat.time") |"
fi
caps=()
for pair in call:25 settlement_offer:100 installment_plan:50 demand_letter:20 field_visit:500 legal:400 agency:200; do
    n=$(( accounts / ${pair#*:} )); [ "$n" -ge 1 ] || n=1
    caps+=(--capacity "${pair%%:*}=$n")
done
rm -f "$work"/part-*.parquet
start=$(date +%s.%N)
export bin model data work parts
seq 0 $((parts - 1)) | xargs -P "$at_once" -I{} sh -c \
    '/usr/bin/time -v "$bin" plan --data "$data" --model "$model" --as-of 2026-09-30 \
        --partition {}/"$parts" --out "$work/part-{}.parquet" > "$work/part-{}.out" 2> "$work/part-{}.time"'
partitions_wall=$(echo "$(date +%s.%N) - $start" | bc)
walls=$(for i in $(seq 0 $((parts - 1))); do wall "$work/part-$i.time"; done | sort | sed -n '1p;$p' | paste -sd' ' | sed 's/ /–/')
peaks=$(for i in $(seq 0 $((parts - 1))); do peak "$work/part-$i.time"; echo; done | sort -n | sed -n '1p;$p' | sed 's/ GB//' | paste -sd' ' | sed 's/ /–/')
printf '| %s partitions, %s at a time | %.0f s in all (%s each) | %s GB each |\n' "$parts" "$at_once" "$partitions_wall" "$walls" "$peaks"
timed merge "$bin" plan --merge "$work"/part-*.parquet "${caps[@]}" --out "$work/plan.csv"
echo "| merge of the $parts into the plan ($(($(wc -l < "$work/plan.csv") - 1)) rows) | $(wall "$work/merge.time") | $(peak "$work/merge.time") |"
