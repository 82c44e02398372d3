//! What a data scientist relies on from `train` and `evaluate`: a model
//! folder that scores the same after a reload, refuses data it was not built
//! for, and reports the same metrics wherever it is evaluated.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use prioritize::contract::DataSet;
use prioritize::features::{build, spine_for_date};
use prioritize::model::learner::BoostParams;
use prioritize::model::{card, folder, train, TrainParams};

fn prioritize() -> Command {
    Command::cargo_bin("prioritize").expect("binary built")
}

/// Simulates `accounts` accounts with `seed` into `dir/name`.
fn book(dir: &Path, name: &str, accounts: usize, seed: u64) -> PathBuf {
    let out = dir.join(name);
    prioritize()
        .args([
            "simulate",
            "--accounts",
            &accounts.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    out
}

/// Small and quick: few trees, a short scorecard fit, three folds, no search.
fn quick() -> TrainParams {
    TrainParams {
        trees: BoostParams {
            iterations: 60,
            learning_rate: 0.2,
            ..BoostParams::default()
        },
        max_iterations: 60,
        folds: 3,
        search: 0,
        ..TrainParams::default()
    }
}

/// A simulated book of `accounts` (with `seed`), loaded and trained with [`quick`] parameters.
fn trained_book(
    accounts: usize,
    seed: u64,
) -> (tempfile::TempDir, DataSet, prioritize::model::Trained) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = book(dir.path(), "book", accounts, seed);
    let data = DataSet::load(&data_dir).unwrap();
    let trained = train(&data, &data_dir, quick(), None, &|_| {}).unwrap();
    (dir, data, trained)
}

fn train_cli(data: &Path, out: &Path) {
    prioritize()
        .args([
            "train",
            "--trees",
            "60",
            "--learning-rate",
            "0.2",
            "--search",
            "0",
            "--folds",
            "3",
            "--data",
        ])
        .arg(data)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

#[test]
fn a_saved_model_scores_and_explains_exactly_as_the_trained_one() {
    let (dir, data, trained) = trained_book(3000, 5);
    let model_dir = dir.path().join("model");
    folder::save(
        &model_dir,
        &trained.model,
        &card::render(&trained.model.meta),
    )
    .unwrap();
    let loaded = folder::load(&model_dir).unwrap();

    let features = build(
        &data,
        &spine_for_date(&data.accounts, "2026-09-30".parse().unwrap()).unwrap(),
    )
    .unwrap();
    let before = trained.model.p_pay(&features).unwrap();
    let after = loaded.p_pay(&features).unwrap();
    assert_eq!(before, after, "scores changed on reload");
    assert!(before.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(
        trained.model.reasons(&features).unwrap(),
        loaded.reasons(&features).unwrap()
    );
    for strategy in prioritize::contract::Strategy::ALL {
        assert_eq!(
            trained.model.response(&features, strategy).unwrap(),
            loaded.response(&features, strategy).unwrap(),
            "response to {strategy} changed on reload"
        );
    }
    assert_eq!(loaded.meta.version, trained.model.meta.version);
    assert!(loaded.meta.data_hash.starts_with("sha256:"));
}

#[test]
fn probabilities_are_of_paying_and_calibrated_on_held_out_rows() {
    let (_dir, _data, trained) = trained_book(6000, 8);
    let test = trained.model.meta.propensity.test();
    // The simulated book pays less often than not: a model of the majority
    // class would rank payers below non-payers.
    assert!(
        test.observed_rate < 0.5,
        "observed rate {}",
        test.observed_rate
    );
    assert!(test.roc_auc > 0.6, "held-out ROC AUC {}", test.roc_auc);
    assert!((test.mean_predicted - test.observed_rate).abs() < 0.03);
    let paid = trained
        .holdout
        .column("paid")
        .unwrap()
        .bool()
        .unwrap()
        .clone();
    let p_pay = trained
        .holdout
        .column("p_pay")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    let mean = |want: bool| {
        let values: Vec<f64> = paid
            .into_iter()
            .zip(&p_pay)
            .filter(|(y, _)| *y == Some(want))
            .map(|(_, p)| p.unwrap())
            .collect();
        values.iter().sum::<f64>() / values.len() as f64
    };
    assert!(
        mean(true) > mean(false) + 0.05,
        "payers {} vs others {}",
        mean(true),
        mean(false)
    );
}

#[test]
fn a_model_folder_built_for_other_features_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = book(dir.path(), "book", 1500, 3);
    let model = dir.path().join("model");
    train_cli(&data, &model);
    let meta_path = model.join("model.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    let numeric = meta["propensity"]["inputs"]["numeric"]
        .as_array_mut()
        .unwrap();
    let removed = numeric.remove(3);
    numeric.push(serde_json::Value::from("days_since_last_letter"));
    fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();

    let assert = prioritize()
        .args(["evaluate", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .assert()
        .failure();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("days_since_last_letter"), "{stderr}");
    assert!(stderr.contains(removed.as_str().unwrap()), "{stderr}");
    assert!(stderr.contains(&model.display().to_string()), "{stderr}");
}

#[test]
fn evaluate_reports_the_card_metrics_and_compares_two_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = book(dir.path(), "book", 1500, 4);
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    train_cli(&data, &first);
    train_cli(&data, &second);
    let card = fs::read_to_string(first.join("model_card.md")).unwrap();
    for needed in [
        "ROC AUC",
        "Brier",
        "KS",
        "decile",
        "lift",
        "logged strategy",
        "Out-of-fold metrics",
        "plan value per account",
        "folds",
    ] {
        assert!(card.contains(needed), "model card lacks {needed}");
    }
    let assert = prioritize()
        .args(["evaluate", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&first)
        .arg("--against")
        .arg(&second)
        .assert()
        .success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let version = |dir: &Path| -> String {
        let meta: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
        meta["version"].as_str().unwrap().to_string()
    };
    assert!(
        out.contains(&format!(
            "| metric | {} | {} |",
            version(&first),
            version(&second)
        )),
        "{out}"
    );
    assert!(out.contains("Strategy response"), "{out}");
    // Same data, same seed: the two models agree, so every difference is zero.
    assert!(
        out.contains("| ROC AUC |") && out.contains("+0.0000"),
        "{out}"
    );
}

#[test]
fn score_gives_every_account_a_probability_and_reasons_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let data = book(dir.path(), "book", 1500, 6);
    let model = dir.path().join("model");
    train_cli(&data, &model);
    let out = dir.path().join("scores.csv");
    prioritize()
        .args(["score", "--as-of", "2026-09-30", "--data"])
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let mut reader = csv::Reader::from_path(&out).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["account_id", "as_of", "p_pay", "reasons"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1500);
    for row in &rows {
        let p: f64 = row[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
        let reasons: Vec<&str> = row[3].split("; ").collect();
        assert!(!reasons.is_empty() && reasons.len() <= 3, "{}", &row[3]);
        assert!(
            reasons
                .iter()
                .all(|r| r.ends_with("(raises)") || r.ends_with("(lowers)")),
            "{}",
            &row[3]
        );
        assert!(
            !row[3].contains(" = "),
            "a feature without words: {}",
            &row[3]
        );
    }
}

#[test]
fn the_shipped_default_model_loads_and_reads_todays_features() {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let model = folder::load(&default).expect("models/default loads");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = book(dir.path(), "book", 300, 2);
    let data = DataSet::load(&data_dir).unwrap();
    let features = build(
        &data,
        &spine_for_date(&data.accounts, "2026-09-30".parse().unwrap()).unwrap(),
    )
    .unwrap();
    // Refused if the feature list changed since it was trained: retrain it (models/README.md).
    let p_pay = model.p_pay(&features).unwrap();
    assert_eq!(p_pay.len(), 300);
    assert!(
        model.response.is_some(),
        "the default model must know how strategies differ"
    );
    assert!(model.amount.is_some());
}

/// Raising a feature whose direction is known never moves P(pay) (or
/// P(paid | strategy)) the wrong way, in either learner; and no reason the
/// model gives goes against its feature.
#[test]
fn constrained_features_move_p_pay_only_their_way_and_reasons_agree() {
    use polars::prelude::{ChunkAgg, IntoSeries};
    use prioritize::contract::Strategy;
    use prioritize::features::catalog::{self, Direction};
    use prioritize::model::{reasons, LearnerKind};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = book(dir.path(), "book", 3000, 21);
    let data = DataSet::load(&data_dir).unwrap();
    let features = build(
        &data,
        &spine_for_date(&data.accounts, "2026-09-30".parse().unwrap()).unwrap(),
    )
    .unwrap();
    for kind in [LearnerKind::Scorecard, LearnerKind::TreeEnsemble] {
        let params = TrainParams {
            response_learner: Some(kind),
            ..quick()
        };
        let model = train(&data, &data_dir, params, None, &|_| {})
            .unwrap()
            .model;
        assert_eq!(model.response.as_ref().unwrap().kind(), kind);
        let before = model.p_pay(&features).unwrap();
        let strategy = Strategy::Call;
        let response_before = model.response(&features, strategy).unwrap().unwrap();
        let mut checked = 0;
        for (name, direction) in catalog::DIRECTIONS {
            let column = features
                .column(name)
                .unwrap()
                .cast(&polars::prelude::DataType::Float64)
                .unwrap();
            let values = column.f64().unwrap();
            // Every account a good step higher: a quarter of the column's spread, at least 1.
            let (lo, hi) = (values.min().unwrap(), values.max().unwrap());
            let step = ((hi - lo) / 4.0).max(1.0);
            let raised: polars::prelude::Float64Chunked =
                values.into_iter().map(|v| v.map(|v| v + step)).collect();
            let mut more = features.clone();
            more.with_column(raised.into_series().with_name((*name).into()))
                .unwrap();
            let after = model.p_pay(&more).unwrap();
            let response_after = model.response(&more, strategy).unwrap().unwrap();
            for (what, b, a) in [
                ("P(pay)", &before, &after),
                ("P(paid | call)", &response_before, &response_after),
            ] {
                for (i, (x, y)) in b.iter().zip(a).enumerate() {
                    let wrong = match direction {
                        Direction::Raises => y < &(x - 1e-12),
                        Direction::Lowers => y > &(x + 1e-12),
                        Direction::Free => false,
                    };
                    assert!(
                        !wrong,
                        "{kind:?}: raising {name} moved {what} of row {i} from {x} to {y}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 10);
        for row in model.reasons(&features).unwrap() {
            for reason in row {
                assert!(
                    reasons::agrees(&reason.feature, reason.effect),
                    "{kind:?}: {} goes against {}",
                    reason.text(),
                    reason.feature
                );
            }
        }
    }
}

/// Judged by the value of their plans, the response candidates include the
/// DR-learner corrections of the pooled trees, each with its value and
/// standard error; a response model saved with a correction scores the same
/// after a reload, and the correction moves what it predicts.
#[test]
fn dr_learner_corrections_are_judged_and_survive_a_reload() {
    use prioritize::contract::Strategy;
    use prioritize::model::correction::Correction;
    use prioritize::model::strategy_trees::K;
    use prioritize::model::train::{labelled, train_labelled};
    use prioritize::strategy::config::EngineConfig;
    use prioritize::strategy::judge::OutOfFoldJudge;

    let dir = tempfile::tempdir().unwrap();
    let data_dir = book(dir.path(), "book", 3000, 11);
    let data = DataSet::load(&data_dir).unwrap();
    let rows = labelled(&data).unwrap();
    let judge = OutOfFoldJudge::new(&data, &rows, &EngineConfig::default()).unwrap();
    let params = quick().check().unwrap();
    let mut trained = train_labelled(&rows, &data_dir, params, Some(&judge), &|_| {}).unwrap();
    let meta = trained
        .model
        .meta
        .response
        .as_ref()
        .expect("a response model");
    let corrected: Vec<_> = meta
        .candidates
        .iter()
        .filter(|c| c.label.contains("DR-learner correction"))
        .collect();
    assert_eq!(corrected.len(), 2, "{:#?}", meta.candidates);
    for c in &corrected {
        let value = c.decision.expect("judged by its plan");
        assert!(value.se > 0.0 && value.value.is_finite(), "{c:?}");
        assert!(c.log_loss > 0.0 && c.log_loss < 1.0, "{c:?}");
    }
    assert_eq!(meta.candidates.iter().filter(|c| c.chosen).count(), 1);

    // A correction that raises P(paid | call) for high balances only.
    let correction = Correction {
        features: vec!["balance".into()],
        center: vec![3000.0],
        scale: vec![2000.0],
        weights: (0..K)
            .map(|s| {
                if s == Strategy::Call as usize {
                    vec![0.02, 0.03]
                } else {
                    vec![0.0, 0.0]
                }
            })
            .collect(),
        ridge: 0.0,
    };
    let features = build(
        &data,
        &spine_for_date(&data.accounts, "2026-09-30".parse().unwrap()).unwrap(),
    )
    .unwrap();
    let before = trained
        .model
        .response(&features, Strategy::Call)
        .unwrap()
        .unwrap();
    trained.model.response.as_mut().unwrap().correction = Some(correction.clone());
    trained.model.meta.response.as_mut().unwrap().correction = Some(correction);
    let model_dir = dir.path().join("model");
    folder::save(
        &model_dir,
        &trained.model,
        &card::render(&trained.model.meta),
    )
    .unwrap();
    let loaded = folder::load(&model_dir).unwrap();
    for strategy in Strategy::ALL {
        assert_eq!(
            trained.model.response(&features, strategy).unwrap(),
            loaded.response(&features, strategy).unwrap(),
            "response to {strategy} changed on reload"
        );
    }
    let after = loaded.response(&features, Strategy::Call).unwrap().unwrap();
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert!(
        moved > before.len() / 2,
        "the correction moved {moved} rows"
    );
}
