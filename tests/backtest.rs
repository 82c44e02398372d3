//! `prioritize backtest` as a user runs it: a small living book, every
//! policy, the JSON it writes, and the data folder it keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::Command;
use polars::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

fn prioritize() -> Command {
    Command::cargo_bin("prioritize").expect("binary built")
}

/// 300 accounts for 22 days (small trees, so that the debug build keeps up).
fn backtest(json: &Path, out: Option<&Path>, policies: &[&str]) {
    let mut command = prioritize();
    command.args([
        "backtest",
        "--accounts",
        "300",
        "--days",
        "22",
        "--seed",
        "7",
        "--horizon-days",
        "7",
        "--retrain-every",
        "7",
        "--search",
        "0",
        "--trees",
        "40",
        "--cold-explore",
        "0.3",
        "--json",
    ]);
    command.arg(json);
    for policy in policies {
        command.args(["--policy", policy]);
    }
    if let Some(out) = out {
        command.arg("--out").arg(out);
    }
    command.assert().success();
}

fn money(value: &Value) -> Decimal {
    value
        .as_str()
        .expect("money is a decimal string")
        .parse()
        .expect("a decimal")
}

/// The report without what differs from run to run (timings, model versions
/// stamped with the training time).
fn stable(mut report: Value) -> Value {
    for policy in report["policies"].as_array_mut().expect("policies") {
        policy["seconds"] = Value::Null;
    }
    for retrain in report["retrainings"].as_array_mut().expect("retrainings") {
        retrain["seconds"] = Value::Null;
        retrain["model"] = Value::Null;
    }
    for promotion in report["promotions"].as_array_mut().expect("promotions") {
        promotion["from"] = Value::Null;
        promotion["to"] = Value::Null;
    }
    report
}

#[test]
fn a_backtest_runs_every_policy_on_one_world_adds_up_and_breaks_no_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let out = dir.path().join("kept");
    backtest(&first, Some(&out), &[]);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&first).expect("json")).expect("valid json");

    assert_eq!(report["days"], 22);
    assert_eq!(report["accounts"], 300);
    assert_eq!(report["currency"], "USD");
    assert_eq!(report["violations"], 0, "{report:#}");
    let policies = report["policies"].as_array().expect("policies");
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["loop", "rules", "oracle"]);
    for policy in policies {
        let weeks = policy["by_week"].as_array().expect("weeks");
        assert_eq!(weeks.len(), 4, "22 days are 4 weeks, the last of one day");
        let mut net = Decimal::ZERO;
        for week in weeks {
            let (n, c, k) = (
                money(&week["net_collected"]),
                money(&week["collected"]),
                money(&week["cost"]),
            );
            assert_eq!(n, c - k, "net is collected less cost");
            net += n;
        }
        assert_eq!(net, money(&policy["net_collected"]));
        assert_eq!(net, money(&policy["net_last_four_weeks"]), "4 weeks in all");
        assert!(money(&policy["collected"]) > Decimal::ZERO);
    }
    let net = |name: &str| {
        money(
            &policies
                .iter()
                .find(|p| p["policy"] == name)
                .expect("policy")["net_collected"],
        )
    };
    assert!(
        net("oracle") > net("rules"),
        "knowing each customer's response beats the stages: {} against {}",
        net("oracle"),
        net("rules")
    );
    // Retrained on day 21, the first with 7 matured days before the held-out week.
    let retrainings = report["retrainings"].as_array().expect("retrainings");
    assert_eq!(report["retrains"], retrainings.len());
    let days: Vec<&str> = retrainings
        .iter()
        .map(|r| r["day"].as_str().expect("day"))
        .collect();
    assert_eq!(days, ["2026-01-26"]);
    assert!(retrainings[0]["training_rows"].as_u64().expect("rows") > 1000);
    let promoted: Vec<&str> = retrainings
        .iter()
        .filter(|r| r["promoted"] == true)
        .map(|r| r["day"].as_str().expect("day"))
        .collect();
    let promotions: Vec<&str> = report["promotions"]
        .as_array()
        .expect("promotions")
        .iter()
        .map(|p| p["day"].as_str().expect("day"))
        .collect();
    assert_eq!(promoted, promotions, "every promotion is logged");
    for r in retrainings {
        let (gain, se) = (money(&r["dr_gain"]), money(&r["standard_error"]));
        assert_eq!(
            r["promoted"] == true,
            gain > se,
            "promoted only on DR gain > SE: {r}"
        );
    }

    // The same world and seed give the loop the same figures, run alone
    // (each policy has a world of its own).
    backtest(&second, None, &["loop"]);
    let again = stable(
        serde_json::from_str(&std::fs::read_to_string(&second).expect("json")).expect("json"),
    );
    let report = stable(report);
    assert_eq!(report["policies"][0], again["policies"][0]);
    assert_eq!(report["retrainings"], again["retrainings"]);
    assert_eq!(report["promotions"], again["promotions"]);

    // The loop's store holds every morning's plan as `serve` stored it:
    // `prioritize outcomes` exports, from what the store says was served,
    // the decisions the backtest logged (same accounts, days, strategies and
    // propensities).
    let data = out.join("data");
    let exported = dir.path().join("exported");
    let db = format!("sqlite://{}", out.join("prioritize.db").display());
    prioritize()
        .args(["outcomes", "--db", &db, "--horizon-days", "7", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&exported)
        .assert()
        .success();
    let decided = |frame: &DataFrame| -> BTreeMap<(String, i32), (String, i64)> {
        let ids = frame.column("account_id").unwrap().str().unwrap();
        let days = frame
            .column("as_of")
            .unwrap()
            .cast(&DataType::Date)
            .unwrap();
        let days = days.date().unwrap().physical().clone();
        let strategy = frame.column("strategy").unwrap().str().unwrap();
        let propensity = frame.column("propensity").unwrap().f64().unwrap();
        (0..frame.height())
            .map(|k| {
                (
                    (ids.get(k).unwrap().to_string(), days.get(k).unwrap()),
                    (
                        strategy.get(k).unwrap().to_string(),
                        (propensity.get(k).unwrap() * 1e9).round() as i64,
                    ),
                )
            })
            .collect()
    };
    let from_store = decided(
        &CsvReadOptions::default()
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(exported.join("outcomes.csv")))
            .unwrap()
            .finish()
            .unwrap()
            .lazy()
            .with_column(col("as_of").cast(DataType::Date))
            .collect()
            .unwrap(),
    );
    let logged = decided(
        &ParquetReader::new(std::fs::File::open(data.join("outcomes.parquet")).unwrap())
            .finish()
            .unwrap(),
    );
    let store_days: BTreeSet<i32> = from_store.keys().map(|(_, d)| *d).collect();
    assert!(
        store_days.len() >= 14,
        "decisions of the first two weeks matured: {store_days:?}"
    );
    let logged_on_those: BTreeMap<_, _> = logged
        .into_iter()
        .filter(|((_, d), _)| store_days.contains(d))
        .collect();
    assert_eq!(from_store.len(), logged_on_those.len());
    assert!(
        from_store == logged_on_those,
        "the store serves what the loop decided"
    );

    // The kept data folder, with the loop's matured decisions as outcomes,
    // is a valid data folder a data scientist can train on.
    prioritize()
        .args(["validate", "--data"])
        .arg(&data)
        .assert()
        .success();
    prioritize()
        .args([
            "train", "--search", "0", "--trees", "30", "--folds", "2", "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("model"))
        .assert()
        .success();

    // The morning of the last day matured for the store too (the 22nd day,
    // 2026-01-26, less the 7-day horizon), with the world's truth:
    // evaluate-policy sets its estimates beside what each policy is truly
    // worth over doing nothing.
    let day = out.join("day");
    let judged = dir.path().join("judged.json");
    prioritize()
        .args(["evaluate-policy", "--as-of", "2026-01-19", "--data"])
        .arg(&day)
        .arg("--model")
        .arg(dir.path().join("model"))
        .arg("--truth")
        .arg(day.join("truth.parquet"))
        .arg("--json")
        .arg(&judged)
        .assert()
        .success();
    let judged: Value =
        serde_json::from_str(&std::fs::read_to_string(&judged).expect("json")).expect("json");
    assert!(judged["logged_decisions"].as_u64().expect("rows") >= 250);
    let true_mean = |name: &str| {
        money(
            &judged["policies"]
                .as_array()
                .expect("policies")
                .iter()
                .find(|p| p["policy"] == name)
                .expect("policy")["true_mean"],
        )
    };
    assert_eq!(true_mean("none for everyone"), Decimal::ZERO);
    // The world run on from that morning with the logged decisions (a clone
    // with the same luck) pays exactly what the logged outcomes say.
    let counterfactual: Value = serde_json::from_str(
        &std::fs::read_to_string(day.join("counterfactual.json")).expect("counterfactual"),
    )
    .expect("json");
    let policies = counterfactual["policies"].as_array().expect("policies");
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["logged", "champion", "staged", "none"]);
    let replayed = money(&policies[0]["mean_net"]);
    let observed = money(&judged["logged_observed_mean"]);
    assert!(
        (replayed - observed).abs() <= Decimal::new(1, 2),
        "the counterfactual of the logged decisions is what happened: {replayed} against {observed}"
    );
    assert!(true_mean("oracle (true values)") > Decimal::ZERO);
    assert!(true_mean("oracle (true values)") >= true_mean("plan (this model)"));
}
