//! `prioritize demo`: the whole pipeline (simulate, validate, features,
//! train, plan, evaluate-policy, serve) on a simulated portfolio, printing
//! what it did, where the outputs are, and the served URLs with a key per role.

use std::path::Path;

use std::net::SocketAddr;

use anyhow::Result;
use chrono::NaiveDate;

use crate::cli::{EngineArgs, TableFormat};
use crate::contract::parse::money_to_decimal;
use crate::contract::DataSet;
use crate::model::TrainParams;
use crate::serve::planning::{dpd_bucket_index, DPD_BUCKETS};
use crate::simulate::SimulationParams;

/// A day's capacities for a book of `accounts`: collectors, letters, field
/// agents, lawyers and agencies that can each take a small part of the book,
/// so that every one binds.
pub fn capacities(accounts: usize) -> Vec<String> {
    [
        ("call", 25),
        ("settlement_offer", 100),
        ("installment_plan", 50),
        ("demand_letter", 20),
        ("field_visit", 500),
        ("legal", 400),
        ("agency", 200),
    ]
    .iter()
    .map(|(strategy, one_in)| format!("{strategy}={}", (accounts / one_in).max(1)))
    .collect()
}

/// The fixed day of the books the demo trains and judges on, so that its
/// headline does not move with the calendar.
const JUDGED_ON: &str = "2026-09-30";

/// Runs simulate → validate → features → train → plan → evaluate-policy and
/// prints a portfolio summary. The model is trained on one simulated book,
/// judged on a second it has never seen (both as of a fixed day), and plans
/// and serves a third: today's.
pub fn run(dir: &Path, accounts: usize, listen: Option<SocketAddr>) -> Result<String> {
    let fixed: NaiveDate = JUDGED_ON.parse().expect("a valid date");
    let book = |seed: u64, as_of: NaiveDate| SimulationParams {
        accounts,
        seed,
        as_of,
        cycles: 12,
        currency: "USD".into(),
        world: Default::default(),
    };
    let training = dir.join("train");
    println!(
        "1. training book (seed 42, as of {fixed}): {}",
        super::simulate::run(&book(42, fixed), &training, TableFormat::Csv, None)?
    );
    println!("2. {}", super::validate::run(&training, 20)?);
    let engine = EngineArgs {
        capacities: capacities(accounts),
        costs: Vec::new(),
        explore: None,
        config: None,
        challenger: None,
        challenger_share: None,
    };
    let model = dir.join("model");
    println!(
        "3. capacities {}\n{}",
        engine.capacities.join(" "),
        super::train::run(&training, &model, TrainParams::default(), &engine, None)?
    );
    let judged = dir.join("judged");
    let judged_truth = dir.join("judged-truth.parquet");
    println!(
        "4. a book the model has never seen (seed 43, as of {fixed}): {}",
        super::simulate::run(
            &book(43, fixed),
            &judged,
            TableFormat::Csv,
            Some(&judged_truth)
        )?
    );
    println!(
        "5. the plan for that book, judged against the simulator's truth:\n{}",
        super::evaluate_policy::run(
            &judged,
            &model,
            Some(fixed),
            &engine,
            Some(&judged_truth),
            None,
            &[]
        )?
    );
    // Today's book: what is planned and served.
    let as_of: NaiveDate = chrono::Utc::now().date_naive();
    let data = dir.join("data");
    println!(
        "6. today's book (seed 44, as of {as_of}): {}",
        super::simulate::run(
            &book(44, as_of),
            &data,
            TableFormat::Csv,
            Some(&dir.join("truth.parquet"))
        )?
    );
    let features = dir.join("features.parquet");
    println!(
        "7. {}",
        super::features::run(&data, Some(as_of), &features)?
    );
    let plan = dir.join("plan.csv");
    println!(
        "8. today's plan\n{}",
        super::plan::run(&data, &model, as_of, &engine, &plan)?
    );
    let data_set = DataSet::load(&data)?;
    println!("\nPortfolio on {as_of}:\n{}", summary(&data_set)?);
    if let Some(listen) = listen {
        return serve(dir, &data, &model, &engine, as_of, listen);
    }
    Ok(format!(
        "Next: open {} (the day's plan), read {} (metrics, calibration, the scorecard), or inspect {} (`prioritize features --list` explains each column).",
        plan.display(),
        model.join("model_card.md").display(),
        features.display()
    ))
}

/// Accounts and balance by days-past-due bucket, money summed as decimals.
fn summary(data: &DataSet) -> Result<String> {
    let dpd = data.accounts.column("days_past_due")?.i32()?;
    let balance = data.accounts.column("balance")?.decimal()?.physical();
    let labels = DPD_BUCKETS;
    let mut counts = [0usize; 6];
    let mut sums = [0i128; 6];
    for (days, amount) in dpd.iter().zip(balance.iter()) {
        let bucket = dpd_bucket_index(days.unwrap_or(0));
        counts[bucket] += 1;
        sums[bucket] += amount.unwrap_or(0);
    }
    let currency = data
        .accounts
        .column("currency")?
        .str()?
        .get(0)
        .unwrap_or("")
        .to_string();
    let mut out = format!(
        "{:>10} {:>9} {:>18}\n",
        "dpd",
        "accounts",
        format!("balance {currency}")
    );
    for ((label, count), sum) in labels.iter().zip(counts).zip(sums) {
        out.push_str(&format!(
            "{label:>10} {count:>9} {:>18}\n",
            money_to_decimal(sum).round_dp(2)
        ));
    }
    Ok(out)
}

/// Step 9: serves the day's plan on `listen` with a fresh key per role.
fn serve(
    dir: &Path,
    data: &Path,
    model: &Path,
    engine: &EngineArgs,
    as_of: NaiveDate,
    listen: SocketAddr,
) -> Result<String> {
    use crate::contract::Role;
    use crate::serve::config::{ApiKey, ServeConfig};
    use crate::serve::{key_hash, ServeOptions};
    let config = super::plan::engine_config(engine)?;
    let keys: Vec<(Role, String)> = Role::ALL
        .iter()
        .map(|&role| (role, super::serve::new_key()))
        .collect();
    // The file's [limits] hold; the keys are the demo's own.
    let limits = match &engine.config {
        Some(path) => ServeConfig::from_file(path)?.limits,
        None => Default::default(),
    };
    let server = ServeConfig {
        limits,
        api_keys: keys
            .iter()
            .map(|(role, key)| ApiKey {
                role: *role,
                key_sha256: key_hash(key),
                id: Some(format!("demo-{role}")),
                agent_id: None,
            })
            .collect(),
    };
    // A fresh store: the demo's accounts are new every run.
    let db = dir.join("prioritize.db");
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)?;
        }
    }
    let options = ServeOptions {
        data: data.to_path_buf(),
        model: model.to_path_buf(),
        models: None,
        db: format!("sqlite://{}", db.display()),
        listen,
        config,
        server,
        as_of: Some(as_of),
        retention_days: crate::serve::DEFAULT_RETENTION_DAYS,
    };
    super::serve::serve_blocking(options, |address| {
        let base = format!("http://{address}");
        println!(
            "\n9. serving the plan of {as_of} on {base} (store {})",
            db.display()
        );
        println!("   dashboard     {base}/dashboard   (paste the manager key)");
        println!("   API docs      {base}/docs   (OpenAPI: {base}/openapi.json)");
        println!("   ready?        {base}/readyz");
        println!("   demo keys (new every run; only their SHA-256 is kept):");
        for (role, key) in &keys {
            println!("     {role:<9} {key}");
        }
        let collector = &keys[0].1;
        println!("   try:\n     curl -H 'Authorization: Bearer {collector}' '{base}/v1/worklists/call?limit=5'");
        println!(
            "     curl -H 'Authorization: Bearer {collector}' -H 'Content-Type: application/json' \\\n       -d '{{\"agent_id\":\"agent-1\",\"count\":3}}' {base}/v1/worklists/demand_letter/leases"
        );
        println!("   Ctrl-C stops the server.");
    })?;
    Ok("demo server stopped".into())
}
