//! `prioritize serve` and `prioritize keygen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use rand::RngCore;

use crate::cli::EngineArgs;
use crate::contract::Role;
use crate::serve::config::ServeConfig;
use crate::serve::{self, key_hash, ServeOptions};

/// What `serve` was asked for.
pub struct ServeArgs {
    pub data: PathBuf,
    pub model: PathBuf,
    pub models: Option<PathBuf>,
    pub db: Option<String>,
    pub listen: SocketAddr,
    pub as_of: Option<NaiveDate>,
    pub retention_days: u32,
    pub engine: EngineArgs,
}

/// The default store: `prioritize.db` in the data folder.
pub fn default_db(data: &std::path::Path) -> String {
    format!("sqlite://{}", data.join("prioritize.db").display())
}

/// Serves until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<String> {
    let config = super::plan::engine_config(&args.engine)?;
    let server = match &args.engine.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    let options = ServeOptions {
        db: args.db.unwrap_or_else(|| default_db(&args.data)),
        data: args.data,
        model: args.model,
        models: args.models,
        listen: args.listen,
        config,
        server,
        as_of: args.as_of,
        retention_days: args.retention_days,
    };
    serve_blocking(options, |address| {
        println!("serving on http://{address} (API docs: http://{address}/docs); Ctrl-C stops");
    })?;
    Ok("stopped".into())
}

/// Runs the server on a tokio runtime of its own.
pub fn serve_blocking(options: ServeOptions, ready: impl FnOnce(SocketAddr) + Send) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let app = serve::prepare(options).await?;
        serve::serve(app, ready).await
    })
}

/// A new random key (32 bytes, hex).
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("pk_{}", hex::encode(bytes))
}

/// Prints a new key and its config entry.
pub fn keygen(role: &str) -> Result<String> {
    role.parse::<Role>()
        .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    let key = new_key();
    Ok(format!(
        "key (give it to the caller; it is not stored anywhere): {key}\n\n\
         add to the config file:\n[[api_keys]]\nrole = \"{role}\"\nkey_sha256 = \"{}\"",
        key_hash(&key)
    ))
}
