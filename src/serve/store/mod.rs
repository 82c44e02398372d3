//! Where the served plan, leases and recorded actions live: an embedded SQLite
//! file by default ([`sqlite::SqliteStore`]), PostgreSQL for several replicas
//! ([`postgres::PostgresStore`]). Both implement the one [`Store`] trait, and
//! one test suite (`tests/serve.rs`) runs against both.
//!
//! They share the statements of [`sql`] through sqlx's `Any` driver; each adds
//! what is its own: how it connects and migrates, its row locks, and how other
//! replicas hear of a change (see [`sql::SqlBackend`]).
//!
//! Correctness with several replicas on one PostgreSQL:
//! - a lease is an `UPDATE … WHERE account_id IN (SELECT … FOR UPDATE SKIP
//!   LOCKED)` on the plan rows themselves, so two agents never get the same
//!   account, and a row leased meanwhile is re-checked before it is taken;
//! - leases and actions hold a share lock on the active-plan row while the
//!   switch to a new plan holds it exclusively, so no lease or action falls
//!   between two plans.
//!
//! SQLite serialises all writes through one connection (WAL, `synchronous =
//! FULL`), so it is correct for one process; reads use a pool of their own.
//! Every write is committed (durable) before the call returns.

pub mod decisions;
mod live;
mod postgres;
mod sql;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::contract::{Channel, Outcome, Strategy};
use crate::strategy::rules::Rule;
use crate::strategy::rules::RuleConfig;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the store's schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the audit table is no longer append-only: trigger(s) {} missing or disabled; re-create them with the statements at the end of migrations/{backend}/0001_schema.sql before serving again", missing.join(", "))]
    AuditUnguarded {
        backend: &'static str,
        missing: Vec<String>,
    },
    #[error("no plan is loaded yet")]
    NoPlan,
    #[error("account {0:?} is not in the served plan")]
    UnknownAccount(String),
    #[error("the Idempotency-Key {0:?} was already used with a different request (another body, account or queue)")]
    IdempotencyConflict(String),
    #[error("the cursor belongs to plan {0}, which has since been replaced; start again without a cursor")]
    StaleCursor(i64),
    #[error("account {0:?} holds no live lease in this queue")]
    NotLeased(String),
    #[error("account {account:?} is leased to agent {holder:?}, not to {agent:?}")]
    LeasedToOther {
        account: String,
        holder: String,
        agent: String,
    },
    #[error("account {account:?} has no {rule} block from an action recorded through the API: a block from the data folder's own records is lifted there")]
    NothingToLift { account: String, rule: String },
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether a retry can cure it: the connection lost or refused, the
    /// pool out of connections, the server shutting down or starting, a
    /// serialization failure or deadlock, SQLite busy.
    pub fn retryable(&self) -> bool {
        let StoreError::Db(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                // PostgreSQL SQLSTATEs: 08 connection exception, 57P0x shutdown
                // or not yet accepting, 53300 too many connections, 40001/40P01.
                code.starts_with("08")
                    || code.starts_with("57P0")
                    || matches!(code, "53300" | "40001" | "40P01")
                    // SQLite's SQLITE_BUSY and SQLITE_LOCKED (and their extended codes).
                    || matches!(code, "5" | "6" | "261" | "517" | "773" | "262" | "518")
            }),
            _ => false,
        }
    }

    /// Whether the store cannot be reached at all (not merely busy): the
    /// connection lost or refused, the server shutting down.
    pub fn unreachable(&self) -> bool {
        let StoreError::Db(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                code.starts_with("08") || code.starts_with("57P0")
            }),
            _ => false,
        }
    }
}

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid(format!(
                "--db {}: expected sqlite://PATH or postgres://…",
                redact(url)
            )))
        }
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// One account's row of a plan, as stored.
#[derive(Debug, Clone)]
pub struct PlanRow {
    pub account_id: String,
    /// Whose contact limits the account shares (`customer_id`, else the account).
    pub person: String,
    pub timezone: String,
    pub currency: String,
    pub strategy: &'static str,
    pub queue_rank: i64,
    /// Money in ten-thousandths.
    pub priority: i64,
    pub p_pay: f64,
    pub expected_value: i64,
    pub reasons: String,
    pub blocked_by: String,
    pub propensity: f64,
    pub model_version: String,
    pub balance: i64,
    pub days_past_due: i64,
    /// The propensity model's P(pay).
    pub risk: f64,
    /// Call attempts counted against this account on the planning day.
    pub calls_in_window: i64,
    /// Microseconds since the epoch before which no call may be handed out
    /// (the end of a conversation's cool-off).
    pub call_from: Option<i64>,
    /// The latest actions of the data folder, newest first, as JSON.
    pub history: String,
}

/// What describes a stored plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanMeta {
    pub plan_id: i64,
    /// Microseconds since the epoch.
    pub created_at: i64,
    pub day: NaiveDate,
    pub model_version: String,
    pub data_hash: String,
    pub accounts: i64,
    /// The plan's summary (segments, mix), JSON.
    pub summary: String,
}

/// A queue entry as worklists and leases show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub account_id: String,
    pub queue_rank: i64,
    pub priority: i64,
    pub p_pay: f64,
    pub expected_value: i64,
    pub currency: String,
    pub reasons: String,
}

/// Who made a write, as the audit table records it: the API key's id and
/// role, and the agent it acted as (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub key_id: String,
    pub role: String,
    pub agent_id: Option<String>,
}

impl Actor {
    /// The server itself: the plan it builds when it starts.
    pub fn system() -> Actor {
        Actor {
            key_id: "system".into(),
            role: "system".into(),
            agent_id: None,
        }
    }
}

/// One row of the append-only audit table.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    /// Microseconds since the epoch.
    pub at: i64,
    pub key_id: String,
    pub role: String,
    pub agent_id: Option<String>,
    /// lease, release, action, unblock, run or activate.
    pub action: String,
    pub account_id: Option<String>,
    /// JSON.
    pub detail: String,
}

/// Which audit rows to read: after `after_id`, in the order written.
#[derive(Debug, Clone, Copy)]
pub struct AuditAsk<'a> {
    pub account_id: Option<&'a str>,
    /// Rows written at or after this (microseconds since the epoch).
    pub since: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

/// A lifted block: the API's actions of `rule` on `account_id` recorded up
/// to `at` no longer block it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lift {
    pub account_id: String,
    pub rule: String,
    /// Microseconds since the epoch.
    pub at: i64,
}

/// What an unblock did.
#[derive(Debug, Clone)]
pub struct Unblocked {
    pub plan_id: i64,
    /// A live block of the served plan was removed (else the lift counts
    /// from the next plan on).
    pub lifted_now: bool,
    /// The live block that still holds the account (another pause, the
    /// person's cool-off or call limit), if the lifted one was its block.
    pub still_blocked_by: Option<String>,
}

/// The rule an action of the API's blocks its account by, if any.
pub fn own_rule(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Dispute => Some(Rule::DisputeOpen.as_str()),
        Outcome::PromiseToPay => Some(Rule::PromisePending.as_str()),
        _ => None,
    }
}

/// Held while a run builds and installs a plan, so that replicas run one at
/// a time: on PostgreSQL a transaction holding an advisory lock, which ends
/// (and frees the lock) however the run ends, even if this is dropped; on
/// SQLite nothing (one process, whose runs are already one at a time).
pub struct RunLock(pub(crate) Option<sqlx::Transaction<'static, sqlx::Any>>);

impl RunLock {
    /// Frees the lock.
    pub async fn release(self) {
        if let Some(tx) = self.0 {
            if let Err(e) = tx.rollback().await {
                tracing::warn!(error = %e, "ending the run lock's transaction");
            }
        }
    }
}

/// A lease request as the store sees it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseAsk<'a> {
    pub strategy: &'a str,
    pub agent: &'a str,
    pub count: i64,
    pub ttl_micros: i64,
    pub now: i64,
    /// The request's Idempotency-Key and the hash of its body: a retry with
    /// the key gets the first reply's leases.
    pub idempotency: Option<(&'a str, &'a str)>,
    pub actor: &'a Actor,
}

/// What a lease request got.
#[derive(Debug)]
pub struct LeaseReply {
    pub plan_id: i64,
    pub leased: Vec<Leased>,
    /// A retry answered with what the first request leased.
    pub replayed: bool,
}

/// A lease handed out.
#[derive(Debug, Clone)]
pub struct Leased {
    pub item: Item,
    /// Microseconds since the epoch.
    pub expires_at: i64,
}

/// An action to record, as an `actions` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewAction {
    /// Microseconds since the epoch.
    pub at: i64,
    /// The instant as the client wrote it (RFC 3339 with its offset).
    pub at_text: String,
    pub channel: Channel,
    pub outcome: Outcome,
    pub promised_amount: Option<String>,
    pub promised_on: Option<NaiveDate>,
    pub agent_id: Option<String>,
}

/// A recorded action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAction {
    pub id: i64,
    pub account_id: String,
    pub action: NewAction,
    /// Microseconds since the epoch.
    pub recorded_at: i64,
}

/// What recording an action did.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The active plan it applied to.
    pub plan_id: i64,
    pub action: StoredAction,
    /// A retry with the same Idempotency-Key: nothing new was recorded.
    pub replayed: bool,
    /// Accounts (this one or the same person's) whose planned strategy the
    /// action blocked, with the rule.
    pub blocked: Vec<(String, String)>,
}

/// One account as the store holds it in the active plan.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub item: Item,
    pub timezone: String,
    pub strategy: String,
    pub blocked_by: String,
    pub blocked_live: Option<String>,
    pub propensity: f64,
    pub model_version: String,
    pub leased_by: Option<String>,
    pub lease_expires: Option<i64>,
    pub history: String,
    /// Actions recorded through the API, newest first.
    pub recent: Vec<StoredAction>,
}

/// A committed change to the live state of a plan's accounts, as replicas
/// hear of it (PostgreSQL `NOTIFY` on [`CHANGES`], sent in the same
/// transaction, so it is heard on commit and in commit order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Change {
    /// Accounts leased to `agent` until `expires` (microseconds since the epoch).
    Leased {
        plan: i64,
        agent: String,
        expires: i64,
        accounts: Vec<String>,
    },
    /// Accounts blocked by an action (their leases end too).
    Blocked { plan: i64, accounts: Vec<String> },
    /// An account's lease ended with an action.
    Released { plan: i64, account: String },
    /// An account's live block was lifted (`POST /v1/accounts/{id}/unblock`).
    Unblocked { plan: i64, account: String },
    /// A plan became the active one.
    Activated { plan: i64 },
    /// A replica's freshness marker (see `queues::Freshness`).
    Marker { replica: String, n: u64 },
}

impl Change {
    /// The plan whose accounts it changes.
    pub fn plan(&self) -> Option<i64> {
        match self {
            Change::Leased { plan, .. }
            | Change::Blocked { plan, .. }
            | Change::Released { plan, .. }
            | Change::Unblocked { plan, .. }
            | Change::Activated { plan } => Some(*plan),
            Change::Marker { .. } => None,
        }
    }
}

/// The PostgreSQL channel that carries [`Change`]s.
pub const CHANGES: &str = "prioritize_changes";

/// What a store's stream of changes says (see [`Store::changes`]).
#[derive(Debug)]
pub enum Heard {
    /// Listening (again): changes committed before this may have been missed.
    Listening,
    /// A change some replica committed, in commit order.
    Change(Change),
    /// The connection was lost and is being taken up again: changes sent
    /// meanwhile are gone.
    Missed,
    /// The store cannot be reached; the stream tries again every second
    /// and says `Listening` once it is back.
    Unreachable(StoreError),
}

/// A queue entry with its live state, for an in-memory copy of a plan.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The strategy's index in the contract's order.
    pub strategy: usize,
    pub item: Item,
    pub blocked: bool,
    /// Agent and expiry (microseconds since the epoch).
    pub lease: Option<(String, i64)>,
    pub timezone: String,
    /// No call before this instant (a conversation's cool-off), if set.
    pub call_from: Option<i64>,
}

/// The live parts of the compliance rules: what an action changes at once.
#[derive(Debug, Clone)]
pub struct LiveRules {
    pub max_calls_in_window: i64,
    pub cool_off_micros: i64,
    pub window_days: i64,
    /// Strategies made by phone (they count as calls), as an SQL list.
    pub call_like_sql: String,
}

impl LiveRules {
    pub fn new(config: &RuleConfig) -> LiveRules {
        LiveRules {
            max_calls_in_window: i64::from(config.max_calls_in_window),
            cool_off_micros: i64::from(config.conversation_cool_off_days) * 86_400_000_000,
            window_days: i64::from(
                config
                    .call_window_days
                    .max(config.conversation_cool_off_days),
            ),
            call_like_sql: Strategy::ALL
                .iter()
                .filter(|s| s.channel() == Some(Channel::Call))
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Storage of plans, leases and actions.
#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// The active plan, if any.
    async fn active_plan(&self) -> Result<Option<PlanMeta>, StoreError>;
    /// The newest stored plan older than the active one.
    async fn previous_plan(&self) -> Result<Option<PlanMeta>, StoreError>;
    /// Stores a plan's rows (not yet active); returns its id. The run that
    /// made it is audited as `actor`'s.
    async fn insert_plan(
        &self,
        meta: &PlanMeta,
        rows: &[PlanRow],
        actor: &Actor,
    ) -> Result<i64, StoreError>;
    /// Replaces the summary of a stored plan that is not active yet (the
    /// calibration is worked out while its rows are being stored).
    async fn set_plan_summary(&self, plan_id: i64, summary: &str) -> Result<(), StoreError>;
    /// Makes a stored plan the active one, atomically: active leases carry
    /// over, and actions recorded since the plan's day began apply to it
    /// (less the blocks lifted since).
    async fn activate_plan(
        &self,
        plan_id: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<(), StoreError>;
    /// Deletes the rows of plans older than the active one's predecessor
    /// (their decisions stay, see [`decisions`]).
    async fn prune_plans(&self) -> Result<u64, StoreError>;
    /// The decisions of every stored plan whose day is within `since..=until`,
    /// in the order the plans were stored.
    async fn decisions(
        &self,
        since: Option<NaiveDate>,
        until: NaiveDate,
    ) -> Result<Vec<decisions::Decisions>, StoreError>;
    /// Every action recorded through the API, in the order recorded.
    async fn all_actions(&self) -> Result<Vec<StoredAction>, StoreError>;
    /// Every `paid` action recorded through the API: account and instant
    /// (microseconds since the epoch).
    async fn paid_actions(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Deletes the decisions of plans for days before `before`.
    async fn prune_decisions(&self, before: NaiveDate) -> Result<u64, StoreError>;
    /// A page of a strategy's queue after `cursor`, leaving out accounts
    /// blocked since the plan and accounts leased to someone other than `agent`.
    async fn worklist(
        &self,
        strategy: &str,
        cursor: Option<(i64, i64)>,
        limit: i64,
        now: i64,
        agent: Option<&str>,
    ) -> Result<(i64, Vec<Item>), StoreError>;
    /// Every account of plan `plan_id` in its queue, with its live state.
    async fn queue_rows(&self, plan_id: i64) -> Result<Vec<QueueRow>, StoreError>;
    /// Leases the next `count` accounts of a queue to `agent`. `zones`, when
    /// given, are the only time zones whose accounts may be handed out now.
    /// `candidates` are the accounts the server believes to be the next free
    /// ones: they are checked again and taken first, and the queue is
    /// scanned only for what they do not cover (a scan steps over every
    /// account leased at the head of the queue). Returns the active plan's
    /// id with the leases.
    async fn lease(
        &self,
        request: &LeaseAsk<'_>,
        zones: Option<&[String]>,
        candidates: Option<&[String]>,
    ) -> Result<LeaseReply, StoreError>;
    /// Ends the live lease of `account` in the queue of `strategy`, if
    /// `agent` holds it (`None`: whoever does). Returns the agent that held it.
    async fn release(
        &self,
        strategy: &str,
        account: &str,
        agent: Option<&str>,
        now: i64,
        actor: &Actor,
    ) -> Result<(i64, String), StoreError>;
    /// Lifts the `rule` block (`promise_pending` or `dispute_open`) that
    /// actions recorded through the API put on `account`: at once in the
    /// served plan, and in every later plan for the actions recorded so far.
    async fn unblock(
        &self,
        account: &str,
        rule: &str,
        reason: &str,
        now: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<Unblocked, StoreError>;
    /// Waits until no other replica is running, and holds that until released.
    async fn run_lock(&self) -> Result<RunLock, StoreError>;
    /// Every lifted block, oldest first.
    async fn lifts(&self) -> Result<Vec<Lift>, StoreError>;
    /// A page of the audit table.
    async fn audit(&self, ask: &AuditAsk<'_>) -> Result<Vec<AuditEntry>, StoreError>;
    /// Sends a replica's freshness marker to every listener (PostgreSQL; a
    /// no-op elsewhere).
    async fn send_marker(&self, replica: &str, n: u64) -> Result<(), StoreError>;
    /// Records an action durably and applies its compliance effects.
    async fn record_action(
        &self,
        account_id: &str,
        action: &NewAction,
        idempotency_key: Option<&str>,
        now: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<Recorded, StoreError>;
    /// One account of the active plan with its recent actions.
    async fn account(
        &self,
        account_id: &str,
        recent: i64,
    ) -> Result<Option<AccountRow>, StoreError>;
    /// Accounts per queue that are open (not blocked since the plan), and
    /// leased now, by strategy.
    async fn queue_sizes(&self, now: i64) -> Result<BTreeMap<String, (i64, i64)>, StoreError>;
    /// Distinct time zones of the active plan's accounts.
    async fn zones(&self) -> Result<Vec<String>, StoreError>;
    /// Every replica's changes as they commit, for as long as the receiver
    /// is kept (PostgreSQL: `LISTEN` on [`CHANGES`], taken up again when the
    /// connection is lost); `None` where this process makes every change
    /// (SQLite).
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Heard>>;
    /// Closes the pools.
    async fn close(&self);
}

/// Opens (creating if needed) the store at `url` and brings its schema up to date.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    sqlx::any::install_default_drivers();
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::open(url).await?),
        Backend::Postgres => Arc::new(postgres::PostgresStore::open(url).await?),
    })
}
