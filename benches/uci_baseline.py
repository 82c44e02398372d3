#!/usr/bin/env python3
"""ROC AUC of gradient boosting on the raw UCI columns, on prioritize's own
held-out rows, beside prioritize's model on the same rows.

    cargo run --release -- import-uci --input data/uci_credit_card_train.csv --out target/uci
    cargo run --release -- train --data target/uci --out target/uci-model \
        --holdout-out target/uci-holdout.csv
    python3 benches/uci_baseline.py data/uci_credit_card_train.csv target/uci-holdout.csv

Needs scikit-learn, pandas and (optionally) lightgbm. The baselines train on
every row that prioritize did not hold out (its fit and calibration rows),
so they see more training data than prioritize's learner does.
"""
import sys

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

raw_path, holdout_path = sys.argv[1], sys.argv[2]
raw = pd.read_csv(raw_path)
holdout = pd.read_csv(holdout_path, dtype={"account_id": str})
raw["account_id"] = raw["ID"].astype(str)
is_test = raw["account_id"].isin(set(holdout["account_id"]))
label = 1 - raw["default.payment.next.month"]  # paid = 1 - default, as the importer maps it

all_columns = [c for c in raw.columns if c not in ("ID", "account_id", "default.payment.next.month")]
without_protected = [c for c in all_columns if c not in ("SEX", "MARRIAGE", "AGE")]

rows = []
ours = holdout.set_index("account_id").loc[raw.loc[is_test, "account_id"]]
rows.append(("prioritize (own features, trees + Platt)", roc_auc_score(ours["paid"].astype(int), ours["p_pay"])))
for name, columns in [("all raw columns", all_columns), ("raw columns without SEX, MARRIAGE, AGE", without_protected)]:
    hgb = HistGradientBoostingClassifier(random_state=42)
    hgb.fit(raw.loc[~is_test, columns], label[~is_test])
    p = hgb.predict_proba(raw.loc[is_test, columns])[:, 1]
    rows.append((f"scikit-learn HistGradientBoosting, {name}", roc_auc_score(label[is_test], p)))
    try:
        import lightgbm

        lgb = lightgbm.LGBMClassifier(random_state=42, verbose=-1)
        lgb.fit(raw.loc[~is_test, columns], label[~is_test])
        p = lgb.predict_proba(raw.loc[is_test, columns])[:, 1]
        rows.append((f"LightGBM (defaults), {name}", roc_auc_score(label[is_test], p)))
    except ImportError:
        pass

print(f"held-out rows: {int(is_test.sum())}, training rows for the baselines: {int((~is_test).sum())}\n")
print("| model | held-out ROC AUC |\n|---|---|")
for name, auc in rows:
    print(f"| {name} | {auc:.4f} |")
