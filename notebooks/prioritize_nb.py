"""What the notebooks share: finding and running the `prioritize` CLI, a
workspace of simulated books and trained models (made once, then reused),
reading what the CLI writes, and the few metrics the notebooks draw.

Settings come from the environment, so that CI can run every notebook on a
small book:

- PRIORITIZE_BIN: the binary (default: the newest release, else debug, build
  found under target/ or $CARGO_TARGET_DIR or ~/.cache/prioritize-target).
- PRIORITIZE_NB_ACCOUNTS: accounts per simulated book (default 20,000).
- PRIORITIZE_NB_WORK: where books, models and plans go (default notebooks/work).
- PRIORITIZE_NB_TREES: most trees per ensemble when training (default 600, the CLI's).
- PRIORITIZE_NB_SEARCH: further tree configurations `train` tries (default: the CLI's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = int(os.environ.get("PRIORITIZE_NB_ACCOUNTS", "20000"))
WORK = Path(os.environ.get("PRIORITIZE_NB_WORK", ROOT / "notebooks" / "work"))
TREES = int(os.environ.get("PRIORITIZE_NB_TREES", "600"))
SEARCH = os.environ.get("PRIORITIZE_NB_SEARCH")
AS_OF = "2026-09-30"  # the simulator's default as-of day
DPD_BUCKETS = ["current", "1-30", "31-60", "61-90", "91-180", "180+"]
# Risk tiers by calibrated P(pay), as the server's default config cuts them.
RISK_TIERS = [("very_high", 0.0), ("high", 0.25), ("medium", 0.5), ("low", 0.75)]
RISK_COLOURS = {"very_high": "#d73027", "high": "#fc8d59", "medium": "#91bfdb", "low": "#4575b4"}


def binary() -> Path:
    """The `prioritize` binary: $PRIORITIZE_BIN, else the newest build found."""
    if os.environ.get("PRIORITIZE_BIN"):
        return Path(os.environ["PRIORITIZE_BIN"])
    roots = [ROOT / "target", Path.home() / ".cache" / "prioritize-target"]
    if os.environ.get("CARGO_TARGET_DIR"):
        roots.insert(0, Path(os.environ["CARGO_TARGET_DIR"]))
    found = [r / profile / "prioritize" for r in roots for profile in ("release", "debug")]
    found = [p for p in found if p.is_file()]
    if found:
        # Prefer a release build; among equals, the newest.
        return max(found, key=lambda p: (p.parent.name == "release", p.stat().st_mtime))
    on_path = shutil.which("prioritize")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        "no prioritize binary: run `cargo build --release` in the repository, or set PRIORITIZE_BIN"
    )


def run(*args, quiet: bool = True) -> str:
    """Runs `prioritize ARGS`, returns what it printed, raises with its error."""
    command = [str(binary()), *map(str, args)]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    if not quiet:
        print(f"$ prioritize {' '.join(map(str, args))}   ({time.time() - started:.1f} s)")
    return done.stdout


def book(seed: int = 7, accounts: int = ACCOUNTS) -> tuple[Path, Path]:
    """A simulated book (data folder) and the simulator's hidden truth, made once."""
    data = WORK / f"book-{accounts}-seed{seed}"
    truth = WORK / f"truth-{accounts}-seed{seed}.parquet"
    if not (data.is_dir() and truth.is_file()):
        WORK.mkdir(parents=True, exist_ok=True)
        run("simulate", "--accounts", accounts, "--seed", seed, "--format", "parquet",
            "--out", data, "--truth-out", truth, quiet=False)
    return data, truth


def uci() -> Path:
    """The public UCI credit-card data as the contract's tables, made once."""
    data = WORK / "uci"
    if not data.is_dir():
        WORK.mkdir(parents=True, exist_ok=True)
        run("import-uci", "--input", ROOT / "data" / "uci_credit_card_train.csv", "--out", data, quiet=False)
    return data


def train(data: Path, name: str, *options) -> Path:
    """A model trained on `data` with CLI `options`, made once per name; its
    held-out rows with their predicted P(pay) go to `holdout.csv` beside it."""
    folder = WORK / "models" / name
    if not (folder / "model.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        holdout = WORK / "models" / f"{name}.holdout.csv"
        trees = [] if "--trees" in options else ["--trees", TREES]
        search = [] if "--search" in options or SEARCH is None else ["--search", SEARCH]
        run("train", "--data", data, "--out", folder, "--holdout-out", holdout, *trees, *search, *options, quiet=False)
    return folder


def holdout(model: Path) -> pl.DataFrame:
    """The held-out rows of a model trained by `train`: account_id, as_of, paid, p_pay."""
    return pl.read_csv(model.parent / f"{model.name}.holdout.csv", try_parse_dates=True)


def model_meta(model: Path) -> dict:
    """The model's `model.json`."""
    return json.loads((model / "model.json").read_text())


def table(data: Path, name: str) -> pl.DataFrame:
    """One contract table of a data folder, CSV or Parquet."""
    parquet, csv = data / f"{name}.parquet", data / f"{name}.csv"
    if parquet.is_file():
        return pl.read_parquet(parquet)
    return pl.read_csv(csv, try_parse_dates=True, infer_schema_length=None)


def features(data: Path, as_of: str | None = None) -> pl.DataFrame:
    """`prioritize features`: one row per account on `as_of`, else per outcomes row."""
    out = WORK / f"features-{data.name}-{as_of or 'outcomes'}.parquet"
    if not out.is_file():
        run("features", "--data", data, "--out", out, *(["--as-of", as_of] if as_of else []))
    return pl.read_parquet(out)


def score(data: Path, model: Path, as_of: str | None = None) -> pl.DataFrame:
    """`prioritize score`: account_id, as_of, p_pay, reasons."""
    out = WORK / f"score-{data.name}-{model.name}-{as_of or 'outcomes'}.csv"
    if not out.is_file():
        run("score", "--data", data, "--model", model, "--out", out, *(["--as-of", as_of] if as_of else []))
    return pl.read_csv(out, try_parse_dates=True)


def evaluate_policy(data: Path, model: Path, truth: Path | None = None, capacities: dict | None = None) -> dict:
    """`prioritize evaluate-policy --json`: each policy's estimated (and, with
    the truth, true) mean net value per account, and the use of capacity."""
    out = WORK / "policy.json"
    flags = [f for s, n in (capacities or {}).items() for f in ("--capacity", f"{s}={n}")]
    run("evaluate-policy", "--data", data, "--model", model, "--json", out,
        *(["--truth", truth] if truth else []), *flags)
    return json.loads(out.read_text())


def plan(data: Path, model: Path, capacities: dict, as_of: str = AS_OF) -> pl.DataFrame:
    """`prioritize plan` under `capacities`: one row per account."""
    out = WORK / f"plan-{data.name}-{model.name}.csv"
    flags = [f for s, n in capacities.items() for f in ("--capacity", f"{s}={n}")]
    run("plan", "--data", data, "--model", model, "--as-of", as_of, "--out", out, *flags)
    return pl.read_csv(out, infer_schema_length=None)


def capacities(accounts: int) -> dict:
    """Capacities that bind, scaled to the book (as `benches/plan.sh` and the demo set them)."""
    shares = {"call": 25, "settlement_offer": 100, "installment_plan": 50, "demand_letter": 20,
              "field_visit": 500, "legal": 400, "agency": 200}
    return {s: max(1, accounts // d) for s, d in shares.items()}


def dpd_bucket(days: pl.Expr) -> pl.Expr:
    """The days-past-due bucket, as the service cuts it."""
    return (pl.when(days <= 0).then(pl.lit("current"))
            .when(days <= 30).then(pl.lit("1-30"))
            .when(days <= 60).then(pl.lit("31-60"))
            .when(days <= 90).then(pl.lit("61-90"))
            .when(days <= 180).then(pl.lit("91-180"))
            .otherwise(pl.lit("180+")))


def risk_tier(p_pay: pl.Expr) -> pl.Expr:
    """The risk tier of a calibrated P(pay), as the service's default config cuts it."""
    expr = pl.lit(RISK_TIERS[0][0])
    for name, start in RISK_TIERS[1:]:
        expr = pl.when(p_pay >= start).then(pl.lit(name)).otherwise(expr)
    return expr


# ---- metrics (numpy only) ----

def roc_curve(p: np.ndarray, paid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates, thresholds from high to low."""
    order = np.argsort(-p, kind="stable")
    hits = paid[order].astype(float)
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(hits.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - hits) / max((1 - hits).sum(), 1)])
    return fpr, tpr


def roc_auc(p: np.ndarray, paid: np.ndarray) -> float:
    """Probability that a payer is ranked above a non-payer (ties count half)."""
    ranks = pl.Series(p).rank("average").to_numpy()
    positives = paid.astype(bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(p: np.ndarray, paid: np.ndarray) -> float:
    return float(np.mean((p - paid.astype(float)) ** 2))


def deciles(p: np.ndarray, paid: np.ndarray) -> pl.DataFrame:
    """Mean predicted and observed rate by tenth of the predictions (1 = highest), with lift."""
    frame = pl.DataFrame({"p": p, "paid": paid.astype(float)}).sort("p", descending=True)
    n = frame.height
    frame = frame.with_columns((pl.int_range(0, n) * 10 // n + 1).alias("decile"))
    out = frame.group_by("decile").agg(
        pl.len().alias("rows"), pl.col("p").mean().alias("mean_predicted"), pl.col("paid").mean().alias("observed_rate")
    ).sort("decile")
    return out.with_columns((pl.col("observed_rate") / frame["paid"].mean()).alias("lift"))


def woe_iv(values: pl.Series, paid: np.ndarray, bins: int = 10) -> tuple[pl.DataFrame, float]:
    """Weight of evidence by quantile bin and the information value of one
    feature. WoE = ln(share of payers / share of non-payers) in the bin;
    missing values get a bin of their own; 0.5 is added to empty counts."""
    x = values.cast(pl.Float64).to_numpy()
    paid = paid.astype(bool)
    present = ~np.isnan(x)
    cuts = np.unique(np.quantile(x[present], np.linspace(0, 1, bins + 1))[1:-1]) if present.any() else np.array([])
    index = np.where(present, np.searchsorted(cuts, np.nan_to_num(x), side="left"), len(cuts) + 1)
    labels = [f"≤ {c:.4g}" for c in cuts] + [f"> {cuts[-1]:.4g}" if len(cuts) else "all", "missing"]
    payers_all, others_all = max(paid.sum(), 1), max((~paid).sum(), 1)
    rows = []
    for k, label in enumerate(labels):
        in_bin = index == k
        if not in_bin.any():
            continue
        payers, others = int((in_bin & paid).sum()), int((in_bin & ~paid).sum())
        good, bad = max(payers, 0.5) / payers_all, max(others, 0.5) / others_all
        woe = float(np.log(good / bad))
        rows.append({"bin": label, "rows": int(in_bin.sum()), "payers": payers, "non_payers": others,
                     "woe": woe, "iv_part": (good - bad) * woe})
    table = pl.DataFrame(rows)
    return table, float(table["iv_part"].sum())


def iv_strength(iv: float) -> str:
    """The usual reading of an information value."""
    if iv < 0.02:
        return "useless"
    if iv < 0.1:
        return "weak"
    if iv < 0.3:
        return "medium"
    if iv < 0.5:
        return "strong"
    return "suspicious (check for leakage)"
