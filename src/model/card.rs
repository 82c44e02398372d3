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
    let t = &meta.params.trees;
    let _ = writeln!(out, "| created | {} |", meta.created_at);
    let _ = writeln!(out, "| training data | `{}` |", meta.data_hash);
    let _ = writeln!(
        out,
        "| rows | {} (fit {}, calibration {}, held-out test {}; split by account, stratified, seed {}) |",
        meta.training_rows, meta.split.fit, meta.split.calibration, meta.split.test, meta.params.seed
    );
    let _ = writeln!(
        out,
        "| hyper-parameters | trees: at most {} of depth {}, learning rate {}, min leaf weight {}, L2 {}, early stop after {} rounds without gain; scorecard: L2 alpha {}, at most {} iterations |",
        t.iterations, t.max_depth, t.learning_rate, t.min_leaf_weight, t.l2, t.early_stopping_rounds, meta.params.alpha, meta.params.max_iterations
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
            "## Amount if paid\n\nGradient-boosted trees (squared loss) on the paying fit rows. On {} held-out payers: mean observed {:.2}, mean predicted {:.2}, mean absolute error {:.2}.\n",
            amount.test_payers, amount.mean_observed, amount.mean_predicted, amount.mean_absolute_error
        );
    }
    out
}

fn classifier_section(out: &mut String, title: &str, meta: &ClassifierMeta) {
    let _ = writeln!(out, "## {title}\n");
    let _ = writeln!(out, "Chosen: {}.\n", meta.selection);
    let _ = writeln!(out, "| learner | trees | fit rows | fit seconds | scored per second | calibration-rows ROC AUC | test ROC AUC | test Brier | test KS |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for c in &meta.candidates {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.0} | {:.4} | {:.4} | {:.4} | {:.4} |",
            c.kind.label(),
            if c.trees == 0 {
                "–".to_string()
            } else {
                c.trees.to_string()
            },
            c.fit_rows,
            c.fit_seconds,
            c.scored_per_second,
            c.selection_auc,
            c.test.roc_auc,
            c.test.brier,
            c.test.ks
        );
    }
    let _ = writeln!(
        out,
        "\nHeld-out metrics of the chosen learner, after Platt calibration:\n"
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
