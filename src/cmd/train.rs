//! `prioritize train`: fit the models on a data folder's outcomes and write a model folder.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cli::EngineArgs;
use crate::contract::{DataSet, Format};
use crate::model::train::{labelled, train_labelled};
use crate::model::{card, folder, TrainParams};
use crate::output::write_frame;
use crate::strategy::judge::OutOfFoldJudge;

/// Trains, writes `out` (and the held-out scores to `holdout_out` if given);
/// returns a summary of what was chosen and how it scored.
pub fn run(
    data: &Path,
    out: &Path,
    params: TrainParams,
    engine: &EngineArgs,
    holdout_out: Option<&Path>,
) -> Result<String> {
    let started = Instant::now();
    // Refuse bad parameters and settings before any work.
    let params = params.check()?;
    let config = super::plan::engine_config(engine)?;
    let bar = super::spinner(&format!("loading {}", data.display()));
    let data_set = DataSet::load(data)?;
    let started_stage = Instant::now();
    let progress = |stage: &str| {
        tracing::info!(
            seconds = started_stage.elapsed().as_secs_f64(),
            stage,
            "training"
        );
        bar.set_message(stage.to_string());
    };
    progress("computing features of every outcomes row");
    let labelled = labelled(&data_set)?;
    progress("applying the compliance rules to the logged decisions");
    let judge = OutOfFoldJudge::new(&data_set, &labelled, &config)?;
    drop(data_set);
    let mut trained = train_labelled(&labelled, data, params, Some(&judge), &progress)?;
    bar.set_message(format!("writing {}", out.display()));
    let meta = &trained.model.meta;
    folder::save(out, &trained.model, &card::render(meta))
        .with_context(|| format!("writing the model folder {}", out.display()))?;
    if let Some(path) = holdout_out {
        write_frame(&mut trained.holdout, path, Format::Csv)
            .context("writing the held-out scores")?;
    }
    bar.finish_and_clear();
    let test = meta.propensity.test();
    let mut summary = format!(
        "trained model {} on {} rows in {:.1} s → {}\npropensity: {}\n  held-out ROC AUC {:.4}, Brier {:.4}, KS {:.4}, worst decile gap {:.4}",
        meta.version,
        meta.training_rows,
        started.elapsed().as_secs_f64(),
        out.display(),
        meta.propensity.selection,
        test.roc_auc,
        test.brier,
        test.ks,
        test.worst_decile_gap()
    );
    if let Some(response) = &meta.response {
        let test = response.test();
        summary.push_str(&format!(
            "\nresponse: {}\n  held-out ROC AUC {:.4}, Brier {:.4}",
            response.selection, test.roc_auc, test.brier
        ));
    }
    summary.push_str(&format!(
        "\nmodel card: {}",
        out.join("model_card.md").display()
    ));
    Ok(summary)
}
