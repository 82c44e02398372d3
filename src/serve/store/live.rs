//! What an action changes at once: it is recorded (once per
//! Idempotency-Key) and its compliance effects apply to the active plan in
//! the same transaction — a dispute or a promise still due pauses the
//! account, a conversation starts the person's call cool-off, the attempt
//! limit blocks further calls, and the account's lease ends.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::sql::{active_id, audit, stored_action, SqlBackend, ACTION_COLUMNS};
use super::{Actor, Change, LiveRules, NewAction, Recorded, StoreError, StoredAction};
use crate::contract::Channel;
use crate::features::contacts::CONVERSATIONS;
use crate::strategy::rules;

/// The person and time zone of an account of plan `plan_id`, if it is in it.
pub(super) async fn account_keys(
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
/// `own_block` is false for an action whose own block (a dispute's, a
/// promise's) a manager has lifted since.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_live(
    conn: &mut AnyConnection,
    plan_id: i64,
    account_id: &str,
    (person, zone): (&str, &str),
    action: &NewAction,
    now: i64,
    rules: &LiveRules,
    own_block: bool,
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
        _ if !own_block => None,
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
        blocked.extend(block(conn, query, rule).await?);
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
    if CONVERSATIONS.contains(&action.outcome.as_str()) && now < action.at + rules.cool_off_micros {
        let rule = "conversation_cool_off";
        let sql = person_calls("");
        let query = sqlx::query(&sql).bind(rule).bind(plan_id).bind(person);
        blocked.extend(block(conn, query, rule).await?);
    }
    if action.channel == Channel::Call {
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
        blocked.extend(block(conn, query, rule).await?);
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn record_once<T: SqlBackend>(
    store: &T,
    account_id: &str,
    action: &NewAction,
    key: Option<&str>,
    hash: &str,
    now: i64,
    rules: &LiveRules,
    actor: &Actor,
) -> Result<Recorded, StoreError> {
    let mut tx = store.write().begin().await?;
    let plan_id = active_id(&mut tx, T::BACKEND, false).await?;
    if let Some(key) = key {
        if let Some((stored, stored_hash)) = find_idempotent(&mut tx, account_id, key).await? {
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
    let Some((person, zone)) = account_keys(&mut tx, plan_id, account_id).await? else {
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
    .bind(action.channel.as_str())
    .bind(action.outcome.as_str())
    .bind(action.promised_amount.clone())
    .bind(action.promised_on.map(|d| d.to_string()))
    .bind(action.agent_id.clone())
    .bind(key.map(str::to_string))
    .bind(hash)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let blocked = apply_live(
        &mut tx,
        plan_id,
        account_id,
        (&person, &zone),
        action,
        now,
        rules,
        true,
    )
    .await?;
    let detail = serde_json::json!({
        "action_id": id,
        "plan_id": plan_id,
        "channel": action.channel,
        "outcome": action.outcome,
        "at": action.at_text,
        "idempotency_key": key,
        "blocked": blocked.iter().map(|(a, r)| serde_json::json!({"account_id": a, "rule": r})).collect::<Vec<_>>(),
    });
    audit(
        &mut tx,
        T::BACKEND,
        actor,
        now,
        "action",
        &[(Some(account_id), detail)],
    )
    .await?;
    if !blocked.is_empty() {
        let accounts = blocked.iter().map(|(a, _)| a.clone()).collect();
        store
            .announce(
                &mut tx,
                Change::Blocked {
                    plan: plan_id,
                    accounts,
                },
            )
            .await?;
    }
    let account = account_id.to_string();
    store
        .announce(
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
