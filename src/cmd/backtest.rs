//! `prioritize backtest`: the learning loop, the staged rules and the oracle
//! run day after day on the same living book.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::backtest::{self, BacktestParams, Report, Served, CAPACITY_SHARES};
use crate::cli::BacktestArgs;
use crate::model::TrainParams;
use crate::output::write_durably;
use crate::serve::planning;
use crate::serve::store::{self, LiveRules, PlanMeta};

pub fn run(args: BacktestArgs) -> Result<String> {
    if args.accounts < 50 {
        bail!("--accounts must be at least 50");
    }
    if iso_currency::Currency::from_code(&args.currency).is_none() {
        bail!("--currency {:?} is not an ISO 4217 code", args.currency);
    }
    if !(0.0..=1.0).contains(&args.arrivals_per_day) {
        bail!("--arrivals-per-day must be between 0 and 1");
    }
    let mut config = super::plan::engine_config(&args.engine)?;
    if args.engine.capacities.is_empty() {
        for (strategy, per) in CAPACITY_SHARES {
            let params = &mut config.strategies[strategy as usize];
            if params.capacity.is_none() {
                params.capacity = Some((args.accounts / per).max(1) as u64);
            }
        }
    }
    if args.train_rows < 100 {
        bail!("--train-rows must be at least 100");
    }
    if !(0.0..=1.0).contains(&args.cold_explore) {
        bail!("--cold-explore must be between 0 and 1");
    }
    let mut policies = Vec::new();
    for policy in &args.policies {
        if !policies.contains(policy) {
            policies.push(*policy);
        }
    }
    let mut params = BacktestParams {
        accounts: args.accounts,
        days: args.days as usize,
        seed: args.seed,
        world: args.world,
        start: args.start,
        currency: args.currency.clone(),
        arrivals_per_day: args.arrivals_per_day,
        retrain_every: args.retrain_every,
        horizon_days: args.horizon_days as usize,
        train_rows: args.train_rows,
        train: TrainParams {
            seed: args.seed,
            search: args.search,
            folds: args.folds as usize,
            ..TrainParams::default()
        },
        config,
        policies: policies.clone(),
        promotion: args.promotion,
        cold_explore: Some(args.cold_explore),
        out: args.out.clone(),
    };
    params.train.trees.iterations = args.trees as usize;
    let started = Instant::now();
    let bar = super::counter((params.days * policies.len()) as u64, "days");
    let progress = |message: &str| {
        bar.inc(1);
        bar.set_message(message.to_string());
    };
    let (report, stored) = match &args.out {
        None => (backtest::run(&params, &progress)?, None),
        Some(dir) => {
            let mut store = LoopStore::open(dir)?;
            let report = backtest::run_serving(&params, &progress, &mut |s| store.serve(s))?;
            (report, Some(store.close()?))
        }
    };
    bar.finish_and_clear();
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        write_durably(path, |file| {
            use std::io::Write;
            Ok(file.write_all(text.as_bytes())?)
        })
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut text = summary(&report, started.elapsed().as_secs_f64());
    if let Some(stored) = stored {
        text.push('\n');
        text.push_str(&stored);
    }
    Ok(text)
}

/// The loop's store: each morning's plan stored, activated and the old ones
/// pruned exactly as `serve` does with a plan it builds, so that
/// `prioritize outcomes --db DIR/prioritize.db` reads what the loop decided.
struct LoopStore {
    runtime: tokio::runtime::Runtime,
    store: std::sync::Arc<dyn store::Store>,
    path: PathBuf,
    days: usize,
    accounts: usize,
    seconds: f64,
}

impl LoopStore {
    fn open(dir: &Path) -> Result<LoopStore> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("prioritize.db");
        // A new run starts a new store: an old run's plans would mix with its outcomes.
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let url = format!("sqlite://{}", path.display());
        let store = runtime
            .block_on(store::open(&url))
            .with_context(|| format!("opening the store {url}"))?;
        Ok(LoopStore {
            runtime,
            store,
            path,
            days: 0,
            accounts: 0,
            seconds: 0.0,
        })
    }

    fn serve(&mut self, served: Served<'_>) -> Result<()> {
        let started = Instant::now();
        let built =
            planning::from_decisions(served.data, served.book, served.decisions, served.config)?;
        let meta = PlanMeta {
            plan_id: 0,
            created_at: chrono::Utc::now().timestamp_micros(),
            day: built.day,
            model_version: built.model_version.clone(),
            data_hash: format!("backtest-{}", built.day),
            accounts: built.rows.len() as i64,
            summary: serde_json::to_string(&built.summary)?,
        };
        let rules = LiveRules::new(&served.config.rules);
        self.runtime.block_on(async {
            let actor = store::Actor::system();
            let plan_id = self.store.insert_plan(&meta, &built.rows, &actor).await?;
            self.store.activate_plan(plan_id, &rules, &actor).await?;
            self.store.prune_plans().await?;
            anyhow::Ok(())
        })?;
        self.days += 1;
        self.accounts += built.rows.len();
        self.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Closes the store; says what it holds.
    fn close(self) -> Result<String> {
        self.runtime.block_on(self.store.close());
        let bytes = std::fs::metadata(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?
            .len();
        let per_day = bytes / self.days.max(1) as u64;
        Ok(format!(
            "the loop's store {}: {} plans ({} decisions) stored in {:.1} s, {:.1} MB ({:.2} MB a day, {:.0} bytes a decision)",
            self.path.display(),
            self.days,
            self.accounts,
            self.seconds,
            bytes as f64 / 1e6,
            per_day as f64 / 1e6,
            bytes as f64 / self.accounts.max(1) as f64
        ))
    }
}

/// The figures as a table.
fn summary(report: &Report, seconds: f64) -> String {
    let mut out = format!(
        "backtest: {} accounts, {} days from {}, world {}, seed {} ({:.0} s)\n",
        report.accounts, report.days, report.start, report.world, report.seed, seconds
    );
    out.push_str(&format!(
        "{:<8} {:>16} {:>16} {:>14} {:>18} {:>7} {:>7} {:>8} {:>8}\n",
        "policy",
        "net collected",
        "collected",
        "cost",
        "net last 4 weeks",
        "cured",
        "rolled",
        "settled",
        "charged"
    ));
    for p in &report.policies {
        out.push_str(&format!(
            "{:<8} {:>16} {:>16} {:>14} {:>18} {:>7} {:>7} {:>8} {:>8}\n",
            p.policy,
            p.net_collected.to_string(),
            p.collected.to_string(),
            p.cost.to_string(),
            p.net_last_four_weeks.to_string(),
            p.cured,
            p.rolled,
            p.settled,
            p.charged_off
        ));
    }
    let find = |name: &str| report.policies.iter().find(|p| p.policy == name);
    if let (Some(looped), Some(rules)) = (find("loop"), find("rules")) {
        if !rules.net_last_four_weeks.is_zero() {
            let gain = (looped.net_last_four_weeks - rules.net_last_four_weeks)
                / rules.net_last_four_weeks.abs()
                * rust_decimal::Decimal::from(100);
            out.push_str(&format!(
                "loop against the staged rules over the last four weeks: {:+.1} %\n",
                gain
            ));
        }
    }
    out.push_str(&format!(
        "retrains: {}, promotions: {}",
        report.retrains,
        report.promotions.len()
    ));
    for p in &report.promotions {
        out.push_str(&format!(
            "\n  {}: {} → {} (DR gain {} ± {} a decision, {} held-out decisions)",
            p.day, p.from, p.to, p.dr_gain, p.standard_error, p.held_out_rows
        ));
    }
    out.push_str(&format!(
        "\ncompliance breaks, replayed independently: {}",
        report.violations
    ));
    out
}
