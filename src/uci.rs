//! Import of the public UCI "Default of Credit Card Clients" file (Yeh and
//! Lien, 2009) into the contract's tables: real payment history for honest
//! model figures.
//!
//! Mapping (six monthly cycles, April–September 2005, cycle 1 = September):
//! - `payment_history`: `balance` = BILL_AMTk, `amount_paid` = PAY_AMTk (paid
//!   in month k toward the statement before), `amount_due` = the statement
//!   before (BILL_AMTk+1, at least 0; for April, which has no earlier
//!   statement in the file, its own), `days_past_due` = 30 × PAY_k months of
//!   delay (statuses −2, −1 and 0 mean not late).
//! - `accounts`: `account_id` = ID as written, a credit card in TWD in
//!   Asia/Taipei, `credit_limit` = LIMIT_BAL, the September balance and
//!   delay. The file has no opening date: `opened_on` is set to 2005-03-01
//!   for every account, so months on book carries no signal here.
//! - `outcomes`: one row per account, as_of 2005-09-30, `paid` = 1 − default
//!   next month, no strategy recorded.
//! - SEX, MARRIAGE, AGE (protected) and EDUCATION are not imported.

use std::path::Path;

use polars::prelude::*;

use crate::contract::error::{at_cell, at_column, ContractError};
use crate::contract::parse::{money_column, parse_date};

/// Status columns (months of delay) from September back to April.
const STATUS: [&str; 6] = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"];
const CYCLE_ENDS: [&str; 6] = [
    "2005-09-30",
    "2005-08-31",
    "2005-07-31",
    "2005-06-30",
    "2005-05-31",
    "2005-04-30",
];
const AS_OF: &str = "2005-09-30";
const DEFAULT: &str = "default.payment.next.month";

/// The imported tables.
pub struct UciTables {
    pub accounts: DataFrame,
    pub payment_history: DataFrame,
    pub outcomes: DataFrame,
}

fn polars(file: &str) -> impl Fn(PolarsError) -> ContractError + '_ {
    move |source| ContractError::Read {
        file: file.to_string(),
        source,
    }
}

/// Reads the UCI file, checking every cell it uses.
pub fn import(input: &Path) -> Result<UciTables, ContractError> {
    let file = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(input.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(polars(&file))?;
    let text = |name: &str| -> Result<StringChunked, ContractError> {
        let column = raw.column(name).map_err(|_| {
            ContractError::Invalid(at_column(
                &file,
                name,
                "required column of the UCI file is missing",
            ))
        })?;
        Ok(column.str().map_err(polars(&file))?.clone())
    };
    let whole = |name: &str| -> Result<Vec<i64>, ContractError> {
        let values = text(name)?;
        values
            .iter()
            .enumerate()
            .map(|(row, cell)| {
                let cell = cell.unwrap_or("").trim();
                // Amounts are whole dollars; a few writers add ".0".
                let number = cell.strip_suffix(".0").unwrap_or(cell);
                number.parse::<i64>().map_err(|_| {
                    ContractError::Invalid(at_cell(
                        &file,
                        row + 1,
                        name,
                        format!("expected a whole number, got {cell:?}"),
                    ))
                })
            })
            .collect()
    };
    let ids = text("ID")?;
    if let Some(row) = ids
        .iter()
        .position(|id| id.is_none_or(|id| id.trim().is_empty()))
    {
        return Err(ContractError::Invalid(at_cell(
            &file,
            row + 1,
            "ID",
            "missing value",
        )));
    }
    let rows = ids.len();
    let limit = whole("LIMIT_BAL")?;
    let status: Vec<Vec<i64>> = STATUS.iter().map(|c| whole(c)).collect::<Result<_, _>>()?;
    let bills: Vec<Vec<i64>> = (1..=6)
        .map(|k| whole(&format!("BILL_AMT{k}")))
        .collect::<Result<_, _>>()?;
    let payments: Vec<Vec<i64>> = (1..=6)
        .map(|k| whole(&format!("PAY_AMT{k}")))
        .collect::<Result<_, _>>()?;
    let default = whole(DEFAULT)?;
    for (name, values) in [("LIMIT_BAL", &limit)]
        .into_iter()
        .chain((1..=6).map(|k| ("PAY_AMT", &payments[k - 1])))
    {
        if let Some(row) = values.iter().position(|v| *v < 0) {
            return Err(ContractError::Invalid(at_cell(
                &file,
                row + 1,
                name,
                "must not be negative",
            )));
        }
    }
    if let Some(row) = default.iter().position(|v| *v != 0 && *v != 1) {
        return Err(ContractError::Invalid(at_cell(
            &file,
            row + 1,
            DEFAULT,
            "expected 0 or 1",
        )));
    }
    let money = |v: i64| Some(i128::from(v) * 10_000);
    let days = |text: &str| parse_date(text).expect("valid constant date");

    // accounts
    let balance: Vec<i64> = bills[0].iter().map(|b| (*b).max(0)).collect();
    let past_due: Vec<i64> = (0..rows)
        .map(|r| {
            if status[0][r] > 0 {
                (bills[1][r] - payments[0][r]).clamp(0, balance[r])
            } else {
                0
            }
        })
        .collect();
    let dpd = |s: i64| (s.max(0) * 30) as i32;
    let accounts = DataFrame::new(vec![
        ids.clone().with_name("account_id".into()).into_column(),
        Column::new_scalar(
            "product".into(),
            Scalar::from(PlSmallStr::from("credit_card")),
            rows,
        ),
        Column::new_scalar(
            "currency".into(),
            Scalar::from(PlSmallStr::from("TWD")),
            rows,
        ),
        Int32Chunked::full("opened_on".into(), days("2005-03-01"), rows)
            .into_date()
            .into_column(),
        money_column("credit_limit", limit.iter().map(|v| money(*v)).collect()),
        money_column("balance", balance.iter().map(|v| money(*v)).collect()),
        money_column(
            "amount_past_due",
            past_due.iter().map(|v| money(*v)).collect(),
        ),
        Int32Chunked::from_iter_values("days_past_due".into(), status[0].iter().map(|s| dpd(*s)))
            .into_column(),
        Column::new_scalar(
            "timezone".into(),
            Scalar::from(PlSmallStr::from("Asia/Taipei")),
            rows,
        ),
    ])
    .map_err(polars(&file))?;

    // payment_history: six rows per account, oldest cycle first
    let mut account_ids = StringChunkedBuilder::new("account_id".into(), rows * 6);
    let (mut cycle_end, mut due, mut paid, mut statement, mut delay) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (row, id) in ids.iter().enumerate() {
        for k in (0..6).rev() {
            account_ids.append_value(id.unwrap_or_default());
            cycle_end.push(days(CYCLE_ENDS[k]));
            let before = if k < 5 {
                bills[k + 1][row]
            } else {
                bills[k][row]
            };
            due.push(money(before.max(0)));
            paid.push(money(payments[k][row]));
            statement.push(money(bills[k][row]));
            delay.push(dpd(status[k][row]));
        }
    }
    let payment_history = DataFrame::new(vec![
        account_ids.finish().into_column(),
        Int32Chunked::from_vec("cycle_end".into(), cycle_end)
            .into_date()
            .into_column(),
        money_column("amount_due", due),
        money_column("amount_paid", paid),
        money_column("balance", statement),
        Int32Chunked::from_vec("days_past_due".into(), delay).into_column(),
    ])
    .map_err(polars(&file))?;

    let outcomes = DataFrame::new(vec![
        ids.with_name("account_id".into()).into_column(),
        Int32Chunked::full("as_of".into(), days(AS_OF), rows)
            .into_date()
            .into_column(),
        Column::full_null("strategy".into(), rows, &DataType::String),
        BooleanChunked::from_iter_values("paid".into(), default.iter().map(|d| *d == 0))
            .into_column(),
        money_column("paid_amount", vec![None; rows]),
    ])
    .map_err(polars(&file))?;
    Ok(UciTables {
        accounts,
        payment_history,
        outcomes,
    })
}
