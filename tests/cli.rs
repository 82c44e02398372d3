//! The commands as a user runs them: the real binary, real files.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use polars::prelude::*;

fn prioritize() -> Command {
    Command::cargo_bin("prioritize").expect("binary built")
}

/// Simulates a small book (seed 11) into `dir/name` and returns its path.
fn book(dir: &Path, name: &str, format: &str) -> PathBuf {
    seeded_book(dir, name, format, 11)
}

/// Simulates 400 accounts with `seed` into `dir/name` and returns its path.
fn seeded_book(dir: &Path, name: &str, format: &str, seed: u64) -> PathBuf {
    let out = dir.join(name);
    prioritize()
        .args([
            "simulate",
            "--accounts",
            "400",
            "--seed",
            &seed.to_string(),
            "--format",
            format,
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    out
}

/// Replaces the cell at 1-based data `row` of `column` in a CSV table.
fn corrupt(file: &Path, row: usize, column: &str, value: &str) {
    let text = fs::read_to_string(file).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let index = lines[0]
        .split(',')
        .position(|c| c == column)
        .expect("column exists");
    let mut cells: Vec<String> = lines[row].split(',').map(str::to_string).collect();
    cells[index] = value.to_string();
    lines[row] = cells.join(",");
    fs::write(file, lines.join("\n") + "\n").expect("write");
}

/// Runs `validate` on a folder it must refuse; returns (stdout, stderr).
fn refused_validation(data: &Path) -> (String, String) {
    let assert = prioritize()
        .args(["validate", "--data"])
        .arg(data)
        .assert()
        .failure();
    let output = assert.get_output();
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("utf-8");
    (text(&output.stdout), text(&output.stderr))
}

fn stderr_of(assert: assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).expect("utf-8")
}

#[test]
fn a_corrupt_cell_in_any_table_stops_with_one_line_naming_it_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "accounts",
            3,
            "timezone",
            "Mars/Olympus",
            "expected an IANA time-zone name",
        ),
        (
            "accounts",
            5,
            "balance",
            "12.345678",
            "at most 4 fractional digits",
        ),
        ("accounts", 6, "currency", "XYZ", "ISO 4217"),
        (
            "payment_history",
            10,
            "cycle_end",
            "2026-02-30",
            "a date as YYYY-MM-DD",
        ),
        (
            "payment_history",
            12,
            "amount_paid",
            "-5.00",
            "must not be negative",
        ),
        ("actions", 5, "channel", "pigeon", "one of sms, email"),
        ("actions", 7, "at", "2026-09-01 10:00", "RFC 3339"),
        ("outcomes", 2, "paid", "maybe", "true or false"),
        (
            "outcomes",
            4,
            "account_id",
            "ACC-NOT-THERE",
            "is not in accounts",
        ),
    ];
    for (table, row, column, value, expected) in cases {
        let data = book(dir.path(), &format!("{table}-{row}"), "csv");
        corrupt(&data.join(format!("{table}.csv")), row, column, value);
        let out = dir.path().join(format!("{table}-{row}.parquet"));
        let assert = prioritize()
            .args(["features", "--as-of", "2026-09-30", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .assert()
            .failure();
        let stderr = stderr_of(assert);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one line expected, got: {stderr}"
        );
        let place = format!("{table}.csv, row {row}, column {column}");
        assert!(
            stderr.contains(&place) && stderr.contains(expected),
            "{place}: got {stderr}"
        );
        assert!(!out.exists(), "no output may be left after an error");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }
}

#[test]
fn a_bad_value_in_a_parquet_table_names_its_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = book(dir.path(), "book", "parquet");
    let path = data.join("payment_history.parquet");
    let mut frame = ParquetReader::new(fs::File::open(&path).expect("open"))
        .finish()
        .expect("read");
    let mut days: Vec<Option<i32>> = frame
        .column("days_past_due")
        .expect("column")
        .i32()
        .expect("i32")
        .into_iter()
        .collect();
    days[6] = Some(-3);
    frame
        .with_column(Series::new("days_past_due".into(), days))
        .expect("replace");
    ParquetWriter::new(fs::File::create(&path).expect("create"))
        .finish(&mut frame)
        .expect("write");
    let (stdout, _) = refused_validation(&data);
    assert!(
        stdout
            .contains("payment_history.parquet, row 7, column days_past_due: must not be negative"),
        "{stdout}"
    );
}

#[test]
fn a_ragged_or_unquoted_csv_line_is_named_on_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (row, value, expected) in [
        (4, "1,5", "has 7 fields, the header has 6"),
        (6, "\"oops", "the header has 6 (an unclosed quote?)"),
    ] {
        let data = book(dir.path(), &format!("ragged-{row}"), "csv");
        corrupt(&data.join("payment_history.csv"), row, "amount_due", value);
        let assert = prioritize()
            .args(["validate", "--data"])
            .arg(&data)
            .assert()
            .failure();
        let stderr = stderr_of(assert);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "payment_history.csv, row {row}: record starting on line {}",
                row + 1
            )),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn validate_lists_every_problem_not_only_the_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = book(dir.path(), "book", "csv");
    corrupt(&data.join("accounts.csv"), 2, "days_past_due", "many");
    corrupt(&data.join("payment_history.csv"), 3, "amount_due", "1.5.0");
    corrupt(&data.join("outcomes.csv"), 9, "strategy", "pray");
    let (stdout, stderr) = refused_validation(&data);
    // The tables are read side by side, yet listed in the contract's order.
    let mut last = 0;
    for place in [
        "accounts.csv, row 2, column days_past_due",
        "payment_history.csv, row 3, column amount_due",
        "outcomes.csv, row 9, column strategy",
    ] {
        let at = stdout
            .find(place)
            .unwrap_or_else(|| panic!("missing {place} in:\n{stdout}"));
        assert!(at >= last, "{place} out of order in:\n{stdout}");
        last = at;
    }
    assert!(stderr.contains("3 problems found"), "{stderr}");
}

#[test]
fn a_missing_required_column_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = book(dir.path(), "book", "csv");
    let path = data.join("payment_history.csv");
    let text = fs::read_to_string(&path)
        .expect("read")
        .replacen("amount_paid", "amount_pd", 1);
    fs::write(&path, text).expect("write");
    let (stdout, _) = refused_validation(&data);
    assert!(
        stdout.contains("payment_history.csv, column amount_paid: required column is missing"),
        "{stdout}"
    );
}

#[test]
fn simulate_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = book(dir.path(), "first", "csv");
    let second = book(dir.path(), "second", "csv");
    for table in ["accounts", "payment_history", "actions", "outcomes"] {
        let file = format!("{table}.csv");
        assert_eq!(
            fs::read(first.join(&file)).expect("read"),
            fs::read(second.join(&file)).expect("read"),
            "{file}"
        );
    }
    let other = seeded_book(dir.path(), "other", "csv", 12);
    assert_ne!(
        fs::read(first.join("accounts.csv")).expect("read"),
        fs::read(other.join("accounts.csv")).expect("read")
    );
}

fn features_of(data: &Path, out: &Path) -> DataFrame {
    prioritize()
        .args(["features", "--as-of", "2026-09-30", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
    ParquetReader::new(fs::File::open(out).expect("open"))
        .finish()
        .expect("read")
}

#[test]
fn csv_and_parquet_tables_give_the_same_features() {
    let dir = tempfile::tempdir().expect("temp dir");
    let from_csv = features_of(
        &book(dir.path(), "csv", "csv"),
        &dir.path().join("csv.parquet"),
    );
    let from_parquet = features_of(
        &book(dir.path(), "pq", "parquet"),
        &dir.path().join("pq.parquet"),
    );
    assert_eq!(from_csv.height(), 400);
    assert!(from_csv.equals_missing(&from_parquet));
    assert!(from_csv.get_columns().iter().all(|c| c.null_count() == 0));
}

#[test]
fn an_output_folder_holding_other_files_is_never_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("mine");
    fs::create_dir(&target).expect("mkdir");
    fs::write(target.join("notes.txt"), "keep me").expect("write");
    let assert = prioritize()
        .args(["simulate", "--accounts", "10", "--out"])
        .arg(&target)
        .assert()
        .failure();
    assert!(stderr_of(assert).contains("notes.txt"));
    assert_eq!(
        fs::read_to_string(target.join("notes.txt")).expect("kept"),
        "keep me"
    );
}

fn uci_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/uci_credit_card_train.csv")
}

#[test]
fn import_uci_keeps_ids_drops_protected_columns_and_validates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("uci");
    prioritize()
        .args(["import-uci", "--input"])
        .arg(uci_file())
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    prioritize()
        .args(["validate", "--data"])
        .arg(&out)
        .assert()
        .success();
    let read = |name: &str| {
        CsvReadOptions::default()
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(out.join(name)))
            .expect("reader")
            .finish()
            .expect("read")
    };
    let raw = CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(uci_file()))
        .expect("reader")
        .finish()
        .expect("read");
    let accounts = read("accounts.csv");
    assert_eq!(accounts.height(), raw.height());
    assert_eq!(
        accounts
            .column("account_id")
            .expect("ids")
            .str()
            .expect("str")
            .get(0),
        raw.column("ID").expect("ID").str().expect("str").get(0)
    );
    for protected in ["SEX", "MARRIAGE", "AGE", "sex", "age"] {
        assert!(
            accounts.column(protected).is_err(),
            "{protected} must not be imported"
        );
    }
    assert_eq!(read("payment_history.csv").height(), raw.height() * 6);
    let outcomes = read("outcomes.csv");
    let paid = outcomes
        .column("paid")
        .expect("paid")
        .str()
        .expect("str")
        .into_iter()
        .filter(|v| *v == Some("true"))
        .count();
    let defaulted = raw
        .column("default.payment.next.month")
        .expect("label")
        .str()
        .expect("str")
        .into_iter()
        .filter(|v| *v == Some("1"))
        .count();
    assert_eq!(paid + defaulted, raw.height(), "paid must be 1 - default");
}

#[test]
fn a_corrupt_uci_cell_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("uci.csv");
    fs::copy(uci_file(), &input).expect("copy");
    corrupt(&input, 17, "PAY_AMT3", "lots");
    let out = dir.path().join("uci");
    let assert = prioritize()
        .args(["import-uci", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .assert()
        .failure();
    assert!(stderr_of(assert).contains("uci.csv, row 17, column PAY_AMT3: expected a whole number"));
    assert!(!out.exists());
}

#[test]
fn the_feature_list_documents_every_output_column() {
    let assert = prioritize().args(["features", "--list"]).assert().success();
    let listed = String::from_utf8(assert.get_output().stdout.clone()).expect("utf-8");
    let dir = tempfile::tempdir().expect("temp dir");
    let features = features_of(
        &book(dir.path(), "book", "csv"),
        &dir.path().join("f.parquet"),
    );
    for name in features.get_column_names().iter().skip(2) {
        assert!(
            listed.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
    }
}

/// World b keeps the customers (the same accounts, as of the same day) but
/// answers strategies otherwise: its truth differs, and its book is as valid.
#[test]
fn a_second_world_changes_how_strategies_work_not_who_the_customers_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let truth_of = |world: &str| -> (PathBuf, DataFrame) {
        let out = dir.path().join(world);
        let truth = dir.path().join(format!("{world}.parquet"));
        prioritize()
            .args([
                "simulate",
                "--accounts",
                "400",
                "--seed",
                "5",
                "--world",
                world,
                "--out",
            ])
            .arg(&out)
            .arg("--truth-out")
            .arg(&truth)
            .assert()
            .success();
        prioritize()
            .arg("validate")
            .arg("--data")
            .arg(&out)
            .assert()
            .success();
        let frame = ParquetReader::new(fs::File::open(&truth).expect("open"))
            .finish()
            .expect("read");
        (out, frame)
    };
    let ((a, truth_a), (b, truth_b)) = (truth_of("a"), truth_of("b"));
    let column = |frame: &DataFrame, name: &str| -> Vec<f64> {
        frame
            .column(name)
            .expect(name)
            .f64()
            .expect("f64")
            .into_no_null_iter()
            .collect()
    };
    assert_eq!(column(&truth_a, "p_none").len(), 400);
    for strategy in ["call", "sms_reminder", "legal"] {
        let name = format!("p_{strategy}");
        let differ = column(&truth_a, &name)
            .iter()
            .zip(column(&truth_b, &name))
            .filter(|(x, y)| (*x - y).abs() > 1e-6)
            .count();
        assert!(differ > 300, "{name}: only {differ} of 400 differ");
    }
    let first_line = |dir: &Path| {
        fs::read_to_string(dir.join("accounts.csv"))
            .expect("read")
            .lines()
            .nth(1)
            .map(str::to_string)
    };
    assert_eq!(first_line(&a), first_line(&b), "the same first customer");
}
