//! The two kinds of learner behind one interface: a logistic scorecard
//! (linfa, standardised inputs, readable weights) and a gradient-boosted tree
//! ensemble (forust, a histogram booster in the XGBoost mould). Both give log-odds of paying and each input's
//! contribution to them; Platt scaling turns log-odds into calibrated probabilities.

use forust_ml::constraints::{Constraint, ConstraintMap};
use forust_ml::gradientbooster::ContributionsMethod;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::GradientBooster;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::design::Design;
use super::ModelError;
use crate::features::catalog::{self, Direction};

/// Standardised inputs are clipped to this many standard deviations, so one
/// extreme balance cannot dominate a scorecard.
const CLIP: f64 = 5.0;

/// Logistic regression on standardised inputs: log-odds of paying =
/// intercept + Σ weight × (value − mean) / scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    /// Oriented so that a positive weight raises the probability of paying.
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl Scorecard {
    /// Fits on `paid` (both classes must be present). `alpha` is the L2 penalty.
    pub fn fit(
        design: &Design,
        paid: &[bool],
        alpha: f64,
        max_iterations: u64,
    ) -> Result<Scorecard, ModelError> {
        let (means, scales): (Vec<f64>, Vec<f64>) = (0..design.cols())
            .map(|j| {
                // Indicators stay 0/1: their weight is the log-odds shift of
                // that product or strategy, and a rare one is not clipped away.
                if is_indicator(&design.names[j]) {
                    return (0.0, 1.0);
                }
                let column = design.column(j);
                let n = column.len().max(1) as f64;
                let mean = column.iter().sum::<f64>() / n;
                let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                (mean, if var > 1e-12 { var.sqrt() } else { 1.0 })
            })
            .unzip();
        let mut card = Scorecard {
            means,
            scales,
            weights: vec![0.0; design.cols()],
            intercept: 0.0,
        };
        let mut records = card.standardised(design);
        let targets = Array1::from_iter(paid.iter().copied());
        // A weight against its feature's known direction is dropped (its
        // input set to 0) and the rest refitted, until none is left.
        let directions: Vec<Direction> =
            design.names.iter().map(|n| catalog::direction(n)).collect();
        let mut dropped = vec![false; design.cols()];
        for _ in 0..=design.cols() {
            let fitted = LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(max_iterations)
                .fit(&Dataset::new(records.clone(), targets.clone()))
                .map_err(|e| ModelError::Fit(format!("logistic regression: {e}")))?;
            // linfa's positive class is whichever label it met first, not `true`:
            // turn its weights round when it modelled not paying.
            let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
            card.weights = fitted.params().iter().map(|w| sign * w).collect();
            card.intercept = sign * fitted.intercept();
            let against: Vec<usize> = (0..design.cols())
                .filter(|&j| match directions[j] {
                    Direction::Free => false,
                    Direction::Raises => card.weights[j] < 0.0,
                    Direction::Lowers => card.weights[j] > 0.0,
                })
                .collect();
            if against.is_empty() {
                break;
            }
            for j in against {
                dropped[j] = true;
                records.column_mut(j).fill(0.0);
            }
        }
        for (j, gone) in dropped.iter().enumerate() {
            if *gone {
                card.weights[j] = 0.0;
            }
        }
        Ok(card)
    }

    fn standardised(&self, design: &Design) -> Array2<f64> {
        let mut records = Array2::zeros((design.rows, design.cols()));
        for j in 0..design.cols() {
            for (i, v) in design.column(j).iter().enumerate() {
                records[[i, j]] = self.z(j, *v);
            }
        }
        records
    }

    fn z(&self, j: usize, value: f64) -> f64 {
        if self.means[j] == 0.0 && self.scales[j] == 1.0 {
            return value;
        }
        ((value - self.means[j]) / self.scales[j]).clamp(-CLIP, CLIP)
    }

    /// Input `j`'s pull on the log-odds at `value`.
    fn pull(&self, j: usize, value: f64) -> f64 {
        self.weights[j] * self.z(j, value)
    }

    /// Log-odds of every row under every strategy, when the design's last
    /// `K` inputs are the strategy indicators in the contract's order: the
    /// other inputs are summed once, then each strategy's indicator terms
    /// are added in column order, so every sum is the one [`Self::log_odds`]
    /// gives with that strategy set, bit for bit.
    fn log_odds_all_strategies(
        &self,
        design: &Design,
    ) -> Vec<[f64; crate::model::strategy_trees::K]> {
        use crate::model::strategy_trees::K;
        let base = design.cols() - K;
        let mut prefix = vec![self.intercept; design.rows];
        for j in 0..base {
            for (o, v) in prefix.iter_mut().zip(design.column(j)) {
                *o += self.pull(j, *v);
            }
        }
        let terms: [[f64; K]; K] = std::array::from_fn(|s| {
            std::array::from_fn(|t| self.pull(base + t, f64::from(u8::from(t == s))))
        });
        prefix
            .into_iter()
            .map(|start| {
                std::array::from_fn(|s| terms[s].iter().fold(start, |sum, term| sum + term))
            })
            .collect()
    }

    /// Each input's pull on the log-odds for `rows`, row-major
    /// (`rows × cols`) into `out`.
    pub fn contributions_into(
        &self,
        design: &Design,
        rows: std::ops::Range<usize>,
        out: &mut [f64],
    ) {
        let cols = design.cols();
        for j in 0..cols {
            for (k, v) in design.column(j)[rows.clone()].iter().enumerate() {
                out[k * cols + j] = self.pull(j, *v);
            }
        }
    }

    fn log_odds(&self, design: &Design) -> Vec<f64> {
        let mut out = vec![self.intercept; design.rows];
        for j in 0..design.cols() {
            for (o, v) in out.iter_mut().zip(design.column(j)) {
                *o += self.pull(j, *v);
            }
        }
        out
    }
}

/// Whether an input is a 0/1 indicator (`product=…`, `strategy=…`).
fn is_indicator(name: &str) -> bool {
    name.contains('=')
}

/// A fitted learner.
pub enum Learner {
    Scorecard(Scorecard),
    Boosted(Box<GradientBooster>),
}

/// Hyper-parameters of the tree ensembles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostParams {
    /// Most trees; early stopping usually ends sooner.
    pub iterations: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    /// Minimum hessian sum in a leaf.
    pub min_leaf_weight: f32,
    pub l2: f32,
    /// Stop when this many trees in a row bring no gain on the early-stopping rows.
    pub early_stopping_rounds: usize,
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams {
            iterations: 600,
            learning_rate: 0.05,
            max_depth: 5,
            min_leaf_weight: 5.0,
            l2: 1.0,
            early_stopping_rounds: 30,
        }
    }
}

/// The monotone constraints of a probability model on `names`: the
/// catalogue's known directions (see [`catalog::DIRECTIONS`]).
pub fn monotone_constraints(names: &[String]) -> ConstraintMap {
    names
        .iter()
        .enumerate()
        .filter_map(|(j, name)| match catalog::direction(name) {
            Direction::Free => None,
            Direction::Raises => Some((j, Constraint::Positive)),
            Direction::Lowers => Some((j, Constraint::Negative)),
        })
        .collect()
}

/// Fits a tree ensemble on `target` (log loss for 0/1 targets, held to the
/// catalogue's directions; squared loss for amounts), stopping early on
/// `stop`'s rows, which it does not fit on, or else growing every tree.
pub fn boost(
    design: &Design,
    target: &[f64],
    stop: Option<(&Design, &[f64])>,
    classify: bool,
    params: &BoostParams,
) -> Result<GradientBooster, ModelError> {
    let (objective, metric) = if classify {
        (ObjectiveType::LogLoss, Metric::LogLoss)
    } else {
        (ObjectiveType::SquaredLoss, Metric::RootMeanSquaredError)
    };
    let mut booster = GradientBooster::default()
        .set_objective_type(objective)
        .set_iterations(params.iterations)
        .set_learning_rate(params.learning_rate)
        .set_max_depth(params.max_depth)
        .set_min_leaf_weight(params.min_leaf_weight)
        .set_l2(params.l2)
        .set_evaluation_metric(Some(metric))
        .set_early_stopping_rounds(stop.map(|_| params.early_stopping_rounds))
        .set_monotone_constraints(classify.then(|| monotone_constraints(&design.names)));
    let weights = vec![1.0; design.rows];
    let stop_weights = vec![1.0; stop.map_or(0, |s| s.0.rows)];
    let evaluation = stop.map(|(rows, target)| vec![(rows.matrix(), target, &stop_weights[..])]);
    booster
        .fit(&design.matrix(), target, &weights, evaluation)
        .map_err(|e| ModelError::Fit(format!("gradient boosting: {e}")))?;
    if classify {
        let constraints = monotone_constraints(&design.names);
        for tree in &mut booster.trees {
            hold_to_constraints(tree, &constraints);
        }
    }
    Ok(booster)
}

/// Makes a tree monotone in every constrained input, whatever the learner
/// left: walking down from the root with bounds, each split on a constrained
/// input bounds its two sides by the midpoint of their weights (the lower
/// side above it for a falling input, below it for a rising one) and every
/// leaf is clamped into its bounds. forust grows under the same bounds but
/// can still leave leaves outside them (a test caught P(paid | call) rising
/// with the past-due share); where it did not, nothing changes.
pub fn hold_to_constraints(tree: &mut forust_ml::tree::Tree, constraints: &ConstraintMap) {
    let nodes = &mut tree.nodes;
    if nodes.is_empty() {
        return;
    }
    let index_of: std::collections::HashMap<usize, usize> =
        nodes.iter().enumerate().map(|(i, n)| (n.num, i)).collect();
    let mut stack = vec![(index_of[&0], f32::NEG_INFINITY, f32::INFINITY)];
    while let Some((at, lo, hi)) = stack.pop() {
        if nodes[at].is_leaf {
            nodes[at].weight_value = nodes[at].weight_value.clamp(lo, hi);
            continue;
        }
        let node = &nodes[at];
        let (left, right, missing) = (
            index_of[&node.left_child],
            index_of[&node.right_child],
            index_of.get(&node.missing_node).copied(),
        );
        let constraint = constraints.get(&node.split_feature);
        let (left_bounds, right_bounds) = match constraint {
            Some(Constraint::Negative) | Some(Constraint::Positive) => {
                let mid = ((nodes[left].weight_value.clamp(lo, hi)
                    + nodes[right].weight_value.clamp(lo, hi))
                    / 2.0)
                    .clamp(lo, hi);
                if matches!(constraint, Some(Constraint::Negative)) {
                    ((mid, hi), (lo, mid))
                } else {
                    ((lo, mid), (mid, hi))
                }
            }
            _ => ((lo, hi), (lo, hi)),
        };
        stack.push((left, left_bounds.0, left_bounds.1));
        stack.push((right, right_bounds.0, right_bounds.1));
        if let Some(m) = missing.filter(|&m| m != left && m != right) {
            stack.push((m, lo, hi));
        }
    }
}

/// Reads a booster saved by [`booster_json`].
pub fn booster_from_json(text: &str) -> Result<GradientBooster, ModelError> {
    GradientBooster::from_json(text).map_err(|e| ModelError::Invalid(format!("tree ensemble: {e}")))
}

/// A booster as JSON.
pub fn booster_json(booster: &GradientBooster) -> Result<String, ModelError> {
    booster
        .json_dump()
        .map_err(|e| ModelError::Invalid(format!("tree ensemble: {e}")))
}

impl Learner {
    /// Uncalibrated log-odds of paying (or the predicted amount, for a regressor).
    pub fn raw(&self, design: &Design) -> Vec<f64> {
        match self {
            Learner::Scorecard(card) => card.log_odds(design),
            Learner::Boosted(booster) => booster.predict(&design.matrix(), true),
        }
    }

    /// Log-odds under every strategy, when the design's last inputs are the
    /// strategy indicators in the contract's order: a scorecard sums the
    /// other inputs once (see `Scorecard::log_odds_all_strategies`), trees
    /// walk each tree once per group of strategies it tells apart (see
    /// [`crate::model::strategy_trees`]); either is bit for bit what setting
    /// each strategy gives. `None` for any other design.
    pub fn raw_all_strategies(
        &self,
        design: &Design,
    ) -> Option<Vec<[f64; crate::model::strategy_trees::K]>> {
        use crate::contract::Strategy;
        let k = Strategy::ALL.len();
        let first = design.cols().checked_sub(k)?;
        let in_order = Strategy::ALL
            .iter()
            .enumerate()
            .all(|(t, s)| design.names[first + t] == format!("strategy={s}"));
        let others = design.names[..first]
            .iter()
            .all(|n| !n.starts_with("strategy="));
        if !(in_order && others) {
            return None;
        }
        match self {
            Learner::Scorecard(card) => Some(card.log_odds_all_strategies(design)),
            Learner::Boosted(booster) => {
                crate::model::strategy_trees::predict_all_strategies(booster, design)
            }
        }
    }

    /// Each input's contribution to the log-odds, row-major (`rows × cols`),
    /// measured from the average account.
    pub fn contributions(&self, design: &Design) -> Vec<f64> {
        let cols = design.cols();
        match self {
            Learner::Scorecard(card) => {
                let mut out = vec![0.0; design.rows * cols];
                card.contributions_into(design, 0..design.rows, &mut out);
                out
            }
            Learner::Boosted(booster) => {
                let with_bias = booster.predict_contributions(
                    &design.matrix(),
                    ContributionsMethod::Average,
                    true,
                );
                with_bias
                    .chunks(cols + 1)
                    .flat_map(|row| row[..cols].iter().copied())
                    .collect()
            }
        }
    }
}

/// Platt scaling: P(paid) = σ(slope × log-odds + offset), fitted on rows the
/// learner did not see.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    pub slope: f64,
    pub offset: f64,
}

impl Platt {
    /// No change: σ(log-odds).
    pub const IDENTITY: Platt = Platt {
        slope: 1.0,
        offset: 0.0,
    };

    /// Maximum-likelihood fit by Newton's method with step halving (two
    /// parameters, a handful of steps).
    pub fn fit(log_odds: &[f64], paid: &[bool]) -> Platt {
        let loss = |a: f64, b: f64| -> f64 {
            log_odds
                .iter()
                .zip(paid)
                .map(|(&s, &y)| {
                    let z = a * s + b;
                    // −log σ(z) for payers, −log σ(−z) for the others, computed stably.
                    let margin = if y { z } else { -z };
                    (-margin).max(0.0) + (-margin.abs()).exp().ln_1p()
                })
                .sum()
        };
        let (mut a, mut b) = (1.0f64, 0.0f64);
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&s, &y) in log_odds.iter().zip(paid) {
                let p = sigmoid(a * s + b);
                let r = p - f64::from(u8::from(y));
                let w = p * (1.0 - p);
                ga += r * s;
                gb += r;
                haa += w * s * s;
                hab += w * s;
                hbb += w;
            }
            // A small ridge keeps the step defined when every score is equal.
            let (haa, hbb) = (haa + 1e-9, hbb + 1e-9);
            let det = haa * hbb - hab * hab;
            if det <= 0.0 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            let mut step = 1.0;
            let improved = loop {
                let next = loss(a - step * da, b - step * db);
                if next <= current {
                    break Some(next);
                }
                step /= 2.0;
                if step < 1e-6 {
                    break None;
                }
            };
            let Some(next) = improved else { break };
            a -= step * da;
            b -= step * db;
            let converged = current - next < 1e-10 * current.max(1.0);
            current = next;
            if converged {
                break;
            }
        }
        Platt {
            slope: a,
            offset: b,
        }
    }

    pub fn probability(&self, log_odds: f64) -> f64 {
        sigmoid(self.slope * log_odds + self.offset)
    }
}

/// Mean log loss of probabilities of paying (clipped away from 0 and 1).
pub fn log_loss(p: &[f64], paid: &[bool]) -> f64 {
    let n = p.len().max(1) as f64;
    p.iter()
        .zip(paid)
        .map(|(&q, &y)| {
            let q = q.clamp(1e-12, 1.0 - 1e-12);
            if y {
                -q.ln()
            } else {
                -(1.0 - q).ln()
            }
        })
        .sum::<f64>()
        / n
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_column(values: Vec<f64>) -> Design {
        Design {
            names: vec!["x".into()],
            rows: values.len(),
            data: values,
        }
    }

    /// 2,000 accounts with x evenly in 0..1 that pay where x is in the top
    /// `payer_share`, with every tenth label flipped.
    fn threshold_book(payer_share: f64) -> (Design, Vec<bool>) {
        let n = 2_000;
        let x: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let paid = (0..n)
            .map(|i| (x[i] > 1.0 - payer_share) != (i % 10 == 0))
            .collect();
        (one_column(x), paid)
    }

    fn trees_on(design: &Design, paid: &[bool]) -> Learner {
        let target: Vec<f64> = paid.iter().map(|&p| f64::from(u8::from(p))).collect();
        let stop = (design, target.as_slice());
        let booster = boost(design, &target, Some(stop), true, &BoostParams::default()).unwrap();
        Learner::Boosted(Box::new(booster))
    }

    /// Payers have high x, and payers are the minority (then the majority):
    /// the scorecard's probability must rise with x either way.
    #[test]
    fn scorecard_gives_the_probability_of_paying_whichever_class_is_larger() {
        for payer_share in [0.2, 0.8] {
            let (design, paid) = threshold_book(payer_share);
            let card = Scorecard::fit(&design, &paid, 1.0, 200).unwrap();
            assert!(
                card.weights[0] > 0.0,
                "weight {} for share {payer_share}",
                card.weights[0]
            );
            let p = Learner::Scorecard(card).raw(&design);
            let mean_of = |want: bool| {
                let scores: Vec<f64> = paid
                    .iter()
                    .zip(&p)
                    .filter(|(y, _)| **y == want)
                    .map(|(_, s)| *s)
                    .collect();
                scores.iter().sum::<f64>() / scores.len() as f64
            };
            assert!(mean_of(true) > mean_of(false));
        }
    }

    #[test]
    fn trees_give_the_probability_of_paying_whichever_class_is_larger() {
        for payer_share in [0.2, 0.8] {
            let (design, paid) = threshold_book(payer_share);
            let scores = trees_on(&design, &paid).raw(&one_column(vec![0.05, 0.95]));
            assert!(scores[1] > scores[0], "{scores:?} for share {payer_share}");
        }
    }

    #[test]
    fn tree_contributions_point_the_way_the_feature_pushes() {
        let (design, paid) = threshold_book(0.5);
        let contributions = trees_on(&design, &paid).contributions(&one_column(vec![0.05, 0.95]));
        assert_eq!(contributions.len(), 2, "one contribution per row and input");
        assert!(
            contributions[0] < 0.0 && contributions[1] > 0.0,
            "{contributions:?}"
        );
    }

    #[test]
    fn platt_recovers_a_known_slope_and_offset() {
        // Labels drawn so that P(paid | s) = σ(0.5 s − 1) exactly, in expectation,
        // by using fractional repetition: for each s, weight by the true probability.
        let mut scores = Vec::new();
        let mut paid = Vec::new();
        for k in -40..=40 {
            let s = k as f64 / 4.0;
            let p = sigmoid(0.5 * s - 1.0);
            let payers = (p * 1000.0).round() as usize;
            for r in 0..1000 {
                scores.push(s);
                paid.push(r < payers);
            }
        }
        let platt = Platt::fit(&scores, &paid);
        assert!((platt.slope - 0.5).abs() < 0.01, "{platt:?}");
        assert!((platt.offset + 1.0).abs() < 0.01, "{platt:?}");
    }
}
