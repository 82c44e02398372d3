#!/usr/bin/env bash
# Times whole commands on a simulated book and prints one Markdown table.
# Usage: benches/commands.sh [ACCOUNTS ...]   (default: 100000 1000000)
# Builds the release binary first; writes into a temporary folder it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/prioritize"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)

seconds() { local start=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $start" | bc; }

echo "| accounts | payment rows | simulate (s) | validate (s) | features (s) | features rows/s |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  book="$work/book-$n"
  sim=$(seconds "$bin" simulate --accounts "$n" --seed 1 --format parquet --out "$book")
  rows=$("$bin" validate --data "$book" | sed -E 's/.* ([0-9]+) payment cycles.*/\1/')
  val=$(seconds "$bin" validate --data "$book")
  feat=$(seconds "$bin" features --data "$book" --as-of 2026-09-30 --out "$work/features-$n.parquet")
  rate=$(echo "$rows / $feat" | bc)
  printf '| %s | %s | %.1f | %.1f | %.1f | %s |\n' "$n" "$rows" "$sim" "$val" "$feat" "$rate"
done
