//! The models: P(paid within the horizon) for every account (propensity), and
//! P(paid | account, strategy) with the expected amount if paid (response).
//! Trained by [`train`], saved to and loaded from a self-contained folder by
//! [`folder`], judged by [`metrics`], explained by [`reasons`].

pub mod card;
pub mod correction;
pub mod design;
pub mod folder;
pub mod learner;
pub mod metrics;
pub mod reasons;
pub mod strategy_trees;
pub mod train;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::contract::Strategy;
use crate::features::FeatureError;
use design::{InputSpec, StrategyInput};
use learner::{Learner, Platt};
use reasons::Reason;

pub use folder::{ModelMeta, FORMAT};
pub use train::{train, DecisionJudge, TrainParams, Trained};

/// Errors of training, loading and scoring models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Features(#[from] FeatureError),
    #[error("model data: {0}")]
    Polars(#[from] PolarsError),
    #[error("fitting {0}")]
    Fit(String),
    #[error("{0}")]
    Invalid(String),
    #[error("training parameters: {}", .0.join("; "))]
    Params(Vec<String>),
    #[error(
        "model folder {model_dir} does not match the data's features (missing: [{missing}]; \
         not known to the model: [{unknown}]); retrain it with this version"
    )]
    FeatureMismatch {
        model_dir: String,
        missing: String,
        unknown: String,
    },
    #[error("model folder {dir}: {message}")]
    Folder { dir: String, message: String },
}

/// Which learner a classifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LearnerKind {
    Scorecard,
    TreeEnsemble,
}

impl LearnerKind {
    pub fn label(self) -> &'static str {
        match self {
            LearnerKind::Scorecard => "logistic scorecard",
            LearnerKind::TreeEnsemble => "gradient-boosted trees",
        }
    }
}

/// A calibrated probability model.
pub struct Classifier {
    pub inputs: InputSpec,
    pub learner: Learner,
    pub platt: Platt,
    /// A doubly robust shift per strategy on top of the calibrated
    /// probability (response models chosen with one; see [`correction`]).
    pub correction: Option<correction::Correction>,
}

impl Classifier {
    pub fn kind(&self) -> LearnerKind {
        match self.learner {
            Learner::Scorecard(_) => LearnerKind::Scorecard,
            Learner::Boosted(_) => LearnerKind::TreeEnsemble,
        }
    }

    /// Calibrated probabilities of paying, one per feature row.
    pub fn probabilities(
        &self,
        features: &DataFrame,
        strategy: StrategyInput,
    ) -> Result<Vec<f64>, ModelError> {
        let design = self.inputs.design(features, strategy)?;
        Ok(self.probabilities_of(&design))
    }

    /// Calibrated probabilities of already-built inputs.
    pub fn probabilities_of(&self, design: &design::Design) -> Vec<f64> {
        let mut p: Vec<f64> = self
            .learner
            .raw(design)
            .into_iter()
            .map(|s| self.platt.probability(s))
            .collect();
        if let Some(c) = &self.correction {
            let columns = c
                .columns(design)
                .expect("the correction's inputs were checked on load");
            let indicators: Vec<usize> = Strategy::ALL
                .iter()
                .map(|s| {
                    let name = format!("strategy={s}");
                    design.names.iter().position(|n| *n == name)
                })
                .collect::<Option<_>>()
                .expect("a corrected model reads the strategy");
            let mut values = vec![0.0; columns.len()];
            for (i, p) in p.iter_mut().enumerate() {
                let s = indicators
                    .iter()
                    .position(|&j| design.column(j)[i] > 0.5)
                    .unwrap_or(0);
                for (v, &j) in values.iter_mut().zip(&columns) {
                    *v = design.column(j)[i];
                }
                *p = c.apply(*p, &values, s);
            }
        }
        p
    }

    /// The top reasons of every row.
    pub fn reasons(
        &self,
        features: &DataFrame,
        strategy: StrategyInput,
    ) -> Result<Vec<Vec<Reason>>, ModelError> {
        let design = self.inputs.design(features, strategy)?;
        Ok(self.reasons_of(&design))
    }

    /// Calibrated probabilities under every strategy, in the contract's
    /// order, of inputs whose last columns are the strategy indicators:
    /// what [`Self::probabilities_of`] gives with each strategy set, bit for
    /// bit. `None` for inputs of another layout.
    pub fn probabilities_all_strategies(
        &self,
        design: &design::Design,
    ) -> Option<Vec<[f64; strategy_trees::K]>> {
        let mut all = self.learner.raw_all_strategies(design)?;
        for row in &mut all {
            for p in row.iter_mut() {
                *p = self.platt.probability(*p);
            }
        }
        if let Some(c) = &self.correction {
            let columns = c.columns(design).ok()?;
            let mut values = vec![0.0; columns.len()];
            for (i, row) in all.iter_mut().enumerate() {
                for (v, &j) in values.iter_mut().zip(&columns) {
                    *v = design.column(j)[i];
                }
                for (s, p) in row.iter_mut().enumerate() {
                    *p = c.apply(*p, &values, s);
                }
            }
        }
        Some(all)
    }

    /// The top reasons of already-built inputs.
    pub fn reasons_of(&self, design: &design::Design) -> Vec<Vec<Reason>> {
        use rayon::prelude::*;
        let cols = design.cols();
        // A scorecard's pulls are worked out a block of rows at a time, so
        // that no rows × inputs matrix is ever held.
        const BLOCK: usize = 2048;
        if let Learner::Scorecard(card) = &self.learner {
            return (0..design.rows.div_ceil(BLOCK))
                .into_par_iter()
                .flat_map_iter(|block| {
                    let rows = block * BLOCK..((block + 1) * BLOCK).min(design.rows);
                    let mut pulls = vec![0.0; rows.len() * cols];
                    card.contributions_into(design, rows.clone(), &mut pulls);
                    rows.enumerate()
                        .map(|(k, i)| {
                            reasons::top(
                                &design.names,
                                |j| design.column(j)[i],
                                &pulls[k * cols..(k + 1) * cols],
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        let contributions = self.learner.contributions(design);
        (0..design.rows)
            .into_par_iter()
            .map(|i| {
                // Platt's slope scales every pull alike (and flips none while positive).
                reasons::top(
                    &design.names,
                    |j| design.column(j)[i],
                    &contributions[i * cols..(i + 1) * cols],
                )
            })
            .collect()
    }
}

/// Expected amount collected, given that the account pays.
pub struct AmountModel {
    pub inputs: InputSpec,
    pub booster: Box<forust_ml::GradientBooster>,
}

impl AmountModel {
    pub fn amounts(
        &self,
        features: &DataFrame,
        strategy: StrategyInput,
    ) -> Result<Vec<f64>, ModelError> {
        let design = self.inputs.design(features, strategy)?;
        Ok(self.amounts_of(&design))
    }

    pub fn amounts_of(&self, design: &design::Design) -> Vec<f64> {
        self.booster
            .predict(&design.matrix(), true)
            .into_iter()
            .map(|a| a.max(0.0))
            .collect()
    }

    /// The amount under every strategy, in the contract's order, walking
    /// each tree once per account; `None` without strategy inputs.
    pub fn amounts_all_strategies(
        &self,
        design: &design::Design,
    ) -> Option<Vec<[f64; strategy_trees::K]>> {
        let mut all = strategy_trees::predict_all_strategies(&self.booster, design)?;
        for row in &mut all {
            for value in row.iter_mut() {
                *value = value.max(0.0);
            }
        }
        Some(all)
    }
}

/// A loaded model folder.
pub struct Model {
    pub meta: ModelMeta,
    pub propensity: Classifier,
    /// Present when the training data logged more than one strategy.
    pub response: Option<Classifier>,
    pub amount: Option<AmountModel>,
}

impl Model {
    /// Refuses feature rows computed with a different feature list.
    pub fn check_features(&self, features: &DataFrame) -> Result<(), ModelError> {
        self.propensity.inputs.check(features, &self.meta.dir_label)
    }

    /// Calibrated P(paid within the horizon) of every feature row.
    pub fn p_pay(&self, features: &DataFrame) -> Result<Vec<f64>, ModelError> {
        self.check_features(features)?;
        self.propensity
            .probabilities(features, StrategyInput::Absent)
    }

    /// P(paid) and reason codes of every feature row, building the inputs once.
    pub fn p_pay_with_reasons(
        &self,
        features: &DataFrame,
    ) -> Result<(Vec<f64>, Vec<Vec<Reason>>), ModelError> {
        self.check_features(features)?;
        let design = self
            .propensity
            .inputs
            .design(features, StrategyInput::Absent)?;
        Ok((
            self.propensity.probabilities_of(&design),
            self.propensity.reasons_of(&design),
        ))
    }

    /// Reason codes of every feature row, from the propensity model.
    pub fn reasons(&self, features: &DataFrame) -> Result<Vec<Vec<Reason>>, ModelError> {
        self.check_features(features)?;
        self.propensity.reasons(features, StrategyInput::Absent)
    }

    /// P(paid | strategy) for every row if `strategy` were applied, or `None`
    /// when the model has no response model.
    pub fn response(
        &self,
        features: &DataFrame,
        strategy: Strategy,
    ) -> Result<Option<Vec<f64>>, ModelError> {
        self.check_features(features)?;
        self.response
            .as_ref()
            .map(|r| r.probabilities(features, StrategyInput::All(strategy)))
            .transpose()
    }
}
