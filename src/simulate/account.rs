//! The life of one simulated account: its monthly cycles, the collection
//! contacts while it is behind, its state on the as-of day, and one logged
//! decision with its outcome.

use chrono::{NaiveDate, NaiveTime, TimeZone};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::response::{response, Exposure, Traits, World};
use super::tables::{ActionRow, ChunkTables, CycleRow, TruthRow};
use crate::contract::parse::date_to_days;
use crate::strategy::rules::{self, AccountState, RuleConfig};

/// Products with their share of the book.
const PRODUCTS: &[(&str, f64)] = &[
    ("credit_card", 0.50),
    ("personal_loan", 0.18),
    ("auto_loan", 0.10),
    ("bnpl", 0.15),
    ("invoice", 0.07),
];

/// Time zones of a US portfolio, with their share.
const ZONES: &[(&str, f64)] = &[
    ("America/New_York", 0.46),
    ("America/Chicago", 0.29),
    ("America/Denver", 0.07),
    ("America/Phoenix", 0.02),
    ("America/Los_Angeles", 0.15),
    ("America/Anchorage", 0.005),
    ("Pacific/Honolulu", 0.005),
];

fn pick<'a>(rng: &mut ChaCha8Rng, table: &'a [(&'a str, f64)]) -> &'a str {
    let mut u = rng.random::<f64>() * table.iter().map(|(_, w)| w).sum::<f64>();
    for (name, weight) in table {
        if u < *weight {
            return name;
        }
        u -= weight;
    }
    table[table.len() - 1].0
}

fn cents(amount: f64) -> i64 {
    (amount.max(0.0) * 100.0).round() as i64
}

/// Calendar facts the whole portfolio shares.
pub struct Calendar {
    /// Cycle end dates, oldest first; the last is on or before the as-of day.
    pub cycle_ends: Vec<NaiveDate>,
    pub as_of: NaiveDate,
    /// The latent response the customers follow.
    pub world: World,
}

/// A contact attempt's instant: `hour:minute` local time on `day` in `tz`, in UTC microseconds.
pub(super) fn local_instant(tz: chrono_tz::Tz, day: NaiveDate, hour: u32, minute: u32) -> i64 {
    let local = day.and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time"));
    let resolved = tz.from_local_datetime(&local).earliest().or_else(|| {
        // The clock jumped over this time (spring forward): an hour later exists.
        tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
    });
    resolved
        .expect("an hour after a gap exists")
        .timestamp_micros()
}

/// Draws of a customer before one is taken whatever its history.
const MAX_DRAWS: usize = 25;

/// Simulates account `index` and appends its rows to `out`. A collections
/// book holds accounts with a balance that are behind on the as-of day: other
/// draws are discarded, but one in ten current accounts is kept so that the
/// book also shows what paying customers look like.
pub fn simulate_account(
    index: usize,
    calendar: &Calendar,
    rng: &mut ChaCha8Rng,
    out: &mut ChunkTables,
) {
    for draw in 1..=MAX_DRAWS {
        let marks = (out.cycles.len(), out.actions.len());
        if simulate_draw(index, calendar, rng, out, draw == MAX_DRAWS) {
            return;
        }
        out.cycles.truncate(marks.0);
        out.actions.truncate(marks.1);
    }
}

/// One draw of a customer; returns false (having written only history rows,
/// which the caller discards) if the account does not belong in the book.
fn simulate_draw(
    index: usize,
    calendar: &Calendar,
    rng: &mut ChaCha8Rng,
    out: &mut ChunkTables,
    take_any: bool,
) -> bool {
    let traits = Traits::draw(rng);
    let product = pick(rng, PRODUCTS);
    let zone_name = pick(rng, ZONES);
    let tz: chrono_tz::Tz = zone_name.parse().expect("known zone");
    let cycles = calendar.cycle_ends.len();
    // Most accounts predate the window; some are new and have a short history.
    let history = if rng.random::<f64>() < 0.12 {
        rng.random_range(2..=cycles)
    } else {
        cycles
    };
    let first_cycle = cycles - history;
    let months_before = rng.random_range(1..=(if history < cycles { 1 } else { 96 }));
    let opened_on =
        calendar.cycle_ends[first_cycle] - chrono::Duration::days(30 * months_before as i64 + 15);

    let (limit, mut balance, monthly_rate, instalment) = match product {
        "credit_card" => {
            let limit = (rng.random_range(500.0..15_000.0f64) / 100.0).round() * 100.0;
            (Some(limit), limit * rng.random_range(0.3..0.95), 0.02, 0.0)
        }
        "bnpl" => {
            let total = rng.random_range(100.0..2_000.0);
            (None, total, 0.0, total / 4.0)
        }
        "personal_loan" => {
            let principal = rng.random_range(2_000.0..30_000.0);
            (
                None,
                principal,
                0.01,
                principal / rng.random_range(24.0..60.0),
            )
        }
        "auto_loan" => {
            let principal = rng.random_range(8_000.0..40_000.0);
            (
                None,
                principal,
                0.007,
                principal / rng.random_range(36.0..72.0),
            )
        }
        _ => {
            let total = rng.random_range(200.0..6_000.0);
            (None, total, 0.0, total)
        }
    };
    // A collections book: many accounts enter the window already behind.
    let mut arrears = if rng.random::<f64>() < 0.5 {
        balance.min(rng.random_range(50.0..1500.0))
    } else {
        0.0
    };
    let mut dpd: i32 = if arrears > 0.0 {
        rng.random_range(1..=180)
    } else {
        0
    };
    let mut shock_left = 0u32;
    let mut recent_dispute = false;

    for (cycle, &cycle_end) in calendar.cycle_ends.iter().enumerate().skip(first_cycle) {
        let cycle_start = if cycle == 0 {
            cycle_end - chrono::Duration::days(30)
        } else {
            calendar.cycle_ends[cycle - 1]
        };
        if shock_left > 0 {
            shock_left -= 1;
        } else if rng.random::<f64>() < traits.shock_rate {
            shock_left = rng.random_range(1..=4);
        }
        let capacity = if shock_left > 0 {
            traits.ability * 0.25
        } else {
            traits.ability
        };
        let scheduled = match product {
            "credit_card" => (0.03 * balance).max(25.0f64.min(balance)),
            _ => instalment.min(balance),
        }
        .max(0.0);
        let due = (scheduled + arrears).min(balance.max(0.0));
        let behind_before = arrears > 0.0 || dpd > 0;
        let p_full = 1.0
            / (1.0 + (-(4.0 * (capacity - 0.45) + 2.5 * (traits.willingness - 0.5) + 0.3)).exp());
        let forgot = rng.random::<f64>() < traits.forgetfulness * 0.35;
        let u = rng.random::<f64>();
        let paid = if due <= 0.005 || forgot {
            0.0
        } else if u < p_full {
            if rng.random::<f64>() < 0.12 * traits.ability {
                balance.min(due + scheduled * rng.random_range(0.5..2.0))
            } else {
                due
            }
        } else if u < p_full + (1.0 - p_full) * 0.5 * capacity {
            due * rng.random_range(0.2..0.9)
        } else {
            0.0
        };
        let paid = (paid * 100.0).round() / 100.0;
        let days_in_cycle = (cycle_end - cycle_start).num_days() as i32;
        arrears = (due - paid).max(0.0);
        if arrears < 0.01 {
            arrears = 0.0;
            dpd = 0;
        } else if dpd == 0 {
            dpd = rng.random_range(5..=days_in_cycle.min(30));
        } else if paid < scheduled * 0.99 {
            dpd += days_in_cycle;
        }
        let spend = if product == "credit_card" && dpd == 0 {
            rng.random_range(0.0..0.08) * limit.unwrap_or(0.0) * traits.willingness
        } else {
            0.0
        };
        balance = balance * (1.0 + monthly_rate) + spend - paid;
        if let Some(limit) = limit {
            balance = balance.min(limit * 1.1);
        }
        out.cycles.push(CycleRow {
            account: index,
            cycle_end: date_to_days(cycle_end),
            amount_due: cents(due),
            amount_paid: cents(paid),
            balance: (balance * 100.0).round() as i64,
            days_past_due: dpd,
        });
        // Collection contacts are kept for the last six cycles.
        if (behind_before || arrears > 0.0) && cycle + 6 >= cycles {
            let contacts = ContactCycle {
                tz,
                cycle_start,
                cycle_end,
                dpd,
                paid: paid > 0.0,
                as_of: calendar.as_of,
            };
            recent_dispute |= contacts.simulate(index, &traits, rng, out);
        }
    }
    let keep = balance > 1.0 && (dpd > 0 || rng.random::<f64>() < 0.1);
    if !keep && !take_any {
        return false;
    }
    finish_account(
        index,
        calendar,
        &traits,
        (product, zone_name, opened_on, limit),
        (balance, arrears, dpd, shock_left > 0),
        recent_dispute,
        rng,
        out,
    );
    if out.keep_lives {
        let row = out.accounts.last().expect("the account just pushed");
        out.lives.push(Life {
            index,
            customer: row.customer,
            traits,
            product,
            zone: zone_name,
            tz,
            limit,
            balance: balance.max(0.0),
            arrears: arrears.min(balance.max(0.0)),
            dpd,
            shock_left,
            monthly_rate,
            instalment,
            flags: row.state.clone(),
        });
    }
    true
}

/// Where an account's simulated history left it: its hidden traits and its
/// state on the as-of day, for the living book to carry on from.
#[derive(Debug, Clone)]
pub struct Life {
    pub index: usize,
    pub customer: usize,
    pub traits: Traits,
    pub product: &'static str,
    pub zone: &'static str,
    pub tz: chrono_tz::Tz,
    pub limit: Option<f64>,
    pub balance: f64,
    pub arrears: f64,
    pub dpd: i32,
    /// Months of income shock left.
    pub shock_left: u32,
    pub monthly_rate: f64,
    /// The scheduled payment of an instalment product (0 for cards).
    pub instalment: f64,
    /// The snapshot's flags (dispute, cease contact, opt-outs …).
    pub flags: AccountState,
}

impl Life {
    /// The payment scheduled for a cycle, as in the account's history.
    pub fn scheduled(&self) -> f64 {
        match self.product {
            "credit_card" => (0.03 * self.balance).max(25.0f64.min(self.balance)),
            _ => self.instalment.min(self.balance),
        }
        .max(0.0)
    }

    /// The chance of paying a cycle in full, as in the account's history.
    pub fn p_full(&self) -> f64 {
        let capacity = if self.shock_left > 0 {
            self.traits.ability * 0.25
        } else {
            self.traits.ability
        };
        1.0 / (1.0
            + (-(4.0 * (capacity - 0.45) + 2.5 * (self.traits.willingness - 0.5) + 0.3)).exp())
    }
}

/// Contact attempts during one cycle in which the account was behind.
struct ContactCycle {
    tz: chrono_tz::Tz,
    cycle_start: NaiveDate,
    cycle_end: NaiveDate,
    dpd: i32,
    paid: bool,
    as_of: NaiveDate,
}

impl ContactCycle {
    /// Appends the cycle's contacts; returns whether the customer disputed.
    fn simulate(
        &self,
        index: usize,
        traits: &Traits,
        rng: &mut ChaCha8Rng,
        out: &mut ChunkTables,
    ) -> bool {
        let span = (self.cycle_end - self.cycle_start).num_days().max(1);
        let mut disputed = false;
        let mut push = |rng: &mut ChaCha8Rng,
                        channel: &'static str,
                        outcome: &'static str,
                        hours: std::ops::Range<u32>,
                        promise: Option<(i64, i64)>| {
            let day = self.cycle_start + chrono::Duration::days(rng.random_range(1..=span));
            if day > self.as_of {
                return;
            }
            let hour = rng.random_range(hours);
            let at = local_instant(self.tz, day, hour, rng.random_range(0..60));
            let (promised_amount, promised_on) = match promise {
                Some((amount, days_after)) => (
                    Some(amount),
                    Some(date_to_days(day + chrono::Duration::days(days_after))),
                ),
                None => (None, None),
            };
            out.actions.push(ActionRow {
                account: index,
                at,
                channel,
                outcome,
                promised_amount,
                promised_on,
            });
        };
        if rng.random::<f64>() < 0.7 {
            let outcome = if rng.random::<f64>() < 0.95 {
                "delivered"
            } else {
                "undeliverable"
            };
            push(rng, "sms", outcome, 9..20, None);
        }
        if rng.random::<f64>() < 0.5 {
            let outcome = if rng.random::<f64>() < 0.93 {
                "delivered"
            } else {
                "undeliverable"
            };
            push(rng, "email", outcome, 0..24, None);
        }
        if self.dpd > 30 && rng.random::<f64>() < 0.6 {
            push(rng, "letter", "delivered", 10..11, None);
        }
        let calls = match self.dpd {
            0..=30 => rng.random_range(0..=2),
            31..=90 => rng.random_range(1..=4),
            _ => rng.random_range(1..=5),
        };
        for _ in 0..calls {
            let outcome = if rng.random::<f64>() < 0.03 {
                "wrong_party"
            } else if rng.random::<f64>() < traits.contactability * 0.6 {
                let r = rng.random::<f64>();
                if r < 0.015 {
                    disputed = true;
                    "dispute"
                } else if self.paid && r < 0.6 || !self.paid && r < 0.3 {
                    "promise_to_pay"
                } else if traits.willingness < 0.4 && r < 0.8 {
                    "refused"
                } else {
                    "right_party_contact"
                }
            } else if rng.random::<f64>() < 0.5 {
                "left_message"
            } else {
                "no_answer"
            };
            let promise = (outcome == "promise_to_pay").then(|| {
                let amount = rng.random_range(25.0..500.0);
                (cents(amount), rng.random_range(2..=14))
            });
            push(rng, "call", outcome, 8..21, promise);
            if outcome == "promise_to_pay" && self.paid && rng.random::<f64>() < 0.3 {
                push(rng, "call", "paid", 9..18, None);
            }
        }
        disputed
    }
}

/// Writes the account's snapshot row and its one logged decision.
#[allow(clippy::too_many_arguments)]
fn finish_account(
    index: usize,
    calendar: &Calendar,
    traits: &Traits,
    (product, zone, opened_on, limit): (&'static str, &'static str, NaiveDate, Option<f64>),
    (balance, arrears, dpd, shocked): (f64, f64, i32, bool),
    recent_dispute: bool,
    rng: &mut ChaCha8Rng,
    out: &mut ChunkTables,
) {
    let balance = balance.max(0.0);
    let past_due = arrears.min(balance);
    let flag = |rng: &mut ChaCha8Rng, p: f64| rng.random::<f64>() < p;
    let mut state = AccountState {
        days_past_due: dpd,
        dispute_open: recent_dispute && flag(rng, 0.6),
        cease_contact: flag(rng, 0.01),
        bankruptcy: flag(rng, 0.004 + 0.01 * (1.0 - traits.ability)),
        deceased: flag(rng, 0.002),
        do_not_call: flag(rng, 0.04),
        do_not_sms: flag(rng, 0.06),
        do_not_email: flag(rng, 0.05),
        ..Default::default()
    };
    out.fill_contact_state(index, calendar.as_of, zone, &mut state);
    let allowed = rules::allowed(&state, &RuleConfig::default());
    let strategy = allowed[rng.random_range(0..allowed.len())];
    let exposure = Exposure {
        balance,
        past_due,
        days_past_due: dpd,
        shocked,
    };
    let (p_pay, amount) = response(calendar.world, traits, &exposure, strategy);
    let paid = rng.random::<f64>() < p_pay;
    let mut truth = TruthRow {
        account: index,
        p_pay: [0.0; 10],
        amount: [0.0; 10],
    };
    for s in crate::contract::Strategy::ALL {
        let (p, a) = response(calendar.world, traits, &exposure, s);
        truth.p_pay[s as usize] = p;
        // What is collected is 80–100 % of the amount: 90 % on average.
        truth.amount[s as usize] = a * 0.9;
    }
    out.truth.push(truth);
    out.push_account(
        index,
        product,
        zone,
        opened_on,
        limit,
        (cents(balance), cents(past_due)),
        &state,
    );
    out.outcomes.push((
        index,
        strategy,
        paid,
        paid.then(|| cents(amount * rng.random_range(0.8..1.0))),
        1.0 / allowed.len() as f64,
    ));
}
