//! Compliance breaks replayed from what the world recorded, by code that
//! shares nothing with the rules engine (`strategy::rules`, `strategy::state`):
//! every contact is checked against the morning's account flags and days
//! past due, and against ledgers this module keeps itself from the stream of
//! recorded actions (each person's call attempts and last conversation,
//! each account's latest promise).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::contract::Strategy;
use crate::simulate::living::{Contact, LivingBook};
use crate::simulate::tables::ActionRow;
use crate::strategy::rules::{AccountState, RuleConfig};

/// A compliance break.
#[derive(Debug, Clone)]
pub struct Violation {
    pub day: NaiveDate,
    pub account: usize,
    pub strategy: Strategy,
    pub what: &'static str,
}

/// The replay's own ledgers.
pub struct Replay {
    rules: RuleConfig,
    /// Actions of the world's log already read.
    cursor: usize,
    /// Per person: call attempts (UTC microseconds).
    calls: HashMap<usize, Vec<i64>>,
    /// Per person: conversations (UTC microseconds).
    conversations: HashMap<usize, Vec<i64>>,
    /// Per account: the latest promise's date (days since the epoch).
    promised_on: HashMap<usize, i32>,
    pub violations: Vec<Violation>,
}

const CONVERSATIONS: [&str; 4] = [
    "right_party_contact",
    "promise_to_pay",
    "refused",
    "dispute",
];

fn local(at: i64, tz: chrono_tz::Tz) -> chrono::DateTime<chrono_tz::Tz> {
    DateTime::<Utc>::from_timestamp_micros(at)
        .expect("valid instant")
        .with_timezone(&tz)
}

impl Replay {
    pub fn new(rules: &RuleConfig) -> Replay {
        Replay {
            rules: rules.clone(),
            cursor: 0,
            calls: HashMap::new(),
            conversations: HashMap::new(),
            promised_on: HashMap::new(),
            violations: Vec::new(),
        }
    }

    fn ingest(&mut self, book: &LivingBook, action: &ActionRow) {
        let person = book.customer(action.account);
        if action.channel == "call" {
            self.calls.entry(person).or_default().push(action.at);
        }
        if CONVERSATIONS.contains(&action.outcome) {
            self.conversations
                .entry(person)
                .or_default()
                .push(action.at);
        }
        if let (Some(on), "promise_to_pay") = (action.promised_on, action.outcome) {
            let latest = self.promised_on.entry(action.account).or_insert(on);
            *latest = (*latest).max(on);
        }
    }

    /// Reads the actions recorded before the day's work (history of
    /// accounts that arrived included).
    pub fn catch_up(&mut self, book: &LivingBook) {
        let actions = book.actions();
        while self.cursor < actions.len() {
            let action = &actions[self.cursor];
            self.ingest(book, action);
            self.cursor += 1;
        }
    }

    /// Checks the day's contacts, in the order they were made, against the
    /// morning's flags (`morning[account]`) and the ledgers, then reads them.
    /// The contacts are the first actions the world recorded after
    /// [`Replay::catch_up`].
    pub fn check_day(
        &mut self,
        book: &LivingBook,
        day: NaiveDate,
        morning: &HashMap<usize, AccountState>,
        contacts: &[Contact],
    ) {
        let today = crate::contract::parse::date_to_days(day);
        for contact in contacts {
            let action = book.actions()[self.cursor].clone();
            let index = contact.account;
            if (action.account, action.at) != (contact.account, contact.at) {
                self.violations.push(Violation {
                    day,
                    account: index,
                    strategy: contact.strategy,
                    what: "a contact the world did not record as made",
                });
            }
            let strategy = contact.strategy;
            let mut flag = |what: &'static str| {
                self.violations.push(Violation {
                    day,
                    account: index,
                    strategy,
                    what,
                })
            };
            let Some(state) = morning.get(&index) else {
                flag("contacted an account not in the morning's book");
                self.cursor += 1;
                continue;
            };
            if state.cease_contact || state.bankruptcy || state.deceased {
                flag("no_contact");
            }
            if state.dispute_open {
                flag("dispute_open");
            }
            if state.days_past_due < self.rules.eligible_from_dpd[strategy as usize] {
                flag("eligibility_floor");
            }
            let channel = action.channel;
            if (channel == "call" && state.do_not_call)
                || (channel == "sms" && state.do_not_sms)
                || (channel == "email" && state.do_not_email)
            {
                flag("channel_opt_out");
            }
            if self.promised_on.get(&index).is_some_and(|&on| on >= today) {
                flag("promise_pending");
            }
            if channel == "call" {
                let tz = book.tz(index);
                let at = local(action.at, tz);
                let (open, close) = self.rules.calling_hours;
                if at.time() < open || at.time() >= close {
                    flag("calling_hours");
                }
                let person = book.customer(index);
                let first_day = at.date_naive()
                    - chrono::Duration::days(i64::from(self.rules.call_window_days - 1));
                let from = tz
                    .from_local_datetime(&first_day.and_time(NaiveTime::MIN))
                    .earliest()
                    .map_or(i64::MIN, |t| t.timestamp_micros());
                let made = self.calls.get(&person).map_or(0, |c| {
                    c.iter().filter(|&&t| t >= from && t <= action.at).count()
                });
                if made as u32 >= self.rules.max_calls_in_window {
                    flag("call_attempt_limit");
                }
                let cool_off = i64::from(self.rules.conversation_cool_off_days) * 86_400_000_000;
                let cooling = self.conversations.get(&person).is_some_and(|c| {
                    c.iter()
                        .any(|&t| t <= action.at && action.at < t + cool_off)
                });
                if cooling {
                    flag("conversation_cool_off");
                }
            }
            self.ingest(book, &action);
            self.cursor += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::living::LivingParams;
    use crate::simulate::World;

    #[test]
    fn contacts_the_rules_forbid_are_caught() {
        let mut book = LivingBook::new(LivingParams {
            accounts: 400,
            seed: 9,
            start: NaiveDate::from_ymd_opt(2026, 3, 2).expect("date"),
            currency: "USD".into(),
            world: World::A,
            arrivals_per_day: 0.0,
            max_calls_in_window: 7,
            call_window_days: 7,
            cool_off_days: 7,
        });
        let rules = RuleConfig::default();
        let mut replay = Replay::new(&rules);
        replay.catch_up(&book);
        let open = |i: usize, book: &LivingBook| {
            let f = book.flags(i);
            book.in_collections(i)
                && !(f.cease_contact || f.bankruptcy || f.deceased || f.dispute_open)
        };
        let opted_out = (0..book.len())
            .find(|&i| open(i, &book) && book.flags(i).do_not_sms)
            .expect("an account that opted out of texts");
        let early = (0..book.len())
            .find(|&i| open(i, &book) && book.flags(i).days_past_due < 90 && i != opted_out)
            .expect("an account under 90 days past due");
        let allowed = (0..book.len())
            .find(|&i| {
                open(i, &book) && !book.flags(i).do_not_email && i != opted_out && i != early
            })
            .expect("an account that may be emailed");
        let decisions = [
            (opted_out, Strategy::SmsReminder),
            (early, Strategy::Legal),
            (allowed, Strategy::EmailReminder),
        ];
        let morning: HashMap<usize, AccountState> = decisions
            .iter()
            .map(|&(i, _)| (i, book.flags(i).clone()))
            .collect();
        let day = book.today();
        let report = book.advance(&decisions);
        replay.check_day(&book, day, &morning, &report.contacts);
        let found: Vec<(usize, &str)> = replay
            .violations
            .iter()
            .map(|v| (v.account, v.what))
            .collect();
        assert!(found.contains(&(opted_out, "channel_opt_out")), "{found:?}");
        assert!(found.contains(&(early, "eligibility_floor")), "{found:?}");
        assert!(!found.iter().any(|(i, _)| *i == allowed), "{found:?}");
    }
}
