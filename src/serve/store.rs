//! Where the served plan, leases and recorded actions live: an embedded SQLite
//! file by default, PostgreSQL for several replicas. One [`Store`] trait, one
//! test suite (`tests/serve.rs`) run against both.
//!
//! Both backends share the statements below through sqlx's `Any` driver; where
//! their SQL differs (types, row locks) the [`Backend`] picks the variant.
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

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::contract::Strategy;
use crate::features::contacts::CONVERSATIONS;
use crate::strategy::rules::{self, RuleConfig};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("no plan is loaded yet")]
    NoPlan,
    #[error("account {0:?} is not in the served plan")]
    UnknownAccount(String),
    #[error("the Idempotency-Key {0:?} was already used for a different action on this account")]
    IdempotencyConflict(String),
    #[error("the cursor belongs to plan {0}, which has since been replaced; start again without a cursor")]
    StaleCursor(i64),
    #[error("{0}")]
    Invalid(String),
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

    fn ddl(self, template: &str) -> String {
        let (id, int, real) = match self {
            Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL"),
            Backend::Postgres => ("BIGSERIAL PRIMARY KEY", "BIGINT", "DOUBLE PRECISION"),
        };
        template
            .replace("{id}", id)
            .replace("{int}", int)
            .replace("{real}", real)
    }

    /// Row lock for a queue's candidate rows.
    fn skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    fn lock(self, exclusive: bool) -> &'static str {
        match (self, exclusive) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, true) => "FOR UPDATE",
            (Backend::Postgres, false) => "FOR SHARE",
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

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS plans (
        plan_id {id},
        created_at {int} NOT NULL,
        day TEXT NOT NULL,
        model_version TEXT NOT NULL,
        data_hash TEXT NOT NULL,
        accounts {int} NOT NULL,
        summary TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS active_plan (
        id {int} PRIMARY KEY,
        plan_id {int} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS plan_items (
        plan_id {int} NOT NULL,
        account_id TEXT NOT NULL,
        person TEXT NOT NULL,
        timezone TEXT NOT NULL,
        currency TEXT NOT NULL,
        strategy TEXT NOT NULL,
        queue_rank {int} NOT NULL,
        priority {int} NOT NULL,
        p_pay {real} NOT NULL,
        expected_value {int} NOT NULL,
        reasons TEXT NOT NULL,
        blocked_by TEXT NOT NULL,
        propensity {real} NOT NULL,
        model_version TEXT NOT NULL,
        balance {int} NOT NULL,
        days_past_due {int} NOT NULL,
        risk {real} NOT NULL,
        calls_in_window {int} NOT NULL,
        call_from {int},
        history TEXT NOT NULL,
        blocked_live TEXT,
        leased_by TEXT,
        lease_expires {int},
        PRIMARY KEY (plan_id, account_id))",
    "CREATE INDEX IF NOT EXISTS plan_items_queue ON plan_items (plan_id, strategy, queue_rank)",
    "CREATE INDEX IF NOT EXISTS plan_items_person ON plan_items (plan_id, person)",
    "CREATE TABLE IF NOT EXISTS people (
        plan_id {int} NOT NULL,
        person TEXT NOT NULL,
        calls_added {int} NOT NULL,
        PRIMARY KEY (plan_id, person))",
    "CREATE TABLE IF NOT EXISTS actions (
        id {id},
        account_id TEXT NOT NULL,
        at {int} NOT NULL,
        at_text TEXT NOT NULL,
        channel TEXT NOT NULL,
        outcome TEXT NOT NULL,
        promised_amount TEXT,
        promised_on TEXT,
        agent_id TEXT,
        idempotency_key TEXT,
        request_hash TEXT,
        recorded_at {int} NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS actions_idempotency ON actions (account_id, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS actions_account ON actions (account_id, id)",
    "CREATE INDEX IF NOT EXISTS actions_at ON actions (at)",
];

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

const ROW_COLUMNS: &str = "plan_id, account_id, person, timezone, currency, strategy, queue_rank, \
    priority, p_pay, expected_value, reasons, blocked_by, propensity, model_version, balance, \
    days_past_due, risk, calls_in_window, call_from, history";
const ROW_WIDTH: usize = 20;

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
    pub channel: String,
    pub outcome: String,
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
            | Change::Activated { plan } => Some(*plan),
            Change::Marker { .. } => None,
        }
    }
}

/// The PostgreSQL channel that carries [`Change`]s.
pub const CHANGES: &str = "prioritize_changes";

/// A queue entry with its live state, for an in-memory copy of a plan.
#[derive(Debug, Clone)]
pub struct QueueRow {
    /// The strategy's index in the contract's order.
    pub strategy: usize,
    pub item: Item,
    pub blocked: bool,
    /// Agent and expiry (microseconds since the epoch).
    pub lease: Option<(String, i64)>,
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
                .filter(|s| s.channel() == Some("call"))
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
    /// Stores a plan's rows (not yet active); returns its id.
    async fn insert_plan(&self, meta: &PlanMeta, rows: &[PlanRow]) -> Result<i64, StoreError>;
    /// Makes a stored plan the active one, atomically: active leases carry
    /// over, and actions recorded since the plan's day began apply to it.
    async fn activate_plan(&self, plan_id: i64, rules: &LiveRules) -> Result<(), StoreError>;
    /// Deletes the rows of plans older than the active one's predecessor.
    async fn prune_plans(&self) -> Result<u64, StoreError>;
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
    /// Returns the active plan's id with the leases.
    async fn lease(
        &self,
        strategy: &str,
        agent: &str,
        count: i64,
        ttl_micros: i64,
        now: i64,
        zones: Option<&[String]>,
    ) -> Result<(i64, Vec<Leased>), StoreError>;
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
    /// Closes the pools.
    async fn close(&self);
}

/// Opens (creating if needed) the store at `url` and brings its schema up to date.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let (read, write) = match backend {
        Backend::Sqlite => {
            let url = if url.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            let options = AnyConnectOptions::from_str(&url)?;
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(sqlite_pragmas)
                .connect_with(options.clone())
                .await?;
            let read = AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(sqlite_pragmas)
                .connect_with(options)
                .await?;
            (read, write)
        }
        Backend::Postgres => {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            (pool.clone(), pool)
        }
    };
    let store = SqlStore {
        backend,
        read,
        write,
    };
    store.migrate().await?;
    Ok(store)
}

type Connected<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// WAL with full sync: a committed write survives a crash of the process or
/// the machine.
fn sqlite_pragmas(
    conn: &mut AnyConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> Connected<'_> {
    Box::pin(async move {
        use sqlx::Executor;
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA busy_timeout = 10000",
        ] {
            conn.execute(pragma).await?;
        }
        Ok(())
    })
}

/// The SQL store (SQLite or PostgreSQL).
pub struct SqlStore {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
}

impl SqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.write.acquire().await?;
        if self.backend == Backend::Postgres {
            // Replicas starting together must not race on CREATE TABLE.
            sqlx::query("SELECT pg_advisory_lock(72817)")
                .execute(&mut *conn)
                .await?;
        }
        let mut result = Ok(());
        for statement in SCHEMA {
            if let Err(e) = sqlx::query(&self.backend.ddl(statement))
                .execute(&mut *conn)
                .await
            {
                result = Err(e.into());
                break;
            }
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(72817)")
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    async fn active_id(
        &self,
        conn: &mut AnyConnection,
        exclusive: bool,
    ) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT plan_id FROM active_plan WHERE id = 1 {}",
            self.backend.lock(exclusive)
        );
        let row = sqlx::query(&sql).fetch_optional(&mut *conn).await?;
        match row {
            Some(row) => Ok(row.try_get::<i64, _>(0)?),
            None => Err(StoreError::NoPlan),
        }
    }

    /// Tells every replica of a change when the transaction of `conn`
    /// commits (PostgreSQL; SQLite has one process, which applies its own).
    async fn notify(&self, conn: &mut AnyConnection, change: Change) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        // A payload must stay under 8000 bytes: long account lists go in parts.
        let parts = match change {
            Change::Leased {
                plan,
                agent,
                expires,
                accounts,
            } => chunks(accounts)
                .into_iter()
                .map(|accounts| Change::Leased {
                    plan,
                    agent: agent.clone(),
                    expires,
                    accounts,
                })
                .collect(),
            Change::Blocked { plan, accounts } => chunks(accounts)
                .into_iter()
                .map(|accounts| Change::Blocked { plan, accounts })
                .collect(),
            other => vec![other],
        };
        for part in parts {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES)
                .bind(serde_json::to_string(&part).expect("changes serialise"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The person and time zone of an account of plan `plan_id`, if it is in it.
    async fn account_keys(
        conn: &mut AnyConnection,
        plan_id: i64,
        account_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT person, timezone FROM plan_items WHERE plan_id = $1 AND account_id = $2",
        )
        .bind(plan_id)
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
            None => None,
        })
    }

    /// Runs a blocking `UPDATE … RETURNING account_id`; the accounts it blocked.
    async fn block<'q>(
        conn: &mut AnyConnection,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        rule: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        query
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, rule.to_string())))
            .collect()
    }

    /// Applies an action's compliance effects to plan `plan_id`, for an
    /// account of `person` in time zone `zone`; returns the accounts it blocked.
    #[allow(clippy::too_many_arguments)]
    async fn apply_live(
        conn: &mut AnyConnection,
        plan_id: i64,
        account_id: &str,
        (person, zone): (&str, &str),
        action: &NewAction,
        now: i64,
        rules: &LiveRules,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const CLEAR_LEASE: &str = "leased_by = NULL, lease_expires = NULL";
        let mut blocked = Vec::new();
        // The account's own pauses: a dispute, a promise that still holds.
        let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
        let today = DateTime::<Utc>::from_timestamp_micros(now)
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive();
        let own_rule = match action.outcome.as_str() {
            "dispute" => Some("dispute_open"),
            "promise_to_pay"
                if action
                    .promised_on
                    .is_some_and(|d| rules::promise_holds(d, today)) =>
            {
                Some("promise_pending")
            }
            _ => None,
        };
        if let Some(rule) = own_rule {
            let sql = format!(
                "UPDATE plan_items SET blocked_live = $1, {CLEAR_LEASE} \
                 WHERE plan_id = $2 AND account_id = $3 AND strategy <> 'none' AND blocked_live IS NULL \
                 RETURNING account_id"
            );
            let query = sqlx::query(&sql).bind(rule).bind(plan_id).bind(account_id);
            blocked.extend(Self::block(conn, query, rule).await?);
        }
        // The person's calls: the cool-off after a conversation, the attempt limit.
        let person_calls = |condition: &str| {
            format!(
                "UPDATE plan_items SET blocked_live = $1, {CLEAR_LEASE} \
                 WHERE plan_id = $2 AND person = $3 AND strategy IN ({}) AND blocked_live IS NULL{condition} \
                 RETURNING account_id",
                rules.call_like_sql
            )
        };
        if CONVERSATIONS.contains(&action.outcome.as_str())
            && now < action.at + rules.cool_off_micros
        {
            let rule = "conversation_cool_off";
            let sql = person_calls("");
            let query = sqlx::query(&sql).bind(rule).bind(plan_id).bind(person);
            blocked.extend(Self::block(conn, query, rule).await?);
        }
        if action.channel == "call" {
            let added: i64 = sqlx::query(
                "INSERT INTO people (plan_id, person, calls_added) VALUES ($1, $2, 1) \
                 ON CONFLICT (plan_id, person) DO UPDATE SET calls_added = people.calls_added + 1 \
                 RETURNING calls_added",
            )
            .bind(plan_id)
            .bind(person)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
            let rule = "call_attempt_limit";
            let sql = person_calls(" AND calls_in_window + $4 >= $5");
            let query = sqlx::query(&sql)
                .bind(rule)
                .bind(plan_id)
                .bind(person)
                .bind(added)
                .bind(rules.max_calls_in_window);
            blocked.extend(Self::block(conn, query, rule).await?);
        }
        // The action ends the account's lease.
        sqlx::query(&format!(
            "UPDATE plan_items SET {CLEAR_LEASE} \
             WHERE plan_id = $1 AND account_id = $2 AND leased_by IS NOT NULL"
        ))
        .bind(plan_id)
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
        Ok(blocked)
    }

    async fn find_idempotent(
        &self,
        conn: &mut AnyConnection,
        account_id: &str,
        key: &str,
    ) -> Result<Option<(StoredAction, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACTION_COLUMNS}, request_hash FROM actions WHERE account_id = $1 AND idempotency_key = $2"
        ))
        .bind(account_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => Ok(Some((
                stored_action(&row)?,
                row.try_get::<Option<String>, _>("request_hash")?
                    .unwrap_or_default(),
            ))),
            None => Ok(None),
        }
    }

    async fn record_once(
        &self,
        account_id: &str,
        action: &NewAction,
        key: Option<&str>,
        hash: &str,
        now: i64,
        rules: &LiveRules,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.write.begin().await?;
        let plan_id = self.active_id(&mut tx, false).await?;
        if let Some(key) = key {
            if let Some((stored, stored_hash)) =
                self.find_idempotent(&mut tx, account_id, key).await?
            {
                tx.rollback().await?;
                if stored_hash != hash {
                    return Err(StoreError::IdempotencyConflict(key.to_string()));
                }
                return Ok(Recorded {
                    plan_id,
                    action: stored,
                    replayed: true,
                    blocked: Vec::new(),
                });
            }
        }
        let Some((person, zone)) = Self::account_keys(&mut tx, plan_id, account_id).await? else {
            tx.rollback().await?;
            return Err(StoreError::UnknownAccount(account_id.to_string()));
        };
        let id: i64 = sqlx::query(
            "INSERT INTO actions (account_id, at, at_text, channel, outcome, promised_amount, \
             promised_on, agent_id, idempotency_key, request_hash, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(account_id)
        .bind(action.at)
        .bind(&action.at_text)
        .bind(&action.channel)
        .bind(&action.outcome)
        .bind(action.promised_amount.clone())
        .bind(action.promised_on.map(|d| d.to_string()))
        .bind(action.agent_id.clone())
        .bind(key.map(str::to_string))
        .bind(hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let blocked = Self::apply_live(
            &mut tx,
            plan_id,
            account_id,
            (&person, &zone),
            action,
            now,
            rules,
        )
        .await?;
        if !blocked.is_empty() {
            let accounts = blocked.iter().map(|(a, _)| a.clone()).collect();
            self.notify(
                &mut tx,
                Change::Blocked {
                    plan: plan_id,
                    accounts,
                },
            )
            .await?;
        }
        let account = account_id.to_string();
        self.notify(
            &mut tx,
            Change::Released {
                plan: plan_id,
                account,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Recorded {
            plan_id,
            action: StoredAction {
                id,
                account_id: account_id.to_string(),
                action: action.clone(),
                recorded_at: now,
            },
            replayed: false,
            blocked,
        })
    }
}

const ACTION_COLUMNS: &str =
    "id, account_id, at, at_text, channel, outcome, promised_amount, promised_on, agent_id, recorded_at";

fn stored_action(row: &sqlx::any::AnyRow) -> Result<StoredAction, StoreError> {
    let promised_on: Option<String> = row.try_get("promised_on")?;
    Ok(StoredAction {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        action: NewAction {
            at: row.try_get("at")?,
            at_text: row.try_get("at_text")?,
            channel: row.try_get("channel")?,
            outcome: row.try_get("outcome")?,
            promised_amount: row.try_get("promised_amount")?,
            promised_on: promised_on.and_then(|d| d.parse().ok()),
            agent_id: row.try_get("agent_id")?,
        },
        recorded_at: row.try_get("recorded_at")?,
    })
}

fn item(row: &sqlx::any::AnyRow) -> Result<Item, StoreError> {
    Ok(Item {
        account_id: row.try_get("account_id")?,
        queue_rank: row.try_get("queue_rank")?,
        priority: row.try_get("priority")?,
        p_pay: row.try_get("p_pay")?,
        expected_value: row.try_get("expected_value")?,
        currency: row.try_get("currency")?,
        reasons: row.try_get("reasons")?,
    })
}

const ITEM_COLUMNS: &str =
    "account_id, queue_rank, priority, p_pay, expected_value, currency, reasons";

/// Account lists in parts whose JSON stays well under `NOTIFY`'s 8000 bytes.
fn chunks(accounts: Vec<String>) -> Vec<Vec<String>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = 0;
    for account in accounts {
        // Escaping at most doubles an id (six bytes for a control character).
        let size = account.len() * 6 + 3;
        if bytes + size > 6000 && !parts.last().expect("a part").is_empty() {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        parts.last_mut().expect("a part").push(account);
    }
    parts
}

fn is_unique_violation(error: &StoreError) -> bool {
    match error {
        StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
        _ => false,
    }
}

/// A `plans` row.
fn plan_meta(row: &sqlx::any::AnyRow) -> Result<PlanMeta, StoreError> {
    let day: String = row.try_get("day")?;
    Ok(PlanMeta {
        plan_id: row.try_get("plan_id")?,
        created_at: row.try_get("created_at")?,
        day: day
            .parse()
            .map_err(|_| StoreError::Invalid(format!("stored plan day {day:?}")))?,
        model_version: row.try_get("model_version")?,
        data_hash: row.try_get("data_hash")?,
        accounts: row.try_get("accounts")?,
        summary: row.try_get("summary")?,
    })
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn active_plan(&self) -> Result<Option<PlanMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT p.plan_id, p.created_at, p.day, p.model_version, p.data_hash, p.accounts, p.summary \
             FROM active_plan a JOIN plans p ON p.plan_id = a.plan_id WHERE a.id = 1",
        )
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| plan_meta(&row)).transpose()
    }

    async fn previous_plan(&self) -> Result<Option<PlanMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT p.plan_id, p.created_at, p.day, p.model_version, p.data_hash, p.accounts, p.summary \
             FROM plans p WHERE p.plan_id < (SELECT plan_id FROM active_plan WHERE id = 1) \
             ORDER BY p.plan_id DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| plan_meta(&row)).transpose()
    }

    async fn insert_plan(&self, meta: &PlanMeta, rows: &[PlanRow]) -> Result<i64, StoreError> {
        let mut tx = self.write.begin().await?;
        let plan_id: i64 = sqlx::query(
            "INSERT INTO plans (created_at, day, model_version, data_hash, accounts, summary) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING plan_id",
        )
        .bind(meta.created_at)
        .bind(meta.day.to_string())
        .bind(&meta.model_version)
        .bind(&meta.data_hash)
        .bind(rows.len() as i64)
        .bind(&meta.summary)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        // Rows go in chunks, each its own transaction, so that actions and
        // leases on the active plan interleave (SQLite has one writer).
        const CHUNK: usize = 800;
        let placeholders: Vec<String> = (0..CHUNK)
            .map(|r| {
                let cells: Vec<String> = (1..=ROW_WIDTH)
                    .map(|c| format!("${}", r * ROW_WIDTH + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        for (index, chunk) in rows.chunks(CHUNK * 8).enumerate() {
            let mut tx = self.write.begin().await?;
            for part in chunk.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO plan_items ({ROW_COLUMNS}) VALUES {}",
                    placeholders[..part.len()].join(", ")
                );
                let mut query = sqlx::query(&sql);
                for row in part {
                    query = query
                        .bind(plan_id)
                        .bind(&row.account_id)
                        .bind(&row.person)
                        .bind(&row.timezone)
                        .bind(&row.currency)
                        .bind(row.strategy)
                        .bind(row.queue_rank)
                        .bind(row.priority)
                        .bind(row.p_pay)
                        .bind(row.expected_value)
                        .bind(&row.reasons)
                        .bind(&row.blocked_by)
                        .bind(row.propensity)
                        .bind(&row.model_version)
                        .bind(row.balance)
                        .bind(row.days_past_due)
                        .bind(row.risk)
                        .bind(row.calls_in_window)
                        .bind(row.call_from)
                        .bind(&row.history);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            tracing::debug!(plan_id, rows = (index + 1) * CHUNK * 8, "plan rows stored");
        }
        if self.backend == Backend::Postgres {
            // Without fresh statistics the planner sorts a whole queue for
            // every lease instead of walking its index (23 leases/s at 100k).
            sqlx::query("ANALYZE plan_items")
                .execute(&self.write)
                .await?;
        }
        Ok(plan_id)
    }

    async fn activate_plan(&self, plan_id: i64, rules: &LiveRules) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        // Waits for leases and actions in flight on the old plan.
        let old = match self.active_id(&mut tx, true).await {
            Ok(id) => Some(id),
            Err(StoreError::NoPlan) => None,
            Err(e) => return Err(e),
        };
        let now = Utc::now().timestamp_micros();
        if let Some(old) = old {
            // Leases still running carry over to the new plan's rows.
            let leases = sqlx::query(
                "SELECT account_id, leased_by, lease_expires FROM plan_items \
                 WHERE plan_id = $1 AND leased_by IS NOT NULL AND lease_expires > $2",
            )
            .bind(old)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for lease in leases {
                sqlx::query(
                    "UPDATE plan_items SET leased_by = $1, lease_expires = $2 \
                     WHERE plan_id = $3 AND account_id = $4",
                )
                .bind(lease.try_get::<String, _>(1)?)
                .bind(lease.try_get::<i64, _>(2)?)
                .bind(plan_id)
                .bind(lease.try_get::<String, _>(0)?)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Actions recorded through the API apply to the new plan as they did
        // to the old one: those of the rules' windows, and promises still open.
        let day: String = sqlx::query("SELECT day FROM plans WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let day: NaiveDate = day
            .parse()
            .map_err(|_| StoreError::Invalid(format!("stored plan day {day:?}")))?;
        let since = (day - chrono::Duration::days(rules.window_days + 1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let actions = sqlx::query(&format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE at >= $1 OR promised_on >= $2 ORDER BY id"
        ))
        .bind(since)
        .bind(day.to_string())
        .fetch_all(&mut *tx)
        .await?;
        for row in &actions {
            let stored = stored_action(row)?;
            // Accounts no longer in the data folder have nothing to block.
            let Some((person, zone)) =
                Self::account_keys(&mut tx, plan_id, &stored.account_id).await?
            else {
                continue;
            };
            Self::apply_live(
                &mut tx,
                plan_id,
                &stored.account_id,
                (&person, &zone),
                &stored.action,
                now,
                rules,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO active_plan (id, plan_id) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET plan_id = excluded.plan_id",
        )
        .bind(plan_id)
        .execute(&mut *tx)
        .await?;
        self.notify(&mut tx, Change::Activated { plan: plan_id })
            .await?;
        tx.commit().await?;
        tracing::info!(plan_id, replayed = actions.len(), "plan activated");
        Ok(())
    }

    async fn prune_plans(&self) -> Result<u64, StoreError> {
        let mut conn = self.write.acquire().await?;
        let active = match self.active_id(&mut conn, false).await {
            Ok(id) => id,
            Err(StoreError::NoPlan) => return Ok(0),
            Err(e) => return Err(e),
        };
        let keep: Option<i64> = sqlx::query("SELECT max(plan_id) FROM plans WHERE plan_id < $1")
            .bind(active)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        let keep = keep.unwrap_or(active);
        let mut removed = 0;
        for table in ["plan_items", "people", "plans"] {
            removed += sqlx::query(&format!(
                "DELETE FROM {table} WHERE plan_id < $1 AND plan_id <> $2"
            ))
            .bind(keep)
            .bind(active)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        Ok(removed)
    }

    async fn worklist(
        &self,
        strategy: &str,
        cursor: Option<(i64, i64)>,
        limit: i64,
        now: i64,
        agent: Option<&str>,
    ) -> Result<(i64, Vec<Item>), StoreError> {
        let mut conn = self.read.acquire().await?;
        let plan_id = self.active_id(&mut conn, false).await?;
        let after = match cursor {
            Some((plan, _)) if plan != plan_id => return Err(StoreError::StaleCursor(plan)),
            Some((_, rank)) => rank,
            None => 0,
        };
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM plan_items \
             WHERE plan_id = $1 AND strategy = $2 AND queue_rank > $3 AND blocked_live IS NULL \
             AND (leased_by IS NULL OR lease_expires <= $4 OR leased_by = $5) \
             ORDER BY queue_rank LIMIT $6"
        ))
        .bind(plan_id)
        .bind(strategy)
        .bind(after)
        .bind(now)
        .bind(agent.unwrap_or("").to_string())
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let items = rows.iter().map(item).collect::<Result<Vec<_>, _>>()?;
        Ok((plan_id, items))
    }

    async fn lease(
        &self,
        strategy: &str,
        agent: &str,
        count: i64,
        ttl_micros: i64,
        now: i64,
        zones: Option<&[String]>,
    ) -> Result<(i64, Vec<Leased>), StoreError> {
        let mut tx = self.write.begin().await?;
        let plan_id = self.active_id(&mut tx, false).await?;
        let expires = now + ttl_micros;
        let mut extra = String::new();
        if let Some(zones) = zones {
            if zones.is_empty() {
                tx.rollback().await?;
                return Ok((plan_id, Vec::new()));
            }
            let list: Vec<String> = (0..zones.len()).map(|k| format!("${}", 7 + k)).collect();
            extra = format!(
                " AND (call_from IS NULL OR call_from <= $5) AND timezone IN ({})",
                list.join(", ")
            );
        }
        let sql = format!(
            "UPDATE plan_items SET leased_by = $1, lease_expires = $2 \
             WHERE plan_id = $3 AND account_id IN (\
               SELECT account_id FROM plan_items WHERE plan_id = $3 AND strategy = $4 \
               AND blocked_live IS NULL AND (leased_by IS NULL OR lease_expires <= $5){extra} \
               ORDER BY queue_rank LIMIT $6 {}) \
             RETURNING {ITEM_COLUMNS}",
            self.backend.skip_locked()
        );
        let mut query = sqlx::query(&sql)
            .bind(agent)
            .bind(expires)
            .bind(plan_id)
            .bind(strategy)
            .bind(now)
            .bind(count);
        for zone in zones.unwrap_or(&[]) {
            query = query.bind(zone);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        if !rows.is_empty() {
            let accounts = rows
                .iter()
                .map(|row| row.try_get::<String, _>("account_id"))
                .collect::<Result<Vec<_>, _>>()?;
            let change = Change::Leased {
                plan: plan_id,
                agent: agent.to_string(),
                expires,
                accounts,
            };
            self.notify(&mut tx, change).await?;
        }
        tx.commit().await?;
        let mut leased = rows
            .iter()
            .map(|row| {
                Ok(Leased {
                    item: item(row)?,
                    expires_at: expires,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        leased.sort_by_key(|l| l.item.queue_rank);
        Ok((plan_id, leased))
    }

    async fn queue_rows(&self, plan_id: i64) -> Result<Vec<QueueRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, strategy, blocked_live, leased_by, lease_expires \
             FROM plan_items WHERE plan_id = $1"
        ))
        .bind(plan_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let strategy: String = row.try_get("strategy")?;
                let strategy = Strategy::from_str(&strategy)
                    .map_err(|_| StoreError::Invalid(format!("stored strategy {strategy:?}")))?;
                let blocked: Option<String> = row.try_get("blocked_live")?;
                let agent: Option<String> = row.try_get("leased_by")?;
                let expires: Option<i64> = row.try_get("lease_expires")?;
                Ok(QueueRow {
                    strategy: strategy as usize,
                    item: item(row)?,
                    blocked: blocked.is_some(),
                    lease: agent.zip(expires),
                })
            })
            .collect()
    }

    async fn send_marker(&self, replica: &str, n: u64) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut conn = self.write.acquire().await?;
        let marker = Change::Marker {
            replica: replica.to_string(),
            n,
        };
        self.notify(&mut conn, marker).await
    }

    async fn record_action(
        &self,
        account_id: &str,
        action: &NewAction,
        idempotency_key: Option<&str>,
        now: i64,
        rules: &LiveRules,
    ) -> Result<Recorded, StoreError> {
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(action).expect("actions serialise"),
        ));
        match self
            .record_once(account_id, action, idempotency_key, &hash, now, rules)
            .await
        {
            // Two requests with one key at once: the second finds the first.
            Err(e) if idempotency_key.is_some() && is_unique_violation(&e) => {
                self.record_once(account_id, action, idempotency_key, &hash, now, rules)
                    .await
            }
            other => other,
        }
    }

    async fn account(
        &self,
        account_id: &str,
        recent: i64,
    ) -> Result<Option<AccountRow>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let plan_id = self.active_id(&mut conn, false).await?;
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, strategy, blocked_by, blocked_live, propensity, model_version, \
             leased_by, lease_expires, history FROM plan_items WHERE plan_id = $1 AND account_id = $2"
        ))
        .bind(plan_id)
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let actions = sqlx::query(&format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE account_id = $1 ORDER BY at DESC, id DESC LIMIT $2"
        ))
        .bind(account_id)
        .bind(recent)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(AccountRow {
            item: item(&row)?,
            strategy: row.try_get("strategy")?,
            blocked_by: row.try_get("blocked_by")?,
            blocked_live: row.try_get("blocked_live")?,
            propensity: row.try_get("propensity")?,
            model_version: row.try_get("model_version")?,
            leased_by: row.try_get("leased_by")?,
            lease_expires: row.try_get("lease_expires")?,
            history: row.try_get("history")?,
            recent: actions
                .iter()
                .map(stored_action)
                .collect::<Result<Vec<_>, _>>()?,
        }))
    }

    async fn queue_sizes(&self, now: i64) -> Result<BTreeMap<String, (i64, i64)>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let plan_id = self.active_id(&mut conn, false).await?;
        let rows = sqlx::query(
            "SELECT strategy, \
             sum(CASE WHEN blocked_live IS NULL THEN 1 ELSE 0 END), \
             sum(CASE WHEN blocked_live IS NULL AND leased_by IS NOT NULL AND lease_expires > $2 THEN 1 ELSE 0 END) \
             FROM plan_items WHERE plan_id = $1 GROUP BY strategy",
        )
        .bind(plan_id)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            out.insert(
                row.try_get::<String, _>(0)?,
                (row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?),
            );
        }
        Ok(out)
    }

    async fn zones(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let plan_id = self.active_id(&mut conn, false).await?;
        let rows = sqlx::query("SELECT DISTINCT timezone FROM plan_items WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect()
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}
