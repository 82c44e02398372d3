//! The contract's closed vocabularies as types: contact channels and
//! outcomes (the `actions` table), API roles, and the states of a run. Each
//! name is written once, here; `schema`'s lists and the OpenAPI document's
//! enums are these names.

use std::fmt;
use std::str::FromStr;

/// A closed set of names: the enum, its `ALL` and `NAMES` in the contract's
/// order, `as_str`, `Display`, `FromStr` (the error lists the choices) and
/// serde as the name.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in the contract's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every name, in the contract's order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The contract's name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| {
                        format!(
                            "{text:?} is not a {}; expected one of {}",
                            $what,
                            $name::NAMES.join(", ")
                        )
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary!(
    /// A contact channel of the `actions` table.
    Channel, "channel", {
        Sms = "sms",
        Email = "email",
        Call = "call",
        Letter = "letter",
        FieldVisit = "field_visit",
        Legal = "legal",
        Agency = "agency",
    }
);

vocabulary!(
    /// The outcome of a contact in the `actions` table.
    Outcome, "contact outcome", {
        NoAnswer = "no_answer",
        LeftMessage = "left_message",
        RightPartyContact = "right_party_contact",
        PromiseToPay = "promise_to_pay",
        Paid = "paid",
        Refused = "refused",
        Dispute = "dispute",
        WrongParty = "wrong_party",
        Delivered = "delivered",
        Undeliverable = "undeliverable",
    }
);

vocabulary!(
    /// What an API key may do; `admin` holds every other role.
    Role, "role", {
        Collector = "collector",
        Analyst = "analyst",
        Manager = "manager",
        Admin = "admin",
    }
);

vocabulary!(
    /// Where a run that builds and installs a plan stands.
    RunStatus, "run status", {
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
);

impl Role {
    /// Whether a key of this role may act as `needed` (admin may act as any).
    pub fn grants(self, needed: Role) -> bool {
        self == needed || self == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_wrong_one_lists_the_choices() {
        for &channel in Channel::ALL {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{channel}\""));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), channel);
        }
        for &outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
        }
        let wrong = "fax".parse::<Channel>().unwrap_err();
        assert!(wrong.contains("\"fax\" is not a channel") && wrong.contains("sms, email"));
        let wrong = serde_json::from_str::<Role>("\"root\"")
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("collector, analyst, manager, admin"),
            "{wrong}"
        );
        assert_eq!(Channel::NAMES.len(), Channel::ALL.len());
        assert!(Role::Admin.grants(Role::Manager) && !Role::Manager.grants(Role::Collector));
    }
}
