//! Compliance rules of the contract. They run before any optimisation and
//! can only remove strategies; each removal names the rule that made it.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::contract::{Channel, Strategy};

/// A named compliance rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The strategy's eligibility floor in days past due is not reached.
    EligibilityFloor,
    /// cease_contact, bankruptcy or deceased: no contact of any kind.
    NoContact,
    /// An open dispute allows only `none` until it is validated.
    DisputeOpen,
    /// The customer opted out of the strategy's channel.
    ChannelOptOut,
    /// The call-attempt limit within the rolling window is reached.
    CallAttemptLimit,
    /// A conversation took place within the cool-off period.
    ConversationCoolOff,
    /// An unbroken promise to pay: nothing but `none` until its date.
    PromisePending,
    /// Calls are handed out only within calling hours in the account's time
    /// zone (a lease-time rule: it never removes a call from the day's plan).
    CallingHours,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 8] = [
        Rule::EligibilityFloor,
        Rule::NoContact,
        Rule::DisputeOpen,
        Rule::ChannelOptOut,
        Rule::CallAttemptLimit,
        Rule::ConversationCoolOff,
        Rule::PromisePending,
        Rule::CallingHours,
    ];

    /// The rule named `name` (as written to `blocked_by`).
    pub fn named(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The name written to `blocked_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::EligibilityFloor => "eligibility_floor",
            Rule::NoContact => "no_contact",
            Rule::DisputeOpen => "dispute_open",
            Rule::ChannelOptOut => "channel_opt_out",
            Rule::CallAttemptLimit => "call_attempt_limit",
            Rule::ConversationCoolOff => "conversation_cool_off",
            Rule::PromisePending => "promise_pending",
            Rule::CallingHours => "calling_hours",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rule parameters; the defaults are the contract's values.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// Eligibility floor in days past due, by strategy (contract order).
    pub eligible_from_dpd: [i32; 10],
    /// At most this many call attempts in `call_window_days` days.
    pub max_calls_in_window: u32,
    pub call_window_days: i32,
    /// No call within this many days (of 24 hours) after a conversation.
    pub conversation_cool_off_days: i32,
    /// Local times between which calls may be made: from the first, up to
    /// but not including the second.
    pub calling_hours: (NaiveTime, NaiveTime),
    /// A promise to pay recorded through the API may be dated at most this
    /// many days after the action (each pending promise pauses the account).
    pub max_promise_days: i32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            // none, sms, email, call, settlement, installment, letter, field visit, legal, agency
            eligible_from_dpd: [0, 0, 0, 0, 120, 0, 0, 60, 90, 150],
            max_calls_in_window: 7,
            call_window_days: 7,
            conversation_cool_off_days: 7,
            calling_hours: (
                NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
                NaiveTime::from_hms_opt(21, 0, 0).expect("valid time"),
            ),
            max_promise_days: 60,
        }
    }
}

/// What the rules look at for one account on the planning day.
#[derive(Debug, Clone, Default)]
pub struct AccountState {
    pub days_past_due: i32,
    pub dispute_open: bool,
    pub cease_contact: bool,
    pub bankruptcy: bool,
    pub deceased: bool,
    pub do_not_call: bool,
    pub do_not_sms: bool,
    pub do_not_email: bool,
    /// Call attempts in the window ending on (and including) the planning day.
    pub calls_in_window: u32,
    /// Whether a conversation is recent enough to block calls.
    pub in_conversation_cool_off: bool,
    /// A promise to pay whose date has not yet passed.
    pub promise_pending: bool,
    /// The person's latest conversation up to the planning day: calls wait
    /// for its cool-off to end.
    pub last_conversation: Option<DateTime<Utc>>,
}

/// The first rule that removes `strategy` for this account, or `None` if allowed.
pub fn blocked_by(strategy: Strategy, state: &AccountState, config: &RuleConfig) -> Option<Rule> {
    if strategy == Strategy::None {
        return None;
    }
    if state.cease_contact || state.bankruptcy || state.deceased {
        return Some(Rule::NoContact);
    }
    if state.dispute_open {
        return Some(Rule::DisputeOpen);
    }
    if state.promise_pending {
        return Some(Rule::PromisePending);
    }
    if state.days_past_due < config.eligible_from_dpd[strategy as usize] {
        return Some(Rule::EligibilityFloor);
    }
    let channel = strategy.channel();
    let opted_out = match channel {
        Some(Channel::Call) => state.do_not_call,
        Some(Channel::Sms) => state.do_not_sms,
        Some(Channel::Email) => state.do_not_email,
        _ => false,
    };
    if opted_out {
        return Some(Rule::ChannelOptOut);
    }
    if channel == Some(Channel::Call) {
        if state.calls_in_window >= config.max_calls_in_window {
            return Some(Rule::CallAttemptLimit);
        }
        if state.in_conversation_cool_off {
            return Some(Rule::ConversationCoolOff);
        }
    }
    None
}

/// Whether `now` lies within calling hours in the time zone `tz`.
pub fn within_calling_hours(now: DateTime<Utc>, tz: chrono_tz::Tz, config: &RuleConfig) -> bool {
    let local = now.with_timezone(&tz).time();
    local >= config.calling_hours.0 && local < config.calling_hours.1
}

/// The instant `time` local on `day` in `tz`: the earlier of two when clocks
/// go back, and the first instant after the gap when they go forward.
pub fn local_instant(day: NaiveDate, time: NaiveTime, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let mut local = day.and_time(time);
    for _ in 0..4 {
        if let Some(found) = tz.from_local_datetime(&local).earliest() {
            return found.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(time))
}

/// Whether a conversation at `conversation` still blocks calls at `now`: the
/// cool-off lasts exactly `conversation_cool_off_days` × 24 hours.
pub fn in_cool_off(conversation: DateTime<Utc>, now: DateTime<Utc>, config: &RuleConfig) -> bool {
    now >= conversation
        && now < conversation + Duration::days(i64::from(config.conversation_cool_off_days))
}

/// Whether the cool-off after `conversation` covers all of `day`'s calling
/// hours in `tz`, so that no call can be made that day. A cool-off that ends
/// during the day's calling hours leaves the call in the plan; the lease is
/// refused until it ends (see [`in_cool_off`]).
pub fn cool_off_covers_day(
    conversation: DateTime<Utc>,
    day: NaiveDate,
    tz: chrono_tz::Tz,
    config: &RuleConfig,
) -> bool {
    let last_moment = local_instant(day, config.calling_hours.1, tz) - Duration::microseconds(1);
    in_cool_off(conversation, last_moment, config)
}

/// Whether a promise to pay on `promised_on` still holds on `day`: it does up
/// to and including its date ("not yet passed").
pub fn promise_holds(promised_on: NaiveDate, day: NaiveDate) -> bool {
    promised_on >= day
}

/// Where a promise to pay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromiseStatus {
    /// Its date has not passed and nothing was paid yet.
    Pending,
    /// A payment came on or before its date.
    Kept,
    /// Its date passed with no payment by then.
    Broken,
}

impl PromiseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromiseStatus::Pending => "pending",
            PromiseStatus::Kept => "kept",
            PromiseStatus::Broken => "broken",
        }
    }
}

/// A promise due on `promised_on`, on `today`, given the local day of the
/// first payment made since the promise (if any).
pub fn promise_status(
    promised_on: NaiveDate,
    first_payment: Option<NaiveDate>,
    today: NaiveDate,
) -> PromiseStatus {
    match first_payment {
        Some(paid) if paid <= promised_on => PromiseStatus::Kept,
        _ if promise_holds(promised_on, today) => PromiseStatus::Pending,
        _ => PromiseStatus::Broken,
    }
}

/// The strategies the rules allow (always including `none`).
pub fn allowed(state: &AccountState, config: &RuleConfig) -> Vec<Strategy> {
    Strategy::ALL
        .into_iter()
        .filter(|s| blocked_by(*s, state, config).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delinquent(days_past_due: i32) -> AccountState {
        AccountState {
            days_past_due,
            ..Default::default()
        }
    }

    #[test]
    fn none_is_always_allowed() {
        let state = AccountState {
            deceased: true,
            dispute_open: true,
            promise_pending: true,
            ..delinquent(400)
        };
        assert_eq!(
            allowed(&state, &RuleConfig::default()),
            vec![Strategy::None]
        );
    }

    #[test]
    fn eligibility_floors_follow_the_contract() {
        let config = RuleConfig::default();
        assert_eq!(
            blocked_by(Strategy::Legal, &delinquent(89), &config),
            Some(Rule::EligibilityFloor)
        );
        assert_eq!(blocked_by(Strategy::Legal, &delinquent(90), &config), None);
        assert_eq!(
            blocked_by(Strategy::Agency, &delinquent(149), &config),
            Some(Rule::EligibilityFloor)
        );
        assert_eq!(
            blocked_by(Strategy::SettlementOffer, &delinquent(120), &config),
            None
        );
    }

    #[test]
    fn seventh_call_in_window_blocks_the_eighth() {
        let config = RuleConfig::default();
        let six = AccountState {
            calls_in_window: 6,
            ..delinquent(30)
        };
        let seven = AccountState {
            calls_in_window: 7,
            ..delinquent(30)
        };
        assert_eq!(blocked_by(Strategy::Call, &six, &config), None);
        assert_eq!(
            blocked_by(Strategy::Call, &seven, &config),
            Some(Rule::CallAttemptLimit)
        );
        assert_eq!(blocked_by(Strategy::SmsReminder, &seven, &config), None);
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_conversation_six_days_23_hours_ago_still_blocks_calls() {
        let config = RuleConfig::default();
        let now = at("2026-09-30T15:00:00Z");
        assert!(in_cool_off(at("2026-09-23T16:00:00Z"), now, &config));
        assert!(in_cool_off(at("2026-09-23T15:00:00.000001Z"), now, &config));
        assert!(!in_cool_off(at("2026-09-23T15:00:00Z"), now, &config));
        assert!(!in_cool_off(at("2026-09-22T16:00:00Z"), now, &config));
    }

    #[test]
    fn a_cool_off_blocks_the_days_plan_only_if_it_outlasts_its_calling_hours() {
        let config = RuleConfig::default();
        let ny: chrono_tz::Tz = "America/New_York".parse().expect("zone");
        let day: NaiveDate = "2026-09-30".parse().expect("date");
        // Calling hours end at 21:00 EDT = 01:00 UTC the next day.
        // Over at 20:59 EDT: a minute of calling time is left.
        assert!(!cool_off_covers_day(
            at("2026-09-24T00:59:00Z"),
            day,
            ny,
            &config
        ));
        // Over at 21:00 EDT: none is.
        assert!(cool_off_covers_day(
            at("2026-09-24T01:00:00Z"),
            day,
            ny,
            &config
        ));
        assert!(!cool_off_covers_day(
            at("2026-09-23T12:00:00Z"),
            day,
            ny,
            &config
        ));
    }

    #[test]
    fn calling_hours_follow_local_time_across_daylight_saving_changes() {
        let config = RuleConfig::default();
        let ny: chrono_tz::Tz = "America/New_York".parse().expect("zone");
        // Saturday 31 October 2026, still on EDT (UTC-4).
        assert!(within_calling_hours(
            at("2026-11-01T00:59:00Z"),
            ny,
            &config
        ));
        assert!(!within_calling_hours(
            at("2026-11-01T01:00:00Z"),
            ny,
            &config
        ));
        // Sunday 1 November 2026: clocks went back at 02:00, now EST (UTC-5).
        assert!(within_calling_hours(
            at("2026-11-02T01:59:00Z"),
            ny,
            &config
        ));
        assert!(!within_calling_hours(
            at("2026-11-02T02:00:00Z"),
            ny,
            &config
        ));
        // 07:59 EST is outside, 08:00 inside.
        assert!(!within_calling_hours(
            at("2026-11-01T12:59:00Z"),
            ny,
            &config
        ));
        assert!(within_calling_hours(
            at("2026-11-01T13:00:00Z"),
            ny,
            &config
        ));
        // Sunday 8 March 2026: clocks went forward at 02:00, now EDT.
        assert!(within_calling_hours(
            at("2026-03-09T00:59:00Z"),
            ny,
            &config
        ));
        assert!(!within_calling_hours(
            at("2026-03-09T01:00:00Z"),
            ny,
            &config
        ));
        // The end of calling hours on each of those days, as an instant.
        let end = |day: &str| local_instant(day.parse().expect("date"), config.calling_hours.1, ny);
        assert_eq!(end("2026-10-31"), at("2026-11-01T01:00:00Z"));
        assert_eq!(end("2026-11-01"), at("2026-11-02T02:00:00Z"));
        // 02:30 does not exist on 8 March: the first instant after the gap is used.
        let gap = local_instant(
            "2026-03-08".parse().expect("date"),
            NaiveTime::from_hms_opt(2, 30, 0).expect("time"),
            ny,
        );
        assert_eq!(gap, at("2026-03-08T07:00:00Z"));
    }

    #[test]
    fn a_promise_whose_date_is_today_still_holds() {
        let day: NaiveDate = "2026-09-30".parse().expect("date");
        assert!(promise_holds(day, day));
        assert!(promise_holds(day.succ_opt().expect("day"), day));
        assert!(!promise_holds(day.pred_opt().expect("day"), day));
        let pending = AccountState {
            promise_pending: true,
            ..delinquent(40)
        };
        assert_eq!(
            allowed(&pending, &RuleConfig::default()),
            vec![Strategy::None]
        );
        assert_eq!(
            blocked_by(Strategy::Call, &pending, &RuleConfig::default()),
            Some(Rule::PromisePending)
        );
    }

    #[test]
    fn opt_outs_remove_only_their_channel() {
        let state = AccountState {
            do_not_sms: true,
            ..delinquent(10)
        };
        let allowed = allowed(&state, &RuleConfig::default());
        assert!(!allowed.contains(&Strategy::SmsReminder));
        assert!(allowed.contains(&Strategy::EmailReminder) && allowed.contains(&Strategy::Call));
    }

    #[test]
    fn a_promise_is_kept_by_a_payment_up_to_its_date_and_broken_once_the_date_passes_without_one() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 9, d).expect("a date");
        let due = day(20);
        assert_eq!(promise_status(due, None, day(19)), PromiseStatus::Pending);
        assert_eq!(
            promise_status(due, None, due),
            PromiseStatus::Pending,
            "due today"
        );
        assert_eq!(promise_status(due, None, day(21)), PromiseStatus::Broken);
        assert_eq!(
            promise_status(due, Some(due), day(21)),
            PromiseStatus::Kept,
            "paid on the day"
        );
        assert_eq!(
            promise_status(due, Some(day(15)), day(16)),
            PromiseStatus::Kept,
            "paid early"
        );
        assert_eq!(
            promise_status(due, Some(day(21)), day(21)),
            PromiseStatus::Broken,
            "paid late"
        );
    }
}
