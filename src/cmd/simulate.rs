//! `prioritize simulate`: a synthetic portfolio written as a data folder.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::TableFormat;
use crate::contract::Format;
use crate::output::{write_data_folder, write_frame};
use crate::simulate::{simulate, SimulationParams};

/// Accounts from which `--format auto` writes Parquet instead of CSV.
pub const PARQUET_FROM_ACCOUNTS: usize = 100_000;

/// The format `--format` asks for, given the portfolio's size.
pub fn resolve_format(format: TableFormat, accounts: usize) -> Format {
    match format {
        TableFormat::Csv => Format::Csv,
        TableFormat::Parquet => Format::Parquet,
        TableFormat::Auto if accounts >= PARQUET_FROM_ACCOUNTS => Format::Parquet,
        TableFormat::Auto => Format::Csv,
    }
}

/// Simulates and writes the portfolio; returns a one-line summary.
/// With `truth_out`, also writes the simulator's hidden truth (true P(paid)
/// and amount under every strategy) there as Parquet, for `evaluate-policy --truth`.
pub fn run(
    params: &SimulationParams,
    out: &Path,
    format: TableFormat,
    truth_out: Option<&Path>,
) -> Result<String> {
    if params.accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    if iso_currency::Currency::from_code(&params.currency).is_none() {
        bail!("--currency {:?} is not an ISO 4217 code", params.currency);
    }
    let started = Instant::now();
    let bar = super::counter(params.accounts as u64, "accounts");
    let portfolio =
        simulate(params, |done| bar.inc(done as u64)).context("simulating the portfolio")?;
    bar.finish_and_clear();
    let format = resolve_format(format, params.accounts);
    let writing = super::spinner(&format!("writing {}", out.display()));
    if let Some(path) = truth_out {
        let mut truth = portfolio.truth.clone();
        write_frame(&mut truth, path, Format::Parquet).context("writing the simulator's truth")?;
    }
    let (mut accounts, mut history, mut actions, mut outcomes) = (
        portfolio.accounts,
        portfolio.payment_history,
        portfolio.actions,
        portfolio.outcomes,
    );
    let counts = (
        accounts.height(),
        history.height(),
        actions.height(),
        outcomes.height(),
    );
    write_data_folder(
        out,
        [&mut accounts, &mut history, &mut actions, &mut outcomes],
        format,
    )?;
    writing.finish_and_clear();
    Ok(format!(
        "wrote {} accounts, {} payment cycles, {} actions and {} outcomes to {} ({}) in {:.1} s",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        out.display(),
        format.extension(),
        started.elapsed().as_secs_f64()
    ))
}
