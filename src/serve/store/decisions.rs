//! Every plan's decisions, kept compactly for as long as outcomes need them:
//! one `decisions` row per stored plan, holding each account's strategy,
//! propensity and model version as a zstd-compressed Parquet blob
//! (dictionary-encoded: a model version or strategy repeated a million
//! times costs a few bytes). Plan rows are pruned after a day; these are
//! kept for the retention period (`serve --retention-days`, default 400).

use std::io::Cursor;

use chrono::NaiveDate;
use polars::prelude::*;

use super::{PlanRow, StoreError};

/// The decisions of one stored plan.
#[derive(Debug, Clone)]
pub struct Decisions {
    pub plan_id: i64,
    pub day: NaiveDate,
    /// Whether the plan was ever made the active one (only those were served).
    pub activated: bool,
    /// `account_id`, `strategy`, `propensity`, `model_version`.
    pub frame: DataFrame,
}

/// The blob of a plan's rows.
pub fn encode(rows: &[PlanRow]) -> Result<Vec<u8>, StoreError> {
    let mut frame = df!(
        "account_id" => rows.iter().map(|r| r.account_id.as_str()).collect::<Vec<_>>(),
        "strategy" => rows.iter().map(|r| r.strategy).collect::<Vec<_>>(),
        "propensity" => rows.iter().map(|r| r.propensity).collect::<Vec<_>>(),
        "model_version" => rows.iter().map(|r| r.model_version.as_str()).collect::<Vec<_>>(),
    )
    .map_err(invalid)?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Zstd(ZstdLevel::try_new(3).ok()))
        .finish(&mut frame)
        .map_err(invalid)?;
    Ok(out)
}

/// The frame of a blob written by [`encode`].
pub fn decode(blob: &[u8]) -> Result<DataFrame, StoreError> {
    ParquetReader::new(Cursor::new(blob))
        .finish()
        .map_err(invalid)
}

fn invalid(e: PolarsError) -> StoreError {
    StoreError::Invalid(format!("stored decisions: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, strategy: &'static str, propensity: f64) -> PlanRow {
        PlanRow {
            account_id: account.into(),
            person: account.into(),
            timezone: "UTC".into(),
            currency: "EUR".into(),
            strategy,
            queue_rank: 1,
            priority: 0,
            p_pay: 0.5,
            expected_value: 0,
            reasons: String::new(),
            blocked_by: String::new(),
            propensity,
            model_version: "m1".into(),
            balance: 0,
            days_past_due: 0,
            risk: 0.5,
            calls_in_window: 0,
            call_from: None,
            history: "[]".into(),
        }
    }

    #[test]
    fn decisions_come_back_as_stored_and_a_million_fit_in_a_few_megabytes() {
        let rows: Vec<PlanRow> = (0..1_000_000)
            .map(|i| {
                let (s, p) = match i % 20 {
                    0 => ("call", 0.05),
                    1..=5 => ("sms_reminder", 0.95),
                    _ => ("none", 0.95),
                };
                row(&format!("A{i:07}"), s, p)
            })
            .collect();
        let blob = encode(&rows).unwrap();
        eprintln!("{} accounts' decisions in {} bytes", rows.len(), blob.len());
        assert!(blob.len() < 8_000_000, "{} bytes", blob.len());
        let frame = decode(&blob).unwrap();
        assert_eq!(frame.height(), rows.len());
        let ids = frame.column("account_id").unwrap().str().unwrap();
        let strategies = frame.column("strategy").unwrap().str().unwrap();
        let propensities = frame.column("propensity").unwrap().f64().unwrap();
        for i in [0, 1, 7, 999_999] {
            assert_eq!(ids.get(i), Some(rows[i].account_id.as_str()));
            assert_eq!(strategies.get(i), Some(rows[i].strategy));
            assert_eq!(propensities.get(i), Some(rows[i].propensity));
        }
    }
}
