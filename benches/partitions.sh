#!/usr/bin/env bash
# A book planned whole and as N partitions on this machine, side by side:
# wall time and peak memory (max RSS, from /usr/bin/time) of the whole plan,
# of each partition process (all N running at once, as an Indexed Job's pods
# would) and of the merge; then the two plans compared byte for byte.
#   benches/partitions.sh [ACCOUNTS] [N]   (defaults 1,000,000 and 4)
# Needs a release build (cargo build --release). Capacities as in plan.sh.
set -euo pipefail
accounts=${1:-1000000}
parts=${2:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
model=$root/models/default
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-partitions}
mkdir -p "$work"
data="$work/data-$accounts"
[ -d "$data" ] || "$bin" simulate --accounts "$accounts" --seed 7 --format parquet --out "$data" >/dev/null
caps=()
for pair in call:25 settlement_offer:100 installment_plan:50 demand_letter:20 field_visit:500 legal:400 agency:200; do
    n=$(( accounts / ${pair#*:} )); [ "$n" -ge 1 ] || n=1
    caps+=(--capacity "${pair%%:*}=$n")
done
peak() { awk -F': ' '/Maximum resident set size/ { printf "%.2f GB", $2 / 1048576 }' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$1"; }

/usr/bin/time -v "$bin" plan --data "$data" --model "$model" --as-of 2026-09-30 "${caps[@]}" \
    --out "$work/whole.csv" > /dev/null 2> "$work/whole.time"
echo "whole book, $accounts accounts: wall $(wall "$work/whole.time"), peak $(peak "$work/whole.time")"

rm -f "$work"/part-*.parquet
start=$(date +%s.%N)
for i in $(seq 0 $((parts - 1))); do
    /usr/bin/time -v "$bin" plan --data "$data" --model "$model" --as-of 2026-09-30 \
        --partition "$i/$parts" --out "$work/part-$i.parquet" > /dev/null 2> "$work/part-$i.time" &
done
wait
echo "$parts partitions at once: wall $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f') s"
for i in $(seq 0 $((parts - 1))); do
    echo "  partition $i/$parts: wall $(wall "$work/part-$i.time"), peak $(peak "$work/part-$i.time")"
done
/usr/bin/time -v "$bin" plan --merge "$work"/part-*.parquet "${caps[@]}" \
    --out "$work/merged.csv" > /dev/null 2> "$work/merge.time"
echo "merge: wall $(wall "$work/merge.time"), peak $(peak "$work/merge.time")"
if cmp -s "$work/whole.csv" "$work/merged.csv"; then
    echo "the merged plan is the whole plan, byte for byte"
else
    echo "the merged plan DIFFERS from the whole plan" >&2
    exit 1
fi
