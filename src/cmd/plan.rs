//! `prioritize plan`: the day's strategy for every account, to CSV.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;

use crate::cli::EngineArgs;
use crate::contract::{DataSet, Strategy};
use crate::model::folder;
use crate::output::write_durably;
use crate::strategy::config::EngineConfig;
use crate::strategy::partition::{read_parts, write_part, Partition};
use crate::strategy::plan::{
    assess_arms, decide, mix, money, write_plan_csv, Arms, Book, Decision,
};

/// The engine's configuration: defaults, then the config file, then flags.
pub fn engine_config(args: &EngineArgs) -> Result<EngineConfig> {
    let mut config = match &args.config {
        Some(path) => EngineConfig::from_file(path)?,
        None => EngineConfig::default(),
    };
    config.apply_flags(&args.capacities, &args.costs)?;
    if let Some(share) = args.explore {
        config
            .set_explore(share)
            .map_err(|m| anyhow::anyhow!("--explore: {m}"))?;
    }
    if args.challenger.is_some() || args.challenger_share.is_some() {
        config
            .set_challenger(args.challenger.clone(), args.challenger_share)
            .map_err(|m| anyhow::anyhow!("--challenger-share: {m}"))?;
    }
    Ok(config)
}

/// Strategy mix of a plan: accounts, expected value, and use of capacity.
pub fn mix_table(book: &Book, decisions: &[Decision], config: &EngineConfig) -> String {
    let currency = book.currency.first().map(String::as_str).unwrap_or("");
    let mut out = format!(
        "{:<18} {:>9} {:>10} {:>20}\n",
        "strategy",
        "accounts",
        "capacity",
        format!("expected value {currency}")
    );
    let totals = mix(book, decisions);
    for strategy in Strategy::ALL {
        let (count, value) = totals[strategy as usize];
        let capacity = config
            .capacity(strategy)
            .map_or("-".to_string(), |c| c.to_string());
        if count > 0 || capacity != "-" {
            out.push_str(&format!(
                "{:<18} {count:>9} {capacity:>10} {:>20}\n",
                strategy.as_str(),
                money(value)
            ));
        }
    }
    let total: i64 = totals.iter().map(|t| t.1).sum();
    out.push_str(&format!(
        "{:<18} {:>9} {:>10} {:>20}\n",
        "total",
        book.len(),
        "",
        money(total)
    ));
    out
}

/// The models that planned `book`, for a summary.
fn models_text(book: &Book) -> String {
    match &book.challenger {
        Some(challenger) => {
            let share = book.by_challenger.iter().filter(|&&c| c).count();
            format!(
                "models {} (champion) and {challenger} (challenger, {share} accounts)",
                book.model_version
            )
        }
        None => format!("model {}", book.model_version),
    }
}

/// Writes the plan CSV of `decisions` to `out`, durably (whole or not at all).
fn write_plan_file(
    out: &Path,
    book: &Book,
    decisions: &[Decision],
    config: &EngineConfig,
) -> Result<()> {
    write_durably(out, |file| {
        let mut buffered = std::io::BufWriter::with_capacity(1 << 20, file);
        write_plan_csv(book, decisions, config, &mut buffered)?;
        std::io::Write::flush(&mut buffered)?;
        Ok(())
    })
    .context("writing the plan")
}

/// Plans `as_of` and writes the plan; returns a summary.
pub fn run(
    data: &Path,
    model: &Path,
    as_of: NaiveDate,
    engine: &EngineArgs,
    out: &Path,
) -> Result<String> {
    let config = engine_config(engine)?;
    let started = Instant::now();
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let model = folder::load(model)?;
    let challenger = crate::serve::challenger_of(&config, &model)?;
    let arms = Arms {
        champion: &model,
        challenger: challenger.as_ref().map(|(m, share)| (m, *share)),
    };
    let loaded = started.elapsed().as_secs_f64();
    tracing::info!(seconds = loaded, "data and model loaded");
    let book = assess_arms(&data_set, arms, &config, as_of, &|step| {
        bar.set_message(step.to_string())
    })?;
    let assessed = started.elapsed().as_secs_f64();
    bar.set_message("allocating under capacity");
    let decisions = decide(&book, &config);
    let allocated = started.elapsed().as_secs_f64();
    tracing::info!(seconds = allocated, "allocated");
    bar.set_message(format!("writing {}", out.display()));
    // The loaded tables are not needed any more: freed beside the writing,
    // and the book after the summary (together about half a second at 1M
    // accounts, which `prioritize plan` would otherwise wait for before it
    // exits; a process that goes on, such as `demo`, frees them all the same).
    std::thread::spawn(move || drop(data_set));
    write_plan_file(out, &book, &decisions, &config)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "plan written");
    bar.finish_and_clear();
    let explored = decisions.iter().filter(|d| d.propensity < 1.0).count();
    let models = models_text(&book);
    let summary = format!(
        "{}planned {} accounts for {as_of} with {models} → {} ({explored} explored)\n\
         load {loaded:.1} s, features, rules and scoring {:.1} s, allocation {:.1} s, writing {:.1} s; total {:.1} s",
        mix_table(&book, &decisions, &config),
        book.len(),
        out.display(),
        assessed - loaded,
        allocated - assessed,
        started.elapsed().as_secs_f64() - allocated,
        started.elapsed().as_secs_f64(),
    );
    std::thread::spawn(move || drop((book, decisions)));
    Ok(summary)
}

/// Assesses the accounts of partition `part` on `as_of` (features, rules and
/// scores under every strategy) and writes them to `out` for `merge`.
pub fn run_partition(
    data: &Path,
    model: &Path,
    as_of: NaiveDate,
    part: Partition,
    engine: &EngineArgs,
    out: &Path,
) -> Result<String> {
    let config = engine_config(engine)?;
    let started = Instant::now();
    let bar = super::spinner(&format!(
        "loading the people of partition {part} from {}",
        data.display()
    ));
    // Only this partition's rows are held: the other tables are cut as read.
    let data_set = DataSet::load_people(data, &|person| part.holds(person))?;
    let model = folder::load(model)?;
    let challenger = crate::serve::challenger_of(&config, &model)?;
    let arms = Arms {
        champion: &model,
        challenger: challenger.as_ref().map(|(m, share)| (m, *share)),
    };
    let book = assess_arms(&data_set, arms, &config, as_of, &|step| {
        bar.set_message(step.to_string())
    })?;
    drop(data_set);
    bar.set_message(format!("writing {}", out.display()));
    write_durably(out, |file| Ok(write_part(&book, &config, part, file)?))
        .context("writing the partition")?;
    bar.finish_and_clear();
    Ok(format!(
        "partition {part}: assessed {} accounts for {as_of} with {} → {} in {:.1} s; \
         plan the book with `prioritize plan --merge` over all {} partitions",
        book.len(),
        models_text(&book),
        out.display(),
        started.elapsed().as_secs_f64(),
        part.count
    ))
}

/// Plans the book of the partitions `parts`: exploration, the allocation
/// under the day's capacities and the queue ranks over all of them, as one
/// run over the whole book would; writes the plan and returns a summary.
pub fn merge(parts: &[PathBuf], engine: &EngineArgs, out: &Path) -> Result<String> {
    if !engine.costs.is_empty() || engine.challenger.is_some() || engine.challenger_share.is_some()
    {
        anyhow::bail!(
            "--cost, --challenger and --challenger-share shape each account's values: \
             give them to every `plan --partition`, not to --merge"
        );
    }
    let config = engine_config(engine)?;
    let started = Instant::now();
    let bar = super::spinner(&format!("reading {} partitions", parts.len()));
    let book = read_parts(parts)?;
    let read = started.elapsed().as_secs_f64();
    bar.set_message("allocating under capacity");
    let decisions = decide(&book, &config);
    let allocated = started.elapsed().as_secs_f64();
    bar.set_message(format!("writing {}", out.display()));
    write_plan_file(out, &book, &decisions, &config)?;
    bar.finish_and_clear();
    let explored = decisions.iter().filter(|d| d.propensity < 1.0).count();
    Ok(format!(
        "{}planned {} accounts of {} partitions for {} with {} → {} ({explored} explored)\n\
         reading {read:.1} s, allocation {:.1} s, writing {:.1} s; total {:.1} s",
        mix_table(&book, &decisions, &config),
        book.len(),
        parts.len(),
        book.day,
        models_text(&book),
        out.display(),
        allocated - read,
        started.elapsed().as_secs_f64() - allocated,
        started.elapsed().as_secs_f64(),
    ))
}
