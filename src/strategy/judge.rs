//! What training chooses decision models by: the doubly robust value of the
//! capacity-constrained plan a candidate would make on out-of-fold rows,
//! under the same compliance rules, costs and capacities as `plan`.

use std::collections::HashMap;

use super::allocate::{allocate, K};
use super::config::EngineConfig;
use super::plan::{values_of, PlanError, MONEY_UNITS};
use super::rules::{self, Rule};
use super::state::account_states;
use crate::contract::parse::days_to_date;
use crate::contract::{DataSet, Strategy};
use crate::model::train::Labelled;
use crate::model::DecisionJudge;

/// Everything the judge knows of each labelled (outcomes) row.
pub struct OutOfFoldJudge {
    /// The rules' verdict on every strategy, on the row's day.
    blocked: Vec<[Option<Rule>; K]>,
    /// The row's day, as days since the epoch.
    day: Vec<i32>,
    logged: Vec<usize>,
    /// What the logged decision brought, net of its cost (currency units).
    reward: Vec<f64>,
    propensity: Vec<Option<f64>>,
    /// Labelled rows on each day: a capacity is the day's, shared out
    /// in proportion to the rows judged.
    rows_on: HashMap<i32, usize>,
    costs: [f64; K],
    config: EngineConfig,
}

impl OutOfFoldJudge {
    /// Applies the rules to every labelled row on its own day.
    pub fn new(
        data: &DataSet,
        labelled: &Labelled,
        config: &EngineConfig,
    ) -> Result<OutOfFoldJudge, PlanError> {
        let ids = labelled.features.column("account_id")?.str()?.clone();
        let days: Vec<i32> = labelled
            .features
            .column("as_of")?
            .date()?
            .physical()
            .iter()
            .map(|d| d.unwrap_or(0))
            .collect();
        let account_row: HashMap<&str, usize> = data
            .accounts
            .column("account_id")?
            .str()?
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((id?, i)))
            .collect();
        let mut distinct = days.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut blocked = vec![[None; K]; days.len()];
        let mut rows_on = HashMap::new();
        for day in distinct {
            let states = account_states(data, days_to_date(day), &config.rules)?;
            for (i, id) in ids.iter().enumerate() {
                if days[i] != day {
                    continue;
                }
                *rows_on.entry(day).or_insert(0) += 1;
                if let Some(&row) = id.and_then(|id| account_row.get(id)) {
                    blocked[i] = std::array::from_fn(|s| {
                        rules::blocked_by(Strategy::ALL[s], &states[row], &config.rules)
                    });
                }
            }
        }
        let costs: [f64; K] =
            std::array::from_fn(|s| config.cost_units(Strategy::ALL[s]) as f64 / MONEY_UNITS);
        let logged: Vec<usize> = labelled.strategies.iter().map(|&s| s as usize).collect();
        // A logged strategy was allowed when it was chosen, whatever today's rules say.
        for (b, &s) in blocked.iter_mut().zip(&logged) {
            b[s] = None;
        }
        let reward = labelled
            .paid
            .iter()
            .zip(&labelled.amounts)
            .zip(&logged)
            .map(|((&paid, &amount), &s)| if paid { amount } else { 0.0 } - costs[s])
            .collect();
        Ok(OutOfFoldJudge {
            blocked,
            day: days,
            logged,
            reward,
            propensity: labelled.propensities.clone(),
            rows_on,
            costs,
            config: config.clone(),
        })
    }
}

impl DecisionJudge for OutOfFoldJudge {
    fn terms(
        &self,
        rows: &[usize],
        p: &[[f64; K]],
        a: &[[f64; K]],
        reference: (&[[f64; K]], &[[f64; K]]),
    ) -> Vec<f64> {
        let blocked: Vec<[Option<Rule>; K]> = rows.iter().map(|&r| self.blocked[r]).collect();
        let values = values_of(p, a, &blocked, &self.config);
        // Each day is planned on its own, with its share of the capacities.
        let mut by_day: HashMap<i32, Vec<usize>> = HashMap::new();
        for (k, &r) in rows.iter().enumerate() {
            by_day.entry(self.day[r]).or_default().push(k);
        }
        let mut plan = vec![0usize; rows.len()];
        for (day, members) in by_day {
            let share = members.len() as f64 / self.rows_on[&day].max(1) as f64;
            let capacity: [Option<u64>; K] = std::array::from_fn(|s| {
                self.config.strategies[s]
                    .capacity
                    .map(|c| (c as f64 * share).round() as u64)
            });
            let day_values: Vec<_> = members.iter().map(|&k| values[k]).collect();
            for (k, s) in members.iter().zip(allocate(&day_values, &capacity)) {
                plan[*k] = s;
            }
        }
        let (rp, ra) = reference;
        rows.iter()
            .enumerate()
            .map(|(k, &r)| {
                let modelled = |s: usize| rp[k][s] * ra[k][s] - self.costs[s];
                let chosen = plan[k];
                let mut term = modelled(chosen);
                if let (true, Some(e)) = (chosen == self.logged[r], self.propensity[r]) {
                    term += (self.reward[r] - modelled(chosen)) / e.max(1e-6);
                }
                term
            })
            .collect()
    }
}
