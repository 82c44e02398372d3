//! `prioritize score`: every account's calibrated P(paid) and its reasons, to CSV.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use polars::prelude::*;

use crate::contract::{DataSet, Format};
use crate::features::{build, spine_for_date, spine_from_outcomes};
use crate::model::{folder, reasons};
use crate::output::write_frame;

/// Scores every account on `as_of` (or every outcomes row) and writes
/// `account_id, as_of, p_pay, reasons`; returns a one-line summary.
pub fn run(data: &Path, model: &Path, as_of: Option<NaiveDate>, out: &Path) -> Result<String> {
    let started = Instant::now();
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let model = folder::load(model)?;
    bar.set_message("computing features");
    let spine = match as_of {
        Some(day) => spine_for_date(&data_set.accounts, day)?,
        None => spine_from_outcomes(&data_set.outcomes)?,
    };
    let features = build(&data_set, &spine)?;
    bar.set_message("scoring");
    let scoring = Instant::now();
    let (p_pay, reasons_of_rows) = model.p_pay_with_reasons(&features)?;
    let why: Vec<String> = reasons_of_rows.iter().map(|r| reasons::joined(r)).collect();
    let score_seconds = scoring.elapsed().as_secs_f64();
    let mut table = features.select(["account_id", "as_of"])?;
    table.with_column(Column::new("p_pay".into(), p_pay))?;
    table.with_column(Column::new("reasons".into(), why))?;
    bar.set_message(format!("writing {}", out.display()));
    write_frame(&mut table, out, Format::Csv).context("writing scores")?;
    bar.finish_and_clear();
    Ok(format!(
        "scored {} rows with model {} → {} (scoring and reasons {:.1} s, {:.0} rows/s; total {:.1} s)",
        table.height(),
        model.meta.version,
        out.display(),
        score_seconds,
        table.height() as f64 / score_seconds.max(1e-9),
        started.elapsed().as_secs_f64()
    ))
}
