//! `prioritize evaluate-policy`: what the plan is worth, estimated from logged
//! outcomes, beside the logged policy and a staged rules baseline; with the
//! simulator's truth, also what each is truly worth and the best possible.

use std::path::Path;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use polars::prelude::ChunkAgg;

use crate::cli::EngineArgs;
use crate::contract::parse::days_to_date;
use crate::contract::{DataSet, Strategy};
use crate::model::folder;
use crate::strategy::allocate::K;
use crate::strategy::plan::{assess, decide, money, Decision};
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

/// Evaluates the policies and returns the report.
pub fn run(
    data: &Path,
    model: &Path,
    as_of: Option<NaiveDate>,
    engine: &EngineArgs,
    truth: Option<&Path>,
    json: Option<&Path>,
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
    let mut policies: Vec<(&str, &[Decision])> = vec![
        ("plan (this model)", &plan),
        ("staged rules baseline", &baseline),
        ("none for everyone", &none),
    ];
    if let Some(best) = &oracle_decisions {
        policies.push(("oracle (true values)", best));
    }
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
            " true value | true total |"
        } else {
            ""
        },
        if truth.is_some() { "---|---|" } else { "" },
    ));
    for (name, decisions) in &policies {
        let e = estimate(&book, &log, decisions);
        let true_sum = truth.as_ref().map(|t| total(t, decisions));
        policy_rows.push(serde_json::json!({
            "policy": name,
            "inverse_propensity": e.ips.round_dp(2).to_string(),
            "doubly_robust": e.doubly_robust.round_dp(2).to_string(),
            "agreeing_rows": e.agreeing,
            "true_mean": true_sum.map(|sum| money(sum / n).to_string()),
            "true_total": true_sum.map(|sum| money(sum).to_string()),
        }));
        let true_part = match true_sum {
            Some(sum) => format!(" {} | {} |", money(sum / n), money(sum)),
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
        if truth.is_some() { " | |" } else { "" }
    ));
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
