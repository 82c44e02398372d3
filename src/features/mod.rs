//! The feature pipeline: one row of model inputs per (account_id, as_of),
//! computed with polars' lazy API from the contract tables.
//!
//! Point-in-time: every feature uses only data dated on or before its row's
//! `as_of` (payment cycles that ended by then, contacts made by then in the
//! account's time zone). From the `accounts` snapshot, which describes the
//! folder's latest day, only fields that do not change are used (product,
//! opening date, credit limit), so adding later data never changes a row.

pub mod catalog;
pub mod contact_kernel;
pub mod contacts;
pub mod payment_kernel;
pub mod payments;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::contract::parse::date_to_days;
use crate::contract::DataSet;

/// Errors of the feature pipeline.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("computing features: {0}")]
    Polars(#[from] PolarsError),
    #[error("{0}")]
    Spine(String),
}

/// How rows of a history table meet the spine's rows.
pub enum Spine {
    /// Every spine row has this `as_of` (days since 1970-01-01): history rows
    /// only need the date as a column, not a join on `account_id`.
    OneDay(i32),
    /// Spine rows with several dates: history rows are joined to them.
    Rows(Box<LazyFrame>),
}

impl Spine {
    /// The kind of spine: one day for every row, or several dates.
    pub fn of(spine: &DataFrame) -> Result<Spine, FeatureError> {
        let days = spine.column("as_of")?.date()?.physical().clone();
        match (days.min(), days.max()) {
            (Some(first), Some(last)) if first == last && days.null_count() == 0 => {
                Ok(Spine::OneDay(first))
            }
            _ => Ok(Spine::Rows(Box::new(
                spine.select(["account_id", "as_of"])?.lazy(),
            ))),
        }
    }

    /// Gives each history row an `as_of` for every spine row of its account.
    pub fn attach(&self, history: LazyFrame) -> LazyFrame {
        match self {
            Spine::OneDay(day) => {
                history.with_column(lit(*day).cast(DataType::Date).alias("as_of"))
            }
            Spine::Rows(spine) => history.join(
                (**spine).clone(),
                [col("account_id")],
                [col("account_id")],
                JoinArgs::new(JoinType::Inner),
            ),
        }
    }
}

/// Feature rows for every account on one day: the spine of `plan` and of
/// `features --as-of`.
pub fn spine_for_date(accounts: &DataFrame, as_of: NaiveDate) -> Result<DataFrame, FeatureError> {
    let ids = accounts.column("account_id")?.clone();
    let dates = Int32Chunked::full("as_of".into(), date_to_days(as_of), ids.len())
        .into_date()
        .into_column();
    Ok(DataFrame::new(vec![ids, dates])?)
}

/// Feature rows for every logged decision: the spine of training.
pub fn spine_from_outcomes(outcomes: &DataFrame) -> Result<DataFrame, FeatureError> {
    if outcomes.height() == 0 {
        return Err(FeatureError::Spine(
            "the data folder has no outcomes rows; give --as-of DATE".into(),
        ));
    }
    Ok(outcomes.select(["account_id", "as_of"])?)
}

/// Computes the documented features of [`catalog`] for each spine row.
/// Output columns: `account_id`, `as_of`, the numeric features in catalogue
/// order (f64, no nulls), then `product`.
pub fn build(data: &DataSet, spine: &DataFrame) -> Result<DataFrame, FeatureError> {
    let started = std::time::Instant::now();
    let keys = spine.select(["account_id", "as_of"])?;
    let spine_lazy = keys.clone().lazy();
    let lap =
        |stage: &str| tracing::info!(seconds = started.elapsed().as_secs_f64(), stage, "features");
    let history = payment_kernel::sorted_history(&data.payment_history)?;
    // The actions' local dates need only the accounts: they are worked out
    // beside the payment features.
    let (indexed, payment, actions) = std::thread::scope(|scope| {
        let actions = scope.spawn(|| {
            let actions = contacts::with_local_dates(&data.actions, &data.accounts);
            lap("local dates of actions");
            actions
        });
        let payment = (|| -> Result<_, FeatureError> {
            let indexed = payment_kernel::Cycles::new(&history)?;
            let payment = payment_kernel::payment_features(&indexed, &keys)?.lazy();
            lap("payment features");
            Ok((indexed, payment))
        })();
        let actions = actions
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        payment.map(|(indexed, payment)| (indexed, payment, actions))
    })?;
    let actions = actions?;
    let contact = contact_kernel::contact_features(&actions, &indexed, &keys)?.lazy();
    lap("contact features");
    let statics = data.accounts.clone().lazy().select([
        col("account_id"),
        col("product"),
        col("opened_on"),
        col("credit_limit")
            .cast(DataType::Float64)
            .alias("credit_limit"),
    ]);
    let key = [col("account_id"), col("as_of")];
    let left = || JoinArgs::new(JoinType::Left);
    let joined = spine_lazy
        .join(payment, key.clone(), key.clone(), left())
        .join(contact, key.clone(), key.clone(), left())
        .join(statics, [col("account_id")], [col("account_id")], left())
        .with_columns([
            when(col("credit_limit").gt(lit(0.0)))
                .then(col("balance").fill_null(lit(0.0)) / col("credit_limit"))
                .otherwise(lit(0.0))
                .alias("utilisation"),
            ((col("as_of").cast(DataType::Int32) - col("opened_on").cast(DataType::Int32))
                .cast(DataType::Float64)
                / lit(30.4375))
            .floor()
            .clip_min(lit(0.0))
            .alias("months_on_book"),
        ]);
    let mut outputs = vec![col("account_id"), col("as_of")];
    for doc in catalog::NUMERIC {
        let fill = match doc.name {
            "days_since_last_contact" | "days_since_last_conversation" => lit(365.0),
            name if name.starts_with("paid_share_") => lit(1.0),
            _ => lit(0.0),
        };
        let value = col(doc.name).cast(DataType::Float64).fill_null(fill);
        let value = if doc.name.starts_with("days_since_") {
            value.clip_max(lit(365.0))
        } else {
            value
        };
        outputs.push(value.alias(doc.name));
    }
    outputs.push(col("product"));
    let features = joined
        .select(outputs)
        .sort(["account_id", "as_of"], Default::default())
        .collect()?;
    lap("joined and sorted");
    Ok(features)
}

#[cfg(test)]
mod tests;
