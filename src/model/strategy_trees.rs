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

/// Rows scored together by one task.
const CHUNK: usize = 4096;

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
    let trees = &booster.trees[..booster.prediction_iteration.unwrap_or(booster.trees.len())];
    let missing = booster.missing;
    let rows = design.rows;
    let mut out = vec![[booster.base_score; K]; rows];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, sums)| {
            let mut stack: Vec<(usize, u16)> = Vec::with_capacity(16);
            for (offset, sum) in sums.iter_mut().enumerate() {
                let row = chunk * CHUNK + offset;
                for tree in trees {
                    stack.push((0, (1 << K) - 1));
                    while let Some((index, set)) = stack.pop() {
                        let node = &tree.nodes[index];
                        if node.is_leaf {
                            let weight = f64::from(node.weight_value);
                            for (s, value) in sum.iter_mut().enumerate() {
                                if set & (1 << s) != 0 {
                                    *value += weight;
                                }
                            }
                            continue;
                        }
                        let child = |value: f64| {
                            let is_missing = if missing.is_nan() {
                                value.is_nan()
                            } else {
                                value == missing
                            };
                            if is_missing {
                                node.missing_node
                            } else if value < node.split_value {
                                node.left_child
                            } else {
                                node.right_child
                            }
                        };
                        match strategy_of_column[node.split_feature] {
                            Some(s) => {
                                let (this, others) = (set & (1 << s), set & !(1 << s));
                                if this != 0 {
                                    stack.push((child(1.0), this));
                                }
                                if others != 0 {
                                    stack.push((child(0.0), others));
                                }
                            }
                            None => {
                                let value = design.data[node.split_feature * rows + row];
                                stack.push((child(value), set));
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

    #[test]
    fn one_walk_gives_what_predicting_under_each_strategy_gives_bit_for_bit() {
        let model = crate::model::folder::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default"),
        )
        .expect("the default model");
        let amounts = model.amount.as_ref().expect("an amount model");
        let as_of = "2026-09-30".parse().expect("a date");
        let book = simulate(
            &SimulationParams {
                accounts: 3000,
                seed: 21,
                as_of,
                cycles: 12,
                currency: "USD".into(),
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
        assert!(
            differ >= 5,
            "the strategy should move the amount: {differ} of 10 differ from none"
        );
    }
}
