//! `prioritize outcomes`: the contract's outcomes table from the store's
//! served decisions and what followed them (see `serve::outcomes`).

use anyhow::{bail, Context, Result};

use crate::cli::{OutcomesArgs, TableFormat};
use crate::contract::{DataSet, Format};
use crate::output::write_frame;
use crate::serve::{outcomes, store};

/// Writes `out/outcomes.csv` (or `.parquet`); returns a summary.
pub fn run(args: OutcomesArgs) -> Result<String> {
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| super::serve::default_db(&args.data));
    if let Some(path) = db.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            bail!("--db {db}: no store there (serve creates it)");
        }
    }
    let bar = super::spinner(&format!("loading {}", args.data.display()));
    let data = DataSet::load(&args.data)?;
    bar.set_message(format!("reading the decisions in {}", store::redact(&db)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let horizon = i64::from(args.horizon_days);
    let (decisions, paid, through) = runtime.block_on(async {
        let store = store::open(&db)
            .await
            .with_context(|| format!("opening the store {}", store::redact(&db)))?;
        let paid = store.paid_actions().await?;
        let through = outcomes::through(&data, &paid, args.through)?
            .context("the data folder has no payment history or actions to tell outcomes by")?;
        // Decisions of later days are read too, to count what has not matured.
        let decisions = store.decisions(args.since, through).await?;
        store.close().await;
        anyhow::Ok((decisions, paid, through))
    })?;
    bar.set_message("matching payments to decisions");
    let built = outcomes::build(&decisions, &data, &paid, horizon, through)?;
    let format = match args.format {
        TableFormat::Parquet => Format::Parquet,
        _ => Format::Csv,
    };
    let path = args.out.join(format!("outcomes.{}", format.extension()));
    let mut frame = built.frame;
    write_frame(&mut frame, &path, format)?;
    bar.finish_and_clear();
    let rows = frame.height();
    let paid_rows = frame.column("paid")?.bool()?.sum().unwrap_or(0);
    let mut summary = format!(
        "{rows} outcomes from the decisions of {} days ({} to {}; {paid_rows} paid) → {}\n\
         {} decisions not yet matured (horizon {horizon} days, payments known through {through}) left out",
        built.days.len(),
        built.days.first().map_or("-".into(), |d| d.to_string()),
        built.days.last().map_or("-".into(), |d| d.to_string()),
        path.display(),
        built.pending,
    );
    if horizon < 28 {
        summary.push_str(&format!(
            "\nwarning: payments are known per billing cycle, and a horizon of {horizon} days can hold \
             no cycle end: such decisions count no money (only a `paid` action marks them paid). \
             A horizon of a cycle or more (the default 30) sees every decision's money."
        ));
    }
    Ok(summary)
}
