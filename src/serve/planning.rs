//! Building the served plan: the same engine as `prioritize plan`, turned into
//! the store's rows and a summary by segment.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::store::PlanRow;
use crate::contract::parse::{days_to_date, money_to_decimal};
use crate::contract::{DataSet, Strategy};
use crate::model::Model;
use crate::strategy::allocate::K;
use crate::strategy::config::EngineConfig;
use crate::strategy::plan::{
    assess, blocked_text, decide, priority, queue_ranks, Book, Decision, PlanError,
};

/// Actions of the data folder kept with each account, for `GET /v1/accounts/{id}`.
pub const HISTORY: usize = 5;

/// Risk tiers by the calibrated P(pay): a tier holds accounts with P(pay) at
/// or above its floor and below the next tier's.
pub const RISK_TIERS: [(&str, f64); 4] = [
    ("very_high", 0.0),
    ("high", 0.25),
    ("medium", 0.5),
    ("low", 0.75),
];

/// Days-past-due buckets.
pub const DPD_BUCKETS: [&str; 6] = ["current", "1-30", "31-60", "61-90", "91-180", "180+"];

/// The index in [`RISK_TIERS`] of an account with this P(pay).
pub fn risk_tier_index(p_pay: f64) -> usize {
    RISK_TIERS
        .iter()
        .rposition(|(_, floor)| p_pay >= *floor)
        .unwrap_or(0)
}

/// The index in [`DPD_BUCKETS`] of `days` past due.
pub fn dpd_bucket_index(days: i32) -> usize {
    match days {
        d if d <= 0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        91..=180 => 4,
        _ => 5,
    }
}

/// One risk tier × DPD bucket cell of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Segment {
    pub risk_tier: String,
    pub dpd_bucket: String,
    pub accounts: u64,
    /// Ten-thousandths.
    pub balance: i128,
    pub expected_value: i128,
    /// Accounts by planned strategy.
    pub strategy_mix: std::collections::BTreeMap<String, u64>,
}

/// What a plan did, by segment and strategy; stored with the plan.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Summary {
    pub currency: String,
    pub segments: Vec<Segment>,
    /// By strategy: planned accounts, capacity, expected value (ten-thousandths).
    pub queues: Vec<(String, u64, Option<u64>, i128)>,
    /// Strategies removed, by rule.
    pub blocked: std::collections::BTreeMap<String, u64>,
    pub explored: u64,
}

/// A built plan, ready for the store.
pub struct Built {
    pub day: NaiveDate,
    pub model_version: String,
    pub rows: Vec<PlanRow>,
    pub summary: Summary,
}

/// Plans `day` for every account of `data` with `model`.
pub fn build(
    data: &DataSet,
    model: &Model,
    config: &EngineConfig,
    day: NaiveDate,
) -> Result<Built, PlanError> {
    let book = assess(data, model, config, day, &|step| {
        tracing::info!(step, "building the plan")
    })?;
    let decisions = decide(&book, config);
    let rows = rows(data, &book, &decisions, config)?;
    let summary = summarise(&book, &decisions, config);
    Ok(Built {
        day,
        model_version: book.model_version.clone(),
        rows,
        summary,
    })
}

fn rows(
    data: &DataSet,
    book: &Book,
    decisions: &[Decision],
    config: &EngineConfig,
) -> Result<Vec<PlanRow>, PlanError> {
    let accounts = &data.accounts;
    let ids = accounts.column("account_id")?.str()?;
    let customers = accounts.column("customer_id")?.str()?;
    let zones = accounts.column("timezone")?.str()?;
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some((id?, i)))
        .collect();
    let history = histories(&data.actions)?;
    let ranks = queue_ranks(book, decisions, config);
    let cool_off = chrono::Duration::days(i64::from(config.rules.conversation_cool_off_days));
    Ok((0..book.len())
        .map(|i| {
            let id = &book.ids[i];
            let r = row_of[id.as_str()];
            let strategy = decisions[i].strategy;
            let state = &book.states[i];
            PlanRow {
                account_id: id.clone(),
                person: customers.get(r).or(ids.get(r)).unwrap_or("").to_string(),
                timezone: zones.get(r).unwrap_or("UTC").to_string(),
                currency: book.currency[i].clone(),
                strategy: Strategy::ALL[strategy].as_str(),
                queue_rank: i64::from(ranks[i]),
                priority: priority(&book.values[i], strategy, config),
                p_pay: book.p_pay[i][strategy],
                expected_value: book.values[i][strategy].expect("planned strategies are allowed"),
                reasons: book.reasons[i].clone(),
                blocked_by: blocked_text(&book.blocked[i]),
                propensity: decisions[i].propensity,
                model_version: book.model_version.clone(),
                balance: book.balance[i] as i64,
                days_past_due: i64::from(book.days_past_due[i]),
                risk: book.risk[i],
                calls_in_window: i64::from(state.calls_in_window),
                call_from: state
                    .last_conversation
                    .map(|at| (at + cool_off).timestamp_micros()),
                history: history
                    .get(id.as_str())
                    .cloned()
                    .unwrap_or_else(|| "[]".into()),
            }
        })
        .collect())
}

/// An `actions` row as JSON: what the API shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ActionRow {
    /// RFC 3339 instant with its offset.
    pub at: String,
    pub channel: String,
    pub outcome: String,
    /// Decimal string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_on: Option<NaiveDate>,
}

/// The latest [`HISTORY`] actions of each account, newest first, as JSON.
fn histories(actions: &DataFrame) -> PolarsResult<HashMap<String, String>> {
    let ids = actions.column("account_id")?.str()?;
    let at = actions.column("at")?.datetime()?.physical();
    let channel = actions.column("channel")?.str()?;
    let outcome = actions.column("outcome")?.str()?;
    let amount = actions.column("promised_amount")?.decimal()?.physical();
    let promised_on = actions.column("promised_on")?.date()?.physical();
    let mut latest: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
    for k in 0..actions.height() {
        let (Some(id), Some(micros)) = (ids.get(k), at.get(k)) else {
            continue;
        };
        let kept = latest.entry(id).or_default();
        kept.push((micros, k));
        if kept.len() > HISTORY * 4 {
            kept.sort_by_key(|&(t, k)| std::cmp::Reverse((t, k)));
            kept.truncate(HISTORY);
        }
    }
    Ok(latest
        .into_iter()
        .map(|(id, mut kept)| {
            kept.sort_by_key(|&(t, k)| std::cmp::Reverse((t, k)));
            kept.truncate(HISTORY);
            let rows: Vec<ActionRow> = kept
                .iter()
                .map(|&(micros, k)| ActionRow {
                    at: DateTime::<Utc>::from_timestamp_micros(micros)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    channel: channel.get(k).unwrap_or("").to_string(),
                    outcome: outcome.get(k).unwrap_or("").to_string(),
                    promised_amount: amount
                        .get(k)
                        .map(|units| money_to_decimal(units).normalize().to_string()),
                    promised_on: promised_on.get(k).map(days_to_date),
                })
                .collect();
            (
                id.to_string(),
                serde_json::to_string(&rows).expect("actions serialise"),
            )
        })
        .collect())
}

fn summarise(book: &Book, decisions: &[Decision], config: &EngineConfig) -> Summary {
    let mut cells: HashMap<(usize, usize), Segment> = HashMap::new();
    let mut queues: Vec<(u64, i128)> = vec![(0, 0); K];
    let mut blocked: std::collections::BTreeMap<String, u64> = Default::default();
    for (i, decision) in decisions.iter().enumerate() {
        let tier = risk_tier_index(book.risk[i]);
        let bucket = dpd_bucket_index(book.days_past_due[i]);
        let value = i128::from(book.values[i][decision.strategy].expect("allowed"));
        let cell = cells.entry((tier, bucket)).or_insert_with(|| Segment {
            risk_tier: RISK_TIERS[tier].0.to_string(),
            dpd_bucket: DPD_BUCKETS[bucket].to_string(),
            accounts: 0,
            balance: 0,
            expected_value: 0,
            strategy_mix: Default::default(),
        });
        cell.accounts += 1;
        cell.balance += book.balance[i];
        cell.expected_value += value;
        *cell
            .strategy_mix
            .entry(Strategy::ALL[decision.strategy].as_str().to_string())
            .or_default() += 1;
        queues[decision.strategy].0 += 1;
        queues[decision.strategy].1 += value;
        for rule in book.blocked[i].iter().flatten() {
            *blocked.entry(rule.as_str().to_string()).or_default() += 1;
        }
    }
    let mut segments: Vec<Segment> = cells.into_values().collect();
    let order = |s: &Segment| {
        (
            RISK_TIERS.iter().position(|t| t.0 == s.risk_tier),
            DPD_BUCKETS.iter().position(|b| *b == s.dpd_bucket),
        )
    };
    segments.sort_by_key(order);
    Summary {
        currency: book.currency.first().cloned().unwrap_or_default(),
        segments,
        queues: Strategy::ALL
            .iter()
            .map(|s| {
                let (count, value) = queues[*s as usize];
                (s.as_str().to_string(), count, config.capacity(*s), value)
            })
            .collect(),
        blocked,
        explored: decisions.iter().filter(|d| d.propensity < 1.0).count() as u64,
    }
}
