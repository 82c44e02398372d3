//! prioritize: predicts each delinquent account's chance of paying, picks the
//! collection strategy worth most within the law, and serves ranked worklists.
//!
//! Data flows one way: `contract` (tables) → `features` → `model` →
//! `strategy` → `serve` (its `planning`, `store`, then `api`). A lower layer
//! never imports a higher one; `ARCHITECTURE.md` states the order and
//! `tests/layers.rs` holds the code to it.

pub mod backtest;
pub mod cli;
pub mod cmd;
pub mod contract;
pub mod features;
pub mod model;
pub mod output;
pub mod serve;
pub mod simulate;
pub mod strategy;
pub mod uci;
