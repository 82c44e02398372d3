#!/usr/bin/env bash
# `prioritize features` and its Python polars peer (benches/features_polars.py,
# the same feature list) side by side on one simulated Parquet book: wall time
# and peak memory (max RSS, /usr/bin/time) of each, alternating ROUNDS times,
# then the two outputs compared column by column (they must agree to 1e-9).
#   benches/features_peer.sh [ACCOUNTS] [ROUNDS]   (defaults 1,000,000 and 3)
# Needs a release build (cargo build --release) and python3; the peers' venv
# ($PEERS_VENV, default ~/.cache/prioritize-peers-venv) is made from
# benches/requirements-peers.txt the first time. The page cache is warm for
# both (each round reads the same files).
set -euo pipefail
accounts=${1:-1000000}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-features-peer}
venv=${PEERS_VENV:-$HOME/.cache/prioritize-peers-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$root/benches/requirements-peers.txt"
fi
mkdir -p "$work"
data="$work/data-$accounts"
[ -d "$data" ] || "$bin" simulate --accounts "$accounts" --seed 7 --format parquet --out "$data" >/dev/null
day=2026-09-30
peak() { awk -F': ' '/Maximum resident set size/ { printf "%.2f", $2 / 1048576 }' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f", s }' "$1"; }

echo "| round | prioritize wall (s) | prioritize peak (GB) | polars peer wall (s) | polars peer peak (GB) |"
echo "|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
    /usr/bin/time -v "$bin" features --data "$data" --as-of "$day" --out "$work/ours.parquet" \
        > /dev/null 2> "$work/ours.time"
    /usr/bin/time -v "$venv/bin/python" "$root/benches/features_polars.py" --data "$data" \
        --as-of "$day" --out "$work/peer.parquet" > /dev/null 2> "$work/peer.time"
    echo "| $round | $(wall "$work/ours.time") | $(peak "$work/ours.time") | $(wall "$work/peer.time") | $(peak "$work/peer.time") |"
done
"$venv/bin/python" "$root/benches/features_polars.py" --data "$data" --as-of "$day" \
    --out "$work/peer.parquet" --compare "$work/ours.parquet"
