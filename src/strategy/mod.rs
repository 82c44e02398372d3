//! The strategy engine: compliance rules first, then value and allocation.

pub mod rules;
