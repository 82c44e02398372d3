//! `prioritize features`: model features of a data folder, to Parquet.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::contract::{DataSet, Format};
use crate::features::{build, spine_for_date, spine_from_outcomes};
use crate::output::write_frame;

/// Computes features for every account on `as_of` (or every outcomes row)
/// and writes them; returns a one-line summary.
pub fn run(data: &Path, as_of: Option<NaiveDate>, out: &Path) -> Result<String> {
    let started = Instant::now();
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let loaded = started.elapsed();
    bar.set_message("computing features");
    let spine = match as_of {
        Some(day) => spine_for_date(&data_set.accounts, day)?,
        None => spine_from_outcomes(&data_set.outcomes)?,
    };
    let mut features = build(&data_set, &spine)?;
    bar.set_message(format!("writing {}", out.display()));
    write_frame(&mut features, out, Format::Parquet).context("writing features")?;
    bar.finish_and_clear();
    Ok(format!(
        "wrote {} feature rows × {} columns to {} (load {:.1} s, total {:.1} s)",
        features.height(),
        features.width(),
        out.display(),
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    ))
}
