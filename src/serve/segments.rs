//! `GET /v1/segments`: where the risk and the money are, what the plan does
//! with them, how well the model predicts, and what changed since the
//! previous plan. The managers' dashboard draws from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::now_micros;
use super::planning::{Calibration, CalibrationSet, Segment, Summary, DPD_BUCKETS};
use super::problem::Problem;
use super::store::PlanMeta;
use super::{App, Authorized, Manager};
use crate::strategy::config::RiskTier;
use crate::strategy::plan::money;

/// Differences from the previous plan (this plan minus that one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Change {
    pub accounts: i64,
    /// Decimal string, signed.
    pub balance: String,
    /// Decimal string, signed.
    pub expected_value: String,
}

/// One risk tier × days-past-due cell.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SegmentView {
    pub risk_tier: String,
    pub dpd_bucket: String,
    pub accounts: u64,
    /// Decimal string in the portfolio's currency.
    pub balance: String,
    /// Expected net value of the planned strategies, decimal string.
    pub expected_value: String,
    /// Accounts by planned strategy.
    pub strategy_mix: BTreeMap<String, u64>,
    /// Null when there is no previous plan.
    pub change: Option<Change>,
}

/// One strategy's queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub strategy: String,
    /// Accounts the plan put in the queue.
    pub planned: u64,
    /// The day's capacity; null is unlimited.
    pub capacity: Option<u64>,
    /// Still open (not blocked since the plan).
    pub open: i64,
    /// Leased now.
    pub leased: i64,
    pub expected_value: String,
    /// Planned accounts against the previous plan; null without one.
    pub planned_change: Option<i64>,
}

/// The plan a change is measured from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanRef {
    pub plan_id: i64,
    pub day: NaiveDate,
    pub model_version: String,
}

/// The whole portfolio.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    pub accounts: u64,
    pub balance: String,
    pub expected_value: String,
    pub change: Option<Change>,
}

/// The model's calibration, and its change since the previous plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CalibrationView {
    #[serde(flatten)]
    pub calibration: Calibration,
    /// ROC AUC on the outcomes against the previous plan's; null without one.
    pub roc_auc_change: Option<f64>,
    pub brier_change: Option<f64>,
}

/// A risk tier (the config file's `[[risk_tiers]]`): accounts whose
/// calibrated P(pay) is at least `p_pay_from` and below the next tier's. The
/// schema of `strategy::config::RiskTier`, which knows nothing of OpenAPI.
#[derive(ToSchema)]
#[schema(as = RiskTier)]
#[allow(dead_code)]
struct RiskTierSchema {
    name: String,
    /// P(pay) from which the tier starts.
    p_pay_from: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Segments {
    pub plan_id: i64,
    pub day: NaiveDate,
    pub model_version: String,
    pub currency: String,
    /// The plan changes are measured from; null if this is the first.
    pub previous: Option<PlanRef>,
    /// The tiers, riskiest first, with the P(pay) each starts at.
    #[schema(value_type = Vec<RiskTierSchema>)]
    pub risk_tiers: Vec<RiskTier>,
    pub dpd_buckets: Vec<String>,
    pub totals: Totals,
    /// Every tier × bucket cell, tiers then buckets in order (empty cells included).
    pub segments: Vec<SegmentView>,
    pub queues: Vec<QueueView>,
    /// Strategies removed in the plan, by rule.
    pub blocked: BTreeMap<String, u64>,
    /// By rule, against the previous plan; null without one.
    pub blocked_change: Option<BTreeMap<String, i64>>,
    pub calibration: Option<CalibrationView>,
}

/// Risk tier by days-past-due bucket: accounts, balance, value and the
/// plan's mix; queues against capacity; blocks by rule; the model's
/// calibration; and the change of each since the previous plan.
#[utoipa::path(get, path = "/v1/segments", tag = "managers",
    responses((status = 200, body = Segments), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn segments(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Manager>,
) -> Result<Json<Segments>, Problem> {
    let live = app
        .live
        .load_full()
        .ok_or_else(|| Problem::unavailable("no plan is loaded yet; see GET /readyz"))?;
    let sizes = app.store.queue_sizes(now_micros()).await?;
    let tiers = if live.summary.risk_tiers.is_empty() {
        app.config.risk_tiers.clone()
    } else {
        live.summary.risk_tiers.clone()
    };
    Ok(Json(view(
        &live.plan,
        &live.summary,
        live.previous.as_ref().map(|(p, s)| (p, s)),
        &tiers,
        &sizes,
    )))
}

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
/// The page loads nothing but its own script and `/v1/segments`.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard`: the managers' page. It asks for a manager key and
/// draws `/v1/segments`; the page itself needs no key.
pub async fn dashboard() -> Response {
    page("text/html; charset=utf-8", PAGE)
}

/// `GET /dashboard/app.js`: the page's script.
pub async fn dashboard_script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// Changes are differences of the shown (rounded) figures, so that they add up
/// on the page.
fn change(now: (u64, i128, i128), before: (u64, i128, i128)) -> Change {
    Change {
        accounts: now.0 as i64 - before.0 as i64,
        balance: (money(now.1) - money(before.1)).to_string(),
        expected_value: (money(now.2) - money(before.2)).to_string(),
    }
}

fn figures(s: Option<&Segment>) -> (u64, i128, i128) {
    s.map(|s| (s.accounts, s.balance, s.expected_value))
        .unwrap_or((0, 0, 0))
}

fn totals(summary: &Summary) -> (u64, i128, i128) {
    summary.segments.iter().fold((0, 0, 0), |t, s| {
        (t.0 + s.accounts, t.1 + s.balance, t.2 + s.expected_value)
    })
}

/// The response for a plan, its summary, the previous plan's and the
/// queues' live sizes (open, leased) by strategy.
pub fn view(
    plan: &PlanMeta,
    summary: &Summary,
    previous: Option<(&PlanMeta, &Summary)>,
    tiers: &[RiskTier],
    sizes: &BTreeMap<String, (i64, i64)>,
) -> Segments {
    let cells: HashMap<(&str, &str), &Segment> = summary
        .segments
        .iter()
        .map(|s| ((s.risk_tier.as_str(), s.dpd_bucket.as_str()), s))
        .collect();
    let before: Option<HashMap<(&str, &str), &Segment>> = previous.map(|(_, p)| {
        p.segments
            .iter()
            .map(|s| ((s.risk_tier.as_str(), s.dpd_bucket.as_str()), s))
            .collect()
    });
    let mut segments = Vec::with_capacity(tiers.len() * DPD_BUCKETS.len());
    for tier in tiers {
        for bucket in DPD_BUCKETS {
            let key = (tier.name.as_str(), bucket);
            let cell = cells.get(&key).copied();
            let now = figures(cell);
            segments.push(SegmentView {
                risk_tier: tier.name.clone(),
                dpd_bucket: bucket.to_string(),
                accounts: now.0,
                balance: money(now.1).to_string(),
                expected_value: money(now.2).to_string(),
                strategy_mix: cell.map(|c| c.strategy_mix.clone()).unwrap_or_default(),
                change: before
                    .as_ref()
                    .map(|b| change(now, figures(b.get(&key).copied()))),
            });
        }
    }
    let total = totals(summary);
    let planned_before: Option<HashMap<&str, u64>> = previous.map(|(_, p)| {
        p.queues
            .iter()
            .map(|(strategy, planned, _, _)| (strategy.as_str(), *planned))
            .collect()
    });
    let queues = summary
        .queues
        .iter()
        .map(|(strategy, planned, capacity, value)| {
            let (open, leased) = sizes.get(strategy).copied().unwrap_or((0, 0));
            QueueView {
                strategy: strategy.clone(),
                planned: *planned,
                capacity: *capacity,
                open,
                leased,
                expected_value: money(*value).to_string(),
                planned_change: planned_before.as_ref().map(|b| {
                    *planned as i64 - b.get(strategy.as_str()).copied().unwrap_or(0) as i64
                }),
            }
        })
        .collect();
    let blocked_change = previous.map(|(_, p)| {
        let mut rules: BTreeMap<String, i64> = BTreeMap::new();
        for (rule, n) in &summary.blocked {
            *rules.entry(rule.clone()).or_default() += *n as i64;
        }
        for (rule, n) in &p.blocked {
            *rules.entry(rule.clone()).or_default() -= *n as i64;
        }
        rules
    });
    let outcomes = |s: &Summary| -> Option<CalibrationSet> {
        s.calibration.as_ref().and_then(|c| c.outcomes.clone())
    };
    let calibration = summary.calibration.clone().map(|calibration| {
        let (now, then) = (outcomes(summary), previous.and_then(|(_, p)| outcomes(p)));
        let (roc_auc_change, brier_change) = match (now, then) {
            (Some(a), Some(b)) => (Some(a.roc_auc - b.roc_auc), Some(a.brier - b.brier)),
            _ => (None, None),
        };
        CalibrationView {
            calibration,
            roc_auc_change,
            brier_change,
        }
    });
    Segments {
        plan_id: plan.plan_id,
        day: plan.day,
        model_version: plan.model_version.clone(),
        currency: summary.currency.clone(),
        previous: previous.map(|(p, _)| PlanRef {
            plan_id: p.plan_id,
            day: p.day,
            model_version: p.model_version.clone(),
        }),
        risk_tiers: tiers.to_vec(),
        dpd_buckets: DPD_BUCKETS.iter().map(|b| b.to_string()).collect(),
        totals: Totals {
            accounts: total.0,
            balance: money(total.1).to_string(),
            expected_value: money(total.2).to_string(),
            change: previous.map(|(_, p)| change(total, totals(p))),
        },
        segments,
        queues,
        blocked: summary.blocked.clone(),
        blocked_change,
        calibration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::config::default_risk_tiers;
    use rust_decimal::Decimal;

    fn segment(tier: &str, bucket: &str, accounts: u64, balance: i128, value: i128) -> Segment {
        Segment {
            risk_tier: tier.into(),
            dpd_bucket: bucket.into(),
            accounts,
            balance,
            expected_value: value,
            strategy_mix: BTreeMap::from([("call".to_string(), accounts)]),
        }
    }

    fn plan(plan_id: i64) -> PlanMeta {
        PlanMeta {
            plan_id,
            created_at: 0,
            day: NaiveDate::from_ymd_opt(2026, 11, plan_id as u32).expect("day"),
            model_version: "m".into(),
            data_hash: String::new(),
            accounts: 0,
            summary: String::new(),
        }
    }

    fn summary(segments: Vec<Segment>, blocked: &[(&str, u64)]) -> Summary {
        Summary {
            currency: "EUR".into(),
            risk_tiers: default_risk_tiers(),
            segments,
            queues: vec![("call".into(), 3, Some(5), 12_345)],
            blocked: blocked.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            ..Summary::default()
        }
    }

    #[test]
    fn every_cell_is_shown_with_its_change_since_the_previous_plan() {
        let now = summary(
            vec![segment("high", "1-30", 3, 1_000_000, 25_000)],
            &[("dispute_open", 2)],
        );
        let before = summary(
            vec![
                segment("high", "1-30", 1, 250_000, 30_000),
                segment("low", "current", 4, 10_000, 0),
            ],
            &[("dispute_open", 1), ("legal_dpd_floor", 5)],
        );
        let tiers = default_risk_tiers();
        let view = view(
            &plan(2),
            &now,
            Some((&plan(1), &before)),
            &tiers,
            &BTreeMap::from([("call".to_string(), (2, 1))]),
        );
        assert_eq!(view.segments.len(), tiers.len() * DPD_BUCKETS.len());
        let cell = |tier: &str, bucket: &str| {
            view.segments
                .iter()
                .find(|s| s.risk_tier == tier && s.dpd_bucket == bucket)
                .expect("every cell")
        };
        let high = cell("high", "1-30");
        assert_eq!((high.accounts, high.balance.as_str()), (3, "100.00"));
        assert_eq!(
            high.change,
            Some(Change {
                accounts: 2,
                balance: "75.00".into(),
                expected_value: "-0.50".into()
            })
        );
        // 100.00 − 25.00 shown, whatever the fractions of a cent behind them.
        let rounding = super::change((1, 1_000_040, 0), (1, 249_960, 0));
        assert_eq!(rounding.balance, "75.00");
        let gone = cell("low", "current");
        assert_eq!(gone.accounts, 0);
        assert_eq!(gone.change.as_ref().map(|c| c.accounts), Some(-4));
        let empty = cell("medium", "180+");
        assert_eq!(empty.change.as_ref().map(|c| c.accounts), Some(0));
        assert_eq!(view.totals.accounts, 3);
        assert_eq!(view.totals.change.as_ref().map(|c| c.accounts), Some(-2));
        assert_eq!(
            view.blocked_change,
            Some(BTreeMap::from([
                ("dispute_open".to_string(), 1),
                ("legal_dpd_floor".to_string(), -5)
            ]))
        );
        assert_eq!(view.queues[0].planned_change, Some(0));
        assert_eq!((view.queues[0].open, view.queues[0].leased), (2, 1));
        assert_eq!(view.previous.as_ref().map(|p| p.plan_id), Some(1));
        let first = super::view(&plan(1), &before, None, &tiers, &BTreeMap::new());
        assert!(first.previous.is_none() && first.blocked_change.is_none());
        assert!(first.segments.iter().all(|s| s.change.is_none()));
        assert_eq!(
            first
                .segments
                .iter()
                .map(|s| s.balance.parse::<Decimal>().expect("decimal"))
                .sum::<Decimal>(),
            Decimal::new(2600, 2)
        );
    }
}
