//! `prioritize evaluate-policy`: what the plan is worth, estimated from logged
//! outcomes, beside the logged policy and a staged rules baseline; with the
//! simulator's truth, also what each is truly worth and the best possible.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use polars::prelude::ChunkAgg;

use crate::cli::EngineArgs;
use crate::contract::parse::days_to_date;
use crate::contract::{DataSet, Strategy};
use crate::model::folder;
use crate::strategy::allocate::K;
use crate::strategy::plan::{assess, decide, money, Book, Decision};
use crate::strategy::policy::{
    estimate, logged, logged_mean, nothing, oracle, staged, total, truth_values,
};

/// The outcomes' only decision day.
fn decision_day(data: &DataSet) -> Result<NaiveDate> {
    let days = data.outcomes.column("as_of")?.date()?.physical();
    match (days.min(), days.max()) {
        (Some(a), Some(b)) if a == b => Ok(days_to_date(a)),
        (Some(_), Some(_)) => bail!("outcomes hold several as_of dates: choose one with --as-of"),
        _ => bail!("the data folder has no outcomes: off-policy evaluation needs logged decisions"),
    }
}

fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:+.1} %", 100.0 * part as f64 / whole.abs() as f64)
}

/// A plan made elsewhere (`--decisions NAME=FILE`), matched to the book.
struct External {
    name: String,
    decisions: Vec<Decision>,
    /// Decisions on a strategy the rules block (valued as `none`).
    violations: usize,
}

/// Reads `NAME=FILE.csv` (columns `account_id`, `strategy`; one row per
/// account of the book). A strategy the rules block is counted and replaced
/// by `none`, so that it earns nothing; an unknown account or strategy, a
/// repeated or missing account is refused, naming the file, row and column.
fn external(spec: &str, book: &Book) -> Result<External> {
    let Some((name, file)) = spec.split_once('=') else {
        bail!("--decisions {spec:?}: expected NAME=FILE.csv");
    };
    let row_of: HashMap<&str, usize> = book
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut reader = csv::Reader::from_path(file)
        .map_err(|e| anyhow::anyhow!("--decisions {name}: reading {file}: {e}"))?;
    let headers = reader.headers()?.clone();
    let column = |wanted: &str| {
        headers.iter().position(|h| h == wanted).ok_or_else(|| {
            anyhow::anyhow!(
                "{file}: no column {wanted} (the header has: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (id_at, strategy_at) = (column("account_id")?, column("strategy")?);
    let mut chosen: Vec<Option<usize>> = vec![None; book.len()];
    for (k, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("{file}, row {}: {e}", k + 1))?;
        let id = record.get(id_at).unwrap_or("");
        let Some(&row) = row_of.get(id) else {
            bail!(
                "{file}, row {}, column account_id: {id:?} is not an account of the book on {}",
                k + 1,
                book.day
            );
        };
        let text = record.get(strategy_at).unwrap_or("");
        let strategy: Strategy = text.parse().map_err(|_| {
            anyhow::anyhow!(
                "{file}, row {}, column strategy: unknown strategy {text:?}",
                k + 1
            )
        })?;
        if chosen[row].replace(strategy as usize).is_some() {
            bail!(
                "{file}, row {}, column account_id: account {id} is decided twice",
                k + 1
            );
        }
    }
    if let Some(missing) = chosen.iter().position(Option::is_none) {
        bail!(
            "{file}: no decision for account {} (and {} more); every account of the book needs one",
            book.ids[missing],
            chosen.iter().filter(|c| c.is_none()).count() - 1
        );
    }
    let mut violations = 0;
    let decisions = chosen
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut strategy = s.expect("every account checked above");
            if book.values[i][strategy].is_none() {
                violations += 1;
                strategy = Strategy::None as usize;
            }
            Decision {
                strategy,
                propensity: 1.0,
            }
        })
        .collect();
    Ok(External {
        name: name.to_string(),
        decisions,
        violations,
    })
}

/// Accounts planned beyond each strategy's capacity, summed.
fn over_capacity(decisions: &[Decision], config: &crate::strategy::config::EngineConfig) -> u64 {
    (0..K)
        .filter_map(|s| {
            let capacity = config.strategies[s].capacity?;
            let used = decisions.iter().filter(|d| d.strategy == s).count() as u64;
            Some(used.saturating_sub(capacity))
        })
        .sum()
}

/// Evaluates the policies and returns the report.
pub fn run(
    data: &Path,
    model: &Path,
    as_of: Option<NaiveDate>,
    engine: &EngineArgs,
    truth: Option<&Path>,
    json: Option<&Path>,
    decisions: &[String],
) -> Result<String> {
    let mut config = super::plan::engine_config(engine)?;
    // The policy judged is the plan itself, without exploration's random share.
    config.explore = 0.0;
    // It is one model's plan: a challenger is judged by running this with it as --model.
    if engine.challenger.is_some() || engine.challenger_share.is_some() {
        anyhow::bail!(
            "evaluate-policy judges one model's plan: run it again with the challenger as --model"
        );
    }
    config.challenger = None;
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let model = folder::load(model)?;
    let day = match as_of {
        Some(day) => day,
        None => decision_day(&data_set)?,
    };
    let book = assess(&data_set, &model, &config, day, &|step| {
        bar.set_message(step.to_string())
    })?;
    bar.set_message("allocating");
    let plan = decide(&book, &config);
    let baseline = staged(&book, &config);
    let none = nothing(&book);
    let log = logged(&data_set, &book, &config)?;
    let externals = decisions
        .iter()
        .map(|spec| external(spec, &book))
        .collect::<Result<Vec<_>>>()?;
    let truth = match truth {
        Some(path) => {
            bar.set_message("reading the simulator's truth");
            Some(truth_values(path, &book, &config)?)
        }
        None => None,
    };
    bar.finish_and_clear();

    let currency = book.currency.first().cloned().unwrap_or_default();
    let mut out = format!(
        "Policies for {day} on {} accounts ({} logged decisions; model {}).\n\
         Values are mean net money collected per account, in {currency}, after each strategy's cost.\n\n",
        book.len(),
        log.rows.len(),
        book.model_version
    );
    let oracle_decisions = truth.as_ref().map(|t| oracle(t, &config));
    let mut policies: Vec<(&str, &[Decision], usize)> = vec![
        ("plan (this model)", &plan, 0),
        ("staged rules baseline", &baseline, 0),
        ("none for everyone", &none, 0),
    ];
    for e in &externals {
        policies.push((&e.name, &e.decisions, e.violations));
    }
    if let Some(best) = &oracle_decisions {
        policies.push(("oracle (true values)", best, 0));
    }
    // The share of the oracle's uplift over doing nothing each policy captures.
    let uplift_share = |decisions: &[Decision]| -> Option<f64> {
        let (t, best) = (truth.as_ref()?, oracle_decisions.as_ref()?);
        let zero = total(t, &none);
        let room = total(t, best) - zero;
        (room > 0).then(|| (total(t, decisions) - zero) as f64 / room as f64)
    };
    let n = book.len() as i64;
    let trained_on_these = crate::model::folder::data_hash(data).ok().as_deref()
        == Some(model.meta.data_hash.as_str());
    let mut report = serde_json::json!({
        "day": day,
        "accounts": book.len(),
        "logged_decisions": log.rows.len(),
        "skipped_outcomes": log.skipped,
        "model_version": book.model_version,
        "currency": currency,
        "trained_on_these": trained_on_these,
        "logged_observed_mean": logged_mean(&log).round_dp(2).to_string(),
    });
    let mut policy_rows = Vec::new();
    out.push_str(&format!(
        "| policy | inverse propensity | doubly robust | agreeing rows |{}\n|---|---|---|---|{}\n",
        if truth.is_some() {
            " true value | true total | of the oracle's uplift |"
        } else {
            ""
        },
        if truth.is_some() { "---|---|---|" } else { "" },
    ));
    for (name, decisions, violations) in &policies {
        let e = estimate(&book, &log, decisions);
        let true_sum = truth.as_ref().map(|t| total(t, decisions));
        policy_rows.push(serde_json::json!({
            "policy": name,
            "inverse_propensity": e.ips.round_dp(2).to_string(),
            "doubly_robust": e.doubly_robust.round_dp(2).to_string(),
            "agreeing_rows": e.agreeing,
            "true_mean": true_sum.map(|sum| money(sum / n).to_string()),
            "true_total": true_sum.map(|sum| money(sum).to_string()),
            "uplift_share": uplift_share(decisions),
            "violations": violations,
            "over_capacity": over_capacity(decisions, &config),
        }));
        let true_part = match true_sum {
            Some(sum) => format!(
                " {} | {} | {} |",
                money(sum / n),
                money(sum),
                uplift_share(decisions)
                    .map(|share| format!("{:.1} %", 100.0 * share))
                    .unwrap_or_else(|| "-".into())
            ),
            None => String::new(),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} |{true_part}\n",
            e.ips.round_dp(2),
            e.doubly_robust.round_dp(2),
            e.agreeing
        ));
    }
    out.push_str(&format!(
        "| logged (as recorded) | {} (observed) | | {} |{}\n",
        logged_mean(&log).round_dp(2),
        log.rows.len(),
        if truth.is_some() { " | | |" } else { "" }
    ));
    for e in &externals {
        let over = over_capacity(&e.decisions, &config);
        if e.violations > 0 || over > 0 {
            out.push_str(&format!(
                "\n{}: {} decisions on a strategy the rules block (valued as none), {over} beyond a capacity.\n",
                e.name, e.violations
            ));
        }
    }
    report["policies"] = serde_json::Value::Array(policy_rows);
    if trained_on_these {
        out.push_str(
            "\nThis model was trained on these outcomes: the estimates flatter it. Judge it on a book it has not seen.\n",
        );
    }
    if log.skipped > 0 {
        out.push_str(&format!(
            "\n{} outcomes rows of {day} lack a strategy or a propensity and were left out.\n",
            log.skipped
        ));
    }
    out.push_str("\nUse of capacity (accounts planned / capacity):\n");
    let count = |d: &[Decision], s: usize| d.iter().filter(|x| x.strategy == s).count();
    let mut capacity_rows = Vec::new();
    for s in 0..K {
        if let Some(capacity) = config.strategies[s].capacity {
            capacity_rows.push(serde_json::json!({
                "strategy": Strategy::ALL[s].as_str(),
                "capacity": capacity,
                "plan": count(&plan, s),
                "baseline": count(&baseline, s),
                "oracle": oracle_decisions.as_ref().map(|o| count(o, s)),
            }));
            out.push_str(&format!(
                "  {:<18} plan {:>7}  baseline {:>7}{}  of {capacity}\n",
                Strategy::ALL[s].as_str(),
                count(&plan, s),
                count(&baseline, s),
                oracle_decisions
                    .as_ref()
                    .map(|o| format!("  oracle {:>7}", count(o, s)))
                    .unwrap_or_default(),
            ));
        }
    }
    report["capacity_use"] = serde_json::Value::Array(capacity_rows);
    if let Some(path) = json {
        crate::output::write_text(path, &serde_json::to_string_pretty(&report)?)?;
    }
    if let (Some(t), Some(best)) = (&truth, &oracle_decisions) {
        let (p, b, z, o) = (
            total(t, &plan),
            total(t, &baseline),
            total(t, &none),
            total(t, best),
        );
        let share = |gain: i64, room: i64| {
            if room <= 0 {
                "-".to_string()
            } else {
                format!("{:.1} %", 100.0 * gain as f64 / room as f64)
            }
        };
        out.push_str(&format!(
            "\nTrue net money collected: plan {} against baseline {}: {} ({} {currency}).\n\
             Of the oracle's uplift over the baseline ({} {currency}) the plan captures {}; \
             of its uplift over doing nothing ({} {currency}), {}.\n",
            money(p),
            money(b),
            percent(p - b, b),
            money(p - b),
            money(o - b),
            share(p - b, o - b),
            money(o - z),
            share(p - z, o - z),
        ));
    }
    Ok(out)
}
