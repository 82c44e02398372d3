//! Contact features in one pass: each account's actions (kept together, as
//! they are in every table we write, or grouped first) are walked once per
//! spine row. Same definitions as the polars expressions in
//! [`super::contacts::contact_features`], which a test holds equal.

use polars::prelude::*;
use rayon::prelude::*;

use super::payment_kernel::Cycles;

/// Action kinds the features look at, decoded once from text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Conversation,
    Refused,
    Dispute,
    Promise,
    Paid,
    Other,
}

struct Action {
    day: i32,
    call: bool,
    kind: Kind,
    promised_on: Option<i32>,
}

/// The columns this kernel produces, in order.
pub const NAMES: [&str; 12] = [
    "calls_7d",
    "calls_30d",
    "contacts_30d",
    "call_attempts_180d",
    "right_party_rate_180d",
    "refusals_180d",
    "disputes_180d",
    "promises_made_180d",
    "promises_broken_180d",
    "open_promise",
    "days_since_last_contact",
    "days_since_last_conversation",
];

fn kind(outcome: &str) -> Kind {
    match outcome {
        "right_party_contact" => Kind::Conversation,
        "refused" => Kind::Refused,
        "dispute" => Kind::Dispute,
        "promise_to_pay" => Kind::Promise,
        "paid" => Kind::Paid,
        _ => Kind::Other,
    }
}

fn is_conversation(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Conversation | Kind::Refused | Kind::Dispute | Kind::Promise
    )
}

/// Features of one spine row from its account's actions; `None` if it had no
/// contact on or before `as_of`. `days_since_last_conversation` is NaN when
/// there was no conversation (a null once in the frame).
fn features_of(
    actions: &[Action],
    account: &str,
    as_of: i32,
    cycles: &Cycles,
) -> Option<[f64; NAMES.len()]> {
    let mut f = [0.0; NAMES.len()];
    let (mut any, mut last_contact, mut last_conversation) = (false, i32::MAX, i32::MAX);
    let (mut attempts, mut conversations) = (0.0, 0.0);
    for action in actions.iter().filter(|a| a.day <= as_of) {
        any = true;
        let age = as_of - action.day;
        let within = |days: i32| f64::from(u8::from(age < days));
        let call = f64::from(u8::from(action.call));
        f[0] += call * within(7);
        f[1] += call * within(30);
        f[2] += within(30);
        attempts += call * within(180);
        if is_conversation(action.kind) {
            conversations += within(180);
            last_conversation = last_conversation.min(age);
        }
        f[5] += f64::from(u8::from(action.kind == Kind::Refused)) * within(180);
        f[6] += f64::from(u8::from(action.kind == Kind::Dispute)) * within(180);
        if action.kind == Kind::Promise {
            f[7] += within(180);
            match action.promised_on {
                Some(date) if date >= as_of => f[9] = 1.0,
                Some(date)
                    if age < 180 && !kept(actions, account, action.day, date, as_of, cycles) =>
                {
                    f[8] += 1.0
                }
                _ => {}
            }
        }
        last_contact = last_contact.min(age);
    }
    if !any {
        return None;
    }
    f[3] = attempts;
    f[4] = if attempts > 0.0 {
        (conversations / attempts).min(1.0)
    } else {
        0.0
    };
    f[10] = f64::from(last_contact);
    f[11] = if last_conversation == i32::MAX {
        f64::NAN
    } else {
        f64::from(last_conversation)
    };
    Some(f)
}

/// A promise made on `made` for `promised_on` counts as kept if, by `as_of`,
/// a `paid` action came from the promise to three days after its date, or a
/// cycle ending from the promise to 31 days after its date paid something.
fn kept(
    actions: &[Action],
    account: &str,
    made: i32,
    promised_on: i32,
    as_of: i32,
    cycles: &Cycles,
) -> bool {
    let paid_action = actions.iter().any(|a| {
        a.kind == Kind::Paid && a.day <= as_of && a.day >= made && a.day <= promised_on + 3
    });
    paid_action || cycles.paid_between(account, made, (promised_on + 31).min(as_of))
}

/// Each account's row range, and whether every account's rows are together
/// (only then does a range hold exactly that account's rows).
pub(crate) fn runs(ids: &StringChunked) -> (PlHashMap<&str, (usize, usize)>, bool) {
    /// Records a finished run; false if its id already had one.
    fn close<'a>(
        ranges: &mut PlHashMap<&'a str, (usize, usize)>,
        run: Option<(&'a str, usize)>,
        end: usize,
    ) -> bool {
        let Some((id, start)) = run else { return true };
        match ranges.get_mut(id) {
            Some(range) => {
                range.1 = end;
                false
            }
            None => {
                ranges.insert(id, (start, end));
                true
            }
        }
    }
    // Books hold about a dozen rows an account: room for that many runs
    // from the start saves growing the table twenty times over.
    let mut ranges: PlHashMap<&str, (usize, usize)> = PlHashMap::with_capacity(ids.len() / 8);
    let mut together = true;
    let mut current: Option<(&str, usize)> = None;
    // Hash only where the id changes: once per run, not once per row.
    for (row, id) in ids.iter().enumerate() {
        if current.is_some_and(|(open, _)| Some(open) == id) {
            continue;
        }
        together &= close(&mut ranges, current, row);
        current = id.map(|id| (id, row));
    }
    together &= close(&mut ranges, current, ids.len());
    (ranges, together)
}

/// Contact features for each spine row. `actions` must carry `local_date`.
pub fn contact_features(
    actions: &DataFrame,
    cycles: &Cycles,
    spine: &DataFrame,
) -> PolarsResult<DataFrame> {
    let grouped;
    let (mut ranges, together) = runs(actions.column("account_id")?.str()?);
    let actions = if together {
        actions
    } else {
        grouped = actions.sort(
            ["account_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )?;
        ranges = runs(grouped.column("account_id")?.str()?).0;
        &grouped
    };
    let days = actions.column("local_date")?.date()?.physical().clone();
    let channels = actions.column("channel")?.str()?;
    let outcomes = actions.column("outcome")?.str()?;
    let promised = actions.column("promised_on")?.date()?.physical().clone();
    let decoded: Vec<Action> = days
        .iter()
        .zip(channels.iter())
        .zip(outcomes.iter())
        .zip(promised.iter())
        .map(|(((day, channel), outcome), promised_on)| Action {
            day: day.unwrap_or(i32::MAX),
            call: channel == Some("call"),
            kind: outcome.map(kind).unwrap_or(Kind::Other),
            promised_on,
        })
        .collect();
    let spine_ids: Vec<Option<&str>> = spine.column("account_id")?.str()?.iter().collect();
    let spine_days: Vec<Option<i32>> = spine.column("as_of")?.date()?.physical().iter().collect();
    let rows: Vec<Option<[f64; NAMES.len()]>> = spine_ids
        .par_iter()
        .zip(spine_days.par_iter())
        .map(|(id, as_of)| {
            let id = (*id)?;
            let &(start, end) = ranges.get(id)?;
            features_of(&decoded[start..end], id, (*as_of)?, cycles)
        })
        .collect();
    let mut columns = vec![
        spine.column("account_id")?.clone(),
        spine.column("as_of")?.clone(),
    ];
    for (index, name) in NAMES.iter().enumerate() {
        let values = rows
            .iter()
            .map(|r| r.and_then(|r| Some(r[index]).filter(|v| !v.is_nan())));
        columns.push(Float64Chunked::from_iter_options((*name).into(), values).into_column());
    }
    DataFrame::new(columns)
}
