//! A doubly robust (DR-learner) correction of a pooled response model.
//!
//! The pooled model `q(x, s)` learns P(paid | account, strategy) from the
//! strategies the lender happened to choose; where that choice followed the
//! account (calls to the accounts that answer), its errors differ by
//! strategy. The DR-learner's pseudo-outcome for strategy `s`,
//! `q(x, s) + 1{S = s} (Y − q(x, S)) / e(S | x)`, is unbiased for
//! P(paid | x, s) whatever `q` gets wrong, given the logged propensities `e`.
//! Regressing its correction part, `1{S = s} (Y − q(x, s)) / e`, on a few
//! account features (ridge, one regression per strategy) gives a shift
//! `δ_s(x)` that is added to the pooled model's probability.
//!
//! The shift reads only features whose direction is not fixed (see
//! [`crate::features::catalog::DIRECTIONS`]), so it never undoes a monotone
//! constraint of the pooled model. It is fitted on out-of-fold predictions of
//! the pooled model, so it corrects errors on rows the model did not fit.

use serde::{Deserialize, Serialize};

use super::design::Design;
use super::strategy_trees::K;
use super::ModelError;

/// Logged propensities below this are raised to it: one explored row with
/// a propensity of 0.001 would otherwise move a whole strategy's shift.
pub const MIN_PROPENSITY: f64 = 0.05;
/// Corrected probabilities stay inside [`FLOOR`, 1 − `FLOOR`].
pub const FLOOR: f64 = 1e-3;

/// One ridge regression per strategy on the probability scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// Numeric inputs it reads, standardised by `center` and `scale`.
    pub features: Vec<String>,
    pub center: Vec<f64>,
    pub scale: Vec<f64>,
    /// Per strategy, in the contract's order: the intercept, then one weight per feature.
    pub weights: Vec<Vec<f64>>,
    /// The ridge penalty per row the weights were fitted with.
    pub ridge: f64,
}

impl Correction {
    /// Fits the shifts. `z` holds each row's values of `features`
    /// (row-major), `q` the pooled model's out-of-fold probabilities under
    /// every strategy, `logged` the strategy chosen, `paid` the outcome and
    /// `propensity` the logged probability of the chosen strategy. The
    /// penalty is `ridge` × rows on every weight but the intercept.
    #[allow(clippy::needless_range_loop)] // `s` is a strategy, compared as well as indexed
    pub fn fit(
        features: &[String],
        z: &[Vec<f64>],
        q: &[[f64; K]],
        logged: &[usize],
        paid: &[bool],
        propensity: &[f64],
        ridge: f64,
    ) -> Correction {
        let n = z.len();
        let f = features.len();
        let (mut center, mut scale) = (vec![0.0; f], vec![1.0; f]);
        for j in 0..f {
            let mean = z.iter().map(|r| r[j]).sum::<f64>() / n.max(1) as f64;
            let var = z.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n.max(1) as f64;
            center[j] = mean;
            scale[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
        }
        let mut correction = Correction {
            features: features.to_vec(),
            center,
            scale,
            weights: Vec::with_capacity(K),
            ridge,
        };
        let d = f + 1;
        for s in 0..K {
            // Normal equations of the pseudo-outcome on [1, z] over every row;
            // rows that logged another strategy have pseudo-outcome 0.
            let mut xtx = vec![0.0; d * d];
            let mut xty = vec![0.0; d];
            let mut x = vec![0.0; d];
            for i in 0..n {
                correction.standardise(&z[i], &mut x);
                let target = if logged[i] == s {
                    (f64::from(u8::from(paid[i])) - q[i][s]) / propensity[i].max(MIN_PROPENSITY)
                } else {
                    0.0
                };
                for a in 0..d {
                    xty[a] += x[a] * target;
                    for b in 0..d {
                        xtx[a * d + b] += x[a] * x[b];
                    }
                }
            }
            for a in 1..d {
                xtx[a * d + a] += ridge * n as f64;
            }
            let w = solve(&mut xtx, &mut xty, d).unwrap_or_else(|| vec![0.0; d]);
            correction.weights.push(w);
        }
        correction
    }

    /// `[1, standardised values]` of one row.
    fn standardise(&self, values: &[f64], out: &mut [f64]) {
        out[0] = 1.0;
        for (j, v) in values.iter().enumerate() {
            // A far-out value moves the shift no more than four deviations would.
            out[j + 1] = ((v - self.center[j]) / self.scale[j]).clamp(-4.0, 4.0);
        }
    }

    /// The corrected probability of a row with `values` under strategy `s`.
    pub fn apply(&self, p: f64, values: &[f64], s: usize) -> f64 {
        let mut x = [0.0; 16];
        let x = &mut x[..self.features.len() + 1];
        self.standardise(values, x);
        let shift: f64 = self.weights[s]
            .iter()
            .zip(x.iter())
            .map(|(w, x)| w * x)
            .sum();
        (p + shift).clamp(FLOOR, 1.0 - FLOOR)
    }

    /// The columns of `design` it reads, in the order of `features`.
    pub fn columns(&self, design: &Design) -> Result<Vec<usize>, ModelError> {
        self.features
            .iter()
            .map(|name| {
                design.names.iter().position(|n| n == name).ok_or_else(|| {
                    ModelError::Invalid(format!(
                        "the response model's correction reads {name}, which is not an input"
                    ))
                })
            })
            .collect()
    }

    /// Refuses a correction that does not fit its model's strategies.
    pub fn check(&self) -> Result<(), String> {
        let f = self.features.len();
        if f > 15 {
            return Err(format!("the correction reads {f} features, at most 15"));
        }
        if self.center.len() != f || self.scale.len() != f {
            return Err("the correction's centre and scale do not match its features".into());
        }
        if self.weights.len() != K || self.weights.iter().any(|w| w.len() != f + 1) {
            return Err(format!(
                "the correction needs {K} rows of {} weights",
                f + 1
            ));
        }
        Ok(())
    }
}

/// Solves `a x = b` (`d × d`, symmetric positive definite) by Gaussian
/// elimination with partial pivoting; `None` when singular.
fn solve(a: &mut [f64], b: &mut [f64], d: usize) -> Option<Vec<f64>> {
    for col in 0..d {
        let pivot =
            (col..d).max_by(|&x, &y| a[x * d + col].abs().total_cmp(&a[y * d + col].abs()))?;
        if a[pivot * d + col].abs() < 1e-12 {
            return None;
        }
        if pivot != col {
            for k in 0..d {
                a.swap(col * d + k, pivot * d + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..d {
            let factor = a[row * d + col] / a[col * d + col];
            for k in col..d {
                a[row * d + k] -= factor * a[col * d + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; d];
    for row in (0..d).rev() {
        let rest: f64 = (row + 1..d).map(|k| a[row * d + k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row * d + row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A pooled model that is right for every strategy but `call`, where it
    /// is 0.2 too low for accounts with a high feature value and right for
    /// the rest; calls were chosen mostly for high values (confounded). The
    /// correction must find the gap for call and leave the others alone.
    #[test]
    fn the_correction_finds_a_strategys_error_under_confounded_logging() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let call = 1;
        let (mut z, mut q, mut logged, mut paid, mut e) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..40_000 {
            let high = rng.random_bool(0.5);
            let p_call_chosen = if high { 0.6 } else { 0.1 };
            let s = if rng.random_bool(p_call_chosen) {
                call
            } else {
                rng.random_range(2..K)
            };
            let propensity = if s == call {
                p_call_chosen
            } else {
                (1.0 - p_call_chosen) / (K - 2) as f64
            };
            let pooled = [0.3; K];
            let truth = if s == call && high { 0.5 } else { 0.3 };
            z.push(vec![f64::from(u8::from(high))]);
            q.push(pooled);
            logged.push(s);
            paid.push(rng.random_bool(truth));
            e.push(propensity);
        }
        let c = Correction::fit(&["x".to_string()], &z, &q, &logged, &paid, &e, 1e-4);
        let high = c.apply(0.3, &[1.0], call);
        let low = c.apply(0.3, &[0.0], call);
        assert!((high - 0.5).abs() < 0.04, "call, high: {high}");
        assert!((low - 0.3).abs() < 0.04, "call, low: {low}");
        for s in 2..K {
            for v in [0.0, 1.0] {
                let p = c.apply(0.3, &[v], s);
                assert!((p - 0.3).abs() < 0.05, "strategy {s}, x {v}: {p}");
            }
        }
        // A heavy penalty leaves only the mean shift.
        let flat = Correction::fit(&["x".to_string()], &z, &q, &logged, &paid, &e, 1e3);
        let gap = flat.apply(0.3, &[1.0], call) - flat.apply(0.3, &[0.0], call);
        assert!(gap.abs() < 0.01, "{gap}");
        assert!(c.check().is_ok());
    }
}
