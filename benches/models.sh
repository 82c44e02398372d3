#!/usr/bin/env bash
# Training time and the fit/scoring speed of both learners, beside
# scikit-learn's, on a simulated portfolio.
#   benches/models.sh [ACCOUNTS]      (default 1,000,000)
# Needs a release build (cargo build --release) and python3 with
# scikit-learn, pandas and pyarrow.
set -euo pipefail
accounts=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-models}
mkdir -p "$work"
data="$work/data-$accounts"
[ -d "$data" ] || "$bin" simulate --accounts "$accounts" --seed 7 --format parquet --out "$data" >/dev/null
start=$(date +%s.%N)
"$bin" train --data "$data" --out "$work/model-$accounts" >/dev/null
end=$(date +%s.%N)
echo "prioritize train on $accounts accounts (features, 2 learners × 2 models, amount model, write): $(echo "$end - $start" | bc) s"
"$bin" features --data "$data" --out "$work/features-$accounts.parquet" >/dev/null
python3 "$root/benches/models_sklearn.py" "$work/features-$accounts.parquet" "$data/outcomes.parquet" "$work/model-$accounts/model.json"
