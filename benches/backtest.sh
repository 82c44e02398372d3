#!/usr/bin/env bash
# The learning loop over weeks: `prioritize backtest` on a living book, for
# every world and seed, then a table of the last four weeks' net money by
# policy (loop, staged rules, oracle) and, when matplotlib is there, the
# weekly chart of the first run.
#   benches/backtest.sh [SEEDS] [ACCOUNTS] [WORLDS] [DAYS]   (defaults "1 2 3", 20000, "a b", 84)
# Each run writes WORK/WORLD-SEED.json (`--json`) and its time and peak memory
# (/usr/bin/time -v) to WORK/WORLD-SEED.log; WORK is $BENCH_DIR (default
# target/bench-backtest). Needs a release build (cargo build --release) or
# $PRIORITIZE_BIN. At 20,000 accounts × 84 days a run takes about 15–20 min
# on 2 cores, most of it the loop's weekly retraining. $BACKTEST_ARGS is
# passed on to every run (e.g. BACKTEST_ARGS="--policy loop --out DIR" for one
# world and seed: it keeps the loop's store and reports its size).
set -euo pipefail
seeds=${1:-1 2 3}
accounts=${2:-20000}
worlds=${3:-a b}
days=${4:-84}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/prioritize-target}/release/prioritize}
work=${BENCH_DIR:-$root/target/bench-backtest}
[ -x "$bin" ] || { echo "error: no prioritize binary at $bin (cargo build --release, or set PRIORITIZE_BIN)" >&2; exit 1; }
mkdir -p "$work"
for world in $worlds; do
    for seed in $seeds; do
        echo "world $world, seed $seed: $accounts accounts × $days days"
        # shellcheck disable=SC2086
        /usr/bin/time -v "$bin" backtest --accounts "$accounts" --days "$days" --seed "$seed" \
            --world "$world" --json "$work/$world-$seed.json" ${BACKTEST_ARGS:-} > "$work/$world-$seed.log" 2>&1
        sed -n '/^backtest:/,$p' "$work/$world-$seed.log" | grep -v "^\s*Command being timed" | grep -E "^(backtest|policy|loop|rules|oracle|retrains|  |compliance|the loop)|Elapsed|Maximum resident"
    done
done
python3 "$root/benches/backtest_summary.py" "$work"
