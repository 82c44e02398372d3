//! Rows of a simulated chunk of accounts, kept column-friendly, and their
//! conversion into the contract's tables.

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;

use crate::contract::parse::date_to_days;
use crate::contract::Strategy;
use crate::strategy::rules::{AccountState, RuleConfig};

/// Money in the simulator's output has cents: `Decimal(18, 2)`.
const SCALE: usize = 2;

#[derive(Clone)]
pub struct CycleRow {
    pub account: usize,
    pub cycle_end: i32,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub balance: i64,
    pub days_past_due: i32,
}

#[derive(Clone)]
pub struct ActionRow {
    pub account: usize,
    /// UTC microseconds.
    pub at: i64,
    pub channel: &'static str,
    pub outcome: &'static str,
    pub promised_amount: Option<i64>,
    pub promised_on: Option<i32>,
}

#[derive(Clone)]
pub struct AccountRow {
    pub account: usize,
    pub customer: usize,
    pub product: &'static str,
    pub timezone: &'static str,
    pub opened_on: i32,
    pub credit_limit: Option<i64>,
    pub balance: i64,
    pub amount_past_due: i64,
    pub state: AccountState,
}

/// Everything one chunk of accounts produced.
#[derive(Default, Clone)]
pub struct ChunkTables {
    pub accounts: Vec<AccountRow>,
    pub cycles: Vec<CycleRow>,
    pub actions: Vec<ActionRow>,
    /// (account, strategy, paid, paid_amount in cents, propensity)
    pub outcomes: Vec<(usize, Strategy, bool, Option<i64>, f64)>,
    /// (account, true P(paid) and expected amount if paid, by strategy)
    pub truth: Vec<TruthRow>,
    /// Whether to keep each account's [`Life`](super::account::Life).
    pub keep_lives: bool,
    pub lives: Vec<super::account::Life>,
}

/// The simulator's hidden truth for one account on the as-of day.
#[derive(Clone)]
pub struct TruthRow {
    pub account: usize,
    pub p_pay: [f64; 10],
    pub amount: [f64; 10],
}

impl ChunkTables {
    /// Sets the contact-history parts of `state` from this account's actions
    /// (the last ones pushed), counted in its own time zone on `as_of`.
    pub fn fill_contact_state(
        &self,
        account: usize,
        as_of: NaiveDate,
        zone: &str,
        state: &mut AccountState,
    ) {
        let tz: chrono_tz::Tz = zone.parse().expect("known zone");
        let config = RuleConfig::default();
        let as_of_day = date_to_days(as_of);
        for action in self
            .actions
            .iter()
            .rev()
            .take_while(|a| a.account == account)
        {
            let local = DateTime::<Utc>::from_timestamp_micros(action.at)
                .expect("valid instant")
                .with_timezone(&tz);
            let age = as_of_day - date_to_days(local.date_naive());
            if action.channel == "call" && (0..config.call_window_days).contains(&age) {
                state.calls_in_window += 1;
            }
            let conversation = crate::features::contacts::CONVERSATIONS.contains(&action.outcome);
            if conversation && (0..config.conversation_cool_off_days).contains(&age) {
                state.in_conversation_cool_off = true;
            }
            if action.outcome == "promise_to_pay"
                && action.promised_on.is_some_and(|d| d >= as_of_day)
            {
                state.promise_pending = true;
            }
        }
    }

    /// Appends the account's snapshot row. One account in ten shares its
    /// customer with the account before it.
    #[allow(clippy::too_many_arguments)]
    pub fn push_account(
        &mut self,
        account: usize,
        product: &'static str,
        timezone: &'static str,
        opened_on: NaiveDate,
        credit_limit: Option<f64>,
        (balance, amount_past_due): (i64, i64),
        state: &AccountState,
    ) {
        let customer = match self.accounts.last() {
            Some(previous) if account % 10 == 3 => previous.customer,
            _ => account,
        };
        self.accounts.push(AccountRow {
            account,
            customer,
            product,
            timezone,
            opened_on: date_to_days(opened_on),
            credit_limit: credit_limit.map(|l| (l * 100.0).round() as i64),
            balance,
            amount_past_due,
            state: state.clone(),
        });
    }
}

fn ids<'a>(
    name: &str,
    indices: impl Iterator<Item = usize> + 'a,
    prefix: &str,
    capacity: usize,
) -> Column {
    let mut builder = StringChunkedBuilder::new(name.into(), capacity);
    let mut text = String::with_capacity(16);
    for index in indices {
        use std::fmt::Write;
        text.clear();
        write!(text, "{prefix}-{index:08}").expect("write to string");
        builder.append_value(&text);
    }
    builder.finish().into_column()
}

fn money(name: &str, cents: impl Iterator<Item = Option<i64>>) -> Column {
    Int128Chunked::from_iter_options(name.into(), cents.map(|c| c.map(i128::from)))
        .into_decimal_unchecked(18, SCALE)
        .into_column()
}

fn dates(name: &str, days: impl Iterator<Item = Option<i32>>) -> Column {
    Int32Chunked::from_iter_options(name.into(), days)
        .into_date()
        .into_column()
}

fn texts(name: &str, values: impl Iterator<Item = &'static str>) -> Column {
    StringChunked::from_iter_values(name.into(), values).into_column()
}

fn flags(name: &str, values: impl Iterator<Item = bool>) -> Column {
    BooleanChunked::from_iter_values(name.into(), values).into_column()
}

impl ChunkTables {
    /// The chunk as the contract's four tables.
    pub fn into_frames(self, currency: &str, as_of: NaiveDate) -> PolarsResult<[DataFrame; 5]> {
        self.frames(currency, as_of, &|_| true)
    }

    /// The rows of the accounts for which `keep` holds, as the contract's
    /// four tables and the truth.
    pub fn frames(
        &self,
        currency: &str,
        as_of: NaiveDate,
        keep: &dyn Fn(usize) -> bool,
    ) -> PolarsResult<[DataFrame; 5]> {
        let a: Vec<&AccountRow> = self.accounts.iter().filter(|r| keep(r.account)).collect();
        self.frames_with(
            &a,
            currency,
            as_of,
            keep,
            (self.cycles.len(), self.actions.len()),
        )
    }

    /// [`ChunkTables::frames`] with the account rows given (a snapshot of
    /// another day) and only the first `upto` (cycles, actions) rows.
    pub fn frames_with(
        &self,
        a: &[&AccountRow],
        currency: &str,
        as_of: NaiveDate,
        keep: &dyn Fn(usize) -> bool,
        upto: (usize, usize),
    ) -> PolarsResult<[DataFrame; 5]> {
        let n = a.len();
        let accounts = DataFrame::new(vec![
            ids("account_id", a.iter().map(|r| r.account), "ACC", n),
            ids("customer_id", a.iter().map(|r| r.customer), "CUS", n),
            texts("product", a.iter().map(|r| r.product)),
            Column::new_scalar(
                "currency".into(),
                Scalar::from(PlSmallStr::from(currency)),
                n,
            ),
            dates("opened_on", a.iter().map(|r| Some(r.opened_on))),
            money("credit_limit", a.iter().map(|r| r.credit_limit)),
            money("balance", a.iter().map(|r| Some(r.balance))),
            money("amount_past_due", a.iter().map(|r| Some(r.amount_past_due))),
            Int32Chunked::from_iter_values(
                "days_past_due".into(),
                a.iter().map(|r| r.state.days_past_due),
            )
            .into_column(),
            texts("timezone", a.iter().map(|r| r.timezone)),
            flags("dispute_open", a.iter().map(|r| r.state.dispute_open)),
            flags("cease_contact", a.iter().map(|r| r.state.cease_contact)),
            flags("bankruptcy", a.iter().map(|r| r.state.bankruptcy)),
            flags("deceased", a.iter().map(|r| r.state.deceased)),
            flags("do_not_call", a.iter().map(|r| r.state.do_not_call)),
            flags("do_not_sms", a.iter().map(|r| r.state.do_not_sms)),
            flags("do_not_email", a.iter().map(|r| r.state.do_not_email)),
        ])?;
        let c: Vec<&CycleRow> = self.cycles[..upto.0]
            .iter()
            .filter(|r| keep(r.account))
            .collect();
        let payment_history = DataFrame::new(vec![
            ids("account_id", c.iter().map(|r| r.account), "ACC", c.len()),
            dates("cycle_end", c.iter().map(|r| Some(r.cycle_end))),
            money("amount_due", c.iter().map(|r| Some(r.amount_due))),
            money("amount_paid", c.iter().map(|r| Some(r.amount_paid))),
            money("balance", c.iter().map(|r| Some(r.balance))),
            Int32Chunked::from_iter_values(
                "days_past_due".into(),
                c.iter().map(|r| r.days_past_due),
            )
            .into_column(),
        ])?;
        let x: Vec<&ActionRow> = self.actions[..upto.1]
            .iter()
            .filter(|r| keep(r.account))
            .collect();
        let actions = DataFrame::new(vec![
            ids("account_id", x.iter().map(|r| r.account), "ACC", x.len()),
            Int64Chunked::from_iter_values("at".into(), x.iter().map(|r| r.at))
                .into_datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC))
                .into_column(),
            texts("channel", x.iter().map(|r| r.channel)),
            texts("outcome", x.iter().map(|r| r.outcome)),
            money("promised_amount", x.iter().map(|r| r.promised_amount)),
            dates("promised_on", x.iter().map(|r| r.promised_on)),
        ])?;
        let o: Vec<_> = self.outcomes.iter().filter(|r| keep(r.0)).collect();
        let outcomes = DataFrame::new(vec![
            ids("account_id", o.iter().map(|r| r.0), "ACC", o.len()),
            dates("as_of", o.iter().map(|_| Some(date_to_days(as_of)))),
            texts("strategy", o.iter().map(|r| r.1.as_str())),
            flags("paid", o.iter().map(|r| r.2)),
            money("paid_amount", o.iter().map(|r| r.3)),
            Column::new(
                "propensity".into(),
                o.iter().map(|r| r.4).collect::<Vec<f64>>(),
            ),
        ])?;
        let t: Vec<&TruthRow> = self.truth.iter().filter(|r| keep(r.account)).collect();
        let mut truth = vec![ids(
            "account_id",
            t.iter().map(|r| r.account),
            "ACC",
            t.len(),
        )];
        for strategy in Strategy::ALL {
            let s = strategy as usize;
            truth.push(Column::new(
                format!("p_{strategy}").into(),
                t.iter().map(|r| r.p_pay[s]).collect::<Vec<f64>>(),
            ));
            truth.push(Column::new(
                format!("amount_{strategy}").into(),
                t.iter().map(|r| r.amount[s]).collect::<Vec<f64>>(),
            ));
        }
        let truth = DataFrame::new(truth)?;
        Ok([accounts, payment_history, actions, outcomes, truth])
    }
}
