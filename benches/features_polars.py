#!/usr/bin/env python3
"""The Python polars peer of `prioritize features --data DIR --as-of DAY`: the
same feature list (`prioritize features --list`), written the way a data
scientist would write it in an afternoon, with polars' lazy API over the same
data folder, so that `benches/features_peer.sh` can run both side by side.

    python3 benches/features_polars.py --data DIR --as-of 2026-09-30 --out F.parquet

One row per account on the day: `account_id`, `as_of`, the numeric features in
catalogue order (f64, no nulls) and `product`, sorted by account_id, as
prioritize writes them. The peer reads only the columns it needs and checks
nothing (prioritize also checks every contract rule of the four tables).
`--compare PRIORITIZE.parquet` then reports the largest difference per column
from prioritize's output, and fails if any exceeds 1e-9.
"""

import argparse
import datetime as dt
import os
import sys

import polars as pl

NUMERIC = [
    "balance", "past_due_share", "utilisation", "days_past_due", "dpd_bucket",
    "max_dpd_3", "max_dpd_6", "max_dpd_12", "paid_share_1", "last_payment",
    "paid_share_3", "paid_share_6", "paid_share_12", "cycles_no_payment_6",
    "cycles_no_payment_12", "consecutive_missed", "catch_up_payments_6",
    "catch_up_payments_12", "payment_trend", "balance_change_3", "cycles_on_record",
    "credit_limit", "months_on_book", "calls_7d", "calls_30d", "contacts_30d",
    "call_attempts_180d", "right_party_rate_180d", "refusals_180d", "disputes_180d",
    "promises_made_180d", "promises_broken_180d", "open_promise",
    "days_since_last_contact", "days_since_last_conversation",
]
CONVERSATIONS = ["right_party_contact", "promise_to_pay", "refused", "dispute"]
EPS = 0.005


def scan(folder, name):
    parquet = os.path.join(folder, f"{name}.parquet")
    if os.path.exists(parquet):
        return pl.scan_parquet(parquet)
    return pl.scan_csv(os.path.join(folder, f"{name}.csv"), try_parse_dates=True)


def paid_share(paid, due):
    return pl.when(due > 0).then((paid / due).clip(0.0, 3.0)).otherwise(1.0)


def payment_features(history, as_of):
    cycles = (
        history.select(
            "account_id",
            "cycle_end",
            pl.col("amount_due").cast(pl.Float64).alias("due"),
            pl.col("amount_paid").cast(pl.Float64).alias("paid"),
            pl.col("balance").cast(pl.Float64).alias("statement_balance"),
            pl.col("days_past_due").cast(pl.Float64).alias("dpd"),
        )
        .filter(pl.col("cycle_end") <= as_of)
        .with_columns(
            (pl.col("cycle_end").rank("ordinal", descending=True).over("account_id") - 1)
            .cast(pl.Int32)
            .alias("back")
        )
    )
    back, due, paid = pl.col("back"), pl.col("due"), pl.col("paid")
    owed = due > EPS
    missed = owed & (paid < due - EPS)
    no_payment = owed & (paid <= 0)
    catch_up = owed & (paid > due + EPS)

    def at(name, k):
        return pl.col(name).filter(back == k).first()

    def within_sum(expr, w):
        return pl.when(back < w).then(expr).otherwise(0.0).sum()

    aggs = [
        pl.len().cast(pl.Float64).alias("cycles_on_record"),
        at("statement_balance", 0).alias("balance"),
        at("due", 0).alias("latest_due"),
        at("paid", 0).alias("latest_paid"),
        at("dpd", 0).alias("days_past_due"),
        at("statement_balance", 3).alias("balance_3_back"),
        back.filter(~missed).min().cast(pl.Float64).alias("first_not_missed"),
        pl.when((back >= 3) & (back < 6)).then(paid).otherwise(0.0).sum().alias("paid_4_6"),
        pl.when((back >= 3) & (back < 6)).then(due).otherwise(0.0).sum().alias("due_4_6"),
    ]
    for w in (6, 12):
        aggs.append((no_payment & (back < w)).cast(pl.Float64).sum().alias(f"cycles_no_payment_{w}"))
        aggs.append((catch_up & (back < w)).cast(pl.Float64).sum().alias(f"catch_up_payments_{w}"))
    for w in (3, 6, 12):
        aggs.append(pl.when(back < w).then(pl.col("dpd")).otherwise(0.0).max().alias(f"max_dpd_{w}"))
        aggs.append(within_sum(paid, w).alias(f"paid_{w}"))
        aggs.append(within_sum(due, w).alias(f"due_{w}"))
    days = pl.col("days_past_due")
    features = cycles.group_by("account_id").agg(aggs).with_columns(
        paid_share(pl.col("paid_3"), pl.col("due_3")).alias("paid_share_3"),
        paid_share(pl.col("paid_6"), pl.col("due_6")).alias("paid_share_6"),
        paid_share(pl.col("paid_12"), pl.col("due_12")).alias("paid_share_12"),
        (paid_share(pl.col("paid_3"), pl.col("due_3")) - paid_share(pl.col("paid_4_6"), pl.col("due_4_6")))
        .alias("payment_trend"),
        pl.col("first_not_missed").fill_null(pl.col("cycles_on_record")).alias("consecutive_missed"),
        pl.when(pl.col("balance") > 0)
        .then(((pl.col("latest_due") - pl.col("latest_paid")).clip(lower_bound=0) / pl.col("balance")).clip(0.0, 1.0))
        .otherwise(0.0)
        .alias("past_due_share"),
        pl.when(pl.col("balance_3_back").abs() > 1.0)
        .then(((pl.col("balance") - pl.col("balance_3_back")) / pl.col("balance_3_back").abs()).clip(-1.0, 3.0))
        .otherwise(0.0)
        .alias("balance_change_3"),
        pl.when(days <= 0).then(0.0).when(days <= 30).then(1.0).when(days <= 60).then(2.0)
        .when(days <= 90).then(3.0).when(days <= 180).then(4.0).otherwise(5.0)
        .alias("dpd_bucket"),
        paid_share(pl.col("latest_paid"), pl.col("latest_due")).alias("paid_share_1"),
        pl.col("latest_paid").alias("last_payment"),
    )
    return cycles, features


def local_dates(actions, accounts):
    """Each contact's calendar day in its account's time zone: one conversion
    per zone (polars converts a column to one zone at a time)."""
    zones = accounts.select("timezone").unique().collect()["timezone"].to_list()
    joined = actions.join(accounts.select("account_id", "timezone"), on="account_id", how="left")
    at = pl.col("at")
    if joined.collect_schema()["at"].time_zone is None:
        at = at.dt.replace_time_zone("UTC")
    parts = [
        joined.filter(pl.col("timezone") == zone).with_columns(
            at.dt.convert_time_zone(zone).dt.date().alias("local_date")
        )
        for zone in zones
    ]
    return pl.concat(parts).drop("timezone", "at")


def contact_features(actions, paid_cycles, as_of):
    day = pl.lit(as_of)
    contacts = actions.filter(pl.col("local_date") <= day).with_columns(
        (day - pl.col("local_date")).dt.total_days().cast(pl.Int32).alias("age")
    )
    call = pl.col("channel") == "call"
    conversation = pl.col("outcome").is_in(CONVERSATIONS)
    promise = pl.col("outcome") == "promise_to_pay"
    age = pl.col("age")
    count = lambda cond: cond.cast(pl.Float64).sum()
    counts = contacts.group_by("account_id").agg(
        count(call & (age < 7)).alias("calls_7d"),
        count(call & (age < 30)).alias("calls_30d"),
        count(age < 30).alias("contacts_30d"),
        count(call & (age < 180)).alias("call_attempts_180d"),
        count(conversation & (age < 180)).alias("conversations_180d"),
        count((pl.col("outcome") == "refused") & (age < 180)).alias("refusals_180d"),
        count((pl.col("outcome") == "dispute") & (age < 180)).alias("disputes_180d"),
        count(promise & (age < 180)).alias("promises_made_180d"),
        count(promise & (pl.col("promised_on") >= day)).clip(upper_bound=1.0).alias("open_promise"),
        age.min().cast(pl.Float64).alias("days_since_last_contact"),
        age.filter(conversation).min().cast(pl.Float64).alias("days_since_last_conversation"),
    )
    due = (
        contacts.filter(promise & (age < 180) & (pl.col("promised_on") < day))
        .select("account_id", pl.col("local_date").alias("made"), "promised_on")
        .with_row_index("promise")
    )
    paid_actions = contacts.filter(pl.col("outcome") == "paid").select(
        "account_id", pl.col("local_date").alias("evidence")
    )
    evidence = paid_cycles.select("account_id", pl.col("cycle_end").alias("evidence"))

    def kept(ev, grace):
        return (
            due.join(ev, on="account_id")
            .filter(
                (pl.col("evidence") >= pl.col("made"))
                & (pl.col("evidence") <= pl.col("promised_on") + pl.duration(days=grace))
            )
            .select("promise")
        )

    kept_ids = pl.concat([kept(paid_actions, 3), kept(evidence, 31)]).unique()
    broken = (
        due.join(kept_ids, on="promise", how="anti")
        .group_by("account_id")
        .agg(pl.len().cast(pl.Float64).alias("promises_broken_180d"))
    )
    return counts.join(broken, on="account_id", how="left").with_columns(
        pl.col("promises_broken_180d").fill_null(0.0),
        pl.when(pl.col("call_attempts_180d") > 0)
        .then((pl.col("conversations_180d") / pl.col("call_attempts_180d")).clip(upper_bound=1.0))
        .otherwise(0.0)
        .alias("right_party_rate_180d"),
    )


def build(folder, as_of):
    accounts = scan(folder, "accounts").select(
        "account_id", "product", "opened_on", "credit_limit", "timezone"
    )
    history = scan(folder, "payment_history").select(
        "account_id", "cycle_end", "amount_due", "amount_paid", "balance", "days_past_due"
    )
    actions = scan(folder, "actions").select(
        "account_id", "at", "channel", "outcome", "promised_on"
    )
    cycles, payment = payment_features(history, as_of)
    paid_cycles = cycles.filter(pl.col("paid") > 0).select("account_id", "cycle_end")
    contact = contact_features(local_dates(actions, accounts), paid_cycles, as_of)
    day = pl.lit(as_of)
    joined = (
        accounts.join(payment, on="account_id", how="left")
        .join(contact, on="account_id", how="left")
        .with_columns(
            day.alias("as_of"),
            pl.col("credit_limit").cast(pl.Float64).fill_null(0.0),
        )
        .with_columns(
            pl.when(pl.col("credit_limit") > 0)
            .then(pl.col("balance").fill_null(0.0) / pl.col("credit_limit"))
            .otherwise(0.0)
            .alias("utilisation"),
            ((day - pl.col("opened_on")).dt.total_days().cast(pl.Float64) / 30.4375)
            .floor()
            .clip(lower_bound=0.0)
            .alias("months_on_book"),
        )
    )
    outputs = []
    for name in NUMERIC:
        if name.startswith("days_since_"):
            value = pl.col(name).cast(pl.Float64).fill_null(365.0).clip(upper_bound=365.0)
        elif name.startswith("paid_share_"):
            value = pl.col(name).cast(pl.Float64).fill_null(1.0)
        else:
            value = pl.col(name).cast(pl.Float64).fill_null(0.0)
        outputs.append(value.alias(name))
    return joined.select("account_id", "as_of", *outputs, "product").sort("account_id")


def compare(ours, theirs):
    a, b = pl.read_parquet(ours), pl.read_parquet(theirs)
    if a.height != b.height or a["account_id"].to_list() != b["account_id"].to_list():
        sys.exit(f"different rows: {a.height} here, {b.height} in {theirs}")
    worst = 0.0
    for name in NUMERIC:
        diff = (a[name] - b[name]).abs().max()
        worst = max(worst, diff)
        if diff > 1e-9:
            print(f"{name}: differs by up to {diff}", file=sys.stderr)
    if a["product"].to_list() != b["product"].to_list():
        sys.exit("product differs")
    if worst > 1e-9:
        sys.exit("the peer's features differ from prioritize's")
    print(f"same {a.height} rows and {len(NUMERIC)} features as {theirs} (largest difference {worst:g})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare")
    args = parser.parse_args()
    build(args.data, args.as_of).sink_parquet(args.out, compression="zstd", compression_level=1)
    if args.compare:
        compare(args.out, args.compare)


if __name__ == "__main__":
    main()
