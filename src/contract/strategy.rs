//! The collection strategies of the contract.

use std::fmt;
use std::str::FromStr;

use super::vocab::Channel;

/// A collection strategy, as named in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    None,
    SmsReminder,
    EmailReminder,
    Call,
    SettlementOffer,
    InstallmentPlan,
    DemandLetter,
    FieldVisit,
    Legal,
    Agency,
}

impl Strategy {
    /// Every strategy, in the contract's order.
    pub const ALL: [Strategy; 10] = [
        Strategy::None,
        Strategy::SmsReminder,
        Strategy::EmailReminder,
        Strategy::Call,
        Strategy::SettlementOffer,
        Strategy::InstallmentPlan,
        Strategy::DemandLetter,
        Strategy::FieldVisit,
        Strategy::Legal,
        Strategy::Agency,
    ];

    /// The contract's name of the strategy.
    pub fn as_str(self) -> &'static str {
        super::schema::STRATEGIES[self as usize]
    }

    /// The contact channel a strategy uses, if it contacts the customer.
    pub fn channel(self) -> Option<Channel> {
        match self {
            Strategy::None => None,
            Strategy::SmsReminder => Some(Channel::Sms),
            Strategy::EmailReminder => Some(Channel::Email),
            Strategy::Call | Strategy::SettlementOffer | Strategy::InstallmentPlan => {
                Some(Channel::Call)
            }
            Strategy::DemandLetter => Some(Channel::Letter),
            Strategy::FieldVisit => Some(Channel::FieldVisit),
            Strategy::Legal => Some(Channel::Legal),
            Strategy::Agency => Some(Channel::Agency),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown strategy {text:?}; expected one of {}",
                    super::schema::STRATEGIES.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_contract_order() {
        for (index, strategy) in Strategy::ALL.into_iter().enumerate() {
            assert_eq!(strategy as usize, index);
            assert_eq!(strategy.as_str().parse::<Strategy>(), Ok(strategy));
        }
        assert!("phone".parse::<Strategy>().is_err());
    }
}
