//! Every model feature, documented in one place: its name, what it means to a
//! collector, and the window it looks at. The pipeline's output columns and the
//! README's feature table both come from this list.

/// One documented feature.
#[derive(Debug, Clone, Copy)]
pub struct FeatureDoc {
    pub name: &'static str,
    pub meaning: &'static str,
    pub window: &'static str,
}

const fn f(name: &'static str, meaning: &'static str, window: &'static str) -> FeatureDoc {
    FeatureDoc {
        name,
        meaning,
        window,
    }
}

/// Numeric features, in output order. All are `f64`; none is money that is stored or shown.
pub const NUMERIC: &[FeatureDoc] = &[
    f("balance", "statement balance of the latest cycle", "latest cycle"),
    f("past_due_share", "share of the latest balance that was due and left unpaid, 0–1", "latest cycle"),
    f("utilisation", "latest balance over the credit limit (0 without a limit)", "latest cycle"),
    f("days_past_due", "days past due at the latest cycle end", "latest cycle"),
    f("dpd_bucket", "0 current, 1: 1–30, 2: 31–60, 3: 61–90, 4: 91–180, 5: over 180 days past due", "latest cycle"),
    f("max_dpd_3", "highest days past due", "last 3 cycles"),
    f("max_dpd_6", "highest days past due", "last 6 cycles"),
    f("max_dpd_12", "highest days past due", "last 12 cycles"),
    f("paid_share_1", "amount paid over amount due (1 when nothing was due), capped at 3", "latest cycle"),
    f("last_payment", "amount paid in the latest cycle", "latest cycle"),
    f("paid_share_3", "amount paid over amount due (1 when nothing was due), capped at 3", "last 3 cycles"),
    f("paid_share_6", "amount paid over amount due (1 when nothing was due), capped at 3", "last 6 cycles"),
    f("paid_share_12", "amount paid over amount due (1 when nothing was due), capped at 3", "last 12 cycles"),
    f("cycles_no_payment_6", "cycles with an amount due and nothing paid", "last 6 cycles"),
    f("cycles_no_payment_12", "cycles with an amount due and nothing paid", "last 12 cycles"),
    f("consecutive_missed", "cycles in a row, back from the latest, paying less than was due", "all cycles"),
    f("catch_up_payments_6", "cycles paying more than was due (catching up on arrears)", "last 6 cycles"),
    f("catch_up_payments_12", "cycles paying more than was due (catching up on arrears)", "last 12 cycles"),
    f("payment_trend", "paid share of the last 3 cycles minus that of the 3 before (positive: improving)", "last 6 cycles"),
    f("balance_change_3", "relative change of the balance over 3 cycles, clipped to −1…3", "last 4 cycles"),
    f("cycles_on_record", "cycles of history on or before the as-of date", "all cycles"),
    f("credit_limit", "credit limit of the account (0 for loans without one)", "static"),
    f("months_on_book", "whole months from opened_on to the as-of date", "since opening"),
    f("calls_7d", "call attempts", "last 7 days"),
    f("calls_30d", "call attempts", "last 30 days"),
    f("contacts_30d", "contact attempts on any channel", "last 30 days"),
    f("call_attempts_180d", "call attempts", "last 180 days"),
    f("right_party_rate_180d", "conversations with the customer per call attempt (0 without attempts)", "last 180 days"),
    f("refusals_180d", "conversations where the customer refused to pay", "last 180 days"),
    f("disputes_180d", "contacts where the customer disputed the debt", "last 180 days"),
    f("promises_made_180d", "promises to pay", "last 180 days"),
    f("promises_broken_180d", "promises whose date passed with no payment (paid action, or a payment in a cycle ending up to 31 days after the date)", "last 180 days"),
    f("open_promise", "1 while a promise's date has not yet passed", "as-of date"),
    f("days_since_last_contact", "days since any contact attempt (365 if none, capped at 365)", "last 365 days"),
    f("days_since_last_conversation", "days since the last conversation with the customer (365 if none, capped at 365)", "last 365 days"),
];

/// Categorical features: text columns the models encode themselves.
pub const CATEGORICAL: &[FeatureDoc] = &[f(
    "product",
    "product line (credit_card, personal_loan, …)",
    "static",
)];

/// How a higher value of a feature may move the probability of paying, where
/// collections experience knows the direction: the models are held to it
/// (monotone constraints in the trees, signed weights in the scorecard), and
/// a reason is only given in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Either way: the model learns it.
    Free,
    /// A higher value never lowers P(pay).
    Raises,
    /// A higher value never raises P(pay).
    Lowers,
}

/// The features with a known direction; every other feature is [`Direction::Free`].
pub const DIRECTIONS: &[(&str, Direction)] = &[
    ("past_due_share", Direction::Lowers),
    ("days_past_due", Direction::Lowers),
    ("dpd_bucket", Direction::Lowers),
    ("max_dpd_3", Direction::Lowers),
    ("max_dpd_6", Direction::Lowers),
    ("max_dpd_12", Direction::Lowers),
    ("cycles_no_payment_6", Direction::Lowers),
    ("cycles_no_payment_12", Direction::Lowers),
    ("consecutive_missed", Direction::Lowers),
    ("refusals_180d", Direction::Lowers),
    ("promises_broken_180d", Direction::Lowers),
    ("paid_share_1", Direction::Raises),
    ("paid_share_3", Direction::Raises),
    ("paid_share_6", Direction::Raises),
    ("paid_share_12", Direction::Raises),
    ("catch_up_payments_6", Direction::Raises),
    ("catch_up_payments_12", Direction::Raises),
];

/// The known direction of a feature (or model input) by name.
pub fn direction(name: &str) -> Direction {
    DIRECTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Direction::Free, |(_, d)| *d)
}

/// Names of the numeric features, in output order.
pub fn numeric_names() -> Vec<&'static str> {
    NUMERIC.iter().map(|d| d.name).collect()
}

/// The feature list as a Markdown table (used by `features --list` and the README).
pub fn markdown_table() -> String {
    let mut out =
        String::from("| feature | meaning | window | higher value |\n|---|---|---|---|\n");
    for doc in NUMERIC.iter().chain(CATEGORICAL) {
        let effect = match direction(doc.name) {
            Direction::Free => "learnt",
            Direction::Raises => "never lowers P(pay)",
            Direction::Lowers => "never raises P(pay)",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {effect} |\n",
            doc.name, doc.meaning, doc.window
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stated_direction_names_a_catalogue_feature_once() {
        for (k, (name, _)) in DIRECTIONS.iter().enumerate() {
            assert!(
                NUMERIC.iter().any(|d| d.name == *name),
                "{name} is not a feature"
            );
            assert!(
                !DIRECTIONS[..k].iter().any(|(n, _)| n == name),
                "{name} twice"
            );
        }
    }
}
