//! Training: features for every `outcomes` row, a seeded split stratified by
//! outcome and grouped by account, both learners fitted on one part,
//! calibrated and compared on the second, measured on the third.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::design::{Design, InputSpec, StrategyInput};
use super::folder::{
    data_hash, AmountMeta, Candidate, ClassifierMeta, ModelMeta, SplitSizes, FORMAT,
};
use super::learner::{boost, BoostParams, Learner, Platt, Scorecard};
use super::metrics::Metrics;
use super::{AmountModel, Classifier, LearnerKind, Model, ModelError};
use crate::contract::{DataSet, Strategy};
use crate::features::{build, catalog, spine_from_outcomes};

/// Hyper-parameters of training, checked by [`TrainParams::check`] before use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Seed of the split and of the tree ensemble.
    pub seed: u64,
    /// Share of accounts held out for the reported metrics.
    pub test_share: f64,
    /// Share of accounts for calibration and for choosing the learner.
    pub calibration_share: f64,
    /// Hyper-parameters of the tree ensembles.
    pub trees: BoostParams,
    /// L2 penalty of the scorecard (on standardised inputs).
    pub alpha: f64,
    /// Iteration limit of the scorecard's optimiser.
    pub max_iterations: u64,
    /// The scorecard fits on at most this many of the fit rows (a seeded
    /// sample): a few dozen weights need no more, and linfa's optimiser is
    /// the slowest step of training on large books.
    #[serde(default = "default_scorecard_rows")]
    pub scorecard_rows: usize,
    /// The scorecard is kept unless the trees beat its ROC AUC by more than this.
    pub prefer_scorecard_within: f64,
    /// The learner of the strategy-response model, if not chosen on ROC AUC.
    #[serde(default)]
    pub response_learner: Option<LearnerKind>,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            seed: 42,
            test_share: 0.2,
            calibration_share: 0.2,
            trees: BoostParams::default(),
            alpha: 1.0,
            max_iterations: 200,
            scorecard_rows: default_scorecard_rows(),
            prefer_scorecard_within: 0.005,
            response_learner: None,
        }
    }
}

fn default_scorecard_rows() -> usize {
    200_000
}

impl TrainParams {
    /// Refuses shares that leave no rows to fit on, and non-positive budgets.
    pub fn check(self) -> Result<TrainParams, ModelError> {
        let share_ok = |s: f64| s > 0.0 && s < 1.0;
        if !share_ok(self.test_share)
            || !share_ok(self.calibration_share)
            || self.test_share + self.calibration_share >= 0.9
        {
            return Err(ModelError::Invalid(format!(
                "test share {} and calibration share {} must each be in (0, 1) and leave at least 10% to fit on",
                self.test_share, self.calibration_share
            )));
        }
        let t = &self.trees;
        let trees_ok = t.iterations > 0
            && t.learning_rate > 0.0
            && t.learning_rate <= 1.0
            && t.max_depth > 0
            && t.min_leaf_weight >= 0.0
            && t.l2 >= 0.0
            && t.early_stopping_rounds > 0;
        if !trees_ok || self.alpha < 0.0 || self.max_iterations == 0 || self.scorecard_rows < 100 {
            return Err(ModelError::Invalid(format!(
                "hyper-parameters out of range: trees {t:?}, alpha {} (not negative), max_iterations {} (at least 1), scorecard_rows {} (at least 100)",
                self.alpha, self.max_iterations, self.scorecard_rows
            )));
        }
        Ok(self)
    }
}

/// Feature rows of every outcomes row, with what happened.
pub struct Labelled {
    pub features: DataFrame,
    pub paid: Vec<bool>,
    pub strategies: Vec<Strategy>,
    pub amounts: Vec<f64>,
}

/// Features of every `outcomes` row joined to its outcome.
pub fn labelled(data: &DataSet) -> Result<Labelled, ModelError> {
    let spine = spine_from_outcomes(&data.outcomes)?;
    let features = build(data, &spine)?;
    let key = [col("account_id"), col("as_of")];
    let joined = features
        .lazy()
        .join(
            data.outcomes.clone().lazy().select([
                col("account_id"),
                col("as_of"),
                col("strategy").alias("__strategy"),
                col("paid").alias("__paid"),
                col("paid_amount")
                    .cast(DataType::Float64)
                    .alias("__paid_amount"),
            ]),
            key.clone(),
            key,
            JoinArgs::new(JoinType::Left),
        )
        .collect()?;
    let paid: Vec<bool> = joined
        .column("__paid")?
        .bool()?
        .into_iter()
        .map(|p| p.unwrap_or(false))
        .collect();
    let strategies = joined
        .column("__strategy")?
        .cast(&DataType::String)?
        .str()?
        .into_iter()
        .map(|s| match s {
            None => Ok(Strategy::None),
            Some(name) => name
                .parse::<Strategy>()
                .map_err(|_| ModelError::Invalid(format!("outcomes: unknown strategy {name:?}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let amounts: Vec<f64> = joined
        .column("__paid_amount")?
        .f64()?
        .into_iter()
        .map(|a| a.unwrap_or(0.0))
        .collect();
    let features = joined.drop_many(["__paid", "__strategy", "__paid_amount"]);
    Ok(Labelled {
        features,
        paid,
        strategies,
        amounts,
    })
}

/// Row numbers of the three parts.
pub struct Split {
    pub fit: Vec<usize>,
    pub calibration: Vec<usize>,
    pub test: Vec<usize>,
}

/// Seeded split by account (all rows of an account fall in one part),
/// stratified by whether the account ever paid.
pub fn split(accounts: &StringChunked, paid: &[bool], params: &TrainParams) -> Split {
    let mut rows_of: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, id) in accounts.into_iter().enumerate() {
        let id = id.unwrap_or("");
        rows_of
            .entry(id)
            .or_insert_with(|| {
                order.push(id);
                Vec::new()
            })
            .push(i);
    }
    let (mut payers, mut others): (Vec<&str>, Vec<&str>) = order
        .into_iter()
        .partition(|id| rows_of[id].iter().any(|&i| paid[i]));
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut parts = Split {
        fit: Vec::new(),
        calibration: Vec::new(),
        test: Vec::new(),
    };
    for group in [&mut payers, &mut others] {
        group.shuffle(&mut rng);
        let n = group.len() as f64;
        let test = (n * params.test_share).round() as usize;
        let calibration = (n * params.calibration_share).round() as usize;
        for (k, id) in group.iter().enumerate() {
            let part = if k < test {
                &mut parts.test
            } else if k < test + calibration {
                &mut parts.calibration
            } else {
                &mut parts.fit
            };
            part.extend(&rows_of[id]);
        }
    }
    for part in [&mut parts.fit, &mut parts.calibration, &mut parts.test] {
        part.sort_unstable();
    }
    parts
}

impl Split {
    /// The fit rows less every tenth, and those tenths: the trees stop
    /// growing when they no longer help on rows they do not fit.
    pub fn fit_and_stop(&self) -> (Vec<usize>, Vec<usize>) {
        let (mut fit, mut stop) = (Vec::new(), Vec::new());
        for (k, &row) in self.fit.iter().enumerate() {
            if k % 10 == 0 {
                stop.push(row);
            } else {
                fit.push(row);
            }
        }
        (fit, stop)
    }
}

/// At most `limit` of `0..rows`, a seeded sample in row order (all rows when fewer).
fn sample_rows(rows: usize, limit: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..rows).collect();
    if rows > limit {
        all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)));
        all.truncate(limit);
        all.sort_unstable();
    }
    all
}

fn pick<T: Copy>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| values[i]).collect()
}

/// Fits both learners, calibrates each on the calibration rows, keeps the
/// better one there, and measures both on the test rows.
#[allow(clippy::too_many_arguments)]
fn fit_classifier(
    what: &str,
    inputs: InputSpec,
    design: &Design,
    labelled: &Labelled,
    parts: &Split,
    params: &TrainParams,
    progress: &dyn Fn(&str),
    forced: Option<LearnerKind>,
) -> Result<(Classifier, ClassifierMeta), ModelError> {
    let paid = &labelled.paid;
    let strategies: Vec<&str> = labelled.strategies.iter().map(|s| s.as_str()).collect();
    let (fit_rows, stop_rows) = parts.fit_and_stop();
    let fit = design.take(&fit_rows);
    let stop = design.take(&stop_rows);
    let stop_target: Vec<f64> = stop_rows
        .iter()
        .map(|&i| f64::from(u8::from(paid[i])))
        .collect();
    let calibration = design.take(&parts.calibration);
    let test = design.take(&parts.test);
    let fit_paid = pick(paid, &fit_rows);
    let calibration_paid = pick(paid, &parts.calibration);
    let test_paid = pick(paid, &parts.test);
    let test_strategies = pick(&strategies, &parts.test);
    let mut fitted: Vec<(Classifier, Candidate)> = Vec::new();
    for kind in [LearnerKind::Scorecard, LearnerKind::TreeEnsemble] {
        progress(&format!("fitting the {what} model: {}", kind.label()));
        let started = Instant::now();
        let learner = match kind {
            LearnerKind::Scorecard => {
                let sample = sample_rows(fit.rows, params.scorecard_rows, params.seed);
                Learner::Scorecard(Scorecard::fit(
                    &fit.take(&sample),
                    &pick(&fit_paid, &sample),
                    params.alpha,
                    params.max_iterations,
                )?)
            }
            LearnerKind::TreeEnsemble => {
                let target: Vec<f64> = fit_paid.iter().map(|&p| f64::from(u8::from(p))).collect();
                Learner::Boosted(Box::new(boost(
                    &fit,
                    &target,
                    (&stop, &stop_target),
                    true,
                    &params.trees,
                )?))
            }
        };
        let fit_seconds = started.elapsed().as_secs_f64();
        let calibration_raw = learner.raw(&calibration);
        let platt = Platt::fit(&calibration_raw, &calibration_paid);
        let selection_auc = super::metrics::roc_auc(&calibration_raw, &calibration_paid);
        let classifier = Classifier {
            inputs: inputs.clone(),
            learner,
            platt,
        };
        let trees = match &classifier.learner {
            Learner::Boosted(booster) => {
                booster.prediction_iteration.unwrap_or(booster.trees.len())
            }
            Learner::Scorecard(_) => 0,
        };
        let scoring = Instant::now();
        let predicted = classifier.probabilities_of(&test);
        let score_seconds = scoring.elapsed().as_secs_f64();
        let test_metrics = Metrics::of(&predicted, &test_paid, Some(&test_strategies));
        tracing::info!(
            what,
            learner = kind.label(),
            fit_seconds,
            selection_auc,
            test_auc = test_metrics.roc_auc,
            "fitted"
        );
        fitted.push((
            classifier,
            Candidate {
                kind,
                selection_auc,
                test: test_metrics,
                fit_seconds,
                fit_rows: match kind {
                    LearnerKind::Scorecard => fit_rows.len().min(params.scorecard_rows),
                    LearnerKind::TreeEnsemble => fit_rows.len(),
                },
                trees,
                scored_per_second: test.rows as f64 / score_seconds.max(1e-9),
            },
        ));
    }
    let (card_auc, trees_auc) = (fitted[0].1.selection_auc, fitted[1].1.selection_auc);
    let keep_trees = match forced {
        Some(kind) => kind == LearnerKind::TreeEnsemble,
        None => trees_auc > card_auc + params.prefer_scorecard_within,
    };
    let selection = if let Some(kind) = forced {
        format!(
            "{}: chosen in the training parameters (ROC AUC on the calibration rows: scorecard {card_auc:.4}, trees {trees_auc:.4})",
            kind.label()
        )
    } else if keep_trees {
        format!(
            "gradient-boosted trees: ROC AUC {trees_auc:.4} on the calibration rows against {card_auc:.4} for the scorecard, more than the {:.3} margin that keeps the readable scorecard",
            params.prefer_scorecard_within
        )
    } else if trees_auc <= card_auc {
        format!(
            "logistic scorecard: ROC AUC {card_auc:.4} on the calibration rows, at least the trees' {trees_auc:.4}"
        )
    } else {
        format!(
            "logistic scorecard: ROC AUC {card_auc:.4} on the calibration rows against {trees_auc:.4} for the trees, within the {:.3} margin, so the readable scorecard is kept",
            params.prefer_scorecard_within
        )
    };
    let candidates: Vec<Candidate> = fitted.iter().map(|(_, c)| c.clone()).collect();
    let (chosen, _) = fitted.swap_remove(usize::from(keep_trees));
    let kind = chosen.kind();
    let meta = ClassifierMeta {
        kind,
        inputs,
        platt: chosen.platt,
        scorecard: match &chosen.learner {
            Learner::Scorecard(card) => Some(card.clone()),
            Learner::Boosted(_) => None,
        },
        trees_file: (kind == LearnerKind::TreeEnsemble).then(|| format!("{what}.trees.json")),
        selection,
        candidates,
    };
    Ok((chosen, meta))
}

/// A trained model, with its held-out rows: `account_id`, `as_of`, `paid`,
/// and the propensity model's calibrated `p_pay`.
pub struct Trained {
    pub model: Model,
    pub holdout: DataFrame,
}

/// Trains the models on every `outcomes` row of `data` (read from `data_dir`).
pub fn train(
    data: &DataSet,
    data_dir: &Path,
    params: TrainParams,
    progress: &dyn Fn(&str),
) -> Result<Trained, ModelError> {
    let params = params.check()?;
    progress("computing features of every outcomes row");
    let labelled = labelled(data)?;
    let rows = labelled.paid.len();
    let payers = labelled.paid.iter().filter(|&&p| p).count();
    if payers < 10 || rows - payers < 10 {
        return Err(ModelError::Invalid(format!(
            "outcomes hold {payers} paid and {} unpaid rows; training needs at least 10 of each",
            rows - payers
        )));
    }
    let accounts = labelled.features.column("account_id")?.str()?.clone();
    let parts = split(&accounts, &labelled.paid, &params);
    let numeric = catalog::numeric_names();

    let inputs = InputSpec::for_training(&labelled.features, &numeric, false)?;
    let design = inputs.design(&labelled.features, StrategyInput::Absent)?;
    let (propensity, propensity_meta) = fit_classifier(
        "propensity",
        inputs,
        &design,
        &labelled,
        &parts,
        &params,
        progress,
        None,
    )?;

    let mut logged: Vec<Strategy> = labelled.strategies.clone();
    logged.sort_unstable();
    logged.dedup();
    let (response, response_meta) = if logged.len() > 1 {
        let inputs = InputSpec::for_training(&labelled.features, &numeric, true)?;
        let design = inputs.design(
            &labelled.features,
            StrategyInput::PerRow(&labelled.strategies),
        )?;
        let (response, meta) = fit_classifier(
            "response",
            inputs,
            &design,
            &labelled,
            &parts,
            &params,
            progress,
            params.response_learner,
        )?;
        (Some(response), Some(meta))
    } else {
        (None, None)
    };
    // Amounts are learnt only where outcomes record them.
    let amounts_recorded = labelled
        .paid
        .iter()
        .zip(&labelled.amounts)
        .any(|(&p, &a)| p && a > 0.0);
    let (amount, amount_meta) = if amounts_recorded {
        progress("fitting the amount model");
        let inputs = response.as_ref().unwrap_or(&propensity).inputs.clone();
        let strategy = match inputs.strategy {
            true => StrategyInput::PerRow(&labelled.strategies),
            false => StrategyInput::Absent,
        };
        let design = inputs.design(&labelled.features, strategy)?;
        let (model, meta) = fit_amount(inputs, &design, &labelled, &parts, &params)?;
        (Some(model), Some(meta))
    } else {
        (None, None)
    };

    progress("hashing the training data");
    let hash = data_hash(data_dir)?;
    let created = chrono::Utc::now();
    let mut features: Vec<String> = numeric.iter().map(|s| s.to_string()).collect();
    features.push("product".into());
    let meta = ModelMeta {
        format: FORMAT,
        version: format!("{}-{}", created.format("%Y%m%dT%H%M%S%.3fZ"), &hash[7..15]),
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        data_hash: hash,
        training_rows: rows,
        features,
        params,
        split: SplitSizes {
            fit: parts.fit.len(),
            calibration: parts.calibration.len(),
            test: parts.test.len(),
        },
        propensity: propensity_meta,
        response: response_meta,
        amount: amount_meta,
        dir_label: String::new(),
    };
    let test_rows = IdxCa::from_vec(
        "rows".into(),
        parts.test.iter().map(|&i| i as IdxSize).collect(),
    );
    let mut holdout = labelled
        .features
        .select(["account_id", "as_of"])?
        .take(&test_rows)?;
    let test_design = propensity
        .inputs
        .design(&labelled.features.take(&test_rows)?, StrategyInput::Absent)?;
    holdout.with_column(Column::new(
        "paid".into(),
        pick(&labelled.paid, &parts.test),
    ))?;
    holdout.with_column(Column::new(
        "p_pay".into(),
        propensity.probabilities_of(&test_design),
    ))?;
    Ok(Trained {
        model: Model {
            meta,
            propensity,
            response,
            amount,
        },
        holdout,
    })
}

/// Expected amount if paid: trees on the payers of the fit rows, measured on the test payers.
fn fit_amount(
    inputs: InputSpec,
    design: &Design,
    labelled: &Labelled,
    parts: &Split,
    params: &TrainParams,
) -> Result<(AmountModel, AmountMeta), ModelError> {
    let payers = |rows: &[usize]| -> Vec<usize> {
        rows.iter().copied().filter(|&i| labelled.paid[i]).collect()
    };
    let (fit_rows, stop_rows) = parts.fit_and_stop();
    let (fit_rows, stop_rows, test_rows) =
        (payers(&fit_rows), payers(&stop_rows), payers(&parts.test));
    let booster = boost(
        &design.take(&fit_rows),
        &pick(&labelled.amounts, &fit_rows),
        (
            &design.take(&stop_rows),
            &pick(&labelled.amounts, &stop_rows),
        ),
        false,
        &params.trees,
    )?;
    let model = AmountModel {
        inputs: inputs.clone(),
        booster: Box::new(booster),
    };
    let predicted = model.amounts_of(&design.take(&test_rows));
    let observed = pick(&labelled.amounts, &test_rows);
    let n = observed.len().max(1) as f64;
    let meta = AmountMeta {
        inputs,
        trees_file: "amount.trees.json".into(),
        test_payers: observed.len(),
        mean_observed: observed.iter().sum::<f64>() / n,
        mean_predicted: predicted.iter().sum::<f64>() / n,
        mean_absolute_error: observed
            .iter()
            .zip(&predicted)
            .map(|(o, p)| (o - p).abs())
            .sum::<f64>()
            / n,
    };
    Ok((model, meta))
}
