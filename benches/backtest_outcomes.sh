#!/usr/bin/env bash
# The learning loop's store, end to end with the analyst's commands:
#   1. `backtest --policy loop --out W` runs the loop and keeps its store
#      (W/prioritize.db: every morning's plan, stored and activated as
#      `serve` does), the final data folder (W/data) and the morning of the
#      last matured day D with the world's truth (W/day, W/day/truth.parquet);
#   2. `outcomes` exports the contract's outcomes table from that store;
#   3. `validate` checks it, `train` fits a model on the outcomes matured
#      before D (as a data scientist on day D could), and
#   4. `evaluate-policy --as-of D` estimates, from the exported outcomes of
#      D, what the new model's plan, the staged rules and the logged policy
#      are worth; the same is done with the backtest's own day-level
#      outcomes of D; both are set beside the truth.
#
#   benches/backtest_outcomes.sh [ACCOUNTS] [SEED] [WORLD] [DAYS] [TRAIN_DAYS]
#     (defaults 20000, 1, a, 90, 4)
# The horizon is 30 days throughout (the loop's, the exports'): payments are
# known per billing cycle, and a 30-day horizon holds exactly one cycle end.
# WORK is $BENCH_DIR (default target/bench-outcomes)/WORLD-SEED. Needs a
# release build or $PRIORITIZE_BIN.
set -euo pipefail
accounts=${1:-20000}
seed=${2:-1}
world=${3:-a}
days=${4:-90}
train_days=${5:-4}
horizon=30
start=2026-01-05
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRIORITIZE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/prioritize-target}/release/prioritize}
[ -x "$bin" ] || { echo "error: no prioritize binary at $bin (cargo build --release, or set PRIORITIZE_BIN)" >&2; exit 1; }
work=${BENCH_DIR:-$root/target/bench-outcomes}/$world-$seed
rm -rf "$work"
mkdir -p "$work"
# The last day matured for the store too: the data folder is known through
# the last day run, start + days - 1, and D's horizon ends at D + horizon.
d=$(date -u -d "$start + $((days - 1 - horizon)) days" +%F)
before=$(date -u -d "$d - 1 day" +%F)
since=$(date -u -d "$before - $((horizon + train_days - 1)) days" +%F)

echo "1. backtest: $accounts accounts × $days days, world $world, seed $seed (the loop only)"
/usr/bin/time -v "$bin" backtest --accounts "$accounts" --days "$days" --seed "$seed" --world "$world" \
    --policy loop --horizon-days "$horizon" --out "$work" --json "$work/report.json" > "$work/backtest.log" 2>&1
grep -E "^loop |store|Elapsed|Maximum resident" "$work/backtest.log"

echo "2. outcomes from the store"
"$bin" outcomes --db "sqlite://$work/prioritize.db" --data "$work/data" --horizon-days "$horizon" \
    --format parquet --out "$work/exported"
mkdir -p "$work/train" "$work/eval"
for t in accounts payment_history actions; do
    ln -s "../data/$t.parquet" "$work/train/$t.parquet"
    ln -s "../day/$t.parquet" "$work/eval/$t.parquet"
done
# The decisions of D, as the store exports them.
"$bin" outcomes --db "sqlite://$work/prioritize.db" --data "$work/data" --horizon-days "$horizon" \
    --since "$d" --through "$(date -u -d "$d + $horizon days" +%F)" --format parquet --out "$work/eval"
# What was known on the morning of D: decisions matured by D-1, the last $train_days days of them.
"$bin" outcomes --db "sqlite://$work/prioritize.db" --data "$work/data" --horizon-days "$horizon" \
    --since "$since" --through "$before" --format parquet --out "$work/train"

echo "3. validate and train (outcomes of $since to $(date -u -d "$before - $horizon days" +%F))"
"$bin" validate --data "$work/train" | tail -2
"$bin" validate --data "$work/eval" | tail -2
/usr/bin/time -v "$bin" train --data "$work/train" --out "$work/model" --seed "$seed" --folds 3 --search 1 \
    > "$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
grep -E "Elapsed|Maximum resident" "$work/train.log"

echo "4. evaluate-policy on $d"
engine=()
for pair in call:$((accounts / 25)) settlement_offer:$((accounts / 100)) installment_plan:$((accounts / 50)) \
    demand_letter:$((accounts / 20)) field_visit:$((accounts / 500)) legal:$((accounts / 400)) agency:$((accounts / 200)); do
    engine+=(--capacity "${pair%%:*}=${pair##*:}")
done
externals=()
for policy in logged champion staged none; do
    externals+=(--decisions "$policy=$work/day/decisions-$policy.csv")
done
"$bin" evaluate-policy --data "$work/day" --model "$work/model" --as-of "$d" "${engine[@]}" "${externals[@]}" \
    --truth "$work/day/truth.parquet" --json "$work/eval-own.json" > "$work/eval-own.txt"
# With the exported outcomes the truth is what is paid by the month end in D's horizon.
"$bin" evaluate-policy --data "$work/eval" --model "$work/model" --as-of "$d" "${engine[@]}" "${externals[@]}" \
    --truth "$work/day/truth_cycles.parquet" --json "$work/eval-exported.json" > "$work/eval-exported.txt"
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
truth = json.load(open(f"{work}/day/counterfactual.json"))
true = {p["policy"]: p for p in truth["policies"]}
print(f"{truth['day']}, {truth['accounts']} accounts, horizon {truth['horizon_days']} days: mean net money a"
      " decision, estimated from the logged outcomes (inverse propensity, doubly robust) beside the truth"
      " (the world run on from that morning under each policy, the loop deciding the later days)")
print(f"{'outcomes':<9} {'policy':<9} {'IPS':>9} {'DR':>9} {'true':>9} {'DR error':>9} {'rows agreeing':>14}")
for name, key in (("exported", "mean_net_cycles"), ("own", "mean_net")):
    report = json.load(open(f"{work}/eval-{name}.json"))
    rows = {p["policy"]: p for p in report["policies"]}
    for policy in ("logged", "champion", "staged", "none"):
        p = rows[policy]
        dr, ips, t = float(p["doubly_robust"]), float(p["inverse_propensity"]), float(true[policy][key])
        error = f"{100 * (dr - t) / abs(t):+.1f} %" if t else "-"
        print(f"{name:<9} {policy:<9} {ips:>9.2f} {dr:>9.2f} {t:>9.2f} {error:>9} {p['agreeing_rows']:>14}")
    observed = float(report["logged_observed_mean"])
    print(f"{name:<9} {'observed':<9} {'':>9} {observed:>9.2f} {float(true['logged'][key]):>9.2f}"
          f" {'':>9} {report['logged_decisions']:>14}")
EOF
