//! What `serve` reads from the config file beside the engine's settings:
//! `[[api_keys]]` and `[limits]` (see `strategy::config` for the whole file,
//! whose parser leaves these two tables to this one).
//!
//! ```toml
//! [limits]
//! header_read_timeout_seconds = 30   # a connection must send its headers within this
//! body_read_timeout_seconds = 10     # and a request's body within this
//! max_concurrent_requests = 1024     # more at once are shed with 503 + Retry-After
//!                                    # (health, readiness and metrics never are)
//! per_key_per_second = 50            # optional: each key's sustained request rate (429 above it)
//! per_key_burst = 100                # optional: requests a key may make at once (default: the rate)
//!
//! [[api_keys]]
//! role = "collector"
//! key_sha256 = "…"
//! id = "desk-17"                 # optional: its name in logs and the audit (default: 12 hex digits of the hash)
//! agent_id = "a17"               # optional: it may only lease, page and act as this agent
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::contract::Role;
use crate::strategy::config::{parse_toml, ConfigError};

/// An API key entry: the role it grants and the hex SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub role: Role,
    pub key_sha256: String,
    /// The key's name in logs and the audit table (default: the first 12 hex
    /// digits of `key_sha256`).
    #[serde(default)]
    pub id: Option<String>,
    /// The agent a key is bound to: it may only lease, page and act as that
    /// agent, and it is the default `agent_id` of its requests.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// What `serve` allows a connection, the server and each key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A connection that has not sent a request's headers within this is closed.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// A request body must arrive within this (the key is checked before the
    /// body is read, so only a known key's slow body holds a slot this long).
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_seconds: u64,
    /// Requests handled at once; more are refused at once with 503.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// Each key's sustained rate of requests per second (none: no limit).
    pub per_key_per_second: Option<u32>,
    /// Requests a key may make in a burst (default: `per_key_per_second`).
    pub per_key_burst: Option<u32>,
}

fn default_header_read_timeout() -> u64 {
    30
}

fn default_body_read_timeout() -> u64 {
    10
}

fn default_max_concurrent() -> usize {
    1024
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_seconds: default_header_read_timeout(),
            body_read_timeout_seconds: default_body_read_timeout(),
            max_concurrent_requests: default_max_concurrent(),
            per_key_per_second: None,
            per_key_burst: None,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), String> {
        if self.header_read_timeout_seconds == 0 {
            return Err("limits.header_read_timeout_seconds: must be at least 1".into());
        }
        if self.body_read_timeout_seconds == 0 {
            return Err("limits.body_read_timeout_seconds: must be at least 1".into());
        }
        if self.max_concurrent_requests == 0 {
            return Err("limits.max_concurrent_requests: must be at least 1".into());
        }
        if self.per_key_per_second == Some(0) {
            return Err(
                "limits.per_key_per_second: must be at least 1 (leave it out for no limit)".into(),
            );
        }
        match (self.per_key_per_second, self.per_key_burst) {
            (_, Some(0)) => Err("limits.per_key_burst: must be at least 1".into()),
            (None, Some(_)) => Err("limits.per_key_burst: needs limits.per_key_per_second".into()),
            _ => Ok(()),
        }
    }
}

/// The keys and limits of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeConfig {
    /// Checked: 64 hex digits (lower case), ids unique and 1–64 characters,
    /// a key's entries agreeing on its id and agent.
    pub api_keys: Vec<ApiKey>,
    pub limits: Limits,
}

/// The two tables of the file that are `serve`'s; the engine's tables are
/// `strategy::config`'s to check (unknown fields there are refused).
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    api_keys: Vec<ApiKey>,
    limits: Option<Limits>,
}

impl ServeConfig {
    /// The `[[api_keys]]` and `[limits]` of the TOML file at `path`.
    pub fn from_file(path: &Path) -> Result<ServeConfig, ConfigError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: label.clone(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: label,
            message,
        })
    }

    /// The `[[api_keys]]` and `[limits]` of a TOML document; the error names
    /// the field (and the line, where TOML knows it).
    pub fn from_toml(text: &str) -> Result<ServeConfig, String> {
        let file: FileConfig = parse_toml(text)?;
        let mut keys: Vec<ApiKey> = Vec::new();
        for (n, key) in file.api_keys.into_iter().enumerate() {
            let hash = key.key_sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "api_keys[{n}].key_sha256: expected 64 hex digits (the SHA-256 of the key, never the key)"
                ));
            }
            let id = key.id.clone().unwrap_or_else(|| hash[..12].to_string());
            if id.is_empty() || id.chars().count() > 64 || id == "system" {
                return Err(format!(
                    "api_keys[{n}].id: {id:?} must be 1–64 characters and not \"system\""
                ));
            }
            if keys
                .iter()
                .any(|k| k.id.as_deref() == Some(&id) && k.key_sha256 != hash)
            {
                return Err(format!("api_keys[{n}].id: {id:?} names another key too"));
            }
            if let Some(agent) = &key.agent_id {
                if agent.trim().is_empty() || agent.chars().count() > 200 {
                    return Err(format!("api_keys[{n}].agent_id: expected 1–200 characters"));
                }
            }
            // One key, one identity: its entries (one per role) agree on both.
            if let Some(other) = keys.iter().find(|k| {
                k.key_sha256 == hash && (k.id.as_deref() != Some(&id) || k.agent_id != key.agent_id)
            }) {
                return Err(format!(
                    "api_keys[{n}]: the same key is listed with id {:?} and agent_id {:?} before; \
                     its entries must agree on both",
                    other.id.as_deref().unwrap_or_default(),
                    other.agent_id
                ));
            }
            keys.push(ApiKey {
                role: key.role,
                key_sha256: hash,
                id: Some(id),
                agent_id: key.agent_id,
            });
        }
        let limits = file.limits.unwrap_or_default();
        limits.check()?;
        Ok(ServeConfig {
            api_keys: keys,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

    #[test]
    fn keys_and_limits_are_read_beside_the_engine_tables() {
        let text = format!(
            "explore = 0.1\n[strategies.call]\ncapacity = 5\n[limits]\nper_key_per_second = 3\n\
             [[api_keys]]\nrole = \"manager\"\nkey_sha256 = \"{}\"\n",
            HASH.to_uppercase()
        );
        let config = ServeConfig::from_toml(&text).unwrap();
        assert_eq!(config.limits.per_key_per_second, Some(3));
        assert_eq!(config.limits.header_read_timeout_seconds, 30);
        let key = &config.api_keys[0];
        assert_eq!((key.role, key.key_sha256.as_str()), (Role::Manager, HASH));
        assert_eq!(key.id.as_deref(), Some(&HASH[..12]));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let cases = [
            (format!("[[api_keys]]\nrole = \"root\"\nkey_sha256 = \"{HASH}\"\n"), "line 2: api_keys[0].role"),
            ("[[api_keys]]\nrole = \"admin\"\nkey_sha256 = \"abc\"\n".into(), "api_keys[0].key_sha256"),
            (format!("[[api_keys]]\nrole = \"admin\"\nkey_sha256 = \"{HASH}\"\nid = \"system\"\n"), "api_keys[0].id"),
            (format!("[[api_keys]]\nrole = \"admin\"\nkey_sha256 = \"{HASH}\"\nagent_id = \" \"\n"), "api_keys[0].agent_id"),
            (
                format!(
                    "[[api_keys]]\nrole = \"admin\"\nkey_sha256 = \"{HASH}\"\n\
                     [[api_keys]]\nrole = \"collector\"\nkey_sha256 = \"{HASH}\"\nagent_id = \"a1\"\n"
                ),
                "api_keys[1]: the same key",
            ),
            ("[limits]\nmax_concurrent_requests = 0\n".into(), "limits.max_concurrent_requests"),
            ("[limits]\nper_key_burst = 4\n".into(), "limits.per_key_burst"),
            ("[limits]\nper_key_per_second = 0\n".into(), "limits.per_key_per_second"),
            ("[limits]\nheader_timeout = 4\n".into(), "unknown field `header_timeout`"),
        ];
        for (text, named) in cases {
            let error = ServeConfig::from_toml(&text).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}
