#!/usr/bin/env python3
"""ROC AUC on UCI rows that prioritize never saw, beside gradient boosting on
the raw columns trained on exactly the rows prioritize trained on.

    prioritize import-uci --input data/uci_credit_card_train.csv --out target/uci
    prioritize train --data target/uci --out target/uci-model --test-share 0.2 \
        --holdout-out target/uci-holdout.csv
    python3 benches/uci_baseline.py data/uci_credit_card_train.csv target/uci-holdout.csv

With `--test-share`, `--holdout-out` holds the untouched test rows: neither
prioritize's search, calibration nor refit saw them. The peers train on every
other row: HistGradientBoosting and LightGBM with defaults, and LightGBM tuned
by 5-fold stratified cross-validation (log loss, early stopping per fold, then
refitted on all training rows with the mean best round count) on the raw
columns without SEX, MARRIAGE and AGE (which prioritize never reads); the
untuned ones also with them. Needs
scikit-learn, pandas and lightgbm (benches/requirements-peers.txt).
"""
import itertools
import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

warnings.filterwarnings("ignore", message=".*eval_set.*")  # LightGBM 4.7 renames it; the meaning is the same
raw_path, holdout_path = sys.argv[1], sys.argv[2]
raw = pd.read_csv(raw_path)
holdout = pd.read_csv(holdout_path, dtype={"account_id": str})
raw["account_id"] = raw["ID"].astype(str)
is_test = raw["account_id"].isin(set(holdout["account_id"]))
label = 1 - raw["default.payment.next.month"]  # paid = 1 - default, as the importer maps it

all_columns = [c for c in raw.columns if c not in ("ID", "account_id", "default.payment.next.month")]
without_protected = [c for c in all_columns if c not in ("SEX", "MARRIAGE", "AGE")]


def tuned_lightgbm(X, y, seed=42):
    """LightGBM tuned by 5-fold CV over a small grid, refitted on all rows."""
    import lightgbm

    grid = list(itertools.product([7, 15, 31, 63], [0.02, 0.05], [20, 100], [1.0]))
    folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y))
    best = None
    for leaves, rate, min_child, l2 in grid:
        params = dict(num_leaves=leaves, learning_rate=rate, min_child_samples=min_child, reg_lambda=l2,
                      n_estimators=3000, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                      random_state=seed, verbose=-1, n_jobs=2)
        losses, rounds = [], []
        for fit, val in folds:
            model = lightgbm.LGBMClassifier(**params)
            model.fit(X.iloc[fit], y.iloc[fit], eval_set=[(X.iloc[val], y.iloc[val])],
                      callbacks=[lightgbm.early_stopping(50, verbose=False)])
            losses.append(log_loss(y.iloc[val], model.predict_proba(X.iloc[val])[:, 1]))
            rounds.append(model.best_iteration_)
        if best is None or np.mean(losses) < best[0]:
            best = (np.mean(losses), params, int(np.mean(rounds)))
    _, params, rounds = best
    params["n_estimators"] = max(rounds, 1)
    model = lightgbm.LGBMClassifier(**params).fit(X, y)
    return model, {k: params[k] for k in ("num_leaves", "learning_rate", "min_child_samples", "reg_lambda", "n_estimators")}


rows = []
ours = holdout.set_index("account_id").loc[raw.loc[is_test, "account_id"]]
rows.append(("prioritize (own features, cross-fitted, refitted on all training rows)", roc_auc_score(ours["paid"].astype(int), ours["p_pay"])))
for name, columns in [("raw columns without SEX, MARRIAGE, AGE", without_protected), ("all raw columns", all_columns)]:
    X_fit, y_fit = raw.loc[~is_test, columns], label[~is_test]
    X_test, y_test = raw.loc[is_test, columns], label[is_test]
    hgb = HistGradientBoostingClassifier(random_state=42).fit(X_fit, y_fit)
    rows.append((f"scikit-learn HistGradientBoosting (defaults), {name}", roc_auc_score(y_test, hgb.predict_proba(X_test)[:, 1])))
    import lightgbm

    lgb = lightgbm.LGBMClassifier(random_state=42, verbose=-1).fit(X_fit, y_fit)
    rows.append((f"LightGBM (defaults), {name}", roc_auc_score(y_test, lgb.predict_proba(X_test)[:, 1])))
    if columns is without_protected:
        tuned, chosen = tuned_lightgbm(X_fit, y_fit)
        rows.append((f"LightGBM tuned by 5-fold CV {chosen}, {name}", roc_auc_score(y_test, tuned.predict_proba(X_test)[:, 1])))

print(f"held-out rows: {int(is_test.sum())}, training rows: {int((~is_test).sum())}\n")
print("| model | held-out ROC AUC |\n|---|---|")
for name, auc in rows:
    print(f"| {name} | {auc:.4f} |")
