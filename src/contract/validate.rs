//! Checks on whole typed tables: missing values, signs, keys, cross-column
//! rules and references to accounts. Each failing row becomes a problem.

use polars::prelude::*;

use super::error::{at_cell, ContractError, Problems};
use super::schema::{ColumnSpec, ColumnType, TableSpec};

fn polars_error(file: &str) -> impl Fn(PolarsError) -> ContractError + '_ {
    move |source| ContractError::Read {
        file: file.to_string(),
        source,
    }
}

/// Reports each row where `bad(row)` holds, until the problem limit.
fn report_rows(
    file: &str,
    column: &str,
    rows: impl Iterator<Item = usize>,
    problems: &mut Problems,
    message: impl Fn(usize) -> String,
) -> Result<(), ContractError> {
    for row in rows {
        problems.push(at_cell(file, row + 1, column, message(row)))?;
        if problems.full() {
            break;
        }
    }
    Ok(())
}

/// Reports blank cells of a required column as read, before conversion, so
/// that a cell that is missing is not also reported as unparseable.
pub fn check_present(
    file: &str,
    spec: &ColumnSpec,
    raw: &Column,
    problems: &mut Problems,
) -> Result<(), ContractError> {
    if !spec.required {
        return Ok(());
    }
    let blank: Vec<usize> = match raw.dtype() {
        DataType::String => raw
            .str()
            .map_err(polars_error(file))?
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none_or(|v| v.trim().is_empty()))
            .map(|(i, _)| i)
            .collect(),
        _ if raw.null_count() == 0 => return Ok(()),
        _ => raw
            .is_null()
            .iter()
            .enumerate()
            .filter(|(_, v)| *v == Some(true))
            .map(|(i, _)| i)
            .collect(),
    };
    report_rows(file, spec.name, blank.into_iter(), problems, |_| {
        "missing value in a required column".into()
    })
}

/// Money values in ten-thousandths, by row.
fn money_values<'a>(
    file: &str,
    frame: &'a DataFrame,
    name: &str,
) -> Result<&'a Int128Chunked, ContractError> {
    let column = frame.column(name).map_err(polars_error(file))?;
    Ok(column.decimal().map_err(polars_error(file))?.physical())
}

/// Checks a typed table on its own: signs, keys and cross-column rules.
pub fn check_table(
    file: &str,
    spec: &TableSpec,
    frame: &DataFrame,
    problems: &mut Problems,
) -> Result<(), ContractError> {
    for column in spec.columns.iter().filter(|c| c.non_negative) {
        let negative: Vec<usize> = match column.ty {
            ColumnType::Money => money_values(file, frame, column.name)?
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some_and(|v| v < 0))
                .map(|(i, _)| i)
                .collect(),
            ColumnType::Integer => frame
                .column(column.name)
                .map_err(polars_error(file))?
                .i32()
                .map_err(polars_error(file))?
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some_and(|v| v < 0))
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        };
        report_rows(file, column.name, negative.into_iter(), problems, |_| {
            "must not be negative".into()
        })?;
    }
    let started = std::time::Instant::now();
    check_key(file, spec, frame, problems)?;
    tracing::debug!(
        file,
        seconds = started.elapsed().as_secs_f64(),
        "key checked"
    );
    match spec.name {
        "accounts" => {
            let balance = money_values(file, frame, "balance")?;
            let past_due = money_values(file, frame, "amount_past_due")?;
            let over = balance
                .iter()
                .zip(past_due.iter())
                .enumerate()
                .filter(|(_, (b, p))| matches!((b, p), (Some(b), Some(p)) if p > b))
                .map(|(i, _)| i);
            report_rows(file, "amount_past_due", over, problems, |_| {
                "must not exceed balance".into()
            })?;
        }
        "outcomes" => {
            let paid = frame
                .column("paid")
                .map_err(polars_error(file))?
                .bool()
                .map_err(polars_error(file))?;
            let amount = money_values(file, frame, "paid_amount")?;
            let contradictory = paid
                .iter()
                .zip(amount.iter())
                .enumerate()
                .filter(|(_, (p, a))| *p == Some(false) && a.is_some_and(|a| a > 0))
                .map(|(i, _)| i);
            report_rows(file, "paid_amount", contradictory, problems, |_| {
                "a positive paid_amount needs paid = true".into()
            })?;
        }
        _ => {}
    }
    Ok(())
}

/// Rows whose key repeats an earlier row are reported, naming the key.
fn check_key(
    file: &str,
    spec: &TableSpec,
    frame: &DataFrame,
    problems: &mut Problems,
) -> Result<(), ContractError> {
    if spec.key.is_empty() || frame.height() == 0 {
        return Ok(());
    }
    let keys = frame
        .select(spec.key.iter().copied())
        .map_err(polars_error(file))?;
    if strictly_increasing(&keys) {
        return Ok(());
    }
    let duplicated = keys.is_duplicated().map_err(polars_error(file))?;
    if !duplicated.any() {
        return Ok(());
    }
    let first_key_column = spec.key[0];
    let rows: Vec<usize> = duplicated
        .iter()
        .enumerate()
        .filter(|(_, d)| *d == Some(true))
        .map(|(i, _)| i)
        .collect();
    report_rows(file, first_key_column, rows.into_iter(), problems, |row| {
        let values: Vec<String> = spec
            .key
            .iter()
            .map(|k| {
                keys.column(k)
                    .and_then(|c| c.get(row))
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
            .collect();
        format!(
            "duplicate key ({}) = ({}): must be unique",
            spec.key.join(", "),
            values.join(", ")
        )
    })
}

/// True when a table's rows are sorted by (`text`, `date`) with no two alike.
pub fn is_sorted_by_key(frame: &DataFrame, text: &str, date: &str) -> bool {
    frame
        .select([text, date])
        .is_ok_and(|keys| strictly_increasing(&keys))
}

/// True when rows are sorted by (text key, optional date key) with no two
/// alike: then no key repeats, which one linear pass proves far faster than
/// hashing every key. Tables are usually written in this order.
fn strictly_increasing(keys: &DataFrame) -> bool {
    let Ok(ids) = keys.get_columns()[0].str() else {
        return false;
    };
    let dates: Option<Vec<Option<i32>>> = match keys.get_columns().get(1) {
        None => None,
        Some(column) => match column.date() {
            Ok(dates) => Some(dates.physical().iter().collect()),
            Err(_) => return false,
        },
    };
    let mut previous: Option<(&str, Option<i32>)> = None;
    for (index, id) in ids.iter().enumerate() {
        let Some(id) = id else { return false };
        let date = match &dates {
            None => None,
            Some(days) => match days[index] {
                Some(day) => Some(day),
                None => return false,
            },
        };
        if previous.is_some_and(|before| (id, date) <= before) {
            return false;
        }
        previous = Some((id, date));
    }
    true
}

/// The ids of the `accounts` table, built once for every table checked
/// against it.
pub struct KnownAccounts<'a>(PlHashSet<&'a str>);

impl<'a> KnownAccounts<'a> {
    pub fn of(file: &str, accounts: &'a DataFrame) -> Result<Self, ContractError> {
        let account_ids = accounts
            .column("account_id")
            .map_err(polars_error(file))?
            .str()
            .map_err(polars_error(file))?;
        let mut known: PlHashSet<&str> = PlHashSet::with_capacity(account_ids.len());
        known.extend(account_ids.into_no_null_iter());
        Ok(KnownAccounts(known))
    }
}

/// Names the rows of `frame` whose `account_id` is not in `accounts`.
/// Rows come grouped by account: an id is looked up only when it changes,
/// and two rows of the same id are told apart from their 16-byte string
/// views alone wherever those are equal (always so for ids of up to 12
/// bytes, which the views hold whole).
pub fn check_accounts_known(
    file: &str,
    frame: &DataFrame,
    known: &KnownAccounts<'_>,
    problems: &mut Problems,
) -> Result<(), ContractError> {
    if frame.height() == 0 {
        return Ok(());
    }
    let ids = frame
        .column("account_id")
        .map_err(polars_error(file))?
        .str()
        .map_err(polars_error(file))?;
    let mut previous: Option<&str> = None;
    let report = |row: usize, id: &str, problems: &mut Problems| {
        let message = format!("account_id {id:?} is not in accounts");
        problems.push(at_cell(file, row + 1, "account_id", message))?;
        Ok::<_, ContractError>(problems.full())
    };
    let mut first_row = 0;
    for array in ids.downcast_iter() {
        // A view points into its own array's buffers: equal views mean
        // equal ids only within one array.
        let mut previous_view: Option<u128> = None;
        for (k, view) in array.views().iter().enumerate() {
            let view = view.as_u128();
            if previous_view == Some(view) {
                continue;
            }
            // A null's view is not remembered: it may equal a real id's.
            let Some(id) = array.get(k) else {
                previous_view = None;
                continue;
            };
            previous_view = Some(view);
            if previous == Some(id) {
                continue;
            }
            previous = Some(id);
            if !known.0.contains(id) && report(first_row + k, id, problems)? {
                return Ok(());
            }
        }
        first_row += array.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_distinct_keys_are_recognised_and_repeats_are_not() {
        let ids = Column::new("account_id".into(), ["A", "A", "B"]);
        let days = Int32Chunked::from_slice("cycle_end".into(), &[1, 2, 1])
            .into_date()
            .into_column();
        let keys = DataFrame::new(vec![ids.clone(), days]).expect("frame");
        assert!(strictly_increasing(&keys));
        let repeated = Int32Chunked::from_slice("cycle_end".into(), &[1, 1, 1])
            .into_date()
            .into_column();
        assert!(!strictly_increasing(
            &DataFrame::new(vec![ids, repeated]).expect("frame")
        ));
    }

    /// The problems `check_accounts_known` names in `history`, as text.
    fn unknown_rows(history: &DataFrame, accounts: &DataFrame) -> Vec<String> {
        let known = KnownAccounts::of("accounts.csv", accounts).unwrap();
        let mut problems = Problems::collect(10);
        check_accounts_known("payment_history.csv", history, &known, &mut problems).unwrap();
        problems.list().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn rows_of_unknown_accounts_are_named_once_per_run_of_the_same_id() {
        let accounts = DataFrame::new(vec![Column::new("account_id".into(), ["A", "B"])]).unwrap();
        let history = DataFrame::new(vec![Column::new(
            "account_id".into(),
            [
                Some("A"),
                Some("A"),
                Some("X"),
                Some("X"),
                None,
                Some("B"),
                Some("Y"),
                Some("A"),
            ],
        )])
        .unwrap();
        let found = unknown_rows(&history, &accounts);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("row 3") && found[0].contains("\"X\""),
            "{found:?}"
        );
        assert!(
            found[1].contains("row 7") && found[1].contains("\"Y\""),
            "{found:?}"
        );
        let known = KnownAccounts::of("accounts.csv", &accounts).unwrap();
        let mut first = Problems::fail_fast();
        let error = check_accounts_known("payment_history.csv", &history, &known, &mut first)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("payment_history.csv") && error.contains("row 3"),
            "{error}"
        );
    }

    #[test]
    fn a_null_does_not_hide_the_id_after_it() {
        // A null's view may equal that of an empty id.
        let accounts = DataFrame::new(vec![Column::new("account_id".into(), ["A"])]).unwrap();
        let history = DataFrame::new(vec![Column::new(
            "account_id".into(),
            [Some("X"), None, Some("")],
        )])
        .unwrap();
        let found = unknown_rows(&history, &accounts);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].contains("row 3"), "{found:?}");
    }

    #[test]
    fn ids_across_chunks_are_compared_by_their_text() {
        // Ids longer than 12 bytes live in the arrays' buffers, and the same
        // view in two chunks may point at different ids; shorter ones are
        // held whole in their views.
        let long = |s: &str| format!("ACCOUNT-LONG-IDENTIFIER-{s}");
        let short = |s: &str| format!("ACC-{s}");
        for id in [&long as &dyn Fn(&str) -> String, &short] {
            let accounts =
                DataFrame::new(vec![Column::new("account_id".into(), [id("A"), id("B")])]).unwrap();
            let chunk = |ids: &[String]| {
                DataFrame::new(vec![Column::new("account_id".into(), ids.to_vec())]).unwrap()
            };
            let mut history = chunk(&[id("A"), id("A"), id("B")]);
            history
                .vstack_mut(&chunk(&[id("X"), id("X"), id("A"), id("Y")]))
                .unwrap();
            assert_eq!(history.column("account_id").unwrap().n_chunks(), 2);
            let found = unknown_rows(&history, &accounts);
            assert_eq!(found.len(), 2, "{found:?}");
            assert!(
                found[0].contains("row 4") && found[0].contains(&id("X")),
                "{found:?}"
            );
            assert!(
                found[1].contains("row 7") && found[1].contains(&id("Y")),
                "{found:?}"
            );
        }
    }
}
