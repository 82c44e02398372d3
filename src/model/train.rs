//! Training: features for every `outcomes` row; K folds by account
//! (stratified, seeded) for everything that needs predictions on rows a
//! model did not fit — the search over learners and hyper-parameters, Platt
//! calibration and the model card's metrics; then every chosen model refitted
//! on all rows, trees with the round count the folds found. The propensity
//! model is chosen by out-of-fold log loss; the decision models (response and
//! amount) by the doubly robust value of the plan they would make on
//! out-of-fold rows (see [`DecisionJudge`]). An optional untouched test share
//! is held out of all of it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::correction::Correction;
use super::design::{Design, InputSpec, StrategyInput};
use super::folder::{
    data_hash, AmountCandidate, AmountMeta, Candidate, ClassifierMeta, DecisionValue, ModelMeta,
    SplitSizes, FORMAT,
};
use super::learner::{boost, log_loss, BoostParams, Learner, Platt, Scorecard};
use super::metrics::Metrics;
use super::strategy_trees::K;
use super::{AmountModel, Classifier, LearnerKind, Model, ModelError};
use crate::contract::{DataSet, Strategy};
use crate::features::{build, catalog, spine_from_outcomes};

/// Hyper-parameters of training, as given. [`TrainParams::check`] turns them
/// into [`Checked`] parameters, the only kind [`train`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Seed of the folds, the search and the tree ensembles.
    pub seed: u64,
    /// Folds of the cross-fitting (by account, stratified).
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Share of accounts held out of everything for an untouched test (0: none).
    pub test_share: f64,
    /// The first tree configuration tried, and the round limit of all.
    pub trees: BoostParams,
    /// Further tree configurations drawn (seeded) for the search.
    #[serde(default = "default_search")]
    pub search: usize,
    /// The search runs on at most this many rows (a seeded sample of
    /// accounts); the chosen models are refitted on all rows.
    #[serde(default = "default_search_rows")]
    pub search_rows: usize,
    /// An optional wall-clock limit on the search of each of the three
    /// models: configurations past it are not tried (the first two always
    /// are). Off by default, so that the same data and seed give the same
    /// model on any machine; `search_rows` already bounds the work.
    #[serde(default)]
    pub search_seconds: Option<f64>,
    /// L2 penalty of the scorecard (on standardised inputs).
    pub alpha: f64,
    /// Iteration limit of the scorecard's optimiser.
    pub max_iterations: u64,
    /// The scorecard fits on at most this many rows (a seeded sample): a
    /// few dozen weights need no more, and linfa's optimiser is slow.
    #[serde(default = "default_scorecard_rows")]
    pub scorecard_rows: usize,
    /// The learner of the strategy-response model, if not chosen on decision value.
    #[serde(default)]
    pub response_learner: Option<LearnerKind>,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            seed: 42,
            folds: default_folds(),
            test_share: 0.0,
            trees: BoostParams::default(),
            search: default_search(),
            search_rows: default_search_rows(),
            search_seconds: None,
            alpha: 1.0,
            max_iterations: 200,
            scorecard_rows: default_scorecard_rows(),
            response_learner: None,
        }
    }
}

fn default_folds() -> usize {
    5
}
fn default_search() -> usize {
    5
}
fn default_search_rows() -> usize {
    25_000
}
fn default_scorecard_rows() -> usize {
    200_000
}

/// Training parameters that passed [`TrainParams::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checked(TrainParams);

impl std::ops::Deref for Checked {
    type Target = TrainParams;
    fn deref(&self) -> &TrainParams {
        &self.0
    }
}

impl TrainParams {
    /// Checks every field, refusing NaN and out-of-range values with one
    /// message per field.
    pub fn check(self) -> Result<Checked, ModelError> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, field: &str, value: String, range: &str| {
            if !ok {
                problems.push(format!("{field} is {value}, expected {range}"));
            }
        };
        let t = &self.trees;
        need(
            (2..=20).contains(&self.folds),
            "folds",
            self.folds.to_string(),
            "2 to 20",
        );
        need(
            (0.0..=0.5).contains(&self.test_share),
            "test_share",
            self.test_share.to_string(),
            "0 to 0.5",
        );
        need(
            (1..=100_000).contains(&t.iterations),
            "trees.iterations",
            t.iterations.to_string(),
            "1 to 100000",
        );
        need(
            t.learning_rate > 0.0 && t.learning_rate <= 1.0,
            "trees.learning_rate",
            t.learning_rate.to_string(),
            "above 0 and at most 1",
        );
        need(
            (1..=16).contains(&t.max_depth),
            "trees.max_depth",
            t.max_depth.to_string(),
            "1 to 16",
        );
        need(
            t.min_leaf_weight.is_finite() && t.min_leaf_weight >= 0.0,
            "trees.min_leaf_weight",
            t.min_leaf_weight.to_string(),
            "a number of at least 0",
        );
        need(
            t.l2.is_finite() && t.l2 >= 0.0,
            "trees.l2",
            t.l2.to_string(),
            "a number of at least 0",
        );
        need(
            t.early_stopping_rounds >= 1,
            "trees.early_stopping_rounds",
            t.early_stopping_rounds.to_string(),
            "at least 1",
        );
        need(
            self.search <= 50,
            "search",
            self.search.to_string(),
            "0 to 50",
        );
        need(
            self.search_rows >= 1000,
            "search_rows",
            self.search_rows.to_string(),
            "at least 1000",
        );
        need(
            self.search_seconds.is_none_or(|s| s.is_finite() && s > 0.0),
            "search_seconds",
            format!("{:?}", self.search_seconds),
            "a number above 0",
        );
        need(
            self.alpha.is_finite() && self.alpha >= 0.0,
            "alpha",
            self.alpha.to_string(),
            "a number of at least 0",
        );
        need(
            self.max_iterations >= 1,
            "max_iterations",
            self.max_iterations.to_string(),
            "at least 1",
        );
        need(
            self.scorecard_rows >= 100,
            "scorecard_rows",
            self.scorecard_rows.to_string(),
            "at least 100",
        );
        if problems.is_empty() {
            Ok(Checked(self))
        } else {
            Err(ModelError::Params(problems))
        }
    }
}

/// Feature rows of every outcomes row, with what happened.
pub struct Labelled {
    pub features: DataFrame,
    pub paid: Vec<bool>,
    pub strategies: Vec<Strategy>,
    pub amounts: Vec<f64>,
    /// The probability with which the logged strategy was chosen, where recorded.
    pub propensities: Vec<Option<f64>>,
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
                col("propensity").alias("__propensity"),
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
    let propensities: Vec<Option<f64>> = joined
        .column("__propensity")?
        .cast(&DataType::Float64)?
        .f64()?
        .into_iter()
        .collect();
    let features = joined.drop_many(["__paid", "__strategy", "__paid_amount", "__propensity"]);
    Ok(Labelled {
        features,
        paid,
        strategies,
        amounts,
        propensities,
    })
}

/// Which rows go where: an untouched test part, and a fold for every other
/// row, all rows of an account together, stratified by whether it ever paid.
pub struct Folds {
    /// Folds, numbered from 0.
    pub k: usize,
    /// The fold of each labelled row; `None` for test rows.
    pub fold: Vec<Option<usize>>,
    /// Rows of the search (every non-test row, or a seeded sample of accounts).
    pub search: Vec<usize>,
    /// Every non-test row.
    pub work: Vec<usize>,
    pub test: Vec<usize>,
}

impl Folds {
    /// Seeded assignment by account (all rows of an account in one part).
    pub fn new(accounts: &StringChunked, paid: &[bool], params: &TrainParams) -> Folds {
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
        let mut fold = vec![None; paid.len()];
        let (mut work, mut test, mut search) = (Vec::new(), Vec::new(), Vec::new());
        let work_rows = paid.len() as f64 * (1.0 - params.test_share);
        let search_share = (params.search_rows as f64 / work_rows.max(1.0)).min(1.0);
        for group in [&mut payers, &mut others] {
            group.shuffle(&mut rng);
            let n = group.len() as f64;
            let tests = (n * params.test_share).round() as usize;
            let searched = tests + ((n - tests as f64) * search_share).round() as usize;
            for (k, id) in group.iter().enumerate() {
                let rows = &rows_of[id];
                if k < tests {
                    test.extend(rows);
                    continue;
                }
                for &row in rows {
                    fold[row] = Some((k - tests) % params.folds);
                }
                work.extend(rows);
                if k < searched {
                    search.extend(rows);
                }
            }
        }
        for part in [&mut work, &mut test, &mut search] {
            part.sort_unstable();
        }
        Folds {
            k: params.folds,
            fold,
            search,
            work,
            test,
        }
    }

    /// Search rows outside fold `f` (to fit on) and inside it (to predict).
    fn split(&self, f: usize) -> (Vec<usize>, Vec<usize>) {
        self.search
            .iter()
            .partition(|&&row| self.fold[row] != Some(f))
    }
}

/// The rows less every tenth, and those tenths: trees stop growing when they
/// no longer help on rows they do not fit.
fn less_every_tenth(rows: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (mut fit, mut stop) = (Vec::new(), Vec::new());
    for (k, &row) in rows.iter().enumerate() {
        if k % 10 == 0 {
            stop.push(row);
        } else {
            fit.push(row);
        }
    }
    (fit, stop)
}

/// At most `limit` of `rows`, a seeded sample in row order (all when fewer).
fn sample(rows: &[usize], limit: usize, seed: u64) -> Vec<usize> {
    let mut all = rows.to_vec();
    if all.len() > limit {
        all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed.wrapping_add(1)));
        all.truncate(limit);
        all.sort_unstable();
    }
    all
}

fn pick<T: Copy>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| values[i]).collect()
}

/// The tree configurations of the search: the given one first, then
/// `search` more drawn with the seed.
pub fn search_space(params: &TrainParams) -> Vec<BoostParams> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x7365_6172_6368);
    let mut out = vec![params.trees];
    let mut tries = 0;
    while out.len() < 1 + params.search && tries < 1000 {
        tries += 1;
        let draw = BoostParams {
            max_depth: [3, 4, 5, 6, 7][rng.random_range(0..5)],
            learning_rate: [0.03, 0.05, 0.08, 0.12][rng.random_range(0..4)],
            min_leaf_weight: [1.0, 5.0, 20.0, 50.0, 100.0][rng.random_range(0..5)],
            l2: [0.1, 1.0, 3.0, 10.0][rng.random_range(0..4)],
            ..params.trees
        };
        if !out.contains(&draw) {
            out.push(draw);
        }
    }
    out
}

/// The features the interaction scorecard crosses with each strategy: those
/// whose direction is not fixed (so that no interaction can turn a
/// constrained feature round), which say how reachable and how large an
/// account is.
pub const INTERACTIONS: &[&str] = &[
    "balance",
    "utilisation",
    "right_party_rate_180d",
    "days_since_last_contact",
];

/// A short label of a tree configuration, for the model card.
pub fn describe_trees(t: &BoostParams) -> String {
    format!(
        "trees: depth {}, learning rate {}, min leaf weight {}, L2 {}",
        t.max_depth, t.learning_rate, t.min_leaf_weight, t.l2
    )
}

/// What one configuration learnt across the folds.
#[derive(Clone)]
struct OutOfFold {
    /// Raw scores (log-odds, or amounts) of every search row, in `search` order;
    /// for a strategy model, under every strategy.
    raw: Vec<[f64; K]>,
    /// Raw score under the logged strategy (or the only one).
    logged: Vec<f64>,
    /// Mean best round count over the folds (0 for a scorecard).
    rounds: usize,
    seconds: f64,
}

/// How a configuration is fitted.
#[derive(Clone, Copy)]
enum Fit<'a> {
    Trees(&'a BoostParams),
    Scorecard,
}

/// Fits `how` on each fold's other rows and predicts the fold's rows.
/// `target` is 0/1 for a classifier (`classify`), an amount otherwise;
/// `fit_filter` keeps only some rows to fit on (the payers, for amounts);
/// with `all_strategies` the fold's rows are also scored under every strategy.
#[allow(clippy::too_many_arguments)]
fn cross_fit(
    how: Fit,
    design: &Design,
    target: &[f64],
    classify: bool,
    folds: &Folds,
    fit_filter: &(dyn Fn(usize) -> bool + Sync),
    all_strategies: bool,
    params: &Checked,
) -> Result<OutOfFold, ModelError> {
    let started = Instant::now();
    let position: HashMap<usize, usize> = folds
        .search
        .iter()
        .enumerate()
        .map(|(k, &row)| (row, k))
        .collect();
    let n = folds.search.len();
    let mut raw = vec![[0.0; K]; n];
    let mut logged = vec![0.0; n];
    let mut rounds = Vec::new();
    let fit_fold = |f: usize| -> Result<Option<(Learner, Vec<usize>)>, ModelError> {
        let (fit_rows, held) = folds.split(f);
        let fit_rows: Vec<usize> = fit_rows.into_iter().filter(|&r| fit_filter(r)).collect();
        if held.is_empty() || fit_rows.is_empty() {
            return Ok(None);
        }
        let learner = match how {
            Fit::Trees(trees) => {
                let (fit, stop) = less_every_tenth(&fit_rows);
                Learner::Boosted(Box::new(boost(
                    &design.take(&fit),
                    &pick(target, &fit),
                    Some((&design.take(&stop), &pick(target, &stop))),
                    classify,
                    trees,
                )?))
            }
            Fit::Scorecard => {
                let rows = sample(&fit_rows, params.scorecard_rows, params.seed + f as u64);
                let paid: Vec<bool> = rows.iter().map(|&r| target[r] > 0.5).collect();
                Learner::Scorecard(Scorecard::fit(
                    &design.take(&rows),
                    &paid,
                    params.alpha,
                    params.max_iterations,
                )?)
            }
        };
        Ok(Some((learner, held)))
    };
    // The scorecard's solver runs on one core: its folds are fitted side by
    // side. The trees' fitting is parallel already, so their folds go in turn.
    let fitted: Vec<Option<(Learner, Vec<usize>)>> = match how {
        Fit::Scorecard => {
            use rayon::prelude::*;
            (0..folds.k)
                .into_par_iter()
                .map(fit_fold)
                .collect::<Result<_, _>>()?
        }
        Fit::Trees(_) => (0..folds.k).map(fit_fold).collect::<Result<_, _>>()?,
    };
    for (learner, held) in fitted.into_iter().flatten() {
        if let Learner::Boosted(booster) = &learner {
            rounds.push(booster.prediction_iteration.unwrap_or(booster.trees.len()));
        }
        let mut held_design = design.take(&held);
        for (row, score) in held.iter().zip(learner.raw(&held_design)) {
            logged[position[row]] = score;
        }
        if all_strategies {
            match learner.raw_all_strategies(&held_design) {
                Some(all) => {
                    for (row, scores) in held.iter().zip(all) {
                        raw[position[row]] = scores;
                    }
                }
                None => {
                    for s in Strategy::ALL {
                        held_design.set_strategy(s);
                        for (row, score) in held.iter().zip(learner.raw(&held_design)) {
                            raw[position[row]][s as usize] = score;
                        }
                    }
                }
            }
        } else {
            for row in &held {
                raw[position[row]] = [logged[position[row]]; K];
            }
        }
    }
    let rounds = if rounds.is_empty() {
        0
    } else {
        (rounds.iter().sum::<usize>() as f64 / rounds.len() as f64).round() as usize
    };
    Ok(OutOfFold {
        raw,
        logged,
        rounds: rounds.max(usize::from(matches!(how, Fit::Trees(_)))),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Fits the chosen configuration on `rows`: trees with `rounds` rounds, no early stopping.
fn refit(
    how: Fit,
    rounds: usize,
    design: &Design,
    target: &[f64],
    classify: bool,
    rows: &[usize],
    params: &Checked,
) -> Result<Learner, ModelError> {
    Ok(match how {
        Fit::Trees(trees) => {
            let fixed = BoostParams {
                iterations: rounds.max(1),
                ..*trees
            };
            Learner::Boosted(Box::new(boost(
                &design.take(rows),
                &pick(target, rows),
                None,
                classify,
                &fixed,
            )?))
        }
        Fit::Scorecard => {
            let rows = sample(rows, params.scorecard_rows, params.seed);
            let paid: Vec<bool> = rows.iter().map(|&r| target[r] > 0.5).collect();
            Learner::Scorecard(Scorecard::fit(
                &design.take(&rows),
                &paid,
                params.alpha,
                params.max_iterations,
            )?)
        }
    })
}

/// Judges the plan that candidate decision models would make, on the
/// out-of-fold rows of the search. Implemented by the strategy engine, which
/// knows the rules, costs and capacities (the model layer does not).
pub trait DecisionJudge: Sync {
    /// The doubly robust value per row of the capacity-constrained plan that
    /// values `p` × `a` (net of cost) make for the labelled `rows`, with the
    /// direct part from `reference` (P(paid) and amounts under every
    /// strategy): one term per row, whose mean is the value.
    fn terms(
        &self,
        rows: &[usize],
        p: &[[f64; K]],
        a: &[[f64; K]],
        reference: (&[[f64; K]], &[[f64; K]]),
    ) -> Vec<f64>;
}

fn mean_and_se(terms: &[f64]) -> (f64, f64) {
    let n = terms.len().max(1) as f64;
    let mean = terms.iter().sum::<f64>() / n;
    let var = terms.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// A trained model, with its out-of-fold (or, with a test share, held-out)
/// rows: `account_id`, `as_of`, `paid`, and the propensity model's calibrated `p_pay`.
pub struct Trained {
    pub model: Model,
    pub holdout: DataFrame,
}

/// The search of one classifier: each candidate's out-of-fold scores.
struct Searched {
    how: LearnerKind,
    trees: Option<BoostParams>,
    /// Inputs of its own (the interaction scorecard), else the shared ones.
    inputs: Option<InputSpec>,
    oof: OutOfFold,
    platt: Platt,
    /// Out-of-fold calibrated P(paid) under the logged strategy.
    calibrated: Vec<f64>,
    log_loss: f64,
    /// A doubly robust correction of the pooled model: the one fitted on
    /// every search row (to ship), and the cross-fitted probabilities under
    /// every strategy it gives out of fold.
    correction: Option<(Correction, Vec<[f64; K]>)>,
}

#[allow(clippy::too_many_arguments)]
fn search_classifier(
    what: &str,
    design: &Design,
    target: &[f64],
    folds: &Folds,
    all_strategies: bool,
    kinds: &[LearnerKind],
    params: &Checked,
    progress: &dyn Fn(&str),
) -> Result<Vec<Searched>, ModelError> {
    let started = Instant::now();
    let paid: Vec<bool> = pick(target, &folds.search)
        .into_iter()
        .map(|t| t > 0.5)
        .collect();
    let mut out = Vec::new();
    let space = search_space(params);
    let mut tried = Vec::new();
    if kinds.contains(&LearnerKind::Scorecard) {
        tried.push((LearnerKind::Scorecard, None));
    }
    if kinds.contains(&LearnerKind::TreeEnsemble) {
        tried.extend(space.iter().map(|t| (LearnerKind::TreeEnsemble, Some(*t))));
    }
    for (k, (kind, trees)) in tried.into_iter().enumerate() {
        if k >= 2
            && params
                .search_seconds
                .is_some_and(|limit| started.elapsed().as_secs_f64() > limit)
        {
            tracing::info!(what, "search time used up after {k} candidates");
            break;
        }
        progress(&format!(
            "cross-fitting the {what} model: {} ({} folds)",
            trees
                .as_ref()
                .map_or_else(|| kind.label().to_string(), describe_trees),
            folds.k
        ));
        let how = match &trees {
            Some(t) => Fit::Trees(t),
            None => Fit::Scorecard,
        };
        let oof = cross_fit(
            how,
            design,
            target,
            true,
            folds,
            &|_| true,
            all_strategies,
            params,
        )?;
        let platt = Platt::fit(&oof.logged, &paid);
        let calibrated: Vec<f64> = oof.logged.iter().map(|&s| platt.probability(s)).collect();
        let log_loss = log_loss(&calibrated, &paid);
        tracing::info!(
            what,
            candidate = k,
            log_loss,
            seconds = oof.seconds,
            "cross-fitted"
        );
        out.push(Searched {
            how: kind,
            trees,
            inputs: None,
            oof,
            platt,
            calibrated,
            log_loss,
            correction: None,
        });
    }
    Ok(out)
}

fn candidate_meta(s: &Searched, paid: &[bool], strategies: &[&str], rows: usize) -> Candidate {
    let metrics = Metrics::of(&s.calibrated, paid, Some(strategies));
    Candidate {
        kind: s.how,
        label: match (&s.trees, &s.inputs) {
            (Some(trees), _) if s.correction.is_some() => {
                let c = &s.correction.as_ref().expect("checked").0;
                format!(
                    "{} with a DR-learner correction per strategy ({})",
                    describe_trees(trees),
                    if c.features.is_empty() {
                        "intercept only".to_string()
                    } else {
                        format!("{}, ridge {}", c.features.join(", "), c.ridge)
                    }
                )
            }
            (Some(trees), _) => describe_trees(trees),
            (None, Some(inputs)) => format!(
                "logistic scorecard with strategy × feature interactions ({})",
                inputs.interactions.join(", ")
            ),
            (None, None) => s.how.label().to_string(),
        },
        params: s.trees,
        selection_auc: metrics.roc_auc,
        log_loss: s.log_loss,
        test: metrics,
        fit_seconds: s.oof.seconds,
        fit_rows: rows,
        trees: s.oof.rounds,
        scored_per_second: 0.0,
        decision: None,
        chosen: false,
    }
}

/// Trains the models on every `outcomes` row of `data` (read from `data_dir`).
/// Without a `judge` (or without logged propensities) the decision models
/// are chosen by out-of-fold log loss and squared error.
pub fn train(
    data: &DataSet,
    data_dir: &Path,
    params: TrainParams,
    judge: Option<&dyn DecisionJudge>,
    progress: &dyn Fn(&str),
) -> Result<Trained, ModelError> {
    let params = params.check()?;
    progress("computing features of every outcomes row");
    let labelled = labelled(data)?;
    train_labelled(&labelled, data_dir, params, judge, progress)
}

/// [`train`] on rows already labelled (see [`labelled`]).
pub fn train_labelled(
    labelled: &Labelled,
    data_dir: &Path,
    params: Checked,
    judge: Option<&dyn DecisionJudge>,
    progress: &dyn Fn(&str),
) -> Result<Trained, ModelError> {
    let rows = labelled.paid.len();
    let payers = labelled.paid.iter().filter(|&&p| p).count();
    if payers < 10 || rows - payers < 10 {
        return Err(ModelError::Invalid(format!(
            "outcomes hold {payers} paid and {} unpaid rows; training needs at least 10 of each",
            rows - payers
        )));
    }
    let accounts = labelled.features.column("account_id")?.str()?.clone();
    let folds = Folds::new(&accounts, &labelled.paid, &params);
    let numeric = catalog::numeric_names();
    let target: Vec<f64> = labelled
        .paid
        .iter()
        .map(|&p| f64::from(u8::from(p)))
        .collect();
    let search_paid = pick(&labelled.paid, &folds.search);
    let strategy_names: Vec<&str> = labelled.strategies.iter().map(|s| s.as_str()).collect();
    let search_strategies = pick(&strategy_names, &folds.search);

    // Propensity: P(paid) without the strategy, chosen by out-of-fold log loss.
    let inputs = InputSpec::for_training(&labelled.features, &numeric, false)?;
    let design = inputs.design(&labelled.features, StrategyInput::Absent)?;
    let both = [LearnerKind::Scorecard, LearnerKind::TreeEnsemble];
    let searched = search_classifier(
        "propensity",
        &design,
        &target,
        &folds,
        false,
        &both,
        &params,
        progress,
    )?;
    let best = (0..searched.len())
        .min_by(|&a, &b| searched[a].log_loss.total_cmp(&searched[b].log_loss))
        .expect("at least one candidate");
    let mut candidates: Vec<Candidate> = searched
        .iter()
        .map(|s| candidate_meta(s, &search_paid, &search_strategies, folds.search.len()))
        .collect();
    candidates[best].chosen = true;
    let chosen = &searched[best];
    let selection = format!(
        "{}: out-of-fold log loss {:.5}, the lowest of {} candidates{}",
        candidates[best].label,
        chosen.log_loss,
        searched.len(),
        match searched
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != best)
            .min_by(|a, b| a.1.log_loss.total_cmp(&b.1.log_loss))
        {
            Some((k, s)) => format!(" (next: {}, {:.5})", candidates[k].label, s.log_loss),
            None => String::new(),
        }
    );
    progress("refitting the propensity model on all rows");
    let how = match &chosen.trees {
        Some(t) => Fit::Trees(t),
        None => Fit::Scorecard,
    };
    let (propensity, propensity_meta) = finish_classifier(
        "propensity",
        chosen,
        how,
        (inputs, &design),
        labelled,
        &folds,
        (selection, candidates),
        &params,
    )?;
    let propensity_oof = chosen.calibrated.clone();
    drop(searched);

    let mut logged: Vec<Strategy> = labelled.strategies.clone();
    logged.sort_unstable();
    logged.dedup();
    let amounts_recorded = labelled
        .paid
        .iter()
        .zip(&labelled.amounts)
        .any(|(&p, &a)| p && a > 0.0);
    let (response, response_meta, amount, amount_meta) = if logged.len() > 1 {
        let decision =
            fit_decision_models(labelled, &folds, judge, &params, progress, amounts_recorded)?;
        (Some(decision.0), Some(decision.1), decision.2, decision.3)
    } else {
        // One strategy logged: nothing to tell strategies apart; amounts by the propensity inputs.
        let (amount, meta) = if amounts_recorded {
            let inputs = propensity.inputs.clone();
            let design = inputs.design(&labelled.features, StrategyInput::Absent)?;
            let (model, meta, _) =
                fit_amount(inputs, &design, labelled, &folds, false, &params, progress)?;
            (Some(model), Some(meta))
        } else {
            (None, None)
        };
        (None, None, amount, meta)
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
        params: *params,
        split: SplitSizes {
            fit: folds.work.len(),
            calibration: folds.search.len(),
            test: folds.test.len(),
            folds: folds.k,
        },
        propensity: propensity_meta,
        response: response_meta,
        amount: amount_meta,
        dir_label: String::new(),
    };
    // The rows a data scientist may judge the propensity model on: the
    // untouched test rows, or else the out-of-fold rows of the search.
    let (rows_shown, p_shown) = if folds.test.is_empty() {
        (folds.search.clone(), propensity_oof)
    } else {
        let test = propensity
            .inputs
            .design(&labelled.features, StrategyInput::Absent)?
            .take(&folds.test);
        (folds.test.clone(), propensity.probabilities_of(&test))
    };
    let take = IdxCa::from_vec(
        "rows".into(),
        rows_shown.iter().map(|&i| i as IdxSize).collect(),
    );
    let mut holdout = labelled
        .features
        .select(["account_id", "as_of"])?
        .take(&take)?;
    holdout.with_column(Column::new(
        "paid".into(),
        pick(&labelled.paid, &rows_shown),
    ))?;
    holdout.with_column(Column::new("p_pay".into(), p_shown))?;
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

/// The chosen classifier refitted on every row, with what `model.json`
/// keeps of it (and its metrics on the untouched test rows, if any).
#[allow(clippy::too_many_arguments)]
fn finish_classifier(
    what: &str,
    chosen: &Searched,
    how: Fit,
    (inputs, design): (InputSpec, &Design),
    labelled: &Labelled,
    folds: &Folds,
    (selection, candidates): (String, Vec<Candidate>),
    params: &Checked,
) -> Result<(Classifier, ClassifierMeta), ModelError> {
    let target: Vec<f64> = labelled
        .paid
        .iter()
        .map(|&p| f64::from(u8::from(p)))
        .collect();
    let learner = refit(
        how,
        chosen.oof.rounds,
        design,
        &target,
        true,
        &folds.work,
        params,
    )?;
    let classifier = Classifier {
        inputs: inputs.clone(),
        learner,
        platt: chosen.platt,
        correction: chosen.correction.as_ref().map(|(c, _)| c.clone()),
    };
    let held_out = (!folds.test.is_empty()).then(|| {
        let names: Vec<&str> = labelled.strategies.iter().map(|s| s.as_str()).collect();
        Metrics::of(
            &classifier.probabilities_of(&design.take(&folds.test)),
            &pick(&labelled.paid, &folds.test),
            Some(&pick(&names, &folds.test)),
        )
    });
    let meta = ClassifierMeta {
        kind: chosen.how,
        inputs,
        platt: chosen.platt,
        scorecard: match &classifier.learner {
            Learner::Scorecard(card) => Some(card.clone()),
            Learner::Boosted(_) => None,
        },
        trees_file: (chosen.how == LearnerKind::TreeEnsemble).then(|| format!("{what}.trees.json")),
        correction: chosen.correction.as_ref().map(|(c, _)| c.clone()),
        selection,
        candidates,
        held_out,
    };
    Ok((classifier, meta))
}

type DecisionModels = (
    Classifier,
    ClassifierMeta,
    Option<AmountModel>,
    Option<AmountMeta>,
);

/// The response and amount models. The amount model is chosen by
/// out-of-fold squared error on payers; the response model by the doubly
/// robust value of the plan each candidate would make with that amount model
/// on out-of-fold rows (or by log loss without a judge).
fn fit_decision_models(
    labelled: &Labelled,
    folds: &Folds,
    judge: Option<&dyn DecisionJudge>,
    params: &Checked,
    progress: &dyn Fn(&str),
    amounts_recorded: bool,
) -> Result<DecisionModels, ModelError> {
    let numeric = catalog::numeric_names();
    let inputs = InputSpec::for_training(&labelled.features, &numeric, true)?;
    let design = inputs.design(
        &labelled.features,
        StrategyInput::PerRow(&labelled.strategies),
    )?;
    let target: Vec<f64> = labelled
        .paid
        .iter()
        .map(|&p| f64::from(u8::from(p)))
        .collect();
    let (amount, amount_meta, amount_oof) = if amounts_recorded {
        let (model, meta, oof) = fit_amount(
            inputs.clone(),
            &design,
            labelled,
            folds,
            true,
            params,
            progress,
        )?;
        (Some(model), Some(meta), Some(oof))
    } else {
        (None, None, None)
    };
    let kinds: Vec<LearnerKind> = match params.response_learner {
        Some(kind) => vec![kind],
        None => vec![LearnerKind::Scorecard, LearnerKind::TreeEnsemble],
    };
    let searched = search_classifier(
        "response", &design, &target, folds, true, &kinds, params, progress,
    )?;
    let mut searched = searched;
    let search_paid = pick(&labelled.paid, &folds.search);
    // A scorecard that can tell for whom a strategy works: the features
    // whose direction is not fixed enter once more per strategy.
    let interacting = InputSpec {
        interactions: INTERACTIONS.iter().map(|s| s.to_string()).collect(),
        ..inputs.clone()
    };
    let interacting_design = if kinds.contains(&LearnerKind::Scorecard) {
        progress("cross-fitting the response model: scorecard with interactions");
        let design = interacting.design(
            &labelled.features,
            StrategyInput::PerRow(&labelled.strategies),
        )?;
        let oof = cross_fit(
            Fit::Scorecard,
            &design,
            &target,
            true,
            folds,
            &|_| true,
            true,
            params,
        )?;
        let platt = Platt::fit(&oof.logged, &search_paid);
        let calibrated: Vec<f64> = oof.logged.iter().map(|&s| platt.probability(s)).collect();
        let log_loss = log_loss(&calibrated, &search_paid);
        searched.push(Searched {
            how: LearnerKind::Scorecard,
            trees: None,
            inputs: Some(interacting.clone()),
            oof,
            platt,
            calibrated,
            log_loss,
            correction: None,
        });
        Some(design)
    } else {
        None
    };
    if let Some(corrected) = dr_candidates(&searched, &design, labelled, folds, progress) {
        searched.extend(corrected);
    }
    let strategy_names: Vec<&str> = labelled.strategies.iter().map(|s| s.as_str()).collect();
    let search_strategies = pick(&strategy_names, &folds.search);
    let mut candidates: Vec<Candidate> = searched
        .iter()
        .map(|s| candidate_meta(s, &search_paid, &search_strategies, folds.search.len()))
        .collect();
    // Calibrated P(paid) under every strategy, for each candidate.
    let probabilities: Vec<Vec<[f64; K]>> = searched
        .iter()
        .map(|s| match &s.correction {
            Some((_, corrected)) => corrected.clone(),
            None => s
                .oof
                .raw
                .iter()
                .map(|row| std::array::from_fn(|k| s.platt.probability(row[k])))
                .collect(),
        })
        .collect();
    let with_propensity = folds
        .search
        .iter()
        .filter(|&&r| labelled.propensities[r].is_some())
        .count();
    let judged = match (judge, &amount_oof) {
        (Some(judge), Some(a)) if with_propensity * 2 >= folds.search.len() => {
            progress("judging each candidate's plan on out-of-fold rows");
            // The direct part of every estimate comes from one reference
            // (the first tree candidate, else the first): differences
            // between candidates are then differences of their plans alone.
            let reference = searched
                .iter()
                .position(|s| s.how == LearnerKind::TreeEnsemble)
                .unwrap_or(0);
            let terms: Vec<Vec<f64>> = probabilities
                .iter()
                .map(|p| judge.terms(&folds.search, p, a, (&probabilities[reference], a)))
                .collect();
            Some(terms)
        }
        _ => None,
    };
    // The candidate with the lowest out-of-fold log loss stands unless
    // another's plan is worth more by more than the paired standard error
    // of the difference: the values of plans are noisy at these sizes, and a
    // gain within the noise is no reason to move.
    let incumbent = (0..searched.len())
        .min_by(|&x, &y| searched[x].log_loss.total_cmp(&searched[y].log_loss))
        .expect("at least one candidate");
    let paired = |terms: &[Vec<f64>], a: usize, b: usize| -> (f64, f64) {
        let gap: Vec<f64> = terms[a].iter().zip(&terms[b]).map(|(x, y)| x - y).collect();
        mean_and_se(&gap)
    };
    let best = match &judged {
        Some(terms) => (0..terms.len())
            .filter(|&k| {
                let (gain, se) = paired(terms, k, incumbent);
                k == incumbent || gain > se
            })
            .max_by(|&x, &y| {
                mean_and_se(&terms[x])
                    .0
                    .total_cmp(&mean_and_se(&terms[y]).0)
            })
            .expect("the incumbent at least"),
        None => incumbent,
    };
    let selection = match &judged {
        Some(terms) => {
            for (k, c) in candidates.iter_mut().enumerate() {
                let (value, se) = mean_and_se(&terms[k]);
                let (behind, behind_se) = paired(terms, best, k);
                c.decision = Some(DecisionValue {
                    value,
                    se,
                    behind_best: behind,
                    behind_best_se: behind_se,
                });
            }
            let (value, se) = mean_and_se(&terms[best]);
            let why = if best == incumbent {
                "the lowest out-of-fold log loss, and no other candidate's plan is worth more by more than the paired standard error".to_string()
            } else {
                let (gain, gain_se) = paired(terms, best, incumbent);
                format!(
                    "its plan is worth {gain:.4} per account more than that of {}, which has the lowest out-of-fold log loss (paired standard error {gain_se:.4})",
                    candidates[incumbent].label
                )
            };
            format!(
                "{}: doubly robust value of its capacity-constrained plan on {} out-of-fold rows {value:.4} per account (standard error {se:.4}), among {} candidates; chosen because {why}",
                candidates[best].label,
                folds.search.len(),
                terms.len(),
            )
        }
        None => format!(
            "{}: out-of-fold log loss {:.5}, the lowest of {} candidates (no logged propensities or amounts to judge plans by)",
            candidates[best].label,
            searched[best].log_loss,
            searched.len()
        ),
    };
    candidates[best].chosen = true;
    let chosen = &searched[best];
    progress("refitting the response model on all rows");
    let how = match &chosen.trees {
        Some(t) => Fit::Trees(t),
        None => Fit::Scorecard,
    };
    let (inputs, design) = match (&chosen.inputs, &interacting_design) {
        (Some(own), Some(own_design)) => (own.clone(), own_design),
        _ => (inputs, &design),
    };
    let (response, meta) = finish_classifier(
        "response",
        chosen,
        how,
        (inputs, design),
        labelled,
        folds,
        (selection, candidates),
        params,
    )?;
    Ok((response, meta, amount, amount_meta))
}

/// Doubly robust (DR-learner) corrections of the pooled trees with the
/// lowest out-of-fold log loss (see [`Correction`]): one per strategy with
/// an intercept only, and one that also reads [`INTERACTIONS`]. Each is
/// cross-fitted on the same folds as the pooled model's out-of-fold
/// probabilities, and fitted on every search row to ship. `None` without
/// tree candidates or when a search row lacks its logged propensity.
fn dr_candidates(
    searched: &[Searched],
    design: &Design,
    labelled: &Labelled,
    folds: &Folds,
    progress: &dyn Fn(&str),
) -> Option<Vec<Searched>> {
    let base = searched
        .iter()
        .filter(|s| s.trees.is_some() && s.inputs.is_none() && s.correction.is_none())
        .min_by(|a, b| a.log_loss.total_cmp(&b.log_loss))?;
    let propensity: Vec<f64> = folds
        .search
        .iter()
        .map(|&r| labelled.propensities[r])
        .collect::<Option<_>>()?;
    progress("cross-fitting DR-learner corrections of the pooled trees");
    let q: Vec<[f64; K]> = base
        .oof
        .raw
        .iter()
        .map(|row| std::array::from_fn(|k| base.platt.probability(row[k])))
        .collect();
    let logged: Vec<usize> = pick(&labelled.strategies, &folds.search)
        .into_iter()
        .map(|s| s as usize)
        .collect();
    let paid = pick(&labelled.paid, &folds.search);
    let fold: Vec<usize> = folds
        .search
        .iter()
        .map(|&r| folds.fold[r].unwrap_or(0))
        .collect();
    let mut out = Vec::new();
    for (features, ridge) in [(&[][..], 0.0), (INTERACTIONS, 0.25)] {
        let names: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let columns: Vec<usize> = names
            .iter()
            .map(|n| design.names.iter().position(|m| m == n))
            .collect::<Option<_>>()?;
        let z: Vec<Vec<f64>> = folds
            .search
            .iter()
            .map(|&r| columns.iter().map(|&j| design.column(j)[r]).collect())
            .collect();
        let fit_on = |keep: &dyn Fn(usize) -> bool| {
            let rows: Vec<usize> = (0..z.len()).filter(|&k| keep(k)).collect();
            Correction::fit(
                &names,
                &rows.iter().map(|&k| z[k].clone()).collect::<Vec<_>>(),
                &pick(&q, &rows),
                &pick(&logged, &rows),
                &pick(&paid, &rows),
                &pick(&propensity, &rows),
                ridge,
            )
        };
        let mut corrected = q.clone();
        for f in 0..folds.k {
            let c = fit_on(&|k| fold[k] != f);
            for k in (0..z.len()).filter(|&k| fold[k] == f) {
                for (s, p) in corrected[k].iter_mut().enumerate() {
                    *p = c.apply(q[k][s], &z[k], s);
                }
            }
        }
        let calibrated: Vec<f64> = corrected
            .iter()
            .zip(&logged)
            .map(|(row, &s)| row[s])
            .collect();
        let log_loss = log_loss(&calibrated, &paid);
        out.push(Searched {
            how: base.how,
            trees: base.trees,
            inputs: None,
            oof: base.oof.clone(),
            platt: base.platt,
            calibrated,
            log_loss,
            correction: Some((fit_on(&|_| true), corrected)),
        });
    }
    Some(out)
}

/// Expected amount if paid: trees on the paying rows, the configuration
/// chosen by out-of-fold squared error on paying search rows, refitted on
/// every paying row. Returns the out-of-fold amounts of every search row
/// under every strategy (the logged one when `strategies` is `None`).
fn fit_amount(
    inputs: InputSpec,
    design: &Design,
    labelled: &Labelled,
    folds: &Folds,
    all_strategies: bool,
    params: &Checked,
    progress: &dyn Fn(&str),
) -> Result<(AmountModel, AmountMeta, Vec<[f64; K]>), ModelError> {
    let started = Instant::now();
    let paying = |row: usize| labelled.paid[row];
    let search_payers: Vec<usize> = (0..folds.search.len())
        .filter(|&k| labelled.paid[folds.search[k]])
        .collect();
    let observed: Vec<f64> = search_payers
        .iter()
        .map(|&k| labelled.amounts[folds.search[k]])
        .collect();
    let mut best: Option<(f64, BoostParams, OutOfFold)> = None;
    let mut tried = Vec::new();
    for (k, trees) in search_space(params).iter().enumerate() {
        if k >= 2
            && params
                .search_seconds
                .is_some_and(|limit| started.elapsed().as_secs_f64() > limit)
        {
            break;
        }
        progress(&format!(
            "cross-fitting the amount model: {} ({} folds)",
            describe_trees(trees),
            folds.k
        ));
        let oof = cross_fit(
            Fit::Trees(trees),
            design,
            &labelled.amounts,
            false,
            folds,
            &paying,
            all_strategies,
            params,
        )?;
        let predicted: Vec<f64> = search_payers
            .iter()
            .map(|&k| oof.logged[k].max(0.0))
            .collect();
        let rmse = (predicted
            .iter()
            .zip(&observed)
            .map(|(p, o)| (p - o).powi(2))
            .sum::<f64>()
            / observed.len().max(1) as f64)
            .sqrt();
        tried.push(AmountCandidate {
            label: describe_trees(trees),
            params: *trees,
            rmse,
            trees: oof.rounds,
            chosen: false,
        });
        if best.as_ref().is_none_or(|(r, _, _)| rmse < *r) {
            best = Some((rmse, *trees, oof));
        }
    }
    let (_, trees, oof) = best.expect("the first configuration is always tried");
    for c in &mut tried {
        c.chosen = c.params == trees;
    }
    progress("refitting the amount model on all paying rows");
    let payers: Vec<usize> = folds.work.iter().copied().filter(|&r| paying(r)).collect();
    let Learner::Boosted(booster) = refit(
        Fit::Trees(&trees),
        oof.rounds,
        design,
        &labelled.amounts,
        false,
        &payers,
        params,
    )?
    else {
        unreachable!("amounts are fitted by trees")
    };
    let model = AmountModel {
        inputs: inputs.clone(),
        booster,
    };
    let predicted: Vec<f64> = search_payers
        .iter()
        .map(|&k| oof.logged[k].max(0.0))
        .collect();
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
        candidates: tried,
    };
    let all: Vec<[f64; K]> = oof
        .raw
        .iter()
        .map(|row| std::array::from_fn(|k| row[k].max(0.0)))
        .collect();
    Ok((model, meta, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_refused_with_one_message_per_field() {
        let mut params = TrainParams::default();
        params.trees.learning_rate = f32::NAN;
        params.folds = 1;
        params.alpha = f64::INFINITY;
        params.test_share = -0.1;
        let Err(ModelError::Params(problems)) = params.check() else {
            panic!("accepted");
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        for field in ["trees.learning_rate", "folds", "alpha", "test_share"] {
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{field} not named in {problems:?}"
            );
        }
        assert!(TrainParams::default().check().is_ok());
    }

    #[test]
    fn folds_keep_accounts_together_and_hold_the_test_share_out() {
        let ids: Vec<String> = (0..900).map(|i| format!("a{}", i / 3)).collect();
        let accounts =
            StringChunked::from_iter_values("account_id".into(), ids.iter().map(String::as_str));
        let paid: Vec<bool> = (0..900).map(|i| (i / 3) % 4 == 0).collect();
        let params = TrainParams {
            test_share: 0.2,
            folds: 5,
            ..TrainParams::default()
        };
        let folds = Folds::new(&accounts, &paid, &params);
        assert_eq!(folds.test.len() + folds.work.len(), 900);
        assert_eq!(folds.search, folds.work, "a small book is searched whole");
        assert!(
            (folds.test.len() as f64 - 180.0).abs() <= 6.0,
            "{}",
            folds.test.len()
        );
        for chunk in (0..900).collect::<Vec<_>>().chunks(3) {
            let parts: Vec<Option<usize>> = chunk.iter().map(|&i| folds.fold[i]).collect();
            assert!(
                parts.iter().all(|p| *p == parts[0]),
                "account split: {parts:?}"
            );
        }
        for f in 0..5 {
            let (rest, held) = folds.split(f);
            assert!(!held.is_empty() && rest.len() + held.len() == folds.search.len());
            let payers = held.iter().filter(|&&i| paid[i]).count() as f64 / held.len() as f64;
            assert!(
                (payers - 0.25).abs() < 0.05,
                "fold {f}: payer share {payers}"
            );
        }
        assert_eq!(
            Folds::new(&accounts, &paid, &params).fold,
            folds.fold,
            "seeded"
        );
    }

    #[test]
    fn interactions_cross_only_features_whose_direction_is_free() {
        for name in INTERACTIONS {
            assert!(
                catalog::numeric_names().contains(name),
                "{name} is no feature"
            );
            assert_eq!(catalog::direction(name), catalog::Direction::Free, "{name}");
        }
    }

    #[test]
    fn the_search_starts_with_the_given_trees_and_is_seeded() {
        let params = TrainParams::default();
        let space = search_space(&params);
        assert_eq!(space.len(), 1 + params.search);
        assert_eq!(space[0], params.trees);
        assert_eq!(search_space(&params), space);
    }
}
