//! Errors of the contract layer: every one names the file, and where it can
//! the row and column, so that a user can open the file and fix the cell.

use std::fmt;
use std::path::PathBuf;

/// Where a problem was found and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's name as the user knows it (`accounts.csv`).
    pub file: String,
    /// 1-based data row (the header is not counted).
    pub row: Option<usize>,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What the contract layer reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A cell, column or table breaks the contract.
    #[error("{0}")]
    Invalid(Problem),
    /// Validation found several problems (only from `validate`, which lists them).
    #[error("{} problems found, the first: {}", .0.len(), .0[0])]
    Many(Vec<Problem>),
    #[error("data folder {}: {what}", .path.display())]
    Folder { path: PathBuf, what: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {}", one_line(.source))]
    Read {
        file: String,
        source: polars::error::PolarsError,
    },
}

/// The first line of a reader's error, cut short: a message must fit on one
/// line and never echo a whole file back.
fn one_line(error: &polars::error::PolarsError) -> String {
    let text = error.to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match first.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None => first.to_string(),
    }
}

/// Problems found so far. In fail-fast mode the first one ends the load;
/// otherwise they are gathered up to a limit and counted past it.
#[derive(Debug)]
pub struct Problems {
    limit: usize,
    fail_fast: bool,
    list: Vec<Problem>,
    total: usize,
}

impl Problems {
    /// Stop at the first problem.
    pub fn fail_fast() -> Self {
        Problems {
            limit: 1,
            fail_fast: true,
            list: Vec::new(),
            total: 0,
        }
    }

    /// Keep going, remembering up to `limit` problems.
    pub fn collect(limit: usize) -> Self {
        Problems {
            limit: limit.max(1),
            fail_fast: false,
            list: Vec::new(),
            total: 0,
        }
    }

    /// An empty list in the same mode, for a part of the work done apart
    /// (see [`Problems::absorb`]).
    pub fn fresh(&self) -> Self {
        Problems {
            limit: self.limit,
            fail_fast: self.fail_fast,
            list: Vec::new(),
            total: 0,
        }
    }

    /// Adds the problems of a part done apart, after those already here:
    /// parts absorbed in the order they would have run in give the list
    /// that running them in turn gives.
    pub fn absorb(&mut self, part: Problems) -> Result<(), ContractError> {
        // Those the part counted past its own limit.
        let unlisted = part.total - part.list.len();
        for problem in part.list {
            self.push(problem)?;
        }
        self.total += unlisted;
        Ok(())
    }

    /// Records a problem; in fail-fast mode returns it as the error.
    pub fn push(&mut self, problem: Problem) -> Result<(), ContractError> {
        if self.fail_fast {
            return Err(ContractError::Invalid(problem));
        }
        self.total += 1;
        if self.list.len() < self.limit {
            self.list.push(problem);
        }
        Ok(())
    }

    /// Renumbers the rows of the problems listed (a part read cut, put back
    /// to its file's rows).
    pub fn map_rows(&mut self, to: impl Fn(usize) -> usize) {
        for problem in &mut self.list {
            problem.row = problem.row.map(&to);
        }
    }

    /// True once the limit is reached: further checks of the same kind can stop.
    pub fn full(&self) -> bool {
        self.list.len() >= self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many problems were found, including those past the limit.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn list(&self) -> &[Problem] {
        &self.list
    }

    /// Turns gathered problems into an error, or `Ok` if there were none.
    pub fn into_result(self) -> Result<(), ContractError> {
        if self.list.is_empty() {
            Ok(())
        } else if self.list.len() == 1 {
            Err(ContractError::Invalid(
                self.list.into_iter().next().expect("one problem"),
            ))
        } else {
            Err(ContractError::Many(self.list))
        }
    }
}

/// Shorthand for a problem at a cell.
pub fn at_cell(file: &str, row: usize, column: &str, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        row: Some(row),
        column: Some(column.to_string()),
        message: message.into(),
    }
}

/// Shorthand for a problem with a whole column.
pub fn at_column(file: &str, column: &str, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_string(),
        row: None,
        column: Some(column.to_string()),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(n: usize) -> Problem {
        at_cell("t.csv", n, "c", "bad")
    }

    #[test]
    fn parts_absorbed_in_order_list_what_pushing_in_turn_lists() {
        let sizes = [2, 0, 5, 1];
        let mut in_turn = Problems::collect(4);
        let mut n = 0;
        for size in sizes {
            for _ in 0..size {
                n += 1;
                in_turn.push(problem(n)).expect("collecting");
            }
        }
        let mut whole = Problems::collect(4);
        let mut n = 0;
        for size in sizes {
            let mut part = whole.fresh();
            for _ in 0..size {
                n += 1;
                part.push(problem(n)).expect("collecting");
            }
            whole.absorb(part).expect("collecting");
        }
        assert_eq!(whole.list(), in_turn.list());
        assert_eq!(whole.total(), 8);
        assert_eq!(in_turn.total(), 8);
        let rows: Vec<_> = whole.list().iter().map(|p| p.row).collect();
        assert_eq!(rows, [Some(1), Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn a_fresh_list_fails_fast_like_its_parent() {
        let mut part = Problems::fail_fast().fresh();
        assert!(part.push(problem(1)).is_err());
    }
}
