//! How good a probability is: ranking (ROC AUC, KS), accuracy (Brier score),
//! calibration and lift by decile, and response by strategy.

use serde::{Deserialize, Serialize};

/// One tenth of the scored rows, highest predicted probability first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    /// 1 holds the highest predicted probabilities.
    pub decile: usize,
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
    /// Observed rate over the overall rate: how much better than random this tenth pays.
    pub lift: f64,
}

/// Response to one strategy among the scored rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyResponse {
    pub strategy: String,
    pub rows: usize,
    pub observed_rate: f64,
    pub mean_predicted: f64,
}

/// The metrics of a probability model on one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub observed_rate: f64,
    pub mean_predicted: f64,
    pub roc_auc: f64,
    pub brier: f64,
    pub ks: f64,
    pub deciles: Vec<Decile>,
    pub by_strategy: Vec<StrategyResponse>,
}

impl Metrics {
    /// Scores `predicted` probabilities against what happened; `strategies`,
    /// when given, names each row's logged strategy.
    pub fn of(predicted: &[f64], paid: &[bool], strategies: Option<&[&str]>) -> Metrics {
        assert_eq!(predicted.len(), paid.len(), "one prediction per label");
        let rows = predicted.len();
        let observed_rate = mean(paid.iter().map(|&p| f64::from(u8::from(p))));
        Metrics {
            rows,
            observed_rate,
            mean_predicted: mean(predicted.iter().copied()),
            roc_auc: roc_auc(predicted, paid),
            brier: brier(predicted, paid),
            ks: ks(predicted, paid),
            deciles: deciles(predicted, paid, observed_rate),
            by_strategy: strategies
                .map(|s| by_strategy(predicted, paid, s))
                .unwrap_or_default(),
        }
    }

    /// Largest gap between predicted and observed rate over the deciles.
    pub fn worst_decile_gap(&self) -> f64 {
        self.deciles
            .iter()
            .map(|d| (d.mean_predicted - d.observed_rate).abs())
            .fold(0.0, f64::max)
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// Row order by predicted probability, highest first (ties keep row order).
fn descending(predicted: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..predicted.len()).collect();
    order.sort_by(|&a, &b| predicted[b].total_cmp(&predicted[a]));
    order
}

/// Area under the ROC curve: the chance that a random payer scores above a
/// random non-payer (ties count one half). 0.5 when one class is missing.
pub fn roc_auc(predicted: &[f64], paid: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..predicted.len()).collect();
    order.sort_by(|&a, &b| predicted[a].total_cmp(&predicted[b]));
    let positives = paid.iter().filter(|&&p| p).count() as f64;
    let negatives = paid.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    // Sum of the (tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && predicted[order[end]] == predicted[order[start]] {
            end += 1;
        }
        let average_rank = (start + end + 1) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| paid[i]).count();
        rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Mean squared difference between the predicted probability and the outcome (0 or 1).
pub fn brier(predicted: &[f64], paid: &[bool]) -> f64 {
    mean(
        predicted
            .iter()
            .zip(paid)
            .map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2)),
    )
}

/// Kolmogorov–Smirnov statistic: the largest gap between the share of payers
/// and the share of non-payers scoring above a threshold.
pub fn ks(predicted: &[f64], paid: &[bool]) -> f64 {
    let positives = paid.iter().filter(|&&p| p).count() as f64;
    let negatives = paid.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.0;
    }
    let order = descending(predicted);
    let (mut seen_pos, mut seen_neg, mut best) = (0.0, 0.0, 0.0f64);
    for (k, &i) in order.iter().enumerate() {
        if paid[i] {
            seen_pos += 1.0;
        } else {
            seen_neg += 1.0;
        }
        let last_of_tie = k + 1 == order.len() || predicted[order[k + 1]] != predicted[i];
        if last_of_tie {
            best = best.max((seen_pos / positives - seen_neg / negatives).abs());
        }
    }
    best
}

fn deciles(predicted: &[f64], paid: &[bool], overall: f64) -> Vec<Decile> {
    let order = descending(predicted);
    let n = order.len();
    (0..10)
        .filter_map(|d| {
            let (from, to) = (d * n / 10, (d + 1) * n / 10);
            let rows = &order[from..to];
            if rows.is_empty() {
                return None;
            }
            let observed_rate = mean(rows.iter().map(|&i| f64::from(u8::from(paid[i]))));
            Some(Decile {
                decile: d + 1,
                rows: rows.len(),
                mean_predicted: mean(rows.iter().map(|&i| predicted[i])),
                observed_rate,
                lift: if overall > 0.0 {
                    observed_rate / overall
                } else {
                    0.0
                },
            })
        })
        .collect()
}

fn by_strategy(predicted: &[f64], paid: &[bool], strategies: &[&str]) -> Vec<StrategyResponse> {
    let mut names: Vec<&str> = strategies.to_vec();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let rows: Vec<usize> = (0..strategies.len())
                .filter(|&i| strategies[i] == name)
                .collect();
            StrategyResponse {
                strategy: name.to_string(),
                rows: rows.len(),
                observed_rate: mean(rows.iter().map(|&i| f64::from(u8::from(paid[i])))),
                mean_predicted: mean(rows.iter().map(|&i| predicted[i])),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_half_ties() {
        // Pairs (payer, non-payer): (0.9,0.1) right, (0.9,0.5) right,
        // (0.5,0.1) right, (0.5,0.5) tie: (3 + 0.5) / 4.
        let predicted = [0.9, 0.5, 0.5, 0.1];
        let paid = [true, true, false, false];
        assert!((roc_auc(&predicted, &paid) - 0.875).abs() < 1e-12);
        let reversed: Vec<bool> = paid.iter().map(|p| !p).collect();
        assert!((roc_auc(&predicted, &reversed) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn brier_and_ks_by_hand() {
        let predicted = [0.8, 0.6, 0.4, 0.2];
        let paid = [true, false, true, false];
        let expected = (0.04 + 0.36 + 0.36 + 0.04) / 4.0;
        assert!((brier(&predicted, &paid) - expected).abs() < 1e-12);
        // After the first row: 1/2 of payers, 0 of non-payers.
        assert!((ks(&predicted, &paid) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn deciles_put_the_highest_predictions_first_and_cover_every_row() {
        let predicted: Vec<f64> = (0..95).map(|i| i as f64 / 100.0).collect();
        let paid: Vec<bool> = (0..95).map(|i| i >= 50).collect();
        let m = Metrics::of(&predicted, &paid, None);
        assert_eq!(m.deciles.len(), 10);
        assert_eq!(m.deciles.iter().map(|d| d.rows).sum::<usize>(), 95);
        assert_eq!(m.deciles[0].observed_rate, 1.0);
        assert_eq!(m.deciles[9].observed_rate, 0.0);
        assert!(m.deciles[0].mean_predicted > m.deciles[9].mean_predicted);
        assert!((m.roc_auc - 1.0).abs() < 1e-12);
    }
}
