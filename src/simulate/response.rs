//! The simulator's hidden truth: each account's traits, and how likely it is
//! to pay (and how much) under each strategy. Models never see the traits;
//! they show only through payment and contact history. Knowing the truth lets
//! the project measure a plan against the best possible one.

use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::contract::Strategy;

/// Hidden traits of one simulated customer, each in 0–1.
#[derive(Debug, Clone, Copy)]
pub struct Traits {
    /// Means to pay.
    pub ability: f64,
    /// Intent to pay.
    pub willingness: f64,
    /// Tendency to simply forget a due date.
    pub forgetfulness: f64,
    /// Chance of answering the phone.
    pub contactability: f64,
    /// Reads and acts on text messages and email.
    pub digital: f64,
    /// Monthly chance of an income shock.
    pub shock_rate: f64,
}

impl Traits {
    /// Draws the traits of a new customer.
    pub fn draw(rng: &mut impl Rng) -> Traits {
        let beta = |a: f64, b: f64, rng: &mut dyn rand::RngCore| {
            Beta::new(a, b).expect("valid beta").sample(rng)
        };
        Traits {
            ability: beta(2.5, 2.0, rng),
            willingness: beta(3.0, 1.6, rng),
            forgetfulness: beta(1.3, 4.0, rng),
            contactability: beta(2.0, 2.5, rng),
            digital: beta(2.0, 2.0, rng),
            shock_rate: beta(1.0, 14.0, rng),
        }
    }
}

/// What a strategy meets on the decision day.
#[derive(Debug, Clone, Copy)]
pub struct Exposure {
    pub balance: f64,
    pub past_due: f64,
    pub days_past_due: i32,
    /// An income shock is under way.
    pub shocked: bool,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Which latent response the simulated customers follow. The traits, and so
/// the payment and contact history they leave, are the same in both; only
/// how each strategy works (and how much it brings) differs, so that a model
/// or a feature tuned to one world can be checked on the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum World {
    /// The project's own world: the response designed with the features.
    #[default]
    A,
    /// A deliberately different response: other traits drive each
    /// strategy, with thresholds, and other amounts.
    B,
}

/// The true probability of paying within the horizon under `strategy`, and
/// the amount collected (net to the lender) if the customer pays.
pub fn response(
    world: World,
    traits: &Traits,
    exposure: &Exposure,
    strategy: Strategy,
) -> (f64, f64) {
    match world {
        World::A => response_a(traits, exposure, strategy),
        World::B => response_b(traits, exposure, strategy),
    }
}

fn response_a(traits: &Traits, exposure: &Exposure, strategy: Strategy) -> (f64, f64) {
    let Traits {
        ability,
        willingness,
        forgetfulness,
        contactability,
        digital,
        ..
    } = *traits;
    let capacity = if exposure.shocked {
        ability * 0.3
    } else {
        ability
    };
    let dpd = exposure.days_past_due.clamp(0, 360) as f64;
    let base = -0.6 + 3.0 * (capacity - 0.5) + 2.2 * (willingness - 0.5)
        - 1.4 * forgetfulness
        - 0.005 * dpd;
    let shocked = if exposure.shocked { 1.0 } else { 0.0 };
    let lift = match strategy {
        Strategy::None => 0.0,
        Strategy::SmsReminder => 2.2 * forgetfulness * digital,
        Strategy::EmailReminder => 1.4 * forgetfulness * digital,
        Strategy::Call => {
            contactability * (0.4 + 0.9 * willingness) + 0.8 * forgetfulness * contactability
        }
        Strategy::SettlementOffer => 0.4 + 2.0 * (1.0 - capacity) * willingness,
        Strategy::InstallmentPlan => 1.6 * shocked + 1.2 * (1.0 - capacity) * willingness,
        Strategy::DemandLetter => 0.2 + 0.9 * (1.0 - willingness) * capacity,
        Strategy::FieldVisit => 1.5 * (1.0 - contactability) + 0.6 * willingness,
        Strategy::Legal => 2.4 * capacity * (1.0 - willingness) - 0.2,
        Strategy::Agency => 0.3 + 1.0 * (1.0 - willingness),
    };
    let p_pay = sigmoid(base + lift);
    let past_due = exposure.past_due.max(0.0);
    let balance = exposure.balance.max(0.0);
    let usual = (past_due * (0.5 + 0.5 * capacity)).min(balance);
    let amount = match strategy {
        Strategy::SettlementOffer => balance * 0.6,
        Strategy::InstallmentPlan => balance.min((balance / 12.0).max(past_due * 0.35)),
        Strategy::Legal => balance * (0.25 + 0.5 * capacity),
        // The agency keeps a 30 % commission: the lender's net is what counts.
        Strategy::Agency => 0.7 * balance.min(past_due * 1.5),
        _ => usual,
    };
    (p_pay, amount)
}

/// World B: willingness matters more than means, days past due weigh in
/// steps, calls persuade the unwilling who answer, texts reach those who
/// do not, a field visit works where neither phone nor screen does, legal
/// action needs means and a late account, and settlements and agencies pay
/// less of the balance.
fn response_b(traits: &Traits, exposure: &Exposure, strategy: Strategy) -> (f64, f64) {
    let Traits {
        ability,
        willingness,
        forgetfulness,
        contactability,
        digital,
        ..
    } = *traits;
    let capacity = if exposure.shocked {
        ability * 0.4
    } else {
        ability
    };
    let dpd = exposure.days_past_due.clamp(0, 360) as f64;
    let late = if dpd > 90.0 { 1.0 } else { 0.0 };
    let very_late = if dpd > 180.0 { 1.0 } else { 0.0 };
    let base = -0.4 + 2.0 * (capacity - 0.5) + 3.0 * (willingness - 0.5)
        - 0.8 * forgetfulness
        - 0.6 * late
        - 0.7 * very_late
        - 0.002 * dpd;
    let shocked = if exposure.shocked { 1.0 } else { 0.0 };
    let lift = match strategy {
        Strategy::None => 0.0,
        Strategy::SmsReminder => 1.3 * digital * (1.0 - contactability) + 0.5 * forgetfulness,
        Strategy::EmailReminder => 0.9 * digital * willingness * (1.0 - late),
        Strategy::Call => 0.2 + 1.5 * contactability * (1.0 - willingness),
        Strategy::SettlementOffer => 0.3 + 1.4 * (1.0 - capacity) + 0.6 * very_late,
        Strategy::InstallmentPlan => {
            2.0 * shocked
                + if capacity > 0.25 {
                    0.9 * (1.0 - capacity)
                } else {
                    0.0
                }
        }
        Strategy::DemandLetter => 0.6 * (1.0 - willingness) + 0.4 * late,
        Strategy::FieldVisit => 2.2 * (1.0 - contactability) * (1.0 - digital),
        Strategy::Legal => 2.0 * capacity * late - 0.8 * willingness,
        Strategy::Agency => 0.6 + 0.6 * very_late,
    };
    let p_pay = sigmoid(base + lift);
    let past_due = exposure.past_due.max(0.0);
    let balance = exposure.balance.max(0.0);
    let usual = (past_due * (0.3 + 0.7 * willingness)).min(balance);
    let amount = match strategy {
        Strategy::SettlementOffer => balance * 0.5,
        Strategy::InstallmentPlan => balance.min((balance / 8.0).max(past_due * 0.5)),
        Strategy::Legal => balance * 0.45 * capacity,
        Strategy::Agency => 0.65 * balance.min(past_due * 2.0),
        Strategy::Call => (usual * 1.2).min(balance),
        _ => usual,
    };
    (p_pay, amount)
}
