//! A synthetic collections portfolio in the contract's tables, for demos,
//! tests and benchmarks. Accounts carry hidden traits (see [`response`]) that
//! show only through their payment and contact history. Deterministic for a
//! seed, whatever the number of threads.

mod account;
pub mod living;
pub mod response;

pub use response::World;
pub mod tables;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use account::{simulate_account, Calendar};
use tables::ChunkTables;

/// Accounts simulated together on one thread with one random stream.
const CHUNK: usize = 4096;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulationParams {
    pub accounts: usize,
    pub seed: u64,
    /// The portfolio's as-of day: the last cycle ends on or before it.
    pub as_of: NaiveDate,
    /// Monthly cycles of payment history per account.
    pub cycles: usize,
    pub currency: String,
    /// The latent response: the project's own world or a second, different one.
    pub world: World,
}

/// The simulated tables.
pub struct Portfolio {
    pub accounts: DataFrame,
    pub payment_history: DataFrame,
    pub actions: DataFrame,
    pub outcomes: DataFrame,
    /// The hidden truth (not a contract table): per account, `p_<strategy>`,
    /// the true probability of paying under each strategy, and
    /// `amount_<strategy>`, the expected amount collected if it pays.
    pub truth: DataFrame,
}

/// The last day of the month `date` falls in.
pub(crate) fn month_end(date: NaiveDate) -> NaiveDate {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .expect("valid month")
        .pred_opt()
        .expect("a day before")
}

/// Month-end cycle dates, oldest first, the last on or before `as_of`.
pub(crate) fn cycle_ends(as_of: NaiveDate, cycles: usize) -> Vec<NaiveDate> {
    let mut last = month_end(as_of);
    if last > as_of {
        last = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 1)
            .expect("first of month")
            .pred_opt()
            .expect("day");
    }
    let mut ends = vec![last];
    while ends.len() < cycles {
        let first_of_month =
            NaiveDate::from_ymd_opt(ends[0].year(), ends[0].month(), 1).expect("first of month");
        ends.insert(0, first_of_month.pred_opt().expect("day before"));
    }
    ends
}

/// Simulates a portfolio; `progress` is called with the number of accounts done.
pub fn simulate(
    params: &SimulationParams,
    progress: impl Fn(usize) + Sync,
) -> PolarsResult<Portfolio> {
    let calendar = Calendar {
        cycle_ends: cycle_ends(params.as_of, params.cycles.max(1)),
        as_of: params.as_of,
        world: params.world,
    };
    let chunks = params.accounts.div_ceil(CHUNK);
    let frames: Vec<[DataFrame; 5]> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
            rng.set_stream(chunk as u64);
            let mut out = ChunkTables::default();
            let start = chunk * CHUNK;
            for index in start..(start + CHUNK).min(params.accounts) {
                simulate_account(index, &calendar, &mut rng, &mut out);
            }
            progress((start + CHUNK).min(params.accounts) - start);
            out.into_frames(&params.currency, params.as_of)
        })
        .collect::<PolarsResult<_>>()?;
    let stack = |table: usize| -> PolarsResult<DataFrame> {
        let mut parts = frames.iter().map(|f| f[table].clone());
        let mut first = parts.next().expect("at least one chunk");
        for part in parts {
            first.vstack_mut_owned(part)?;
        }
        Ok(first)
    };
    Ok(Portfolio {
        accounts: stack(0)?,
        payment_history: stack(1)?,
        actions: stack(2)?,
        outcomes: stack(3)?,
        truth: stack(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_end_on_month_ends_up_to_the_as_of_day() {
        let ends = cycle_ends(NaiveDate::from_ymd_opt(2026, 3, 15).expect("date"), 3);
        let shown: Vec<String> = ends.iter().map(|d| d.to_string()).collect();
        assert_eq!(shown, ["2025-12-31", "2026-01-31", "2026-02-28"]);
    }
}
