//! A tree ensemble's predictions under every strategy at once.
//!
//! The strategy enters a model as ten 0/1 inputs, one of them 1. Predicting
//! under each strategy in turn walks every tree ten times per account, yet
//! the ten walks part only at splits on a strategy input. Here each tree is
//! walked once per account with the set of strategies still on that path;
//! a split on `strategy=s` sends `s` one way and the others the other way.
//! The sums are added in the ensemble's tree order, so every prediction is
//! the one `GradientBooster::predict` gives bit for bit (a test holds it).

use forust_ml::GradientBooster;
use rayon::prelude::*;

use super::design::Design;
use crate::contract::Strategy;

/// Strategies of the contract.
pub const K: usize = Strategy::ALL.len();

/// Rows scored together by one task: each tree is walked for all of them
/// before the next, so the tree stays in cache and the first splits read
/// their columns in order.
const CHUNK: usize = 256;

/// Rows walked through a tree in step, so that their loads overlap.
const LANES: usize = 8;

/// A node of a [`Walk`]: the children for `value < split`, for the rest,
/// and for a missing value. A leaf points to itself three times.
#[derive(Clone, Copy)]
struct Node {
    split: f64,
    feature: u32,
    children: [u32; 3],
}

/// A tree with every split on a strategy indicator decided for the
/// strategies in `strategies` (a bit set), which all reach the same leaves.
/// Every path takes exactly `depth` steps (a leaf loops on itself), so the
/// walk has no branch to mispredict: what costs most in walking trees.
struct Walk {
    nodes: Vec<Node>,
    /// A leaf's weight as forust adds it (f32 widened); 0 elsewhere.
    weights: Vec<f64>,
    depth: usize,
    strategies: u16,
}

/// The walks of one tree: one per group of strategies its strategy splits
/// tell apart (a single walk for a tree without such splits).
fn walks(tree: &forust_ml::tree::Tree, strategy_of_column: &[Option<usize>]) -> Vec<Walk> {
    let index = |i: usize| u32::try_from(i).expect("a tree of fewer than 2^32 nodes");
    let depth = {
        let mut deepest = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, d)) = stack.pop() {
            let node = &tree.nodes[i];
            deepest = deepest.max(d);
            if !node.is_leaf {
                for next in [node.left_child, node.right_child, node.missing_node] {
                    stack.push((next, d + 1));
                }
            }
        }
        deepest
    };
    let weights = tree
        .nodes
        .iter()
        .map(|n| {
            if n.is_leaf {
                f64::from(n.weight_value)
            } else {
                0.0
            }
        })
        .collect::<Vec<_>>();
    let mut out: Vec<Walk> = Vec::new();
    for s in 0..K {
        let nodes: Vec<Node> = tree
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                match (
                    node.is_leaf,
                    // A leaf's split feature means nothing: not looked up.
                    (!node.is_leaf)
                        .then(|| strategy_of_column[node.split_feature])
                        .flatten(),
                ) {
                    (true, _) => Node {
                        split: 0.0,
                        feature: 0,
                        children: [index(i); 3],
                    },
                    // Under strategy `s` its own indicator is 1 and the others 0.
                    (false, Some(t)) => Node {
                        split: 0.0,
                        feature: 0,
                        children: [index(if f64::from(u8::from(t == s)) < node.split_value {
                            node.left_child
                        } else {
                            node.right_child
                        }); 3],
                    },
                    (false, None) => Node {
                        split: node.split_value,
                        feature: index(node.split_feature),
                        children: [
                            index(node.left_child),
                            index(node.right_child),
                            index(node.missing_node),
                        ],
                    },
                }
            })
            .collect();
        let same = |w: &Walk| {
            w.nodes
                .iter()
                .zip(&nodes)
                .all(|(a, b)| a.children == b.children)
        };
        match out.iter_mut().find(|w| same(w)) {
            Some(walk) => walk.strategies |= 1 << s,
            None => out.push(Walk {
                nodes,
                weights: weights.clone(),
                depth,
                strategies: 1 << s,
            }),
        }
    }
    out
}

/// Raw predictions (base score plus leaf weights) of `booster` for every row
/// of `design` under every strategy, in the contract's strategy order.
/// `None` when the design has no strategy inputs.
pub fn predict_all_strategies(booster: &GradientBooster, design: &Design) -> Option<Vec<[f64; K]>> {
    // The column of each strategy's indicator, and the strategy of each column.
    let mut strategy_of_column = vec![None; design.cols()];
    for (s, strategy) in Strategy::ALL.iter().enumerate() {
        let name = format!("strategy={strategy}");
        let column = design.names.iter().position(|n| *n == name)?;
        strategy_of_column[column] = Some(s);
    }
    // Tree by tree in the ensemble's order; a tree's walks cover disjoint
    // strategies, so every strategy adds its leaves in that order.
    let walks: Vec<Walk> = booster.trees
        [..booster.prediction_iteration.unwrap_or(booster.trees.len())]
        .iter()
        .flat_map(|tree| walks(tree, &strategy_of_column))
        .collect();
    let missing = booster.missing;
    let missing_is_nan = missing.is_nan();
    let rows = design.rows;
    let data = &design.data[..];
    let mut out = vec![[booster.base_score; K]; rows];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, sums)| {
            let first = chunk * CHUNK;
            for walk in &walks {
                let nodes = &walk.nodes[..];
                for (lane, sums) in sums.chunks_mut(LANES).enumerate() {
                    let row = first + lane * LANES;
                    let mut at = [0u32; LANES];
                    for _ in 0..walk.depth {
                        for (j, at) in at.iter_mut().enumerate().take(sums.len()) {
                            let node = &nodes[*at as usize];
                            let value = data[node.feature as usize * rows + row + j];
                            let is_missing = if missing_is_nan {
                                value.is_nan()
                            } else {
                                value == missing
                            };
                            // 0: left, 1: right, 2: missing; forust's order of tests.
                            let side = if is_missing {
                                2
                            } else {
                                // Not `>=`: a NaN that is not the missing
                                // value goes right, as in forust.
                                if value < node.split {
                                    0
                                } else {
                                    1
                                }
                            };
                            *at = node.children[side];
                        }
                    }
                    for (sum, &at) in sums.iter_mut().zip(&at) {
                        let weight = walk.weights[at as usize];
                        for (s, value) in sum.iter_mut().enumerate() {
                            if walk.strategies & (1 << s) != 0 {
                                *value += weight;
                            }
                        }
                    }
                }
            }
        });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{DataSet, Format};
    use crate::features::{build, spine_for_date};
    use crate::model::design::StrategyInput;
    use crate::simulate::{simulate, SimulationParams};

    /// The default model and the features of a small simulated book.
    fn model_and_features() -> (crate::model::Model, polars::prelude::DataFrame) {
        let model = crate::model::folder::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"),
        )
        .expect("the default model");
        let as_of = "2026-09-30".parse().expect("a date");
        let book = simulate(
            &SimulationParams {
                accounts: 3000,
                seed: 21,
                as_of,
                cycles: 12,
                currency: "USD".into(),
                world: Default::default(),
            },
            |_| {},
        )
        .expect("simulates");
        let dir = tempfile::tempdir().expect("dir");
        let (mut a, mut h, mut x, mut o) = (
            book.accounts,
            book.payment_history,
            book.actions,
            book.outcomes,
        );
        crate::output::write_data_folder(dir.path(), [&mut a, &mut h, &mut x, &mut o], Format::Csv)
            .expect("written");
        let data = DataSet::load(dir.path()).expect("loads");
        let features = build(
            &data,
            &spine_for_date(&data.accounts, as_of).expect("spine"),
        )
        .expect("features");
        (model, features)
    }

    #[test]
    fn one_walk_gives_what_predicting_under_each_strategy_gives_bit_for_bit() {
        let (model, features) = model_and_features();
        let amounts = model.amount.as_ref().expect("an amount model");
        let mut design = amounts
            .inputs
            .design(&features, StrategyInput::All(Strategy::None))
            .expect("design");
        let all = predict_all_strategies(&amounts.booster, &design).expect("strategy inputs");
        assert_eq!(all.len(), 3000);
        let mut differ = 0;
        for strategy in Strategy::ALL {
            design.set_strategy(strategy);
            let one = amounts.booster.predict(&design.matrix(), false);
            for (row, value) in one.iter().enumerate() {
                assert_eq!(
                    all[row][strategy as usize].to_bits(),
                    value.to_bits(),
                    "row {row}, {strategy}"
                );
            }
            differ += usize::from(one != all.iter().map(|r| r[0]).collect::<Vec<_>>());
        }
        // The simulator's amounts differ from the usual one for settlement
        // offers, instalment plans, legal and agency: the trees must see those.
        assert!(
            differ >= 4,
            "the strategy should move the amount: {differ} of 10 differ from none"
        );
    }

    /// P(paid) under every strategy at once, for a scorecard and for trees,
    /// is what setting each strategy in turn gives, bit for bit.
    #[test]
    fn both_learners_under_every_strategy_give_what_setting_each_gives_bit_for_bit() {
        use crate::model::learner::{boost, BoostParams, Learner, Platt, Scorecard};
        use crate::model::Classifier;
        let (model, features) = model_and_features();
        // Built as the planner builds it: P(pay)'s inputs, then the strategy.
        let mut design = model
            .propensity
            .inputs
            .design_with_room(&features, StrategyInput::Absent, K)
            .expect("design");
        design.add_strategy_inputs(Strategy::None);
        let mut inputs = model.propensity.inputs.clone();
        inputs.strategy = true;
        assert_eq!(design.names, inputs.names());
        // Both learners fitted on these rows, each row under a strategy of its own.
        let strategies: Vec<Strategy> = (0..design.rows).map(|i| Strategy::ALL[i % K]).collect();
        let mut fit = inputs
            .design(&features, StrategyInput::PerRow(&strategies))
            .expect("design");
        let paid: Vec<bool> = (0..fit.rows)
            .map(|i| fit.column(0)[i] > 5000.0 || (i % K == 3 && i % 7 != 0))
            .collect();
        let target: Vec<f64> = paid.iter().map(|&p| f64::from(u8::from(p))).collect();
        let card = Scorecard::fit(&fit, &paid, 1.0, 50).expect("fits");
        let trees = boost(
            &fit,
            &target,
            None,
            true,
            &BoostParams {
                iterations: 30,
                ..BoostParams::default()
            },
        )
        .expect("fits");
        fit.set_strategy(Strategy::None);
        let platt = Platt {
            slope: 0.9,
            offset: -0.1,
        };
        // A doubly robust shift that differs by strategy and account.
        let shift = crate::model::correction::Correction {
            features: vec![inputs.numeric[0].clone()],
            center: vec![1000.0],
            scale: vec![2000.0],
            weights: (0..K)
                .map(|s| vec![0.01 * s as f64 - 0.03, 0.02 - 0.005 * s as f64])
                .collect(),
            ridge: 0.0,
        };
        let json = crate::model::learner::booster_json(&trees).expect("saves");
        let copy = crate::model::learner::booster_from_json(&json).expect("loads");
        for (learner, correction) in [
            (Learner::Scorecard(card.clone()), None),
            (Learner::Scorecard(card), Some(shift.clone())),
            (Learner::Boosted(Box::new(trees)), None),
            (Learner::Boosted(Box::new(copy)), Some(shift)),
        ] {
            let response = Classifier {
                inputs: inputs.clone(),
                learner,
                platt,
                correction,
            };
            let all = response
                .probabilities_all_strategies(&design)
                .expect("the strategy last");
            let mut differ = 0;
            for strategy in Strategy::ALL {
                design.set_strategy(strategy);
                let one = response.probabilities_of(&design);
                for (row, p) in one.iter().enumerate() {
                    assert_eq!(
                        all[row][strategy as usize].to_bits(),
                        p.to_bits(),
                        "{:?}, row {row}, {strategy}",
                        response.kind()
                    );
                }
                differ += usize::from(one != all.iter().map(|r| r[0]).collect::<Vec<_>>());
            }
            assert!(
                differ >= 1,
                "{:?}: the strategy should move P(paid): {differ} of 10 differ",
                response.kind()
            );
        }
    }

    #[test]
    fn reasons_by_block_are_the_reasons_of_the_whole_matrix() {
        let (model, features) = model_and_features();
        let propensity = &model.propensity;
        let design = propensity
            .inputs
            .design(&features, StrategyInput::Absent)
            .expect("design");
        let blocks = propensity.reasons_of(&design);
        let cols = design.cols();
        let matrix = propensity.learner.contributions(&design);
        assert_eq!(blocks.len(), design.rows);
        for (i, reasons) in blocks.iter().enumerate() {
            let whole = crate::model::reasons::top(
                &design.names,
                |j| design.column(j)[i],
                &matrix[i * cols..(i + 1) * cols],
            );
            assert_eq!(*reasons, whole, "row {i}");
            assert!(!reasons.is_empty(), "row {i} has reasons");
        }
    }
}
