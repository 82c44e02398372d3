//! One history: the actions recorded through the API count in the next
//! plan's features and rules exactly as if they were rows of the data
//! folder's `actions`. A row the lender also delivers in the folder (same
//! account, instant, channel and outcome) counts once.

use std::collections::HashSet;

use polars::prelude::*;

use super::store::{Lift, StoredAction};
use crate::contract::parse::{date_to_days, money_column, parse_money};
use crate::contract::Outcome;

/// Takes the date off the API's promises whose `promise_pending` block a
/// manager lifted after they were recorded: they still count as promises
/// made, but no longer hold their accounts in a plan.
pub fn lift(api: &mut [StoredAction], lifts: &[Lift]) {
    if lifts.is_empty() {
        return;
    }
    let mut latest: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for l in lifts.iter().filter(|l| l.rule == "promise_pending") {
        let at = latest.entry(l.account_id.as_str()).or_insert(l.at);
        *at = (*at).max(l.at);
    }
    for action in api.iter_mut() {
        if action.action.outcome == Outcome::PromiseToPay
            && latest
                .get(action.account_id.as_str())
                .is_some_and(|&at| at >= action.recorded_at)
        {
            action.action.promised_on = None;
        }
    }
}

/// The data folder's actions with the API's appended (those not already
/// there); returns the merged table and how many API actions were added.
pub fn merge(actions: &DataFrame, api: &[StoredAction]) -> PolarsResult<(DataFrame, usize)> {
    let ids = actions.column("account_id")?.str()?;
    let at = actions.column("at")?.datetime()?.physical();
    let channels = actions.column("channel")?.str()?;
    let outcomes = actions.column("outcome")?.str()?;
    let wanted: HashSet<&str> = api.iter().map(|a| a.account_id.as_str()).collect();
    // Only the folder's rows of accounts with API actions can be duplicates.
    let mut delivered: HashSet<(&str, i64, &str, &str)> = HashSet::new();
    for (((id, t), c), o) in ids
        .iter()
        .zip(at.iter())
        .zip(channels.iter())
        .zip(outcomes.iter())
    {
        if let (Some(id), Some(t), Some(c), Some(o)) = (id, t, c, o) {
            if wanted.contains(id) {
                delivered.insert((id, t, c, o));
            }
        }
    }
    let new: Vec<&StoredAction> = api
        .iter()
        .filter(|a| {
            !delivered.contains(&(
                a.account_id.as_str(),
                a.action.at,
                a.action.channel.as_str(),
                a.action.outcome.as_str(),
            ))
        })
        .collect();
    if new.is_empty() {
        return Ok((actions.clone(), 0));
    }
    let at_type = actions.column("at")?.dtype().clone();
    let mut columns = vec![
        Column::new(
            "account_id".into(),
            new.iter()
                .map(|a| a.account_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "at".into(),
            new.iter().map(|a| a.action.at).collect::<Vec<_>>(),
        )
        .cast(&at_type)?,
        Column::new(
            "channel".into(),
            new.iter()
                .map(|a| a.action.channel.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "outcome".into(),
            new.iter()
                .map(|a| a.action.outcome.as_str())
                .collect::<Vec<_>>(),
        ),
        money_column(
            "promised_amount",
            new.iter()
                .map(|a| a.action.promised_amount.as_deref().and_then(parse_money))
                .collect(),
        ),
        Column::new(
            "promised_on".into(),
            new.iter()
                .map(|a| a.action.promised_on.map(date_to_days))
                .collect::<Vec<_>>(),
        )
        .cast(&DataType::Date)?,
    ];
    // The same columns, in the folder's order and types.
    let mut ordered = Vec::with_capacity(actions.width());
    for name in actions.get_column_names() {
        let position = columns
            .iter()
            .position(|c| c.name() == name)
            .ok_or_else(|| polars_err!(ColumnNotFound: "actions column {name} has no API value"))?;
        let column = columns.swap_remove(position);
        ordered.push(column.cast(actions.column(name)?.dtype())?);
    }
    let added = DataFrame::new(ordered)?;
    let mut merged = actions.vstack(&added)?;
    merged.rechunk_mut();
    Ok((merged, new.len()))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::serve::store::NewAction;

    fn action(account: &str, outcome: &str, recorded_at: i64) -> StoredAction {
        StoredAction {
            id: recorded_at,
            account_id: account.into(),
            action: NewAction {
                at: recorded_at,
                at_text: String::new(),
                channel: crate::contract::Channel::Call,
                outcome: outcome.parse().expect("an outcome"),
                promised_amount: None,
                promised_on: NaiveDate::from_ymd_opt(2026, 10, 9),
                agent_id: None,
            },
            recorded_at,
        }
    }

    #[test]
    fn a_lifted_promise_no_longer_holds_and_a_later_one_does() {
        let mut api = vec![
            action("a", "promise_to_pay", 10),
            action("a", "promise_to_pay", 30),
            action("b", "promise_to_pay", 10),
        ];
        let lift_of = |account: &str, rule: &str| Lift {
            account_id: account.into(),
            rule: rule.into(),
            at: 20,
        };
        lift(
            &mut api,
            &[
                lift_of("a", "promise_pending"),
                lift_of("b", "dispute_open"),
            ],
        );
        let dated: Vec<bool> = api.iter().map(|a| a.action.promised_on.is_some()).collect();
        // a's first promise was lifted; its later one and b's (whose dispute,
        // not promise, was lifted) still hold.
        assert_eq!(dated, [false, true, true]);
        assert!(api
            .iter()
            .all(|a| a.action.outcome == Outcome::PromiseToPay));
    }
}
