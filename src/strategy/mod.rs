//! The strategy engine: compliance rules first, then value and allocation.

pub mod allocate;
pub mod config;
pub mod judge;
pub mod partition;
pub mod plan;
pub mod policy;
pub mod rules;
pub mod state;
