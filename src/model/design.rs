//! From feature rows to the numbers a model takes: numeric features as they
//! are, the product as one indicator per product seen in training, and, for
//! the strategy-response model, one indicator per strategy.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::contract::Strategy;

/// Which inputs a model takes, fixed when it is trained and saved with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Numeric feature columns, in order.
    pub numeric: Vec<String>,
    /// Products with an indicator column; any other product has all indicators 0.
    pub products: Vec<String>,
    /// Whether the strategy is an input (the strategy-response model).
    pub strategy: bool,
    /// Numeric features that also enter once per strategy other than `none`,
    /// as `feature@strategy` = the feature's value where that strategy is set,
    /// else 0 (a scorecard's strategy × feature interactions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interactions: Vec<String>,
}

/// The name of the interaction input of `feature` with `strategy`.
pub fn interaction_name(feature: &str, strategy: Strategy) -> String {
    format!("{feature}@{strategy}")
}

/// The strategy input of each row.
#[derive(Clone, Copy)]
pub enum StrategyInput<'a> {
    /// The model takes no strategy.
    Absent,
    /// The logged strategy of each row.
    PerRow(&'a [Strategy]),
    /// The same strategy for every row (what-if scoring).
    All(Strategy),
}

/// Model inputs, column-major: column `j` is `data[j * rows..(j + 1) * rows]`.
#[derive(Debug, Clone)]
pub struct Design {
    pub names: Vec<String>,
    pub data: Vec<f64>,
    pub rows: usize,
}

impl Design {
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    pub fn column(&self, j: usize) -> &[f64] {
        &self.data[j * self.rows..(j + 1) * self.rows]
    }

    /// The rows at `index`, in that order.
    pub fn take(&self, index: &[usize]) -> Design {
        let mut data = Vec::with_capacity(index.len() * self.cols());
        for j in 0..self.cols() {
            let column = self.column(j);
            data.extend(index.iter().map(|&i| column[i]));
        }
        Design {
            names: self.names.clone(),
            data,
            rows: index.len(),
        }
    }

    /// Sets the strategy indicators (and interactions) of every row to
    /// `strategy` (what-if scoring of one design under each strategy in turn).
    pub fn set_strategy(&mut self, strategy: Strategy) {
        let rows = self.rows;
        for j in 0..self.cols() {
            if let Some(name) = self.names[j].strip_prefix("strategy=") {
                let value = f64::from(u8::from(name == strategy.as_str()));
                self.data[j * rows..(j + 1) * rows].fill(value);
            } else if let Some((feature, of)) = self.names[j].split_once('@') {
                let base = self
                    .names
                    .iter()
                    .position(|n| n == feature)
                    .expect("an interaction's feature is an input");
                if of == strategy.as_str() {
                    self.data
                        .copy_within(base * rows..(base + 1) * rows, j * rows);
                } else {
                    self.data[j * rows..(j + 1) * rows].fill(0.0);
                }
            }
        }
    }

    /// Appends the strategy inputs, every row set to `strategy`: the inputs
    /// of a model that reads these and the strategy (a strategy-response
    /// model beside a propensity model on the same features).
    pub fn add_strategy_inputs(&mut self, strategy: Strategy) {
        for s in Strategy::ALL {
            self.names.push(format!("strategy={s}"));
            let value = f64::from(u8::from(s == strategy));
            self.data.extend(std::iter::repeat_n(value, self.rows));
        }
    }

    /// A view the tree booster reads.
    pub fn matrix(&self) -> forust_ml::Matrix<'_, f64> {
        forust_ml::Matrix::new(&self.data, self.rows, self.cols())
    }
}

impl InputSpec {
    /// The inputs for a training frame: every numeric feature and every product it holds.
    pub fn for_training(
        features: &DataFrame,
        numeric: &[&str],
        strategy: bool,
    ) -> Result<InputSpec, ModelError> {
        let mut products: Vec<String> = features
            .column("product")?
            .str()?
            .unique()?
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        products.sort();
        Ok(InputSpec {
            numeric: numeric.iter().map(|s| s.to_string()).collect(),
            products,
            strategy,
            interactions: Vec::new(),
        })
    }

    /// Names of the input columns, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names = self.numeric.clone();
        names.extend(self.products.iter().map(|p| format!("product={p}")));
        if self.strategy {
            names.extend(Strategy::ALL.iter().map(|s| format!("strategy={s}")));
        }
        for feature in &self.interactions {
            names.extend(
                Strategy::ALL[1..]
                    .iter()
                    .map(|&s| interaction_name(feature, s)),
            );
        }
        names
    }

    /// Refuses feature rows that lack a column the model was trained on, or
    /// that hold columns it does not know: a model from another feature list.
    pub fn check(&self, features: &DataFrame, model_dir: &str) -> Result<(), ModelError> {
        let given: Vec<&str> = features
            .get_column_names()
            .into_iter()
            .map(|n| n.as_str())
            .filter(|n| !matches!(*n, "account_id" | "as_of" | "product"))
            .collect();
        let missing: Vec<&str> = self
            .numeric
            .iter()
            .map(String::as_str)
            .filter(|n| !given.contains(n))
            .collect();
        let unknown: Vec<&str> = given
            .iter()
            .copied()
            .filter(|n| !self.numeric.iter().any(|m| m == n))
            .collect();
        if missing.is_empty() && unknown.is_empty() {
            return Ok(());
        }
        Err(ModelError::FeatureMismatch {
            model_dir: model_dir.to_string(),
            missing: missing.join(", "),
            unknown: unknown.join(", "),
        })
    }

    /// Builds the inputs of every feature row.
    pub fn design(
        &self,
        features: &DataFrame,
        strategy: StrategyInput,
    ) -> Result<Design, ModelError> {
        self.design_with_room(features, strategy, 0)
    }

    /// [`InputSpec::design`] with room for `more` columns, to be added
    /// without moving the rest (see [`Design::add_strategy_inputs`]).
    pub fn design_with_room(
        &self,
        features: &DataFrame,
        strategy: StrategyInput,
        more: usize,
    ) -> Result<Design, ModelError> {
        let rows = features.height();
        let names = self.names();
        let mut data = Vec::with_capacity(rows * (names.len() + more));
        for name in &self.numeric {
            let column = features.column(name)?.cast(&DataType::Float64)?;
            let values = column.f64()?;
            data.extend(values.into_iter().map(|v| v.unwrap_or(0.0)));
        }
        if !self.products.is_empty() {
            let products = features.column("product")?.str()?.clone();
            for product in &self.products {
                data.extend(
                    products
                        .into_iter()
                        .map(|p| f64::from(u8::from(p == Some(product.as_str())))),
                );
            }
        }
        if self.strategy {
            for s in Strategy::ALL {
                match strategy {
                    StrategyInput::PerRow(logged) => {
                        data.extend(logged.iter().map(|&l| f64::from(u8::from(l == s))))
                    }
                    StrategyInput::All(only) => {
                        data.extend(std::iter::repeat_n(f64::from(u8::from(only == s)), rows))
                    }
                    StrategyInput::Absent => {
                        return Err(ModelError::Invalid(
                            "the strategy-response model needs a strategy per row".into(),
                        ))
                    }
                }
            }
        }
        for feature in &self.interactions {
            let base = self
                .numeric
                .iter()
                .position(|n| n == feature)
                .ok_or_else(|| {
                    ModelError::Invalid(format!("interaction of {feature}, not an input"))
                })?;
            for &s in &Strategy::ALL[1..] {
                let set: Vec<bool> = match strategy {
                    StrategyInput::PerRow(logged) => logged.iter().map(|&l| l == s).collect(),
                    StrategyInput::All(only) => vec![only == s; rows],
                    StrategyInput::Absent => {
                        return Err(ModelError::Invalid(
                            "interactions need a strategy per row".into(),
                        ))
                    }
                };
                for (i, on) in set.into_iter().enumerate() {
                    let value = if on { data[base * rows + i] } else { 0.0 };
                    data.push(value);
                }
            }
        }
        Ok(Design { names, data, rows })
    }
}
