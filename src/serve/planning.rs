//! Building the served plan: the same engine as `prioritize plan`, turned into
//! the store's rows and a summary by segment.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::store::PlanRow;
use crate::contract::parse::{days_to_date, money_to_decimal};
use crate::contract::{Channel, DataSet, Outcome, Strategy};
use crate::model::metrics::Metrics;
use crate::model::train::labelled;
use crate::model::Model;
use crate::strategy::allocate::K;
use crate::strategy::config::{risk_tier_index, EngineConfig, RiskTier};
use crate::strategy::plan::{
    assess_arms, blocked_text, decide, priority, queue_ranks, Arms, Book, Decision, PlanError,
};

/// Actions of the data folder kept with each account, for `GET /v1/accounts/{id}`.
pub const HISTORY: usize = 5;

/// Days-past-due buckets.
pub const DPD_BUCKETS: [&str; 6] = ["current", "1-30", "31-60", "61-90", "91-180", "180+"];

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

/// Predicted against observed P(pay), by tenth of the predictions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CalibrationSet {
    pub rows: usize,
    pub roc_auc: f64,
    pub brier: f64,
    pub observed_rate: f64,
    pub mean_predicted: f64,
    /// Highest predictions first.
    pub deciles: Vec<CalibrationDecile>,
}

/// One tenth of the scored rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CalibrationDecile {
    /// 1 holds the highest predicted P(pay).
    pub decile: usize,
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

impl From<&Metrics> for CalibrationSet {
    fn from(m: &Metrics) -> Self {
        CalibrationSet {
            rows: m.rows,
            roc_auc: m.roc_auc,
            brier: m.brier,
            observed_rate: m.observed_rate,
            mean_predicted: m.mean_predicted,
            deciles: m
                .deciles
                .iter()
                .map(|d| CalibrationDecile {
                    decile: d.decile,
                    rows: d.rows,
                    mean_predicted: d.mean_predicted,
                    observed_rate: d.observed_rate,
                })
                .collect(),
        }
    }
}

/// How well the plan's P(pay) model predicts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Calibration {
    /// On the served data folder's logged decisions whose outcome is known
    /// (features as of each decision); absent when it has none.
    pub outcomes: Option<CalibrationSet>,
    /// Whether the model was trained on this same data folder, which makes
    /// `outcomes` flattering: `held_out` is then the honest figure.
    pub outcomes_in_training: bool,
    /// On the rows held out when the model was trained.
    pub held_out: CalibrationSet,
}

/// What a plan did, by segment and strategy; stored with the plan.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Summary {
    pub currency: String,
    /// The tiers the segments were cut by.
    #[serde(default)]
    pub risk_tiers: Vec<RiskTier>,
    #[serde(default)]
    pub calibration: Option<Calibration>,
    pub segments: Vec<Segment>,
    /// By strategy: planned accounts, capacity, expected value (ten-thousandths).
    pub queues: Vec<(String, u64, Option<u64>, i128)>,
    /// Strategies removed, by rule.
    pub blocked: std::collections::BTreeMap<String, u64>,
    pub explored: u64,
    /// The models that planned: the champion, then a challenger if one planned a share.
    #[serde(default)]
    pub arms: Vec<Arm>,
}

/// What one model (champion or challenger) planned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Arm {
    /// champion or challenger
    pub role: String,
    pub model_version: String,
    pub accounts: u64,
    /// Expected net value of its plan, ten-thousandths.
    pub expected_value: i128,
    /// Accounts by planned strategy.
    pub strategy_mix: std::collections::BTreeMap<String, u64>,
}

/// A built plan, ready for the store.
pub struct Built {
    pub day: NaiveDate,
    pub model_version: String,
    pub rows: Vec<PlanRow>,
    pub summary: Summary,
}

/// Plans `day` for every account of `data` with the champion and, for its
/// share of people, the challenger. The summary's calibration is left to
/// [`calibration`], which `serve` works out while the rows are being stored.
pub fn build(
    data: &DataSet,
    arms: Arms<'_>,
    config: &EngineConfig,
    day: NaiveDate,
) -> Result<Built, PlanError> {
    let book = assess_arms(data, arms, config, day, &|step| {
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

/// A plan from decisions made elsewhere (the backtest's mornings), stored
/// exactly as `build` stores its own; no calibration is attached.
pub fn from_decisions(
    data: &DataSet,
    book: &Book,
    decisions: &[Decision],
    config: &EngineConfig,
) -> Result<Built, PlanError> {
    Ok(Built {
        day: book.day,
        model_version: book.model_version.clone(),
        rows: rows(data, book, decisions, config)?,
        summary: summarise(book, decisions, config),
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
                model_version: book.model_of(i).to_string(),
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
    #[schema(value_type = String)]
    pub channel: Channel,
    #[schema(value_type = String)]
    pub outcome: Outcome,
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
            // The contract checked both columns: every value is one of its names.
            let rows: Vec<ActionRow> = kept
                .iter()
                .filter_map(|&(micros, k)| {
                    Some(ActionRow {
                        at: DateTime::<Utc>::from_timestamp_micros(micros)
                            .unwrap_or_default()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        channel: channel.get(k)?.parse::<Channel>().ok()?,
                        outcome: outcome.get(k)?.parse::<Outcome>().ok()?,
                        promised_amount: amount
                            .get(k)
                            .map(|units| money_to_decimal(units).normalize().to_string()),
                        promised_on: promised_on.get(k).map(days_to_date),
                    })
                })
                .collect();
            (
                id.to_string(),
                serde_json::to_string(&rows).expect("actions serialise"),
            )
        })
        .collect())
}

/// The model's calibration on the data folder's outcomes (whose hash is
/// `data_hash`) and on its held-out rows.
pub fn calibration(
    data: &DataSet,
    data_hash: &str,
    model: &Model,
) -> Result<Calibration, PlanError> {
    let outcomes = if data.outcomes.height() == 0 {
        None
    } else {
        let rows = labelled(data)?;
        let p = model.p_pay(&rows.features)?;
        Some(CalibrationSet::from(&Metrics::of(&p, &rows.paid, None)))
    };
    Ok(Calibration {
        outcomes,
        outcomes_in_training: model.meta.data_hash == data_hash,
        held_out: CalibrationSet::from(model.meta.propensity.test()),
    })
}

fn summarise(book: &Book, decisions: &[Decision], config: &EngineConfig) -> Summary {
    let tiers = &config.risk_tiers;
    let mut cells: HashMap<(usize, usize), Segment> = HashMap::new();
    let mut queues: Vec<(u64, i128)> = vec![(0, 0); K];
    let mut blocked: std::collections::BTreeMap<String, u64> = Default::default();
    let mut arms: Vec<Arm> = [
        ("champion", Some(&book.model_version)),
        ("challenger", book.challenger.as_ref()),
    ]
    .into_iter()
    .filter_map(|(role, version)| {
        Some(Arm {
            role: role.into(),
            model_version: version?.clone(),
            accounts: 0,
            expected_value: 0,
            strategy_mix: Default::default(),
        })
    })
    .collect();
    for (i, decision) in decisions.iter().enumerate() {
        let arm = &mut arms[usize::from(book.by_challenger[i])];
        arm.accounts += 1;
        arm.expected_value += i128::from(book.values[i][decision.strategy].expect("allowed"));
        *arm.strategy_mix
            .entry(Strategy::ALL[decision.strategy].as_str().to_string())
            .or_default() += 1;
        let tier = risk_tier_index(tiers, book.risk[i]);
        let bucket = dpd_bucket_index(book.days_past_due[i]);
        let value = i128::from(book.values[i][decision.strategy].expect("allowed"));
        let cell = cells.entry((tier, bucket)).or_insert_with(|| Segment {
            risk_tier: tiers[tier].name.clone(),
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
            tiers.iter().position(|t| t.name == s.risk_tier),
            DPD_BUCKETS.iter().position(|b| *b == s.dpd_bucket),
        )
    };
    segments.sort_by_key(order);
    Summary {
        currency: book.currency.first().cloned().unwrap_or_default(),
        risk_tiers: tiers.clone(),
        calibration: None,
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
        arms,
    }
}
