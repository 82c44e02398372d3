//! A living book: the simulated accounts carried on day after day. Each day
//! the book is what a lender hands over that morning (the accounts in
//! arrears, with their history); the collectors then work the day's
//! decisions and the world answers: customers pay, promise, refuse, dispute,
//! opt out, forget; contacts tire them; accounts cure, roll to later
//! buckets, settle, are placed with an agency or charged off; and new
//! delinquent accounts arrive.
//!
//! Every random draw comes from a stream of its own for (account, day,
//! purpose), and arrivals from a stream for their day, so that two policies
//! run on the same seed meet the same customers with the same luck: they
//! differ only by what they do.
//!
//! How a strategy works on a day: [`response`] gives, for the customer's
//! traits and exposure, the chance of paying within about a month under each
//! strategy. Doing nothing leaves a daily chance of paying of its own (the
//! same monthly chance, spread over 30 days). A contact adds a one-off chance
//! of responding, the strategy's gain over doing nothing, worn down by
//! `FATIGUE` for every contact in the week before. A responder pays the
//! strategy's amount a few days later (after a promise, on its date).

use chrono::NaiveDate;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::account::{local_instant, simulate_account, Calendar, Life};
use super::response::{response, Exposure, World};
use super::tables::{AccountRow, ActionRow, ChunkTables, CycleRow};
use crate::contract::parse::date_to_days;
use crate::contract::{Channel, Strategy};

/// Accounts charged off at this many days past due.
pub const CHARGE_OFF_DPD: i32 = 180;
/// Each contact in the 7 days before multiplies a strategy's gain by this.
pub const FATIGUE: f64 = 0.6;
/// Days a dispute stays open.
const DISPUTE_DAYS: i32 = 30;
/// Months of history an arriving account comes with.
const ARRIVAL_CYCLES: usize = 12;
/// Share of the collected amount the world pays, on average (as the
/// one-shot simulator's truth: 80–100 %).
const PAID_SHARE: f64 = 0.9;

/// Days after the contact a responder pays (after a promise, its date),
/// drawn uniformly.
fn pay_lag(strategy: Strategy) -> std::ops::RangeInclusive<i32> {
    match strategy {
        Strategy::Call | Strategy::SettlementOffer | Strategy::InstallmentPlan => 1..=5,
        Strategy::SmsReminder | Strategy::EmailReminder => 1..=3,
        Strategy::FieldVisit => 1..=7,
        Strategy::DemandLetter => 3..=10,
        Strategy::Legal => 7..=21,
        Strategy::Agency => 10..=30,
        Strategy::None => 0..=0,
    }
}

/// The share of a strategy's responders who pay at most `last_lag` days
/// after the contact: the part of [`LivingBook::true_gain`] an outcome
/// window ending that many days after the decision sees.
pub fn share_paid_by(strategy: Strategy, last_lag: i32) -> f64 {
    let lags = pay_lag(strategy);
    let (lo, hi) = (*lags.start(), *lags.end());
    f64::from((hi.min(last_lag) - lo + 1).max(0)) / f64::from(hi - lo + 1)
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct LivingParams {
    /// Accounts on the first day.
    pub accounts: usize,
    pub seed: u64,
    /// The first day planned.
    pub start: NaiveDate,
    pub currency: String,
    pub world: World,
    /// New delinquent accounts a day, as a share of the first day's accounts.
    pub arrivals_per_day: f64,
    /// Rule parameters the collectors' desk holds contacts to (the same as
    /// the engine's): calls in the window and the cool-off after a conversation.
    pub max_calls_in_window: u32,
    pub call_window_days: i32,
    pub cool_off_days: i32,
}

/// How an account left the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A settlement was paid; the rest is forgiven.
    Settled,
    /// The balance was paid.
    PaidOff,
    /// Placed with a collection agency, whose net payments still arrive.
    Placed,
    ChargedOff,
}

/// A payment, and whether it is collections money (from an account behind
/// or earned by a contact) rather than a current customer's usual bill.
#[derive(Debug, Clone, Copy)]
pub struct Payment {
    pub account: usize,
    pub day: i32,
    pub cents: i64,
    pub collections: bool,
}

/// A contact the collectors made, as the world recorded it.
#[derive(Debug, Clone, Copy)]
pub struct Contact {
    pub account: usize,
    pub strategy: Strategy,
    /// UTC microseconds.
    pub at: i64,
    pub outcome: &'static str,
}

/// What a day of work did.
#[derive(Debug, Default, Clone)]
pub struct DayReport {
    /// Collections money paid on the day, in cents.
    pub collected_cents: i64,
    /// The contacts made (decisions not carried out are left out).
    pub contacts: Vec<Contact>,
    /// Decisions the desk could not carry out: a call the cool-off or the
    /// call limit stopped after an earlier contact that day, or an opt-out
    /// or dispute raised that day.
    pub refused: usize,
    pub cured: usize,
    /// Accounts whose days past due crossed into a later 30-day bucket.
    pub rolled: usize,
    pub exits: [usize; 4],
    pub arrivals: usize,
}

#[derive(Clone)]
struct Member {
    life: Life,
    exit: Option<Exit>,
    /// Days of contacts in the last week.
    contacts: Vec<i32>,
    /// Payments to come: (day, amount, whether it settles the account).
    pending: Vec<(i32, f64, bool)>,
    dispute_until: Option<i32>,
    /// Paid since the last cycle end.
    cycle_paid: f64,
    /// Past due at the last cycle end.
    cycle_arrears: f64,
}

/// A morning's account rows and how much history had been recorded by
/// then (see [`LivingBook::snapshot`]).
pub struct Snapshot {
    pub day: NaiveDate,
    rows: Vec<AccountRow>,
    cycles: usize,
    actions: usize,
}

/// The book and everything that happened to it (a clone carries on as a
/// world of its own, with the same luck: a counterfactual).
#[derive(Clone)]
pub struct LivingBook {
    params: LivingParams,
    today: NaiveDate,
    members: Vec<Member>,
    /// Account rows (kept current), payment cycles and actions, by account index.
    tables: ChunkTables,
    pub payments: Vec<Payment>,
    /// Call instants and conversations per customer, for the desk's checks.
    calls: std::collections::HashMap<usize, Vec<i64>>,
    conversations: std::collections::HashMap<usize, i64>,
    arrived: f64,
}

fn stream(seed: u64, account: usize, day: i32, purpose: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ (account as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (day as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9),
    );
    rng.set_stream(purpose);
    rng
}

fn cents(amount: f64) -> i64 {
    (amount.max(0.0) * 100.0).round() as i64
}

const DAY_MICROS: i64 = 86_400_000_000;

impl LivingBook {
    /// The book on its first day: `accounts` simulated with their history up
    /// to the day before `start`.
    pub fn new(params: LivingParams) -> LivingBook {
        let mut book = LivingBook {
            today: params.start,
            params,
            members: Vec::new(),
            tables: ChunkTables {
                keep_lives: true,
                ..Default::default()
            },
            payments: Vec::new(),
            calls: Default::default(),
            conversations: Default::default(),
            arrived: 0.0,
        };
        let eve = book.params.start.pred_opt().expect("a day before");
        book.arrive(book.params.accounts, eve);
        book
    }

    /// The day to plan next.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    /// Accounts ever in the book.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether account `index` is in today's book: not gone, and behind.
    pub fn in_collections(&self, index: usize) -> bool {
        let m = &self.members[index];
        m.exit.is_none() && m.life.arrears > 0.0
    }

    /// Accounts in today's book.
    pub fn in_book(&self) -> usize {
        (0..self.members.len())
            .filter(|&i| self.in_collections(i))
            .count()
    }

    /// The account id of index `index` (as in the data folder).
    pub fn id(index: usize) -> String {
        format!("ACC-{index:08}")
    }

    /// The index of an account id, if it is one of this book's.
    pub fn index_of(id: &str) -> Option<usize> {
        id.strip_prefix("ACC-")?.parse().ok()
    }

    /// The customer (person) of account `index`.
    pub fn customer(&self, index: usize) -> usize {
        self.members[index].life.customer
    }

    /// The account's time zone.
    pub fn tz(&self, index: usize) -> chrono_tz::Tz {
        self.members[index].life.tz
    }

    /// The account snapshot's flags and days past due this morning.
    pub fn flags(&self, index: usize) -> &crate::strategy::rules::AccountState {
        &self.tables.accounts[index].state
    }

    /// Every action recorded so far (history included), in order of recording.
    pub fn actions(&self) -> &[ActionRow] {
        &self.tables.actions
    }

    /// The data folder as the lender hands it over this morning: the
    /// accounts in arrears, their payment cycles and actions, and no outcomes.
    pub fn frames(&self) -> PolarsResult<[DataFrame; 4]> {
        let keep = |index: usize| self.in_collections(index);
        let [accounts, history, actions, _, _] =
            self.tables
                .frames(&self.params.currency, self.today, &keep)?;
        let outcomes = crate::contract::load::empty_table(&crate::contract::schema::OUTCOMES);
        Ok([accounts, history, actions, outcomes])
    }

    /// The account rows of this morning's book, to plan on another day as
    /// of this one (see [`LivingBook::frames_on`]).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            day: self.today,
            rows: (0..self.members.len())
                .filter(|&i| self.in_collections(i))
                .map(|i| self.tables.accounts[i].clone())
                .collect(),
            cycles: self.tables.cycles.len(),
            actions: self.tables.actions.len(),
        }
    }

    /// Collections money (cents) paid by `accounts` on days `from..until`.
    pub fn paid_between(&self, accounts: &[usize], from: i32, until: i32) -> i64 {
        let mut of = vec![false; self.members.len()];
        for &i in accounts {
            of[i] = true;
        }
        self.payments
            .iter()
            .filter(|p| p.collections && of[p.account] && p.day >= from && p.day < until)
            .map(|p| p.cents)
            .sum()
    }

    /// `amount_paid` (cents) of `accounts`' billing cycles ending after
    /// `after` up to and including `through`: what `prioritize outcomes`
    /// counts for a decision of day `after` with horizon `through - after`.
    pub fn paid_in_cycles(&self, accounts: &[usize], after: i32, through: i32) -> i64 {
        let mut of = vec![false; self.members.len()];
        for &i in accounts {
            of[i] = true;
        }
        self.tables
            .cycles
            .iter()
            .filter(|c| of[c.account] && c.cycle_end > after && c.cycle_end <= through)
            .map(|c| c.amount_paid)
            .sum()
    }

    /// The data folder exactly as it was handed over on the morning of
    /// `snapshot`: that morning's accounts, and the history recorded by then.
    pub fn frames_on(&self, snapshot: &Snapshot) -> PolarsResult<[DataFrame; 4]> {
        let mut member = vec![false; self.members.len()];
        for row in &snapshot.rows {
            member[row.account] = true;
        }
        let rows: Vec<&AccountRow> = snapshot.rows.iter().collect();
        let [accounts, history, actions, _, _] = self.tables.frames_with(
            &rows,
            &self.params.currency,
            snapshot.day,
            &|i| member[i],
            (snapshot.cycles, snapshot.actions),
        )?;
        let outcomes = crate::contract::load::empty_table(&crate::contract::schema::OUTCOMES);
        Ok([accounts, history, actions, outcomes])
    }

    /// Every account ever in the book, as of this morning, with all its
    /// history: what a lender's records hold, for training on outcomes.
    pub fn frames_all(&self) -> PolarsResult<[DataFrame; 4]> {
        let [accounts, history, actions, _, _] =
            self.tables
                .frames(&self.params.currency, self.today, &|_| true)?;
        let outcomes = crate::contract::load::empty_table(&crate::contract::schema::OUTCOMES);
        Ok([accounts, history, actions, outcomes])
    }

    fn exposure(&self, index: usize) -> Exposure {
        let life = &self.members[index].life;
        Exposure {
            balance: life.balance,
            past_due: life.arrears,
            days_past_due: life.dpd,
            shocked: life.shock_left > 0,
        }
    }

    fn recent_contacts(&self, index: usize, day: i32) -> usize {
        self.members[index]
            .contacts
            .iter()
            .filter(|&&c| (day - c) < 7 && c < day)
            .count()
    }

    /// The true value of each strategy for account `index` today, in cents
    /// collected on average: the gain of responding times what a responder
    /// pays (doing nothing, 0: its payments come whatever is done).
    pub fn true_gain(&self, index: usize) -> [f64; 10] {
        let exposure = self.exposure(index);
        let traits = &self.members[index].life.traits;
        let world = self.params.world;
        let (p0, _) = response(world, traits, &exposure, Strategy::None);
        let tired = FATIGUE.powi(self.recent_contacts(index, date_to_days(self.today)) as i32);
        std::array::from_fn(|s| {
            let strategy = Strategy::ALL[s];
            if strategy == Strategy::None {
                return 0.0;
            }
            let (p, amount) = response(world, traits, &exposure, strategy);
            let amount = amount.min(exposure.balance);
            (p - p0).max(0.0) * tired * amount * PAID_SHARE * 100.0
        })
    }

    /// Adds `count` arriving accounts, their history up to `as_of`.
    fn arrive(&mut self, count: usize, as_of: NaiveDate) {
        let calendar = Calendar {
            cycle_ends: super::cycle_ends(as_of, ARRIVAL_CYCLES),
            as_of,
            world: self.params.world,
        };
        let day = date_to_days(as_of);
        let mut rng = stream(self.params.seed, usize::MAX, day, 7);
        for _ in 0..count {
            let index = self.members.len();
            let before = self.tables.lives.len();
            simulate_account(index, &calendar, &mut rng, &mut self.tables);
            debug_assert_eq!(self.tables.lives.len(), before + 1);
            let life = self.tables.lives.pop().expect("a life per account");
            let history: Vec<(i64, &'static str, &'static str)> = self
                .tables
                .actions
                .iter()
                .rev()
                .take_while(|a| a.account == index)
                .map(|a| (a.at, a.channel, a.outcome))
                .collect();
            for (at, channel, outcome) in history.into_iter().rev() {
                self.note_contact(life.customer, at, channel, outcome);
            }
            let arrears = life.arrears;
            // A dispute the account arrives with closes like any other.
            let dispute_until = life.flags.dispute_open.then_some(day + DISPUTE_DAYS);
            self.members.push(Member {
                life,
                exit: None,
                contacts: Vec::new(),
                pending: Vec::new(),
                dispute_until,
                cycle_paid: 0.0,
                cycle_arrears: arrears,
            });
        }
        // The one-shot simulator's logged decisions and truth are not this book's.
        self.tables.outcomes.clear();
        self.tables.truth.clear();
    }

    fn note_contact(&mut self, customer: usize, at: i64, channel: &str, outcome: &str) {
        if channel == "call" {
            let calls = self.calls.entry(customer).or_default();
            calls.push(at);
            let keep_from = at - i64::from(self.params.call_window_days + 1) * DAY_MICROS;
            calls.retain(|&c| c >= keep_from);
        }
        if crate::features::contacts::CONVERSATIONS.contains(&outcome) {
            let last = self.conversations.entry(customer).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// The instant a call on `day` can be made for `index`, or `None` if
    /// the desk must refuse it: the person's calls in the window are used
    /// up, or the cool-off after a conversation lasts past calling hours.
    fn call_instant(&self, index: usize, day: NaiveDate, rng: &mut ChaCha8Rng) -> Option<i64> {
        let life = &self.members[index].life;
        let tz = life.tz;
        let at = local_instant(tz, day, rng.random_range(9..20), rng.random_range(0..60));
        let window_start = {
            let first = day - chrono::Duration::days(i64::from(self.params.call_window_days - 1));
            local_instant(tz, first, 0, 0)
        };
        let calls = self
            .calls
            .get(&life.customer)
            .map_or(0, |c| c.iter().filter(|&&t| t >= window_start).count());
        if calls as u32 >= self.params.max_calls_in_window {
            return None;
        }
        let cool_off_end = self
            .conversations
            .get(&life.customer)
            .map(|&c| c + i64::from(self.params.cool_off_days) * DAY_MICROS);
        match cool_off_end {
            Some(end) if end > at => {
                // Called once the cool-off ends, if that is within calling hours.
                let closing = local_instant(tz, day, 20, 59);
                let after = end + 60_000_000;
                (after <= closing).then_some(after)
            }
            _ => Some(at),
        }
    }

    /// Works the day's decisions (account index, strategy; accounts not
    /// listed do nothing), lets the world answer, and moves to the next day.
    pub fn advance(&mut self, decisions: &[(usize, Strategy)]) -> DayReport {
        let day = self.today;
        let dn = date_to_days(day);
        let mut report = DayReport::default();
        let morning: Vec<(usize, Option<Exit>)> = (0..self.members.len())
            .filter(|&i| self.in_collections(i))
            .map(|i| (i, self.members[i].exit))
            .collect();
        for &(index, strategy) in decisions {
            if strategy == Strategy::None || !self.in_collections(index) {
                continue;
            }
            match self.treat(index, strategy, day) {
                Some(contact) => report.contacts.push(contact),
                None => report.refused += 1,
            }
        }
        // Payments due today, then what customers pay unprompted.
        for index in 0..self.members.len() {
            let due: Vec<(i32, f64, bool)> = {
                let m = &mut self.members[index];
                let (due, later): (Vec<_>, Vec<_>) = m.pending.iter().partition(|p| p.0 <= dn);
                m.pending = later;
                due
            };
            for (_, amount, settles) in due {
                report.collected_cents += self.pay(index, amount, settles, dn, true);
            }
            if !self.in_collections(index) {
                continue;
            }
            let exposure = self.exposure(index);
            let (p0, amount) = response(
                self.params.world,
                &self.members[index].life.traits,
                &exposure,
                Strategy::None,
            );
            let daily = 1.0 - (1.0 - p0).powf(1.0 / 30.0);
            let mut rng = stream(self.params.seed, index, dn, 2);
            if rng.random::<f64>() < daily {
                let paid = amount * rng.random_range(0.8..1.0);
                report.collected_cents += self.pay(index, paid, false, dn, true);
            }
        }
        // Ageing, cures, disputes that close, charge-offs.
        for index in 0..self.members.len() {
            let m = &mut self.members[index];
            if m.exit.is_some() {
                continue;
            }
            if m.dispute_until.is_some_and(|until| until <= dn) {
                m.dispute_until = None;
                m.life.flags.dispute_open = false;
            }
            if m.life.arrears > 0.0 {
                let before = m.life.dpd;
                m.life.dpd += 1;
                if before / 30 != m.life.dpd / 30 {
                    report.rolled += 1;
                }
                if m.life.dpd >= CHARGE_OFF_DPD {
                    m.exit = Some(Exit::ChargedOff);
                }
            }
        }
        if super::month_end(day) == day {
            self.close_cycle(dn, &mut report);
        }
        for index in 0..self.members.len() {
            let m = &mut self.members[index];
            if m.exit == Some(Exit::Placed) {
                continue;
            }
            m.contacts.retain(|&c| dn - c < 7);
        }
        for (index, m) in self.members.iter().enumerate() {
            let row = &mut self.tables.accounts[index];
            row.balance = cents(m.life.balance);
            row.amount_past_due = cents(m.life.arrears.min(m.life.balance));
            let dpd = m.life.dpd;
            row.state = m.life.flags.clone();
            row.state.days_past_due = dpd;
        }
        // New delinquent accounts for tomorrow.
        self.arrived += self.params.accounts as f64 * self.params.arrivals_per_day;
        let count = self.arrived.floor() as usize;
        self.arrived -= count as f64;
        let before = self.members.len();
        self.arrive(count, day);
        report.arrivals = self.members.len() - before;
        for (index, exit) in morning {
            let m = &self.members[index];
            match m.exit {
                Some(now) if exit.is_none() => report.exits[now as usize] += 1,
                None if m.life.arrears <= 0.0 => report.cured += 1,
                _ => {}
            }
        }
        self.today = day.succ_opt().expect("a next day");
        report
    }

    /// Pays `amount` on account `index`; returns the cents counted.
    fn pay(&mut self, index: usize, amount: f64, settles: bool, dn: i32, collections: bool) -> i64 {
        let m = &mut self.members[index];
        match m.exit {
            // The agency's net payments arrive after placement.
            Some(Exit::Placed) => {
                let paid = cents(amount);
                self.payments.push(Payment {
                    account: index,
                    day: dn,
                    cents: paid,
                    collections,
                });
                return paid;
            }
            Some(_) => return 0,
            None => {}
        }
        let amount = amount.min(m.life.balance);
        if amount < 0.01 {
            return 0;
        }
        let amount = (amount * 100.0).round() / 100.0;
        m.life.balance -= amount;
        m.life.arrears = (m.life.arrears - amount).max(0.0);
        m.cycle_paid += amount;
        if m.life.arrears < 0.01 {
            m.life.arrears = 0.0;
            m.life.dpd = 0;
        }
        if settles {
            m.life.balance = 0.0;
            m.life.arrears = 0.0;
            m.exit = Some(Exit::Settled);
        } else if m.life.balance < 1.0 {
            m.life.balance = 0.0;
            m.life.arrears = 0.0;
            m.exit = Some(Exit::PaidOff);
        }
        let paid = cents(amount);
        self.payments.push(Payment {
            account: index,
            day: dn,
            cents: paid,
            collections,
        });
        paid
    }

    /// Carries out one decision; `None` if the desk refused it.
    fn treat(&mut self, index: usize, strategy: Strategy, day: NaiveDate) -> Option<Contact> {
        let dn = date_to_days(day);
        let mut rng = stream(self.params.seed, index, dn, 1);
        // Raised today after the morning's plan: the desk stops the contact.
        {
            let morning = &self.tables.accounts[index].state;
            let now = &self.members[index].life.flags;
            let raised = (now.dispute_open && !morning.dispute_open)
                || (now.cease_contact && !morning.cease_contact)
                || (now.do_not_call
                    && !morning.do_not_call
                    && strategy.channel() == Some(Channel::Call))
                || (now.do_not_sms && !morning.do_not_sms && strategy == Strategy::SmsReminder)
                || (now.do_not_email
                    && !morning.do_not_email
                    && strategy == Strategy::EmailReminder);
            if raised {
                return None;
            }
        }
        let exposure = self.exposure(index);
        let life = &self.members[index].life;
        let traits = life.traits;
        let tz = life.tz;
        let customer = life.customer;
        let (p0, _) = response(self.params.world, &traits, &exposure, Strategy::None);
        let (p, amount) = response(self.params.world, &traits, &exposure, strategy);
        let tired = FATIGUE.powi(self.recent_contacts(index, dn) as i32);
        let responds = rng.random::<f64>() < (p - p0).max(0.0) * tired;
        let amount = amount.min(exposure.balance) * rng.random_range(0.8..1.0);
        let channel = strategy.channel().expect("a contact has a channel");
        let at = if channel == Channel::Call {
            self.call_instant(index, day, &mut rng)?
        } else {
            local_instant(tz, day, rng.random_range(9..18), rng.random_range(0..60))
        };
        let pressure = 1.0 + self.recent_contacts(index, dn) as f64;
        let mut promise = None;
        let mut pay_after = None;
        let outcome: &'static str = match strategy {
            Strategy::Call | Strategy::SettlementOffer | Strategy::InstallmentPlan => {
                if responds {
                    let lag = rng.random_range(pay_lag(strategy));
                    promise = Some((amount, lag));
                    pay_after = Some(lag);
                    "promise_to_pay"
                } else if rng.random::<f64>() < traits.contactability * 0.6 {
                    if rng.random::<f64>() < 0.01 * pressure {
                        "dispute"
                    } else if rng.random::<f64>() < 0.1 {
                        // A promise that will be broken.
                        promise = Some((amount, rng.random_range(2..=7)));
                        "promise_to_pay"
                    } else if traits.willingness < 0.4 {
                        "refused"
                    } else {
                        "right_party_contact"
                    }
                } else if rng.random::<f64>() < 0.5 {
                    "left_message"
                } else {
                    "no_answer"
                }
            }
            Strategy::SmsReminder | Strategy::EmailReminder => {
                if rng.random::<f64>() < 0.05 {
                    "undeliverable"
                } else {
                    if responds {
                        pay_after = Some(rng.random_range(pay_lag(strategy)));
                    }
                    "delivered"
                }
            }
            Strategy::FieldVisit => {
                if responds {
                    pay_after = Some(rng.random_range(pay_lag(strategy)));
                    "right_party_contact"
                } else if rng.random::<f64>() < 0.5 {
                    "right_party_contact"
                } else {
                    "no_answer"
                }
            }
            Strategy::DemandLetter | Strategy::Legal | Strategy::Agency => {
                if responds {
                    pay_after = Some(rng.random_range(pay_lag(strategy)));
                }
                "delivered"
            }
            Strategy::None => unreachable!("no contact"),
        };
        let (promised_amount, promised_on) = match promise {
            Some((amount, lag)) => (Some(cents(amount)), Some(dn + lag)),
            None => (None, None),
        };
        self.tables.actions.push(ActionRow {
            account: index,
            at,
            channel: channel.as_str(),
            outcome,
            promised_amount,
            promised_on,
        });
        self.note_contact(customer, at, channel.as_str(), outcome);
        let m = &mut self.members[index];
        m.contacts.push(dn);
        if let Some(lag) = pay_after {
            m.pending
                .push((dn + lag, amount, strategy == Strategy::SettlementOffer));
        }
        // What contacts set off: opt-outs, disputes, a request to stop.
        let flags = &mut m.life.flags;
        let draw = rng.random::<f64>();
        match channel {
            Channel::Sms if draw < 0.002 * pressure => flags.do_not_sms = true,
            Channel::Email if draw < 0.002 * pressure => flags.do_not_email = true,
            Channel::Call if outcome == "refused" && draw < 0.02 * pressure => {
                flags.do_not_call = true
            }
            Channel::Call if draw < 0.0005 * pressure => flags.cease_contact = true,
            _ => {}
        }
        let disputes = outcome == "dispute"
            || (matches!(channel, Channel::Letter | Channel::Legal)
                && rng.random::<f64>() < 0.005 * pressure);
        if disputes {
            flags.dispute_open = true;
            m.dispute_until = Some(dn + DISPUTE_DAYS);
        }
        if strategy == Strategy::Agency {
            m.exit = Some(Exit::Placed);
        }
        Some(Contact {
            account: index,
            strategy,
            at,
            outcome,
        })
    }

    /// The month's end: every open account's bill falls due; the cycle is
    /// recorded; interest accrues; income shocks come and go.
    fn close_cycle(&mut self, dn: i32, report: &mut DayReport) {
        for index in 0..self.members.len() {
            if self.members[index].exit.is_some() {
                continue;
            }
            let mut rng = stream(self.params.seed, index, dn, 3);
            let behind = self.members[index].life.arrears > 0.0;
            let scheduled = self.members[index].life.scheduled();
            let p_full = self.members[index].life.p_full();
            let forgot = rng.random::<f64>() < self.members[index].life.traits.forgetfulness * 0.35;
            let pays = !forgot && rng.random::<f64>() < p_full;
            if pays && scheduled > 0.005 {
                // The usual bill: collections money only from an account behind.
                let m = &mut self.members[index];
                let amount = scheduled.min(m.life.balance);
                m.life.balance -= amount;
                m.cycle_paid += amount;
                self.payments.push(Payment {
                    account: index,
                    day: dn,
                    cents: cents(amount),
                    collections: behind,
                });
                if behind {
                    report.collected_cents += cents(amount);
                }
            } else if scheduled > 0.005 {
                let m = &mut self.members[index];
                if m.life.arrears <= 0.0 {
                    m.life.dpd = m.life.dpd.max(1);
                }
                m.life.arrears = (m.life.arrears + scheduled).min(m.life.balance);
            }
            let m = &mut self.members[index];
            let due = (m.cycle_arrears + scheduled).min(m.life.balance + m.cycle_paid);
            self.tables.cycles.push(CycleRow {
                account: index,
                cycle_end: dn,
                amount_due: cents(due),
                amount_paid: cents(m.cycle_paid),
                balance: cents(m.life.balance),
                days_past_due: m.life.dpd,
            });
            m.life.balance *= 1.0 + m.life.monthly_rate;
            m.cycle_paid = 0.0;
            m.cycle_arrears = m.life.arrears;
            if m.life.shock_left > 0 {
                m.life.shock_left -= 1;
            } else if rng.random::<f64>() < m.life.traits.shock_rate {
                m.life.shock_left = rng.random_range(1..=4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u64) -> LivingParams {
        LivingParams {
            accounts: 300,
            seed,
            start: NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
            currency: "USD".into(),
            world: World::A,
            arrivals_per_day: 0.02,
            max_calls_in_window: 7,
            call_window_days: 7,
            cool_off_days: 7,
        }
    }

    fn in_book(book: &LivingBook) -> Vec<usize> {
        (0..book.len())
            .filter(|&i| book.in_collections(i))
            .collect()
    }

    #[test]
    fn two_books_left_alone_live_the_same_lives() {
        let (mut a, mut b) = (LivingBook::new(params(3)), LivingBook::new(params(3)));
        for _ in 0..40 {
            let (ra, rb) = (a.advance(&[]), b.advance(&[]));
            assert_eq!(ra.collected_cents, rb.collected_cents);
            assert_eq!(ra.arrivals, rb.arrivals);
        }
        assert_eq!(in_book(&a), in_book(&b));
        assert!(a.payments.len() > 50, "customers pay unprompted");
        assert!(a.len() > 300, "accounts arrive");
        // A month end went by: every open account has a cycle dated 2026-01-31.
        let [_, history, _, _] = a.frames().expect("frames");
        let ends = history
            .column("cycle_end")
            .expect("column")
            .date()
            .expect("dates");
        let jan_31 = date_to_days(NaiveDate::from_ymd_opt(2026, 1, 31).expect("date"));
        assert!(ends.physical().iter().any(|d| d == Some(jan_31)));
    }

    #[test]
    fn what_one_account_is_done_changes_no_other_customer_s_luck() {
        let (mut a, mut b) = (LivingBook::new(params(6)), LivingBook::new(params(6)));
        let target = in_book(&a)[3];
        let person = a.customer(target);
        for day in 0..30 {
            // A is called every day (as long as the desk may), B never.
            let calls = if a.in_collections(target) {
                vec![(target, Strategy::Call)]
            } else {
                vec![]
            };
            let (ra, rb) = (a.advance(&calls), b.advance(&[]));
            assert_eq!(ra.arrivals, rb.arrivals, "day {day}");
        }
        let others = |book: &LivingBook| -> Vec<(usize, i32, i64)> {
            book.payments
                .iter()
                .filter(|p| book.customer(p.account) != person)
                .map(|p| (p.account, p.day, p.cents))
                .collect()
        };
        assert_eq!(others(&a), others(&b));
        assert!(
            a.actions().len() > b.actions().len(),
            "the calls were made and recorded"
        );
    }

    #[test]
    fn contacts_tire_customers_and_leave_their_trace() {
        let mut book = LivingBook::new(params(4));
        let target = in_book(&book)[0];
        let fresh = book.true_gain(target)[Strategy::SmsReminder as usize];
        let actions = book.actions().len();
        let report = book.advance(&[(target, Strategy::SmsReminder)]);
        assert_eq!(report.contacts.len(), 1);
        let recorded = &book.actions()[actions];
        assert_eq!((recorded.account, recorded.channel), (target, "sms"));
        if book.in_collections(target) {
            let tired = book.true_gain(target)[Strategy::SmsReminder as usize];
            assert!(
                tired < fresh || fresh == 0.0,
                "a second text the next day is worth less: {tired} against {fresh}"
            );
        }
    }

    #[test]
    fn a_promise_blocks_contact_until_its_day_in_the_next_plan() {
        // Call everyone in the book until someone promises.
        let mut book = LivingBook::new(params(5));
        let config = crate::strategy::config::EngineConfig::default();
        for _ in 0..10 {
            let calls: Vec<(usize, Strategy)> = in_book(&book)
                .into_iter()
                .map(|i| (i, Strategy::Call))
                .collect();
            let report = book.advance(&calls);
            let promised: Vec<usize> = report
                .contacts
                .iter()
                .filter(|c| c.outcome == "promise_to_pay")
                .map(|c| c.account)
                .filter(|&i| book.in_collections(i))
                .collect();
            if promised.is_empty() {
                continue;
            }
            let data =
                crate::contract::DataSet::from_frames("test", book.frames().expect("frames"))
                    .expect("the book is a valid data folder");
            let states = crate::strategy::state::account_states(&data, book.today(), &config.rules)
                .expect("states");
            let ids = data.accounts.column("account_id").expect("ids");
            let ids = ids.str().expect("strings");
            for account in promised {
                let row = ids
                    .iter()
                    .position(|id| id == Some(LivingBook::id(account).as_str()))
                    .expect("in the book");
                assert!(states[row].promise_pending, "{account} promised yesterday");
            }
            return;
        }
        panic!("no one promised in ten days of calls");
    }
}
