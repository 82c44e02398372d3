//! `prioritize serve`: the worklist API over a store (SQLite or PostgreSQL).
//!
//! On start the server loads the model and the data folder and either takes
//! the stored active plan (same day, model and data) or builds one in the
//! background; `/readyz` says when a plan is in place. Every replica follows
//! the store's active plan, so a plan built by one (a run, a model switch)
//! is served by all.

pub mod api;
pub mod config;
pub mod history;
pub mod outcomes;
pub mod planning;
pub mod problem;
pub mod queues;
pub mod segments;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use anyhow::{Context, Result};
use arc_swap::ArcSwapOption;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{NaiveDate, Utc};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::contract::{DataSet, RunStatus};
use crate::model::folder::{self, ModelMeta};
use crate::model::Model;
use crate::strategy::config::EngineConfig;
use crate::strategy::plan::Arms;
use config::{Limits, ServeConfig};
use problem::Problem;
use queues::{Freshness, Queues, Snapshot};
use store::{Change, Heard, LiveRules, PlanMeta, Store, StoreError};

pub use crate::contract::Role;

/// A configured key: its hash, role, name and the agent it is bound to.
struct KeyEntry {
    hash: String,
    role: Role,
    id: String,
    agent_id: Option<String>,
}

/// Who is calling: the key that authorized a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's `id` (logs and audit).
    pub key_id: String,
    /// The role of the key entry that granted the request.
    pub role: Role,
    /// The agent the key is bound to, if any.
    pub agent_id: Option<String>,
}

impl Caller {
    /// The agent a request acts as: `asked` (a body's or query's
    /// `agent_id`), else the key's own agent. A key bound to an agent may act
    /// as no other.
    pub fn agent(&self, asked: Option<&str>) -> Result<Option<String>, Problem> {
        match (&self.agent_id, asked) {
            (Some(bound), Some(asked)) if bound != asked => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "agent_id: this key is bound to agent {bound:?} and may not act as {asked:?}"
                ),
            )),
            (Some(bound), _) => Ok(Some(bound.clone())),
            (None, asked) => Ok(asked.map(str::to_string)),
        }
    }

    /// The audit's record of the caller acting as `agent`.
    pub fn actor(&self, agent: Option<&str>) -> store::Actor {
        store::Actor {
            key_id: self.key_id.clone(),
            role: self.role.as_str().to_string(),
            agent_id: agent.map(str::to_string),
        }
    }
}

/// The role an endpoint needs, as a type: `Authorized<Collector>` among a
/// handler's arguments checks the bearer key (and its rate limit) from the
/// headers, before any path, query or body is read, so a request without a
/// good key is refused at once and holds no slot while its body trickles in.
pub trait Needs: Send + Sync + 'static {
    /// The roles admitted, the first one the key holds granting the request
    /// (admin holds every role).
    const ROLES: &'static [Role];
}

/// Queues, leases, actions, accounts.
pub struct Collector;
/// Models, runs, outcomes.
pub struct Analyst;
/// Segments, the audit, unblocking.
pub struct Manager;
/// Ending a lease: a collector its own, a manager anyone's.
pub struct CollectorOrManager;

impl Needs for Collector {
    const ROLES: &'static [Role] = &[Role::Collector];
}
impl Needs for Analyst {
    const ROLES: &'static [Role] = &[Role::Analyst];
}
impl Needs for Manager {
    const ROLES: &'static [Role] = &[Role::Manager];
}
impl Needs for CollectorOrManager {
    const ROLES: &'static [Role] = &[Role::Manager, Role::Collector];
}

/// A request whose key holds one of `R`'s roles: who is calling.
pub struct Authorized<R>(pub Caller, std::marker::PhantomData<R>);

impl<R: Needs> axum::extract::FromRequestParts<Arc<App>> for Authorized<R> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, Problem> {
        // Only an endpoint open to several roles asks which one the key
        // holds (each ask hashes the key again).
        let role = match R::ROLES {
            [only] => *only,
            roles => roles
                .iter()
                .copied()
                .find(|role| app.holds(&parts.headers, *role))
                .unwrap_or(roles[roles.len() - 1]),
        };
        app.authorize(&parts.headers, role)
            .map(|caller| Authorized(caller, std::marker::PhantomData))
    }
}

/// The hex SHA-256 of a key, as the config file holds it.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A run that builds and installs a plan.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunInfo {
    pub run_id: u64,
    #[schema(value_type = String, example = "running")]
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The model folder the run plans with.
    pub model: String,
    /// The id of the key that started it (`system`: the server itself).
    pub started_by: String,
    pub plan_id: Option<i64>,
    pub error: Option<String>,
}

/// What makes a stored plan the one to serve: its day, its models and the
/// data it was planned from.
#[derive(Debug, Clone)]
pub struct Current {
    pub day: NaiveDate,
    pub model_version: String,
    pub challenger: Option<String>,
    pub data_hash: String,
}

impl Current {
    pub fn matches(&self, plan: &PlanMeta) -> bool {
        let challenger = serde_json::from_str::<planning::Summary>(&plan.summary)
            .ok()
            .and_then(|s| s.arms.into_iter().find(|a| a.role == "challenger"))
            .map(|a| a.model_version);
        plan.day == self.day
            && plan.model_version == self.model_version
            && challenger == self.challenger
            && plan.data_hash == self.data_hash
    }
}

/// What is served now: the active plan and what goes with it.
pub struct Live {
    pub plan: PlanMeta,
    pub summary: planning::Summary,
    /// Distinct time zones of the plan's accounts.
    pub zones: Vec<(String, chrono_tz::Tz)>,
    /// The plan before it, for what changed.
    pub previous: Option<(PlanMeta, planning::Summary)>,
}

/// Counters and histograms for `/metrics`.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub actions: IntCounter,
    pub leases: IntCounter,
    plan_id: IntGauge,
    plan_accounts: IntGauge,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
                ],
            ),
            &["route", "method"],
        )
        .expect("valid metric");
        let actions = IntCounter::new("prioritize_actions_recorded_total", "Actions recorded")
            .expect("valid metric");
        let leases = IntCounter::new("prioritize_leases_granted_total", "Accounts leased")
            .expect("valid metric");
        let plan_id = IntGauge::new("prioritize_plan_id", "The served plan").expect("valid metric");
        let plan_accounts =
            IntGauge::new("prioritize_plan_accounts", "Accounts in the served plan")
                .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(actions.clone()),
            Box::new(leases.clone()),
            Box::new(plan_id.clone()),
            Box::new(plan_accounts.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            actions,
            leases,
            plan_id,
            plan_accounts,
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Settings of `serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data: PathBuf,
    pub model: PathBuf,
    /// Where other model versions are found (default: beside `model`).
    pub models: Option<PathBuf>,
    pub db: String,
    pub listen: SocketAddr,
    pub config: EngineConfig,
    /// The keys and limits (the config file's `[[api_keys]]` and `[limits]`).
    pub server: ServeConfig,
    /// The planning day; default: today (UTC).
    pub as_of: Option<NaiveDate>,
    /// Days the decisions of a plan are kept for outcomes (see `store::decisions`).
    pub retention_days: u32,
}

/// The server's shared state. Its fields are `serve`'s own: handlers
/// (`api`, `segments`) reach them, nothing outside does.
pub struct App {
    store: Arc<dyn Store>,
    config: EngineConfig,
    limits: Limits,
    live_rules: LiveRules,
    keys: Vec<KeyEntry>,
    /// By key hash, when `[limits] per_key_per_second` is set.
    limiters: HashMap<String, governor::DefaultDirectRateLimiter>,
    options: ServeOptions,
    live: ArcSwapOption<Live>,
    runs: Mutex<Vec<RunInfo>>,
    metrics: Metrics,
    /// The active plan's queues in memory, for page reads.
    queues: Queues,
    /// With PostgreSQL: how a page read knows it has heard every replica's commits.
    freshness: Option<Freshness>,
    /// One snapshot load at a time.
    loading: tokio::sync::Mutex<()>,
    /// Requests in flight, up to `[limits] max_concurrent_requests`.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// With PostgreSQL: until when (Unix µs) pages come from memory without
    /// asking the store, which was just found unreachable. A reconnected
    /// listener clears it.
    store_down_until: AtomicI64,
    /// Cancelled once the accept loop has ended (SIGTERM or Ctrl-C, then the
    /// requests in flight finished): every background task (the change
    /// listener, the follower) stops on it. Until then pages still hear
    /// their freshness markers.
    shutdown: CancellationToken,
}

/// How long pages skip the store after it was found unreachable.
const STORE_DOWN_MICROS: i64 = 2_000_000;

/// Where a page read comes from.
pub enum Pages {
    /// The queues in memory, up to date with every committed change.
    Fresh(Arc<Snapshot>),
    /// The store cannot be reached: the last queues in memory, which may miss
    /// changes other replicas committed just before it went away.
    Stale(Arc<Snapshot>),
    /// Ask the store.
    Store,
}

impl App {
    /// Whether the request's key holds `role` (or admin); no error, no rate
    /// counted: for endpoints that more than one role may call.
    pub fn holds(&self, headers: &HeaderMap, role: Role) -> bool {
        let Some(key) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        let hash = key_hash(key);
        self.keys
            .iter()
            .any(|k| k.hash == hash && k.role.grants(role))
    }

    /// Checks the bearer key against the configured hashes; who is calling.
    pub fn authorize(&self, headers: &HeaderMap, role: Role) -> Result<Caller, Problem> {
        let unauthorized =
            |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("an Authorization: Bearer KEY header is required"))?;
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer KEY"))?;
        let hash = key_hash(key);
        let held: Vec<&KeyEntry> = self.keys.iter().filter(|k| k.hash == hash).collect();
        let Some(first) = held.first() else {
            return Err(unauthorized("the key is not known to this server"));
        };
        tracing::Span::current().record("key_id", first.id.as_str());
        if let Some(limiter) = self.limiters.get(&hash) {
            if let Err(not_until) = limiter.check() {
                use governor::clock::Clock;
                let wait = not_until.wait_time_from(limiter.clock().now());
                let seconds = u32::try_from(wait.as_secs())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!(
                        "this key is over its {} requests a second ([limits] per_key_per_second); retry after {seconds} s",
                        self.limits.per_key_per_second.unwrap_or_default()
                    ),
                )
                .retry_after(seconds));
            }
        }
        if let Some(entry) = held.iter().find(|k| k.role.grants(role)) {
            Ok(Caller {
                key_id: entry.id.clone(),
                role: entry.role,
                agent_id: entry.agent_id.clone(),
            })
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this key has the role {}; this endpoint needs {} (or admin)",
                    held.iter()
                        .map(|k| k.role.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    role.as_str()
                ),
            ))
        }
    }

    /// A change this server committed. SQLite's single process applies it to
    /// the queues at once; with PostgreSQL every replica (this one too)
    /// hears it from the store.
    pub fn committed(&self, change: Change) {
        if self.freshness.is_none() {
            self.queues.apply(change);
        }
    }

    /// The queues to serve a page from, up to date with every change
    /// committed before the call, or the last ones while the store is down.
    pub async fn pages(&self) -> Pages {
        let Some(freshness) = &self.freshness else {
            return self.queues.serving().map_or(Pages::Store, Pages::Fresh);
        };
        if self.store_down() {
            return self.queues.last().map_or(Pages::Store, Pages::Stale);
        }
        if self.queues.serving().is_none() {
            return Pages::Store;
        }
        let store = &self.store;
        let heard = freshness
            .wait(|n| async move {
                match store.send_marker(freshness.replica(), n).await {
                    Ok(()) => true,
                    Err(e) => {
                        self.store_failed(&e);
                        tracing::warn!(error = %e, "sending a freshness marker");
                        false
                    }
                }
            })
            .await;
        match (heard, self.queues.serving()) {
            (true, Some(snapshot)) => Pages::Fresh(snapshot),
            _ if self.store_down() => self.queues.last().map_or(Pages::Store, Pages::Stale),
            _ => Pages::Store,
        }
    }

    /// The queues in memory if they are up to date (see [`App::pages`]).
    pub async fn fresh_queues(&self) -> Option<Arc<Snapshot>> {
        match self.pages().await {
            Pages::Fresh(snapshot) => Some(snapshot),
            _ => None,
        }
    }

    /// Notes a store error: if it means the store is unreachable (PostgreSQL;
    /// a busy store is not), pages come from memory for a while.
    pub fn store_failed(&self, error: &StoreError) {
        if self.freshness.is_some() && error.unreachable() {
            self.mark_store_down();
        }
    }

    fn mark_store_down(&self) {
        let until = Utc::now().timestamp_micros() + STORE_DOWN_MICROS;
        self.store_down_until.store(until, Ordering::SeqCst);
    }

    fn store_down(&self) -> bool {
        self.store_down_until.load(Ordering::SeqCst) > Utc::now().timestamp_micros()
    }

    /// Loads the queues of plan `plan_id` into memory.
    async fn load_queues(&self, plan_id: i64) -> Result<()> {
        let _one = self.loading.lock().await;
        if self.queues.serving().is_some_and(|s| s.plan_id == plan_id) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let generation = self.queues.loading();
        let rows = self.store.queue_rows(plan_id).await?;
        let accounts = rows.len();
        let snapshot =
            tokio::task::spawn_blocking(move || Snapshot::new(plan_id, rows, api::render_item))
                .await
                .context("building the queues")?;
        if !self.queues.install(snapshot, generation) {
            // Invalidated meanwhile; the reload that invalidation asked for follows.
            tracing::info!(plan_id, "queues loaded before a lost listener: dropped");
            return Ok(());
        }
        tracing::info!(
            plan_id,
            accounts,
            seconds = started.elapsed().as_secs_f64(),
            "queues in memory"
        );
        Ok(())
    }

    /// With PostgreSQL: applies every replica's changes as the store hears
    /// them, and reloads the queues when the active plan changes or changes
    /// may have been missed (the listener was lost), until shutdown.
    async fn listen(self: Arc<Self>, mut heard: tokio::sync::mpsc::Receiver<Heard>) {
        loop {
            let next = tokio::select! {
                next = heard.recv() => next,
                _ = self.shutdown.cancelled() => return,
            };
            let Some(next) = next else {
                return;
            };
            match next {
                Heard::Listening => {
                    self.store_down_until.store(0, Ordering::SeqCst);
                    self.queues.invalidate();
                    self.clone().reload_active();
                }
                Heard::Change(Change::Marker { replica, n }) => {
                    if let Some(f) = &self.freshness {
                        if f.replica() == replica {
                            f.heard(n);
                        }
                    }
                }
                Heard::Change(Change::Activated { plan }) => {
                    self.queues.activated(plan);
                    self.clone().reload_active();
                }
                Heard::Change(change) => self.queues.apply(change),
                Heard::Missed => {
                    self.queues.invalidate();
                    self.clone().reload_active();
                }
                Heard::Unreachable(e) => {
                    tracing::warn!(error = %e, "listening for changes; retrying");
                    self.mark_store_down();
                    self.queues.invalidate();
                }
            }
        }
    }

    /// Loads the store's active plan's queues in the background.
    fn reload_active(self: Arc<Self>) {
        tokio::spawn(async move {
            let result = async {
                if let Some(plan) = self.store.active_plan().await? {
                    self.queues.activated(plan.plan_id);
                    self.load_queues(plan.plan_id).await?;
                }
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %format!("{e:#}"), "loading the queues");
            }
        });
    }

    fn models_dir(&self) -> PathBuf {
        self.options.models.clone().unwrap_or_else(|| {
            self.options
                .model
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        })
    }

    /// Model folders beside the served one (and the served one), by version;
    /// folders whose `model.json` does not read are left out.
    pub fn model_folders(&self) -> Vec<(PathBuf, ModelMeta)> {
        let mut dirs = vec![self.options.model.clone()];
        if let Some(challenger) = &self.config.challenger {
            dirs.push(challenger.model.clone());
        }
        let parent = self.models_dir();
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.join("model.json").is_file() && !dirs.contains(&path) {
                    dirs.push(path);
                }
            }
        }
        let mut found: Vec<(PathBuf, ModelMeta)> = Vec::new();
        for dir in dirs {
            let Ok(text) = std::fs::read_to_string(dir.join("model.json")) else {
                continue;
            };
            if let Ok(meta) = serde_json::from_str::<ModelMeta>(&text) {
                if !found.iter().any(|(_, m)| m.version == meta.version) {
                    found.push((dir, meta));
                }
            }
        }
        found.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
        found
    }

    /// Starts a background run that plans with the model in `model_dir`
    /// (default: the served one) and installs the plan.
    pub fn start_run(
        self: Arc<Self>,
        model_dir: Option<PathBuf>,
        actor: store::Actor,
        unless_current: Option<Current>,
    ) -> Result<RunInfo, Problem> {
        let model_dir = model_dir.unwrap_or_else(|| self.current_model_dir());
        let info = {
            let mut runs = self.runs.lock().expect("runs lock");
            if let Some(running) = runs.iter().find(|r| r.status == RunStatus::Running) {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "run-in-progress",
                    format!(
                        "run {} is still building a plan; try again when it is done",
                        running.run_id
                    ),
                ));
            }
            let info = RunInfo {
                run_id: runs.len() as u64 + 1,
                status: RunStatus::Running,
                started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                finished_at: None,
                model: model_dir.display().to_string(),
                started_by: actor.key_id.clone(),
                plan_id: None,
                error: None,
            };
            runs.push(info.clone());
            info
        };
        let app = self.clone();
        let run_id = info.run_id;
        tokio::spawn(async move {
            let result = app
                .clone()
                .build_and_install(model_dir, actor, unless_current)
                .await;
            let mut runs = app.runs.lock().expect("runs lock");
            if let Some(run) = runs.iter_mut().find(|r| r.run_id == run_id) {
                run.finished_at =
                    Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                match result {
                    Ok(plan_id) => {
                        run.status = RunStatus::Done;
                        run.plan_id = Some(plan_id);
                    }
                    Err(e) => {
                        tracing::error!(run_id, error = %format!("{e:#}"), "run failed");
                        run.status = RunStatus::Failed;
                        run.error = Some(format!("{e:#}"));
                    }
                }
            }
        });
        Ok(info)
    }

    /// The folder of the model that made the served plan (else `--model`).
    fn current_model_dir(&self) -> PathBuf {
        let version = self
            .live
            .load()
            .as_ref()
            .map(|l| l.plan.model_version.clone());
        if let Some(version) = version {
            if let Some((dir, _)) = self
                .model_folders()
                .into_iter()
                .find(|(_, m)| m.version == version)
            {
                return dir;
            }
        }
        self.options.model.clone()
    }

    /// Builds and installs a plan, one run at a time across replicas; with
    /// `unless_current`, not when (after waiting for another replica's run)
    /// the active plan is already that.
    async fn build_and_install(
        self: Arc<Self>,
        model_dir: PathBuf,
        actor: store::Actor,
        unless_current: Option<Current>,
    ) -> Result<i64> {
        let lock = self.store.run_lock().await?;
        let result = async {
            if let Some(current) = &unless_current {
                if let Some(active) = self.store.active_plan().await? {
                    if current.matches(&active) {
                        tracing::info!(
                            plan_id = active.plan_id,
                            "another replica installed this plan meanwhile; serving it"
                        );
                        self.follow().await?;
                        return Ok(active.plan_id);
                    }
                }
            }
            self.clone().install(model_dir, actor).await
        }
        .await;
        lock.release().await;
        result
    }

    async fn install(self: Arc<Self>, model_dir: PathBuf, actor: store::Actor) -> Result<i64> {
        let data = self.options.data.clone();
        let config = self.config.clone();
        let day = self
            .options
            .as_of
            .unwrap_or_else(|| Utc::now().date_naive());
        let started = std::time::Instant::now();
        // Actions recorded through the API count as the folder's own.
        let mut recorded = self.store.all_actions().await?;
        // ... less the promises a manager lifted since they were recorded.
        history::lift(&mut recorded, &self.store.lifts().await?);
        let (built, data_hash, data_set, model) =
            tokio::task::spawn_blocking(move || -> Result<_> {
                let mut data_set = DataSet::load(&data)?;
                let (actions, added) = history::merge(&data_set.actions, &recorded)?;
                data_set.actions = actions;
                if added > 0 {
                    tracing::info!(
                        added,
                        "actions recorded through the API join the data folder's"
                    );
                }
                let model: Model = folder::load(&model_dir)?;
                let challenger = challenger_of(&config, &model)?;
                let arms = Arms {
                    champion: &model,
                    challenger: challenger.as_ref().map(|(m, share)| (m, *share)),
                };
                let hash = folder::data_hash(&data)?;
                let built = planning::build(&data_set, arms, &config, day)?;
                Ok((built, hash, data_set, model))
            })
            .await
            .context("the planning task")??;
        let mut meta = PlanMeta {
            plan_id: 0,
            created_at: Utc::now().timestamp_micros(),
            day: built.day,
            model_version: built.model_version.clone(),
            data_hash: data_hash.clone(),
            accounts: built.rows.len() as i64,
            summary: serde_json::to_string(&built.summary)?,
        };
        let planned = started.elapsed().as_secs_f64();
        // The dashboard's calibration (a second pass over the features)
        // runs beside the storing of the rows; the plan is activated with it.
        let calibrating = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let calibration = planning::calibration(&data_set, &data_hash, &model);
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "calibration worked out"
            );
            calibration
        });
        let plan_id = self.store.insert_plan(&meta, &built.rows, &actor).await?;
        let mut summary = built.summary;
        summary.calibration = Some(calibrating.await.context("the calibration task")??);
        meta.summary = serde_json::to_string(&summary)?;
        self.store.set_plan_summary(plan_id, &meta.summary).await?;
        self.store
            .activate_plan(plan_id, &self.live_rules, &actor)
            .await?;
        self.queues.activated(plan_id);
        tracing::info!(
            plan_id,
            accounts = built.rows.len(),
            planning_seconds = planned,
            storing_seconds = started.elapsed().as_secs_f64() - planned,
            "plan installed"
        );
        self.follow().await?;
        if let Err(e) = self.store.prune_plans().await {
            tracing::warn!(error = %e, "pruning old plans");
        }
        let keep_from = built.day - chrono::Duration::days(i64::from(self.options.retention_days));
        match self.store.prune_decisions(keep_from).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(plans = n, before = %keep_from, "decisions past retention pruned")
            }
            Err(e) => tracing::warn!(error = %e, "pruning old decisions"),
        }
        Ok(plan_id)
    }

    /// Takes the store's active plan if it changed.
    async fn follow(&self) -> Result<()> {
        let Some(plan) = self.store.active_plan().await? else {
            return Ok(());
        };
        // SQLite: this process makes every change, so the queues follow
        // here; PostgreSQL replicas load them from the listener.
        if self.freshness.is_none() {
            self.queues.activated(plan.plan_id);
            if self.queues.serving().is_none() {
                self.load_queues(plan.plan_id).await?;
            }
        }
        let current = self.live.load().as_ref().map(|l| l.plan.plan_id);
        if current == Some(plan.plan_id) {
            return Ok(());
        }
        let summary: planning::Summary = serde_json::from_str(&plan.summary)?;
        let previous = match self.store.previous_plan().await? {
            Some(before) => {
                let summary = serde_json::from_str(&before.summary)?;
                Some((before, summary))
            }
            None => None,
        };
        let zones = self
            .store
            .zones()
            .await?
            .into_iter()
            .map(|name| {
                let tz = name.parse().unwrap_or(chrono_tz::UTC);
                (name, tz)
            })
            .collect();
        self.metrics.plan_id.set(plan.plan_id);
        self.metrics.plan_accounts.set(plan.accounts);
        tracing::info!(plan_id = plan.plan_id, model = %plan.model_version, "serving plan");
        self.live.store(Some(Arc::new(Live {
            plan,
            summary,
            zones,
            previous,
        })));
        Ok(())
    }
}

/// The configured challenger and its share, unless it is the live model
/// itself (after it was activated), which then plans everyone.
pub fn challenger_of(config: &EngineConfig, live: &Model) -> Result<Option<(Model, f64)>> {
    let Some(challenger) = &config.challenger else {
        return Ok(None);
    };
    let model = folder::load(&challenger.model)
        .with_context(|| format!("loading the challenger {}", challenger.model.display()))?;
    if model.meta.version == live.meta.version {
        tracing::info!(version = %model.meta.version, "the challenger is the live model: no split");
        return Ok(None);
    }
    Ok(Some((model, challenger.share)))
}

async fn record_metrics(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // Bounded labels: a made-up method is counted as `other`, not as a new series.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    app.metrics
        .latency
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .requests
        .with_label_values(&[route.as_str(), method, response.status().as_str()])
        .inc();
    response
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint; see /docs")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not take that method; see /docs",
    )
}

/// Request bodies above this are refused (413).
/// Days a plan's decisions are kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

pub const BODY_LIMIT: usize = 64 * 1024;

/// The routes and their layers.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(api::openapi))
        .route("/docs", get(api::docs))
        .route("/dashboard", get(segments::dashboard))
        .route("/dashboard/app.js", get(segments::dashboard_script))
        .route("/v1/worklists/{strategy}", get(api::worklist))
        .route("/v1/worklists/{strategy}/leases", post(api::lease))
        .route(
            "/v1/worklists/{strategy}/leases/{account_id}",
            delete(api::release_lease),
        )
        .route("/v1/accounts/{account_id}", get(api::account))
        .route(
            "/v1/accounts/{account_id}/actions",
            post(api::record_action),
        )
        .route("/v1/accounts/{account_id}/unblock", post(api::unblock))
        .route("/v1/audit", get(api::audit))
        .route("/v1/segments", get(segments::segments))
        .route("/v1/models", get(api::models))
        .route("/v1/models/{version}/activate", post(api::activate_model))
        .route("/v1/outcomes", get(api::outcomes))
        .route("/v1/runs", post(api::start_run))
        .route("/v1/runs/{run_id}", get(api::get_run))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), limit_in_flight))
        .layer(middleware::from_fn_with_state(app.clone(), record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    // Failures are logged where they happen (Problem::internal);
                    // a 503 while the first plan is built is not an error.
                    // Each request's span names the key that made it (never the key itself).
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                uri = %request.uri().path(),
                                key_id = tracing::field::Empty,
                            )
                        })
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
                    app.limits.body_read_timeout_seconds,
                )))
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(app)
}

/// Builds the shared state: the store, the keys, and the first plan (taken
/// from the store or built in the background).
pub async fn prepare(options: ServeOptions) -> Result<Arc<App>> {
    // Checked as the config file was read (`ServeConfig::from_toml`).
    let keys: Vec<KeyEntry> = options
        .server
        .api_keys
        .iter()
        .map(|key| KeyEntry {
            hash: key.key_sha256.to_ascii_lowercase(),
            role: key.role,
            id: key.id.clone().unwrap_or_else(|| {
                key.key_sha256
                    .chars()
                    .take(12)
                    .collect::<String>()
                    .to_ascii_lowercase()
            }),
            agent_id: key.agent_id.clone(),
        })
        .collect();
    let mut limiters = HashMap::new();
    if let Some(rate) = options
        .server
        .limits
        .per_key_per_second
        .and_then(NonZeroU32::new)
    {
        let burst = options
            .server
            .limits
            .per_key_burst
            .and_then(NonZeroU32::new)
            .unwrap_or(rate);
        for key in &keys {
            limiters.insert(
                key.hash.clone(),
                governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst)),
            );
        }
    }
    if keys.is_empty() {
        anyhow::bail!(
            "the config file has no [[api_keys]]: nobody could call the API. \
             Make a key with `prioritize keygen --role admin` and add what it prints to --config FILE"
        );
    }
    let model = folder::load(&options.model)?;
    // A challenger that does not load stops the start, not a later run.
    let challenger = challenger_of(&options.config, &model)?.map(|(m, _)| m.meta.version);
    let model_meta = model.meta;
    let store = store::open(&options.db)
        .await
        .with_context(|| format!("opening the store {}", store::redact(&options.db)))?;
    // PostgreSQL: other replicas' changes come through the store.
    let heard = store.changes();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        options.server.limits.max_concurrent_requests,
    ));
    let app = Arc::new(App {
        store,
        live_rules: LiveRules::new(&options.config.rules),
        config: options.config.clone(),
        limits: options.server.limits.clone(),
        keys,
        limiters,
        options,
        live: ArcSwapOption::empty(),
        runs: Mutex::new(Vec::new()),
        metrics: Metrics::new(),
        queues: Queues::default(),
        freshness: heard.is_some().then(|| {
            Freshness::new(format!(
                "{}-{}",
                std::process::id(),
                Utc::now().timestamp_micros()
            ))
        }),
        loading: tokio::sync::Mutex::new(()),
        store_down_until: AtomicI64::new(0),
        in_flight,
        shutdown: CancellationToken::new(),
    });
    let day = app.options.as_of.unwrap_or_else(|| Utc::now().date_naive());
    let data_hash = folder::data_hash(&app.options.data)?;
    let stored = app.store.active_plan().await?;
    let current = Current {
        day,
        model_version: model_meta.version.clone(),
        challenger,
        data_hash,
    };
    let reusable = stored.as_ref().is_some_and(|p| current.matches(p));
    if let Some(heard) = heard {
        tokio::spawn(app.clone().listen(heard));
    }
    // Serve the stored plan (if any); build today's unless it is that one.
    app.follow().await?;
    if !reusable {
        app.clone()
            .start_run(
                Some(app.options.model.clone()),
                store::Actor::system(),
                Some(current),
            )
            .map_err(|p| anyhow::anyhow!(p.detail))?;
    }
    Ok(app)
}

/// Runs the server until SIGTERM or Ctrl-C; `ready` is told the bound address.
pub async fn serve(app: Arc<App>, ready: impl FnOnce(SocketAddr) + Send) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(app.options.listen)
        .await
        .with_context(|| format!("listening on {}", app.options.listen))?;
    let address = listener.local_addr()?;
    ready(address);
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
    }
    // Say once when the first plan is served.
    if app.live.load().is_none() {
        let app = app.clone();
        tokio::spawn(async move {
            while app.live.load().is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = app.shutdown.cancelled() => return,
                }
            }
            if let Some(live) = app.live.load().as_ref() {
                println!(
                    "ready: serving plan {} of {} ({} accounts, model {})",
                    live.plan.plan_id, live.plan.day, live.plan.accounts, live.plan.model_version
                );
            }
        });
    }
    // Replicas follow the store's active plan.
    let follower = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = app.shutdown.cancelled() => return,
                }
                if let Err(e) = app.follow().await {
                    tracing::warn!(error = %format!("{e:#}"), "following the active plan");
                }
            }
        })
    };
    accept(listener, app.clone(), stop).await;
    // Whatever ended the accept loop, every background task stops too.
    app.shutdown.cancel();
    let _ = follower.await;
    app.store.close().await;
    Ok(())
}

/// Sheds a request at once (503 overloaded) when `[limits]
/// max_concurrent_requests` are already in flight. Health, readiness and
/// metrics are never shed, so probes do not restart a busy server.
async fn limit_in_flight(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let Ok(_permit) = app.in_flight.clone().try_acquire_owned() else {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is handling as many requests as it takes at once ([limits] max_concurrent_requests); retry shortly",
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

/// Accepts connections until a shutdown signal, then lets the requests in
/// flight finish (up to 30 s). Each connection must send a request's headers
/// within `[limits] header_read_timeout_seconds`.
async fn accept(listener: tokio::net::TcpListener, app: Arc<App>, token: CancellationToken) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let limits = app.limits.clone();
    let service = router(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_seconds));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(token.cancelled());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let connection = http.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                );
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection closed");
                    }
                });
            }
            _ = stop.as_mut() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 30 s: closing them");
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
