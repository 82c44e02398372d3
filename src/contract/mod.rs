//! The data contract: the input tables a lender hands the service, their
//! schema, and loading them from CSV or Parquet with checks that name the
//! file, row and column of every problem.

pub mod error;
pub mod load;
pub mod parse;
pub mod schema;
pub mod strategy;
pub mod validate;
pub mod vocab;

pub use error::{ContractError, Problem, Problems};
pub use load::{DataSet, Format};
pub use strategy::Strategy;
pub use vocab::{Channel, Outcome, Role, RunStatus};
