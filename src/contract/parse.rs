//! Turning one column as read (text from CSV, or whatever type a Parquet
//! writer chose) into the contract's canonical type, cell by cell, with a
//! problem for every cell that does not parse.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use polars::prelude::*;
use rust_decimal::Decimal;

use super::error::{at_cell, at_column, ContractError, Problems};
use super::schema::{ColumnSpec, ColumnType, MONEY_PRECISION, MONEY_SCALE};

/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
const MONEY_UNIT: i128 = 10_000;
/// Largest money value that fits `Decimal(18, 4)`, in ten-thousandths.
const MONEY_MAX: i128 = 999_999_999_999_999_999;

/// Parses a money string (`-12.5`, `1234.50`) into ten-thousandths.
/// Refuses signs other than `-`, exponents, separators and more than 4 decimals.
pub fn parse_money(text: &str) -> Option<i128> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let mut value = Decimal::from_str(text).ok()?;
    if value.scale() > MONEY_SCALE as u32 {
        return None;
    }
    value.rescale(MONEY_SCALE as u32);
    let mantissa = value.mantissa();
    (mantissa.abs() <= MONEY_MAX).then_some(mantissa)
}

/// Money held as ten-thousandths back into a `Decimal`.
pub fn money_to_decimal(ten_thousandths: i128) -> Decimal {
    Decimal::from_i128_with_scale(ten_thousandths, MONEY_SCALE as u32)
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let text = text.trim();
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(date_to_days)
}

/// A date as days since 1970-01-01 (polars' `Date`).
pub fn date_to_days(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS
}

/// Days since 1970-01-01 back into a date.
pub fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS).expect("date in range")
}

/// Parses an RFC 3339 instant with an offset into microseconds since the epoch (UTC).
pub fn parse_instant(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.timestamp_micros())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Whether a text value is allowed by a text-like column type.
fn text_allowed(ty: ColumnType, value: &str) -> bool {
    match ty {
        ColumnType::Enum(values) => values.contains(&value),
        ColumnType::Currency => iso_currency::Currency::from_code(value).is_some(),
        ColumnType::TimeZone => value.parse::<chrono_tz::Tz>().is_ok(),
        _ => true,
    }
}

/// Converts a column as read into the canonical type of `spec`, reporting
/// every cell that does not parse (up to the problem limit).
pub fn to_canonical(
    file: &str,
    spec: &ColumnSpec,
    column: &Column,
    problems: &mut Problems,
) -> Result<Column, ContractError> {
    let name: PlSmallStr = spec.name.into();
    if let DataType::String = column.dtype() {
        let text = column.str().expect("string column");
        return parse_text(file, spec, text, problems).map(|c| c.with_name(name));
    }
    let series = column.as_materialized_series();
    let wrong = |found: &DataType| {
        at_column(
            file,
            spec.name,
            format!(
                "expected {}, found a column of type {found}",
                spec.ty.expected()
            ),
        )
    };
    let converted = match (spec.ty, series.dtype()) {
        (ColumnType::Text, dtype) if dtype.is_integer() => series.cast(&DataType::String),
        (ColumnType::Money, DataType::Decimal(_, scale)) => {
            return decimal_to_money(file, spec.name, series, *scale, problems)
                .map(|c| c.with_name(name));
        }
        (ColumnType::Money, dtype) if dtype.is_integer() => {
            let whole = series
                .cast(&DataType::Int128)
                .map_err(|e| polars_problem(file, e))?;
            let scaled = whole
                .i128()
                .expect("i128")
                .apply_values(|v| v.saturating_mul(MONEY_UNIT));
            return Ok(scaled
                .into_decimal(MONEY_PRECISION, MONEY_SCALE)
                .map_err(|_| at_column(file, spec.name, "amount too large for Decimal(18, 4)"))
                .map_err(ContractError::Invalid)?
                .into_column()
                .with_name(name));
        }
        (ColumnType::Date, DataType::Date) => Ok(series.clone()),
        (ColumnType::Instant, DataType::Datetime(_, Some(_))) => series.cast(&DataType::Datetime(
            TimeUnit::Microseconds,
            Some(polars::prelude::TimeZone::UTC),
        )),
        (ColumnType::Instant, DataType::Datetime(_, None)) => {
            problems.push(at_column(
                file,
                spec.name,
                "instants need a time zone (Parquet timestamp adjusted to UTC)",
            ))?;
            return Ok(Column::full_null(name, series.len(), &instant_dtype()));
        }
        (ColumnType::Integer, dtype) if dtype.is_integer() => series.strict_cast(&DataType::Int32),
        (ColumnType::Bool, DataType::Boolean) => Ok(series.clone()),
        (ColumnType::Probability, dtype) if dtype.is_primitive_numeric() => {
            let values = series
                .cast(&DataType::Float64)
                .map_err(|e| polars_problem(file, e))?;
            let outside = values
                .f64()
                .expect("f64")
                .iter()
                .position(|p| p.is_some_and(|p| !(p > 0.0 && p <= 1.0)));
            if let Some(row) = outside {
                problems.push(at_cell(
                    file,
                    row + 1,
                    spec.name,
                    format!("expected {}", spec.ty.expected()),
                ))?;
            }
            Ok(values)
        }
        (ColumnType::Bool, dtype) if dtype.is_integer() => series.strict_cast(&DataType::Boolean),
        (_, dtype) => {
            problems.push(wrong(dtype))?;
            return Ok(Column::full_null(
                name,
                series.len(),
                &canonical_dtype(spec.ty),
            ));
        }
    };
    let converted = converted
        .map_err(|_| wrong(series.dtype()))
        .map_err(ContractError::Invalid)?;
    Ok(converted.into_column().with_name(name))
}

/// Rescales a decimal column of any scale to `Decimal(18, 4)`, refusing values
/// with more than 4 significant fractional digits.
fn decimal_to_money(
    file: &str,
    column: &str,
    series: &Series,
    scale: usize,
    problems: &mut Problems,
) -> Result<Column, ContractError> {
    let values = series.decimal().expect("decimal").physical();
    if scale <= MONEY_SCALE {
        // Widening the scale loses nothing: one multiplication over the
        // integers (an i128 cannot overflow from 38 digits times 10^4), then
        // one pass for the largest magnitude. polars' decimal cast took
        // 115 ns a value, 3.9 s for the 34 M amounts of 1 M accounts.
        let factor = 10i128.pow((MONEY_SCALE - scale) as u32);
        let widened = values.apply_values(|v| v.saturating_mul(factor));
        let largest = widened.max().unwrap_or(0).max(-widened.min().unwrap_or(0));
        if largest > MONEY_MAX {
            let row = widened
                .iter()
                .position(|v| v.is_some_and(|v| v.abs() > MONEY_MAX))
                .unwrap_or(0);
            let shown = money_string(values.get(row).unwrap_or_default(), scale);
            problems.push(at_cell(
                file,
                row + 1,
                column,
                format!("expected {}, got {shown}", ColumnType::Money.expected()),
            ))?;
            let target = DataType::Decimal(MONEY_PRECISION, MONEY_SCALE);
            return Ok(Column::full_null(column.into(), series.len(), &target));
        }
        return Ok(widened
            .into_decimal_unchecked(MONEY_PRECISION, MONEY_SCALE)
            .into_column()
            .with_name(column.into()));
    }
    let mut out = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let converted = value.and_then(|v| rescale_to_money(v, scale));
        if value.is_some() && converted.is_none() {
            let shown = money_string(value.unwrap_or_default(), scale);
            problems.push(at_cell(
                file,
                index + 1,
                column,
                format!("expected {}, got {shown}", ColumnType::Money.expected()),
            ))?;
        }
        out.push(converted);
    }
    Ok(money_column(column, out))
}

fn rescale_to_money(value: i128, scale: usize) -> Option<i128> {
    let result = if scale <= MONEY_SCALE {
        value.checked_mul(10i128.pow((MONEY_SCALE - scale) as u32))?
    } else {
        let divisor = 10i128.pow((scale - MONEY_SCALE) as u32);
        if value % divisor != 0 {
            return None;
        }
        value / divisor
    };
    (result.abs() <= MONEY_MAX).then_some(result)
}

fn money_string(value: i128, scale: usize) -> String {
    Decimal::from_i128_with_scale(value, scale as u32).to_string()
}

/// Builds a canonical money column from ten-thousandths.
pub fn money_column(name: &str, values: Vec<Option<i128>>) -> Column {
    Int128Chunked::from_iter_options(name.into(), values.into_iter())
        .into_decimal_unchecked(MONEY_PRECISION, MONEY_SCALE)
        .into_column()
}

/// The polars type a contract column is held in.
pub fn canonical_dtype(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Money => DataType::Decimal(MONEY_PRECISION, MONEY_SCALE),
        ColumnType::Date => DataType::Date,
        ColumnType::Instant => instant_dtype(),
        ColumnType::Integer => DataType::Int32,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Probability => DataType::Float64,
        _ => DataType::String,
    }
}

fn instant_dtype() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC))
}

fn polars_problem(file: &str, error: PolarsError) -> ContractError {
    ContractError::Read {
        file: file.to_string(),
        source: error,
    }
}

/// Parses every cell of a text column, reporting the ones that do not parse.
fn parse_cells<T>(
    file: &str,
    spec: &ColumnSpec,
    text: &StringChunked,
    problems: &mut Problems,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Option<T>>, ContractError> {
    let mut out = Vec::with_capacity(text.len());
    for (index, cell) in text.iter().enumerate() {
        let cell = cell.filter(|c| !c.trim().is_empty());
        let value = match cell {
            None => None,
            Some(raw) => {
                let parsed = parse(raw);
                if parsed.is_none() {
                    let message = format!("expected {}, got {raw:?}", spec.ty.expected());
                    problems.push(at_cell(file, index + 1, spec.name, message))?;
                }
                parsed
            }
        };
        out.push(value);
    }
    Ok(out)
}

fn parse_text(
    file: &str,
    spec: &ColumnSpec,
    text: &StringChunked,
    problems: &mut Problems,
) -> Result<Column, ContractError> {
    let name: PlSmallStr = spec.name.into();
    Ok(match spec.ty {
        ColumnType::Money => money_column(
            spec.name,
            parse_cells(file, spec, text, problems, parse_money)?,
        ),
        ColumnType::Date => {
            let days = parse_cells(file, spec, text, problems, parse_date)?;
            Int32Chunked::from_iter_options(name, days.into_iter())
                .into_date()
                .into_column()
        }
        ColumnType::Instant => {
            let micros = parse_cells(file, spec, text, problems, parse_instant)?;
            Int64Chunked::from_iter_options(name, micros.into_iter())
                .into_datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC))
                .into_column()
        }
        ColumnType::Integer => {
            let values = parse_cells(file, spec, text, problems, |s| s.trim().parse::<i32>().ok())?;
            Int32Chunked::from_iter_options(name, values.into_iter()).into_column()
        }
        ColumnType::Bool => {
            let values = parse_cells(file, spec, text, problems, parse_bool)?;
            BooleanChunked::from_iter_options(name, values.into_iter()).into_column()
        }
        ColumnType::Probability => {
            let values = parse_cells(file, spec, text, problems, |s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0 && *p <= 1.0)
            })?;
            Float64Chunked::from_iter_options(name, values.into_iter()).into_column()
        }
        ColumnType::Text | ColumnType::Enum(_) | ColumnType::Currency | ColumnType::TimeZone
            if !needs_cleaning(text) =>
        {
            // Already clean (the usual case, and always so for Parquet): keep it as it is.
            text.clone().with_name(name).into_column()
        }
        ColumnType::Text | ColumnType::Enum(_) | ColumnType::Currency | ColumnType::TimeZone => {
            // Blank cells are missing values; the rest is kept as written, trimmed.
            let values = parse_cells(file, spec, text, problems, |s| Some(s.trim().to_string()))?;
            StringChunked::from_iter_options(name, values.into_iter()).into_column()
        }
    })
}

/// Whether any cell is blank or has surrounding white space.
fn needs_cleaning(text: &StringChunked) -> bool {
    // Printable ASCII at both ends is never white space: only other ends
    // need `trim`'s look at the characters.
    let printable = |b: u8| b > b' ' && b < 0x80;
    text.iter().any(|v| {
        v.is_some_and(|v| match (v.as_bytes().first(), v.as_bytes().last()) {
            (Some(&first), Some(&last)) if printable(first) && printable(last) => false,
            _ => v.is_empty() || v.trim().len() != v.len(),
        })
    })
}

/// Checks the values of an enum, currency or time-zone column against what
/// the contract allows. Distinct values are checked once each.
pub fn check_allowed_values(
    file: &str,
    spec: &ColumnSpec,
    column: &Column,
    problems: &mut Problems,
) -> Result<(), ContractError> {
    if !matches!(
        spec.ty,
        ColumnType::Enum(_) | ColumnType::Currency | ColumnType::TimeZone
    ) {
        return Ok(());
    }
    let text = column.str().map_err(|e| polars_problem(file, e))?;
    let distinct = text.unique().map_err(|e| polars_problem(file, e))?;
    let bad: Vec<String> = distinct
        .iter()
        .flatten()
        .filter(|v| !text_allowed(spec.ty, v))
        .map(str::to_string)
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    for (index, value) in text.iter().enumerate() {
        if let Some(value) = value.filter(|v| bad.iter().any(|b| b == v)) {
            problems.push(at_cell(
                file,
                index + 1,
                spec.name,
                format!("expected {}, got {value:?}", spec.ty.expected()),
            ))?;
            if problems.full() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_accepts_up_to_four_decimals_and_nothing_else() {
        assert_eq!(parse_money("1234.50"), Some(12_345_000));
        assert_eq!(parse_money("-0.0001"), Some(-1));
        assert_eq!(parse_money("7"), Some(70_000));
        for bad in [
            "1.23456", "1e5", "+3", "1,000.00", "1_000", "abc", "", "NaN", "--1",
        ] {
            assert_eq!(parse_money(bad), None, "{bad} should be refused");
        }
    }

    #[test]
    fn parquet_decimals_of_a_smaller_scale_widen_exactly_and_overflow_names_the_cell() {
        let cents = Int128Chunked::from_iter_options(
            "balance".into(),
            [Some(12_345), None, Some(-7), Some(0)].into_iter(),
        )
        .into_decimal_unchecked(18, 2)
        .into_series();
        let mut problems = Problems::fail_fast();
        let money = decimal_to_money("accounts.parquet", "balance", &cents, 2, &mut problems)
            .expect("fits");
        assert_eq!(
            money.dtype(),
            &DataType::Decimal(MONEY_PRECISION, MONEY_SCALE)
        );
        let units: Vec<Option<i128>> = money.decimal().unwrap().physical().iter().collect();
        assert_eq!(units, [Some(1_234_500), None, Some(-700), Some(0)]);

        let huge = Int128Chunked::from_iter_options(
            "balance".into(),
            [Some(1), Some(MONEY_MAX)].into_iter(),
        )
        .into_decimal_unchecked(38, 0)
        .into_series();
        let error = decimal_to_money("accounts.parquet", "balance", &huge, 0, &mut problems)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("accounts.parquet")
                && error.contains("row 2")
                && error.contains("balance"),
            "{error}"
        );
    }

    #[test]
    fn money_round_trips_through_decimal_exactly() {
        let value = parse_money("98765.4321").expect("parses");
        assert_eq!(money_to_decimal(value).to_string(), "98765.4321");
    }

    #[test]
    fn dates_must_be_iso_and_real() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(
            days_to_date(parse_date("2024-02-29").expect("leap day")).to_string(),
            "2024-02-29"
        );
        for bad in ["2023-02-29", "2024-2-01", "01/02/2024", "2024-13-01", ""] {
            assert_eq!(parse_date(bad), None, "{bad} should be refused");
        }
    }

    #[test]
    fn instants_need_an_offset() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Some(1_000_000));
        assert_eq!(parse_instant("1970-01-01T00:00:01"), None);
    }
}
