//! Features from `payment_history`: one row per (account_id, as_of), using
//! only the cycles that ended on or before `as_of`.

use polars::prelude::*;

/// Payment cycles of each spine row that ended on or before its `as_of`. Money becomes `f64`
/// here: it is a model input, never stored or summed for display.
pub fn cycles_as_of(payment_history: LazyFrame, spine: &super::Spine) -> LazyFrame {
    let f64_ = |name: &str| col(name).cast(DataType::Float64);
    let cycles = payment_history.select([
        col("account_id"),
        col("cycle_end"),
        f64_("amount_due").alias("due"),
        f64_("amount_paid").alias("paid"),
        f64_("balance").alias("statement_balance"),
        f64_("days_past_due").alias("dpd"),
    ]);
    spine
        .attach(cycles)
        .filter(col("cycle_end").lt_eq(col("as_of")))
}

/// Adds `back`: 0 for the latest cycle of each spine row, 1 for the one before…
pub fn ranked(cycles: LazyFrame) -> LazyFrame {
    cycles.with_column(
        col("cycle_end")
            .rank(
                RankOptions {
                    method: RankMethod::Ordinal,
                    descending: true,
                },
                None,
            )
            .over([col("account_id"), col("as_of")])
            .cast(DataType::Int32)
            .alias("back")
            - lit(1),
    )
}

fn within(cycles: i32) -> Expr {
    col("back").lt(lit(cycles))
}

fn sum_within(name: &str, cycles: i32) -> Expr {
    when(within(cycles))
        .then(col(name))
        .otherwise(lit(0.0))
        .sum()
}

fn count_within(condition: Expr, cycles: i32) -> Expr {
    (condition.and(within(cycles)))
        .cast(DataType::Float64)
        .sum()
}

fn at_back(name: &str, back: i32) -> Expr {
    col(name).filter(col("back").eq(lit(back))).first()
}

/// Share paid over due in a window; 1 when nothing was due; capped at 3.
fn paid_share(paid: Expr, due: Expr) -> Expr {
    when(due.clone().gt(lit(0.0)))
        .then((paid / due).clip(lit(0.0), lit(3.0)))
        .otherwise(lit(1.0))
}

/// One row of payment features per (account_id, as_of) that has history, from
/// [`ranked`] cycles: the reference definition that [`super::payment_kernel`]
/// computes in one pass (a test holds the two equal).
pub fn payment_features(cycles: LazyFrame) -> LazyFrame {
    let owed = col("due").gt(lit(0.005));
    let missed = owed.clone().and(col("paid").lt(col("due") - lit(0.005)));
    let no_payment = owed.clone().and(col("paid").lt_eq(lit(0.0)));
    let catch_up = owed.and(col("paid").gt(col("due") + lit(0.005)));
    let mut aggregates = vec![
        len().cast(DataType::Float64).alias("cycles_on_record"),
        at_back("statement_balance", 0).alias("balance"),
        at_back("due", 0).alias("latest_due"),
        at_back("paid", 0).alias("latest_paid"),
        at_back("dpd", 0).alias("days_past_due"),
        at_back("statement_balance", 3).alias("balance_3_back"),
        count_within(no_payment.clone(), 6).alias("cycles_no_payment_6"),
        count_within(no_payment, 12).alias("cycles_no_payment_12"),
        count_within(catch_up.clone(), 6).alias("catch_up_payments_6"),
        count_within(catch_up, 12).alias("catch_up_payments_12"),
        col("back")
            .filter(missed.not())
            .min()
            .cast(DataType::Float64)
            .alias("first_not_missed"),
        (when(col("back").gt_eq(lit(3)).and(within(6)))
            .then(col("paid"))
            .otherwise(lit(0.0))
            .sum())
        .alias("paid_4_6"),
        (when(col("back").gt_eq(lit(3)).and(within(6)))
            .then(col("due"))
            .otherwise(lit(0.0))
            .sum())
        .alias("due_4_6"),
    ];
    for window in [3, 6, 12] {
        aggregates.push(
            when(within(window))
                .then(col("dpd"))
                .otherwise(lit(0.0))
                .max()
                .alias(format!("max_dpd_{window}")),
        );
        aggregates.push(sum_within("paid", window).alias(format!("paid_{window}")));
        aggregates.push(sum_within("due", window).alias(format!("due_{window}")));
    }
    cycles
        .group_by([col("account_id"), col("as_of")])
        .agg(aggregates)
        .with_columns([
            paid_share(col("paid_3"), col("due_3")).alias("paid_share_3"),
            paid_share(col("paid_6"), col("due_6")).alias("paid_share_6"),
            paid_share(col("paid_12"), col("due_12")).alias("paid_share_12"),
            (paid_share(col("paid_3"), col("due_3")) - paid_share(col("paid_4_6"), col("due_4_6")))
                .alias("payment_trend"),
            col("first_not_missed")
                .fill_null(col("cycles_on_record"))
                .alias("consecutive_missed"),
            when(col("balance").gt(lit(0.0)))
                .then(
                    ((col("latest_due") - col("latest_paid")).clip_min(lit(0.0)) / col("balance"))
                        .clip(lit(0.0), lit(1.0)),
                )
                .otherwise(lit(0.0))
                .alias("past_due_share"),
            when(col("balance_3_back").abs().gt(lit(1.0)))
                .then(
                    ((col("balance") - col("balance_3_back")) / col("balance_3_back").abs())
                        .clip(lit(-1.0), lit(3.0)),
                )
                .otherwise(lit(0.0))
                .alias("balance_change_3"),
            dpd_bucket(col("days_past_due")).alias("dpd_bucket"),
            paid_share(col("latest_paid"), col("latest_due")).alias("paid_share_1"),
            col("latest_paid").alias("last_payment"),
        ])
}

/// Days past due into the contract's buckets: 0 current, 1: 1–30, 2: 31–60,
/// 3: 61–90, 4: 91–180, 5: over 180.
pub fn dpd_bucket(days: Expr) -> Expr {
    when(days.clone().lt_eq(lit(0.0)))
        .then(lit(0.0))
        .when(days.clone().lt_eq(lit(30.0)))
        .then(lit(1.0))
        .when(days.clone().lt_eq(lit(60.0)))
        .then(lit(2.0))
        .when(days.clone().lt_eq(lit(90.0)))
        .then(lit(3.0))
        .when(days.lt_eq(lit(180.0)))
        .then(lit(4.0))
        .otherwise(lit(5.0))
}
