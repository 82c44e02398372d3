//! Feature values on a small hand-made account whose history is easy to
//! follow, so each definition is checked against arithmetic done by hand.

use polars::prelude::*;

use super::{build, spine_for_date};
use crate::contract::parse::{money_column, parse_date, parse_instant, parse_money};
use crate::contract::DataSet;

fn dates(name: &str, values: &[&str]) -> Column {
    Int32Chunked::from_iter_values(
        name.into(),
        values.iter().map(|d| parse_date(d).expect("date")),
    )
    .into_date()
    .into_column()
}

fn money(name: &str, values: &[&str]) -> Column {
    money_column(name, values.iter().map(|v| parse_money(v)).collect())
}

fn texts(name: &str, values: &[&str]) -> Column {
    StringChunked::from_iter_values(name.into(), values.iter().copied()).into_column()
}

/// One card, limit 1000, four monthly cycles ending 2026-06-30.
fn one_account() -> DataSet {
    let accounts = DataFrame::new(vec![
        texts("account_id", &["A"]),
        texts("product", &["credit_card"]),
        dates("opened_on", &["2025-12-31"]),
        money("credit_limit", &["1000"]),
        texts("timezone", &["America/New_York"]),
    ])
    .expect("accounts");
    let payment_history = DataFrame::new(vec![
        texts("account_id", &["A"; 5]),
        dates(
            "cycle_end",
            &[
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30",
                "2026-07-31",
            ],
        ),
        money("amount_due", &["100", "100", "200", "300", "50"]),
        money("amount_paid", &["150", "100", "0", "100", "50"]),
        money("balance", &["900", "850", "900", "800", "750"]),
        Int32Chunked::from_slice("days_past_due".into(), &[0, 0, 30, 61, 0]).into_column(),
    ])
    .expect("history");
    let at = |text: &str| parse_instant(text).expect("instant");
    let instants = Int64Chunked::from_slice(
        "at".into(),
        &[
            at("2026-06-24T10:00:00-04:00"),
            at("2026-06-29T10:00:00-04:00"),
            // 2026-07-01 in UTC, but still 2026-06-30 in New York: inside the window.
            at("2026-06-30T22:00:00-04:00"),
            // The next day in New York: after the as-of day, never counted.
            at("2026-07-01T09:00:00-04:00"),
        ],
    )
    .into_datetime(TimeUnit::Microseconds, Some(polars::prelude::TimeZone::UTC))
    .into_column();
    let actions = DataFrame::new(vec![
        texts("account_id", &["A"; 4]),
        instants,
        texts("channel", &["call", "call", "call", "call"]),
        texts(
            "outcome",
            &[
                "promise_to_pay",
                "no_answer",
                "right_party_contact",
                "refused",
            ],
        ),
        money("promised_amount", &["50", "", "", ""]),
        Int32Chunked::from_iter_options(
            "promised_on".into(),
            [parse_date("2026-06-26"), None, None, None].into_iter(),
        )
        .into_date()
        .into_column(),
    ])
    .expect("actions");
    DataSet {
        accounts,
        payment_history,
        actions,
        outcomes: DataFrame::empty(),
    }
}

fn feature(frame: &DataFrame, name: &str) -> f64 {
    frame
        .column(name)
        .expect(name)
        .f64()
        .expect("f64")
        .get(0)
        .expect("value")
}

#[test]
fn features_match_hand_arithmetic() {
    let data = one_account();
    let spine = spine_for_date(&data.accounts, "2026-06-30".parse().expect("date")).expect("spine");
    let row = build(&data, &spine).expect("features");
    let expect = [
        ("balance", 800.0),
        ("days_past_due", 61.0),
        ("dpd_bucket", 3.0),
        ("utilisation", 0.8),
        // latest cycle: 300 due, 100 paid → 200 unpaid of an 800 balance
        ("past_due_share", 0.25),
        ("max_dpd_3", 61.0),
        // last 3 cycles: 200 paid of 600 due
        ("paid_share_3", 200.0 / 600.0),
        ("paid_share_6", 350.0 / 700.0),
        ("cycles_no_payment_6", 1.0),
        ("consecutive_missed", 2.0),
        ("catch_up_payments_6", 1.0),
        // last 3: 1/3; the one before (March): 150/100 = 1.5
        ("payment_trend", 200.0 / 600.0 - 1.5),
        // 800 against 900 three cycles back
        ("balance_change_3", -100.0 / 900.0),
        ("cycles_on_record", 4.0),
        ("months_on_book", 5.0),
        ("calls_7d", 3.0),
        ("call_attempts_180d", 3.0),
        ("right_party_rate_180d", 2.0 / 3.0),
        ("promises_made_180d", 1.0),
        // promised for 06-26; the cycle ending 06-30 paid 100 → kept
        ("promises_broken_180d", 0.0),
        ("open_promise", 0.0),
        ("days_since_last_contact", 0.0),
        ("days_since_last_conversation", 0.0),
        ("refusals_180d", 0.0),
    ];
    for (name, value) in expect {
        let got = feature(&row, name);
        assert!(
            (got - value).abs() < 1e-9,
            "{name}: expected {value}, got {got}"
        );
    }
}

#[test]
fn a_promise_with_no_payment_after_it_is_broken() {
    let mut data = one_account();
    // No payment in the cycle that ends after the promise date.
    data.payment_history = data
        .payment_history
        .lazy()
        .with_column(
            when(
                col("cycle_end")
                    .cast(DataType::Int32)
                    .gt_eq(lit(parse_date("2026-06-01").expect("date"))),
            )
            .then(lit(0).cast(DataType::Decimal(18, 4)))
            .otherwise(col("amount_paid"))
            .alias("amount_paid"),
        )
        .collect()
        .expect("edit");
    let spine = spine_for_date(&data.accounts, "2026-06-30".parse().expect("date")).expect("spine");
    let row = build(&data, &spine).expect("features");
    assert_eq!(feature(&row, "promises_broken_180d"), 1.0);
}

#[test]
fn the_one_pass_kernel_matches_the_polars_definition() {
    let as_of = "2026-06-30".parse().expect("date");
    let book = simulated_book(5);
    // Shuffle the history so that the kernel's own sort is exercised too.
    let history = book
        .payment_history
        .sample_n_literal(book.payment_history.height(), false, true, Some(3))
        .expect("shuffle");
    let spine = spine_for_date(&book.accounts, as_of).expect("spine");
    let attach = super::Spine::of(&spine).expect("spine kind");
    let reference = super::payments::payment_features(super::payments::ranked(
        super::payments::cycles_as_of(history.clone().lazy(), &attach),
    ))
    .collect()
    .expect("polars features");
    let kernel = super::payment_kernel::payment_features(
        &super::payment_kernel::Cycles::new(
            &super::payment_kernel::sorted_history(&history).expect("sorted"),
        )
        .expect("index"),
        &spine,
    )
    .expect("kernel features");
    let joined = joined_with_reference(kernel, reference);
    assert!(
        joined.height() > 2500,
        "most accounts have history by the cut: {}",
        joined.height()
    );
    assert_same_values(&joined, &super::payment_kernel::NAMES);
}

#[test]
fn the_one_pass_contact_kernel_matches_the_polars_definition() {
    let book = simulated_book(9);
    let spine = spine_for_date(&book.accounts, "2026-08-15".parse().expect("date")).expect("spine");
    let actions =
        super::contacts::with_local_dates(&book.actions, &book.accounts).expect("local dates");
    // Shuffled, so that the kernel's grouping of an account's actions is exercised.
    let actions = actions
        .sample_n_literal(actions.height(), false, true, Some(4))
        .expect("shuffle");
    let attach = super::Spine::of(&spine).expect("spine kind");
    let cycles = super::payments::cycles_as_of(book.payment_history.clone().lazy(), &attach);
    let reference = super::contacts::contact_features(actions.clone().lazy(), &attach, cycles)
        .collect()
        .expect("polars");
    let history = super::payment_kernel::sorted_history(&book.payment_history).expect("sorted");
    let indexed = super::payment_kernel::Cycles::new(&history).expect("index");
    let kernel =
        super::contact_kernel::contact_features(&actions, &indexed, &spine).expect("kernel");
    let with_contacts = kernel.column("calls_30d").expect("column").len()
        - kernel.column("calls_30d").expect("column").null_count();
    assert_eq!(
        with_contacts,
        reference.height(),
        "the same accounts have contact history"
    );
    let joined = joined_with_reference(kernel, reference);
    assert!(
        joined.height() > 1000,
        "enough accounts with contacts: {}",
        joined.height()
    );
    let broken: f64 = joined
        .column("promises_broken_180d")
        .expect("column")
        .f64()
        .expect("f64")
        .sum()
        .unwrap_or(0.0);
    assert!(
        broken > 0.0,
        "some promises are broken, so that rule is exercised"
    );
    assert_same_values(&joined, &super::contact_kernel::NAMES);
}

/// Kernel rows joined with the reference's, whose columns get `_ref`.
fn joined_with_reference(kernel: DataFrame, reference: DataFrame) -> DataFrame {
    let key = [col("account_id"), col("as_of")];
    let suffixed = JoinArgs::new(JoinType::Inner).with_suffix(Some("_ref".into()));
    kernel
        .lazy()
        .join(reference.lazy(), key.clone(), key, suffixed)
        .collect()
        .expect("join")
}

/// Every named column equals its `_ref` twin: both missing, or within 1e-9.
fn assert_same_values(joined: &DataFrame, names: &[&str]) {
    for name in names {
        let ours = joined.column(name).expect(name).f64().expect("f64").clone();
        let theirs = joined
            .column(&format!("{name}_ref"))
            .expect(name)
            .cast(&DataType::Float64)
            .expect("f64");
        for (a, b) in ours.iter().zip(theirs.f64().expect("f64").iter()) {
            match (a, b) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    "{name}: kernel {a}, polars {b}"
                ),
                (None, None) => {}
                (a, b) => panic!("{name}: kernel {a:?}, polars {b:?}"),
            }
        }
    }
}

/// A seeded simulated book of 3,000 accounts with 12 cycles ending 2026-09-30.
fn simulated_book(seed: u64) -> crate::simulate::Portfolio {
    use crate::simulate::{simulate, SimulationParams};
    let as_of = "2026-09-30".parse().expect("date");
    let params = SimulationParams {
        accounts: 3000,
        seed,
        as_of,
        cycles: 12,
        currency: "USD".into(),
        world: Default::default(),
    };
    simulate(&params, |_| {}).expect("simulates")
}
