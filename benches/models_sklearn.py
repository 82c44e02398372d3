#!/usr/bin/env python3
"""Fit and scoring time of scikit-learn's counterparts of prioritize's two
learners, on the same feature rows, beside prioritize's own figures.

    python3 benches/models_sklearn.py FEATURES.parquet OUTCOMES.parquet MODEL_DIR/model.json

FEATURES is `prioritize features --data DIR --out FEATURES.parquet` (one row
per outcomes row); MODEL_DIR was trained on the same folder. scikit-learn
fits on as many rows as prioritize did, with the same hyper-parameters:
LogisticRegression (lbfgs, standardised inputs) for the scorecard and
HistGradientBoostingClassifier (depth, learning rate, most trees, early
stopping on a tenth) for the trees. Prints one Markdown table.
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

features_path, outcomes_path, meta_path = sys.argv[1:4]
meta = json.load(open(meta_path))
features = pd.read_parquet(features_path)
outcomes = pd.read_parquet(outcomes_path)[["account_id", "as_of", "paid"]]
rows = features.merge(outcomes, on=["account_id", "as_of"], how="left")
numeric = meta["propensity"]["inputs"]["numeric"]
X = pd.get_dummies(rows[numeric + ["product"]], columns=["product"], dtype=float).to_numpy()
y = rows["paid"].astype(int).to_numpy()

candidates = {c["kind"]: c for c in meta["propensity"]["candidates"]}
test_rows = meta["split"]["test"]
rng = np.random.default_rng(42)
order = rng.permutation(len(y))
test = order[:test_rows]
trees = meta["params"]["trees"]

table = []


def timed(name, ours, model, prepare=lambda a: a):
    # As many fit rows as prioritize's learner had.
    fit = order[test_rows : test_rows + ours["fit_rows"]]
    started = time.perf_counter()
    model.fit(prepare(X[fit]), y[fit])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    p = model.predict_proba(prepare(X[test]))[:, 1]
    per_second = len(test) / (time.perf_counter() - started)
    table.append((f"prioritize {name}", ours["fit_rows"], ours["fit_seconds"], ours["scored_per_second"], ours["test"]["roc_auc"], ours["trees"]))
    n_trees = getattr(model, "n_iter_", 0)
    n_trees = int(n_trees) if np.isscalar(n_trees) else 0
    table.append((f"scikit-learn {name}", len(fit), fit_seconds, per_second, roc_auc_score(y[test], p), n_trees))


scaler = StandardScaler().fit(X[order[test_rows:]])
timed(
    "logistic regression",
    candidates["scorecard"],
    LogisticRegression(C=1.0 / meta["params"]["alpha"], max_iter=meta["params"]["max_iterations"]),
    lambda a: np.clip(scaler.transform(a), -5, 5),
)
timed(
    "gradient-boosted trees",
    candidates["tree_ensemble"],
    HistGradientBoostingClassifier(
        max_depth=trees["max_depth"],
        learning_rate=trees["learning_rate"],
        max_iter=trees["iterations"],
        l2_regularization=trees["l2"],
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=trees["early_stopping_rounds"],
        random_state=42,
    ),
)
print(f"{test_rows} scored rows, {X.shape[1]} inputs (propensity model)\n")
print("| learner | fit rows | fit seconds | scored per second | held-out ROC AUC | trees |\n|---|---|---|---|---|---|")
for name, fit_rows, fit_seconds, per_second, auc, n in table:
    print(f"| {name} | {fit_rows} | {fit_seconds:.1f} | {per_second:,.0f} | {auc:.4f} | {n or ''} |")
