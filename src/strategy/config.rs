//! Configuration of the strategy engine: each strategy's cost and daily
//! capacity, the compliance rules' parameters, and the exploration share.
//! The defaults are the contract's values; a TOML file (`--config`) and
//! command-line flags override them, flags last.
//!
//! ```toml
//! explore = 0.05                 # share of accounts planned at random
//!
//! [strategies.call]
//! cost = "4.00"                  # per use, in the accounts' currency
//! capacity = 2500                # per planning day; absent = no limit
//!
//! [strategies.legal]
//! eligible_from_dpd = 120        # stricter than the contract's 90
//!
//! [rules]
//! max_calls_in_window = 7
//! call_window_days = 7
//! conversation_cool_off_days = 7
//! calling_hours = ["08:00", "21:00"]
//! max_promise_days = 60          # a promise through the API dated at most this far ahead
//!
//! [[risk_tiers]]                # the segments' risk tiers, by calibrated P(pay);
//! name = "very_high"             # the first starts at 0, each next one higher
//! p_pay_from = 0.0
//! [[risk_tiers]]
//! name = "high"
//! p_pay_from = 0.25
//!
//! [challenger]                   # champion/challenger: a second model plans
//! model = "models/challenger"    # a share of the people (path relative to
//! share = 0.1                    # this file), with its share of capacity
//!
//! [limits]                       # read by `serve` (`serve::config`)
//! max_concurrent_requests = 1024
//!
//! [[api_keys]]                   # read by `serve` (`serve::config`)
//! role = "collector"
//! key_sha256 = "…"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveTime;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::rules::RuleConfig;
use crate::contract::Strategy;

/// Errors in a configuration file or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
}

/// Cost and capacity of one strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyParams {
    /// Cost of one use, in the account's currency.
    pub cost: Decimal,
    /// Uses per planning day; `None` is no limit.
    pub capacity: Option<u64>,
}

/// A risk tier: accounts whose calibrated P(pay) is at least `p_pay_from`
/// and below the next tier's.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RiskTier {
    pub name: String,
    /// P(pay) from which the tier starts.
    pub p_pay_from: f64,
}

/// The default risk tiers: quarters of P(pay), the riskiest first.
pub fn default_risk_tiers() -> Vec<RiskTier> {
    [
        ("very_high", 0.0),
        ("high", 0.25),
        ("medium", 0.5),
        ("low", 0.75),
    ]
    .into_iter()
    .map(|(name, p_pay_from)| RiskTier {
        name: name.into(),
        p_pay_from,
    })
    .collect()
}

/// The index in `tiers` of an account with this P(pay).
pub fn risk_tier_index(tiers: &[RiskTier], p_pay: f64) -> usize {
    tiers
        .iter()
        .rposition(|t| p_pay >= t.p_pay_from)
        .unwrap_or(0)
}

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// By strategy, in the contract's order.
    pub strategies: [StrategyParams; 10],
    pub rules: RuleConfig,
    /// Share of accounts (0–1) planned at random among their allowed strategies.
    pub explore: f64,
    /// Seed of the exploration draw (with the account id and the day).
    pub explore_seed: u64,
    /// Risk tiers of the segments, from the riskiest (lowest P(pay)) up.
    pub risk_tiers: Vec<RiskTier>,
    /// A second model that plans a share of the accounts, if any.
    pub challenger: Option<Challenger>,
}

/// Champion/challenger: the model folder that plans a fixed share of the
/// people (all of a person's accounts fall on one side, on every day), with
/// that share of each capacity; the rest is planned by the live model.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenger {
    pub model: PathBuf,
    /// Share of people (0–1) planned by the challenger.
    pub share: f64,
}

/// Default share of people planned by a challenger.
pub const DEFAULT_CHALLENGER_SHARE: f64 = 0.1;

/// The contract's default cost per use, in strategy order.
pub const DEFAULT_COSTS: [&str; 10] = [
    "0.00", "0.05", "0.02", "4.00", "1.00", "2.00", "1.50", "45.00", "180.00", "0.00",
];

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            strategies: DEFAULT_COSTS.map(|cost| StrategyParams {
                cost: cost.parse().expect("valid default cost"),
                capacity: None,
            }),
            rules: RuleConfig::default(),
            explore: 0.05,
            explore_seed: 0,
            risk_tiers: default_risk_tiers(),
            challenger: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    explore: Option<f64>,
    explore_seed: Option<u64>,
    #[serde(default)]
    strategies: BTreeMap<String, FileStrategy>,
    rules: Option<FileRules>,
    // `serve`'s tables: `serve::config` reads and checks them.
    #[serde(default, rename = "api_keys")]
    _api_keys: Option<toml::Value>,
    #[serde(default, rename = "limits")]
    _limits: Option<toml::Value>,
    risk_tiers: Option<Vec<RiskTier>>,
    challenger: Option<FileChallenger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChallenger {
    model: PathBuf,
    share: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStrategy {
    cost: Option<Decimal>,
    capacity: Option<u64>,
    eligible_from_dpd: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRules {
    max_calls_in_window: Option<u32>,
    call_window_days: Option<i32>,
    conversation_cool_off_days: Option<i32>,
    calling_hours: Option<[String; 2]>,
    max_promise_days: Option<i32>,
}

/// A money amount for a cost: not negative, at most 4 fractional digits.
fn check_cost(cost: Decimal) -> Result<Decimal, String> {
    if cost.is_sign_negative() && !cost.is_zero() {
        return Err(format!("cost {cost} is negative"));
    }
    if cost.normalize().scale() > 4 {
        return Err(format!("cost {cost} has more than 4 fractional digits"));
    }
    Ok(cost)
}

/// Tiers start at 0 and rise strictly below 1, each with a distinct name.
fn check_risk_tiers(tiers: &[RiskTier]) -> Result<(), String> {
    let Some(first) = tiers.first() else {
        return Err("risk_tiers: at least one tier is needed".into());
    };
    if first.p_pay_from != 0.0 {
        return Err(format!(
            "risk_tiers[0].p_pay_from: the first tier must start at 0, not {}",
            first.p_pay_from
        ));
    }
    for (index, tier) in tiers.iter().enumerate() {
        if tier.name.trim().is_empty() {
            return Err(format!("risk_tiers[{index}].name: empty"));
        }
        if tiers[..index].iter().any(|t| t.name == tier.name) {
            return Err(format!(
                "risk_tiers[{index}].name: {:?} is used twice",
                tier.name
            ));
        }
        if index > 0 && !(tier.p_pay_from > tiers[index - 1].p_pay_from && tier.p_pay_from < 1.0) {
            return Err(format!(
                "risk_tiers[{index}].p_pay_from: {} must be above the previous tier's {} and below 1",
                tier.p_pay_from,
                tiers[index - 1].p_pay_from
            ));
        }
    }
    Ok(())
}

/// A TOML document as `T`; the error gives the line, where TOML knows it.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        // The field's path (`api_keys[1].role`) when the error is a value's,
        // not the file's syntax.
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        let message = if path.is_empty() || path == "." {
            message
        } else {
            format!("{path}: {message}")
        };
        match inner.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                format!("line {line}: {message}")
            }
            None => message,
        }
    })
}

fn parse_hour(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| format!("{text:?} is not a time of day as HH:MM"))
}

impl EngineConfig {
    /// The defaults overridden by the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<EngineConfig, ConfigError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: label.clone(),
            source,
        })?;
        let mut config = Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: label,
            message,
        })?;
        // A challenger's folder is found from the file that names it.
        if let Some(challenger) = config.challenger.as_mut() {
            if challenger.model.is_relative() {
                if let Some(dir) = path.parent() {
                    challenger.model = dir.join(&challenger.model);
                }
            }
        }
        Ok(config)
    }

    /// The defaults overridden by a TOML document; the error names the field.
    pub fn from_toml(text: &str) -> Result<EngineConfig, String> {
        let file: FileConfig = parse_toml(text)?;
        let mut config = EngineConfig::default();
        if let Some(share) = file.explore {
            config
                .set_explore(share)
                .map_err(|m| format!("explore: {m}"))?;
        }
        if let Some(seed) = file.explore_seed {
            config.explore_seed = seed;
        }
        for (name, entry) in &file.strategies {
            let strategy =
                Strategy::from_str(name).map_err(|m| format!("[strategies.{name}]: {m}"))?;
            let params = &mut config.strategies[strategy as usize];
            if let Some(cost) = entry.cost {
                params.cost =
                    check_cost(cost).map_err(|m| format!("strategies.{name}.cost: {m}"))?;
            }
            if entry.capacity.is_some() {
                params.capacity = entry.capacity;
            }
            if let Some(floor) = entry.eligible_from_dpd {
                if floor < 0 {
                    return Err(format!(
                        "strategies.{name}.eligible_from_dpd: {floor} is negative"
                    ));
                }
                config.rules.eligible_from_dpd[strategy as usize] = floor;
            }
        }
        if config.strategies[0].capacity.is_some() {
            return Err("strategies.none.capacity: `none` cannot have a capacity".into());
        }
        if let Some(rules) = file.rules {
            let r = &mut config.rules;
            if let Some(v) = rules.max_calls_in_window {
                r.max_calls_in_window = v;
            }
            for (field, value, target) in [
                (
                    "call_window_days",
                    rules.call_window_days,
                    &mut r.call_window_days,
                ),
                (
                    "conversation_cool_off_days",
                    rules.conversation_cool_off_days,
                    &mut r.conversation_cool_off_days,
                ),
                (
                    "max_promise_days",
                    rules.max_promise_days,
                    &mut r.max_promise_days,
                ),
            ] {
                if let Some(days) = value {
                    if days < 0 {
                        return Err(format!("rules.{field}: {days} is negative"));
                    }
                    *target = days;
                }
            }
            if let Some([start, end]) = rules.calling_hours {
                let start = parse_hour(&start).map_err(|m| format!("rules.calling_hours: {m}"))?;
                let end = parse_hour(&end).map_err(|m| format!("rules.calling_hours: {m}"))?;
                if start >= end {
                    return Err("rules.calling_hours: the start must come before the end".into());
                }
                r.calling_hours = (start, end);
            }
        }
        if let Some(tiers) = file.risk_tiers {
            check_risk_tiers(&tiers)?;
            config.risk_tiers = tiers;
        }
        if let Some(challenger) = file.challenger {
            config
                .set_challenger(
                    Some(challenger.model),
                    challenger.share.or(Some(DEFAULT_CHALLENGER_SHARE)),
                )
                .map_err(|m| format!("challenger.share: {m}"))?;
        }
        Ok(config)
    }

    /// Sets the challenger's model folder and share (a share needs a model,
    /// from here or the file, and lies strictly between 0 and 1).
    pub fn set_challenger(
        &mut self,
        model: Option<PathBuf>,
        share: Option<f64>,
    ) -> Result<(), String> {
        let current = self.challenger.take();
        let share = share
            .or(current.as_ref().map(|c| c.share))
            .unwrap_or(DEFAULT_CHALLENGER_SHARE);
        let model = match (model, current) {
            (Some(model), _) => model,
            (None, Some(current)) => current.model,
            (None, None) => return Err("a challenger share needs a challenger model".into()),
        };
        if !(share > 0.0 && share < 1.0) {
            return Err(format!("{share} is not a share strictly between 0 and 1"));
        }
        self.challenger = Some(Challenger { model, share });
        Ok(())
    }

    /// Sets the exploration share, which must lie in 0–1.
    pub fn set_explore(&mut self, share: f64) -> Result<(), String> {
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{share} is not a share between 0 and 1"));
        }
        self.explore = share;
        Ok(())
    }

    /// Applies `--capacity STRATEGY=N` and `--cost STRATEGY=AMOUNT` flags.
    pub fn apply_flags(
        &mut self,
        capacities: &[String],
        costs: &[String],
    ) -> Result<(), ConfigError> {
        for flag in capacities {
            let (strategy, value) = split_flag("--capacity", flag)?;
            if strategy == Strategy::None {
                return Err(ConfigError::Flag {
                    flag: format!("--capacity {flag}"),
                    message: "`none` cannot have a capacity".into(),
                });
            }
            let capacity = value.parse::<u64>().map_err(|_| ConfigError::Flag {
                flag: format!("--capacity {flag}"),
                message: format!("{value:?} is not a whole number of uses per day"),
            })?;
            self.strategies[strategy as usize].capacity = Some(capacity);
        }
        for flag in costs {
            let (strategy, value) = split_flag("--cost", flag)?;
            let cost = Decimal::from_str_exact(value.trim())
                .map_err(|_| format!("{value:?} is not a decimal amount"))
                .and_then(check_cost)
                .map_err(|message| ConfigError::Flag {
                    flag: format!("--cost {flag}"),
                    message,
                })?;
            self.strategies[strategy as usize].cost = cost;
        }
        Ok(())
    }

    /// Cost of one use of `strategy`.
    pub fn cost(&self, strategy: Strategy) -> Decimal {
        self.strategies[strategy as usize].cost
    }

    /// Cost of one use of `strategy` in whole ten-thousandths (the engine's unit).
    pub fn cost_units(&self, strategy: Strategy) -> i64 {
        use rust_decimal::prelude::ToPrimitive;
        (self.cost(strategy) * Decimal::from(10_000))
            .to_i64()
            .expect("a cost fits in i64")
    }

    /// Capacity of `strategy` per planning day, if it has one.
    pub fn capacity(&self, strategy: Strategy) -> Option<u64> {
        self.strategies[strategy as usize].capacity
    }
}

fn split_flag<'a>(name: &str, flag: &'a str) -> Result<(Strategy, &'a str), ConfigError> {
    let problem = |message: String| ConfigError::Flag {
        flag: format!("{name} {flag}"),
        message,
    };
    let (strategy, value) = flag
        .split_once('=')
        .ok_or_else(|| problem("expected STRATEGY=VALUE".into()))?;
    let strategy = Strategy::from_str(strategy.trim()).map_err(problem)?;
    Ok((strategy, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contracts() {
        let config = EngineConfig::default();
        assert_eq!(config.cost(Strategy::Call), Decimal::new(400, 2));
        assert_eq!(config.cost(Strategy::Legal), Decimal::new(18000, 2));
        assert_eq!(config.cost(Strategy::Agency), Decimal::ZERO);
        assert!(Strategy::ALL.iter().all(|s| config.capacity(*s).is_none()));
        assert_eq!(config.explore, 0.05);
        assert_eq!(config.rules.eligible_from_dpd[Strategy::Legal as usize], 90);
    }

    #[test]
    fn file_then_flags_override_the_defaults() {
        let mut config = EngineConfig::from_toml(
            r#"
explore = 0.1
[strategies.call]
cost = "3.50"
capacity = 100
[strategies.legal]
eligible_from_dpd = 120
[rules]
max_calls_in_window = 3
calling_hours = ["09:00", "20:00"]
"#,
        )
        .expect("valid config");
        assert_eq!(config.capacity(Strategy::Call), Some(100));
        assert_eq!(config.cost(Strategy::Call), Decimal::new(350, 2));
        assert_eq!(
            config.rules.eligible_from_dpd[Strategy::Legal as usize],
            120
        );
        assert_eq!(config.rules.max_calls_in_window, 3);
        assert_eq!(config.explore, 0.1);
        config
            .apply_flags(&["call=40".into()], &["sms_reminder=0.07".into()])
            .expect("valid flags");
        assert_eq!(config.capacity(Strategy::Call), Some(40));
        assert_eq!(config.cost(Strategy::SmsReminder), Decimal::new(7, 2));
    }

    #[test]
    fn mistakes_name_the_field_or_flag() {
        let typo = EngineConfig::from_toml("[strategies.call]\ncapacty = 3\n").unwrap_err();
        assert!(
            typo.contains("line 2") && typo.contains("capacty"),
            "{typo}"
        );
        let unknown = EngineConfig::from_toml("[strategies.phone]\ncapacity = 3\n").unwrap_err();
        assert!(unknown.contains("strategies.phone"), "{unknown}");
        let negative = EngineConfig::from_toml("[strategies.call]\ncost = \"-1\"\n").unwrap_err();
        assert!(negative.contains("strategies.call.cost"), "{negative}");
        let hours = EngineConfig::from_toml("[rules]\ncalling_hours = [\"21:00\", \"08:00\"]\n")
            .unwrap_err();
        assert!(hours.contains("rules.calling_hours"), "{hours}");
        let mut config = EngineConfig::default();
        let flag = config
            .apply_flags(&["call=many".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(flag.contains("--capacity call=many"), "{flag}");
        let flag = config
            .apply_flags(&[], &["call=1.23456".into()])
            .unwrap_err()
            .to_string();
        assert!(flag.contains("--cost call=1.23456"), "{flag}");
    }

    #[test]
    fn risk_tiers_come_from_the_file_and_must_rise_from_zero() {
        let config = EngineConfig::from_toml(
            "[[risk_tiers]]\nname = \"red\"\np_pay_from = 0.0\n[[risk_tiers]]\nname = \"green\"\np_pay_from = 0.4\n",
        )
        .expect("valid tiers");
        let names: Vec<&str> = config.risk_tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["red", "green"]);
        assert_eq!(risk_tier_index(&config.risk_tiers, 0.39), 0);
        assert_eq!(risk_tier_index(&config.risk_tiers, 0.4), 1);
        assert_eq!(
            risk_tier_index(&EngineConfig::default().risk_tiers, 0.99),
            3
        );
        for (tiers, field) in [
            (
                "name = \"a\"\np_pay_from = 0.1\n",
                "risk_tiers[0].p_pay_from",
            ),
            (
                "name = \"a\"\np_pay_from = 0.0\n[[risk_tiers]]\nname = \"b\"\np_pay_from = 0.0\n",
                "risk_tiers[1].p_pay_from",
            ),
            (
                "name = \"a\"\np_pay_from = 0.0\n[[risk_tiers]]\nname = \"a\"\np_pay_from = 0.5\n",
                "risk_tiers[1].name",
            ),
        ] {
            let error = EngineConfig::from_toml(&format!("[[risk_tiers]]\n{tiers}")).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
    }

    #[test]
    fn a_challenger_is_found_beside_its_config_file_and_needs_a_share_inside_0_and_1() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("engine.toml");
        std::fs::write(&path, "[challenger]\nmodel = \"models/b\"\n").expect("written");
        let config = EngineConfig::from_file(&path).expect("valid config");
        let challenger = config.challenger.as_ref().expect("a challenger");
        assert_eq!(challenger.model, dir.path().join("models/b"));
        assert_eq!(challenger.share, DEFAULT_CHALLENGER_SHARE);
        // A flag's share keeps the file's model; a flag's model keeps the file's share.
        let mut flagged = config.clone();
        flagged
            .set_challenger(None, Some(0.3))
            .expect("valid share");
        assert_eq!(flagged.challenger.as_ref().map(|c| c.share), Some(0.3));
        flagged
            .set_challenger(Some("other".into()), None)
            .expect("valid model");
        assert_eq!(
            flagged.challenger,
            Some(Challenger {
                model: "other".into(),
                share: 0.3
            })
        );
        for share in ["0", "1", "1.5"] {
            let error =
                EngineConfig::from_toml(&format!("[challenger]\nmodel = \"b\"\nshare = {share}\n"))
                    .unwrap_err();
            assert!(error.contains("challenger.share"), "{error}");
        }
        let error = EngineConfig::default()
            .set_challenger(None, Some(0.2))
            .unwrap_err();
        assert!(error.contains("needs a challenger model"), "{error}");
    }

    #[test]
    fn the_promise_horizon_is_read_and_serves_tables_are_left_to_serve() {
        assert_eq!(EngineConfig::default().rules.max_promise_days, 60);
        let config = EngineConfig::from_toml(
            "[rules]\nmax_promise_days = 14\n[limits]\nheader_read_timeout_seconds = 2\n\
             [[api_keys]]\nrole = \"admin\"\nkey_sha256 = \"ab\"\n",
        )
        .expect("the engine does not read serve's tables");
        assert_eq!(config.rules.max_promise_days, 14);
        for (text, names) in [
            ("[rules]\nmax_promise_days = -1\n", "rules.max_promise_days"),
            ("[limit]\nrequests = 3\n", "unknown field `limit`"),
        ] {
            let error = EngineConfig::from_toml(text).unwrap_err();
            assert!(error.contains(names), "{text}: {error}");
        }
    }
}
