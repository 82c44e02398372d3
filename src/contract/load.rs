//! Reading a data folder's tables from CSV or Parquet into typed frames.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::error::{at_column, ContractError, Problem, Problems};
use super::parse::{canonical_dtype, check_allowed_values, to_canonical};
use super::schema::{ColumnType, TableSpec, SENSITIVE_COLUMNS};

/// The file formats a table may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// Where a table of a data folder is, if it is there.
pub fn find_table(
    dir: &Path,
    spec: &TableSpec,
) -> Result<Option<(PathBuf, Format)>, ContractError> {
    let csv = dir.join(format!("{}.csv", spec.name));
    let parquet = dir.join(format!("{}.parquet", spec.name));
    match (csv.is_file(), parquet.is_file()) {
        (true, true) => Err(ContractError::Folder {
            path: dir.to_path_buf(),
            what: format!(
                "both {0}.csv and {0}.parquet are present; keep one",
                spec.name
            ),
        }),
        (true, false) => Ok(Some((csv, Format::Csv))),
        (false, true) => Ok(Some((parquet, Format::Parquet))),
        (false, false) => Ok(None),
    }
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_error(file: &str) -> impl Fn(PolarsError) -> ContractError + '_ {
    move |source| ContractError::Read {
        file: file.to_string(),
        source,
    }
}

/// Finds the first record of a CSV file whose shape is wrong (a different
/// number of fields than the header, often from an unclosed quote or a comma
/// inside a number). Only called after the fast reader refused the file.
fn csv_structure_problem(path: &Path, file: &str) -> Option<Problem> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .ok()?;
    let width = reader.headers().ok()?.len();
    for (index, record) in reader.records().enumerate() {
        let (found, line) = match record {
            Ok(record) if record.len() == width => continue,
            Ok(record) => (
                record.len(),
                record.position().map(|p| p.line()).unwrap_or(0),
            ),
            Err(error) => match error.kind() {
                csv::ErrorKind::UnequalLengths { len, pos, .. } => {
                    (*len as usize, pos.as_ref().map(|p| p.line()).unwrap_or(0))
                }
                _ => {
                    let message = format!("unreadable record: {error}");
                    return Some(Problem {
                        file: file.into(),
                        row: Some(index + 1),
                        column: None,
                        message,
                    });
                }
            },
        };
        let hint = if found < width {
            " (an unclosed quote?)"
        } else {
            " (a comma inside a value?)"
        };
        let message = format!(
            "record starting on line {line} has {found} fields, the header has {width}{hint}"
        );
        return Some(Problem {
            file: file.into(),
            row: Some(index + 1),
            column: None,
            message,
        });
    }
    None
}

/// Reads the raw columns of a table file: CSV as text, Parquet as stored,
/// restricted to the columns the contract knows.
fn read_raw(path: &Path, format: Format, spec: &TableSpec) -> Result<DataFrame, ContractError> {
    let file = file_label(path);
    let io = |source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    };
    let frame = match format {
        Format::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_raise_if_empty(false)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .map_err(|error| match csv_structure_problem(path, &file) {
                Some(problem) => ContractError::Invalid(problem),
                None => read_error(&file)(error),
            })?,
        Format::Parquet => {
            let mut reader = ParquetReader::new(File::open(path).map_err(io)?);
            let schema = reader.schema().map_err(read_error(&file))?;
            reader
                .with_columns(Some(known_columns(&file, spec, &schema)))
                .finish()
                .map_err(read_error(&file))?
        }
    };
    if format == Format::Csv {
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        warn_unknown(&file, spec, &names);
    }
    Ok(frame)
}

/// The columns of a Parquet file's `schema` that the contract knows; the
/// others are named in a warning and never read.
fn known_columns(file: &str, spec: &TableSpec, schema: &ArrowSchema) -> Vec<String> {
    let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    warn_unknown(file, spec, &names);
    names
        .into_iter()
        .filter(|n| spec.column(n).is_some())
        .collect()
}

fn warn_unknown(file: &str, spec: &TableSpec, names: &[String]) {
    for name in names.iter().filter(|n| spec.column(n).is_none()) {
        if SENSITIVE_COLUMNS.contains(&name.to_ascii_lowercase().as_str()) {
            tracing::warn!(file, column = %name, "column dropped: direct identifiers and protected attributes never enter the service");
        } else {
            tracing::warn!(file, column = %name, "unknown column ignored");
        }
    }
}

/// Loads one table into its canonical columns, in the order of the contract.
/// Returns `None` when an optional table is absent from the folder.
pub fn load_table(
    dir: &Path,
    spec: &TableSpec,
    problems: &mut Problems,
) -> Result<Option<DataFrame>, ContractError> {
    Ok(load_table_without(dir, spec, None, problems)?.map(|cut| cut.frame))
}

/// The name of the row number a filtered read carries until typing is done.
const FILE_ROW: &str = "__prioritize_file_row";

/// A table loaded without some accounts' rows.
pub struct Cut {
    pub frame: DataFrame,
    /// The 0-based row in the file of each row of `frame`; `None` when
    /// nothing was left out.
    pub file_rows: Option<Vec<IdxSize>>,
}

impl Cut {
    /// Puts a problem found in `frame` back to its row in the file.
    pub fn to_file(&self, error: ContractError) -> ContractError {
        match (error, &self.file_rows) {
            (ContractError::Invalid(mut problem), Some(rows)) => {
                problem.row = problem.row.map(|row| rows[row - 1] as usize + 1);
                ContractError::Invalid(problem)
            }
            (error, _) => error,
        }
    }
}

/// Loads one table as [`load_table`] does, leaving out the rows of the
/// accounts in `without` (a String series of account ids). From Parquet
/// the rows left out are dropped as the file is read, so they never take
/// memory; a CSV file is read whole and then cut. A problem names its row
/// in the file either way.
pub fn load_table_without(
    dir: &Path,
    spec: &TableSpec,
    without: Option<&Series>,
    problems: &mut Problems,
) -> Result<Option<Cut>, ContractError> {
    let Some((path, format)) = find_table(dir, spec)? else {
        if spec.required {
            return Err(ContractError::Folder {
                path: dir.to_path_buf(),
                what: format!("missing required table {0}.csv or {0}.parquet", spec.name),
            });
        }
        tracing::info!(table = spec.name, "table absent: read as empty");
        return Ok(None);
    };
    let file = file_label(&path);
    let started = std::time::Instant::now();
    let (raw, file_rows) = match without {
        Some(without) if format == Format::Parquet => read_parquet_without(&path, spec, without)?,
        _ => (read_raw(&path, format, spec)?, None),
    };
    let read = started.elapsed();
    let cut = match file_rows {
        None => {
            let frame = typed_table(&file, spec, raw, problems)?;
            match without {
                Some(without) => leave_out(&file, frame, without)?,
                None => Cut {
                    frame,
                    file_rows: None,
                },
            }
        }
        Some(file_rows) => {
            // Problems name the rows of the cut frame: they are put back to
            // the file's own before anyone sees them.
            let cut = Cut {
                frame: DataFrame::empty(),
                file_rows: Some(file_rows),
            };
            let mut found = problems.fresh();
            let frame = typed_table(&file, spec, raw, &mut found).map_err(|e| cut.to_file(e))?;
            let rows = cut.file_rows.as_deref().unwrap_or_default();
            found.map_rows(|row| rows[row - 1] as usize + 1);
            problems.absorb(found)?;
            Cut { frame, ..cut }
        }
    };
    tracing::info!(
        file,
        rows = cut.frame.height(),
        read_s = read.as_secs_f64(),
        typed_and_checked_s = (started.elapsed() - read).as_secs_f64(),
        "table loaded"
    );
    Ok(Some(cut))
}

/// The rows of `frame` (with a String `account_id`) whose account is not in
/// `without`; rows without an account are kept, for the checks to refuse.
fn account_not_in(without: &Series) -> Expr {
    col("account_id")
        .is_in(lit(without.clone()).implode(), false)
        .not()
        .or(col("account_id").is_null())
}

/// A typed table without the rows of the accounts in `without`.
fn leave_out(file: &str, frame: DataFrame, without: &Series) -> Result<Cut, ContractError> {
    let mut frame = frame
        .lazy()
        .with_row_index(FILE_ROW, None)
        .filter(account_not_in(without))
        .collect()
        .map_err(read_error(file))?;
    let rows = file_rows(&mut frame).map_err(read_error(file))?;
    Ok(Cut {
        frame,
        file_rows: Some(rows),
    })
}

fn file_rows(frame: &mut DataFrame) -> PolarsResult<Vec<IdxSize>> {
    Ok(frame
        .drop_in_place(FILE_ROW)?
        .idx()?
        .into_no_null_iter()
        .collect())
}

/// Reads a Parquet table's known columns without the rows of the accounts
/// in `without`, with each kept row's 0-based row in the file. A file whose
/// `account_id` is not text is read whole (and cut once typed).
fn read_parquet_without(
    path: &Path,
    spec: &TableSpec,
    without: &Series,
) -> Result<(DataFrame, Option<Vec<IdxSize>>), ContractError> {
    let file = file_label(path);
    let io = |source| ContractError::Io {
        path: path.to_path_buf(),
        source,
    };
    let schema = ParquetReader::new(File::open(path).map_err(io)?)
        .schema()
        .map_err(read_error(&file))?;
    let text_ids = schema.get("account_id").is_some_and(|field| {
        matches!(
            field.dtype(),
            ArrowDataType::Utf8 | ArrowDataType::LargeUtf8 | ArrowDataType::Utf8View
        )
    });
    if !text_ids {
        return Ok((read_raw(path, Format::Parquet, spec)?, None));
    }
    let known = known_columns(&file, spec, &schema);
    let total = ParquetReader::new(File::open(path).map_err(io)?)
        .num_rows()
        .map_err(read_error(&file))?;
    let polars = read_error(&file);
    let others: PlHashSet<&str> = without
        .str()
        .map_err(&polars)?
        .into_no_null_iter()
        .collect();
    // A slice of the file at a time, so that only the kept rows of the
    // whole table are ever held; a table's rows of one account are mostly
    // consecutive, so the last account's answer is reused.
    const SLICE: usize = 1 << 20;
    let mut kept: Option<DataFrame> = None;
    let mut rows: Vec<IdxSize> = Vec::new();
    for offset in (0..total).step_by(SLICE) {
        let slice = ParquetReader::new(File::open(path).map_err(io)?)
            .with_columns(Some(known.clone()))
            .with_slice(Some((offset, SLICE)))
            .finish()
            .map_err(&polars)?;
        let ids = slice
            .column("account_id")
            .and_then(|c| c.str().cloned())
            .map_err(&polars)?;
        let mut take: Vec<IdxSize> = Vec::with_capacity(slice.height());
        let mut last: Option<(&str, bool)> = None;
        for (i, id) in ids.iter().enumerate() {
            let keep = match (id, last) {
                (None, _) => true,
                (Some(id), Some((seen, keep))) if id == seen => keep,
                (Some(id), _) => {
                    let keep = !others.contains(id);
                    last = Some((id, keep));
                    keep
                }
            };
            if keep {
                take.push(i as IdxSize);
            }
        }
        rows.extend(take.iter().map(|&i| i + offset as IdxSize));
        let part = slice
            .take(&IdxCa::from_vec("take".into(), take))
            .map_err(&polars)?;
        match &mut kept {
            None => kept = Some(part),
            Some(frame) => {
                frame.vstack_mut_owned(part).map_err(&polars)?;
            }
        }
    }
    let frame = match kept {
        Some(mut frame) => {
            frame.as_single_chunk_par();
            frame
        }
        None => read_raw(path, Format::Parquet, spec)?,
    };
    Ok((frame, Some(rows)))
}

/// Types a table's raw columns (as read from `file`) into its canonical
/// columns, in the order of the contract, and checks them: what loading a
/// file does once the file is read. Each raw column is freed once typed, so
/// that a table is not held twice over (money widened to `Decimal(18, 4)`
/// beside the file's own decimals) while the others are still being read.
pub fn typed_table(
    file: &str,
    spec: &TableSpec,
    mut raw: DataFrame,
    problems: &mut Problems,
) -> Result<DataFrame, ContractError> {
    let rows = raw.height();
    let mut columns = Vec::with_capacity(spec.columns.len());
    for column_spec in spec.columns {
        let column = match raw.drop_in_place(column_spec.name) {
            Ok(found) => {
                super::validate::check_present(file, column_spec, &found, problems)?;
                let typed = to_canonical(file, column_spec, &found, problems)?;
                drop(found);
                typed
            }
            Err(_) if column_spec.required => {
                problems.push(at_column(
                    file,
                    column_spec.name,
                    "required column is missing",
                ))?;
                Column::full_null(
                    column_spec.name.into(),
                    rows,
                    &canonical_dtype(column_spec.ty),
                )
            }
            Err(_) if column_spec.ty == ColumnType::Bool => {
                Column::new_scalar(column_spec.name.into(), Scalar::from(false), rows)
            }
            Err(_) => Column::full_null(
                column_spec.name.into(),
                rows,
                &canonical_dtype(column_spec.ty),
            ),
        };
        let column = if column_spec.ty == ColumnType::Bool {
            // Optional flags default to false where a cell is blank.
            column
                .fill_null(FillNullStrategy::Zero)
                .map_err(read_error(file))?
        } else {
            column
        };
        check_allowed_values(file, column_spec, &column, problems)?;
        columns.push(column);
    }
    let frame = DataFrame::new(columns).map_err(read_error(file))?;
    super::validate::check_table(file, spec, &frame, problems)?;
    Ok(frame)
}

/// An empty frame with a table's canonical columns.
pub fn empty_table(spec: &TableSpec) -> DataFrame {
    let columns = spec
        .columns
        .iter()
        .map(|c| Column::full_null(c.name.into(), 0, &canonical_dtype(c.ty)))
        .collect();
    DataFrame::new(columns).expect("distinct column names")
}

/// Runs `work` on every item in a thread of its own, each with a fresh
/// problem list like `problems`; returns the results in the items' order.
fn side_by_side<T: Sync, R: Send>(
    problems: &Problems,
    items: &[T],
    work: impl Fn(&T, &mut Problems) -> Result<R, ContractError> + Sync,
) -> Vec<(Result<R, ContractError>, Problems)> {
    std::thread::scope(|scope| {
        let work = &work;
        let running: Vec<_> = items
            .iter()
            .map(|item| {
                let mut found = problems.fresh();
                scope.spawn(move || (work(item, &mut found), found))
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The four tables of a data folder, typed and checked against the contract.
#[derive(Debug, Clone)]
pub struct DataSet {
    pub accounts: DataFrame,
    pub payment_history: DataFrame,
    pub actions: DataFrame,
    pub outcomes: DataFrame,
}

impl DataSet {
    /// Types and checks four tables held in memory (accounts, payment
    /// history, actions, outcomes) exactly as [`DataSet::load`] does files,
    /// stopping at the first problem; each table is named `label/TABLE`.
    pub fn from_frames(label: &str, frames: [DataFrame; 4]) -> Result<DataSet, ContractError> {
        use super::schema::{ACCOUNTS, ACTIONS, OUTCOMES, PAYMENT_HISTORY};
        let mut problems = Problems::fail_fast();
        let specs = [&ACCOUNTS, &PAYMENT_HISTORY, &ACTIONS, &OUTCOMES];
        let file = |spec: &TableSpec| format!("{label}/{}", spec.name);
        let mut typed = Vec::with_capacity(4);
        for (spec, raw) in specs.iter().zip(frames) {
            typed.push(typed_table(&file(spec), spec, raw, &mut problems)?);
        }
        let [accounts, payment_history, actions, outcomes]: [DataFrame; 4] =
            typed.try_into().expect("four tables");
        {
            let ids = super::validate::KnownAccounts::of(&file(&ACCOUNTS), &accounts)?;
            for (spec, frame) in [
                (&PAYMENT_HISTORY, &payment_history),
                (&ACTIONS, &actions),
                (&OUTCOMES, &outcomes),
            ] {
                super::validate::check_accounts_known(&file(spec), frame, &ids, &mut problems)?;
            }
        }
        Ok(DataSet {
            accounts,
            payment_history,
            actions,
            outcomes,
        })
    }

    /// Loads and checks a data folder, stopping at the first problem.
    pub fn load(dir: &Path) -> Result<DataSet, ContractError> {
        let mut problems = Problems::fail_fast();
        Self::load_with(dir, &mut problems)
    }

    /// Loads the rows of the people `keep` holds (a person is an account's
    /// `customer_id`, else its `account_id`), stopping at the first problem:
    /// the accounts table whole, then the other tables without the rows of
    /// everybody else's accounts, so that a partition of a book holds no
    /// more than its share of them (see [`load_table_without`]). Rows of
    /// accounts the folder does not have are kept, and refused as
    /// [`DataSet::load`] refuses them; rows of other people's accounts are
    /// not checked.
    pub fn load_people(
        dir: &Path,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<DataSet, ContractError> {
        if !dir.is_dir() {
            return Err(ContractError::Folder {
                path: dir.to_path_buf(),
                what: "not a folder".into(),
            });
        }
        use super::schema::{ACCOUNTS, ACTIONS, OUTCOMES, PAYMENT_HISTORY};
        let mut problems = Problems::fail_fast();
        let accounts_file = find_table(dir, &ACCOUNTS)?
            .map(|(p, _)| file_label(&p))
            .unwrap_or_default();
        let accounts =
            load_table(dir, &ACCOUNTS, &mut problems)?.unwrap_or_else(|| empty_table(&ACCOUNTS));
        let (accounts, others) = {
            let column = |name: &str| {
                accounts
                    .column(name)
                    .and_then(|c| c.str().cloned())
                    .map_err(read_error(&accounts_file))
            };
            let (customers, ids) = (column("customer_id")?, column("account_id")?);
            let held: BooleanChunked = customers
                .iter()
                .zip(ids.iter())
                .map(|(customer, id)| Some(keep(customer.or(id).unwrap_or(""))))
                .collect();
            let others = ids.filter(&!&held).map_err(read_error(&accounts_file))?;
            let accounts = accounts.filter(&held).map_err(read_error(&accounts_file))?;
            (accounts, others.into_series())
        };
        let rest = [&PAYMENT_HISTORY, &ACTIONS, &OUTCOMES];
        let parts = side_by_side(&problems, &rest, |spec, found| {
            Ok(
                load_table_without(dir, spec, Some(&others), found)?.unwrap_or_else(|| Cut {
                    frame: empty_table(spec),
                    file_rows: None,
                }),
            )
        });
        let mut cuts = Vec::with_capacity(rest.len());
        for (cut, found) in parts {
            problems.absorb(found)?;
            cuts.push(cut?);
        }
        drop(others);
        {
            let ids = super::validate::KnownAccounts::of(&accounts_file, &accounts)?;
            for (spec, cut) in rest.iter().zip(&cuts) {
                let file = find_table(dir, spec)?
                    .map(|(p, _)| file_label(&p))
                    .unwrap_or_default();
                super::validate::check_accounts_known(&file, &cut.frame, &ids, &mut problems)
                    .map_err(|e| cut.to_file(e))?;
            }
        }
        let [payment_history, actions, outcomes]: [DataFrame; 3] = cuts
            .into_iter()
            .map(|cut| cut.frame)
            .collect::<Vec<_>>()
            .try_into()
            .expect("three tables");
        Ok(DataSet {
            accounts,
            payment_history,
            actions,
            outcomes,
        })
    }

    /// Loads a data folder, recording problems in `problems` (which decides
    /// whether the first one stops the load).
    pub fn load_with(dir: &Path, problems: &mut Problems) -> Result<DataSet, ContractError> {
        if !dir.is_dir() {
            return Err(ContractError::Folder {
                path: dir.to_path_buf(),
                what: "not a folder".into(),
            });
        }
        use super::schema::{ACCOUNTS, ACTIONS, OUTCOMES, PAYMENT_HISTORY};
        // The tables are read side by side, each into a problem list of its
        // own; the lists are then taken in the tables' order, so what is
        // reported is what reading them in turn reports.
        let specs = [&ACCOUNTS, &PAYMENT_HISTORY, &ACTIONS, &OUTCOMES];
        let parts = side_by_side(problems, &specs, |spec, found| {
            Ok(load_table(dir, spec, found)?.unwrap_or_else(|| empty_table(spec)))
        });
        let mut frames = Vec::with_capacity(specs.len());
        for (frame, found) in parts {
            problems.absorb(found)?;
            frames.push(frame?);
        }
        let [accounts, payment_history, actions, outcomes]: [DataFrame; 4] =
            frames.try_into().expect("four tables");
        let data = DataSet {
            accounts,
            payment_history,
            actions,
            outcomes,
        };
        let known = [
            (&PAYMENT_HISTORY, &data.payment_history),
            (&ACTIONS, &data.actions),
            (&OUTCOMES, &data.outcomes),
        ];
        let accounts_file = find_table(dir, &ACCOUNTS)?
            .map(|(p, _)| file_label(&p))
            .unwrap_or_default();
        {
            let ids = super::validate::KnownAccounts::of(&accounts_file, &data.accounts)?;
            let parts = side_by_side(problems, &known, |(spec, frame), found| {
                let file = find_table(dir, spec)?
                    .map(|(p, _)| file_label(&p))
                    .unwrap_or_default();
                super::validate::check_accounts_known(&file, frame, &ids, found)
            });
            for (checked, found) in parts {
                problems.absorb(found)?;
                checked?;
            }
        }
        Ok(data)
    }
}
