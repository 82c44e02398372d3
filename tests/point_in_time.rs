//! The feature pipeline is point-in-time correct: a feature row for day D
//! depends only on data dated on or before D.

use chrono::NaiveDate;
use polars::prelude::*;
use prioritize::contract::parse::{date_to_days, money_column};
use prioritize::contract::{DataSet, Format};
use prioritize::features::{build, contacts::with_local_dates, spine_for_date};
use prioritize::output::write_data_folder;
use prioritize::simulate::{simulate, SimulationParams};

fn day(text: &str) -> NaiveDate {
    text.parse().expect("valid date")
}

/// A seeded simulated book, written as Parquet and loaded through the contract.
fn simulated_book(dir: &std::path::Path) -> DataSet {
    let params = SimulationParams {
        accounts: 1500,
        seed: 7,
        as_of: day("2026-09-30"),
        cycles: 12,
        currency: "USD".into(),
        world: Default::default(),
    };
    let p = simulate(&params, |_| {}).expect("simulates");
    let (mut a, mut h, mut x, mut o) = (p.accounts, p.payment_history, p.actions, p.outcomes);
    let folder = dir.join("book");
    write_data_folder(&folder, [&mut a, &mut h, &mut x, &mut o], Format::Parquet).expect("writes");
    DataSet::load(&folder).expect("loads")
}

/// The same book as it stood at the end of `cut`: no later cycles or
/// contacts, and a snapshot whose changing fields say something else.
fn as_it_stood(data: &DataSet, cut: NaiveDate) -> DataSet {
    let cut_days = lit(date_to_days(cut));
    let payment_history = data
        .payment_history
        .clone()
        .lazy()
        .filter(
            col("cycle_end")
                .cast(DataType::Int32)
                .lt_eq(cut_days.clone()),
        )
        .collect()
        .expect("filters");
    let actions = with_local_dates(&data.actions, &data.accounts)
        .expect("local dates")
        .lazy()
        .filter(col("local_date").cast(DataType::Int32).lt_eq(cut_days))
        .collect()
        .expect("filters")
        .drop("local_date")
        .expect("drops");
    let mut accounts = data.accounts.clone();
    let rows = accounts.height();
    accounts
        .with_column(money_column("balance", vec![Some(0); rows]))
        .expect("replaces");
    accounts
        .with_column(Series::new("days_past_due".into(), vec![999i32; rows]))
        .expect("replaces");
    DataSet {
        accounts,
        payment_history,
        actions,
        outcomes: data.outcomes.clone(),
    }
}

#[test]
fn later_rows_never_change_a_feature_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let full = simulated_book(dir.path());
    let cut = day("2026-06-30");
    let past = as_it_stood(&full, cut);
    // The cut must really remove data, or the comparison proves nothing.
    assert!(past.payment_history.height() < full.payment_history.height());
    assert!(past.actions.height() < full.actions.height());

    let spine = spine_for_date(&full.accounts, cut).expect("spine");
    let from_full = build(&full, &spine).expect("features from all data");
    let from_past = build(&past, &spine).expect("features from data up to the cut");
    assert_eq!(from_full.height(), 1500);
    assert!(
        from_full.equals_missing(&from_past),
        "features at {cut} changed when later data was added"
    );

    // And the later data does matter for a later day.
    let later = build(
        &full,
        &spine_for_date(&full.accounts, day("2026-09-30")).expect("spine"),
    )
    .expect("features");
    assert!(!later
        .drop("as_of")
        .expect("drop")
        .equals_missing(&from_full.drop("as_of").expect("drop")));
}

#[test]
fn each_outcome_row_sees_only_its_own_past() {
    let dir = tempfile::tempdir().expect("temp dir");
    let full = simulated_book(dir.path());
    let ids = full
        .accounts
        .column("account_id")
        .expect("ids")
        .head(Some(300));
    let (early, late) = (day("2026-03-31"), day("2026-09-30"));
    let mut spine = DataFrame::new(vec![
        ids.clone(),
        Int32Chunked::full("as_of".into(), date_to_days(early), 300)
            .into_date()
            .into_column(),
    ])
    .expect("spine");
    spine
        .vstack_mut(
            &DataFrame::new(vec![
                ids,
                Int32Chunked::full("as_of".into(), date_to_days(late), 300)
                    .into_date()
                    .into_column(),
            ])
            .expect("spine"),
        )
        .expect("stack");
    let together = build(&full, &spine).expect("features");
    let early_only = build(&as_it_stood(&full, early), &spine.head(Some(300))).expect("features");
    let early_rows = together
        .lazy()
        .filter(
            col("as_of")
                .cast(DataType::Int32)
                .eq(lit(date_to_days(early))),
        )
        .collect()
        .expect("filter");
    assert!(early_rows.equals_missing(&early_only));
}
