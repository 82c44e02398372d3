//! Feature pipeline throughput, in rows of payment history per second:
//! Parquet files → checked contract tables → one feature row per account.
//! Inputs are simulated with a fixed seed (12 monthly cycles per account).
//!
//! `cargo bench --bench features` runs 100k and 1M accounts; set
//! `PRIORITIZE_BENCH_ACCOUNTS=100000` to run one size.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prioritize::contract::{DataSet, Format};
use prioritize::features::{build, spine_for_date};
use prioritize::output::write_data_folder;
use prioritize::simulate::{simulate, SimulationParams};

fn sizes() -> Vec<usize> {
    std::env::var("PRIORITIZE_BENCH_ACCOUNTS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000])
}

fn features_from_parquet(c: &mut Criterion) {
    let mut group = c.benchmark_group("features_from_parquet");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));
    for accounts in sizes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_of = "2026-09-30".parse().expect("date");
        let params = SimulationParams {
            accounts,
            seed: 1,
            as_of,
            cycles: 12,
            currency: "USD".into(),
            world: Default::default(),
        };
        let p = simulate(&params, |_| {}).expect("simulates");
        let history_rows = p.payment_history.height() as u64;
        let (mut a, mut h, mut x, mut o) = (p.accounts, p.payment_history, p.actions, p.outcomes);
        let folder = dir.path().join("book");
        write_data_folder(&folder, [&mut a, &mut h, &mut x, &mut o], Format::Parquet)
            .expect("writes");
        group.throughput(Throughput::Elements(history_rows));
        group.bench_with_input(
            BenchmarkId::new("accounts", accounts),
            &folder,
            |b, folder| {
                b.iter(|| {
                    let data = DataSet::load(folder).expect("loads");
                    let spine = spine_for_date(&data.accounts, as_of).expect("spine");
                    build(&data, &spine).expect("features")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, features_from_parquet);
criterion_main!(benches);
