//! Books larger than one process, planned as partitions.
//!
//! `plan --partition I/N` assesses the accounts of partition I of N: their
//! features, compliance rules and scores, which are each account's own
//! (a person's accounts, and the call limit they share, fall in one
//! partition). It writes what the book-wide decision needs, one row per
//! account: the value net of cost and P(paid) under every strategy, the
//! rule that removed each removed one, the reasons, the currency and the
//! side of a champion/challenger split. `plan --merge` reads every
//! partition and makes the decision that needs the whole book (exploration,
//! the allocation under capacity, the queue ranks) with the same code as a
//! whole-book plan, so the two plans are the same row for row.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use polars::io::parquet::write::KeyValueMetadata;
use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::allocate::{Values, K};
use super::config::EngineConfig;
use super::plan::{stable_hash_bytes, Book, PlanError};
use super::rules::Rule;
use crate::contract::Strategy;

/// Partition `index` of `count` (numbered from 0, as a Kubernetes Indexed
/// Job's `JOB_COMPLETION_INDEX` is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Partition, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not I/N (say 0/4: the first of 4 partitions)"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?}: {part:?} is not a whole number"))
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 {
            return Err(format!("{text:?}: there must be at least 1 partition"));
        }
        if index >= count {
            return Err(format!(
                "{text:?}: partitions are numbered from 0 to {}",
                count - 1
            ));
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Partition {
    /// The partition of `person` (`customer_id`, or the account where it is
    /// blank) among `count`: a seeded hash of the person alone, the same on
    /// every machine and in every run.
    pub fn of_person(person: &str, count: u32) -> u32 {
        (stable_hash_bytes(person.bytes(), 0x7061_7274, 5) % u64::from(count)) as u32
    }

    /// Whether `person`'s accounts fall in this partition.
    pub fn holds(self, person: &str) -> bool {
        Partition::of_person(person, self.count) == self.index
    }
}

/// What a partition file records of the run that wrote it.
#[derive(Debug, Clone, PartialEq)]
struct PartInfo {
    partition: Partition,
    day: NaiveDate,
    model_version: String,
    challenger: Option<String>,
    /// A digest of what shaped the values (version, costs, rules, the
    /// challenger's share): partitions must agree on it to be merged.
    engine: String,
}

/// Marks a file as a partition of a plan, and its layout.
const FORMAT: &str = "prioritize plan partition 1";

/// The digest of what shapes an account's values and blocks.
fn engine_digest(config: &EngineConfig) -> String {
    let costs: Vec<i64> = Strategy::ALL
        .iter()
        .map(|&s| config.cost_units(s))
        .collect();
    let text = format!(
        "{} costs {costs:?} rules {:?} challenger {:?}",
        env!("CARGO_PKG_VERSION"),
        config.rules,
        config.challenger.as_ref().map(|c| c.share)
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn column_name(kind: &str, strategy: usize) -> String {
    format!("{kind}.{}", Strategy::ALL[strategy].as_str())
}

/// Writes the partition `part` of a plan, assessed as `book`, to `file` as
/// Parquet.
pub fn write_part(
    book: &Book,
    config: &EngineConfig,
    part: Partition,
    file: &mut File,
) -> Result<(), PlanError> {
    let mut columns: Vec<Column> = vec![
        Column::new("account_id".into(), &book.ids),
        Column::new("currency".into(), &book.currency),
        Column::new("reasons".into(), &book.reasons),
        Column::new("by_challenger".into(), &book.by_challenger),
    ];
    for s in 0..K {
        let values: Vec<Option<i64>> = book.values.iter().map(|v| v[s]).collect();
        let p_pay: Vec<f64> = book.p_pay.iter().map(|p| p[s]).collect();
        let blocked: Vec<Option<&str>> = book
            .blocked
            .iter()
            .map(|b| b[s].map(Rule::as_str))
            .collect();
        columns.push(Column::new(column_name("value", s).into(), values));
        columns.push(Column::new(column_name("p_pay", s).into(), p_pay));
        columns.push(Column::new(column_name("blocked", s).into(), blocked));
    }
    let mut frame = DataFrame::new(columns)?;
    let metadata = vec![
        ("prioritize".to_string(), FORMAT.to_string()),
        ("partition".to_string(), part.to_string()),
        ("day".to_string(), book.day.to_string()),
        ("model_version".to_string(), book.model_version.clone()),
        (
            "challenger".to_string(),
            book.challenger.clone().unwrap_or_default(),
        ),
        ("engine".to_string(), engine_digest(config)),
    ];
    ParquetWriter::new(file)
        .with_key_value_metadata(Some(KeyValueMetadata::from_static(metadata)))
        .finish(&mut frame)?;
    Ok(())
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> PlanError {
    PlanError::Invalid(format!("{}: {what}", path.display()))
}

/// Reads one partition file: what it records and its rows.
fn read_part(path: &Path) -> Result<(PartInfo, DataFrame), PlanError> {
    let file = File::open(path).map_err(|e| invalid(path, e))?;
    let mut reader = ParquetReader::new(file);
    let pairs: BTreeMap<String, String> = reader
        .get_metadata()
        .map_err(|e| invalid(path, e))?
        .key_value_metadata()
        .iter()
        .flatten()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
        .collect();
    if pairs.get("prioritize").map(String::as_str) != Some(FORMAT) {
        return Err(invalid(
            path,
            "not a partition written by `prioritize plan --partition` (of this version)",
        ));
    }
    let field = |key: &str| {
        pairs
            .get(key)
            .cloned()
            .ok_or_else(|| invalid(path, format!("the partition's {key:?} is missing")))
    };
    let info = PartInfo {
        partition: field("partition")?.parse().map_err(|e| invalid(path, e))?,
        day: field("day")?.parse().map_err(|e| invalid(path, e))?,
        model_version: field("model_version")?,
        challenger: Some(field("challenger")?).filter(|c| !c.is_empty()),
        engine: field("engine")?,
    };
    let frame = reader.finish().map_err(|e| invalid(path, e))?;
    Ok((info, frame))
}

/// Reads every partition of a plan into one book in `account_id` order,
/// checking that they are the partitions of one run: each of 0..N once,
/// the same day, models, costs and rules, and no account twice.
pub fn read_parts(paths: &[PathBuf]) -> Result<Book, PlanError> {
    let mut first: Option<(PartInfo, &Path)> = None;
    let mut seen: BTreeMap<u32, &Path> = BTreeMap::new();
    let mut frames: Vec<DataFrame> = Vec::with_capacity(paths.len());
    for path in paths {
        let (info, frame) = read_part(path)?;
        if let Some((head, head_path)) = &first {
            let differs = [
                (
                    "number of partitions",
                    info.partition.count != head.partition.count,
                ),
                ("day", info.day != head.day),
                ("model", info.model_version != head.model_version),
                ("challenger", info.challenger != head.challenger),
                (
                    "costs, rules or challenger share",
                    info.engine != head.engine,
                ),
            ];
            if let Some((what, _)) = differs.iter().find(|(_, d)| *d) {
                return Err(invalid(
                    path,
                    format!(
                        "its {what} differs from that of {} (partition {} for {} by {}, against {} for {} by {}): partitions of one plan come from one run",
                        head_path.display(),
                        info.partition,
                        info.day,
                        info.model_version,
                        head.partition,
                        head.day,
                        head.model_version
                    ),
                ));
            }
        }
        if let Some(other) = seen.insert(info.partition.index, path) {
            return Err(invalid(
                path,
                format!(
                    "partition {} is also {}: give each partition once",
                    info.partition,
                    other.display()
                ),
            ));
        }
        if first.is_none() {
            first = Some((info, path));
        }
        frames.push(frame);
    }
    let Some((info, _)) = first else {
        return Err(PlanError::Invalid("--merge: no partition given".into()));
    };
    let missing: Vec<String> = (0..info.partition.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{}", info.partition.count))
        .collect();
    if !missing.is_empty() {
        return Err(PlanError::Invalid(format!(
            "--merge: partition(s) {} missing: a plan needs every partition",
            missing.join(", ")
        )));
    }
    let mut frames = frames.into_iter();
    let mut whole = frames.next().expect("at least one partition");
    for frame in frames {
        whole.vstack_mut_owned(frame)?;
    }
    let whole = whole.sort(["account_id"], SortMultipleOptions::default())?;
    book_of(whole, info)
}

/// The book of a merged frame (sorted by `account_id`).
fn book_of(frame: DataFrame, info: PartInfo) -> Result<Book, PlanError> {
    let texts = |name: &str| -> Result<Vec<String>, PlanError> {
        Ok(frame
            .column(name)?
            .str()?
            .iter()
            .map(|t| t.unwrap_or("").to_string())
            .collect())
    };
    let ids = texts("account_id")?;
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(PlanError::Invalid(format!(
            "--merge: account {:?} is in two partitions: were they written from different data folders?",
            pair[0]
        )));
    }
    let n = ids.len();
    let mut values: Vec<Values> = vec![[None; K]; n];
    let mut p_pay: Vec<[f64; K]> = vec![[0.0; K]; n];
    let mut blocked: Vec<[Option<Rule>; K]> = vec![[None; K]; n];
    for s in 0..K {
        let value = frame.column(&column_name("value", s))?.i64()?;
        for (row, v) in value.iter().enumerate() {
            values[row][s] = v;
        }
        let p = frame.column(&column_name("p_pay", s))?.f64()?;
        for (row, v) in p.iter().enumerate() {
            p_pay[row][s] = v.unwrap_or(0.0);
        }
        let rules = frame.column(&column_name("blocked", s))?.str()?;
        for (row, rule) in rules.iter().enumerate() {
            blocked[row][s] = match rule {
                None => None,
                Some(name) => Some(Rule::named(name).ok_or_else(|| {
                    PlanError::Invalid(format!(
                        "--merge: account {:?}: {name:?} is not a rule",
                        ids[row]
                    ))
                })?),
            };
        }
    }
    let by_challenger: Vec<bool> = frame
        .column("by_challenger")?
        .bool()?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect();
    Ok(Book {
        day: info.day,
        currency: texts("currency")?,
        reasons: texts("reasons")?,
        ids,
        // What only the assessment used: a merged book carries the decision's inputs.
        days_past_due: Vec::new(),
        balance: Vec::new(),
        states: Vec::new(),
        amount: Vec::new(),
        risk: Vec::new(),
        blocked,
        p_pay,
        values,
        model_version: info.model_version,
        challenger: info.challenger,
        by_challenger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_i_of_n_from_0() {
        assert_eq!(
            "3/4".parse::<Partition>(),
            Ok(Partition { index: 3, count: 4 })
        );
        for bad in ["4/4", "1", "a/4", "0/0", "-1/4"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn people_spread_over_the_partitions_evenly_and_stably() {
        let mut counts = [0u32; 4];
        for person in 0..40_000 {
            counts[Partition::of_person(&format!("C{person:07}"), 4) as usize] += 1;
        }
        for count in counts {
            assert!((9_500..10_500).contains(&count), "{counts:?}");
        }
    }
}
