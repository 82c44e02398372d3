//! The day's plan: rules first, then expected values, exploration, and the
//! allocation under capacity; then each strategy's queue in order of what its
//! next unit of capacity is worth.

use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::prelude::*;

use super::allocate::{self, Values, K};
use super::config::EngineConfig;
use super::rules::{self, AccountState, Rule};
use super::state::account_states;
use crate::contract::parse::money_to_decimal;
use crate::contract::{DataSet, Strategy};
use crate::features::{build, spine_for_date};
use crate::model::design::StrategyInput;
use crate::model::{reasons, Model, ModelError};

/// Money inside the engine: whole ten-thousandths of the currency unit (the
/// contract's 4 fractional digits), so that sums are exact.
pub const MONEY_UNITS: f64 = 10_000.0;

/// Errors of planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("planning: {0}")]
    Polars(#[from] PolarsError),
    #[error(transparent)]
    Features(#[from] crate::features::FeatureError),
    #[error("{0}")]
    Invalid(String),
}

/// What the engine knows about every account on the planning day, in
/// `account_id` order.
pub struct Book {
    pub day: NaiveDate,
    pub ids: Vec<String>,
    pub currency: Vec<String>,
    pub days_past_due: Vec<i32>,
    /// Balance in ten-thousandths.
    pub balance: Vec<i128>,
    pub states: Vec<AccountState>,
    /// The rule that removed each strategy, if one did.
    pub blocked: Vec<[Option<Rule>; K]>,
    /// The model's calibrated P(paid | strategy).
    pub p_pay: Vec<[f64; K]>,
    /// The model's expected amount collected if paid, by strategy.
    pub amount: Vec<[f64; K]>,
    /// Expected value net of cost in ten-thousandths; `None` where blocked.
    pub values: Vec<Values>,
    /// The propensity model's calibrated P(pay): the account's risk.
    pub risk: Vec<f64>,
    /// The propensity model's reasons, joined.
    pub reasons: Vec<String>,
    /// The live model (champion).
    pub model_version: String,
    /// The challenger, if a share of people was planned by one.
    pub challenger: Option<String>,
    /// Whether each account was scored (and is allocated) by the challenger.
    pub by_challenger: Vec<bool>,
}

impl Book {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The model that scored account `i`.
    pub fn model_of(&self, i: usize) -> &str {
        match (&self.challenger, self.by_challenger[i]) {
            (Some(challenger), true) => challenger,
            _ => &self.model_version,
        }
    }

    /// The strategies the rules allow for account `i`.
    pub fn allowed(&self, i: usize) -> Vec<usize> {
        (0..K).filter(|&s| self.blocked[i][s].is_none()).collect()
    }
}

/// Expected value of each allowed strategy, net of its cost, in ten-thousandths.
pub fn values_of(
    p_pay: &[[f64; K]],
    amount: &[[f64; K]],
    blocked: &[[Option<Rule>; K]],
    config: &EngineConfig,
) -> Vec<Values> {
    let costs: [i64; K] = std::array::from_fn(|s| config.cost_units(Strategy::ALL[s]));
    use rayon::prelude::*;
    p_pay
        .par_iter()
        .zip(amount)
        .zip(blocked)
        .map(|((p, a), b)| {
            std::array::from_fn(|s| {
                b[s].is_none()
                    .then(|| (p[s] * a[s] * MONEY_UNITS).round() as i64 - costs[s])
            })
        })
        .collect()
}

/// The models that plan a day: the live one (champion) and, for a fixed
/// share of people, a challenger.
#[derive(Clone, Copy)]
pub struct Arms<'a> {
    pub champion: &'a Model,
    /// The challenger and the share of people it plans.
    pub challenger: Option<(&'a Model, f64)>,
}

impl<'a> Arms<'a> {
    /// The live model alone.
    pub fn single(model: &'a Model) -> Arms<'a> {
        Arms {
            champion: model,
            challenger: None,
        }
    }
}

/// Whether `person` is planned by the challenger: a seeded hash of the
/// person alone, so that the same people stay on the same side every day.
pub fn in_challenger(person: &str, share: f64) -> bool {
    unit(stable_hash_bytes(person.bytes(), 0x6368_616c, 4)) < share
}

/// Computes features, rules and the model's values for every account on `day`.
pub fn assess(
    data: &DataSet,
    model: &Model,
    config: &EngineConfig,
    day: NaiveDate,
    progress: &dyn Fn(&str),
) -> Result<Book, PlanError> {
    assess_arms(data, Arms::single(model), config, day, progress)
}

/// [`assess`] with a challenger: features and rules once, then each side's
/// accounts scored by its own model.
pub fn assess_arms(
    data: &DataSet,
    arms: Arms<'_>,
    config: &EngineConfig,
    day: NaiveDate,
    progress: &dyn Fn(&str),
) -> Result<Book, PlanError> {
    let started = std::time::Instant::now();
    let lap =
        |stage: &str| tracing::info!(seconds = started.elapsed().as_secs_f64(), stage, "plan");
    // The rules read only the accounts and their actions: they run beside
    // the features, which leave much of a second core idle.
    progress("computing features and applying the compliance rules");
    let (features, states) = std::thread::scope(|scope| {
        let rules = scope.spawn(|| account_states(data, day, &config.rules));
        let features = (|| -> Result<DataFrame, PlanError> {
            let spine = spine_for_date(&data.accounts, day)?;
            let features = build(data, &spine)?;
            arms.champion.check_features(&features)?;
            if let Some((challenger, _)) = arms.challenger {
                challenger.check_features(&features)?;
            }
            Ok(features)
        })();
        let states = rules
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (features, states)
    });
    let (features, states) = (features?, states?);
    lap("features and rules");
    // Features come sorted by account_id; the accounts table may not be.
    let ids: Vec<String> = features
        .column("account_id")?
        .str()?
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect();
    let account_ids = data.accounts.column("account_id")?.str()?;
    let in_order = account_ids.len() == ids.len()
        && account_ids
            .iter()
            .zip(&ids)
            .all(|(a, b)| a == Some(b.as_str()));
    // The accounts in the features' order (usually already so).
    let (accounts, states) = if in_order {
        (std::borrow::Cow::Borrowed(&data.accounts), states)
    } else {
        let row_of: PlHashMap<&str, usize> = account_ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((id?, i)))
            .collect();
        let rows: Vec<usize> = ids.iter().map(|id| row_of[id.as_str()]).collect();
        let take = IdxCa::from_vec("rows".into(), rows.iter().map(|&r| r as IdxSize).collect());
        (
            std::borrow::Cow::Owned(data.accounts.take(&take)?),
            rows.iter().map(|&r| states[r].clone()).collect(),
        )
    };
    let blocked: Vec<[Option<Rule>; K]> = {
        use rayon::prelude::*;
        states
            .par_iter()
            .map(|state| {
                std::array::from_fn(|s| rules::blocked_by(Strategy::ALL[s], state, &config.rules))
            })
            .collect()
    };
    let currency: Vec<String> = accounts
        .column("currency")?
        .str()?
        .iter()
        .map(|c| c.unwrap_or("").to_string())
        .collect();
    let days_past_due: Vec<i32> = accounts
        .column("days_past_due")?
        .i32()?
        .iter()
        .map(|d| d.unwrap_or(0))
        .collect();
    let balance: Vec<i128> = accounts
        .column("balance")?
        .decimal()?
        .physical()
        .iter()
        .map(|b| b.unwrap_or(0))
        .collect();
    let past_due: Vec<f64> = accounts
        .column("amount_past_due")?
        .decimal()?
        .physical()
        .iter()
        .map(|a| a.unwrap_or(0) as f64 / MONEY_UNITS)
        .collect();
    let by_challenger: Vec<bool> = match arms.challenger {
        Some((_, share)) => accounts
            .column("customer_id")?
            .str()?
            .iter()
            .zip(accounts.column("account_id")?.str()?.iter())
            .map(|(customer, account)| in_challenger(customer.or(account).unwrap_or(""), share))
            .collect(),
        None => vec![false; ids.len()],
    };
    lap("accounts in the features' order");

    progress("scoring every strategy");
    let scored = match arms.challenger {
        None => score(arms.champion, &features, &past_due, &lap)?,
        Some((challenger, _)) => score_sides(
            arms.champion,
            challenger,
            &by_challenger,
            &features,
            &past_due,
            &lap,
        )?,
    };
    let values = values_of(&scored.p_pay, &scored.amount, &blocked, config);
    Ok(Book {
        day,
        ids,
        currency,
        days_past_due,
        balance,
        states,
        blocked,
        p_pay: scored.p_pay,
        amount: scored.amount,
        values,
        risk: scored.risk,
        reasons: scored.reasons,
        model_version: arms.champion.meta.version.clone(),
        challenger: arms.challenger.map(|(m, _)| m.meta.version.clone()),
        by_challenger,
    })
}

/// One model's view of some accounts.
struct Scored {
    risk: Vec<f64>,
    reasons: Vec<String>,
    p_pay: Vec<[f64; K]>,
    amount: Vec<[f64; K]>,
}

/// Scores the champion's accounts with the champion and the challenger's
/// (where `by_challenger`) with the challenger, back in the accounts' order.
fn score_sides(
    champion: &Model,
    challenger: &Model,
    by_challenger: &[bool],
    features: &DataFrame,
    past_due: &[f64],
    lap: &dyn Fn(&str),
) -> Result<Scored, PlanError> {
    let n = by_challenger.len();
    let mut scored = Scored {
        risk: vec![0.0; n],
        reasons: vec![String::new(); n],
        p_pay: vec![[0.0; K]; n],
        amount: vec![[0.0; K]; n],
    };
    for (model, side) in [(champion, false), (challenger, true)] {
        let members: Vec<usize> = (0..n).filter(|&i| by_challenger[i] == side).collect();
        if members.is_empty() {
            continue;
        }
        let mask = BooleanChunked::from_iter_values(
            "side".into(),
            by_challenger.iter().map(|&b| b == side),
        );
        let subset: Vec<f64> = members.iter().map(|&i| past_due[i]).collect();
        let mut part = score(model, &features.filter(&mask)?, &subset, lap)?;
        for (k, i) in members.into_iter().enumerate() {
            scored.risk[i] = part.risk[k];
            scored.reasons[i] = std::mem::take(&mut part.reasons[k]);
            scored.p_pay[i] = part.p_pay[k];
            scored.amount[i] = part.amount[k];
        }
    }
    Ok(scored)
}

/// P(pay) with reasons, then P(paid | strategy) and the amount if paid under
/// every strategy, for the accounts of `features` (whose past-due amounts
/// are `past_due`, the amount expected without an amount model).
fn score(
    model: &Model,
    features: &DataFrame,
    past_due: &[f64],
    lap: &dyn Fn(&str),
) -> Result<Scored, PlanError> {
    use rayon::prelude::*;
    // The response and amount models usually read the propensity model's
    // inputs and the strategy: then one design, with the strategy inputs
    // added after P(pay), serves all three.
    let propensity_inputs = &model.propensity.inputs;
    let reads_the_same = |inputs: &crate::model::design::InputSpec| {
        inputs.strategy
            && inputs.interactions.is_empty()
            && inputs.numeric == propensity_inputs.numeric
            && inputs.products == propensity_inputs.products
    };
    let shared = match (&model.response, &model.amount) {
        (Some(r), Some(a))
            if !propensity_inputs.strategy
                && reads_the_same(&r.inputs)
                && reads_the_same(&a.inputs) =>
        {
            Some((r, a))
        }
        _ => None,
    };
    let room = if shared.is_some() { K } else { 0 };
    let mut design = propensity_inputs.design_with_room(features, StrategyInput::Absent, room)?;
    let propensity = model.propensity.probabilities_of(&design);
    let reasons: Vec<String> = model
        .propensity
        .reasons_of(&design)
        .par_iter()
        .map(|r| reasons::joined(r))
        .collect();
    lap("propensity and reasons");
    let n = features.height();
    if let Some((response, amounts)) = shared {
        design.add_strategy_inputs(Strategy::None);
        // Each tree walked once for all strategies.
        let amount = amounts
            .amounts_all_strategies(&design)
            .expect("the design carries the strategy");
        lap("amounts under every strategy");
        let p_pay = match response.probabilities_all_strategies(&design) {
            Some(all) => all,
            None => {
                let mut p_pay = vec![[0.0; K]; n];
                for strategy in Strategy::ALL {
                    design.set_strategy(strategy);
                    for (row, p) in p_pay.iter_mut().zip(response.probabilities_of(&design)) {
                        row[strategy as usize] = p;
                    }
                }
                p_pay
            }
        };
        lap("P(paid) under every strategy");
        return Ok(Scored {
            risk: propensity,
            reasons,
            p_pay,
            amount,
        });
    }
    drop(design);
    let mut p_pay = vec![[0.0; K]; n];
    let mut amount = vec![[0.0; K]; n];
    for strategy in Strategy::ALL {
        let s = strategy as usize;
        let p = match &model.response {
            Some(response) => response.probabilities(features, StrategyInput::All(strategy))?,
            None => propensity.clone(),
        };
        let a = match &model.amount {
            Some(amounts) => {
                let input = match amounts.inputs.strategy {
                    true => StrategyInput::All(strategy),
                    false => StrategyInput::Absent,
                };
                amounts.amounts(features, input)?
            }
            // Without an amount model, a payer is expected to pay what is past due.
            None => past_due.to_vec(),
        };
        for i in 0..n {
            p_pay[i][s] = p[i];
            amount[i][s] = a[i];
        }
        lap(strategy.as_str());
    }
    Ok(Scored {
        risk: propensity,
        reasons,
        p_pay,
        amount,
    })
}

/// One account's decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub strategy: usize,
    /// Probability with which the strategy was chosen: 1 unless the account
    /// fell in the exploration share.
    pub propensity: f64,
}

/// A 64-bit hash of an account on a day, stable across runs and platforms.
fn stable_hash(id: &str, day: NaiveDate, seed: u64, salt: u64) -> u64 {
    let day = crate::contract::parse::date_to_days(day).to_le_bytes();
    stable_hash_bytes(id.bytes().chain(day), seed, salt)
}

/// FNV-1a over `bytes`, seeded and salted, with SplitMix64's finaliser.
pub(crate) fn stable_hash_bytes(bytes: impl Iterator<Item = u8>, seed: u64, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    for byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether account `id` falls in the exploration share on `day`.
pub fn explored(id: &str, day: NaiveDate, config: &EngineConfig) -> bool {
    config.explore > 0.0 && unit(stable_hash(id, day, config.explore_seed, 1)) < config.explore
}

/// The exploration share's decisions (`None` for the accounts outside it):
/// each draws uniformly among its allowed strategies that still have
/// capacity, in a seeded order; and the capacity left for the rest.
pub fn explore(book: &Book, config: &EngineConfig) -> (Vec<Option<Decision>>, [Option<u64>; K]) {
    let mut capacity: [Option<u64>; K] = std::array::from_fn(|s| config.strategies[s].capacity);
    let mut decisions: Vec<Option<Decision>> = vec![None; book.len()];
    use rayon::prelude::*;
    let mut explore: Vec<usize> = (0..book.len())
        .into_par_iter()
        .filter(|&i| explored(&book.ids[i], book.day, config))
        .collect();
    explore.sort_by_key(|&i| stable_hash(&book.ids[i], book.day, config.explore_seed, 2));
    for i in explore {
        let open: Vec<usize> = book
            .allowed(i)
            .into_iter()
            .filter(|&s| capacity[s] != Some(0))
            .collect();
        let pick = stable_hash(&book.ids[i], book.day, config.explore_seed, 3) % open.len() as u64;
        let strategy = open[pick as usize];
        if let Some(left) = capacity[strategy].as_mut() {
            *left -= 1;
        }
        decisions[i] = Some(Decision {
            strategy,
            propensity: 1.0 / open.len() as f64,
        });
    }
    (decisions, capacity)
}

/// Decides every account's strategy: the exploration share first (a uniform
/// draw among the allowed strategies that still have capacity), then the
/// value-maximising allocation of the rest under what capacity is left.
pub fn decide(book: &Book, config: &EngineConfig) -> Vec<Decision> {
    let (mut decisions, capacity) = explore(book, config);
    let rest: Vec<usize> = (0..book.len())
        .filter(|&i| decisions[i].is_none())
        .collect();
    // With a challenger each side gets the capacity left in proportion to
    // its accounts, so that the two plans can be compared fairly.
    let (challenger, champion): (Vec<usize>, Vec<usize>) =
        rest.into_iter().partition(|&i| book.by_challenger[i]);
    let total = (challenger.len() + champion.len()).max(1) as u64;
    let challenger_capacity: [Option<u64>; K] = std::array::from_fn(|s| {
        capacity[s].map(|left| {
            ((u128::from(left) * challenger.len() as u128 + u128::from(total) / 2)
                / u128::from(total)) as u64
        })
    });
    let champion_capacity: [Option<u64>; K] =
        std::array::from_fn(|s| capacity[s].map(|left| left - challenger_capacity[s].unwrap_or(0)));
    for (side, side_capacity) in [
        (champion, champion_capacity),
        (challenger, challenger_capacity),
    ] {
        let chosen = allocate::allocate_among(&book.values, &side, &side_capacity);
        for (&i, strategy) in side.iter().zip(chosen) {
            decisions[i] = Some(Decision {
                strategy,
                propensity: 1.0,
            });
        }
    }
    decisions
        .into_iter()
        .map(|d| d.expect("every account decided"))
        .collect()
}

/// What the account's slot in its strategy's queue is worth: its value there
/// less its best alternative among strategies without a capacity (for
/// `none`, its value).
pub fn priority(values: &Values, strategy: usize, config: &EngineConfig) -> i64 {
    let here = values[strategy].expect("decided strategies are allowed");
    if strategy == 0 {
        return here;
    }
    let alternative = (0..K)
        .filter(|&s| s != strategy && config.strategies[s].capacity.is_none())
        .filter_map(|s| values[s])
        .max()
        .unwrap_or(0);
    here - alternative
}

/// Queue rank of every account within its strategy: by priority, highest
/// first; ties by account id.
pub fn queue_ranks(book: &Book, decisions: &[Decision], config: &EngineConfig) -> Vec<u32> {
    use rayon::prelude::*;
    let mut order: Vec<usize> = (0..book.len()).collect();
    let priorities: Vec<i64> = decisions
        .par_iter()
        .enumerate()
        .map(|(i, d)| priority(&book.values[i], d.strategy, config))
        .collect();
    // Account ids are unique, so the order is total and an unstable sort
    // gives the one order there is.
    order.par_sort_unstable_by(|&a, &b| {
        (
            decisions[a].strategy,
            std::cmp::Reverse(priorities[a]),
            &book.ids[a],
        )
            .cmp(&(
                decisions[b].strategy,
                std::cmp::Reverse(priorities[b]),
                &book.ids[b],
            ))
    });
    let mut ranks = vec![0u32; book.len()];
    let mut previous: Option<usize> = None;
    let mut rank = 0;
    for i in order {
        rank = if previous == Some(decisions[i].strategy) {
            rank + 1
        } else {
            1
        };
        previous = Some(decisions[i].strategy);
        ranks[i] = rank;
    }
    ranks
}

/// The rules that removed strategies, as `rule: strategy strategy; rule: …`.
pub fn blocked_text(blocked: &[Option<Rule>; K]) -> String {
    let mut parts: Vec<(Rule, Vec<&str>)> = Vec::new();
    for (s, rule) in blocked.iter().enumerate() {
        if let Some(rule) = rule {
            match parts.iter_mut().find(|(r, _)| r == rule) {
                Some((_, names)) => names.push(Strategy::ALL[s].as_str()),
                None => parts.push((*rule, vec![Strategy::ALL[s].as_str()])),
            }
        }
    }
    parts
        .into_iter()
        .map(|(rule, names)| format!("{rule}: {}", names.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Money in ten-thousandths as a decimal with 2 places, as shown.
pub fn money(units: impl Into<i128>) -> Decimal {
    money_to_decimal(units.into()).round_dp(2)
}

/// The plan's columns: the contract's, then `currency`.
pub const PLAN_COLUMNS: [&str; 11] = [
    "account_id",
    "strategy",
    "queue_rank",
    "priority",
    "p_pay",
    "expected_value",
    "reasons",
    "blocked_by",
    "propensity",
    "model_version",
    "currency",
];

/// A float as the plan shows it: the shortest text that reads back as the
/// same number, never in exponent form, with `.0` when whole.
fn float_text(x: f64) -> String {
    let text = x.to_string();
    if x.is_finite() && !text.contains('.') {
        text + ".0"
    } else {
        text
    }
}

/// Appends one CSV field: quoted when it holds a comma, a quote or a line
/// break, or is empty (so that it reads back as an empty text, not as a
/// missing value), with quotes doubled.
fn push_field(line: &mut Vec<u8>, field: &str) {
    let quote = field.is_empty()
        || field
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quote {
        line.push(b'"');
        line.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        line.push(b'"');
    } else {
        line.extend_from_slice(field.as_bytes());
    }
}

/// Appends one CSV record.
fn push_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    for (k, field) in fields.into_iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        push_field(out, field);
    }
    out.push(b'\n');
}

/// Writes the plan as CSV, in account order, with the columns of
/// [`PLAN_COLUMNS`]. Blocks of rows are formatted in parallel, then written
/// in order.
pub fn write_plan_csv(
    book: &Book,
    decisions: &[Decision],
    config: &EngineConfig,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    const BLOCK: usize = 16_384;
    let ranks = queue_ranks(book, decisions, config);
    let mut header = Vec::new();
    push_record(&mut header, PLAN_COLUMNS);
    out.write_all(&header)?;
    let blocks: Vec<Vec<u8>> = (0..book.len().div_ceil(BLOCK))
        .into_par_iter()
        .map(|block| {
            let mut text = Vec::with_capacity(BLOCK * 256);
            for i in block * BLOCK..((block + 1) * BLOCK).min(book.len()) {
                let decision = decisions[i];
                let s = decision.strategy;
                let value = book.values[i][s].expect("decided strategies are allowed");
                push_record(
                    &mut text,
                    [
                        book.ids[i].as_str(),
                        Strategy::ALL[s].as_str(),
                        &ranks[i].to_string(),
                        &money(priority(&book.values[i], s, config)).to_string(),
                        &float_text((book.p_pay[i][s] * 1e4).round() / 1e4),
                        &money(value).to_string(),
                        &book.reasons[i],
                        &blocked_text(&book.blocked[i]),
                        &float_text(decision.propensity),
                        book.model_of(i),
                        &book.currency[i],
                    ],
                );
            }
            text
        })
        .collect();
    for block in blocks {
        out.write_all(&block)?;
    }
    Ok(())
}

/// Per strategy: accounts planned and total expected value (ten-thousandths).
pub fn mix(book: &Book, decisions: &[Decision]) -> [(u64, i64); K] {
    let mut out = [(0u64, 0i64); K];
    for (i, d) in decisions.iter().enumerate() {
        out[d.strategy].0 += 1;
        out[d.strategy].1 += book.values[i][d.strategy].expect("allowed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fields_read_back_as_written_and_empty_text_stays_text() {
        let fields = ["plain", "", "a, b", "say \"hi\"", "two\nlines", "tab\there"];
        let mut text = Vec::new();
        push_record(&mut text, fields);
        push_record(&mut text, fields);
        assert!(text.starts_with(b"plain,\"\",\"a, b\",\"say \"\"hi\"\"\""));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&text[..]);
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv")).collect();
        assert_eq!(records.len(), 2);
        for record in records {
            assert_eq!(record.iter().collect::<Vec<_>>(), fields);
        }
    }

    #[test]
    fn floats_show_as_the_plan_has_always_shown_them() {
        assert_eq!(float_text(1.0), "1.0");
        assert_eq!(float_text(0.0), "0.0");
        assert_eq!(float_text(0.1111111111111111), "0.1111111111111111");
        assert_eq!(float_text(0.0001), "0.0001");
        assert_eq!(float_text(0.2658), "0.2658");
    }
}
