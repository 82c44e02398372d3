//! The SQL both stores share, through sqlx's `Any` driver, implemented once
//! for every [`SqlBackend`]: what a database adds is its pools, its row locks
//! (by [`Backend`]) and how other replicas hear of a change.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Row};

use super::decisions::{self, Decisions};
use super::live::{account_keys, apply_live, record_once};
use super::{
    own_rule, AccountRow, Actor, AuditAsk, AuditEntry, Backend, Change, Heard, Item, LeaseAsk,
    LeaseReply, Leased, Lift, LiveRules, NewAction, PlanMeta, PlanRow, QueueRow, Recorded, RunLock,
    Store, StoreError, StoredAction, Unblocked,
};
use crate::contract::{Channel, Strategy};
use crate::strategy::rules;

/// What one database adds to the shared SQL.
#[async_trait]
pub trait SqlBackend: Send + Sync {
    const BACKEND: Backend;
    /// Connections for reads.
    fn read(&self) -> &AnyPool;
    /// Connections for writes (SQLite: the single writer).
    fn write(&self) -> &AnyPool;
    /// Tells every other replica of `change` when the transaction on `conn` commits.
    async fn announce(&self, conn: &mut AnyConnection, change: Change) -> Result<(), StoreError>;
    /// Called once a plan's rows are stored.
    async fn plan_stored(&self) -> Result<(), StoreError>;
    /// Stores a plan's rows in bulk where the backend has a way (PostgreSQL:
    /// `COPY`), each part committed on its own; `false` where it has none
    /// and the rows go as batched inserts.
    async fn copy_rows(&self, _plan_id: i64, _rows: &[PlanRow]) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Every replica's changes (see [`Store::changes`]); none by default.
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Heard>> {
        None
    }
}

impl Backend {
    /// The `n`th parameter of a statement. SQLite reads `$n` as a name and
    /// looks each one up among the names before it: preparing an insert of
    /// 800 rows took 0.4 s that way, 1 ms with plain `?`.
    fn placeholder(self, n: usize) -> String {
        match self {
            Backend::Sqlite => "?".into(),
            Backend::Postgres => format!("${n}"),
        }
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

/// The schema's versions, one folder per backend under `migrations/`,
/// applied in order, each in its own transaction, and recorded in
/// `_sqlx_migrations` (PostgreSQL: under sqlx's advisory lock, so replicas
/// starting together migrate once). A store that holds a version this build
/// does not know, or one whose file changed since it was applied, is refused.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The PostgreSQL advisory lock a run holds (one run at a time across replicas).
const RUN_LOCK: i64 = 72818;

pub(super) const ROW_COLUMNS: &str =
    "plan_id, account_id, person, timezone, currency, strategy, queue_rank, \
    priority, p_pay, expected_value, reasons, blocked_by, propensity, model_version, balance, \
    days_past_due, risk, calls_in_window, call_from, history";
const ROW_WIDTH: usize = 20;

/// Plan rows as CSV for `COPY plan_items (ROW_COLUMNS) FROM STDIN (FORMAT csv)`:
/// every text quoted (so an empty text is not read as NULL), NULL as an
/// empty field, floats in the shortest form that reads back as the same number.
pub(super) fn rows_csv(plan_id: i64, rows: &[PlanRow], out: &mut Vec<u8>) {
    use std::io::Write;
    fn text(out: &mut Vec<u8>, field: &str) {
        out.push(b'"');
        for &b in field.as_bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.extend_from_slice(b"\",");
    }
    for row in rows {
        let _ = write!(out, "{plan_id},");
        text(out, &row.account_id);
        text(out, &row.person);
        text(out, &row.timezone);
        text(out, &row.currency);
        text(out, row.strategy);
        let _ = write!(
            out,
            "{},{},{:?},{},",
            row.queue_rank, row.priority, row.p_pay, row.expected_value
        );
        text(out, &row.reasons);
        text(out, &row.blocked_by);
        let _ = write!(out, "{:?},", row.propensity);
        text(out, &row.model_version);
        let _ = write!(
            out,
            "{},{},{:?},{},",
            row.balance, row.days_past_due, row.risk, row.calls_in_window
        );
        if let Some(from) = row.call_from {
            let _ = write!(out, "{from}");
        }
        out.push(b',');
        text(out, &row.history);
        // The last field's comma becomes the line's end.
        out.pop();
        out.push(b'\n');
    }
}

/// Brings the schema up to date (see [`SQLITE_MIGRATIONS`]).
pub async fn migrate(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.run(&mut *conn).await?;
    check_audit_guards(conn, backend).await
}

/// Refuses a store whose audit table lost a guard (a trigger dropped, or
/// disabled on PostgreSQL, by the database's owner): the migrations are
/// never re-run, so nothing would bring it back, and serving on would write
/// an audit trail that can be silently edited.
async fn check_audit_guards(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    let (sql, expected, folder): (&str, &[&str], &'static str) = match backend {
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'",
            &["audit_no_update", "audit_no_delete"],
            "sqlite",
        ),
        Backend::Postgres => (
            "SELECT tgname::text FROM pg_trigger \
             WHERE tgrelid = 'audit'::regclass AND NOT tgisinternal AND tgenabled <> 'D'",
            &["audit_append_only", "audit_no_truncate"],
            "postgres",
        ),
    };
    let present: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut *conn).await?;
    let missing: Vec<String> = expected
        .iter()
        .filter(|name| !present.iter().any(|(p,)| p == *name))
        .map(|name| name.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::AuditUnguarded {
            backend: folder,
            missing,
        })
    }
}

/// Appends audit rows, one per `(account, detail)`, as `actor`'s at `at`.
pub(super) async fn audit(
    conn: &mut AnyConnection,
    backend: Backend,
    actor: &Actor,
    at: i64,
    action: &str,
    rows: &[(Option<&str>, serde_json::Value)],
) -> Result<(), StoreError> {
    const WIDTH: usize = 7;
    for part in rows.chunks(100) {
        let values: Vec<String> = (0..part.len())
            .map(|r| {
                let cells: Vec<String> = (1..=WIDTH)
                    .map(|c| backend.placeholder(r * WIDTH + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit (at, key_id, role, agent_id, action, account_id, detail) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (account, detail) in part {
            query = query
                .bind(at)
                .bind(actor.key_id.clone())
                .bind(actor.role.clone())
                .bind(actor.agent_id.clone())
                .bind(action.to_string())
                .bind(account.map(str::to_string))
                .bind(detail.to_string());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The latest lift of each (account, rule).
pub(super) async fn lifted(
    conn: &mut AnyConnection,
) -> Result<std::collections::HashMap<(String, String), i64>, StoreError> {
    let rows =
        sqlx::query("SELECT account_id, rule, max(at) FROM unblocks GROUP BY account_id, rule")
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| Ok(((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?)))
        .collect()
}

/// The active plan, for a read: no row lock (a read never waits for a plan
/// switch, and the rows of the plan before stay until two newer ones exist).
async fn read_active_id(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT plan_id FROM active_plan WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(row.try_get::<i64, _>(0)?),
        None => Err(StoreError::NoPlan),
    }
}

/// The active plan, locked against a switch (PostgreSQL: shared, or
/// exclusive for the switch itself).
pub(super) async fn active_id(
    conn: &mut AnyConnection,
    backend: Backend,
    exclusive: bool,
) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT plan_id FROM active_plan WHERE id = 1 {}",
        backend.lock(exclusive)
    );
    let row = sqlx::query(&sql).fetch_optional(&mut *conn).await?;
    match row {
        Some(row) => Ok(row.try_get::<i64, _>(0)?),
        None => Err(StoreError::NoPlan),
    }
}

pub(super) const ACTION_COLUMNS: &str =
    "id, account_id, at, at_text, channel, outcome, promised_amount, promised_on, agent_id, recorded_at";

/// A column of a closed vocabulary (channel, outcome), as its type.
fn vocabulary<T: std::str::FromStr<Err = String>>(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|e| StoreError::Invalid(format!("actions.{column}: {e}")))
}

pub(super) fn stored_action(row: &sqlx::any::AnyRow) -> Result<StoredAction, StoreError> {
    let promised_on: Option<String> = row.try_get("promised_on")?;
    Ok(StoredAction {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        action: NewAction {
            at: row.try_get("at")?,
            at_text: row.try_get("at_text")?,
            channel: vocabulary(row, "channel")?,
            outcome: vocabulary(row, "outcome")?,
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

/// One `UPDATE` that leases the first free accounts of a queue, in rank order.
struct QueueTake<'a> {
    plan_id: i64,
    strategy: &'a str,
    agent: &'a str,
    expires: i64,
    now: i64,
    /// Time zones where it is now within calling hours (calls only).
    zones: Option<&'a [String]>,
}

impl QueueTake<'_> {
    /// Leases up to `count` accounts, among `only` if given; the rows taken.
    async fn run<T: SqlBackend>(
        &self,
        conn: &mut AnyConnection,
        count: i64,
        only: Option<&[String]>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let mut next = 7;
        let mut list = |n: usize| {
            let places: Vec<String> = (next..next + n).map(|k| format!("${k}")).collect();
            next += n;
            places.join(", ")
        };
        let mut extra = String::new();
        if let Some(zones) = self.zones {
            extra += &format!(
                " AND (call_from IS NULL OR call_from <= $5) AND timezone IN ({})",
                list(zones.len())
            );
        }
        if let Some(only) = only {
            extra += &format!(" AND account_id IN ({})", list(only.len()));
        }
        let sql = format!(
            "UPDATE plan_items SET leased_by = $1, lease_expires = $2 \
             WHERE plan_id = $3 AND account_id IN (\
               SELECT account_id FROM plan_items WHERE plan_id = $3 AND strategy = $4 \
               AND blocked_live IS NULL AND (leased_by IS NULL OR lease_expires <= $5){extra} \
               ORDER BY queue_rank LIMIT $6 {}) \
             RETURNING {ITEM_COLUMNS}",
            T::BACKEND.skip_locked()
        );
        let mut query = sqlx::query(&sql)
            .bind(self.agent)
            .bind(self.expires)
            .bind(self.plan_id)
            .bind(self.strategy)
            .bind(self.now)
            .bind(count);
        for value in self.zones.unwrap_or(&[]).iter().chain(only.unwrap_or(&[])) {
            query = query.bind(value);
        }
        Ok(query.fetch_all(&mut *conn).await?)
    }
}

#[async_trait]
impl<T: SqlBackend> Store for T {
    fn backend(&self) -> Backend {
        T::BACKEND
    }

    async fn active_plan(&self) -> Result<Option<PlanMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT p.plan_id, p.created_at, p.day, p.model_version, p.data_hash, p.accounts, p.summary \
             FROM active_plan a JOIN plans p ON p.plan_id = a.plan_id WHERE a.id = 1",
        )
        .fetch_optional(self.read())
        .await?;
        row.map(|row| plan_meta(&row)).transpose()
    }

    async fn previous_plan(&self) -> Result<Option<PlanMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT p.plan_id, p.created_at, p.day, p.model_version, p.data_hash, p.accounts, p.summary \
             FROM plans p WHERE p.plan_id < (SELECT plan_id FROM active_plan WHERE id = 1) \
             ORDER BY p.plan_id DESC LIMIT 1",
        )
        .fetch_optional(self.read())
        .await?;
        row.map(|row| plan_meta(&row)).transpose()
    }

    async fn insert_plan(
        &self,
        meta: &PlanMeta,
        rows: &[PlanRow],
        actor: &Actor,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().begin().await?;
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
        sqlx::query(
            "INSERT INTO decisions (plan_id, day, created_at, accounts, activated, data) \
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(plan_id)
        .bind(meta.day.to_string())
        .bind(meta.created_at)
        .bind(rows.len() as i64)
        .bind(decisions::encode(rows)?)
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "plan_id": plan_id,
            "day": meta.day.to_string(),
            "model_version": meta.model_version,
            "data_hash": meta.data_hash,
            "accounts": rows.len(),
        });
        audit(
            &mut tx,
            T::BACKEND,
            actor,
            Utc::now().timestamp_micros(),
            "run",
            &[(None, detail)],
        )
        .await?;
        tx.commit().await?;
        if self.copy_rows(plan_id, rows).await? {
            self.plan_stored().await?;
            return Ok(plan_id);
        }
        // Rows go in chunks, each its own transaction, so that actions and
        // leases on the active plan interleave (SQLite has one writer).
        const CHUNK: usize = 800;
        let placeholders: Vec<String> = (0..CHUNK)
            .map(|r| {
                let cells: Vec<String> = (1..=ROW_WIDTH)
                    .map(|c| T::BACKEND.placeholder(r * ROW_WIDTH + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        for (index, chunk) in rows.chunks(CHUNK * 8).enumerate() {
            let mut tx = self.write().begin().await?;
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
        self.plan_stored().await?;
        Ok(plan_id)
    }

    async fn activate_plan(
        &self,
        plan_id: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        // The new plan's rows take the live effects of the actions recorded
        // so far before the switch, outside its lock: nobody else writes the
        // rows of a plan that is not active yet.
        let mut tx = self.write().begin().await?;
        let day: String = sqlx::query("SELECT day FROM plans WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let day: NaiveDate = day
            .parse()
            .map_err(|_| StoreError::Invalid(format!("stored plan day {day:?}")))?;
        let lifts_seen: Option<i64> = sqlx::query("SELECT max(id) FROM unblocks")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let replayed = replay(&mut tx, plan_id, day, rules, &HashSet::new()).await?;
        tx.commit().await?;

        // The switch: short, and set-based but for what was recorded meanwhile.
        let switch = std::time::Instant::now();
        let mut tx = self.write().begin().await?;
        // Waits for leases and actions in flight on the old plan.
        let old = match active_id(&mut tx, T::BACKEND, true).await {
            Ok(id) => Some(id),
            Err(StoreError::NoPlan) => None,
            Err(e) => return Err(e),
        };
        let now = Utc::now().timestamp_micros();
        if let Some(old) = old {
            // Leases still running carry over to the new plan's rows.
            sqlx::query(
                "UPDATE plan_items SET leased_by = o.leased_by, lease_expires = o.lease_expires \
                 FROM plan_items AS o \
                 WHERE plan_items.plan_id = $1 AND o.plan_id = $2 \
                 AND o.account_id = plan_items.account_id \
                 AND o.leased_by IS NOT NULL AND o.lease_expires > $3 \
                 AND plan_items.blocked_live IS NULL",
            )
            .bind(plan_id)
            .bind(old)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // Pauses a manager lifted since the replay above read the lifts.
        sqlx::query(
            "UPDATE plan_items SET blocked_live = NULL WHERE plan_id = $1 \
             AND account_id IN (SELECT account_id FROM unblocks \
               WHERE id > $2 AND rule = plan_items.blocked_live)",
        )
        .bind(plan_id)
        .bind(lifts_seen.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        // What was committed since (ids are handed out before commit, so an
        // action may have an id below ones already replayed).
        let meanwhile = replay(&mut tx, plan_id, day, rules, &replayed).await?;
        let replayed = replayed.len() + meanwhile.len();
        sqlx::query(
            "INSERT INTO active_plan (id, plan_id) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET plan_id = excluded.plan_id",
        )
        .bind(plan_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE decisions SET activated = 1 WHERE plan_id = $1")
            .bind(plan_id)
            .execute(&mut *tx)
            .await?;
        let detail = serde_json::json!({
            "plan_id": plan_id,
            "previous_plan_id": old,
            "replayed_actions": replayed,
        });
        audit(
            &mut tx,
            T::BACKEND,
            actor,
            now,
            "activate",
            &[(None, detail)],
        )
        .await?;
        self.announce(&mut tx, Change::Activated { plan: plan_id })
            .await?;
        tx.commit().await?;
        tracing::info!(
            plan_id,
            replayed,
            switch_seconds = switch.elapsed().as_secs_f64(),
            "plan activated"
        );
        Ok(())
    }

    async fn set_plan_summary(&self, plan_id: i64, summary: &str) -> Result<(), StoreError> {
        let updated = sqlx::query("UPDATE plans SET summary = $1 WHERE plan_id = $2")
            .bind(summary)
            .bind(plan_id)
            .execute(self.write())
            .await?
            .rows_affected();
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!("no stored plan {plan_id}")))
        }
    }

    async fn prune_plans(&self) -> Result<u64, StoreError> {
        let mut conn = self.write().acquire().await?;
        let active = match read_active_id(&mut conn).await {
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
        for table in ["plan_items", "people", "plans", "lease_requests"] {
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

    async fn decisions(
        &self,
        since: Option<NaiveDate>,
        until: NaiveDate,
    ) -> Result<Vec<Decisions>, StoreError> {
        let rows = sqlx::query(
            "SELECT plan_id, day, activated, data FROM decisions \
             WHERE day >= $1 AND day <= $2 ORDER BY plan_id",
        )
        .bind(since.map_or_else(|| "0000-01-01".to_string(), |d| d.to_string()))
        .bind(until.to_string())
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| {
                let day: String = row.try_get("day")?;
                let blob: Vec<u8> = row.try_get("data")?;
                Ok(Decisions {
                    plan_id: row.try_get("plan_id")?,
                    day: day
                        .parse()
                        .map_err(|_| StoreError::Invalid(format!("stored decision day {day:?}")))?,
                    activated: row.try_get::<i64, _>("activated")? != 0,
                    frame: decisions::decode(&blob)?,
                })
            })
            .collect()
    }

    async fn all_actions(&self) -> Result<Vec<StoredAction>, StoreError> {
        sqlx::query(&format!("SELECT {ACTION_COLUMNS} FROM actions ORDER BY id"))
            .fetch_all(self.read())
            .await?
            .iter()
            .map(stored_action)
            .collect()
    }

    async fn paid_actions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query("SELECT account_id, at FROM actions WHERE outcome = 'paid' ORDER BY id")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    async fn prune_decisions(&self, before: NaiveDate) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM decisions WHERE day < $1")
            .bind(before.to_string())
            .execute(self.write())
            .await?
            .rows_affected())
    }

    async fn worklist(
        &self,
        strategy: &str,
        cursor: Option<(i64, i64)>,
        limit: i64,
        now: i64,
        agent: Option<&str>,
    ) -> Result<(i64, Vec<Item>), StoreError> {
        let mut conn = self.read().acquire().await?;
        let plan_id = read_active_id(&mut conn).await?;
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

    async fn release(
        &self,
        strategy: &str,
        account: &str,
        agent: Option<&str>,
        now: i64,
        actor: &Actor,
    ) -> Result<(i64, String), StoreError> {
        let mut tx = self.write().begin().await?;
        let plan_id = active_id(&mut tx, T::BACKEND, false).await?;
        let row = sqlx::query(&format!(
            "SELECT leased_by, lease_expires FROM plan_items \
             WHERE plan_id = $1 AND account_id = $2 AND strategy = $3 {}",
            T::BACKEND.lock(true)
        ))
        .bind(plan_id)
        .bind(account.to_string())
        .bind(strategy.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::UnknownAccount(account.to_string()));
        };
        let holder: Option<String> = row.try_get("leased_by")?;
        let expires: Option<i64> = row.try_get("lease_expires")?;
        let holder = match (holder, expires) {
            (Some(holder), Some(expires)) if expires > now => holder,
            _ => {
                tx.rollback().await?;
                return Err(StoreError::NotLeased(account.to_string()));
            }
        };
        if let Some(agent) = agent.filter(|a| *a != holder) {
            tx.rollback().await?;
            return Err(StoreError::LeasedToOther {
                account: account.to_string(),
                holder,
                agent: agent.to_string(),
            });
        }
        sqlx::query(
            "UPDATE plan_items SET leased_by = NULL, lease_expires = NULL \
             WHERE plan_id = $1 AND account_id = $2",
        )
        .bind(plan_id)
        .bind(account.to_string())
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "strategy": strategy,
            "plan_id": plan_id,
            "holder": holder,
        });
        audit(
            &mut tx,
            T::BACKEND,
            actor,
            now,
            "release",
            &[(Some(account), detail)],
        )
        .await?;
        self.announce(
            &mut tx,
            Change::Released {
                plan: plan_id,
                account: account.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((plan_id, holder))
    }

    async fn unblock(
        &self,
        account: &str,
        rule: &str,
        reason: &str,
        now: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<Unblocked, StoreError> {
        let mut tx = self.write().begin().await?;
        let plan_id = active_id(&mut tx, T::BACKEND, false).await?;
        let row = sqlx::query(&format!(
            "SELECT timezone, person, strategy, calls_in_window, blocked_live FROM plan_items \
             WHERE plan_id = $1 AND account_id = $2 {}",
            T::BACKEND.lock(true)
        ))
        .bind(plan_id)
        .bind(account.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::UnknownAccount(account.to_string()));
        };
        let zone: String = row.try_get("timezone")?;
        let person: String = row.try_get("person")?;
        let strategy: String = row.try_get("strategy")?;
        let calls_in_window: i64 = row.try_get("calls_in_window")?;
        let blocked_live: Option<String> = row.try_get("blocked_live")?;
        let tz: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
        let today = chrono::DateTime::<Utc>::from_timestamp_micros(now)
            .unwrap_or_default()
            .with_timezone(&tz)
            .date_naive();
        let blocking = api_causes(&mut tx, account, rule, now, today, rules).await?;
        if blocking == 0 {
            tx.rollback().await?;
            return Err(StoreError::NothingToLift {
                account: account.to_string(),
                rule: rule.to_string(),
            });
        }
        sqlx::query(
            "INSERT INTO unblocks (account_id, rule, at, key_id, reason) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.to_string())
        .bind(rule.to_string())
        .bind(now)
        .bind(actor.key_id.clone())
        .bind(reason.to_string())
        .execute(&mut *tx)
        .await?;
        // The account keeps one live block: if the lifted one was it, what
        // else would block it now takes its place (the other pause, or for
        // a call the person's cool-off or attempt limit).
        let mut still: Option<&str> = None;
        if blocked_live.as_deref() == Some(rule) {
            let other = if rule == "promise_pending" {
                "dispute_open"
            } else {
                "promise_pending"
            };
            let call_like =
                Strategy::from_str(&strategy).is_ok_and(|s| s.channel() == Some(Channel::Call));
            if api_causes(&mut tx, account, other, now, today, rules).await? > 0 {
                still = Some(other);
            } else if call_like {
                let conversations = crate::features::contacts::CONVERSATIONS
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let latest: Option<i64> = sqlx::query(&format!(
                    "SELECT max(a.at) FROM actions a JOIN plan_items p \
                     ON p.plan_id = $1 AND p.account_id = a.account_id \
                     WHERE p.person = $2 AND a.outcome IN ({conversations})"
                ))
                .bind(plan_id)
                .bind(person.clone())
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                let added: Option<i64> = sqlx::query(
                    "SELECT calls_added FROM people WHERE plan_id = $1 AND person = $2",
                )
                .bind(plan_id)
                .bind(person.clone())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
                if latest.is_some_and(|at| now < at + rules.cool_off_micros) {
                    still = Some("conversation_cool_off");
                } else if calls_in_window + added.unwrap_or(0) >= rules.max_calls_in_window {
                    still = Some("call_attempt_limit");
                }
            }
            sqlx::query(
                "UPDATE plan_items SET blocked_live = $1 WHERE plan_id = $2 AND account_id = $3",
            )
            .bind(still.map(str::to_string))
            .bind(plan_id)
            .bind(account.to_string())
            .execute(&mut *tx)
            .await?;
        }
        let lifted_now = blocked_live.as_deref() == Some(rule) && still.is_none();
        // Blocked live by something else all along: that still holds.
        if blocked_live.as_deref().is_some_and(|b| b != rule) {
            still = blocked_live.as_deref();
        }
        let detail = serde_json::json!({
            "rule": rule,
            "reason": reason,
            "plan_id": plan_id,
            "lifted_now": lifted_now,
            "still_blocked_by": still,
            "actions": blocking,
        });
        audit(
            &mut tx,
            T::BACKEND,
            actor,
            now,
            "unblock",
            &[(Some(account), detail)],
        )
        .await?;
        if lifted_now {
            self.announce(
                &mut tx,
                Change::Unblocked {
                    plan: plan_id,
                    account: account.to_string(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Unblocked {
            plan_id,
            lifted_now,
            still_blocked_by: still.map(str::to_string),
        })
    }

    async fn run_lock(&self) -> Result<RunLock, StoreError> {
        if T::BACKEND == Backend::Sqlite {
            return Ok(RunLock(None));
        }
        let mut tx = self.write().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(RUN_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(RunLock(Some(tx)))
    }

    async fn lifts(&self) -> Result<Vec<Lift>, StoreError> {
        sqlx::query("SELECT account_id, rule, at FROM unblocks ORDER BY id")
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|row| {
                Ok(Lift {
                    account_id: row.try_get(0)?,
                    rule: row.try_get(1)?,
                    at: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn audit(&self, ask: &AuditAsk<'_>) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, key_id, role, agent_id, action, account_id, detail FROM audit \
             WHERE id > $1 AND at >= $2",
        );
        if ask.account_id.is_some() {
            sql.push_str(" AND account_id = $4");
        }
        sql.push_str(" ORDER BY id LIMIT $3");
        let mut query = sqlx::query(&sql)
            .bind(ask.after_id)
            .bind(ask.since.unwrap_or(i64::MIN))
            .bind(ask.limit);
        if let Some(account) = ask.account_id {
            query = query.bind(account.to_string());
        }
        query
            .fetch_all(self.read())
            .await?
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    key_id: row.try_get("key_id")?,
                    role: row.try_get("role")?,
                    agent_id: row.try_get("agent_id")?,
                    action: row.try_get("action")?,
                    account_id: row.try_get("account_id")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }

    async fn lease(
        &self,
        request: &LeaseAsk<'_>,
        zones: Option<&[String]>,
        candidates: Option<&[String]>,
    ) -> Result<LeaseReply, StoreError> {
        match lease_once(self, request, zones, candidates).await {
            // Two requests with one key at once: the second finds the first.
            Err(e) if request.idempotency.is_some() && is_unique_violation(&e) => {
                lease_once(self, request, zones, candidates).await
            }
            other => other,
        }
    }

    async fn queue_rows(&self, plan_id: i64) -> Result<Vec<QueueRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, strategy, blocked_live, leased_by, lease_expires, \
             timezone, call_from FROM plan_items WHERE plan_id = $1"
        ))
        .bind(plan_id)
        .fetch_all(self.read())
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
                    timezone: row.try_get("timezone")?,
                    call_from: row.try_get("call_from")?,
                })
            })
            .collect()
    }

    async fn send_marker(&self, replica: &str, n: u64) -> Result<(), StoreError> {
        let mut conn = self.write().acquire().await?;
        let marker = Change::Marker {
            replica: replica.to_string(),
            n,
        };
        self.announce(&mut conn, marker).await
    }

    async fn record_action(
        &self,
        account_id: &str,
        action: &NewAction,
        idempotency_key: Option<&str>,
        now: i64,
        rules: &LiveRules,
        actor: &Actor,
    ) -> Result<Recorded, StoreError> {
        use sha2::{Digest, Sha256};
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(action).expect("actions serialise"),
        ));
        let once = || {
            record_once(
                self,
                account_id,
                action,
                idempotency_key,
                &hash,
                now,
                rules,
                actor,
            )
        };
        match once().await {
            // Two requests with one key at once: the second finds the first.
            Err(e) if idempotency_key.is_some() && is_unique_violation(&e) => once().await,
            other => other,
        }
    }

    async fn account(
        &self,
        account_id: &str,
        recent: i64,
    ) -> Result<Option<AccountRow>, StoreError> {
        let mut conn = self.read().acquire().await?;
        let plan_id = read_active_id(&mut conn).await?;
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS}, timezone, strategy, blocked_by, blocked_live, propensity, model_version, \
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
            timezone: row.try_get("timezone")?,
            recent: actions
                .iter()
                .map(stored_action)
                .collect::<Result<Vec<_>, _>>()?,
        }))
    }

    async fn queue_sizes(&self, now: i64) -> Result<BTreeMap<String, (i64, i64)>, StoreError> {
        let mut conn = self.read().acquire().await?;
        let plan_id = read_active_id(&mut conn).await?;
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
        let mut conn = self.read().acquire().await?;
        let plan_id = read_active_id(&mut conn).await?;
        let rows = sqlx::query("SELECT DISTINCT timezone FROM plan_items WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>(0)?))
            .collect()
    }

    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Heard>> {
        SqlBackend::changes(self)
    }

    async fn close(&self) {
        self.write().close().await;
        self.read().close().await;
    }
}

/// One try at a lease: a replay when its Idempotency-Key was seen, else the
/// lease and (with a key) the record of what it leased, in one transaction.
async fn lease_once<T: SqlBackend>(
    store: &T,
    request: &LeaseAsk<'_>,
    zones: Option<&[String]>,
    candidates: Option<&[String]>,
) -> Result<LeaseReply, StoreError> {
    let LeaseAsk {
        strategy,
        agent,
        count,
        ttl_micros,
        now,
        idempotency,
        actor,
    } = *request;
    let mut tx = store.write().begin().await?;
    let plan_id = active_id(&mut tx, T::BACKEND, false).await?;
    if let Some((key, hash)) = idempotency {
        let seen = sqlx::query(
            "SELECT request_hash, accounts, expires FROM lease_requests \
             WHERE strategy = $1 AND idempotency_key = $2",
        )
        .bind(strategy.to_string())
        .bind(key.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = seen {
            let stored_hash: String = row.try_get("request_hash")?;
            if stored_hash != hash {
                tx.rollback().await?;
                return Err(StoreError::IdempotencyConflict(key.to_string()));
            }
            let accounts: Vec<String> =
                serde_json::from_str(&row.try_get::<String, _>("accounts")?)
                    .map_err(|e| StoreError::Invalid(format!("lease_requests.accounts: {e}")))?;
            let expires: i64 = row.try_get("expires")?;
            let mut leased = Vec::new();
            // What the first reply leased and the agent still holds under
            // that lease (carried across a plan switch, not expired, released
            // or ended by an action), in the active plan's queue.
            for account in &accounts {
                let item_row = sqlx::query(&format!(
                    "SELECT {ITEM_COLUMNS} FROM plan_items WHERE plan_id = $1 AND account_id = $2 \
                     AND strategy = $3 AND leased_by = $4 AND lease_expires = $5 AND lease_expires > $6"
                ))
                .bind(plan_id)
                .bind(account.clone())
                .bind(strategy.to_string())
                .bind(agent.to_string())
                .bind(expires)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(item_row) = item_row {
                    leased.push(Leased {
                        item: item(&item_row)?,
                        expires_at: expires,
                    });
                }
            }
            tx.rollback().await?;
            leased.sort_by_key(|l| l.item.queue_rank);
            return Ok(LeaseReply {
                plan_id,
                leased,
                replayed: true,
            });
        }
    }
    let expires = now + ttl_micros;
    if zones.is_some_and(<[String]>::is_empty) {
        tx.rollback().await?;
        return Ok(LeaseReply {
            plan_id,
            leased: Vec::new(),
            replayed: false,
        });
    }
    let take = QueueTake {
        plan_id,
        strategy,
        agent,
        expires,
        now,
        zones,
    };
    let mut rows = Vec::new();
    if let Some(candidates) = candidates.filter(|c| !c.is_empty()) {
        rows = take.run::<T>(&mut tx, count, Some(candidates)).await?;
    }
    // The queue is scanned when nothing was named, or when another
    // replica took some of what was; fewer candidates than asked for
    // means the queue has no more.
    let scan = candidates.is_none_or(|c| rows.len() < c.len());
    if scan && (rows.len() as i64) < count {
        let rest = take
            .run::<T>(&mut tx, count - rows.len() as i64, None)
            .await?;
        rows.extend(rest);
    }
    if !rows.is_empty() {
        let accounts = rows
            .iter()
            .map(|row| row.try_get::<String, _>("account_id"))
            .collect::<Result<Vec<_>, _>>()?;
        let detail = serde_json::json!({
            "strategy": strategy,
            "plan_id": plan_id,
            "expires_at": expires,
            "idempotency_key": idempotency.map(|(key, _)| key),
        });
        let audited: Vec<(Option<&str>, serde_json::Value)> = accounts
            .iter()
            .map(|a| (Some(a.as_str()), detail.clone()))
            .collect();
        audit(&mut tx, T::BACKEND, actor, now, "lease", &audited).await?;
        let change = Change::Leased {
            plan: plan_id,
            agent: agent.to_string(),
            expires,
            accounts,
        };
        store.announce(&mut tx, change).await?;
    }
    if let Some((key, hash)) = idempotency {
        let accounts = rows
            .iter()
            .map(|row| row.try_get::<String, _>("account_id"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(
            "INSERT INTO lease_requests (strategy, idempotency_key, request_hash, plan_id, \
             accounts, expires, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(strategy.to_string())
        .bind(key.to_string())
        .bind(hash.to_string())
        .bind(plan_id)
        .bind(serde_json::to_string(&accounts).expect("strings serialise"))
        .bind(expires)
        .bind(now)
        .execute(&mut *tx)
        .await?;
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
    Ok(LeaseReply {
        plan_id,
        leased,
        replayed: false,
    })
}

/// How many actions recorded through the API put the `rule` pause
/// (`promise_pending`, `dispute_open`) on `account` now and were not
/// lifted since: promises whose date has not passed on `today`, disputes
/// within the window a plan replays them over.
async fn api_causes(
    conn: &mut AnyConnection,
    account: &str,
    rule: &str,
    now: i64,
    today: NaiveDate,
    rules: &LiveRules,
) -> Result<usize, StoreError> {
    let before: Option<i64> =
        sqlx::query("SELECT max(at) FROM unblocks WHERE account_id = $1 AND rule = $2")
            .bind(account.to_string())
            .bind(rule.to_string())
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
    let outcome = match rule {
        "promise_pending" => "promise_to_pay",
        _ => "dispute",
    };
    let causes = sqlx::query(
        "SELECT promised_on, at FROM actions WHERE account_id = $1 AND outcome = $2 \
         AND recorded_at > $3",
    )
    .bind(account.to_string())
    .bind(outcome.to_string())
    .bind(before.unwrap_or(i64::MIN))
    .fetch_all(&mut *conn)
    .await?;
    let window_start = now - (rules.window_days + 1) * 86_400_000_000;
    let mut blocking = 0;
    for cause in &causes {
        let promised_on: Option<String> = cause.try_get(0)?;
        let at: i64 = cause.try_get(1)?;
        let holds = match rule {
            "promise_pending" => promised_on
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .is_some_and(|d| rules::promise_holds(d, today)),
            _ => at >= window_start,
        };
        blocking += usize::from(holds);
    }
    Ok(blocking)
}

/// Applies to plan `plan_id` (of `day`) the live effects of the actions
/// recorded through the API but those in `done`: the actions within the
/// rules' windows, and promises still open, less the pauses a manager lifted
/// after them. Returns the ids it applied.
async fn replay(
    conn: &mut AnyConnection,
    plan_id: i64,
    day: NaiveDate,
    rules: &LiveRules,
    done: &HashSet<i64>,
) -> Result<HashSet<i64>, StoreError> {
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
    .fetch_all(&mut *conn)
    .await?;
    let mut applied = HashSet::new();
    let actions = actions
        .iter()
        .map(stored_action)
        .filter(|a| a.as_ref().map_or(true, |a| !done.contains(&a.id)))
        .collect::<Result<Vec<_>, _>>()?;
    if actions.is_empty() {
        return Ok(applied);
    }
    let lifts = lifted(&mut *conn).await?;
    let now = Utc::now().timestamp_micros();
    for stored in &actions {
        applied.insert(stored.id);
        // Accounts no longer in the data folder have nothing to block.
        let Some((person, zone)) = account_keys(&mut *conn, plan_id, &stored.account_id).await?
        else {
            continue;
        };
        // A pause a manager lifted after the action does not come back.
        let own_block = own_rule(stored.action.outcome).is_none_or(|rule| {
            lifts
                .get(&(stored.account_id.clone(), rule.to_string()))
                .is_none_or(|&at| at < stored.recorded_at)
        });
        apply_live(
            &mut *conn,
            plan_id,
            &stored.account_id,
            (&person, &zone),
            &stored.action,
            now,
            rules,
            own_block,
        )
        .await?;
    }
    Ok(applied)
}
