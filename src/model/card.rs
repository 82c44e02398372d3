//! `model_card.md`, and the metric tables `evaluate` prints: written for the
//! data scientist who decides whether a model goes live.

use std::fmt::Write;

use super::folder::{ClassifierMeta, ModelMeta};
use super::metrics::Metrics;

/// The model card of a trained model.
pub fn render(meta: &ModelMeta) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Model {}\n", meta.version);
    let _ = writeln!(out, "| | |\n|---|---|");
    let p = &meta.params;
    let _ = writeln!(out, "| created | {} |", meta.created_at);
    let _ = writeln!(out, "| training data | `{}` |", meta.data_hash);
    let _ = writeln!(
        out,
        "| rows | {} outcomes rows: the saved models are refitted on {}; {} predicted out of fold by {} folds (by account, stratified, seed {}) for the search, calibration and every metric below; {} held out untouched |",
        meta.training_rows, meta.split.fit, meta.split.calibration, meta.split.folds, p.seed, meta.split.test
    );
    let _ = writeln!(
        out,
        "| search | the given trees ({}, at most {} rounds, early stop after {} without gain) and {} seeded draws, on at most {} rows{}; scorecard: L2 alpha {}, at most {} iterations |",
        super::train::describe_trees(&p.trees), p.trees.iterations, p.trees.early_stopping_rounds, p.search, p.search_rows,
        p.search_seconds.map(|s| format!(", at most {s:.0} s per model")).unwrap_or_default(), p.alpha, p.max_iterations
    );
    let _ = writeln!(out, "| features | {} |\n", meta.features.join(", "));
    classifier_section(
        &mut out,
        "Payment propensity: P(paid within the horizon)",
        &meta.propensity,
    );
    match &meta.response {
        Some(response) => classifier_section(
            &mut out,
            "Strategy response: P(paid | account, strategy)",
            response,
        ),
        None => {
            let _ = writeln!(
                out,
                "## Strategy response\n\nNot fitted: the training outcomes log a single strategy, so the data says nothing about how strategies differ.\n"
            );
        }
    }
    if meta.amount.is_none() {
        out.push_str(
            "## Amount if paid\n\nNot fitted: the training outcomes record no paid amounts.\n\n",
        );
    }
    if let Some(amount) = &meta.amount {
        let _ = writeln!(
            out,
            "## Amount if paid\n\nGradient-boosted trees (squared loss) on the paying rows, chosen by out-of-fold error. On {} payers predicted out of fold: mean observed {:.2}, mean predicted {:.2}, mean absolute error {:.2}.\n",
            amount.test_payers, amount.mean_observed, amount.mean_predicted, amount.mean_absolute_error
        );
        if !amount.candidates.is_empty() {
            let _ = writeln!(
                out,
                "| configuration | trees | out-of-fold RMSE | chosen |\n|---|---|---|---|"
            );
            for c in &amount.candidates {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.2} | {} |",
                    c.label,
                    c.trees,
                    c.rmse,
                    if c.chosen { "yes" } else { "" }
                );
            }
            out.push('\n');
        }
    }
    out
}

fn classifier_section(out: &mut String, title: &str, meta: &ClassifierMeta) {
    let _ = writeln!(out, "## {title}\n");
    let _ = writeln!(out, "Chosen: {}.\n", meta.selection);
    let _ = writeln!(out, "| candidate | trees | cross-fit seconds | out-of-fold log loss | ROC AUC | Brier | KS | plan value per account (s.e.) | behind the chosen (paired s.e.) | chosen |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for c in &meta.candidates {
        let (value, behind) = match c.decision {
            Some(d) => (
                format!("{:.4} ({:.4})", d.value, d.se),
                format!("{:.4} ({:.4})", d.behind_best, d.behind_best_se),
            ),
            None => ("–".to_string(), "–".to_string()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.5} | {:.4} | {:.4} | {:.4} | {value} | {behind} | {} |",
            if c.label.is_empty() {
                c.kind.label()
            } else {
                &c.label
            },
            if c.trees == 0 {
                "–".to_string()
            } else {
                c.trees.to_string()
            },
            c.fit_seconds,
            c.log_loss,
            c.test.roc_auc,
            c.test.brier,
            c.test.ks,
            if c.chosen { "yes" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "\n{} of the chosen learner, after Platt calibration:\n",
        if meta.held_out.is_some() {
            "Metrics on the untouched test rows"
        } else {
            "Out-of-fold metrics"
        }
    );
    out.push_str(&metrics_tables(meta.test()));
    if let Some(card) = &meta.scorecard {
        let _ = writeln!(
            out,
            "\nScorecard weights (log-odds per standard deviation; positive raises P(paid)):\n"
        );
        let _ = writeln!(
            out,
            "| input | mean | standard deviation | weight |\n|---|---|---|---|"
        );
        let _ = writeln!(out, "| intercept | | | {:.4} |", card.intercept);
        for (((name, mean), scale), weight) in meta
            .inputs
            .names()
            .iter()
            .zip(&card.means)
            .zip(&card.scales)
            .zip(&card.weights)
        {
            let _ = writeln!(out, "| {name} | {mean:.4} | {scale:.4} | {weight:.4} |");
        }
    }
    out.push('\n');
}

/// Headline figures, calibration and lift by decile, and response by strategy.
pub fn metrics_tables(m: &Metrics) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rows {}, observed paid rate {:.4}, mean predicted {:.4}\nROC AUC {:.4} · Brier {:.4} · KS {:.4} · worst decile gap {:.4}\n",
        m.rows,
        m.observed_rate,
        m.mean_predicted,
        m.roc_auc,
        m.brier,
        m.ks,
        m.worst_decile_gap()
    );
    let _ = writeln!(
        out,
        "| decile (1 = highest) | rows | mean predicted | observed | lift |\n|---|---|---|---|---|"
    );
    for d in &m.deciles {
        let _ = writeln!(
            out,
            "| {} | {} | {:.4} | {:.4} | {:.2} |",
            d.decile, d.rows, d.mean_predicted, d.observed_rate, d.lift
        );
    }
    if m.by_strategy.len() > 1 {
        let _ = writeln!(
            out,
            "\n| logged strategy | rows | observed paid rate | mean predicted |\n|---|---|---|---|"
        );
        for s in &m.by_strategy {
            let _ = writeln!(
                out,
                "| {} | {} | {:.4} | {:.4} |",
                s.strategy, s.rows, s.observed_rate, s.mean_predicted
            );
        }
    }
    out
}

/// Two models' metrics side by side (for `evaluate --against`).
pub fn side_by_side(left_name: &str, left: &Metrics, right_name: &str, right: &Metrics) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| metric | {left_name} | {right_name} | difference |\n|---|---|---|---|"
    );
    let rows = [
        ("ROC AUC", left.roc_auc, right.roc_auc),
        ("Brier", left.brier, right.brier),
        ("KS", left.ks, right.ks),
        (
            "worst decile gap",
            left.worst_decile_gap(),
            right.worst_decile_gap(),
        ),
        ("mean predicted", left.mean_predicted, right.mean_predicted),
        ("observed rate", left.observed_rate, right.observed_rate),
        ("top-decile lift", lift1(left), lift1(right)),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(out, "| {name} | {a:.4} | {b:.4} | {:+.4} |", a - b);
    }
    let _ = writeln!(
        out,
        "\n| decile | {left_name} predicted | {left_name} observed | {right_name} predicted | {right_name} observed |\n|---|---|---|---|---|"
    );
    for (a, b) in left.deciles.iter().zip(&right.deciles) {
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} |",
            a.decile, a.mean_predicted, a.observed_rate, b.mean_predicted, b.observed_rate
        );
    }
    out
}

fn lift1(m: &Metrics) -> f64 {
    m.deciles.first().map(|d| d.lift).unwrap_or(0.0)
}
