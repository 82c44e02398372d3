//! `prioritize validate`: every problem of a data folder, not only the first.

use std::path::Path;

use anyhow::{bail, Result};

use crate::contract::{DataSet, Problems};

/// Checks the folder, printing each problem on its own line.
pub fn run(data: &Path, max_problems: usize) -> Result<String> {
    let bar = super::spinner(&format!("checking {}", data.display()));
    let mut problems = Problems::collect(max_problems);
    let loaded = DataSet::load_with(data, &mut problems);
    bar.finish_and_clear();
    let data_set = loaded?;
    if problems.is_empty() {
        return Ok(format!(
            "{} is valid: {} accounts, {} payment cycles, {} actions, {} outcomes",
            data.display(),
            data_set.accounts.height(),
            data_set.payment_history.height(),
            data_set.actions.height(),
            data_set.outcomes.height()
        ));
    }
    for problem in problems.list() {
        println!("{problem}");
    }
    let shown = problems.list().len();
    let more = if problems.total() > shown {
        format!(" (the first {shown} listed)")
    } else {
        String::new()
    };
    bail!(
        "{} problems found in {}{more}",
        problems.total(),
        data.display()
    )
}
