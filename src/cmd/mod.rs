//! One file per command: parse nothing here, only run what `cli` parsed.

pub mod backtest;
pub mod demo;
pub mod evaluate;
pub mod evaluate_policy;
pub mod features;
pub mod import_uci;
pub mod outcomes;
pub mod plan;
pub mod score;
pub mod serve;
pub mod simulate;
pub mod train;
pub mod validate;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner with a message, for a long step of unknown length.
/// Hidden when standard error is not a terminal.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A progress bar counting `total` items.
pub fn counter(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} ({{elapsed}}, {{eta}} left)");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}
