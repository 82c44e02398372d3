//! The model folder: self-contained and versioned. `model.json` holds the
//! version, creation time, training-data hash, feature list,
//! hyper-parameters, scorecards, calibration and held-out metrics; each tree
//! ensemble sits in its own `*.trees.json`; `model_card.md` is for people.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::correction::Correction;
use super::design::InputSpec;
use super::learner::{booster_from_json, booster_json, BoostParams, Learner, Platt, Scorecard};
use super::metrics::Metrics;
use super::train::TrainParams;
use super::{AmountModel, Classifier, LearnerKind, Model, ModelError};
use crate::contract::schema::TABLES;

/// Layout version of `model.json`; a folder with another is refused.
pub const FORMAT: u32 = 1;

/// A learner (and, for trees, a configuration) that was tried, and how it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub kind: LearnerKind,
    /// What was tried, in words.
    #[serde(default)]
    pub label: String,
    /// The tree configuration (none for a scorecard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BoostParams>,
    /// Out-of-fold ROC AUC.
    pub selection_auc: f64,
    /// Out-of-fold log loss, after calibration.
    #[serde(default)]
    pub log_loss: f64,
    /// Out-of-fold metrics after calibration: every row predicted by a model
    /// that did not fit it.
    pub test: Metrics,
    /// Seconds of the cross-fitting.
    pub fit_seconds: f64,
    /// Rows predicted out of fold.
    pub fit_rows: usize,
    /// Trees the refitted model grows: the mean round count of the folds'
    /// early stopping (0 for a scorecard).
    #[serde(default)]
    pub trees: usize,
    #[serde(default)]
    pub scored_per_second: f64,
    /// The doubly robust value of the plan it makes (decision models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionValue>,
    /// Whether this candidate is the one saved.
    #[serde(default)]
    pub chosen: bool,
}

/// What the capacity-constrained plan a candidate makes is worth on
/// out-of-fold rows: the doubly robust mean net value per account.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DecisionValue {
    pub value: f64,
    pub se: f64,
    /// How far it trails the chosen candidate, with the paired standard error.
    pub behind_best: f64,
    pub behind_best_se: f64,
}

/// An amount configuration that was tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AmountCandidate {
    pub label: String,
    pub params: BoostParams,
    /// Out-of-fold root mean squared error on paying rows.
    pub rmse: f64,
    pub trees: usize,
    pub chosen: bool,
}

/// One saved classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierMeta {
    pub kind: LearnerKind,
    pub inputs: InputSpec,
    pub platt: Platt,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scorecard: Option<Scorecard>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trees_file: Option<String>,
    /// The doubly robust correction added to its probabilities, if it was chosen with one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub correction: Option<Correction>,
    /// Why this learner was chosen.
    pub selection: String,
    pub candidates: Vec<Candidate>,
    /// Metrics on the untouched test share, when one was held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<Metrics>,
}

impl ClassifierMeta {
    /// Metrics on rows the model did not fit: the untouched test share if
    /// one was held out, else the chosen candidate's out-of-fold metrics.
    pub fn test(&self) -> &Metrics {
        if let Some(held_out) = &self.held_out {
            return held_out;
        }
        let chosen = self
            .candidates
            .iter()
            .find(|c| c.chosen)
            .or_else(|| self.candidates.iter().find(|c| c.kind == self.kind));
        &chosen
            .expect("the chosen learner is among the candidates")
            .test
    }
}

/// The saved amount model and how it did on held-out payers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AmountMeta {
    pub inputs: InputSpec,
    pub trees_file: String,
    pub test_payers: usize,
    pub mean_observed: f64,
    pub mean_predicted: f64,
    pub mean_absolute_error: f64,
    /// The configurations tried.
    #[serde(default)]
    pub candidates: Vec<AmountCandidate>,
}

/// Everything `model.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format: u32,
    pub version: String,
    pub created_at: String,
    /// `sha256:` of the data folder's table files, by name then content.
    pub data_hash: String,
    pub training_rows: usize,
    /// Features the model reads, in order (numeric, then `product`).
    pub features: Vec<String>,
    pub params: TrainParams,
    pub split: SplitSizes,
    pub propensity: ClassifierMeta,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response: Option<ClassifierMeta>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amount: Option<AmountMeta>,
    /// Where the folder was loaded from, for messages.
    #[serde(skip)]
    pub dir_label: String,
}

/// Rows in each part.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Rows the saved models were refitted on (all but the test share).
    pub fit: usize,
    /// Rows predicted out of fold: the search, calibration and card metrics.
    pub calibration: usize,
    /// The untouched test share.
    pub test: usize,
    #[serde(default)]
    pub folds: usize,
}

/// Hash of the contract tables in a data folder: which data a model saw.
pub fn data_hash(dir: &Path) -> Result<String, ModelError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| folder_error(dir, format!("reading: {e}")))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            TABLES.iter().any(|t| {
                *name == format!("{}.csv", t.name) || *name == format!("{}.parquet", t.name)
            })
        })
        .collect();
    names.sort();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    for name in names {
        hasher.update(name.as_bytes());
        let path = dir.join(&name);
        let mut file =
            fs::File::open(&path).map_err(|e| folder_error(dir, format!("reading {name}: {e}")))?;
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|e| folder_error(dir, format!("reading {name}: {e}")))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

fn folder_error(dir: &Path, message: String) -> ModelError {
    ModelError::Folder {
        dir: dir.display().to_string(),
        message,
    }
}

/// Whether a file name belongs in a model folder.
fn is_model_file(name: &str) -> bool {
    name == "model.json" || name == "model_card.md" || name.ends_with(".trees.json")
}

/// Writes the model folder at `dir`, all or nothing (see [`crate::output::write_folder`]).
pub fn save(dir: &Path, model: &Model, card: &str) -> anyhow::Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let trees = [
        (
            &model.meta.propensity.trees_file,
            Some(&model.propensity.learner),
        ),
        (
            &model
                .meta
                .response
                .as_ref()
                .and_then(|r| r.trees_file.clone()),
            model.response.as_ref().map(|r| &r.learner),
        ),
    ];
    for (name, learner) in trees {
        if let (Some(name), Some(Learner::Boosted(booster))) = (name, learner) {
            files.push((name.clone(), booster_json(booster)?.into_bytes()));
        }
    }
    if let (Some(meta), Some(amount)) = (&model.meta.amount, &model.amount) {
        files.push((
            meta.trees_file.clone(),
            booster_json(&amount.booster)?.into_bytes(),
        ));
    }
    files.push(("model.json".into(), serde_json::to_vec_pretty(&model.meta)?));
    files.push(("model_card.md".into(), card.as_bytes().to_vec()));
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    crate::output::write_folder(dir, "model file", is_model_file, &names, |i, file| {
        file.write_all(&files[i].1)?;
        Ok(())
    })
}

/// Loads a model folder; needs nothing outside it.
pub fn load(dir: &Path) -> Result<Model, ModelError> {
    let read = |name: &str| {
        fs::read_to_string(dir.join(name))
            .map_err(|e| folder_error(dir, format!("reading {name}: {e}")))
    };
    let mut meta: ModelMeta = serde_json::from_str(&read("model.json")?)
        .map_err(|e| folder_error(dir, format!("model.json: {e}")))?;
    if meta.format != FORMAT {
        return Err(folder_error(
            dir,
            format!(
                "model.json has format {}, this version reads {FORMAT}",
                meta.format
            ),
        ));
    }
    meta.dir_label = dir.display().to_string();
    let classifier = |m: &ClassifierMeta| -> Result<Classifier, ModelError> {
        let learner = match (m.kind, &m.scorecard, &m.trees_file) {
            (LearnerKind::Scorecard, Some(card), _) => {
                if card.weights.len() != m.inputs.names().len() {
                    return Err(folder_error(
                        dir,
                        "the scorecard's weights do not match its inputs".into(),
                    ));
                }
                Learner::Scorecard(card.clone())
            }
            (LearnerKind::TreeEnsemble, _, Some(file)) => Learner::Boosted(Box::new(
                booster_from_json(&read(file)?)
                    .map_err(|e| folder_error(dir, format!("{file}: {e}")))?,
            )),
            _ => {
                return Err(folder_error(
                    dir,
                    format!("model.json names a {:?} without its parameters", m.kind),
                ))
            }
        };
        if let Some(c) = &m.correction {
            c.check().map_err(|e| folder_error(dir, e))?;
            if !m.inputs.strategy || c.features.iter().any(|f| !m.inputs.numeric.contains(f)) {
                return Err(folder_error(
                    dir,
                    "the correction reads inputs its model does not have".into(),
                ));
            }
        }
        Ok(Classifier {
            inputs: m.inputs.clone(),
            learner,
            platt: m.platt,
            correction: m.correction.clone(),
        })
    };
    let propensity = classifier(&meta.propensity)?;
    let response = meta.response.as_ref().map(classifier).transpose()?;
    let amount = match &meta.amount {
        Some(a) => Some(AmountModel {
            inputs: a.inputs.clone(),
            booster: Box::new(
                booster_from_json(&read(&a.trees_file)?)
                    .map_err(|e| folder_error(dir, format!("{}: {e}", a.trees_file)))?,
            ),
        }),
        None => None,
    };
    Ok(Model {
        meta,
        propensity,
        response,
        amount,
    })
}
