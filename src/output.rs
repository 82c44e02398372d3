//! Writing outputs so that a failure leaves nothing partial behind: every
//! file is written to a temporary name, flushed to disk, then renamed into
//! place; a table folder is built beside its target and swapped in whole.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;

use crate::contract::schema::TABLES;
use crate::contract::Format;

/// Writes a frame as CSV or Parquet to `file` (no atomicity: see [`write_frame`]).
fn write_to(frame: &mut DataFrame, file: &mut File, format: Format) -> PolarsResult<()> {
    match format {
        Format::Csv => CsvWriter::new(&mut *file)
            .include_header(true)
            .with_date_format(Some("%Y-%m-%d".into()))
            .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%:z".into()))
            .finish(frame),
        Format::Parquet => ParquetWriter::new(&mut *file)
            // Level 1: about as small as the default here, and faster to write.
            .with_compression(ParquetCompression::Zstd(ZstdLevel::try_new(1).ok()))
            .finish(frame)
            .map(|_| ()),
    }
}

fn temporary_sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("flushing folder {}", dir.display()))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes one frame durably: a temporary file, flushed, renamed onto `path`.
pub fn write_frame(frame: &mut DataFrame, path: &Path, format: Format) -> Result<()> {
    write_durably(path, |file| Ok(write_to(frame, file, format)?))
}

/// Writes a text file durably, as [`write_frame`] does.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_durably(path, |file| {
        Ok(std::io::Write::write_all(file, text.as_bytes())?)
    })
}

/// Writes `path` through `write` into a temporary sibling, flushes it and
/// renames it into place: a reader sees the old file or the whole new one.
pub fn write_durably(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let parent = parent_of(path);
    fs::create_dir_all(&parent).with_context(|| format!("creating folder {}", parent.display()))?;
    let temporary = temporary_sibling(path, "tmp");
    let written = (|| -> Result<()> {
        let mut file = File::create(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        write(&mut file).with_context(|| format!("writing {}", path.display()))?;
        file.sync_all()
            .with_context(|| format!("flushing {}", path.display()))?;
        fs::rename(&temporary, path)
            .with_context(|| format!("moving output into place at {}", path.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    sync_dir(&parent)
}

/// Whether a file name is one this project writes into a table folder.
fn is_table_file(name: &str) -> bool {
    TABLES
        .iter()
        .any(|t| name == format!("{}.csv", t.name) || name == format!("{}.parquet", t.name))
}

/// Writes a set of named tables as a data folder at `dir`, all or nothing.
/// An existing folder is replaced only if it holds nothing but table files.
pub fn write_tables(
    dir: &Path,
    tables: &mut [(&str, &mut DataFrame)],
    format: Format,
) -> Result<()> {
    let names: Vec<String> = tables
        .iter()
        .map(|(name, _)| format!("{name}.{}", format.extension()))
        .collect();
    write_folder(dir, "data table", is_table_file, &names, |index, file| {
        let (name, frame) = &mut tables[index];
        write_to(frame, file, format).with_context(|| format!("writing {name}"))
    })
}

/// Builds a folder of `names` beside `dir` (`write(i, file)` fills file `i`),
/// flushes every file, then swaps it in for `dir`, all or nothing. An existing
/// `dir` is replaced only if every file in it passes `owned` (a `what`).
pub fn write_folder(
    dir: &Path,
    what: &str,
    owned: impl Fn(&str) -> bool,
    names: &[String],
    mut write: impl FnMut(usize, &mut File) -> Result<()>,
) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a folder", dir.display());
        }
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !owned(&name) {
                bail!(
                    "{} already holds {name}, which is not a {what}; choose a new or empty folder",
                    dir.display()
                );
            }
        }
    }
    let parent = parent_of(dir);
    fs::create_dir_all(&parent).with_context(|| format!("creating folder {}", parent.display()))?;
    let staging = temporary_sibling(dir, "tmp");
    let built = (|| -> Result<()> {
        fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        for (index, name) in names.iter().enumerate() {
            let path = staging.join(name);
            let mut file =
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            write(index, &mut file)?;
            file.sync_all()
                .with_context(|| format!("flushing {}", path.display()))?;
        }
        sync_dir(&staging)
    })();
    if let Err(error) = built {
        let _ = fs::remove_dir_all(&staging);
        return Err(error);
    }
    let retired = temporary_sibling(dir, "old");
    if dir.exists() {
        fs::rename(dir, &retired)
            .with_context(|| format!("moving the old {} aside", dir.display()))?;
    }
    if let Err(error) = fs::rename(&staging, dir) {
        // Put the old folder back where it was rather than strand it.
        if retired.exists() {
            let _ = fs::rename(&retired, dir);
        }
        let _ = fs::remove_dir_all(&staging);
        return Err(error).with_context(|| format!("moving the new folder into {}", dir.display()));
    }
    if retired.exists() {
        fs::remove_dir_all(&retired)
            .with_context(|| format!("removing the old folder {}", retired.display()))?;
    }
    sync_dir(&parent)
}

/// Writes the contract's four tables (accounts, payment_history, actions,
/// outcomes, in that order) as a data folder, all or nothing.
pub fn write_data_folder(dir: &Path, tables: [&mut DataFrame; 4], format: Format) -> Result<()> {
    let [accounts, history, actions, outcomes] = tables;
    write_tables(
        dir,
        &mut [
            (TABLES[0].name, accounts),
            (TABLES[1].name, history),
            (TABLES[2].name, actions),
            (TABLES[3].name, outcomes),
        ],
        format,
    )
}
