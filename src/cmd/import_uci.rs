//! `prioritize import-uci`: the public UCI file as a data folder.

use std::path::Path;

use anyhow::Result;

use crate::cli::TableFormat;
use crate::contract::load::empty_table;
use crate::contract::schema::ACTIONS;
use crate::output::write_data_folder;

/// Imports the file and writes the folder; returns a one-line summary.
pub fn run(input: &Path, out: &Path, format: TableFormat) -> Result<String> {
    let tables = crate::uci::import(input)?;
    let format = super::simulate::resolve_format(format, tables.accounts.height());
    let (mut accounts, mut history, mut outcomes) =
        (tables.accounts, tables.payment_history, tables.outcomes);
    // The file holds no contact history: an empty actions table says so explicitly.
    let mut actions = empty_table(&ACTIONS);
    let counts = (accounts.height(), history.height());
    write_data_folder(
        out,
        [&mut accounts, &mut history, &mut actions, &mut outcomes],
        format,
    )?;
    Ok(format!(
        "imported {} accounts with {} payment cycles into {}",
        counts.0,
        counts.1,
        out.display()
    ))
}
