//! Compliance rules of the contract. They run before any optimisation and
//! can only remove strategies; each removal names the rule that made it.

use std::fmt;

use crate::contract::Strategy;

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
}

impl Rule {
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
    /// No call within this many days after a conversation.
    pub conversation_cool_off_days: i32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            // none, sms, email, call, settlement, installment, letter, field visit, legal, agency
            eligible_from_dpd: [0, 0, 0, 0, 120, 0, 0, 60, 90, 150],
            max_calls_in_window: 7,
            call_window_days: 7,
            conversation_cool_off_days: 7,
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
        Some("call") => state.do_not_call,
        Some("sms") => state.do_not_sms,
        Some("email") => state.do_not_email,
        _ => false,
    };
    if opted_out {
        return Some(Rule::ChannelOptOut);
    }
    if channel == Some("call") {
        if state.calls_in_window >= config.max_calls_in_window {
            return Some(Rule::CallAttemptLimit);
        }
        if state.in_conversation_cool_off {
            return Some(Rule::ConversationCoolOff);
        }
    }
    None
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
}
