//! What the compliance rules look at for every account on a planning day,
//! read from the `accounts` snapshot and the `actions` history.
//!
//! Windows count back from the planning day and include the actions already
//! recorded on it, by calendar day in the account's own time zone. Contact
//! limits count per person (`customer_id`, or the account where it is blank):
//! the calls of all a person's accounts add up, a conversation on one account
//! starts the cool-off for all of them, and when a person has fewer calls
//! left in the window than accounts, only the accounts with the largest
//! balances keep a call (rules only remove, so this errs on the safe side).

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;

use super::rules::{self, AccountState, RuleConfig};
use crate::contract::parse::{date_to_days, days_to_date};
use crate::contract::DataSet;
use crate::features::contacts::CONVERSATIONS;

/// Rule inputs of every account, in the order of the `accounts` table.
pub fn account_states(
    data: &DataSet,
    day: NaiveDate,
    config: &RuleConfig,
) -> PolarsResult<Vec<AccountState>> {
    let started = std::time::Instant::now();
    let accounts = &data.accounts;
    let ids = accounts.column("account_id")?.str()?;
    let customers = accounts.column("customer_id")?.str()?;
    let zones = accounts.column("timezone")?.str()?;
    let dpd = accounts.column("days_past_due")?.i32()?;
    let balance = accounts.column("balance")?.decimal()?.physical();
    let flag = |name: &str| -> PolarsResult<Vec<bool>> {
        Ok(accounts
            .column(name)?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect())
    };
    let (dispute, cease, bankrupt, deceased) = (
        flag("dispute_open")?,
        flag("cease_contact")?,
        flag("bankruptcy")?,
        flag("deceased")?,
    );
    let (no_call, no_sms, no_email) = (
        flag("do_not_call")?,
        flag("do_not_sms")?,
        flag("do_not_email")?,
    );
    let n = accounts.height();
    let mut zone_cache: PlHashMap<&str, chrono_tz::Tz> = PlHashMap::new();
    let tz: Vec<chrono_tz::Tz> = zones
        .iter()
        .map(|z| {
            let z = z.unwrap_or("UTC");
            *zone_cache
                .entry(z)
                .or_insert_with(|| z.parse().unwrap_or(chrono_tz::UTC))
        })
        .collect();
    let row_of: PlHashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some((id?, i)))
        .collect();
    // Each person, as a dense number.
    let mut person_of_key: PlHashMap<&str, usize> = PlHashMap::with_capacity(n);
    let person: Vec<usize> = customers
        .iter()
        .zip(ids.iter())
        .map(|(customer, id)| {
            let key = customer.or(id).unwrap_or("");
            let next = person_of_key.len();
            *person_of_key.entry(key).or_insert(next)
        })
        .collect();

    let mut calls = vec![0u32; person_of_key.len()];
    let mut cool_off = vec![false; person_of_key.len()];
    let mut last_conversation: Vec<Option<DateTime<Utc>>> = vec![None; person_of_key.len()];
    let mut promise = vec![false; n];
    let day_number = date_to_days(day);
    // Actions more than this far from the day cannot fall in any window.
    let reach = i64::from(
        config
            .call_window_days
            .max(config.conversation_cool_off_days)
            + 2,
    );
    let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let (earliest, latest) = (
        (day_start - chrono::Duration::days(reach)).timestamp_micros(),
        (day_start + chrono::Duration::days(2)).timestamp_micros(),
    );
    let actions = &data.actions;
    let action_ids = actions.column("account_id")?.str()?;
    let at = actions.column("at")?.datetime()?.physical();
    let channel = actions.column("channel")?.str()?;
    let outcome = actions.column("outcome")?.str()?;
    let promised_on = actions.column("promised_on")?.date()?.physical();
    let mut current: Option<(&str, usize)> = None;
    let rows = action_ids
        .iter()
        .zip(at.iter())
        .zip(outcome.iter())
        .zip(channel.iter())
        .zip(promised_on.iter());
    for ((((id, micros), what), channel), promised_on) in rows {
        let (Some(id), Some(micros)) = (id, micros) else {
            continue;
        };
        // Only promises and the last few days' contacts can matter: the rest
        // (most of a year of history) skips the lookups and the time zone.
        let what = what.unwrap_or("");
        let recent = (earliest..=latest).contains(&micros);
        if !recent && what != "promise_to_pay" {
            continue;
        }
        let row = match current {
            Some((open, row)) if open == id => row,
            _ => match row_of.get(id) {
                Some(&row) => {
                    current = Some((id, row));
                    row
                }
                None => continue,
            },
        };
        let instant = DateTime::<Utc>::from_timestamp_micros(micros).expect("valid instant");
        let local_day = date_to_days(instant.with_timezone(&tz[row]).date_naive());
        if local_day > day_number {
            // Recorded after the planning day: not known to this plan.
            continue;
        }
        if what == "promise_to_pay" {
            if let Some(date) = promised_on {
                promise[row] |= rules::promise_holds(days_to_date(date), day);
            }
        }
        if !recent {
            continue;
        }
        let age = day_number - local_day;
        if channel == Some("call") && age < config.call_window_days {
            calls[person[row]] += 1;
        }
        if CONVERSATIONS.contains(&what) {
            let latest = &mut last_conversation[person[row]];
            *latest = (*latest).max(Some(instant));
            if rules::cool_off_covers_day(instant, day, tz[row], config) {
                cool_off[person[row]] = true;
            }
        }
    }

    // A person's accounts, largest balance first, take the calls left in
    // turn. Only people with more than one account need the order.
    let mut accounts_of = vec![0u32; person_of_key.len()];
    for &p in &person {
        accounts_of[p] += 1;
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| accounts_of[person[i]] > 1).collect();
    let balance: Vec<i128> = balance.iter().map(|b| b.unwrap_or(0)).collect();
    order.sort_unstable_by(|&a, &b| {
        (person[a], std::cmp::Reverse(balance[a]))
            .cmp(&(person[b], std::cmp::Reverse(balance[b])))
            .then_with(|| ids.get(a).cmp(&ids.get(b)))
    });
    let mut ahead = vec![0u32; n];
    for pair in order.windows(2) {
        if person[pair[0]] == person[pair[1]] {
            ahead[pair[1]] = ahead[pair[0]] + 1;
        }
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "rule inputs of every account"
    );
    Ok(dpd
        .iter()
        .enumerate()
        .map(|(i, dpd)| AccountState {
            days_past_due: dpd.unwrap_or(0),
            dispute_open: dispute[i],
            cease_contact: cease[i],
            bankruptcy: bankrupt[i],
            deceased: deceased[i],
            do_not_call: no_call[i],
            do_not_sms: no_sms[i],
            do_not_email: no_email[i],
            calls_in_window: calls[person[i]] + ahead[i],
            in_conversation_cool_off: cool_off[person[i]],
            promise_pending: promise[i],
            last_conversation: last_conversation[person[i]],
        })
        .collect())
}
