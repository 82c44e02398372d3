//! `prioritize backtest`: a living book run day after day under several
//! policies on the same world and seed, to show what the learning loop does
//! to a book over weeks.
//!
//! Each morning the book is handed over as a data folder would be (typed and
//! checked by the same code as `DataSet::load`); a policy decides every
//! account's strategy through the engine (`strategy::plan`: the rules, then
//! exploration and the allocation under capacity, or the staged rules); the
//! collectors' desk carries the decisions out within the contact rules; the
//! world answers (`simulate::living`). Compliance is replayed independently
//! ([`replay`]).
//!
//! Policies:
//! - `loop`: starts on the staged rules (with the exploration share), logs
//!   every decision with its propensity, and every `retrain_every` days
//!   trains a model on its own matured outcomes. The new model is promoted
//!   only if its doubly robust value on the most recent matured days (held
//!   out of its training) beats the champion's by more than the standard
//!   error of the difference.
//! - `rules`: the staged rules throughout.
//! - `oracle`: the allocation under the same capacities of the world's true
//!   gain of each strategy today (myopic: it knows today's response, not
//!   what a contact does to tomorrow).

pub mod replay;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::contract::{DataSet, Strategy};
use crate::model::train::{labelled, train_labelled};
use crate::model::{folder, Model, TrainParams};
use crate::output::write_data_folder;
use crate::simulate::living::{share_paid_by, Exit, LivingBook, LivingParams, Snapshot};
use crate::simulate::World;
use crate::strategy::allocate::{Values, K};
use crate::strategy::config::EngineConfig;
use crate::strategy::judge::OutOfFoldJudge;
use crate::strategy::plan::{self, assess, decide, money, Book, Decision, MONEY_UNITS};
use crate::strategy::policy;
use crate::strategy::rules::{self, Rule};
use crate::strategy::state::account_states;

/// A policy run on the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    Loop,
    Rules,
    Oracle,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Loop => "loop",
            PolicyKind::Rules => "rules",
            PolicyKind::Oracle => "oracle",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BacktestParams {
    pub accounts: usize,
    pub days: usize,
    pub seed: u64,
    pub world: World,
    pub start: NaiveDate,
    pub currency: String,
    pub arrivals_per_day: f64,
    pub retrain_every: usize,
    /// Days after a decision its payments count.
    pub horizon_days: usize,
    /// The loop trains on at most this many of its decisions (a seeded
    /// sample of accounts and days).
    pub train_rows: usize,
    pub train: TrainParams,
    pub config: EngineConfig,
    pub policies: Vec<PolicyKind>,
    pub promotion: Promotion,
    /// The loop's exploration share before its first promotion.
    pub cold_explore: Option<f64>,
    /// Where to keep the loop's model folders, final data folder and outcomes.
    pub out: Option<PathBuf>,
}

/// Money of one week.
#[derive(Debug, Clone, Serialize)]
pub struct Week {
    pub week: usize,
    pub net_collected: Decimal,
    pub collected: Decimal,
    pub cost: Decimal,
}

/// What one policy did to the book.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRun {
    pub policy: &'static str,
    /// Collected less the cost of every contact made, over all days.
    pub net_collected: Decimal,
    pub collected: Decimal,
    pub cost: Decimal,
    /// Net collected over the last four weeks (or all days if fewer).
    pub net_last_four_weeks: Decimal,
    pub by_week: Vec<Week>,
    /// Contacts made, by strategy, by week.
    pub mix_by_week: Vec<HashMap<&'static str, usize>>,
    /// Accounts that cured (paid their arrears), rolled to a later 30-day
    /// bucket, and left the book, over the run.
    pub cured: usize,
    pub rolled: usize,
    pub settled: usize,
    pub paid_off: usize,
    pub placed: usize,
    pub charged_off: usize,
    /// Decisions the desk could not carry out (a limit reached by an
    /// earlier contact that day).
    pub refused: usize,
    pub violations: usize,
    /// Accounts in the book on the last morning.
    pub final_book: usize,
    pub seconds: f64,
}

/// When a retrained model replaces the champion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Promotion {
    /// When its doubly robust gain on held-out days exceeds its standard error.
    Dr,
    /// Every time.
    Always,
}

/// A retrained model replacing the champion.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub day: NaiveDate,
    pub from: String,
    pub to: String,
    /// Doubly robust value per decision of the new model's policy less the
    /// champion's, on the held-out days, and its standard error.
    pub dr_gain: Decimal,
    pub standard_error: Decimal,
    pub held_out_rows: usize,
}

/// A retraining and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Retrain {
    pub day: NaiveDate,
    pub model: String,
    pub training_rows: usize,
    pub held_out_days: Vec<NaiveDate>,
    pub dr_gain: Decimal,
    pub standard_error: Decimal,
    pub promoted: bool,
    pub seconds: f64,
}

/// The backtest's result, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub days: usize,
    pub accounts: usize,
    pub seed: u64,
    pub world: &'static str,
    pub currency: String,
    pub start: NaiveDate,
    pub horizon_days: usize,
    pub retrain_every: usize,
    pub policies: Vec<PolicyRun>,
    /// Retrainings of the loop.
    pub retrains: usize,
    pub retrainings: Vec<Retrain>,
    pub promotions: Vec<Promoted>,
    /// Compliance breaks over every policy and day, replayed independently.
    pub violations: usize,
}

/// Default capacities per day for a book of `accounts`: one unit of each
/// capped strategy per so many accounts (the benchmarks' shares).
pub const CAPACITY_SHARES: [(Strategy, usize); 7] = [
    (Strategy::Call, 25),
    (Strategy::SettlementOffer, 100),
    (Strategy::InstallmentPlan, 50),
    (Strategy::DemandLetter, 20),
    (Strategy::FieldVisit, 500),
    (Strategy::Legal, 400),
    (Strategy::Agency, 200),
];

/// The loop's log of one decision.
#[derive(Debug, Clone, Copy)]
struct Logged {
    day: i32,
    account: usize,
    strategy: usize,
    propensity: f64,
}

/// A book of the rules alone: what the staged policy and the oracle need
/// (rules, days past due, balance), no model.
fn rules_book(data: &DataSet, config: &EngineConfig, day: NaiveDate) -> Result<Book> {
    let states = account_states(data, day, &config.rules)?;
    let accounts = &data.accounts;
    let ids = strings(accounts, "account_id")?;
    let n = ids.len();
    let blocked: Vec<[Option<Rule>; K]> = states
        .iter()
        .map(|state| {
            std::array::from_fn(|s| rules::blocked_by(Strategy::ALL[s], state, &config.rules))
        })
        .collect();
    let values: Vec<Values> = blocked
        .iter()
        .map(|b| std::array::from_fn(|s| b[s].is_none().then_some(0)))
        .collect();
    let currency = strings(accounts, "currency")?;
    Ok(Book {
        day,
        currency,
        days_past_due: states.iter().map(|s| s.days_past_due).collect(),
        balance: accounts
            .column("balance")?
            .decimal()?
            .physical()
            .iter()
            .map(|b| b.unwrap_or(0))
            .collect(),
        ids,
        states,
        blocked,
        p_pay: vec![[0.0; K]; n],
        amount: vec![[0.0; K]; n],
        values,
        risk: vec![0.0; n],
        reasons: vec![String::new(); n],
        model_version: "staged-rules".into(),
        challenger: None,
        by_challenger: vec![false; n],
    })
}

/// A string column's values (missing as empty).
fn strings(frame: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// The staged rules with the exploration share: explored accounts draw
/// uniformly among their allowed strategies with capacity left (as
/// [`decide`] does), the rest follow the stages with the capacity left.
fn staged_with_exploration(book: &Book, config: &EngineConfig) -> Vec<Decision> {
    let (explored_decisions, capacity) = plan::explore(book, config);
    let mut rest = config.clone();
    for (params, left) in rest.strategies.iter_mut().zip(capacity) {
        params.capacity = left;
    }
    // Explored accounts take no stage's capacity.
    let mut blocked = book.blocked.clone();
    for (i, d) in explored_decisions.iter().enumerate() {
        if d.is_some() {
            for b in blocked[i].iter_mut().skip(1) {
                *b = Some(Rule::NoContact);
            }
        }
    }
    let view = Book {
        blocked,
        ..book_view(book)
    };
    let staged = policy::staged(&view, &rest);
    staged
        .into_iter()
        .zip(explored_decisions)
        .map(|(s, e)| e.unwrap_or(s))
        .collect()
}

/// A copy of the fields [`policy::staged`] reads.
fn book_view(book: &Book) -> Book {
    let n = book.len();
    Book {
        day: book.day,
        ids: book.ids.clone(),
        currency: vec![String::new(); n],
        days_past_due: book.days_past_due.clone(),
        balance: book.balance.clone(),
        states: Vec::new(),
        blocked: book.blocked.clone(),
        p_pay: Vec::new(),
        amount: Vec::new(),
        values: Vec::new(),
        risk: Vec::new(),
        reasons: Vec::new(),
        model_version: book.model_version.clone(),
        challenger: None,
        by_challenger: vec![false; n],
    }
}

/// Indices of the book's accounts in the world.
fn indices(book: &Book) -> Vec<usize> {
    book.ids
        .iter()
        .map(|id| LivingBook::index_of(id).expect("the world's own ids"))
        .collect()
}

/// Collections money paid on account `index` on days `from..to` (days since
/// the epoch), in cents, from the world's payments grouped by account.
fn paid_within(
    payments: &HashMap<usize, Vec<(i32, i64)>>,
    index: usize,
    from: i32,
    to: i32,
) -> i64 {
    payments.get(&index).map_or(0, |p| {
        p.iter()
            .filter(|(day, _)| *day >= from && *day < to)
            .map(|(_, c)| c)
            .sum()
    })
}

fn payments_by_account(book: &LivingBook) -> HashMap<usize, Vec<(i32, i64)>> {
    let mut by: HashMap<usize, Vec<(i32, i64)>> = HashMap::new();
    for p in book.payments.iter().filter(|p| p.collections) {
        by.entry(p.account).or_default().push((p.day, p.cents));
    }
    by
}

/// The loop's state between days.
struct Learner {
    champion: Option<Arc<Model>>,
    log: Vec<Logged>,
    snapshots: Vec<Snapshot>,
    retrainings: Vec<Retrain>,
    promotions: Vec<Promoted>,
    work: PathBuf,
    /// With `--out`: what several policies on the judged day would truly
    /// have brought (see [`Judged`]).
    judged: Option<Judged>,
    /// With `--out`, from the judged morning on: that morning's world, the
    /// logged decisions, and the champion of each day since, so that the
    /// counterfactuals, run once the run is over, have the same later days.
    pending: Option<Pending>,
}

struct Pending {
    world: LivingBook,
    logged: Vec<(usize, Strategy)>,
    /// The champion each day from the judged day on (day since the epoch).
    champions: Vec<(i32, Option<Arc<Model>>)>,
}

/// Each account's true gain of every strategy on a morning.
type Gains = Vec<(usize, [f32; K])>;

/// The judged day (the last whose horizon has passed for the store too):
/// each policy's decisions for that day's book and what the world, run on
/// from that morning with the loop deciding every later day (a clone of the
/// world, so with the same luck), truly paid within the horizon.
struct Judged {
    day: NaiveDate,
    accounts: usize,
    /// Each account's true gain of every strategy that morning (for the
    /// truth files).
    gains: Gains,
    policies: Vec<JudgedPolicy>,
}

struct JudgedPolicy {
    name: &'static str,
    decisions: Vec<(usize, Strategy)>,
    /// Collections money paid by the day's accounts on the day and the
    /// horizon's other days (the backtest's outcomes), in cents.
    paid_cents: i64,
    /// `amount_paid` of their cycles ending in the horizon's days after the
    /// day (what `prioritize outcomes` counts), in cents.
    cycle_cents: i64,
    /// The day's contacts' cost, ten-thousandths.
    cost: i64,
}

/// A morning's plan of the loop, as it would be served: the book it was
/// made from, the decisions, and the engine settings they were made under.
pub struct Served<'a> {
    pub data: &'a DataSet,
    pub book: &'a Book,
    pub decisions: &'a [Decision],
    pub config: &'a EngineConfig,
}

/// Runs every policy; `progress` is told of each day done.
pub fn run(params: &BacktestParams, progress: &(dyn Fn(&str) + Sync)) -> Result<Report> {
    run_serving(params, progress, &mut |_| Ok(()))
}

/// As [`run`], handing each of the loop's plans to `served` before the
/// desk works it (`prioritize backtest --out` stores them as `serve` does).
pub fn run_serving(
    params: &BacktestParams,
    progress: &(dyn Fn(&str) + Sync),
    served: &mut dyn FnMut(Served<'_>) -> Result<()>,
) -> Result<Report> {
    let temporary;
    let work = match &params.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temporary = tempfile::tempdir().context("a scratch folder")?;
            temporary.path().to_path_buf()
        }
    };
    let mut runs = Vec::new();
    let (mut retrainings, mut promotions) = (Vec::new(), Vec::new());
    let mut violations = 0;
    let mut seen = Vec::new();
    for &kind in &params.policies {
        if seen.contains(&kind) {
            continue;
        }
        seen.push(kind);
        // Each run has a learner (and a world) of its own.
        let mut learner = Learner {
            champion: None,
            log: Vec::new(),
            snapshots: Vec::new(),
            retrainings: Vec::new(),
            promotions: Vec::new(),
            work: work.clone(),
            judged: None,
            pending: None,
        };
        let (run, broke) = run_policy(params, kind, &mut learner, progress, served)?;
        violations += broke;
        runs.push(run);
        retrainings.extend(learner.retrainings);
        promotions.extend(learner.promotions);
    }
    Ok(Report {
        days: params.days,
        accounts: params.accounts,
        seed: params.seed,
        world: match params.world {
            World::A => "a",
            World::B => "b",
        },
        currency: params.currency.clone(),
        start: params.start,
        horizon_days: params.horizon_days,
        retrain_every: params.retrain_every,
        retrains: retrainings.len(),
        retrainings,
        promotions,
        policies: runs,
        violations,
    })
}

fn run_policy(
    params: &BacktestParams,
    kind: PolicyKind,
    learner: &mut Learner,
    progress: &(dyn Fn(&str) + Sync),
    served: &mut dyn FnMut(Served<'_>) -> Result<()>,
) -> Result<(PolicyRun, usize)> {
    let started = std::time::Instant::now();
    let config = &params.config;
    // The loop's exploration share before its first promotion.
    let cold = EngineConfig {
        explore: params.cold_explore.unwrap_or(config.explore),
        ..config.clone()
    };
    let mut world = LivingBook::new(LivingParams {
        accounts: params.accounts,
        seed: params.seed,
        start: params.start,
        currency: params.currency.clone(),
        world: params.world,
        arrivals_per_day: params.arrivals_per_day,
        max_calls_in_window: config.rules.max_calls_in_window,
        call_window_days: config.rules.call_window_days,
        cool_off_days: config.rules.conversation_cool_off_days,
    });
    let mut check = replay::Replay::new(&config.rules);
    let weeks = params.days.div_ceil(7);
    let mut collected = vec![0i64; weeks];
    let mut cost = vec![0i64; weeks];
    let mut mix: Vec<HashMap<&'static str, usize>> = vec![HashMap::new(); weeks];
    let mut run = PolicyRun {
        policy: kind.as_str(),
        net_collected: Decimal::ZERO,
        collected: Decimal::ZERO,
        cost: Decimal::ZERO,
        net_last_four_weeks: Decimal::ZERO,
        by_week: Vec::new(),
        mix_by_week: Vec::new(),
        cured: 0,
        rolled: 0,
        settled: 0,
        paid_off: 0,
        placed: 0,
        charged_off: 0,
        refused: 0,
        violations: 0,
        final_book: 0,
        seconds: 0.0,
    };
    for day_index in 0..params.days {
        let day = world.today();
        let dn = crate::contract::parse::date_to_days(day);
        check.catch_up(&world);
        let data = DataSet::from_frames("backtest", world.frames()?)
            .with_context(|| format!("the book of {day}"))?;
        if kind == PolicyKind::Loop {
            maybe_retrain(params, learner, &world, day_index, day)?;
        }
        let (book, decisions) = match kind {
            PolicyKind::Rules => {
                let book = rules_book(&data, config, day)?;
                let decisions = policy::staged(&book, config);
                (book, decisions)
            }
            PolicyKind::Oracle => {
                let book = rules_book(&data, config, day)?;
                let index = indices(&book);
                let costs: [i64; K] = std::array::from_fn(|s| config.cost_units(Strategy::ALL[s]));
                let values: Vec<Values> = index
                    .iter()
                    .zip(&book.blocked)
                    .map(|(&i, blocked)| {
                        let gain = world.true_gain(i);
                        std::array::from_fn(|s| {
                            blocked[s]
                                .is_none()
                                .then(|| (gain[s] * MONEY_UNITS / 100.0).round() as i64 - costs[s])
                        })
                    })
                    .collect();
                let decisions = policy::oracle(&values, config);
                (book, decisions)
            }
            PolicyKind::Loop => {
                loop_decisions(&data, learner.champion.as_deref(), config, &cold, day)?
            }
        };
        let index = indices(&book);
        if kind == PolicyKind::Loop {
            served(Served {
                data: &data,
                book: &book,
                decisions: &decisions,
                config: if learner.champion.is_some() {
                    config
                } else {
                    &cold
                },
            })
            .with_context(|| format!("serving the loop's plan of {day}"))?;
            let keep_from = dn - (params.horizon_days + params.retrain_every) as i32;
            learner
                .snapshots
                .retain(|s| crate::contract::parse::date_to_days(s.day) >= keep_from);
            learner.snapshots.push(world.snapshot());
            learner
                .log
                .extend(index.iter().zip(&decisions).map(|(&account, d)| Logged {
                    day: dn,
                    account,
                    strategy: d.strategy,
                    propensity: d.propensity,
                }));
        }
        let morning: HashMap<usize, rules::AccountState> = index
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.strategy != 0)
            .map(|(&i, _)| (i, world.flags(i).clone()))
            .collect();
        let chosen: Vec<(usize, Strategy)> = index
            .iter()
            .zip(&decisions)
            .map(|(&i, d)| (i, Strategy::ALL[d.strategy]))
            .collect();
        if kind == PolicyKind::Loop && params.out.is_some() {
            if day_index + params.horizon_days + 1 == params.days {
                learner.pending = Some(Pending {
                    world: world.clone(),
                    logged: chosen.clone(),
                    champions: Vec::new(),
                });
            }
            if let Some(pending) = &mut learner.pending {
                pending.champions.push((dn, learner.champion.clone()));
            }
        }
        let report = world.advance(&chosen);
        check.check_day(&world, day, &morning, &report.contacts);
        let week = day_index / 7;
        collected[week] += report.collected_cents * 100;
        for contact in &report.contacts {
            cost[week] += config.cost_units(contact.strategy);
            *mix[week].entry(contact.strategy.as_str()).or_default() += 1;
        }
        run.cured += report.cured;
        run.rolled += report.rolled;
        run.settled += report.exits[Exit::Settled as usize];
        run.paid_off += report.exits[Exit::PaidOff as usize];
        run.placed += report.exits[Exit::Placed as usize];
        run.charged_off += report.exits[Exit::ChargedOff as usize];
        run.refused += report.refused;
        progress(&format!(
            "{}: day {} of {} ({day}), {} accounts",
            kind.as_str(),
            day_index + 1,
            params.days,
            book.len()
        ));
    }
    run.final_book = world.in_book();
    run.by_week = (0..weeks)
        .map(|w| Week {
            week: w + 1,
            net_collected: money(collected[w] - cost[w]),
            collected: money(collected[w]),
            cost: money(cost[w]),
        })
        .collect();
    let total_collected: i64 = collected.iter().sum();
    let total_cost: i64 = cost.iter().sum();
    run.collected = money(total_collected);
    run.cost = money(total_cost);
    run.net_collected = money(total_collected - total_cost);
    let last = weeks.saturating_sub(4);
    run.net_last_four_weeks = money((last..weeks).map(|w| collected[w] - cost[w]).sum::<i64>());
    run.mix_by_week = mix;
    run.violations = check.violations.len();
    for v in check.violations.iter().take(5) {
        tracing::warn!(policy = kind.as_str(), day = %v.day, account = v.account, strategy = %v.strategy, rule = v.what, "compliance break");
    }
    run.seconds = started.elapsed().as_secs_f64();
    if kind == PolicyKind::Loop {
        if let Some(dir) = &params.out {
            if let Some(pending) = learner.pending.take() {
                learner.judged = Some(judge_day(params, &pending, &cold)?);
            }
            keep_final_data(params, learner, &world, dir)?;
        }
    }
    Ok((run, check.violations.len()))
}

/// The loop's plan of a morning: its champion's, or before its first
/// promotion the staged rules with the cold exploration share.
fn loop_decisions(
    data: &DataSet,
    champion: Option<&Model>,
    config: &EngineConfig,
    cold: &EngineConfig,
    day: NaiveDate,
) -> Result<(Book, Vec<Decision>)> {
    Ok(match champion {
        None => {
            let book = rules_book(data, config, day)?;
            let decisions = staged_with_exploration(&book, cold);
            (book, decisions)
        }
        Some(model) => {
            let book = assess(data, model, config, day, &|_| {})?;
            let decisions = decide(&book, config);
            (book, decisions)
        }
    })
}

/// The truth of the judged day: for the logged decisions, the champion's
/// plan without exploration (the staged rules before a promotion), the
/// staged rules and doing nothing, the world run on from that morning with
/// the loop deciding each later day with the champion it had that day.
fn judge_day(params: &BacktestParams, pending: &Pending, cold: &EngineConfig) -> Result<Judged> {
    let config = &params.config;
    let world = &pending.world;
    let day = world.today();
    let data = DataSet::from_frames("backtest", world.frames()?)?;
    let champion_on = |dn: i32| -> Option<&Model> {
        pending
            .champions
            .iter()
            .rev()
            .find(|(d, _)| *d <= dn)
            .and_then(|(_, m)| m.as_deref())
    };
    let evaluation = EngineConfig {
        explore: 0.0,
        ..config.clone()
    };
    let rules = rules_book(&data, config, day)?;
    let accounts = indices(&rules);
    let logged = &pending.logged;
    anyhow::ensure!(
        logged.iter().map(|(i, _)| *i).eq(accounts.iter().copied()),
        "the judged morning's book is the one the loop decided on"
    );
    let as_chosen = |decisions: &[Decision]| -> Vec<(usize, Strategy)> {
        accounts
            .iter()
            .zip(decisions)
            .map(|(&i, d)| (i, Strategy::ALL[d.strategy]))
            .collect()
    };
    let dn = crate::contract::parse::date_to_days(day);
    let staged = as_chosen(&policy::staged(&rules, &evaluation));
    let champion_plan = match champion_on(dn) {
        None => staged.clone(),
        Some(model) => {
            let theirs = assess(&data, model, &evaluation, day, &|_| {})?;
            let decisions = decide(&theirs, &evaluation);
            indices(&theirs)
                .into_iter()
                .zip(&decisions)
                .map(|(i, d)| (i, Strategy::ALL[d.strategy]))
                .collect()
        }
    };
    let none: Vec<(usize, Strategy)> = accounts.iter().map(|&i| (i, Strategy::None)).collect();
    let horizon = params.horizon_days as i32;
    let mut policies = Vec::new();
    for (name, decisions) in [
        ("logged", logged.to_vec()),
        ("champion", champion_plan),
        ("staged", staged),
        ("none", none),
    ] {
        tracing::info!(%day, policy = name, "backtest: the judged day's counterfactual");
        let mut fork = world.clone();
        fork.advance(&decisions);
        for _ in 1..=horizon {
            let morning = DataSet::from_frames("backtest", fork.frames()?)?;
            let today = fork.today();
            let champion = champion_on(crate::contract::parse::date_to_days(today));
            let (book, later) = loop_decisions(&morning, champion, config, cold, today)?;
            let chosen: Vec<(usize, Strategy)> = indices(&book)
                .into_iter()
                .zip(&later)
                .map(|(i, d)| (i, Strategy::ALL[d.strategy]))
                .collect();
            fork.advance(&chosen);
        }
        let cost = decisions.iter().map(|(_, s)| config.cost_units(*s)).sum();
        policies.push(JudgedPolicy {
            name,
            paid_cents: fork.paid_between(&accounts, dn, dn + horizon),
            cycle_cents: fork.paid_in_cycles(&accounts, dn, dn + horizon),
            cost,
            decisions,
        });
    }
    let gains = accounts
        .iter()
        .map(|&i| {
            let gain = world.true_gain(i);
            (i, std::array::from_fn(|s| gain[s] as f32))
        })
        .collect();
    Ok(Judged {
        day,
        accounts: accounts.len(),
        gains,
        policies,
    })
}

/// The loop's matured decisions as the contract's `outcomes` rows:
/// `paid`/`paid_amount` from the collections payments on the decision's day
/// and the `horizon_days - 1` after it.
fn outcomes_frame(
    logged: &[&Logged],
    payments: &HashMap<usize, Vec<(i32, i64)>>,
    horizon: i32,
    as_of_shift: i32,
) -> PolarsResult<DataFrame> {
    let ids: Vec<String> = logged.iter().map(|l| LivingBook::id(l.account)).collect();
    let amounts: Vec<i64> = logged
        .iter()
        .map(|l| paid_within(payments, l.account, l.day, l.day + horizon))
        .collect();
    let paid: Vec<bool> = amounts.iter().map(|&a| a > 0).collect();
    DataFrame::new(vec![
        Column::new("account_id".into(), ids),
        Int32Chunked::from_iter_values("as_of".into(), logged.iter().map(|l| l.day + as_of_shift))
            .into_date()
            .into_column(),
        Column::new(
            "strategy".into(),
            logged
                .iter()
                .map(|l| Strategy::ALL[l.strategy].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("paid".into(), paid),
        Int128Chunked::from_iter_options(
            "paid_amount".into(),
            amounts.iter().map(|&a| (a > 0).then_some(i128::from(a))),
        )
        .into_decimal_unchecked(18, 2)
        .into_column(),
        Column::new(
            "propensity".into(),
            logged.iter().map(|l| l.propensity).collect::<Vec<f64>>(),
        ),
    ])
}

/// Whether `account` is among the fifth held out of the retraining of `day`.
fn held_out(account: usize, seed: u64, day: i32) -> bool {
    let l = Logged {
        day,
        account,
        strategy: 0,
        propensity: 1.0,
    };
    sampled(&l, seed ^ 0x6865_6c64, 0.2)
}

/// A seeded sample: whether decision `l` is kept, at rate `share`.
fn sampled(l: &Logged, seed: u64, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let mut h = seed ^ 0x5bd1_e995 ^ (l.account as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= (l.day as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 29;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// On a retraining day: trains on the matured decisions before the held-out
/// days, judges the new model against the champion on the held-out days by
/// doubly robust value, and promotes it if it wins by more than its
/// standard error.
fn maybe_retrain(
    params: &BacktestParams,
    learner: &mut Learner,
    world: &LivingBook,
    day_index: usize,
    day: NaiveDate,
) -> Result<()> {
    let horizon = params.horizon_days as i32;
    let k = params.retrain_every;
    // Matured: the horizon ended before today.
    let today = crate::contract::parse::date_to_days(day);
    let last_matured = today - horizon;
    let first_day = crate::contract::parse::date_to_days(params.start);
    let matured_days = (last_matured - first_day + 1).max(0) as usize;
    if k == 0 || day_index == 0 || day_index % k != 0 || matured_days < k + 7 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let held_from = last_matured - k as i32 + 1;
    let payments = payments_by_account(world);
    // A fifth of the accounts (drawn afresh each retraining) is held out of
    // training altogether, so that no payment is both a training label and
    // a held-out reward; the new model is judged on their latest matured days.
    let held = |account: usize| held_out(account, params.seed, today);
    let training: Vec<&Logged> = learner
        .log
        .iter()
        .filter(|l| l.day <= last_matured && !held(l.account))
        .collect();
    let share = params.train_rows as f64 / training.len().max(1) as f64;
    let training: Vec<&Logged> = training
        .into_iter()
        .filter(|l| sampled(l, params.seed, share))
        .collect();
    let rows = training.len();
    let folder = learner.work.join(format!("train-{day}"));
    let [mut accounts, mut history, mut actions, _] = world.frames_all()?;
    // Features as the morning's plan saw them: the data through the day
    // before (as of the decision day, they would hold its own contacts).
    let mut outcomes = outcomes_frame(&training, &payments, horizon, -1)?;
    write_data_folder(
        &folder,
        [&mut accounts, &mut history, &mut actions, &mut outcomes],
        crate::contract::Format::Parquet,
    )?;
    let data = DataSet::load(&folder)?;
    let train_params = TrainParams {
        seed: params.seed ^ today as u64,
        ..params.train
    }
    .check()?;
    let trained = labelled(&data)
        .map_err(anyhow::Error::from)
        .and_then(|rows| {
            let judge = OutOfFoldJudge::new(&data, &rows, &params.config)?;
            Ok(train_labelled(
                &rows,
                &folder,
                train_params,
                Some(&judge),
                &|_| {},
            )?)
        });
    drop(data);
    let trained = match trained {
        Ok(trained) => trained,
        Err(e) => {
            // The loop carries on with its champion.
            tracing::warn!(%day, error = %format!("{e:#}"), "backtest: retraining failed");
            return Ok(());
        }
    };
    let model = trained.model;
    let version = model.meta.version.clone();
    let model_dir = learner.work.join(format!("model-{day}"));
    folder::save(&model_dir, &model, &crate::model::card::render(&model.meta))?;
    // The held-out days: each morning's book as it was, the challenger's
    // and the champion's decisions (without exploration), and the logged
    // decisions with what followed.
    let mut diffs: Vec<(usize, f64)> = Vec::new();
    let mut held_out_days = Vec::new();
    let evaluation = EngineConfig {
        explore: 0.0,
        ..params.config.clone()
    };
    for snapshot in learner.snapshots.iter().filter(|s| {
        (held_from..=last_matured).contains(&crate::contract::parse::date_to_days(s.day))
    }) {
        let sday = crate::contract::parse::date_to_days(snapshot.day);
        held_out_days.push(snapshot.day);
        let data = DataSet::from_frames("backtest", world.frames_on(snapshot)?)?;
        let book = assess(&data, &model, &evaluation, snapshot.day, &|_| {})?;
        let challenger = decide(&book, &evaluation);
        let champion = match &learner.champion {
            None => policy::staged(&book, &evaluation),
            Some(champion) => {
                let theirs = assess(&data, champion, &evaluation, snapshot.day, &|_| {})?;
                decide(&theirs, &evaluation)
            }
        };
        let row_of: HashMap<usize, usize> = indices(&book)
            .into_iter()
            .enumerate()
            .map(|(row, i)| (i, row))
            .collect();
        for l in learner
            .log
            .iter()
            .filter(|l| l.day == sday && held(l.account))
        {
            let Some(&row) = row_of.get(&l.account) else {
                continue;
            };
            let reward = paid_within(&payments, l.account, l.day, l.day + horizon) * 100
                - params.config.cost_units(Strategy::ALL[l.strategy]);
            let values = &book.values[row];
            let term = |pick: usize| -> f64 {
                let q = values[pick].unwrap_or(0) as f64;
                let logged_q = values[l.strategy].unwrap_or(0) as f64;
                let correction = if pick == l.strategy {
                    (reward as f64 - logged_q) / l.propensity
                } else {
                    0.0
                };
                q + correction
            };
            diffs.push((
                l.account,
                term(challenger[row].strategy) - term(champion[row].strategy),
            ));
        }
    }
    // One payment is in the reward of an account's several days: the
    // standard error is over accounts (their summed differences).
    let n = diffs.len().max(1) as f64;
    let mean = diffs.iter().map(|d| d.1).sum::<f64>() / n;
    let mut by_account: HashMap<usize, (f64, f64)> = HashMap::new();
    for &(account, d) in &diffs {
        let entry = by_account.entry(account).or_default();
        entry.0 += d;
        entry.1 += 1.0;
    }
    let clusters = by_account.len().max(1) as f64;
    let spread: f64 = by_account
        .values()
        .map(|(sum, count)| (sum - mean * count).powi(2))
        .sum();
    let se = (spread * clusters / (clusters - 1.0).max(1.0)).sqrt() / n;
    let promoted = match params.promotion {
        Promotion::Always => true,
        Promotion::Dr => !diffs.is_empty() && mean > se,
    };
    let as_money = |v: f64| money(v.round() as i64);
    let from = learner
        .champion
        .as_ref()
        .map_or_else(|| "staged-rules".to_string(), |m| m.meta.version.clone());
    tracing::info!(
        %day, model = %version, rows, dr_gain = mean / MONEY_UNITS, se = se / MONEY_UNITS, promoted,
        "backtest: retrained"
    );
    learner.retrainings.push(Retrain {
        day,
        model: version.clone(),
        training_rows: rows,
        held_out_days,
        dr_gain: as_money(mean),
        standard_error: as_money(se),
        promoted,
        seconds: started.elapsed().as_secs_f64(),
    });
    if promoted {
        learner.promotions.push(Promoted {
            day,
            from,
            to: version,
            dr_gain: as_money(mean),
            standard_error: as_money(se),
            held_out_rows: diffs.len(),
        });
        learner.champion = Some(Arc::new(model));
    }
    if params.out.is_none() {
        let _ = std::fs::remove_dir_all(&folder);
        let _ = std::fs::remove_dir_all(&model_dir);
    }
    Ok(())
}

/// `--out`: the final data folder, with the loop's matured decisions as its
/// `outcomes`, in `DIR/data`.
fn keep_final_data(
    params: &BacktestParams,
    learner: &Learner,
    world: &LivingBook,
    dir: &Path,
) -> Result<()> {
    let horizon = params.horizon_days as i32;
    let last_matured = crate::contract::parse::date_to_days(world.today()) - horizon;
    let payments = payments_by_account(world);
    let matured: Vec<&Logged> = learner
        .log
        .iter()
        .filter(|l| l.day <= last_matured)
        .collect();
    let [mut accounts, mut history, mut actions, _] = world.frames_all()?;
    let mut outcomes = outcomes_frame(&matured, &payments, horizon, 0)?;
    write_data_folder(
        &dir.join("data"),
        [&mut accounts, &mut history, &mut actions, &mut outcomes],
        crate::contract::Format::Parquet,
    )?;
    // The morning of the last day matured in the store's eyes too (the data
    // folder is known through yesterday), with that day's outcomes and the
    // world's truth, for `evaluate-policy --as-of` against what is true.
    let judged = last_matured - 1;
    let snapshot = learner
        .snapshots
        .iter()
        .find(|s| crate::contract::parse::date_to_days(s.day) == judged);
    let truth = learner
        .judged
        .as_ref()
        .filter(|j| crate::contract::parse::date_to_days(j.day) == judged);
    if let (Some(snapshot), Some(truth)) = (snapshot, truth) {
        let [mut accounts, mut history, mut actions, _] = world.frames_on(snapshot)?;
        let of_day: Vec<&Logged> = matured
            .iter()
            .copied()
            .filter(|l| l.day == judged)
            .collect();
        let mut outcomes = outcomes_frame(&of_day, &payments, horizon, 0)?;
        let day_dir = dir.join("day");
        write_data_folder(
            &day_dir,
            [&mut accounts, &mut history, &mut actions, &mut outcomes],
            crate::contract::Format::Parquet,
        )?;
        // The backtest's outcomes count what is paid on the decision's day
        // and the horizon's other days; `prioritize outcomes` counts the
        // cycles that end in the horizon's days after it (payments are known
        // per cycle), so it sees what is paid by the last month end among them.
        let day = crate::contract::parse::days_to_date(judged);
        let month_end = (1..=horizon)
            .map(|lag| day + chrono::Duration::days(i64::from(lag)))
            .rfind(|&d| crate::simulate::month_end(d) == d);
        let cycle_lag = month_end.map_or(0, |end| (end - day).num_days() as i32);
        for (file, last_lag) in [
            ("truth.parquet", horizon - 1),
            ("truth_cycles.parquet", cycle_lag),
        ] {
            let mut frame = truth_frame(&truth.gains, last_lag)?;
            crate::output::write_frame(
                &mut frame,
                &day_dir.join(file),
                crate::contract::Format::Parquet,
            )?;
        }
        write_judged(truth, params.horizon_days, &day_dir)?;
    }
    Ok(())
}

/// `DIR/day/decisions-POLICY.csv` (for `evaluate-policy --decisions`) and
/// `DIR/day/counterfactual.json`: each policy's true mean net money a
/// decision, as each kind of outcomes counts it.
fn write_judged(judged: &Judged, horizon: usize, dir: &Path) -> Result<()> {
    let n = judged.accounts.max(1) as i64;
    let mut rows = Vec::new();
    for p in &judged.policies {
        let file = dir.join(format!("decisions-{}.csv", p.name));
        let mut text = String::from("account_id,strategy\n");
        for (i, s) in &p.decisions {
            text.push_str(&format!("{},{}\n", LivingBook::id(*i), s.as_str()));
        }
        crate::output::write_text(&file, &text)?;
        rows.push(serde_json::json!({
            "policy": p.name,
            "decisions": file.file_name().map(|f| f.to_string_lossy().to_string()),
            "mean_net": money((p.paid_cents * 100 - p.cost) / n).to_string(),
            "mean_net_cycles": money((p.cycle_cents * 100 - p.cost) / n).to_string(),
        }));
    }
    let report = serde_json::json!({
        "day": judged.day,
        "accounts": judged.accounts,
        "horizon_days": horizon,
        "policies": rows,
    });
    crate::output::write_text(
        &dir.join("counterfactual.json"),
        &serde_json::to_string_pretty(&report)?,
    )
}

/// The truth file `evaluate-policy --truth` reads: for each account and
/// strategy, `p_*` = 1 and `amount_*` = the strategy's true gain over doing
/// nothing (in currency units) paid at most `last_lag` days after the
/// decision, so that a policy's true value is its uplift over `none` net of
/// its costs.
fn truth_frame(gains: &[(usize, [f32; K])], last_lag: i32) -> PolarsResult<DataFrame> {
    let mut columns = vec![Column::new(
        "account_id".into(),
        gains
            .iter()
            .map(|(i, _)| LivingBook::id(*i))
            .collect::<Vec<_>>(),
    )];
    for (s, strategy) in Strategy::ALL.iter().enumerate() {
        columns.push(Column::new(
            format!("p_{strategy}").into(),
            vec![1.0f64; gains.len()],
        ));
        columns.push(Column::new(
            format!("amount_{strategy}").into(),
            gains
                .iter()
                .map(|(_, g)| f64::from(g[s]) / 100.0 * share_paid_by(*strategy, last_lag))
                .collect::<Vec<f64>>(),
        ));
    }
    DataFrame::new(columns)
}
