//! The HTTP API of the contract: handlers, their JSON shapes and the OpenAPI
//! document generated from them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::planning::ActionRow;
use super::problem::{Body, Path, Problem, Query};
use super::store::{Change, Item, LeaseAsk, LeaseReply, NewAction, StoreError, StoredAction};
use super::{Analyst, App, Authorized, Collector, CollectorOrManager, Manager, Role, RunInfo};
use crate::contract::parse::{money_to_decimal, parse_money};
use crate::contract::schema::{ACTION_OUTCOMES, CHANNELS};
use crate::contract::{Channel, Outcome, RunStatus, Strategy};
use crate::strategy::plan::money;
use crate::strategy::rules::{self, within_calling_hours};

fn instant(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn reasons(text: &str) -> Vec<String> {
    text.split("; ")
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn strategy_of(name: &str) -> Result<Strategy, Problem> {
    name.parse::<Strategy>().map_err(|_| {
        Problem::not_found(format!(
            "strategy {name:?}: no such queue; expected one of {}",
            Strategy::ALL.map(|s| s.as_str()).join(", ")
        ))
    })
}

/// A queue entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkItem {
    pub account_id: String,
    pub queue_rank: i64,
    /// What the account's slot in this queue is worth (decimal string).
    #[schema(example = "12.50")]
    pub priority: String,
    /// Calibrated probability of paying within the horizon under this strategy.
    pub p_pay: f64,
    /// P(pay) × expected amount − cost (decimal string, in `currency`).
    #[schema(example = "81.23")]
    pub expected_value: String,
    pub currency: String,
    /// The model's top contributions.
    pub reasons: Vec<String>,
}

impl From<&Item> for WorkItem {
    fn from(item: &Item) -> WorkItem {
        WorkItem {
            account_id: item.account_id.clone(),
            queue_rank: item.queue_rank,
            priority: money(item.priority).to_string(),
            p_pay: (item.p_pay * 1e4).round() / 1e4,
            expected_value: money(item.expected_value).to_string(),
            currency: item.currency.clone(),
            reasons: reasons(&item.reasons),
        }
    }
}

/// A page of a queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Worklist {
    pub strategy: String,
    pub plan_id: i64,
    pub items: Vec<WorkItem>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorklistQuery {
    /// Items per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}\.[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// The asking agent: its own leases stay in its view (default: the
    /// key's agent, for a key bound to one).
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
    pub agent_id: Option<String>,
}

fn parse_cursor(text: &str) -> Result<(i64, i64), Problem> {
    let bad = || Problem::field("cursor", "not a cursor this server handed out");
    let (plan, rank) = text.split_once('.').ok_or_else(bad)?;
    Ok((
        plan.parse().map_err(|_| bad())?,
        rank.parse().map_err(|_| bad())?,
    ))
}

/// A page rendered from queues in memory; `stale` adds the header
/// `Prioritize-Stale: true` (the store is unreachable, the page may miss
/// changes committed just before).
fn page_from_memory(
    snapshot: &super::queues::Snapshot,
    stale: bool,
    strategy: Strategy,
    cursor: Option<(i64, i64)>,
    limit: i64,
    now: i64,
    agent_id: Option<&str>,
) -> Result<Response, Problem> {
    let after = match cursor {
        Some((plan, _)) if plan != snapshot.plan_id => {
            return Err(StoreError::StaleCursor(plan).into())
        }
        Some((_, rank)) => rank,
        None => 0,
    };
    // The items are rendered once per plan; a page only joins them.
    let mut body = String::with_capacity(64 + 320 * limit as usize);
    body.push_str(r#"{"strategy":""#);
    body.push_str(strategy.as_str());
    body.push_str(r#"","plan_id":"#);
    body.push_str(&snapshot.plan_id.to_string());
    body.push_str(r#","items":["#);
    let (_, next) = snapshot.page(strategy, after, limit as usize, now, agent_id, &mut body);
    body.push_str(r#"],"next_cursor":"#);
    match next {
        Some(rank) => body.push_str(&format!("\"{}.{rank}\"", snapshot.plan_id)),
        None => body.push_str("null"),
    }
    body.push('}');
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if stale {
        response
            .headers_mut()
            .insert("prioritize-stale", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A strategy's queue in rank order.
#[utoipa::path(get, path = "/v1/worklists/{strategy}", tag = "worklists",
    params(("strategy" = String, Path, description = "a strategy of the contract"), WorklistQuery),
    responses(
        (status = 200, body = Worklist, headers(("Prioritize-Stale" = String,
            description = "`true` when the store is unreachable and the page comes from the queues in memory (it may miss changes committed just before)"))),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no such strategy"),
        (status = 409, body = Problem, description = "the cursor's plan was replaced"),
        (status = 503, body = Problem, description = "no plan yet, or the store unreachable with no queues in memory (header Retry-After)"),
    ),
    security(("bearer" = [])))]
pub async fn worklist(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Collector>,
    Path(strategy): Path<String>,
    Query(query): Query<WorklistQuery>,
) -> Result<Response, Problem> {
    let agent = caller.agent(query.agent_id.as_deref())?;
    if agent
        .as_ref()
        .is_some_and(|a| a.trim().is_empty() || a.chars().count() > 200)
    {
        return Err(Problem::field("agent_id", "expected 1–200 characters"));
    }
    let strategy = strategy_of(&strategy)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::field(
            "limit",
            format!("{limit} is not within 1–500"),
        ));
    }
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let now = now_micros();
    let snapshot = match app.pages().await {
        super::Pages::Fresh(snapshot) => Some((snapshot, false)),
        super::Pages::Stale(snapshot) => Some((snapshot, true)),
        super::Pages::Store => None,
    };
    if let Some((snapshot, stale)) = snapshot {
        return page_from_memory(
            &snapshot,
            stale,
            strategy,
            cursor,
            limit,
            now,
            agent.as_deref(),
        );
    }
    let listed = app
        .store
        .worklist(strategy.as_str(), cursor, limit + 1, now, agent.as_deref())
        .await;
    let (plan_id, mut items) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            app.store_failed(&e);
            let problem = Problem::from(e);
            // The store is away: the last queues in memory still serve.
            let away = problem.kind == "/problems/store-unavailable";
            return match (away, app.queues.last()) {
                (true, Some(snapshot)) => page_from_memory(
                    &snapshot,
                    true,
                    strategy,
                    cursor,
                    limit,
                    now,
                    agent.as_deref(),
                ),
                _ => Err(problem),
            };
        }
    };
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(format!("{plan_id}.{}", last.queue_rank)),
        _ => None,
    };
    Ok(Json(Worklist {
        strategy: strategy.as_str().to_string(),
        plan_id,
        items: items.iter().map(WorkItem::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// A worklist item as JSON, as a snapshot of the queues keeps it.
pub fn render_item(item: &Item) -> String {
    serde_json::to_string(&WorkItem::from(item)).expect("work items serialise")
}

/// An integer body field that also takes a JSON number with no fractional
/// part (`5.0`), as JSON Schema's `integer` does.
fn integral<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an integer")))
}

fn integral_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(number) => integral(serde_json::Value::Number(number))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The agent to lease to; required unless the key is bound to an agent.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub agent_id: Option<String>,
    /// Accounts to lease, 1–100.
    #[schema(minimum = 1, maximum = 100)]
    #[serde(deserialize_with = "integral")]
    pub count: i64,
    /// Seconds until the lease expires, 10–86400 (default 900).
    #[schema(minimum = 10, maximum = 86400)]
    #[serde(default, deserialize_with = "integral_or_none")]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Lease {
    pub account_id: String,
    pub strategy: String,
    pub agent_id: String,
    pub queue_rank: i64,
    /// RFC 3339.
    pub expires_at: String,
    pub priority: String,
    pub p_pay: f64,
    pub expected_value: String,
    pub currency: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Leases {
    pub leases: Vec<Lease>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The agent that holds the lease (required with a collector key; a
    /// manager key may release anyone's).
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
    pub agent_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Released {
    pub account_id: String,
    pub strategy: String,
    /// The agent whose lease ended.
    pub agent_id: String,
    pub plan_id: i64,
}

/// Ends a lease before it expires, so the account is free for the next lease:
/// only its holder (collector, naming `agent_id`) or a manager may.
#[utoipa::path(delete, path = "/v1/worklists/{strategy}/leases/{account_id}", tag = "worklists",
    params(("strategy" = String, Path, description = "a strategy of the contract"),
        ("account_id" = String, Path), ReleaseQuery),
    responses(
        (status = 200, body = Released),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "the lease is another agent's, or the key is neither collector nor manager"),
        (status = 404, body = Problem, description = "no such queue or account, or no live lease"),
        (status = 422, body = Problem, description = "a collector key without agent_id"),
        (status = 503, body = Problem, description = "the store is unreachable (header Retry-After)"),
    ),
    security(("bearer" = [])))]
pub async fn release_lease(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<CollectorOrManager>,
    Path((strategy, account_id)): Path<(String, String)>,
    Query(query): Query<ReleaseQuery>,
) -> Result<Json<Released>, Problem> {
    let manager = matches!(caller.role, Role::Manager | Role::Admin);
    let strategy = strategy_of(&strategy)?;
    let asked = caller.agent(query.agent_id.as_deref())?;
    let agent = match (&asked, manager) {
        (Some(agent), _) if agent.trim().is_empty() || agent.chars().count() > 200 => {
            return Err(Problem::field("agent_id", "expected 1–200 characters"))
        }
        (Some(agent), _) => Some(agent.as_str()),
        (None, true) => None,
        (None, false) => {
            return Err(Problem::field(
                "agent_id",
                "is required: a collector releases its own lease",
            ))
        }
    };
    let now = Utc::now().timestamp_micros();
    let (plan_id, holder) = app
        .store
        .release(
            strategy.as_str(),
            &account_id,
            agent,
            now,
            &caller.actor(agent),
        )
        .await?;
    app.committed(Change::Released {
        plan: plan_id,
        account: account_id.clone(),
    });
    // Free for the very next lease, not only once its naming has lapsed.
    if let Some(queues) = app.queues.serving() {
        queues.release_reservations(std::slice::from_ref(&account_id));
    }
    Ok(Json(Released {
        account_id,
        strategy: strategy.as_str().to_string(),
        agent_id: holder,
        plan_id,
    }))
}

/// What an `Idempotency-Key` may be: 1–255 visible ASCII characters, with
/// spaces only inside (HTTP trims them at the ends).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]([ -~]*[!-~])?$";

/// The request's `Idempotency-Key`, if any.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        Some(value) => {
            let key = std::str::from_utf8(value.as_bytes())
                .ok()
                .filter(|k| {
                    (1..=255).contains(&k.len())
                        && k.bytes().all(|b| (b' '..=b'~').contains(&b))
                        && !k.starts_with(' ')
                        && !k.ends_with(' ')
                })
                .ok_or_else(|| {
                    Problem::field("Idempotency-Key", "expected 1–255 visible ASCII characters")
                })?;
            Ok(Some(key.to_string()))
        }
        None => Ok(None),
    }
}

/// Leases the next accounts of a queue to an agent.
#[utoipa::path(post, path = "/v1/worklists/{strategy}/leases", tag = "worklists",
    params(("strategy" = String, Path, description = "a strategy of the contract"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key (in this queue) gets the first reply's leases")),
    request_body = LeaseRequest,
    responses(
        (status = 200, body = Leases, description = "possibly fewer than asked: the queue's end, or (for calls) accounts outside calling hours; a retry with the same Idempotency-Key returns the first leases (header Idempotent-Replayed: true)",
            headers(("Idempotent-Replayed" = String, description = "`true` on a retry's reply"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "a bad field, or a reused Idempotency-Key with another body"),
        (status = 503, body = Problem, description = "the store is unreachable (header Retry-After)"),
    ),
    security(("bearer" = [])))]
pub async fn lease(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Collector>,
    headers: HeaderMap,
    Path(strategy): Path<String>,
    Body(request): Body<LeaseRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let strategy = strategy_of(&strategy)?;
    let agent = caller
        .agent(request.agent_id.as_deref())?
        .ok_or_else(|| Problem::field("agent_id", "is required (the key is bound to no agent)"))?;
    if agent.trim().is_empty() || agent.chars().count() > 200 {
        return Err(Problem::field("agent_id", "expected 1–200 characters"));
    }
    if !(1..=100).contains(&request.count) {
        return Err(Problem::field(
            "count",
            format!("{} is not within 1–100", request.count),
        ));
    }
    let ttl = request.ttl_seconds.unwrap_or(900);
    if !(10..=86_400).contains(&ttl) {
        return Err(Problem::field(
            "ttl_seconds",
            format!("{ttl} is not within 10–86400"),
        ));
    }
    let now = Utc::now();
    // Calls go out only where it is now within calling hours.
    let zones: Option<Vec<String>> = (strategy.channel() == Some(Channel::Call)).then(|| {
        let live = app.live.load();
        live.as_ref()
            .map(|l| {
                l.zones
                    .iter()
                    .filter(|(_, tz)| within_calling_hours(now, *tz, &app.config.rules))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    });
    // The queues in memory know the next free accounts; the store checks them again.
    let queues = app.fresh_queues().await;
    let candidates = queues.as_ref().map(|queues| {
        queues.candidates(
            strategy,
            request.count as usize,
            now.timestamp_micros(),
            zones.as_deref(),
        )
    });
    let hash = key.as_ref().map(|_| {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(format!("{agent}\n{}\n{ttl}", request.count)))
    });
    let actor = caller.actor(Some(&agent));
    let ask = LeaseAsk {
        strategy: strategy.as_str(),
        agent: &agent,
        count: request.count,
        ttl_micros: ttl * 1_000_000,
        now: now.timestamp_micros(),
        idempotency: key.as_deref().zip(hash.as_deref()),
        actor: &actor,
    };
    let leased = app
        .store
        .lease(&ask, zones.as_deref(), candidates.as_deref())
        .await;
    // What was named but not leased is free for the next lease to name.
    if let (Some(queues), Some(named)) = (&queues, &candidates) {
        let got: Vec<&str> = match &leased {
            Ok(reply) if !reply.replayed => reply
                .leased
                .iter()
                .map(|l| l.item.account_id.as_str())
                .collect(),
            _ => Vec::new(),
        };
        let missed: Vec<String> = named
            .iter()
            .filter(|a| !got.contains(&a.as_str()))
            .cloned()
            .collect();
        queues.release_reservations(&missed);
    }
    let LeaseReply {
        plan_id,
        leased,
        replayed,
    } = leased?;
    // A replay's leases were announced when they were first handed out.
    if let (false, Some(first)) = (replayed, leased.first()) {
        app.committed(Change::Leased {
            plan: plan_id,
            agent: agent.clone(),
            expires: first.expires_at,
            accounts: leased.iter().map(|l| l.item.account_id.clone()).collect(),
        });
    }
    if !replayed {
        app.metrics.leases.inc_by(leased.len() as u64);
    }
    let mut response = Json(Leases {
        leases: leased
            .iter()
            .map(|l| {
                let item = WorkItem::from(&l.item);
                Lease {
                    account_id: item.account_id,
                    strategy: strategy.as_str().to_string(),
                    agent_id: agent.clone(),
                    queue_rank: item.queue_rank,
                    expires_at: instant(l.expires_at),
                    priority: item.priority,
                    p_pay: item.p_pay,
                    expected_value: item.expected_value,
                    currency: item.currency,
                    reasons: item.reasons,
                }
            })
            .collect(),
    })
    .into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// An `actions` row to record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// RFC 3339 instant with its offset, not in the future (5 minutes' grace).
    #[schema(example = "2026-11-23T14:05:00-05:00", format = DateTime)]
    pub at: String,
    /// sms, email, call, letter, field_visit, legal, agency
    pub channel: String,
    /// no_answer, left_message, right_party_contact, promise_to_pay, paid,
    /// refused, dispute, wrong_party, delivered, undeliverable
    pub outcome: String,
    /// Decimal string, with promise_to_pay.
    #[schema(pattern = r"^[0-9]{1,14}(\.[0-9]{1,4})?$", example = "120.00")]
    pub promised_amount: Option<String>,
    /// YYYY-MM-DD, required with promise_to_pay: at most `[rules]
    /// max_promise_days` (default 60) after `at`.
    #[schema(format = Date)]
    pub promised_on: Option<String>,
    /// Who recorded it (default: the key's agent, for a key bound to one).
    #[schema(max_length = 200)]
    pub agent_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Blocked {
    pub account_id: String,
    pub rule: String,
}

/// A recorded action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionRecord {
    pub id: i64,
    pub account_id: String,
    pub at: String,
    #[schema(value_type = String)]
    pub channel: Channel,
    #[schema(value_type = String)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promised_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// When the server stored it (RFC 3339).
    pub recorded_at: String,
    /// Planned strategies this action blocked at once (this account's, or the
    /// same person's other accounts').
    pub blocked: Vec<Blocked>,
}

fn record_of(stored: &StoredAction, blocked: &[(String, String)]) -> ActionRecord {
    ActionRecord {
        id: stored.id,
        account_id: stored.account_id.clone(),
        at: stored.action.at_text.clone(),
        channel: stored.action.channel,
        outcome: stored.action.outcome,
        promised_amount: stored.action.promised_amount.clone(),
        promised_on: stored.action.promised_on,
        agent_id: stored.action.agent_id.clone(),
        recorded_at: instant(stored.recorded_at),
        blocked: blocked
            .iter()
            .map(|(account_id, rule)| Blocked {
                account_id: account_id.clone(),
                rule: rule.clone(),
            })
            .collect(),
    }
}

/// Checks an action body field by field.
pub fn validate_action(
    request: &ActionRequest,
    now: DateTime<Utc>,
    max_promise_days: i32,
) -> Result<NewAction, Problem> {
    let at = DateTime::parse_from_rfc3339(&request.at).map_err(|_| {
        Problem::field(
            "at",
            format!("{:?} is not an RFC 3339 instant with an offset", request.at),
        )
    })?;
    if at.with_timezone(&Utc) > now + chrono::Duration::minutes(5) {
        return Err(Problem::field("at", "is in the future"));
    }
    let channel: Channel = request
        .channel
        .parse()
        .map_err(|e| Problem::field("channel", e))?;
    let outcome: Outcome = request
        .outcome
        .parse()
        .map_err(|e| Problem::field("outcome", e))?;
    let promise = outcome == Outcome::PromiseToPay;
    let promised_amount = match &request.promised_amount {
        Some(_) if !promise => {
            return Err(Problem::field(
                "promised_amount",
                "only goes with outcome promise_to_pay",
            ))
        }
        Some(text) => match parse_money(text) {
            Some(units) if units >= 0 => Some(money_to_decimal(units).normalize().to_string()),
            _ => {
                return Err(Problem::field(
                    "promised_amount",
                    format!(
                        "{text:?} is not a non-negative decimal with at most 4 fractional digits"
                    ),
                ))
            }
        },
        None => None,
    };
    let promised_on =
        match &request.promised_on {
            Some(_) if !promise => {
                return Err(Problem::field(
                    "promised_on",
                    "only goes with outcome promise_to_pay",
                ))
            }
            Some(text) => Some(NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                Problem::field("promised_on", format!("{text:?} is not YYYY-MM-DD"))
            })?),
            None if promise => {
                return Err(Problem::field(
                    "promised_on",
                    "is required with outcome promise_to_pay",
                ))
            }
            None => None,
        };
    if let Some(day) = promised_on {
        let ahead = (day - at.date_naive()).num_days();
        if ahead > i64::from(max_promise_days) {
            return Err(Problem::field(
                "promised_on",
                format!(
                    "{day} is {ahead} days after the action; a promise may be at most \
                     {max_promise_days} days ahead ([rules] max_promise_days)"
                ),
            ));
        }
    }
    if let Some(agent) = &request.agent_id {
        if agent.chars().count() > 200 {
            return Err(Problem::field(
                "agent_id",
                "expected at most 200 characters",
            ));
        }
    }
    Ok(NewAction {
        at: at.with_timezone(&Utc).timestamp_micros(),
        at_text: request.at.clone(),
        channel,
        outcome,
        promised_amount,
        promised_on,
        agent_id: request.agent_id.clone(),
    })
}

/// Records what happened on an account, durably, before replying.
#[utoipa::path(post, path = "/v1/accounts/{account_id}/actions", tag = "accounts",
    params(("account_id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key records the action once")),
    request_body = ActionRequest,
    responses(
        (status = 201, body = ActionRecord, description = "stored; a retry with the same Idempotency-Key returns the first record (header Idempotent-Replayed: true)",
            headers(("Location" = String, description = "the account"),
                ("Idempotent-Replayed" = String, description = "`true` on a retry's reply"))),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "the key lacks the role, or is bound to another agent_id"),
        (status = 404, body = Problem, description = "the account is not in the plan"),
        (status = 422, body = Problem, description = "a bad field, or a reused Idempotency-Key with another body"),
        (status = 503, body = Problem, description = "the store is unreachable (header Retry-After)"),
    ),
    security(("bearer" = [])))]
pub async fn record_action(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Collector>,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Body(mut request): Body<ActionRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    request.agent_id = caller.agent(request.agent_id.as_deref())?;
    let now = Utc::now();
    let action = validate_action(&request, now, app.config.rules.max_promise_days)?;
    let recorded = app
        .store
        .record_action(
            &account_id,
            &action,
            key.as_deref(),
            now.timestamp_micros(),
            &app.live_rules,
            &caller.actor(action.agent_id.as_deref()),
        )
        .await?;
    if !recorded.replayed {
        app.metrics.actions.inc();
        if !recorded.blocked.is_empty() {
            app.committed(Change::Blocked {
                plan: recorded.plan_id,
                accounts: recorded.blocked.iter().map(|(a, _)| a.clone()).collect(),
            });
        }
        app.committed(Change::Released {
            plan: recorded.plan_id,
            account: account_id.clone(),
        });
    }
    let body = record_of(&recorded.action, &recorded.blocked);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/accounts/{account_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if recorded.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One account now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub account_id: String,
    /// The planned strategy.
    pub strategy: String,
    pub queue_rank: i64,
    pub p_pay: f64,
    pub expected_value: String,
    pub currency: String,
    pub reasons: Vec<String>,
    /// Rules that removed strategies in the plan (`rule: strategy …; …`).
    pub blocked_by: String,
    /// The rule that has blocked the planned strategy since the plan was made.
    pub blocked_since_plan: Option<String>,
    pub propensity: f64,
    pub model_version: String,
    /// The agent holding a lease on it, and until when.
    pub leased_by: Option<String>,
    pub lease_expires_at: Option<String>,
    /// Newest first: actions recorded here, then the data folder's latest.
    pub recent_actions: Vec<ActionRow>,
    /// The latest promise to pay among those actions, if any.
    pub promise: Option<PromiseView>,
}

/// A promise to pay and where it stands now, in the account's time zone.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromiseView {
    /// When it was made (RFC 3339).
    pub made_at: String,
    pub promised_on: NaiveDate,
    /// Decimal string.
    pub promised_amount: Option<String>,
    /// `pending` (its date has not passed), `kept` (a `paid` action came on
    /// or before its date) or `broken` (the date passed without one).
    pub status: String,
    /// The first payment since the promise (RFC 3339), if any.
    pub paid_at: Option<String>,
}

/// The latest promise among `actions` and its status on the local day of `now`.
fn promise_of(actions: &[ActionRow], zone: &str, now: DateTime<Utc>) -> Option<PromiseView> {
    let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    let instant = |a: &ActionRow| DateTime::parse_from_rfc3339(&a.at).ok();
    let (made, promise) = actions
        .iter()
        .filter(|a| a.outcome == Outcome::PromiseToPay)
        .filter_map(|a| Some((instant(a)?, a)))
        .max_by_key(|(at, _)| *at)?;
    let promised_on = promise.promised_on?;
    let paid = actions
        .iter()
        .filter(|a| a.outcome == Outcome::Paid)
        .filter_map(instant)
        .filter(|at| *at >= made)
        .min();
    let status = rules::promise_status(
        promised_on,
        paid.map(|at| at.with_timezone(&tz).date_naive()),
        now.with_timezone(&tz).date_naive(),
    );
    Some(PromiseView {
        made_at: promise.at.clone(),
        promised_on,
        promised_amount: promise.promised_amount.clone(),
        status: status.as_str().into(),
        paid_at: paid.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    })
}

/// An account's strategy, scores, blocks and recent actions.
#[utoipa::path(get, path = "/v1/accounts/{account_id}", tag = "accounts",
    params(("account_id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn account(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Collector>,
    Path(account_id): Path<String>,
) -> Result<Json<AccountView>, Problem> {
    let row = app.store.account(&account_id, 10).await?.ok_or_else(|| {
        Problem::not_found(format!("account {account_id:?} is not in the served plan"))
    })?;
    let mut recent: Vec<ActionRow> = row
        .recent
        .iter()
        .map(|a| ActionRow {
            at: a.action.at_text.clone(),
            channel: a.action.channel,
            outcome: a.action.outcome,
            promised_amount: a.action.promised_amount.clone(),
            promised_on: a.action.promised_on,
        })
        .collect();
    let history: Vec<ActionRow> = serde_json::from_str(&row.history).map_err(Problem::internal)?;
    // The plan's history holds the API's actions too (one history): each shows once.
    let recorded: std::collections::HashSet<(i64, Channel, Outcome)> = row
        .recent
        .iter()
        .map(|a| (a.action.at, a.action.channel, a.action.outcome))
        .collect();
    recent.extend(history.into_iter().filter(|h| {
        DateTime::parse_from_rfc3339(&h.at).map_or(true, |t| {
            !recorded.contains(&(t.timestamp_micros(), h.channel, h.outcome))
        })
    }));
    let item = WorkItem::from(&row.item);
    let now = now_micros();
    let leased = row.lease_expires.is_some_and(|e| e > now);
    Ok(Json(AccountView {
        account_id: item.account_id,
        strategy: row.strategy,
        queue_rank: item.queue_rank,
        p_pay: item.p_pay,
        expected_value: item.expected_value,
        currency: item.currency,
        reasons: item.reasons,
        blocked_by: row.blocked_by,
        blocked_since_plan: row.blocked_live,
        propensity: row.propensity,
        model_version: row.model_version,
        leased_by: row.leased_by.filter(|_| leased),
        lease_expires_at: row.lease_expires.filter(|_| leased).map(instant),
        promise: promise_of(&recent, &row.timezone, Utc::now()),
        recent_actions: recent,
    }))
}

/// Which block to lift, and why (kept in the audit).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockRequest {
    /// `promise_pending` or `dispute_open`.
    pub rule: String,
    /// Why, 1–500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// A lifted block.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Unblocked {
    pub account_id: String,
    pub rule: String,
    pub plan_id: i64,
    /// The served plan's live block was removed at once; either way the
    /// API's actions recorded so far no longer block the account in later plans.
    pub lifted_now: bool,
    /// What still blocks it live, if the lifted rule was its block: the
    /// other pause, or for a call the person's cool-off or attempt limit.
    pub still_blocked_by: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// Rules an unblock may lift: the pauses a collector's own action put on an account.
const LIFTABLE: [&str; 2] = ["promise_pending", "dispute_open"];

/// Lifts a `promise_pending` or `dispute_open` block that actions recorded
/// through the API put on an account (a promise taken by mistake, a dispute
/// resolved on the call). Never the lender's own flags, opt-outs, the call
/// limit or the cool-off.
#[utoipa::path(post, path = "/v1/accounts/{account_id}/unblock", tag = "accounts",
    params(("account_id" = String, Path)),
    request_body = UnblockRequest,
    responses(
        (status = 200, body = Unblocked),
        (status = 401, body = Problem),
        (status = 403, body = Problem, description = "the key is not a manager's"),
        (status = 404, body = Problem, description = "the account is not in the plan"),
        (status = 409, body = Problem, description = "no such block from an action recorded through the API"),
        (status = 422, body = Problem, description = "a rule that cannot be lifted, or a bad reason"),
        (status = 503, body = Problem, description = "the store is unreachable (header Retry-After)"),
    ),
    security(("bearer" = [])))]
pub async fn unblock(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Manager>,
    Path(account_id): Path<String>,
    Body(request): Body<UnblockRequest>,
) -> Result<Json<Unblocked>, Problem> {
    if !LIFTABLE.contains(&request.rule.as_str()) {
        return Err(Problem::field(
            "rule",
            format!(
                "{:?} cannot be lifted: only {} (a collector's own action's pause); \
                 no_contact, opt-outs, the call limit and the cool-off never can",
                request.rule,
                LIFTABLE.join(" or ")
            ),
        ));
    }
    let reason = request.reason.trim();
    if reason.is_empty() || request.reason.chars().count() > 500 {
        return Err(Problem::field("reason", "expected 1–500 characters"));
    }
    let now = Utc::now().timestamp_micros();
    let done = app
        .store
        .unblock(
            &account_id,
            &request.rule,
            reason,
            now,
            &app.live_rules,
            &caller.actor(caller.agent_id.as_deref()),
        )
        .await?;
    if done.lifted_now {
        app.committed(Change::Unblocked {
            plan: done.plan_id,
            account: account_id.clone(),
        });
    }
    Ok(Json(Unblocked {
        account_id,
        rule: request.rule,
        plan_id: done.plan_id,
        lifted_now: done.lifted_now,
        still_blocked_by: done.still_blocked_by,
        at: instant(now),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this account's rows.
    pub account_id: Option<String>,
    /// Only rows written at or after this: RFC 3339, or YYYY-MM-DD (UTC midnight).
    pub since: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// One audit row: who (key and role, and the agent it acted as) did what, when.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    /// When it was written, with its effect (RFC 3339).
    pub at: String,
    /// The key's `id` from `[[api_keys]]`; `system` for the server's own runs.
    pub key_id: String,
    pub role: String,
    pub agent_id: Option<String>,
    /// lease, release, action, unblock, run or activate.
    pub action: String,
    pub account_id: Option<String>,
    /// What it did (JSON object: the strategy, plan, rule, reason …).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// The append-only audit table, oldest first: every lease, release, action,
/// unblock, run and activation, with the key that made it.
#[utoipa::path(get, path = "/v1/audit", tag = "managers",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem, description = "the store is unreachable (header Retry-After)")),
    security(("bearer" = [])))]
pub async fn audit(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Manager>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, Problem> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::field(
            "limit",
            format!("{limit} is not within 1–1000"),
        ));
    }
    let after_id = match &query.cursor {
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| Problem::field("cursor", "not a cursor this server handed out"))?,
        None => 0,
    };
    let since = match &query.since {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_micros())
                .or_else(|_| {
                    NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .expect("midnight")
                            .and_utc()
                            .timestamp_micros()
                    })
                })
                .map_err(|_| {
                    Problem::field(
                        "since",
                        format!("{text:?} is neither an RFC 3339 instant nor YYYY-MM-DD"),
                    )
                })?,
        ),
        None => None,
    };
    let mut rows = app
        .store
        .audit(&super::store::AuditAsk {
            account_id: query.account_id.as_deref(),
            since,
            after_id,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(last.id.to_string()),
        _ => None,
    };
    let entries = rows
        .into_iter()
        .map(|row| AuditRecord {
            id: row.id,
            at: instant(row.at),
            key_id: row.key_id,
            role: row.role,
            agent_id: row.agent_id,
            action: row.action,
            account_id: row.account_id,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub version: String,
    pub created_at: String,
    pub data_hash: String,
    pub training_rows: usize,
    /// Held-out metrics of the P(pay) model.
    pub roc_auc: f64,
    pub brier: f64,
    pub ks: f64,
    /// The strategy-response model's held-out ROC AUC, if it has one.
    pub response_roc_auc: Option<f64>,
    /// Whether the served plan was made with it (as the champion).
    pub active: bool,
    /// The served plan's share of it: `champion` or `challenger` (absent when
    /// it planned nothing).
    pub role: Option<String>,
    /// Accounts it planned in the served plan.
    pub planned_accounts: Option<u64>,
    /// Expected net value of the accounts it planned (decimal string).
    pub planned_expected_value: Option<String>,
    /// Of that, per account planned (decimal string): the figure to compare.
    pub expected_value_per_account: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Models {
    pub models: Vec<ModelView>,
}

/// Model versions found beside the served model, with their metrics.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = Models), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn models(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Analyst>,
) -> Result<Json<Models>, Problem> {
    let live = app.live.load_full();
    let active = live.as_ref().map(|l| l.plan.model_version.clone());
    let arms = live.map(|l| l.summary.arms.clone()).unwrap_or_default();
    let found = app.model_folders();
    Ok(Json(Models {
        models: found
            .into_iter()
            .map(|(_, meta)| {
                let test = meta.propensity.test();
                let arm = arms.iter().find(|a| a.model_version == meta.version);
                ModelView {
                    role: arm.map(|a| a.role.clone()),
                    planned_accounts: arm.map(|a| a.accounts),
                    planned_expected_value: arm.map(|a| money(a.expected_value).to_string()),
                    expected_value_per_account: arm.filter(|a| a.accounts > 0).map(|a| {
                        (money_to_decimal(a.expected_value)
                            / rust_decimal::Decimal::from(a.accounts))
                        .round_dp(2)
                        .to_string()
                    }),
                    active: active.as_deref() == Some(meta.version.as_str()),
                    version: meta.version.clone(),
                    created_at: meta.created_at.clone(),
                    data_hash: meta.data_hash.clone(),
                    training_rows: meta.training_rows,
                    roc_auc: test.roc_auc,
                    brier: test.brier,
                    ks: test.ks,
                    response_roc_auc: meta.response.as_ref().map(|r| r.test().roc_auc),
                }
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutcomesQuery {
    /// Only decisions of this day or later (YYYY-MM-DD).
    pub since: Option<NaiveDate>,
    /// Days after the decision's day a payment counts, 1–3650 (default 30).
    #[param(minimum = 1, maximum = 3650)]
    pub horizon_days: Option<i64>,
    /// The last day payments are known (default: the data folder's latest
    /// cycle end or action, or an action recorded through the API).
    pub through: Option<NaiveDate>,
}

/// One served decision and what followed (the contract's `outcomes` row).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutcomeRow {
    pub account_id: String,
    #[schema(value_type = String, format = Date)]
    pub as_of: NaiveDate,
    pub strategy: String,
    pub paid: bool,
    /// Collected within the horizon, a decimal string.
    pub paid_amount: String,
    pub propensity: Option<f64>,
    pub model_version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Outcomes {
    pub horizon_days: i64,
    #[schema(value_type = String, format = Date)]
    pub through: NaiveDate,
    /// Decisions whose horizon has not passed (left out).
    pub pending: usize,
    pub outcomes: Vec<OutcomeRow>,
}

/// The outcomes of every served decision whose horizon has passed, built
/// as `prioritize outcomes` builds them, from the store's decisions and the
/// data folder's payment history and actions (and `paid` actions recorded here).
#[utoipa::path(get, path = "/v1/outcomes", tag = "models",
    params(OutcomesQuery),
    responses((status = 200, body = Outcomes), (status = 422, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn outcomes(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Analyst>,
    Query(query): Query<OutcomesQuery>,
) -> Result<Json<Outcomes>, Problem> {
    let horizon = query.horizon_days.unwrap_or(30);
    if !(1..=3650).contains(&horizon) {
        return Err(Problem::field(
            "horizon_days",
            format!("{horizon} is not within 1–3650"),
        ));
    }
    let paid = app.store.paid_actions().await?;
    let data_dir = app.options.data.clone();
    let data = tokio::task::spawn_blocking(move || crate::contract::DataSet::load(&data_dir))
        .await
        .map_err(Problem::internal)?
        .map_err(Problem::internal)?;
    let through = super::outcomes::through(&data, &paid, query.through)
        .map_err(Problem::internal)?
        .unwrap_or_else(|| Utc::now().date_naive());
    let decisions = app.store.decisions(query.since, through).await?;
    let built = tokio::task::spawn_blocking(move || {
        super::outcomes::build(&decisions, &data, &paid, horizon, through)
    })
    .await
    .map_err(Problem::internal)?
    .map_err(Problem::internal)?;
    let f = &built.frame;
    let column = |name: &str| f.column(name).map_err(Problem::internal);
    let ids = column("account_id")?
        .str()
        .map_err(Problem::internal)?
        .clone();
    let days = column("as_of")?
        .date()
        .map_err(Problem::internal)?
        .physical()
        .clone();
    let strategies = column("strategy")?
        .str()
        .map_err(Problem::internal)?
        .clone();
    let paid_col = column("paid")?.bool().map_err(Problem::internal)?.clone();
    let amounts = column("paid_amount")?
        .decimal()
        .map_err(Problem::internal)?
        .physical()
        .clone();
    let propensities = column("propensity")?
        .f64()
        .map_err(Problem::internal)?
        .clone();
    let versions = column("model_version")?
        .str()
        .map_err(Problem::internal)?
        .clone();
    let rows = (0..f.height())
        .map(|i| OutcomeRow {
            account_id: ids.get(i).unwrap_or_default().to_string(),
            as_of: crate::contract::parse::days_to_date(days.get(i).unwrap_or_default()),
            strategy: strategies.get(i).unwrap_or("none").to_string(),
            paid: paid_col.get(i).unwrap_or(false),
            paid_amount: money_to_decimal(amounts.get(i).unwrap_or(0)).to_string(),
            propensity: propensities.get(i),
            model_version: versions.get(i).map(str::to_string),
        })
        .collect();
    Ok(Json(Outcomes {
        horizon_days: horizon,
        through,
        pending: built.pending,
        outcomes: rows,
    }))
}

/// Switches the live model: a new plan is built with it in the background
/// and replaces the served one atomically; reads go on meanwhile.
#[utoipa::path(post, path = "/v1/models/{version}/activate", tag = "models",
    params(("version" = String, Path)),
    responses((status = 202, body = RunInfo, description = "the run that plans with the model; poll GET /v1/runs/{id}"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "a run is already going")),
    security(("bearer" = [])))]
pub async fn activate_model(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Analyst>,
    Path(version): Path<String>,
) -> Result<(StatusCode, Json<RunInfo>), Problem> {
    let found = app.model_folders();
    let (dir, _) = found
        .into_iter()
        .find(|(_, meta)| meta.version == version)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "model version {version:?}: not among GET /v1/models"
            ))
        })?;
    let run = app.clone().start_run(Some(dir), caller.actor(None), None)?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Rebuilds the plan from the data folder in the background; reads go on
/// meanwhile and the switch to the new plan is atomic.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    responses((status = 202, body = RunInfo), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem, description = "a run is already going")),
    security(("bearer" = [])))]
pub async fn start_run(
    State(app): State<Arc<App>>,
    Authorized(caller, _): Authorized<Analyst>,
) -> Result<(StatusCode, Json<RunInfo>), Problem> {
    let run = app.clone().start_run(None, caller.actor(None), None)?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// A run's progress.
#[utoipa::path(get, path = "/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = u64, Path)),
    responses((status = 200, body = RunInfo), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(app): State<Arc<App>>,
    Authorized(_, _): Authorized<Analyst>,
    Path(run_id): Path<u64>,
) -> Result<Json<RunInfo>, Problem> {
    let runs = app.runs.lock().expect("runs lock");
    runs.iter()
        .find(|r| r.run_id == run_id)
        .cloned()
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("run {run_id}: no such run on this server")))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    pub status: String,
    pub plan_id: i64,
    pub day: NaiveDate,
    pub model_version: String,
    pub accounts: i64,
}

/// Ready once a model and a plan are loaded.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Ready), (status = 503, body = Problem)))]
pub async fn readyz(State(app): State<Arc<App>>) -> Result<Json<Ready>, Problem> {
    let live = app
        .live
        .load_full()
        .ok_or_else(|| Problem::unavailable("building the first plan; not ready yet"))?;
    Ok(Json(Ready {
        status: "ready".into(),
        plan_id: live.plan.plan_id,
        day: live.plan.day,
        model_version: live.plan.model_version.clone(),
        accounts: live.plan.accounts,
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from the config file's [[api_keys]] (role collector, analyst, manager or admin)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "prioritize", description = "Ranked collection worklists, leases, actions, segments and models."),
    paths(healthz, readyz, metrics, worklist, lease, release_lease, record_action, account, unblock,
        super::segments::segments, audit, models, activate_model, outcomes, start_run, get_run),
    modifiers(&Security),
    tags(
        (name = "worklists", description = "collector: queues and leases"),
        (name = "accounts", description = "collector: one account, and what happened; manager: lifting a block"),
        (name = "managers", description = "manager: segments, the audit table"),
        (name = "models", description = "analyst: model versions, the switch, and the outcomes of served decisions"),
        (name = "runs", description = "analyst: rebuilding the plan"),
        (name = "operations", description = "no key: health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served: utoipa's from the handlers, completed
/// with what the layers and extractors answer on every route (auth, rate
/// limit, shedding, body and query rejections), every error as
/// `application/problem+json`, and the contract's names as enums, so that
/// it lists every response a request can get.
pub fn document() -> &'static serde_json::Value {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        complete(&mut doc);
        doc
    })
}

fn complete(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let names = |names: &[&str]| json!({"type": "string", "enum": names});
    let strategies: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
    let retry_after = json!({"Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1}
    }});
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                continue;
            }
            let keyed = operation.get("security").is_some();
            let body = operation.get("requestBody").is_some();
            let parameters = operation
                .get_mut("parameters")
                .and_then(|p| p.as_array_mut());
            let query = parameters
                .as_ref()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let has_path = parameters
                .as_ref()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path"));
            for parameter in parameters.into_iter().flatten() {
                // A path's strategy is one of the contract's.
                if parameter["name"] == "strategy" && parameter["in"] == "path" {
                    parameter["schema"] = names(&strategies);
                }
                if parameter["name"] == "version" && parameter["in"] == "path" {
                    parameter["schema"] = json!({
                        "type": "string",
                        "pattern": "^[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z-[0-9a-f]{8}$"
                    });
                }
                if parameter["name"] == "since" && path == "/v1/audit" {
                    parameter["schema"] = json!({
                        "type": "string",
                        "anyOf": [{"format": "date-time"}, {"format": "date"}]
                    });
                }
                if parameter["name"] == "Idempotency-Key" {
                    parameter["schema"] = json!({
                        "type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": IDEMPOTENCY_KEY_PATTERN
                    });
                }
            }
            let probe = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description}));
            };
            if keyed {
                add(
                    "401",
                    "no key, or one this server does not know (header WWW-Authenticate)",
                );
                add("403", "the key lacks the role");
                add(
                    "429",
                    "the key is over its rate limit ([limits] per_key_per_second; header Retry-After)",
                );
            }
            if body {
                add("400", "the body is not well-formed JSON");
                add("413", "the body is larger than 64 KiB");
                add(
                    "415",
                    "the body is not sent as Content-Type: application/json",
                );
                add(
                    "422",
                    "a field is missing, unknown, of the wrong type or out of range (detail names it)",
                );
            }
            if query {
                add("400", "a query parameter is unknown or does not parse");
                add("422", "a query parameter is out of range (detail names it)");
            }
            if has_path {
                add("400", "a path parameter does not parse");
            }
            if !probe {
                add(
                    "503",
                    "overloaded ([limits] max_concurrent_requests) or the store unreachable (header Retry-After)",
                );
            }
            add("408", "the request took longer than 30 s to handle");
            for (status, response) in responses.iter_mut() {
                if status.as_str() < "400" {
                    continue;
                }
                if status != "408" {
                    response["content"] = json!({"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}
                    }});
                }
                if matches!(status.as_str(), "429" | "503") {
                    response["headers"] = retry_after.clone();
                }
            }
        }
    }
    // The contract's names, as enums.
    let Some(schemas) = doc.get_mut("components").and_then(|c| c.get_mut("schemas")) else {
        return;
    };
    // A promise comes with its date; anything else with neither promise field.
    if let Some(action) = schemas.get_mut("ActionRequest") {
        action["if"] = json!({
            "properties": {"outcome": {"const": "promise_to_pay"}},
            "required": ["outcome"]
        });
        action["then"] = json!({
            "properties": {"promised_on": {"type": "string"}},
            "required": ["promised_on"]
        });
        action["else"] = json!({
            "properties": {"promised_amount": {"type": "null"}, "promised_on": {"type": "null"}}
        });
    }
    let mut set = |schema: &str, field: &str, value: Value| {
        let property = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field));
        if let Some(property) = property {
            let description = property.get("description").cloned();
            *property = value;
            if let Some(description) = description {
                property["description"] = description;
            }
        }
    };
    for schema in ["ActionRequest", "ActionRecord", "ActionRow"] {
        set(schema, "channel", names(CHANNELS));
        set(schema, "outcome", names(ACTION_OUTCOMES));
    }
    set("RunInfo", "status", names(RunStatus::NAMES));
    set("UnblockRequest", "rule", names(&LIFTABLE));
    for schema in ["Worklist", "Lease", "Released"] {
        set(schema, "strategy", names(&strategies));
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(document()).unwrap_or_default(),
    )
        .into_response()
}

/// `GET /docs`: the OpenAPI document as a page, rendered here (no CDN).
pub async fn docs() -> Html<String> {
    let doc = document();
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut rows = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete"] {
                let op = &item[method];
                if op.is_null() {
                    continue;
                }
                let summary = op["summary"]
                    .as_str()
                    .or(op["description"].as_str())
                    .unwrap_or("");
                let auth = if op["security"].is_null() {
                    "none"
                } else {
                    "bearer key"
                };
                let codes: Vec<String> = op["responses"]
                    .as_object()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                rows.push_str(&format!(
                    "<tr><td class=m>{}</td><td><code>{}</code></td><td>{}</td><td>{auth}</td><td>{}</td></tr>\n",
                    method.to_uppercase(),
                    escape(path),
                    escape(summary),
                    codes.join(" ")
                ));
            }
        }
    }
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>prioritize API</title><style>body{{font:15px system-ui,sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}\
         .m{{font-weight:600;color:#0b5394}}</style></head><body><h1>prioritize API</h1>\
         <p>The full OpenAPI 3.1 document: <a href=\"/openapi.json\">/openapi.json</a>. Keys go in \
         <code>Authorization: Bearer KEY</code>; errors are <code>application/problem+json</code>; money is a decimal string.</p>\
         <table><tr><th>method</th><th>path</th><th>what it does</th><th>auth</th><th>responses</th></tr>{rows}</table></body></html>"
    ))
}
