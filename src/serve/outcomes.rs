//! The contract's `outcomes` table built from what the service decided and
//! what followed: every served decision (the stored decisions of the last
//! plan activated on each day) whose horizon has passed, with `paid` and
//! `paid_amount` from the payments within the horizon.
//!
//! Payments are known per billing cycle (`payment_history`): a cycle whose
//! `cycle_end` falls within the horizon, the days after the decision's day up
//! to and including `as_of + horizon`, counts with its whole `amount_paid`. A
//! `paid` action (in the data folder's `actions` or recorded through the API)
//! within the horizon, by its UTC date, makes the row paid even before the
//! cycle that carries the money ends; it adds no amount.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use polars::prelude::*;

use super::store::decisions::Decisions;
use crate::contract::parse::{date_to_days, days_to_date, money_column};
use crate::contract::DataSet;

/// The outcomes rows and what was left out.
pub struct Built {
    /// `account_id, as_of, strategy, paid, paid_amount, propensity, model_version`,
    /// by `as_of` then `account_id`.
    pub frame: DataFrame,
    /// Decisions whose horizon has not passed by `through` (left out).
    pub pending: usize,
    /// Days whose decisions matured, and the day outcomes are known through.
    pub days: Vec<NaiveDate>,
    pub through: NaiveDate,
}

/// The last day the data folder knows payments and contacts of: its latest
/// `cycle_end` or action, or an API action's UTC date (`api_paid`), whichever is later.
pub fn known_through(
    data: &DataSet,
    api_latest: Option<NaiveDate>,
) -> PolarsResult<Option<NaiveDate>> {
    let cycles = data
        .payment_history
        .column("cycle_end")?
        .date()?
        .physical()
        .max();
    let actions = data
        .actions
        .column("at")?
        .datetime()?
        .physical()
        .max()
        .map(|micros| micros.div_euclid(86_400_000_000) as i32);
    Ok([cycles, actions, api_latest.map(date_to_days)]
        .into_iter()
        .flatten()
        .max()
        .map(days_to_date))
}

/// The day payments are known through: `through` if given, else the data
/// folder's latest cycle end or action, or the latest `paid` action recorded
/// through the API (`api_paid`), whichever is later.
pub fn through(
    data: &DataSet,
    api_paid: &[(String, i64)],
    through: Option<NaiveDate>,
) -> PolarsResult<Option<NaiveDate>> {
    if through.is_some() {
        return Ok(through);
    }
    let api_latest = api_paid
        .iter()
        .map(|(_, at)| at)
        .max()
        .and_then(|&at| chrono::DateTime::from_timestamp_micros(at))
        .map(|t| t.date_naive());
    known_through(data, api_latest)
}

/// Builds the outcomes of `decisions` known by `through`, with a horizon of
/// `horizon_days`; `api_paid` are `paid` actions recorded through the API
/// (account, microseconds since the epoch).
pub fn build(
    decisions: &[Decisions],
    data: &DataSet,
    api_paid: &[(String, i64)],
    horizon_days: i64,
    through: NaiveDate,
) -> PolarsResult<Built> {
    // The last plan activated on each day is what was served that day.
    let mut served: BTreeMap<NaiveDate, &Decisions> = BTreeMap::new();
    for d in decisions.iter().filter(|d| d.activated) {
        let entry = served.entry(d.day).or_insert(d);
        if d.plan_id > entry.plan_id {
            *entry = d;
        }
    }
    // Payments per account: (cycle_end as days, amount_paid in ten-thousandths).
    let mut cycles: HashMap<&str, Vec<(i32, i128)>> = HashMap::new();
    let history = &data.payment_history;
    for ((id, end), paid) in history
        .column("account_id")?
        .str()?
        .iter()
        .zip(history.column("cycle_end")?.date()?.physical().iter())
        .zip(history.column("amount_paid")?.decimal()?.physical().iter())
    {
        if let (Some(id), Some(end)) = (id, end) {
            cycles.entry(id).or_default().push((end, paid.unwrap_or(0)));
        }
    }
    let mut paid_days: HashMap<&str, Vec<i32>> = HashMap::new();
    let actions = &data.actions;
    for ((id, at), outcome) in actions
        .column("account_id")?
        .str()?
        .iter()
        .zip(actions.column("at")?.datetime()?.physical().iter())
        .zip(actions.column("outcome")?.str()?.iter())
    {
        if let (Some(id), Some(at), Some("paid")) = (id, at, outcome) {
            paid_days
                .entry(id)
                .or_default()
                .push(at.div_euclid(86_400_000_000) as i32);
        }
    }
    for (id, at) in api_paid {
        paid_days
            .entry(id.as_str())
            .or_default()
            .push(at.div_euclid(86_400_000_000) as i32);
    }

    let through_days = date_to_days(through);
    let mut pending = 0;
    let mut days = Vec::new();
    let (mut ids, mut as_of, mut strategy, mut paid, mut amount, mut propensity, mut version) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (day, d) in &served {
        let start = date_to_days(*day);
        let end = start + horizon_days as i32;
        if end > through_days {
            pending += d.frame.height();
            continue;
        }
        days.push(*day);
        let frame = &d.frame;
        for (((id, s), p), v) in frame
            .column("account_id")?
            .str()?
            .iter()
            .zip(frame.column("strategy")?.str()?.iter())
            .zip(frame.column("propensity")?.f64()?.iter())
            .zip(frame.column("model_version")?.str()?.iter())
        {
            let Some(id) = id else { continue };
            let within = |t: i32| t > start && t <= end;
            let money: i128 = cycles
                .get(id)
                .map(|c| c.iter().filter(|(t, _)| within(*t)).map(|(_, a)| a).sum())
                .unwrap_or(0);
            let told = paid_days
                .get(id)
                .is_some_and(|days| days.iter().any(|&t| within(t)));
            ids.push(id.to_string());
            as_of.push(start);
            strategy.push(s.unwrap_or("none").to_string());
            paid.push(money > 0 || told);
            amount.push(Some(money));
            propensity.push(p);
            version.push(v.map(str::to_string));
        }
    }
    let frame = DataFrame::new(vec![
        Column::new("account_id".into(), ids),
        Column::new("as_of".into(), as_of).cast(&DataType::Date)?,
        Column::new("strategy".into(), strategy),
        Column::new("paid".into(), paid),
        money_column("paid_amount", amount),
        Column::new("propensity".into(), propensity),
        Column::new("model_version".into(), version),
    ])?
    .sort(["as_of", "account_id"], SortMultipleOptions::default())?;
    Ok(Built {
        frame,
        pending,
        days,
        through,
    })
}
