//! Features from `actions` (the contact history): one row per (account_id,
//! as_of), using only contacts on or before `as_of` in the account's own
//! time zone.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use rayon::prelude::*;

use crate::contract::parse::date_to_days;
use crate::contract::Outcome;

/// Outcomes that mean a conversation with the customer took place.
pub const CONVERSATIONS: &[&str] = &[
    Outcome::RightPartyContact.as_str(),
    Outcome::PromiseToPay.as_str(),
    Outcome::Refused.as_str(),
    Outcome::Dispute.as_str(),
];

/// Adds `local_date`: the calendar day of each action in its account's time
/// zone (from `accounts.timezone`), which is what day-based windows count.
pub fn with_local_dates(actions: &DataFrame, accounts: &DataFrame) -> PolarsResult<DataFrame> {
    // Each distinct zone is parsed once; each account is looked up once per run of its rows.
    let mut parsed: HashMap<&str, chrono_tz::Tz> = HashMap::new();
    let account_zone: PlHashMap<&str, chrono_tz::Tz> = accounts
        .column("account_id")?
        .str()?
        .iter()
        .zip(accounts.column("timezone")?.str()?.iter())
        .filter_map(|(id, zone)| {
            let zone = zone?;
            let tz = *parsed
                .entry(zone)
                .or_insert_with(|| zone.parse().unwrap_or(chrono_tz::UTC));
            Some((id?, tz))
        })
        .collect();
    let mut zones = Vec::with_capacity(actions.height());
    let mut current: Option<(&str, chrono_tz::Tz)> = None;
    for id in actions.column("account_id")?.str()?.iter() {
        let tz = match (current, id) {
            (Some((open, tz)), Some(id)) if open == id => tz,
            (_, Some(id)) => {
                let tz = account_zone.get(id).copied().unwrap_or(chrono_tz::UTC);
                current = Some((id, tz));
                tz
            }
            (_, None) => chrono_tz::UTC,
        };
        zones.push(tz);
    }
    let at: Vec<Option<i64>> = actions
        .column("at")?
        .datetime()?
        .physical()
        .iter()
        .collect();
    let local: Vec<Option<i32>> = at
        .par_iter()
        .zip(zones.par_iter())
        .map(|(micros, tz)| {
            let instant = DateTime::<Utc>::from_timestamp_micros((*micros)?)?;
            Some(date_to_days(instant.with_timezone(tz).date_naive()))
        })
        .collect();
    let days = Int32Chunked::from_iter_options("local_date".into(), local.into_iter());
    let mut frame = actions.clone();
    frame.with_column(days.into_date().into_column())?;
    Ok(frame)
}

fn days(name: &str) -> Expr {
    col(name).cast(DataType::Int32)
}

fn count(condition: Expr) -> Expr {
    condition.cast(DataType::Float64).sum()
}

/// One row of contact features per (account_id, as_of) that has contacts.
/// `actions` must carry `local_date`; `cycles` are the payment cycles of
/// [`super::payments::cycles_as_of`], used to tell kept promises from broken.
pub fn contact_features(actions: LazyFrame, spine: &super::Spine, cycles: LazyFrame) -> LazyFrame {
    let contacts = actions.select([
        col("account_id"),
        col("local_date"),
        col("channel"),
        col("outcome"),
        col("promised_on"),
    ]);
    let contacts = spine
        .attach(contacts)
        .filter(col("local_date").lt_eq(col("as_of")))
        .with_column((days("as_of") - days("local_date")).alias("age"));
    let is_call = col("channel").eq(lit("call"));
    let conversation =
        col("outcome").is_in(lit(Series::new("c".into(), CONVERSATIONS)).implode(), false);
    let recent = |n: i32| col("age").lt(lit(n));
    let promise = col("outcome").eq(lit("promise_to_pay"));

    let counts = contacts
        .clone()
        .group_by([col("account_id"), col("as_of")])
        .agg([
            count(is_call.clone().and(recent(7))).alias("calls_7d"),
            count(is_call.clone().and(recent(30))).alias("calls_30d"),
            count(recent(30)).alias("contacts_30d"),
            count(is_call.and(recent(180))).alias("call_attempts_180d"),
            count(conversation.clone().and(recent(180))).alias("conversations_180d"),
            count(col("outcome").eq(lit("refused")).and(recent(180))).alias("refusals_180d"),
            count(col("outcome").eq(lit("dispute")).and(recent(180))).alias("disputes_180d"),
            count(promise.clone().and(recent(180))).alias("promises_made_180d"),
            count(
                promise
                    .clone()
                    .and(days("promised_on").gt_eq(days("as_of"))),
            )
            .clip_max(lit(1.0))
            .alias("open_promise"),
            col("age")
                .min()
                .cast(DataType::Float64)
                .alias("days_since_last_contact"),
            col("age")
                .filter(conversation)
                .min()
                .cast(DataType::Float64)
                .alias("days_since_last_conversation"),
        ]);
    let broken = broken_promises(contacts, cycles);
    counts
        .join(
            broken,
            [col("account_id"), col("as_of")],
            [col("account_id"), col("as_of")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            col("promises_broken_180d").fill_null(lit(0.0)),
            when(col("call_attempts_180d").gt(lit(0.0)))
                .then((col("conversations_180d") / col("call_attempts_180d")).clip_max(lit(1.0)))
                .otherwise(lit(0.0))
                .alias("right_party_rate_180d"),
        ])
}

/// Promises of the last 180 days whose date passed before `as_of` with no
/// payment seen: no `paid` action from the promise to three days after its
/// date, and no payment in a cycle ending from the promise to 31 days after
/// its date (all of it on or before `as_of`).
fn broken_promises(contacts: LazyFrame, cycles: LazyFrame) -> LazyFrame {
    let key = [col("account_id"), col("as_of")];
    let due_promises = contacts
        .clone()
        .filter(
            col("outcome")
                .eq(lit("promise_to_pay"))
                .and(col("age").lt(lit(180)))
                .and(days("promised_on").lt(days("as_of"))),
        )
        .select([
            col("account_id"),
            col("as_of"),
            days("local_date").alias("made"),
            days("promised_on").alias("promised"),
        ])
        .with_row_index("promise", None);
    let paid_actions = contacts.filter(col("outcome").eq(lit("paid"))).select([
        col("account_id"),
        col("as_of"),
        days("local_date").alias("evidence"),
    ]);
    let paid_cycles = cycles.filter(col("paid").gt(lit(0.0))).select([
        col("account_id"),
        col("as_of"),
        days("cycle_end").alias("evidence"),
    ]);
    let kept_by = |evidence: LazyFrame, grace: i32| {
        due_promises
            .clone()
            .join(
                evidence,
                key.clone(),
                key.clone(),
                JoinArgs::new(JoinType::Inner),
            )
            .filter(
                col("evidence")
                    .gt_eq(col("made"))
                    .and(col("evidence").lt_eq(col("promised") + lit(grace))),
            )
            .select([col("promise")])
    };
    let kept = concat(
        [kept_by(paid_actions, 3), kept_by(paid_cycles, 31)],
        UnionArgs::default(),
    )
    .expect("same schema")
    .unique(None, UniqueKeepStrategy::Any);
    due_promises
        .join(
            kept,
            [col("promise")],
            [col("promise")],
            JoinArgs::new(JoinType::Anti),
        )
        .group_by(key.clone())
        .agg([len().cast(DataType::Float64).alias("promises_broken_180d")])
}
