//! Judging a policy: a staged rules baseline to beat, off-policy estimates
//! from logged outcomes (inverse propensity and doubly robust), and, on
//! simulated data, the true expected value from the simulator's hidden truth
//! with the best possible (oracle) allocation beside it.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use rust_decimal::prelude::*;

use super::allocate::{self, Values, K};
use super::config::EngineConfig;
use super::plan::{values_of, Book, Decision, PlanError};
use crate::contract::parse::money_to_decimal;
use crate::contract::{DataSet, Strategy};

/// The staged treatment most collection teams run: by days past due,
/// reminders, then calls, letters, legal and agency. Accounts are served in
/// order of balance, largest first; one whose stage's strategy is blocked or
/// full falls back to the stage before it, down to `none`.
pub fn staged(book: &Book, config: &EngineConfig) -> Vec<Decision> {
    use Strategy::*;
    let mut left: [Option<u64>; K] = std::array::from_fn(|s| config.strategies[s].capacity);
    let mut order: Vec<usize> = (0..book.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(book.balance[i]), i));
    let mut decisions = vec![
        Decision {
            strategy: 0,
            propensity: 1.0
        };
        book.len()
    ];
    for i in order {
        let chain: &[Strategy] = match book.days_past_due[i] {
            d if d < 15 => &[SmsReminder, EmailReminder],
            d if d < 60 => &[Call, SmsReminder, EmailReminder],
            d if d < 90 => &[DemandLetter, Call, SmsReminder, EmailReminder],
            d if d < 150 => &[Legal, DemandLetter, Call, SmsReminder, EmailReminder],
            _ => &[
                Agency,
                Legal,
                DemandLetter,
                Call,
                SmsReminder,
                EmailReminder,
            ],
        };
        let pick = chain
            .iter()
            .map(|s| *s as usize)
            .find(|&s| book.blocked[i][s].is_none() && left[s] != Some(0))
            .unwrap_or(0);
        if let Some(n) = left[pick].as_mut() {
            *n -= 1;
        }
        decisions[i].strategy = pick;
    }
    decisions
}

/// Every account doing nothing.
pub fn nothing(book: &Book) -> Vec<Decision> {
    vec![
        Decision {
            strategy: 0,
            propensity: 1.0
        };
        book.len()
    ]
}

/// The logged decisions of the planning day, matched to the book's accounts.
pub struct Logged {
    /// (book row, strategy, net reward in ten-thousandths, logging propensity)
    pub rows: Vec<(usize, usize, i64, f64)>,
    /// Rows left out for want of a strategy or a propensity.
    pub skipped: usize,
}

/// Reads the `outcomes` rows dated `book.day`. The reward is what was
/// collected (`paid_amount`, 0 when unpaid) less the strategy's cost. Off-policy
/// estimates need the probability with which each logged strategy was chosen:
/// the `propensity` column (the plan's), which rows without are left out of.
pub fn logged(data: &DataSet, book: &Book, config: &EngineConfig) -> Result<Logged, PlanError> {
    let outcomes = &data.outcomes;
    let day = crate::contract::parse::date_to_days(book.day);
    let row_of: HashMap<&str, usize> = book
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let ids = outcomes.column("account_id")?.str()?;
    let as_of = outcomes.column("as_of")?.date()?.physical();
    let strategy = outcomes.column("strategy")?.str()?;
    let paid = outcomes.column("paid")?.bool()?;
    let amount = outcomes.column("paid_amount")?.decimal()?.physical();
    let propensity = outcomes.column("propensity")?.f64()?;
    let mut rows = Vec::new();
    let mut skipped = 0;
    for k in 0..outcomes.height() {
        if as_of.get(k) != Some(day) {
            continue;
        }
        let Some(&row) = ids.get(k).and_then(|id| row_of.get(id)) else {
            continue;
        };
        let (Some(s), Some(p)) = (
            strategy.get(k).and_then(|s| s.parse::<Strategy>().ok()),
            propensity.get(k),
        ) else {
            skipped += 1;
            continue;
        };
        let collected = if paid.get(k) == Some(true) {
            amount.get(k).unwrap_or(0) as i64
        } else {
            0
        };
        rows.push((row, s as usize, collected - config.cost_units(s), p));
    }
    if rows.is_empty() {
        return Err(PlanError::Invalid(format!(
            "outcomes hold no rows dated {} with a strategy and a propensity; \
             off-policy evaluation needs the logged decisions of the planning day",
            book.day
        )));
    }
    Ok(Logged { rows, skipped })
}

/// Off-policy estimates of a policy's mean net value per account.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    /// Inverse propensity weighting: logged rewards where the policy agrees,
    /// weighted by 1 / propensity.
    pub ips: Decimal,
    /// Doubly robust: the model's value of the policy's choice, corrected by
    /// the weighted error of the model where the policy agrees.
    pub doubly_robust: Decimal,
    /// Logged rows where the policy chose the logged strategy.
    pub agreeing: usize,
}

fn units(value: i64) -> Decimal {
    money_to_decimal(i128::from(value))
}

/// Estimates the mean net value per account of `decisions` from `logged`.
pub fn estimate(book: &Book, logged: &Logged, decisions: &[Decision]) -> Estimate {
    let (mut ips, mut dr) = (Decimal::ZERO, Decimal::ZERO);
    let mut agreeing = 0;
    for &(row, strategy, reward, propensity) in &logged.rows {
        let chosen = decisions[row].strategy;
        let modelled = book.values[row][chosen].expect("decided strategies are allowed");
        dr += units(modelled);
        if chosen == strategy {
            agreeing += 1;
            let weight = Decimal::from_f64(1.0 / propensity).unwrap_or(Decimal::ONE);
            ips += units(reward) * weight;
            let logged_model = book.values[row][strategy].unwrap_or(modelled);
            dr += units(reward - logged_model) * weight;
        }
    }
    let n = Decimal::from(logged.rows.len());
    Estimate {
        ips: ips / n,
        doubly_robust: dr / n,
        agreeing,
    }
}

/// The mean net reward actually logged.
pub fn logged_mean(logged: &Logged) -> Decimal {
    let total: i64 = logged.rows.iter().map(|r| r.2).sum();
    units(total) / Decimal::from(logged.rows.len())
}

/// The simulator's truth: for every account of the book, the true expected
/// value of each strategy net of cost (ten-thousandths), `None` where blocked.
pub fn truth_values(
    path: &Path,
    book: &Book,
    config: &EngineConfig,
) -> Result<Vec<Values>, PlanError> {
    let file = std::fs::File::open(path)
        .map_err(|e| PlanError::Invalid(format!("reading truth file {}: {e}", path.display())))?;
    let truth = ParquetReader::new(file).finish()?;
    let ids = truth.column("account_id")?.str()?;
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some((id?, i)))
        .collect();
    let mut p = vec![[0.0; K]; book.len()];
    let mut a = vec![[0.0; K]; book.len()];
    let columns: Vec<(&Float64Chunked, &Float64Chunked)> = Strategy::ALL
        .iter()
        .map(|s| -> PolarsResult<_> {
            Ok((
                truth.column(&format!("p_{s}"))?.f64()?,
                truth.column(&format!("amount_{s}"))?.f64()?,
            ))
        })
        .collect::<PolarsResult<_>>()?;
    for (i, id) in book.ids.iter().enumerate() {
        let &row = row_of.get(id.as_str()).ok_or_else(|| {
            PlanError::Invalid(format!(
                "truth file {} has no row for account {id}: it belongs to another simulation",
                path.display()
            ))
        })?;
        for s in 0..K {
            p[i][s] = columns[s].0.get(row).unwrap_or(0.0);
            a[i][s] = columns[s].1.get(row).unwrap_or(0.0);
        }
    }
    Ok(values_of(&p, &a, &book.blocked, config))
}

/// Total value of decisions under `values` (ten-thousandths).
pub fn total(values: &[Values], decisions: &[Decision]) -> i64 {
    values
        .iter()
        .zip(decisions)
        .map(|(v, d)| v[d.strategy].expect("decided strategies are allowed"))
        .sum()
}

/// The best decisions under `values`, with the same capacities.
pub fn oracle(values: &[Values], config: &EngineConfig) -> Vec<Decision> {
    let capacity: [Option<u64>; K] = std::array::from_fn(|s| config.strategies[s].capacity);
    allocate::allocate(values, &capacity)
        .into_iter()
        .map(|strategy| Decision {
            strategy,
            propensity: 1.0,
        })
        .collect()
}
