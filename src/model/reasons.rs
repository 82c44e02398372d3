//! Reason codes: the inputs that pushed an account's probability of paying up
//! or down the most, in words a collector understands.

use crate::features::catalog::{self, Direction};

/// How many reasons each scored account carries.
pub const PER_ACCOUNT: usize = 3;

/// One reason: the feature, its value for the account, and its pull on the log-odds.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub feature: String,
    pub value: f64,
    pub effect: f64,
}

impl Reason {
    /// "3 cycles with nothing paid in the last 6 (lowers)".
    pub fn text(&self) -> String {
        let direction = if self.effect >= 0.0 {
            "raises"
        } else {
            "lowers"
        };
        format!("{} ({direction})", describe(&self.feature, self.value))
    }
}

/// Joins reasons for one CSV cell or JSON string.
pub fn joined(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(Reason::text)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The top reasons of one row: `contributions` are the row's pulls on the
/// log-odds, one per input in `names`, and `value_of(j)` the row's value of
/// input `j`; indicator inputs (`product=…`) are merged into their feature,
/// and strategy indicators are left out. A feature whose direction is known
/// (see [`catalog::DIRECTIONS`]) is a reason only in that direction: "3
/// missed payments" may lower P(pay), never raise it, whatever the pull of a
/// below-typical count. Ties keep the inputs' order.
pub fn top(
    names: &[String],
    value_of: impl Fn(usize) -> f64,
    contributions: &[f64],
) -> Vec<Reason> {
    /// A candidate by input index: only the kept ones become `Reason`s.
    struct Pull {
        input: usize,
        value: f64,
        effect: f64,
        product: bool,
    }
    let mut merged: Vec<Pull> = Vec::with_capacity(names.len());
    let mut product_at: Option<usize> = None;
    for (j, (name, &effect)) in names.iter().zip(contributions).enumerate() {
        if name.starts_with("strategy=") {
            continue;
        }
        if name.starts_with("product=") {
            let value = value_of(j);
            // Only the account's own product is described.
            match product_at {
                Some(at) => {
                    let existing = &mut merged[at];
                    existing.effect += effect;
                    if value > 0.5 {
                        existing.input = j;
                        existing.value = 1.0;
                    }
                }
                None => {
                    product_at = Some(merged.len());
                    merged.push(Pull {
                        input: j,
                        value,
                        effect,
                        product: true,
                    });
                }
            }
            continue;
        }
        merged.push(Pull {
            input: j,
            value: f64::NAN,
            effect,
            product: false,
        });
    }
    merged.retain(|r| {
        r.effect.abs() > 1e-9 && !(r.product && r.value < 0.5) && agrees(&names[r.input], r.effect)
    });
    merged.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
    merged.truncate(PER_ACCOUNT);
    merged
        .into_iter()
        .map(|pull| Reason {
            feature: names[pull.input].clone(),
            value: if pull.product {
                pull.value
            } else {
                value_of(pull.input)
            },
            effect: pull.effect,
        })
        .collect()
}

/// Whether a pull of `effect` on the log-odds goes the way feature `name` may move P(pay).
pub fn agrees(name: &str, effect: f64) -> bool {
    match catalog::direction(name) {
        Direction::Free => true,
        Direction::Raises => effect > 0.0,
        Direction::Lowers => effect < 0.0,
    }
}

fn count(value: f64) -> i64 {
    value.round() as i64
}

fn percent(share: f64) -> i64 {
    (share * 100.0).round() as i64
}

/// A feature's value in a collector's words. Every catalogue feature has a phrase.
pub fn describe(feature: &str, value: f64) -> String {
    let n = count(value);
    let plural = |word: &str| {
        if n == 1 {
            word.to_string()
        } else {
            format!("{word}s")
        }
    };
    match feature {
        "balance" => format!("balance of {value:.0}"),
        "past_due_share" => format!("{}% of the balance past due", percent(value)),
        "utilisation" => format!("{}% of the credit limit used", percent(value)),
        "days_past_due" => format!("{n} days past due"),
        "dpd_bucket" => match n {
            0 => "current on payments".into(),
            1 => "1–30 days past due".into(),
            2 => "31–60 days past due".into(),
            3 => "61–90 days past due".into(),
            4 => "91–180 days past due".into(),
            _ => "over 180 days past due".into(),
        },
        "max_dpd_3" => format!("up to {n} days past due in the last 3 cycles"),
        "max_dpd_6" => format!("up to {n} days past due in the last 6 cycles"),
        "max_dpd_12" => format!("up to {n} days past due in the last 12 cycles"),
        "paid_share_1" => format!(
            "paid {}% of what was due in the latest cycle",
            percent(value)
        ),
        "last_payment" if value <= 0.0 => "nothing paid in the latest cycle".into(),
        "last_payment" => format!("paid {value:.0} in the latest cycle"),
        "credit_limit" => format!("credit limit of {value:.0}"),
        "paid_share_3" => format!(
            "paid {}% of what was due in the last 3 cycles",
            percent(value)
        ),
        "paid_share_6" => format!(
            "paid {}% of what was due in the last 6 cycles",
            percent(value)
        ),
        "paid_share_12" => format!(
            "paid {}% of what was due in the last 12 cycles",
            percent(value)
        ),
        "cycles_no_payment_6" => format!("{n} missed {} in the last 6 cycles", plural("payment")),
        "cycles_no_payment_12" => format!("{n} missed {} in the last 12 cycles", plural("payment")),
        "consecutive_missed" => format!("{n} {} in a row paying less than due", plural("cycle")),
        "catch_up_payments_6" => format!("{n} catch-up {} in the last 6 cycles", plural("payment")),
        "catch_up_payments_12" => {
            format!("{n} catch-up {} in the last 12 cycles", plural("payment"))
        }
        "payment_trend" if value > 0.0 => format!(
            "paying {} points more of what is due than 3 cycles ago",
            percent(value)
        ),
        "payment_trend" => format!(
            "paying {} points less of what is due than 3 cycles ago",
            percent(-value)
        ),
        "balance_change_3" if value >= 0.0 => {
            format!("balance up {}% over 3 cycles", percent(value))
        }
        "balance_change_3" => format!("balance down {}% over 3 cycles", percent(-value)),
        "cycles_on_record" => format!("{n} {} of history", plural("cycle")),
        "months_on_book" => format!("{n} {} on book", plural("month")),
        "calls_7d" => format!("{n} {} in the last 7 days", plural("call")),
        "calls_30d" => format!("{n} {} in the last 30 days", plural("call")),
        "contacts_30d" => format!("{n} contact {} in the last 30 days", plural("attempt")),
        "call_attempts_180d" => format!("{n} call {} in the last 180 days", plural("attempt")),
        "right_party_rate_180d" => format!(
            "reached on {}% of calls in the last 180 days",
            percent(value)
        ),
        "refusals_180d" => format!(
            "refused to pay {n} {} in the last 180 days",
            if n == 1 { "time" } else { "times" }
        ),
        "disputes_180d" => format!("{n} {} in the last 180 days", plural("dispute")),
        "promises_made_180d" => format!("{n} {} to pay in the last 180 days", plural("promise")),
        "promises_broken_180d" => format!("{n} broken {} in the last 180 days", plural("promise")),
        "open_promise" if n > 0 => "a promise to pay is open".into(),
        "open_promise" => "no open promise to pay".into(),
        "days_since_last_contact" if n >= 365 => "no contact in the last year".into(),
        "days_since_last_contact" => format!("last contacted {n} days ago"),
        "days_since_last_conversation" if n >= 365 => "no conversation in the last year".into(),
        "days_since_last_conversation" => format!("last spoke {n} days ago"),
        other => match other.strip_prefix("product=") {
            Some(product) => format!("product: {}", product.replace('_', " ")),
            None => format!("{other} = {value}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_feature_has_words() {
        for doc in catalog::NUMERIC {
            let text = describe(doc.name, 2.0);
            assert!(!text.contains(" = "), "{} has no phrase: {text}", doc.name);
        }
        assert_eq!(
            describe("cycles_no_payment_6", 3.0),
            "3 missed payments in the last 6 cycles"
        );
        assert_eq!(
            describe("cycles_no_payment_6", 1.0),
            "1 missed payment in the last 6 cycles"
        );
    }

    #[test]
    fn top_reasons_are_the_largest_pulls_and_name_only_the_own_product() {
        let names: Vec<String> = [
            "days_past_due",
            "calls_7d",
            "product=credit_card",
            "product=personal_loan",
            "strategy=call",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let values = [95.0, 2.0, 0.0, 1.0, 1.0];
        let effects = [-1.2, 0.1, 0.3, 0.4, 5.0];
        let reasons = top(&names, |j| values[j], &effects);
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons[0].feature, "days_past_due");
        assert_eq!(reasons[0].text(), "95 days past due (lowers)");
        assert_eq!(reasons[1].feature, "product=personal_loan");
        assert!((reasons[1].effect - 0.7).abs() < 1e-12);
        assert_eq!(reasons[2].feature, "calls_7d");
    }

    /// "3 missed payments (raises)" and "100% past due (raises)" are what a
    /// collector cannot trust: the next reason takes their place.
    #[test]
    fn a_reason_never_goes_against_its_features_direction() {
        let names: Vec<String> = [
            "cycles_no_payment_12",
            "past_due_share",
            "paid_share_3",
            "balance",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let values = [3.0, 1.0, 0.4, 900.0];
        let effects = [0.9, 0.5, -0.3, 0.1];
        let reasons = top(&names, |j| values[j], &effects);
        let shown: Vec<String> = reasons.iter().map(Reason::text).collect();
        assert_eq!(shown, ["balance of 900 (raises)"]);
        let effects = [-0.9, -0.5, 0.3, 0.1];
        let reasons = top(&names, |j| values[j], &effects);
        assert_eq!(reasons.len(), 3);
        assert!(reasons.iter().all(|r| agrees(&r.feature, r.effect)));
        assert_eq!(
            reasons[0].text(),
            "3 missed payments in the last 12 cycles (lowers)"
        );
    }
}
