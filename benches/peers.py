#!/usr/bin/env python3
"""Peer plans for the decisions bench: what a good data scientist builds in an
afternoon, on prioritize's own feature rows, to compare `prioritize plan` with.

    python3 benches/peers.py \
        --train-features TRAIN_FEATURES.parquet --train-outcomes TRAIN_DATA/outcomes.parquet \
        --eval-features EVAL_FEATURES.parquet --eval-plan EVAL_PLAN.csv \
        --accounts N --out-dir DIR [--seed S]

TRAIN_FEATURES is `prioritize features --data TRAIN_DATA --out F.parquet` (one
row per outcomes row), joined to TRAIN_DATA's outcomes on (account_id, as_of).
EVAL_FEATURES is `prioritize features --data EVAL_DATA --as-of DAY --out
F.parquet` (one row per account on the planning day). Of EVAL_PLAN, the
project's `prioritize plan` CSV for that day, only `account_id` and
`blocked_by` are read: they say which strategies the compliance rules allow
for each account. Nothing the project's model predicted is used.

Each peer is a pooled S-learner: the logged strategy is an input beside every
numeric feature and the product. A classifier fitted on all training rows
gives P(paid | x, s); a regressor fitted on the paying rows gives the amount
if paid, A(x, s). An account's value under s is P × A − cost(s) (contract
default costs), and the accounts are allocated under the capacities of a book
of N accounts (the demo's formula) by a regret-based greedy (`allocate`).

  lightgbm  LightGBM, tuned by 5-fold cross-validation (seeded; stratified by
            `paid` for the classifier, by strategy for the regressor) over
            num_leaves × learning_rate × min_child_samples, with early stopping
            inside each fold; the classifier is chosen by CV log loss, the
            regressor by CV L2, and both are refitted on all rows with the mean
            of the folds' best round counts.
  hgb       scikit-learn's HistGradientBoostingClassifier / Regressor,
            defaults except max_iter=500, early stopping on a tenth
            (validation_fraction=0.1), strategy and product as categorical
            features.

Writes DIR/lightgbm.csv and DIR/hgb.csv (`account_id,strategy`, one row per
eval account) and prints one line per peer with its fit seconds and
hyper-parameters. Every plan is checked before it is written: one row per
account, no blocked strategy, no capacity exceeded.
"""
import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before the OpenMP runtimes load

import lightgbm as lgb
import numpy as np
import polars as pl
from joblib import Parallel, delayed
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import StratifiedKFold

STRATEGIES = [
    "none", "sms_reminder", "email_reminder", "call", "settlement_offer",
    "installment_plan", "demand_letter", "field_visit", "legal", "agency",
]
INDEX = {s: i for i, s in enumerate(STRATEGIES)}
# Contract defaults, per use.
COST = np.array([0.0, 0.05, 0.02, 4.0, 1.0, 2.0, 1.5, 45.0, 180.0, 0.0])
# Capacity for a book of N accounts: N // one_in, at least 1 (src/cmd/demo.rs).
ONE_IN = {
    "call": 25, "settlement_offer": 100, "installment_plan": 50, "demand_letter": 20,
    "field_visit": 500, "legal": 400, "agency": 200,
}
UNCAPPED = [INDEX[s] for s in ("none", "sms_reminder", "email_reminder")]

FOLDS = 5
MAX_ROUNDS = 3000
EARLY_STOP = 50
GRID = {
    "num_leaves": [15, 31, 63],
    "learning_rate": [0.03, 0.1],
    "min_child_samples": [20, 100],
}
THREADS = 2


# ---------------------------------------------------------------- data


class Design:
    """Feature rows as a float matrix: the numeric features, then `product` as
    an integer code (categories fixed by the training rows; unseen products
    are missing), then the strategy code as the last column."""

    def __init__(self, train: pl.DataFrame):
        skip = {"account_id", "as_of", "product", "strategy", "paid", "paid_amount", "propensity"}
        self.numeric = [c for c, t in train.schema.items() if c not in skip and t.is_numeric()]
        self.products = sorted(train["product"].drop_nulls().unique().to_list())
        self.names = self.numeric + ["product", "strategy"]
        self.categorical = [len(self.numeric), len(self.numeric) + 1]

    def base(self, frame: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.numeric + ["product"] if c not in frame.columns]
        if missing:
            sys.exit(f"error: feature columns missing: {', '.join(missing)}")
        numeric = frame.select(pl.col(self.numeric).cast(pl.Float64)).to_numpy()
        code = {p: float(i) for i, p in enumerate(self.products)}
        product = np.array([code.get(p, np.nan) for p in frame["product"].to_list()])
        return np.column_stack([numeric, product, np.zeros(len(frame))])

    @staticmethod
    def with_strategy(base: np.ndarray, strategy) -> np.ndarray:
        x = base.copy()
        x[:, -1] = strategy
        return x


def load_training(features_path, outcomes_path):
    features = pl.read_parquet(features_path)
    outcomes = pl.read_parquet(outcomes_path).select(
        pl.col("account_id").cast(pl.String),
        pl.col("as_of").cast(pl.Date),
        pl.col("strategy").cast(pl.String).fill_null("none"),
        pl.col("paid").cast(pl.Boolean),
        pl.col("paid_amount").cast(pl.Float64),
    )
    features = features.with_columns(
        pl.col("account_id").cast(pl.String), pl.col("as_of").cast(pl.Date)
    )
    rows = features.join(outcomes, on=["account_id", "as_of"], how="inner")
    if rows.height != features.height or rows.height != outcomes.height:
        sys.exit(
            f"error: {features.height} feature rows, {outcomes.height} outcomes rows, "
            f"{rows.height} joined on (account_id, as_of); expected one feature row per outcomes row"
        )
    unknown = set(rows["strategy"].unique().to_list()) - set(STRATEGIES)
    if unknown:
        sys.exit(f"error: outcomes name unknown strategies: {sorted(unknown)}")
    design = Design(rows)
    x = design.base(rows)
    x[:, -1] = np.array([INDEX[s] for s in rows["strategy"].to_list()], dtype=float)
    paid = rows["paid"].to_numpy().astype(int)
    amount = rows["paid_amount"].fill_null(0.0).to_numpy()
    return design, x, paid, amount


def parse_blocked(text: str) -> set:
    """`rule: strategy strategy; rule: strategy` (empty: nothing blocked)."""
    blocked = set()
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        rule, sep, names = part.partition(":")
        if not sep:
            sys.exit(f"error: blocked_by entry without a rule name: {part!r}")
        for name in names.split():
            if name not in INDEX:
                sys.exit(f"error: blocked_by names unknown strategy {name!r} (rule {rule.strip()})")
            blocked.add(name)
    return blocked


def load_eval(design, features_path, plan_path):
    features = pl.read_parquet(features_path).with_columns(pl.col("account_id").cast(pl.String))
    if features["account_id"].n_unique() != features.height:
        sys.exit("error: eval features hold more than one row per account (give features --as-of)")
    plan = pl.read_csv(
        plan_path, columns=["account_id", "blocked_by"],
        schema_overrides={"account_id": pl.String, "blocked_by": pl.String},
    )
    rows = features.join(plan, on="account_id", how="inner")
    if rows.height != features.height or rows.height != plan.height:
        sys.exit(
            f"error: {features.height} eval feature rows and {plan.height} plan rows, "
            f"{rows.height} share an account_id; expected the same accounts"
        )
    allowed = np.ones((rows.height, len(STRATEGIES)), dtype=bool)
    for i, text in enumerate(rows["blocked_by"].to_list()):
        for name in parse_blocked(text):
            allowed[i, INDEX[name]] = False
    assert allowed[:, INDEX["none"]].all(), "`none` is never blocked"
    return rows["account_id"].to_list(), design.base(rows), allowed


def capacities(accounts: int) -> dict:
    return {INDEX[s]: max(accounts // one_in, 1) for s, one_in in ONE_IN.items()}


# ---------------------------------------------------------------- allocation


def allocate(values: np.ndarray, allowed: np.ndarray, capacity: dict) -> np.ndarray:
    """Regret-based greedy. Each account's fallback is its best allowed
    uncapacitated strategy (none, sms, email). Every allowed (account, capped
    strategy) pair worth more than the fallback gets priority value − fallback;
    pairs are taken by priority, highest first (ties: account, then strategy,
    in order), while the account is unassigned and the strategy has capacity
    left. Unassigned accounts take their fallback."""
    n = values.shape[0]
    masked = np.where(allowed, values, -np.inf)
    uncapped = np.array(UNCAPPED)
    fallback_value = masked[:, uncapped].max(axis=1)
    choice = uncapped[masked[:, uncapped].argmax(axis=1)]
    rows, cols, gains = [], [], []
    for s in capacity:
        gain = masked[:, s] - fallback_value
        who = np.flatnonzero(gain > 0)
        rows.append(who)
        cols.append(np.full(len(who), s))
        gains.append(gain[who])
    rows, cols, gains = np.concatenate(rows), np.concatenate(cols), np.concatenate(gains)
    order = np.lexsort((cols, rows, -gains))
    left = dict(capacity)
    assigned = np.zeros(n, dtype=bool)
    for r, s in zip(rows[order].tolist(), cols[order].tolist()):
        if not assigned[r] and left[s] > 0:
            assigned[r] = True
            choice[r] = s
            left[s] -= 1
    return choice


def check_and_write(path: Path, accounts, choice, allowed, capacity):
    assert len(choice) == len(accounts) == len(set(accounts)), "one row per account"
    assert allowed[np.arange(len(choice)), choice].all(), "a peer chose a blocked strategy"
    used = np.bincount(choice, minlength=len(STRATEGIES))
    for s, cap in capacity.items():
        assert used[s] <= cap, f"{STRATEGIES[s]}: {used[s]} over capacity {cap}"
    pl.DataFrame({"account_id": accounts, "strategy": [STRATEGIES[c] for c in choice]}).write_csv(path)
    return used


def values_under_every_strategy(base, p_model, a_model):
    """P(paid | x, s) × A(x, s) − cost(s), one column per strategy."""
    values = np.empty((base.shape[0], len(STRATEGIES)))
    for s in range(len(STRATEGIES)):
        x = Design.with_strategy(base, s)
        p = p_model(x)
        amount = np.maximum(a_model(x), 0.0)
        values[:, s] = p * amount - COST[s]
    return values


# ---------------------------------------------------------------- peers


def cv_config(x, y, folds, names, categorical, params):
    """One grid point: early stopping in each fold; the mean of the folds'
    best scores, the mean of their best round counts, and the CPU seconds."""
    # The validation set takes the training set's bins; LightGBM warns that
    # the booster's parameters override the reference's, which is intended.
    warnings.filterwarnings("ignore", message="Overriding the parameters from Reference Dataset")
    cpu = time.process_time()
    scores, rounds = [], []
    for fit, valid in folds:
        train = lgb.Dataset(x[fit], y[fit], feature_name=names, categorical_feature=categorical,
                            params={"feature_pre_filter": False, "verbose": -1})
        booster = lgb.train(params, train, MAX_ROUNDS,
                            valid_sets=[lgb.Dataset(x[valid], y[valid], reference=train)],
                            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
        scores.append(booster.best_score["valid_0"][params["metric"]])
        rounds.append(booster.best_iteration)
    return float(np.mean(scores)), int(round(np.mean(rounds))), time.process_time() - cpu


def tune_lightgbm(problems, design, seed):
    """5-fold CV over GRID for each problem, an (x, y, stratify-by, objective,
    metric) tuple; returns, per problem, the parameters with the lowest mean CV
    `metric`, their mean best round count and that score. All grid points of
    all problems run in THREADS worker processes of one thread each, slowest
    first (on two small cores this beats one process with two OpenMP threads,
    and degrades gracefully when the cores are shared)."""
    tasks = []
    for k, (x, y, stratify, objective, metric) in enumerate(problems):
        folds = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, stratify))
        for leaves, rate, child in itertools.product(*GRID.values()):
            params = {
                "objective": objective, "metric": metric, "num_leaves": leaves,
                "learning_rate": rate, "min_child_samples": child, "num_threads": 1,
                "seed": seed, "deterministic": True, "force_row_wise": True, "verbose": -1,
            }
            tasks.append((k, x, y, folds, params))
    # Slow learning rates and many leaves take the most rounds: start them first.
    tasks.sort(key=lambda t: (t[4]["learning_rate"], -t[4]["num_leaves"], -len(t[2])))
    results = Parallel(n_jobs=THREADS, batch_size=1)(
        delayed(cv_config)(x, y, folds, design.names, design.categorical, params)
        for _, x, y, folds, params in tasks
    )
    best = [None] * len(problems)
    for (k, *_, params), (score, rounds, _) in zip(tasks, results):
        if best[k] is None or score < best[k][2]:
            best[k] = (dict(params, num_threads=THREADS), rounds, score)
    return best, sum(r[2] for r in results)


def fit_lightgbm(params, rounds, x, y, design):
    data = lgb.Dataset(x, y, feature_name=design.names, categorical_feature=design.categorical,
                       params={"feature_pre_filter": False, "verbose": -1})
    return lgb.train(params, data, rounds)


def describe(params, rounds, score, metric):
    keys = ("num_leaves", "learning_rate", "min_child_samples")
    return ", ".join(f"{k}={params[k]}" for k in keys) + f", rounds={rounds}, cv_{metric}={score:.4f}"


def peer_lightgbm(design, x, paid, amount, base, seed):
    started, cpu = time.perf_counter(), time.process_time()
    payers = paid == 1
    strategy = x[:, -1].astype(int)
    ((p_params, p_rounds, p_score), (a_params, a_rounds, a_score)), workers_cpu = tune_lightgbm([
        (x, paid, paid, "binary", "binary_logloss"),
        (x[payers], amount[payers], strategy[payers], "regression", "l2"),
    ], design, seed)
    classifier = fit_lightgbm(p_params, p_rounds, x, paid, design)
    regressor = fit_lightgbm(a_params, a_rounds, x[payers], amount[payers], design)
    seconds = (time.perf_counter() - started, time.process_time() - cpu + workers_cpu)
    values = values_under_every_strategy(base, classifier.predict, regressor.predict)
    about = (f"P(paid): {describe(p_params, p_rounds, p_score, 'logloss')}; "
             f"amount: {describe(a_params, a_rounds, a_score, 'l2')}")
    return values, seconds, about


def peer_hgb(design, x, paid, amount, base, seed):
    started, cpu = time.perf_counter(), time.process_time()
    mask = np.zeros(x.shape[1], dtype=bool)
    mask[design.categorical] = True
    common = dict(max_iter=500, early_stopping=True, validation_fraction=0.1,
                  categorical_features=mask, random_state=seed)
    classifier = HistGradientBoostingClassifier(**common).fit(x, paid)
    payers = paid == 1
    regressor = HistGradientBoostingRegressor(**common).fit(x[payers], amount[payers])
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    values = values_under_every_strategy(
        base, lambda z: classifier.predict_proba(z)[:, 1], regressor.predict)
    about = (f"defaults, max_iter=500, early stopping on 0.1; "
             f"P(paid): {classifier.n_iter_} iterations; amount: {regressor.n_iter_} iterations")
    return values, seconds, about


PEERS = {"lightgbm": peer_lightgbm, "hgb": peer_hgb}


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-features", required=True)
    parser.add_argument("--train-outcomes", required=True)
    parser.add_argument("--eval-features", required=True)
    parser.add_argument("--eval-plan", required=True)
    parser.add_argument("--accounts", type=int, required=True,
                        help="book size the capacities are scaled to")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated subset of: " + ", ".join(PEERS))
    args = parser.parse_args()

    design, x, paid, amount = load_training(args.train_features, args.train_outcomes)
    accounts, base, allowed = load_eval(design, args.eval_features, args.eval_plan)
    capacity = capacities(args.accounts)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"peers: {x.shape[0]} training rows ({paid.sum()} paid), {len(design.numeric)} numeric "
          f"features + product + strategy; {len(accounts)} eval accounts; capacities "
          + " ".join(f"{STRATEGIES[s]}={c}" for s, c in capacity.items()))
    for name in args.peers.split(","):
        values, (wall, cpu), about = PEERS[name](design, x, paid, amount, base, args.seed)
        choice = allocate(values, allowed, capacity)
        used = check_and_write(out / f"{name}.csv", accounts, choice, allowed, capacity)
        mix = " ".join(f"{STRATEGIES[s]}={used[s]}" for s in range(len(STRATEGIES)) if used[s])
        print(f"{name}: fit {wall:.1f} s ({cpu:.1f} s CPU); {about}; plan: {mix}", flush=True)


if __name__ == "__main__":
    main()
