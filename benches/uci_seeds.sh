#!/usr/bin/env bash
# Held-out ROC AUC on the UCI data for several seeds of the split:
# prioritize's model beside gradient boosting on the raw columns.
#   benches/uci_seeds.sh [SEED ...]      (default 42 1 2 3)
# Each seed holds out an untouched 20 % of accounts (--test-share 0.2); the
# peers train on exactly the other rows. Needs a release build and the peers'
# Python (benches/requirements-peers.txt; PYTHON, default the venv
# benches/decisions.sh makes, else python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-uci}
seeds=("${@:-42 1 2 3}")
python=${PYTHON:-$HOME/.cache/prioritize-peers-venv/bin/python}
[ -x "$python" ] || python=python3
mkdir -p "$work"
"$bin" import-uci --input "$root/data/uci_credit_card_train.csv" --out "$work/data" >/dev/null
for seed in ${seeds[@]}; do
  "$bin" train --data "$work/data" --out "$work/model-$seed" --seed "$seed" --test-share 0.2 --holdout-out "$work/holdout-$seed.csv" >/dev/null
  echo "seed $seed:"
  "$python" "$root/benches/uci_baseline.py" "$root/data/uci_credit_card_train.csv" "$work/holdout-$seed.csv" | grep '^| [^m-]'
done
