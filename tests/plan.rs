//! What collections teams rely on from `plan` and `evaluate-policy`: a plan
//! that never breaks a compliance rule (checked here by replaying the rules
//! independently of the engine, from the raw CSV files), that respects the
//! day's capacities, ranks each queue, records its exploration, and beats the
//! staged rules teams run today.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

const DAY: &str = "2026-09-30";

fn prioritize() -> Command {
    Command::cargo_bin("prioritize").expect("binary built")
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

/// Simulates a CSV book (and its truth) into `dir/name`.
fn book(dir: &Path, name: &str, accounts: usize, seed: u64) -> (PathBuf, PathBuf) {
    let out = dir.join(name);
    let truth = dir.join(format!("{name}_truth.parquet"));
    prioritize()
        .args(["simulate", "--format", "csv", "--accounts"])
        .arg(accounts.to_string())
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&out)
        .arg("--truth-out")
        .arg(&truth)
        .assert()
        .success();
    (out, truth)
}

fn plan(data: &Path, out: &Path, extra: &[&str]) {
    prioritize()
        .args(["plan", "--as-of", DAY, "--data"])
        .arg(data)
        .arg("--model")
        .arg(default_model())
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
        .success();
}

type Row = HashMap<String, String>;

/// A plan's queues, each checked to count its ranks from 1 and to run in
/// priority order (highest first).
fn assert_ranked(rows: &[Row]) -> HashMap<&str, Vec<&Row>> {
    let mut queues: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows {
        queues
            .entry(row["strategy"].as_str())
            .or_default()
            .push(row);
    }
    for (strategy, queue) in &mut queues {
        queue.sort_by_key(|r| r["queue_rank"].parse::<u32>().unwrap());
        let ranks: Vec<u32> = queue
            .iter()
            .map(|r| r["queue_rank"].parse().unwrap())
            .collect();
        assert_eq!(
            ranks,
            (1..=queue.len() as u32).collect::<Vec<_>>(),
            "{strategy}"
        );
        let priorities: Vec<f64> = queue
            .iter()
            .map(|r| r["priority"].parse().unwrap())
            .collect();
        assert!(
            priorities.windows(2).all(|w| w[0] >= w[1]),
            "{strategy}: queue not in priority order"
        );
    }
    queues
}

fn read_csv(path: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(path).expect("readable CSV");
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Appends edge cases to the actions of three accounts: seven calls in the
/// last seven days, a conversation whose cool-off runs past the day's calling
/// hours by a minute, and a promise to pay due on the planning day.
fn add_edge_cases(data: &Path) -> [String; 3] {
    let accounts = read_csv(&data.join("accounts.csv"));
    // Accounts contacted lately could already be blocked by a rule of their own.
    let recent: HashSet<String> = read_csv(&data.join("actions.csv"))
        .into_iter()
        .filter(|x| x["at"].as_str() >= "2026-09-01")
        .map(|x| x["account_id"].clone())
        .collect();
    // Accounts that nothing else blocks from calls, each its own customer.
    let mut customers: HashMap<String, usize> = HashMap::new();
    for a in &accounts {
        *customers.entry(a["customer_id"].clone()).or_default() += 1;
    }
    let free: Vec<&Row> = accounts
        .iter()
        .filter(|a| {
            customers[&a["customer_id"]] == 1
                && !recent.contains(&a["account_id"])
                && a["timezone"] == "America/New_York"
                && [
                    "dispute_open",
                    "cease_contact",
                    "bankruptcy",
                    "deceased",
                    "do_not_call",
                ]
                .iter()
                .all(|f| a[*f] == "false")
        })
        .take(3)
        .collect();
    let ids = [
        free[0]["account_id"].clone(),
        free[1]["account_id"].clone(),
        free[2]["account_id"].clone(),
    ];
    let mut extra = String::new();
    // 7 call attempts, one on each of the 7 days ending on the planning day.
    for day in 24..=30 {
        extra.push_str(&format!(
            "{},2026-09-{day}T13:00:00-04:00,call,no_answer,,\n",
            ids[0]
        ));
    }
    // Cool-off ends at 2026-09-30T21:01 EDT, a minute after calling hours.
    extra.push_str(&format!(
        "{},2026-09-23T21:01:00-04:00,call,right_party_contact,,\n",
        ids[1]
    ));
    extra.push_str(&format!(
        "{},2026-09-25T10:00:00-04:00,call,promise_to_pay,100.00,{DAY}\n",
        ids[2]
    ));
    let path = data.join("actions.csv");
    let mut text = fs::read_to_string(&path).expect("actions");
    text.push_str(&extra);
    fs::write(&path, text).expect("write actions");
    ids
}

/// The contract's rules, replayed from the raw files without the engine's
/// code. Returns, per account, the strategies the rules forbid, and how many
/// accounts each rule touched (so that the test can see it was exercised).
fn forbidden(
    data: &Path,
    day: NaiveDate,
) -> (
    HashMap<String, HashSet<String>>,
    HashMap<&'static str, usize>,
) {
    let accounts = read_csv(&data.join("accounts.csv"));
    let actions = read_csv(&data.join("actions.csv"));
    let zone_of: HashMap<String, chrono_tz::Tz> = accounts
        .iter()
        .map(|a| {
            (
                a["account_id"].clone(),
                a["timezone"].parse().expect("zone"),
            )
        })
        .collect();
    let person_of: HashMap<String, String> = accounts
        .iter()
        .map(|a| {
            let customer = &a["customer_id"];
            let person = if customer.is_empty() {
                &a["account_id"]
            } else {
                customer
            };
            (a["account_id"].clone(), person.clone())
        })
        .collect();
    let mut calls: HashMap<String, u32> = HashMap::new();
    let mut cooling: HashSet<String> = HashSet::new();
    let mut promising: HashSet<String> = HashSet::new();
    let calls_end = |tz: chrono_tz::Tz| {
        tz.from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(21, 0, 0).unwrap()))
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    };
    for x in &actions {
        let id = &x["account_id"];
        let tz = zone_of[id];
        let at = DateTime::parse_from_rfc3339(&x["at"])
            .expect("instant")
            .with_timezone(&Utc);
        let local_day = at.with_timezone(&tz).date_naive();
        if local_day > day {
            continue;
        }
        let person = person_of[id].clone();
        if x["channel"] == "call" && (day - local_day).num_days() < 7 {
            *calls.entry(person.clone()).or_default() += 1;
        }
        let conversation = [
            "right_party_contact",
            "promise_to_pay",
            "refused",
            "dispute",
        ]
        .contains(&x["outcome"].as_str());
        // Blocked all day if no moment of calling hours lies 7 × 24 h after it.
        if conversation && at + Duration::days(7) >= calls_end(tz) && at <= calls_end(tz) {
            cooling.insert(person);
        }
        if x["outcome"] == "promise_to_pay" {
            let on: NaiveDate = x["promised_on"].parse().expect("promise date");
            if on >= day {
                promising.insert(id.clone());
            }
        }
    }
    let floors: HashMap<&str, i64> = [
        ("settlement_offer", 120),
        ("field_visit", 60),
        ("legal", 90),
        ("agency", 150),
    ]
    .into_iter()
    .collect();
    let calls_channel = ["call", "settlement_offer", "installment_plan"];
    let contact = [
        "sms_reminder",
        "email_reminder",
        "call",
        "settlement_offer",
        "installment_plan",
        "demand_letter",
        "field_visit",
        "legal",
        "agency",
    ];
    let mut touched: HashMap<&'static str, usize> = HashMap::new();
    let mut out = HashMap::new();
    for a in &accounts {
        let id = a["account_id"].clone();
        let person = &person_of[&id];
        let dpd: i64 = a["days_past_due"].parse().expect("dpd");
        let mut no: HashSet<String> = HashSet::new();
        let mut forbid = |rule: &'static str, strategies: &[&str]| {
            if !strategies.is_empty() {
                *touched.entry(rule).or_default() += 1;
            }
            no.extend(strategies.iter().map(|s| s.to_string()));
        };
        if ["cease_contact", "bankruptcy", "deceased"]
            .iter()
            .any(|f| a[*f] == "true")
        {
            forbid("no contact", &contact);
        }
        if a["dispute_open"] == "true" {
            forbid("dispute", &contact);
        }
        if promising.contains(&id) {
            forbid("promise", &contact);
        }
        let below: Vec<&str> = floors
            .iter()
            .filter(|(_, f)| dpd < **f)
            .map(|(s, _)| *s)
            .collect();
        forbid("floor", &below);
        if a["do_not_call"] == "true" {
            forbid("opt-out", &calls_channel);
        }
        if a["do_not_sms"] == "true" {
            forbid("opt-out", &["sms_reminder"]);
        }
        if a["do_not_email"] == "true" {
            forbid("opt-out", &["email_reminder"]);
        }
        if calls.get(person).copied().unwrap_or(0) >= 7 {
            forbid("7 calls", &calls_channel);
        }
        if cooling.contains(person) {
            forbid("cool-off", &calls_channel);
        }
        out.insert(id, no);
    }
    (out, touched)
}

/// Every planned strategy is allowed by the replayed rules, and no person
/// gets more calls than the 7-in-7-days limit leaves.
fn assert_compliant(data: &Path, plan_rows: &[Row]) {
    let day: NaiveDate = DAY.parse().unwrap();
    let (no, touched) = forbidden(data, day);
    for rule in [
        "no contact",
        "dispute",
        "promise",
        "floor",
        "opt-out",
        "7 calls",
        "cool-off",
    ] {
        assert!(
            touched.get(rule).copied().unwrap_or(0) > 0,
            "the data never exercised {rule}"
        );
    }
    let accounts = read_csv(&data.join("accounts.csv"));
    let person_of: HashMap<&str, &str> = accounts
        .iter()
        .map(|a| (a["account_id"].as_str(), a["customer_id"].as_str()))
        .collect();
    let mut planned_calls: HashMap<&str, u32> = HashMap::new();
    let mut violations = Vec::new();
    for row in plan_rows {
        let (id, strategy) = (row["account_id"].as_str(), row["strategy"].as_str());
        if no[id].contains(strategy) {
            violations.push(format!("{id}: {strategy}"));
        }
        if ["call", "settlement_offer", "installment_plan"].contains(&strategy) {
            *planned_calls.entry(person_of[id]).or_default() += 1;
        }
    }
    assert!(violations.is_empty(), "rules broken: {violations:?}");
    // Replay the per-person count with the day's planned calls added.
    let actions = read_csv(&data.join("actions.csv"));
    let mut recent: HashMap<&str, u32> = HashMap::new();
    let zone_of: HashMap<&str, chrono_tz::Tz> = accounts
        .iter()
        .map(|a| (a["account_id"].as_str(), a["timezone"].parse().unwrap()))
        .collect();
    for x in &actions {
        let id = x["account_id"].as_str();
        let at = DateTime::parse_from_rfc3339(&x["at"])
            .unwrap()
            .with_timezone(&zone_of[id]);
        let age = (day - at.date_naive()).num_days();
        if x["channel"] == "call" && (0..7).contains(&age) {
            *recent.entry(person_of[id]).or_default() += 1;
        }
    }
    for (person, planned) in planned_calls {
        let before = recent.get(person).copied().unwrap_or(0);
        assert!(
            before + planned <= 7,
            "{person}: {before} calls then {planned} more"
        );
    }
}

#[test]
fn plans_never_break_a_compliance_rule_replayed_independently() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 3000, 11);
    let edge = add_edge_cases(&data);
    // Exploration at 1 tries every allowed strategy at random: the hardest case.
    for (name, extra) in [
        ("greedy", vec!["--explore", "0"]),
        ("random", vec!["--explore", "1"]),
        (
            "capped",
            vec!["--capacity", "call=50", "--capacity", "installment_plan=40"],
        ),
    ] {
        let out = dir.path().join(format!("{name}.csv"));
        plan(&data, &out, &extra);
        let rows = read_csv(&out);
        assert_compliant(&data, &rows);
        let by_id: HashMap<&str, &Row> =
            rows.iter().map(|r| (r["account_id"].as_str(), r)).collect();
        for (id, rule) in edge.iter().zip([
            "call_attempt_limit",
            "conversation_cool_off",
            "promise_pending",
        ]) {
            assert!(
                by_id[id.as_str()]["blocked_by"].contains(&format!("{rule}: ")),
                "{name}: {id} should be blocked by {rule}: {:?}",
                by_id[id.as_str()]["blocked_by"]
            );
        }
    }
}

#[test]
fn the_order_of_the_accounts_table_does_not_change_the_plan() {
    // The planner takes a shortcut when the accounts come in id order (as
    // the simulator writes them); any other order must give the same plan.
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 2000, 31);
    let capacities = ["--capacity", "call=80", "--capacity", "legal=5"];
    let in_order = dir.path().join("in_order.csv");
    plan(&data, &in_order, &capacities);
    let accounts = data.join("accounts.csv");
    let text = fs::read_to_string(&accounts).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    lines.reverse();
    fs::write(&accounts, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let reversed = dir.path().join("reversed.csv");
    plan(&data, &reversed, &capacities);
    let (first, second) = (
        fs::read_to_string(&in_order).unwrap(),
        fs::read_to_string(&reversed).unwrap(),
    );
    assert_eq!(first.lines().count(), 2001);
    assert!(
        first == second,
        "the plans differ when the accounts are reversed"
    );
}

#[test]
fn a_plan_has_the_contracts_columns_fills_capacity_in_rank_order_and_records_exploration() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 3000, 12);
    let out = dir.path().join("plan.csv");
    let capacity = [("call", 60usize), ("installment_plan", 50), ("legal", 5)];
    let mut args = vec!["--explore".to_string(), "0.2".to_string()];
    for (s, c) in capacity {
        args.push("--capacity".into());
        args.push(format!("{s}={c}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    plan(&data, &out, &args);
    let text = fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(
        "account_id,strategy,queue_rank,priority,p_pay,expected_value,reasons,blocked_by,propensity,model_version"
    ));
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 3000);
    let mut explored = 0;
    for row in &rows {
        let propensity: f64 = row["propensity"].parse().unwrap();
        assert!(propensity > 0.0 && propensity <= 1.0);
        if propensity < 1.0 {
            explored += 1;
        }
        let p: f64 = row["p_pay"].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
        let value = &row["expected_value"];
        assert!(
            value.parse::<rust_decimal::Decimal>().unwrap().scale() <= 2,
            "{value}"
        );
        assert!(!row["model_version"].is_empty());
    }
    let queues = assert_ranked(&rows);
    // Exploration takes its share (20 % of 3000, give or take the draw).
    assert!((450..=750).contains(&explored), "{explored} explored");
    for (strategy, limit) in capacity {
        let used = queues.get(strategy).map_or(0, Vec::len);
        assert!(used <= limit, "{strategy}: {used} > {limit}");
        assert_eq!(used, limit, "{strategy}: capacity should bind on this book");
    }
    // The same inputs give the same plan.
    let again = dir.path().join("again.csv");
    plan(&data, &again, &args);
    assert_eq!(fs::read_to_string(&again).unwrap(), text);
}

/// `evaluate-policy` on a book the default model never saw: the report and
/// its `--json` figures.
fn evaluate(data: &Path, truth: &Path) -> (String, serde_json::Value) {
    let json = data.with_extension("policy.json");
    let output = prioritize()
        .args(["evaluate-policy", "--data"])
        .arg(data)
        .arg("--json")
        .arg(&json)
        .arg("--model")
        .arg(default_model())
        .arg("--truth")
        .arg(truth)
        .args([
            "--capacity",
            "call=120",
            "--capacity",
            "settlement_offer=30",
            "--capacity",
            "installment_plan=60",
            "--capacity",
            "demand_letter=150",
            "--capacity",
            "field_visit=6",
            "--capacity",
            "legal=8",
            "--capacity",
            "agency=15",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let figures = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    (String::from_utf8(output).unwrap(), figures)
}

fn number_after(report: &str, label: &str) -> f64 {
    let start = report
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {report}"))
        + label.len();
    report[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches([':', ','])
        .parse()
        .unwrap()
}

#[test]
fn the_plan_beats_the_staged_baseline_on_the_simulators_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = book(dir.path(), "book", 3000, 13);
    let (report, figures) = evaluate(&data, &truth);
    let plan = number_after(&report, "True net money collected: plan");
    let baseline = number_after(&report, "against baseline");
    assert!(
        plan > 1.08 * baseline,
        "plan {plan} vs baseline {baseline}\n{report}"
    );
    // The off-policy estimates agree with the truth in direction.
    assert!(report.contains("| plan (this model) |"), "{report}");
    // No plan beats the oracle.
    let oracle_row = report.lines().find(|l| l.starts_with("| oracle")).unwrap();
    let plan_row = report.lines().find(|l| l.starts_with("| plan")).unwrap();
    let true_total = |row: &str| -> f64 { row.split('|').nth(6).unwrap().trim().parse().unwrap() };
    assert!(true_total(oracle_row) >= true_total(plan_row));
    // The JSON holds the report's figures, money as decimal strings.
    let policies = figures["policies"].as_array().unwrap();
    let json_plan = policies
        .iter()
        .find(|p| p["policy"] == "plan (this model)")
        .unwrap();
    assert_eq!(
        json_plan["true_total"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        true_total(plan_row)
    );
    assert_eq!(policies.len(), 4, "plan, baseline, none and the oracle");
    assert_eq!(figures["accounts"], 3000);
    let calls = figures["capacity_use"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["strategy"] == "call")
        .unwrap();
    assert_eq!(calls["capacity"], 120);
    assert!(calls["plan"].as_u64().unwrap() <= 120);
}

#[test]
fn bad_engine_settings_are_refused_naming_the_flag_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 200, 14);
    let out = dir.path().join("plan.csv");
    let fails = |extra: &[&str]| -> String {
        let output = prioritize()
            .args(["plan", "--as-of", DAY, "--data"])
            .arg(&data)
            .arg("--model")
            .arg(default_model())
            .arg("--out")
            .arg(&out)
            .args(extra)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        String::from_utf8(output).unwrap()
    };
    assert!(fails(&["--capacity", "call=lots"]).contains("--capacity call=lots"));
    assert!(fails(&["--cost", "phone=1"]).contains("unknown strategy \"phone\""));
    assert!(fails(&["--explore", "1.5"]).contains("--explore"));
    let config = dir.path().join("engine.toml");
    fs::write(&config, "[strategies.call]\ncapacity = 10\ncots = \"1\"\n").unwrap();
    let message = fails(&["--config", config.to_str().unwrap()]);
    assert!(
        message.contains("engine.toml") && message.contains("line 3") && message.contains("cots"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written on bad input");
    // A truth file from another simulation is refused.
    let (_, other_truth) = book(dir.path(), "other", 100, 15);
    prioritize()
        .args(["evaluate-policy", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(default_model())
        .arg("--truth")
        .arg(&other_truth)
        .assert()
        .failure();
}

/// A challenger model (scorecard responses, 40 trees) trained on a book of
/// 1,500 accounts of `seed` in `dir`, unlike the embedded champion.
fn train_challenger(dir: &Path, seed: u64) -> PathBuf {
    let (training, _) = book(dir, "training", 1500, seed);
    let challenger = dir.join("challenger");
    prioritize()
        .args([
            "train",
            "--response-learner",
            "scorecard",
            "--trees",
            "40",
            "--data",
        ])
        .arg(&training)
        .arg("--out")
        .arg(&challenger)
        .assert()
        .success();
    challenger
}

/// Champion/challenger: a second model plans a fixed share of the people
/// (all of a person's accounts on one side), with that share of each
/// capacity, under the same rules; every row names the model that decided it.
#[test]
fn a_challenger_plans_its_share_of_people_with_its_share_of_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 3000, 16);
    add_edge_cases(&data);
    let challenger = train_challenger(dir.path(), 17);
    let version_of = |dir: &Path| -> String {
        let meta: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
        meta["version"].as_str().unwrap().to_string()
    };
    let (champion_version, challenger_version) =
        (version_of(&default_model()), version_of(&challenger));
    assert_ne!(champion_version, challenger_version);

    let capacity = [
        ("call", 90usize),
        ("installment_plan", 60),
        ("demand_letter", 120),
    ];
    let mut args = vec!["--explore".to_string(), "0".into(), "--challenger".into()];
    args.push(challenger.to_str().unwrap().into());
    args.extend(["--challenger-share".into(), "0.3".into()]);
    for (s, c) in capacity {
        args.extend(["--capacity".into(), format!("{s}={c}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dir.path().join("plan.csv");
    plan(&data, &out, &args);
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 3000);
    assert_compliant(&data, &rows);

    let accounts = read_csv(&data.join("accounts.csv"));
    let person_of: HashMap<&str, &str> = accounts
        .iter()
        .map(|a| (a["account_id"].as_str(), a["customer_id"].as_str()))
        .collect();
    let mut side_of_person: HashMap<&str, &str> = HashMap::new();
    let mut by_side: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &rows {
        let version = row["model_version"].as_str();
        assert!(
            version == champion_version || version == challenger_version,
            "{version}"
        );
        let person = person_of[row["account_id"].as_str()];
        let side = side_of_person.entry(person).or_insert(version);
        assert_eq!(
            *side, version,
            "person {person} is split between the models"
        );
        by_side.entry(version).or_default().push(row);
    }
    let people = side_of_person.len() as f64;
    let challenger_people = side_of_person
        .values()
        .filter(|&&v| v == challenger_version)
        .count() as f64;
    let share = challenger_people / people;
    assert!((0.25..=0.35).contains(&share), "challenger share {share}");

    // Each side keeps to its share of every capacity (what the challenger
    // leaves unused does not go to the champion); the champion's binds.
    let n = rows.len() as f64;
    let challenger_accounts = by_side[challenger_version.as_str()].len() as f64;
    for (strategy, total) in capacity {
        let used = |version: &str| {
            by_side[version]
                .iter()
                .filter(|r| r["strategy"] == strategy)
                .count()
        };
        let mine = ((total as f64) * challenger_accounts / n).round() as usize;
        assert!(used(&challenger_version) <= mine, "challenger {strategy}");
        assert_eq!(used(&champion_version), total - mine, "champion {strategy}");
    }
    // Queues rank both sides together, by priority.
    let mixed = assert_ranked(&rows)
        .values()
        .filter(|queue| {
            let models: HashSet<&str> = queue.iter().map(|r| r["model_version"].as_str()).collect();
            models.len() == 2
        })
        .count();
    assert!(mixed > 0, "no queue holds accounts of both models");

    // A challenger is one model's plan to judge on its own, not inside evaluate-policy.
    prioritize()
        .args(["evaluate-policy", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(default_model())
        .arg("--challenger")
        .arg(&challenger)
        .assert()
        .failure();
    let fails = prioritize()
        .args(["plan", "--as-of", DAY, "--data"])
        .arg(&data)
        .arg("--model")
        .arg(default_model())
        .args(["--challenger-share", "0.2", "--out"])
        .arg(dir.path().join("bad.csv"))
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&fails).contains("--challenger-share"));
}

/// A plan made elsewhere (a peer's) is judged with the same truth as ours:
/// the plan's own decisions, handed back, are worth exactly what the plan is;
/// a decision the rules block is counted and earns nothing; a file that
/// leaves an account out is refused, naming it.
#[test]
fn evaluate_policy_judges_decisions_made_elsewhere_by_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (data, truth) = book(dir.path(), "book", 3000, 31);
    let capacity = [
        "--capacity",
        "call=120",
        "--capacity",
        "settlement_offer=30",
        "--capacity",
        "installment_plan=60",
        "--capacity",
        "demand_letter=150",
        "--capacity",
        "field_visit=6",
        "--capacity",
        "legal=8",
        "--capacity",
        "agency=15",
    ];
    let planned = dir.path().join("plan.csv");
    let mut extra = vec!["--explore", "0"];
    extra.extend(capacity);
    plan(&data, &planned, &extra);
    let rows = read_csv(&planned);
    let write = |name: &str, rows: &[(String, String)]| -> PathBuf {
        let path = dir.path().join(name);
        let mut out = csv::Writer::from_path(&path).unwrap();
        out.write_record(["account_id", "strategy"]).unwrap();
        for (id, s) in rows {
            out.write_record([id, s]).unwrap();
        }
        out.flush().unwrap();
        path
    };
    let same: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["account_id"].clone(), r["strategy"].clone()))
        .collect();
    // One account given a strategy its rules remove.
    let (k, blocked) = rows
        .iter()
        .enumerate()
        .find_map(|(k, r)| {
            let removed = r["blocked_by"].split("; ").next()?.split_once(": ")?.1;
            let s = removed.split(' ').next()?.to_string();
            (s != r["strategy"]).then_some((k, s))
        })
        .expect("some account has a blocked strategy");
    let mut broken = same.clone();
    broken[k].1 = blocked;
    let json = dir.path().join("policy.json");
    let (same_file, broken_file) = (write("same.csv", &same), write("broken.csv", &broken));
    prioritize()
        .args(["evaluate-policy", "--as-of", DAY, "--data"])
        .arg(&data)
        .arg("--model")
        .arg(default_model())
        .arg("--truth")
        .arg(&truth)
        .arg("--json")
        .arg(&json)
        .arg("--decisions")
        .arg(format!("same={}", same_file.display()))
        .arg("--decisions")
        .arg(format!("broken={}", broken_file.display()))
        .args(capacity)
        .assert()
        .success();
    let figures: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let policy = |name: &str| {
        figures["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy"] == name)
            .unwrap_or_else(|| panic!("{name} in {figures}"))
            .clone()
    };
    let (ours, again, broken) = (
        policy("plan (this model)"),
        policy("same"),
        policy("broken"),
    );
    assert_eq!(again["true_total"], ours["true_total"]);
    assert_eq!(again["uplift_share"], ours["uplift_share"]);
    assert_eq!(again["violations"], 0);
    assert_eq!(broken["violations"], 1);
    assert_eq!(ours["over_capacity"], 0);
    let share = ours["uplift_share"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 1.0, "{share}");
    assert_eq!(policy("oracle (true values)")["uplift_share"], 1.0);

    let short = write("short.csv", &same[1..]);
    let assert = prioritize()
        .args(["evaluate-policy", "--as-of", DAY, "--data"])
        .arg(&data)
        .arg("--model")
        .arg(default_model())
        .arg("--decisions")
        .arg(format!("short={}", short.display()))
        .assert()
        .failure();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(&same[0].0) && stderr.contains("short.csv"),
        "{stderr}"
    );
}

/// Plans the four partitions of `data` into `DIR/PREFIX-I.parquet`,
/// checking that each holds a share of the book and all hold it once.
fn partitions(dir: &Path, data: &Path, prefix: &str, shape: &[&str]) -> Vec<PathBuf> {
    let parts: Vec<PathBuf> = (0..4)
        .map(|i| dir.join(format!("{prefix}-{i}.parquet")))
        .collect();
    let mut assessed = 0;
    for (i, part) in parts.iter().enumerate() {
        let output = partition(data, i, part, shape)
            .success()
            .get_output()
            .stdout
            .clone();
        let summary = String::from_utf8(output).unwrap();
        let count: usize = summary
            .split("assessed ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{summary}"));
        // Each partition holds a share of the book, not all or nothing.
        assert!((400..1100).contains(&count), "{summary}");
        assessed += count;
    }
    assert_eq!(assessed, 3000);
    parts
}

fn partition(data: &Path, i: usize, out: &Path, shape: &[&str]) -> assert_cmd::assert::Assert {
    prioritize()
        .args([
            "plan",
            "--as-of",
            DAY,
            "--partition",
            &format!("{i}/4"),
            "--data",
        ])
        .arg(data)
        .arg("--model")
        .arg(default_model())
        .arg("--out")
        .arg(out)
        .args(shape)
        .assert()
}

fn merge(parts: &[PathBuf], decide: &[&str], out: &Path) {
    prioritize()
        .args(["plan", "--out"])
        .arg(out)
        .arg("--merge")
        .args(parts)
        .args(decide)
        .assert()
        .success();
}

/// The CSV data folder `csv` again as Parquet in `out`, every column as
/// text (as a lender's export may be), in row groups of 500 rows.
fn as_parquet(csv: &Path, out: &Path) {
    use polars::prelude::{CsvReadOptions, ParquetWriter, SerReader};
    fs::create_dir_all(out).unwrap();
    for entry in fs::read_dir(csv).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        let mut frame = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.clone()))
            .unwrap()
            .finish()
            .unwrap();
        let target = out
            .join(path.file_stem().unwrap())
            .with_extension("parquet");
        ParquetWriter::new(fs::File::create(target).unwrap())
            .with_row_group_size(Some(500))
            .finish(&mut frame)
            .unwrap();
    }
}

/// A book planned as partitions (`--partition I/N`, then `--merge`) is the
/// book planned whole, row for row, with exploration on, a challenger
/// planning a share of the people and capacities binding across
/// partitions; a merge that lacks a partition or holds one twice is refused.
#[test]
fn a_book_planned_in_partitions_is_the_book_planned_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = book(dir.path(), "book", 3000, 21);
    add_edge_cases(&data);
    let challenger = train_challenger(dir.path(), 22);
    let shape = [
        "--challenger",
        challenger.to_str().unwrap(),
        "--challenger-share",
        "0.3",
    ];
    let decide = [
        "--explore",
        "0.1",
        "--capacity",
        "call=90",
        "--capacity",
        "installment_plan=60",
        "--capacity",
        "demand_letter=120",
    ];
    let whole = dir.path().join("whole.csv");
    plan(&data, &whole, &[&shape[..], &decide[..]].concat());

    let parts = partitions(dir.path(), &data, "part", &shape);
    let merged = dir.path().join("merged.csv");
    merge(&parts, &decide, &merged);
    let (whole_text, merged_text) = (
        fs::read_to_string(&whole).unwrap(),
        fs::read_to_string(&merged).unwrap(),
    );
    let rows = read_csv(&whole);
    assert!(
        rows.iter().any(|r| r["propensity"] != "1.0"),
        "some explored"
    );
    assert!(
        rows.iter().any(|r| r["strategy"] == "call"),
        "calls allocated"
    );
    let versions: HashSet<&str> = rows.iter().map(|r| r["model_version"].as_str()).collect();
    assert_eq!(versions.len(), 2, "both models planned");
    if whole_text != merged_text {
        let merged_rows = read_csv(&merged);
        let differing = rows
            .iter()
            .zip(&merged_rows)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("{a:?}\nagainst {b:?}"));
        panic!(
            "the merged plan differs ({} against {} rows): {differing:?}",
            rows.len(),
            merged_rows.len()
        );
    }

    // The same book from Parquet, where a partition drops the other
    // people's rows as it reads them: the same plan again.
    let parquet = dir.path().join("book-parquet");
    as_parquet(&data, &parquet);
    let parquet_parts = partitions(dir.path(), &parquet, "parquet-part", &shape);
    let from_parquet = dir.path().join("merged-parquet.csv");
    merge(&parquet_parts, &decide, &from_parquet);
    assert!(
        fs::read_to_string(&from_parquet).unwrap() == whole_text,
        "the plan merged from Parquet partitions differs from the whole plan"
    );

    // A bad cell is named by its row in the file, by the one partition
    // whose people it belongs to; the others do not read that row.
    let history = fs::read_to_string(data.join("payment_history.csv")).unwrap();
    let mut lines: Vec<String> = history.lines().map(str::to_string).collect();
    let column = lines[0]
        .split(',')
        .position(|c| c == "amount_paid")
        .unwrap();
    let row = lines.len() / 2 + 7;
    let mut cells: Vec<&str> = lines[row].split(',').collect();
    cells[column] = "12.3.4";
    lines[row] = cells.join(",");
    let bad_csv = dir.path().join("bad-csv");
    fs::create_dir_all(&bad_csv).unwrap();
    for entry in fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, bad_csv.join(path.file_name().unwrap())).unwrap();
    }
    fs::write(bad_csv.join("payment_history.csv"), lines.join("\n") + "\n").unwrap();
    let bad = dir.path().join("bad-parquet");
    as_parquet(&bad_csv, &bad);
    let named = format!("payment_history.parquet, row {row}, column amount_paid");
    let mut refusing = Vec::new();
    for i in 0..4 {
        let out = dir.path().join(format!("bad-{i}.parquet"));
        let assert = partition(&bad, i, &out, &shape);
        let output = assert.get_output();
        if !output.status.success() {
            let stderr = String::from_utf8(output.stderr.clone()).unwrap();
            assert!(stderr.contains(&named), "{stderr}");
            assert!(!out.exists(), "nothing written by a refused partition");
            refusing.push(i);
        }
    }
    assert_eq!(refusing.len(), 1, "partitions refusing: {refusing:?}");
    // The whole book names the same row.
    let whole_bad = prioritize()
        .args(["validate", "--data"])
        .arg(&bad)
        .assert()
        .failure()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&whole_bad.stdout).to_string()
        + &String::from_utf8_lossy(&whole_bad.stderr);
    assert!(text.contains(&named), "{text}");

    // Every partition, each once.
    let refused = |parts: &[&PathBuf], named: &str| {
        let output = prioritize()
            .args(["plan", "--out"])
            .arg(dir.path().join("refused.csv"))
            .arg("--merge")
            .args(parts)
            .assert()
            .failure()
            .get_output()
            .stderr
            .clone();
        let stderr = String::from_utf8(output).unwrap();
        assert!(stderr.contains(named), "{stderr}");
        assert!(!dir.path().join("refused.csv").exists());
    };
    refused(&[&parts[0], &parts[1], &parts[2]], "3/4 missing");
    refused(
        &[&parts[0], &parts[1], &parts[2], &parts[2]],
        "partition 2/4 is also",
    );
    refused(&[&parts[0], &parts[1], &parts[2], &whole], "whole.csv");
}
