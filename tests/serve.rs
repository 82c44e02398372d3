//! The worklist API as collections software uses it: the real binary serving
//! over loopback, on SQLite and on PostgreSQL (one suite, both stores).
//!
//! PostgreSQL cases run when `PRIORITIZE_TEST_POSTGRES_URL` is set (`.ci/run`
//! sets it); each case gets a database of its own.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DAY: &str = "2026-09-30";
const KEYS: [(&str, &str); 4] = [
    ("collector", "test-collector-key"),
    ("analyst", "test-analyst-key"),
    ("manager", "test-manager-key"),
    ("admin", "test-admin-key"),
];

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_prioritize"))
}

fn run(args: &[&str]) {
    let output = Command::new(binary()).args(args).output().expect("runs");
    assert!(
        output.status.success(),
        "prioritize {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A simulated book, two trained model versions and a config with a key per
/// role, made once for every case.
struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    models: PathBuf,
    config: PathBuf,
    /// `prioritize plan` over the same inputs, for comparison.
    plan: Vec<HashMap<String, String>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
        run(&["simulate", "--accounts", "800", "--seed", "5", "--format", "csv", "--out", &s(&data)]);
        let models = dir.path().join("models");
        run(&["train", "--data", &s(&data), "--out", &s(&models.join("a")), "--response-learner", "scorecard"]);
        let mut keys = String::new();
        for (role, key) in KEYS {
            keys.push_str(&format!(
                "[[api_keys]]\nrole = \"{role}\"\nkey_sha256 = \"{}\"\n",
                hex(&Sha256::digest(key.as_bytes()))
            ));
        }
        let config = dir.path().join("serve.toml");
        std::fs::write(
            &config,
            format!(
                "[strategies.call]\ncapacity = 30\ncost = \"0.10\"\n[strategies.demand_letter]\ncapacity = 40\n\
                 [strategies.settlement_offer]\ncapacity = 8\n[strategies.installment_plan]\ncapacity = 16\n\
                 [strategies.field_visit]\ncapacity = 2\n[strategies.legal]\ncapacity = 2\n\
                 [strategies.agency]\ncapacity = 4\n{keys}"
            ),
        )
        .expect("config written");
        let plan_csv = dir.path().join("plan.csv");
        run(&[
            "plan", "--data", &s(&data), "--model", &s(&models.join("a")), "--as-of", DAY,
            "--config", &s(&config), "--out", &s(&plan_csv),
        ]);
        let plan = read_rows(&plan_csv);
        Fixture {
            _dir: dir,
            data,
            models,
            config,
            plan,
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(role: &str) -> &'static str {
    KEYS.iter().find(|(r, _)| *r == role).expect("a role").1
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A store of its own for one case (and the folder that holds it, if
/// SQLite); `None` when PostgreSQL is not configured.
fn store_url(backend: Backend, case: &str) -> Option<(tempfile::TempDir, String)> {
    let dir = tempfile::tempdir().expect("dir");
    match backend {
        Backend::Sqlite => {
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("{case}.db")).display()
            );
            Some((dir, url))
        }
        Backend::Postgres => {
            let Ok(base) = std::env::var("PRIORITIZE_TEST_POSTGRES_URL") else {
                // `.ci/run` sets both: there a missing URL fails the case.
                assert!(
                    std::env::var_os("PRIORITIZE_REQUIRE_POSTGRES").is_none(),
                    "PRIORITIZE_REQUIRE_POSTGRES is set but PRIORITIZE_TEST_POSTGRES_URL is not: \
                     the PostgreSQL case {case} cannot run"
                );
                eprintln!(
                    "PRIORITIZE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL case {case}"
                );
                return None;
            };
            let name = format!("prioritize_test_{case}");
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&base)
                    .await
                    .expect("PostgreSQL reachable");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create");
            });
            let (root, _) = base.rsplit_once('/').expect("a URL with a database");
            Some((dir, format!("{root}/{name}")))
        }
    }
}

/// A running `prioritize serve`.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(db: &str) -> Server {
        Server::start_with(db, DAY, &fixture().config)
    }

    /// Serves the fixture's book as of `day` with the config at `config`.
    fn start_with(db: &str, day: &str, config: &Path) -> Server {
        Server::start_on(db, day, config, &fixture().data)
    }

    /// Serves the data folder `data` with the fixture's model.
    fn start_on(db: &str, day: &str, config: &Path, data: &Path) -> Server {
        let fx = fixture();
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--as-of",
                day,
                "--listen",
                "127.0.0.1:0",
                "--db",
                db,
                "--data",
            ])
            .arg(data)
            .arg("--model")
            .arg(fx.models.join("a"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        stdout
            .read_line(&mut line)
            .expect("the server prints its address");
        // Keep reading what it prints later (the pipe stays open).
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let server = Server {
            child,
            base: format!("http://{address}"),
        };
        server.wait_ready(day);
        server
    }

    /// Until the plan of `day` is served (a restart serves the stored plan
    /// while it builds the day's).
    fn wait_ready(&self, day: &str) {
        let started = Instant::now();
        loop {
            if let Ok(r) = client().get(self.url("/readyz")).send() {
                if r.status() == 200 && r.json::<Value>().is_ok_and(|v| v["day"] == day) {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "not ready in 3 minutes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, role: &str) -> Response {
        client()
            .get(self.url(path))
            .bearer_auth(key(role))
            .send()
            .expect("request")
    }

    fn post(&self, path: &str, role: &str, body: &Value) -> Response {
        client()
            .post(self.url(path))
            .bearer_auth(key(role))
            .json(body)
            .send()
            .expect("request")
    }

    fn json(&self, path: &str, role: &str) -> Value {
        let response = self.get(path, role);
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().expect("JSON")
    }

    /// Every item of a queue, page by page.
    fn queue(&self, strategy: &str, limit: usize, agent: Option<&str>) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/worklists/{strategy}?limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            if let Some(a) = agent {
                path.push_str(&format!("&agent_id={a}"));
            }
            let page = self.json(&path, "collector");
            let got = page["items"].as_array().expect("items").clone();
            assert!(got.len() <= limit);
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    fn lease(&self, strategy: &str, agent: &str, count: usize) -> Vec<Value> {
        let response = self.post(
            &format!("/v1/worklists/{strategy}/leases"),
            "collector",
            &json!({"agent_id": agent, "count": count, "ttl_seconds": 600}),
        );
        assert_eq!(response.status(), 200);
        let body: Value = response.json().expect("JSON");
        body["leases"].as_array().expect("leases").clone()
    }

    fn act(&self, account: &str, body: Value) -> Value {
        let response = self.post(
            &format!("/v1/accounts/{account}/actions"),
            "collector",
            &body,
        );
        assert_eq!(response.status(), 201, "action on {account}");
        response.json().expect("JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    })
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn planned(strategy: &str) -> Vec<&'static HashMap<String, String>> {
    let mut rows: Vec<_> = fixture()
        .plan
        .iter()
        .filter(|r| r["strategy"] == strategy)
        .collect();
    rows.sort_by_key(|r| r["queue_rank"].parse::<u32>().expect("rank"));
    rows
}

fn assert_problem(response: Response, status: u16, mentions: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().expect("problem JSON");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem without {field}: {body}");
    }
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(mentions),
        "{detail:?} does not mention {mentions:?}"
    );
}

// ---------------------------------------------------------------- cases

/// Every queue, paged with a cursor, is the `prioritize plan` queue in rank order.
fn worklists_page_through_the_plan(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "paging") else {
        return;
    };
    let server = Server::start(&db);
    for strategy in ["sms_reminder", "demand_letter", "call", "none"] {
        let expected = planned(strategy);
        let served = server.queue(strategy, 7, None);
        assert_eq!(served.len(), expected.len(), "{strategy} queue length");
        for (item, row) in served.iter().zip(&expected) {
            assert_eq!(item["account_id"], row["account_id"].as_str());
            assert_eq!(item["queue_rank"].to_string(), row["queue_rank"]);
            assert_eq!(item["expected_value"], row["expected_value"].as_str());
            assert_eq!(item["priority"], row["priority"].as_str());
            assert_eq!(item["currency"], row["currency"].as_str());
            assert!(item["reasons"].is_array());
        }
    }
    // A cursor from a replaced plan is refused, not silently reinterpreted.
    let first = server.json("/v1/worklists/sms_reminder?limit=2", "collector");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let run = server.post("/v1/runs", "analyst", &json!({}));
    assert_eq!(run.status(), 202);
    let run: Value = run.json().expect("run");
    wait_run(&server, run["run_id"].as_u64().expect("id"));
    assert_problem(
        server.get(
            &format!("/v1/worklists/sms_reminder?cursor={cursor}"),
            "collector",
        ),
        409,
        "start again",
    );
}

/// Trains a model on the fixture's book into `out` with split seed `seed`,
/// unless it is there already.
fn train_once(out: &Path, seed: &str) {
    if !out.join("model.json").exists() {
        let data = fixture().data.to_str().expect("utf-8");
        let out = out.to_str().expect("utf-8");
        run(&[
            "train",
            "--data",
            data,
            "--out",
            out,
            "--response-learner",
            "scorecard",
            "--seed",
            seed,
        ]);
    }
}

fn wait_run(server: &Server, run_id: u64) -> Value {
    let started = Instant::now();
    loop {
        let run = server.json(&format!("/v1/runs/{run_id}"), "analyst");
        match run["status"].as_str() {
            Some("running") => {}
            Some("done") => {
                // Wait until this server serves the new plan.
                while server.json("/readyz", "analyst")["plan_id"] != run["plan_id"] {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return run;
            }
            _ => panic!("run failed: {run}"),
        }
        assert!(started.elapsed() < Duration::from_secs(180));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No key: 401; an unknown key: 401; a key without the role: 403; admin: all.
fn keys_and_roles(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "auth") else {
        return;
    };
    let server = Server::start(&db);
    let bare = client()
        .get(server.url("/v1/worklists/call"))
        .send()
        .expect("request");
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    assert_problem(bare, 401, "Authorization");
    let wrong = client()
        .get(server.url("/v1/segments"))
        .bearer_auth("not-a-key")
        .send()
        .expect("request");
    assert_problem(wrong, 401, "not known");
    for (path, allowed) in [
        ("/v1/worklists/call", "collector"),
        ("/v1/accounts/none-such", "collector"),
        ("/v1/segments", "manager"),
        ("/v1/models", "analyst"),
    ] {
        for (role, _) in KEYS {
            let status = server.get(path, role).status().as_u16();
            if role == allowed || role == "admin" {
                assert!(status == 200 || status == 404, "{role} on {path}: {status}");
            } else {
                assert_eq!(status, 403, "{role} on {path}");
            }
        }
    }
    let as_manager = server.post("/v1/runs", "manager", &json!({}));
    assert_problem(as_manager, 403, "analyst");
    // Health, readiness, metrics, the OpenAPI document and the docs need no key.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"] {
        assert_eq!(
            client()
                .get(server.url(path))
                .send()
                .expect("request")
                .status(),
            200,
            "{path}"
        );
    }
}

/// A server on `db` and, on PostgreSQL, a second replica on the same store.
fn replicas(backend: Backend, db: &str) -> (Server, Option<Server>) {
    let second = match backend {
        Backend::Postgres => Some(Server::start(db)),
        Backend::Sqlite => None,
    };
    (Server::start(db), second)
}

/// Agents leasing one queue at once never get the same account, and get all of it.
fn leases_are_exclusive(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "leases") else {
        return;
    };
    let (first, second) = replicas(backend, &db);
    let queue: Vec<String> = planned("sms_reminder")
        .iter()
        .map(|r| r["account_id"].clone())
        .collect();
    assert!(queue.len() >= 20, "the SMS queue is long enough to share");
    let servers: Vec<&Server> = std::iter::once(&first).chain(second.as_ref()).collect();
    let leased: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|agent| {
                let server = servers[agent % servers.len()];
                let queue = &queue;
                scope.spawn(move || {
                    let name = format!("agent-{agent}");
                    let mut mine = Vec::new();
                    // More rounds than the queue could need: a queue that never
                    // empties fails below instead of hanging.
                    for _ in 0..queue.len() {
                        let got = server.lease("sms_reminder", &name, 2);
                        if got.is_empty() {
                            break;
                        }
                        for lease in got {
                            assert_eq!(lease["agent_id"], name.as_str());
                            mine.push((
                                lease["account_id"].as_str().expect("id").to_string(),
                                name.clone(),
                            ));
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("agent"))
            .collect()
    });
    let distinct: HashSet<&String> = leased.iter().map(|(a, _)| a).collect();
    assert_eq!(distinct.len(), leased.len(), "an account was leased twice");
    assert_eq!(
        distinct,
        queue.iter().collect::<HashSet<_>>(),
        "every account leased once"
    );
    // Leased accounts leave others' worklists but stay in their agent's view.
    assert!(first.queue("sms_reminder", 50, None).is_empty());
    let (account, agent) = &leased[0];
    let own = first.queue("sms_reminder", 50, Some(agent));
    assert!(own.iter().any(|i| i["account_id"] == account.as_str()));
    let view = first.json(&format!("/v1/accounts/{account}"), "collector");
    assert_eq!(view["leased_by"], agent.as_str());
    // An action ends the lease: the account is free again (no rule blocks an SMS).
    first.act(
        account,
        json!({"at": now_text(), "channel": "sms", "outcome": "delivered"}),
    );
    let view = first.json(&format!("/v1/accounts/{account}"), "collector");
    assert!(view["leased_by"].is_null());
    assert_eq!(first.queue("sms_reminder", 50, None).len(), 1);
}

/// Actions are stored once per Idempotency-Key, shown newest first, and a
/// reused key with another body is refused.
fn actions_are_idempotent(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "idempotent") else {
        return;
    };
    let server = Server::start(&db);
    let account = planned("sms_reminder")[0]["account_id"].clone();
    let path = format!("/v1/accounts/{account}/actions");
    let body =
        json!({"at": now_text(), "channel": "sms", "outcome": "delivered", "agent_id": "a1"});
    let send = |body: &Value, idempotency_key: &str| {
        client()
            .post(server.url(&path))
            .bearer_auth(key("collector"))
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .expect("request")
    };
    let first = send(&body, "retry-1");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().expect("JSON");
    let again = send(&body, "retry-1");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().expect("JSON");
    assert_eq!(first["id"], again["id"]);
    let other = json!({"at": now_text(), "channel": "email", "outcome": "delivered"});
    assert_problem(send(&other, "retry-1"), 422, "Idempotency-Key");
    let later = json!({"at": now_text(), "channel": "email", "outcome": "undeliverable"});
    assert_eq!(send(&later, "retry-2").status(), 201);
    let view = server.json(&format!("/v1/accounts/{account}"), "collector");
    let recent = view["recent_actions"].as_array().expect("recent");
    let ours: Vec<&Value> = recent
        .iter()
        .filter(|a| a["at"].as_str() >= Some("2026-10"))
        .collect();
    assert_eq!(ours.len(), 2, "recorded once each: {recent:?}");
    assert_eq!(ours[0]["outcome"], "undeliverable");
    assert_eq!(ours[1]["outcome"], "delivered");
}

/// Compliance state changes at once: disputes and promises pause the account,
/// a conversation starts the call cool-off for the person, the 7th call
/// attempt blocks the 8th, and a blocked account loses its lease.
fn actions_change_compliance_at_once(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "compliance") else {
        return;
    };
    let server = Server::start(&db);
    let in_queue = |strategy: &str, account: &str| {
        server
            .queue(strategy, 100, None)
            .iter()
            .any(|i| i["account_id"] == account)
    };
    // A dispute on a leased account: out of the queue, lease gone.
    let texts = planned("sms_reminder");
    let disputed = texts[0]["account_id"].clone();
    let leased = server.lease("sms_reminder", "agent-d", 1);
    assert_eq!(leased[0]["account_id"], disputed.as_str());
    let reply = server.act(
        &disputed,
        json!({"at": now_text(), "channel": "sms", "outcome": "dispute"}),
    );
    assert_eq!(reply["blocked"][0]["rule"], "dispute_open");
    let view = server.json(&format!("/v1/accounts/{disputed}"), "collector");
    assert_eq!(view["blocked_since_plan"], "dispute_open");
    assert!(view["leased_by"].is_null());
    assert!(!in_queue("sms_reminder", &disputed));
    assert!(!server
        .queue("sms_reminder", 100, Some("agent-d"))
        .iter()
        .any(|i| i["account_id"] == disputed.as_str()));

    // A promise to pay tomorrow pauses the account; one already past does not.
    let promised = texts[1]["account_id"].clone();
    let past = texts[2]["account_id"].clone();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .to_string();
    server.act(
        &past,
        json!({"at": now_text(), "channel": "call", "outcome": "promise_to_pay",
        "promised_amount": "10.00", "promised_on": "2026-01-01"}),
    );
    assert!(in_queue("sms_reminder", &past));
    server.act(
        &promised,
        json!({"at": now_text(), "channel": "sms", "outcome": "promise_to_pay",
        "promised_amount": "120.50", "promised_on": tomorrow}),
    );
    assert!(!in_queue("sms_reminder", &promised));
    // The account shows where each promise stands: a past date with no
    // payment is broken; a payment before the date keeps it.
    let promise = |account: &str| {
        server.json(&format!("/v1/accounts/{account}"), "collector")["promise"].clone()
    };
    assert_eq!(promise(&past)["status"], "broken");
    assert_eq!(promise(&promised)["status"], "pending");
    let amount: rust_decimal::Decimal = promise(&promised)["promised_amount"]
        .as_str()
        .expect("a decimal string")
        .parse()
        .expect("a decimal");
    assert_eq!(amount, rust_decimal::Decimal::new(12050, 2));
    server.act(
        &promised,
        json!({"at": now_text(), "channel": "sms", "outcome": "paid"}),
    );
    let kept = promise(&promised);
    assert_eq!(kept["status"], "kept", "{kept}");
    assert!(kept["paid_at"].is_string());
    assert!(
        !in_queue("sms_reminder", &promised),
        "a kept promise still holds until its date"
    );

    // Calls: an account whose person has no other accounts and no calls in the window.
    let accounts = read_rows(&fixture().data.join("accounts.csv"));
    let mut people: HashMap<String, usize> = HashMap::new();
    for a in &accounts {
        *people.entry(a["customer_id"].clone()).or_default() += 1;
    }
    let person_of: HashMap<String, String> = accounts
        .iter()
        .map(|a| (a["account_id"].clone(), a["customer_id"].clone()))
        .collect();
    let recent_callers: HashSet<String> = read_rows(&fixture().data.join("actions.csv"))
        .into_iter()
        .filter(|x| x["channel"] == "call" && x["at"].as_str() >= "2026-09-22")
        .map(|x| x["account_id"].clone())
        .collect();
    let calls = planned("call");
    let mut quiet = calls
        .iter()
        .map(|r| r["account_id"].clone())
        .filter(|a| people[&person_of[a]] == 1 && !recent_callers.contains(a));
    let limited = quiet.next().expect("a call account without recent calls");
    let talked = quiet.next().expect("a second one");
    for attempt in 1..=7 {
        assert!(
            in_queue("call", &limited),
            "blocked before attempt {attempt}"
        );
        let reply = server.act(
            &limited,
            json!({"at": now_text(), "channel": "call", "outcome": "no_answer"}),
        );
        let blocked = reply["blocked"].as_array().expect("blocked").len();
        assert_eq!(blocked, usize::from(attempt == 7), "attempt {attempt}");
    }
    assert!(
        !in_queue("call", &limited),
        "the 8th call must not be handed out"
    );
    let view = server.json(&format!("/v1/accounts/{limited}"), "collector");
    assert_eq!(view["blocked_since_plan"], "call_attempt_limit");
    // A conversation by SMS still starts the cool-off on calls.
    server.act(
        &talked,
        json!({"at": now_text(), "channel": "sms", "outcome": "right_party_contact"}),
    );
    assert!(!in_queue("call", &talked));
    // Blocks survive a rebuilt plan: the new plan replays the recorded actions.
    let run: Value = server
        .post("/v1/runs", "analyst", &json!({}))
        .json()
        .expect("run");
    wait_run(&server, run["run_id"].as_u64().expect("id"));
    for (account, strategy) in [
        (&disputed, "sms_reminder"),
        (&promised, "sms_reminder"),
        (&limited, "call"),
        (&talked, "call"),
    ] {
        assert!(
            !in_queue(strategy, account),
            "{account} back in {strategy} after a rebuild"
        );
    }
}

fn read_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).expect("readable");
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .zip(r.expect("record").iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// An action acknowledged with 201 is there after `kill -9` and a restart.
fn actions_survive_kill_9(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "kill9") else {
        return;
    };
    let mut server = Server::start(&db);
    let account = planned("email_reminder")[0]["account_id"].clone();
    let reply = server.act(
        &account,
        json!({"at": now_text(), "channel": "email", "outcome": "dispute"}),
    );
    server.child.kill().expect("SIGKILL"); // no shutdown, no flush
    server.child.wait().expect("gone");
    let restarted = Server::start(&db);
    let view = restarted.json(&format!("/v1/accounts/{account}"), "collector");
    assert_eq!(view["recent_actions"][0]["outcome"], "dispute");
    assert_eq!(view["recent_actions"][0]["at"], reply["at"]);
    assert_eq!(view["blocked_since_plan"], "dispute_open");
}

/// Bad input gets problem+json naming the field; nothing is recorded.
fn bad_input_is_a_problem(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "problems") else {
        return;
    };
    let server = Server::start(&db);
    let account = planned("sms_reminder")[0]["account_id"].clone();
    let path = format!("/v1/accounts/{account}/actions");
    let cases = [
        (
            json!({"at": now_text(), "channel": "sms", "outcome": "delivered", "colour": "red"}),
            422,
            "colour",
        ),
        (
            json!({"at": "yesterday", "channel": "sms", "outcome": "delivered"}),
            422,
            "at:",
        ),
        (
            json!({"at": now_text(), "channel": "pigeon", "outcome": "delivered"}),
            422,
            "channel:",
        ),
        (
            json!({"at": now_text(), "channel": "sms", "outcome": "maybe"}),
            422,
            "outcome:",
        ),
        (
            json!({"at": now_text(), "channel": "call", "outcome": "promise_to_pay", "promised_amount": "1.00"}),
            422,
            "promised_on:",
        ),
        (
            json!({"at": now_text(), "channel": "call", "outcome": "promise_to_pay", "promised_on": "2026-12-01", "promised_amount": "1.23456"}),
            422,
            "promised_amount:",
        ),
        (json!({"channel": "sms", "outcome": "delivered"}), 422, "at"),
        // A promise that would pause the account for ever ([rules] max_promise_days, 60).
        (
            json!({"at": now_text(), "channel": "call", "outcome": "promise_to_pay", "promised_on": "9999-12-31", "promised_amount": "1.00"}),
            422,
            "max_promise_days",
        ),
        (
            json!({"at": "2026-09-30T10:00:00Z", "channel": "call", "outcome": "promise_to_pay", "promised_on": "2026-11-30", "promised_amount": "1.00"}),
            422,
            "61 days after the action",
        ),
    ];
    for (body, status, mentions) in cases {
        assert_problem(server.post(&path, "collector", &body), status, mentions);
    }
    let syntax = client()
        .post(server.url(&path))
        .bearer_auth(key("collector"))
        .header("content-type", "application/json")
        .body("{\"at\": ")
        .send()
        .expect("request");
    assert_problem(syntax, 400, "");
    let huge = json!({"at": now_text(), "channel": "sms", "outcome": "delivered", "agent_id": "x".repeat(100_000)});
    assert_eq!(server.post(&path, "collector", &huge).status(), 413);
    assert_problem(
        server.get("/v1/worklists/call?limit=0", "collector"),
        422,
        "limit",
    );
    assert_problem(
        server.get("/v1/worklists/call?cursor=abc", "collector"),
        422,
        "cursor",
    );
    assert_problem(
        server.get("/v1/worklists/call?colour=red", "collector"),
        400,
        "colour",
    );
    assert_problem(
        server.get("/v1/worklists/teleport", "collector"),
        404,
        "teleport",
    );
    assert_problem(
        server.post(
            "/v1/worklists/call/leases",
            "collector",
            &json!({"agent_id": "a", "count": 1000}),
        ),
        422,
        "count",
    );
    assert_problem(
        server.post(
            "/v1/accounts/nobody/actions",
            "collector",
            &json!({"at": now_text(), "channel": "sms", "outcome": "delivered"}),
        ),
        404,
        "nobody",
    );
    // None of it was recorded.
    let view = server.json(&format!("/v1/accounts/{account}"), "collector");
    assert!(view["recent_actions"]
        .as_array()
        .expect("recent")
        .iter()
        .all(|a| a["at"].as_str() < Some("2026-10")));
}

/// Segments add up to the plan; models list and switch without a restart;
/// the OpenAPI document covers every endpoint; metrics count requests.
fn segments_models_openapi_metrics(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "models") else {
        return;
    };
    let fx = fixture();
    let server = Server::start(&db);
    let segments = server.json("/v1/segments", "manager");
    let cells = segments["segments"].as_array().expect("segments");
    let accounts: u64 = cells
        .iter()
        .map(|c| c["accounts"].as_u64().expect("count"))
        .sum();
    assert_eq!(accounts as usize, fx.plan.len());
    let value: rust_decimal::Decimal = cells
        .iter()
        .map(|c| {
            c["expected_value"]
                .as_str()
                .expect("decimal")
                .parse::<rust_decimal::Decimal>()
                .expect("decimal")
        })
        .sum();
    let planned_value: rust_decimal::Decimal = fx
        .plan
        .iter()
        .map(|r| {
            r["expected_value"]
                .parse::<rust_decimal::Decimal>()
                .expect("decimal")
        })
        .sum();
    assert!(
        (value - planned_value).abs() < rust_decimal::Decimal::new(1, 0),
        "{value} vs {planned_value}"
    );
    for cell in cells {
        let mix: u64 = cell["strategy_mix"]
            .as_object()
            .expect("mix")
            .values()
            .map(|v| v.as_u64().expect("n"))
            .sum();
        assert_eq!(mix, cell["accounts"].as_u64().expect("n"));
    }

    // A second model version beside the first.
    let b = fx.models.join(format!(
        "b-{}",
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    ));
    train_once(&b, "9");
    let listed = server.json("/v1/models", "analyst");
    let versions: Vec<(String, bool)> = listed["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["version"].as_str().expect("v").to_string(),
                m["active"].as_bool().expect("active"),
            )
        })
        .collect();
    let target: String = serde_json::from_str::<Value>(
        &std::fs::read_to_string(b.join("model.json")).expect("meta"),
    )
    .expect("JSON")["version"]
        .as_str()
        .expect("version")
        .to_string();
    assert!(versions.iter().any(|(v, active)| *v == target && !active));
    assert_eq!(versions.iter().filter(|(_, a)| *a).count(), 1);
    let switch = server.post(
        &format!("/v1/models/{target}/activate"),
        "analyst",
        &json!({}),
    );
    assert_eq!(switch.status(), 202);
    let run: Value = switch.json().expect("run");
    // Reads go on during the switch.
    let page = server.json("/v1/worklists/sms_reminder?limit=5", "collector");
    assert_eq!(page["items"].as_array().expect("items").len(), 5);
    wait_run(&server, run["run_id"].as_u64().expect("id"));
    assert_eq!(
        server.json("/readyz", "collector")["model_version"],
        target.as_str()
    );
    let account = planned("sms_reminder")[0]["account_id"].clone();
    assert_eq!(
        server.json(&format!("/v1/accounts/{account}"), "collector")["model_version"],
        target.as_str()
    );
    assert_problem(
        server.post("/v1/models/none-such/activate", "analyst", &json!({})),
        404,
        "none-such",
    );

    let doc: Value = client()
        .get(server.url("/openapi.json"))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/worklists/{strategy}",
        "/v1/worklists/{strategy}/leases",
        "/v1/accounts/{account_id}/actions",
        "/v1/accounts/{account_id}",
        "/v1/segments",
        "/v1/models",
        "/v1/models/{version}/activate",
        "/v1/runs",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Every error a request can get is documented, as a problem.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if status.as_str() >= "400" && status != "408" {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not documented as application/problem+json"
                    );
                }
            }
            let mut expected = vec!["408"];
            if !matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
                expected.push("503");
            }
            if operation["security"].is_array() {
                expected.extend(["401", "403", "429"]);
            }
            if operation["requestBody"].is_object() {
                expected.extend(["400", "413", "415", "422"]);
            }
            for status in expected {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    // The contract's names are enums, so a schema-valid request is one the server takes.
    let schemas = &doc["components"]["schemas"];
    let listed = |value: &Value| -> Vec<String> {
        value["enum"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .map(|n| n.as_str().expect("name").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        listed(&schemas["ActionRequest"]["properties"]["channel"]),
        [
            "sms",
            "email",
            "call",
            "letter",
            "field_visit",
            "legal",
            "agency"
        ]
    );
    assert!(listed(&schemas["ActionRequest"]["properties"]["outcome"])
        .contains(&"promise_to_pay".to_string()));
    assert_eq!(
        listed(&schemas["UnblockRequest"]["properties"]["rule"]),
        ["promise_pending", "dispute_open"]
    );
    let strategy = doc["paths"]["/v1/worklists/{strategy}"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "strategy")
        .expect("strategy parameter")
        .clone();
    assert_eq!(listed(&strategy["schema"]).len(), 10, "{strategy}");
    // Made-up methods are counted together, not as a series each.
    for method in ["BREW", "WHEN", "PROPFIND"] {
        let response = client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                server.url("/healthz"),
            )
            .send()
            .expect("request");
        assert_eq!(response.status(), 405, "{method}");
    }
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .expect("request")
        .text()
        .expect("text");
    assert!(
        metrics.contains(
            "http_requests_total{method=\"GET\",route=\"/v1/segments\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"} 3"),
        "{metrics}"
    );
    for method in ["BREW", "WHEN", "PROPFIND"] {
        assert!(
            !metrics.contains(method),
            "{method} became a label: {metrics}"
        );
    }
}

/// The dashboard's figures: tiers from the config, every tier × bucket cell,
/// calibration on the outcomes and held out, and each change since the
/// previous plan equal to the difference of the two plans' figures.
fn segments_show_the_change_since_the_previous_plan(backend: Backend) {
    let Some((dir, db)) = store_url(backend, "changes") else {
        return;
    };
    let fx = fixture();
    let config = dir.path().join("tiers.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[risk_tiers]]\nname = \"red\"\np_pay_from = 0.0\n[[risk_tiers]]\nname = \"amber\"\np_pay_from = 0.3\n\
             [[risk_tiers]]\nname = \"green\"\np_pay_from = 0.6\n",
            std::fs::read_to_string(&fx.config).expect("config")
        ),
    )
    .expect("config written");
    let before = {
        let server = Server::start_with(&db, "2026-09-16", &config);
        server.json("/v1/segments", "manager")
    };
    assert!(
        before["previous"].is_null(),
        "the first plan has no previous"
    );
    assert!(before["segments"]
        .as_array()
        .expect("cells")
        .iter()
        .all(|c| c["change"].is_null()));
    let server = Server::start_with(&db, DAY, &config);
    let now = server.json("/v1/segments", "manager");
    assert_eq!(now["previous"]["plan_id"], before["plan_id"]);
    assert_eq!(now["previous"]["day"], "2026-09-16");
    let tiers: Vec<&str> = now["risk_tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(tiers, ["red", "amber", "green"]);
    let cells = now["segments"].as_array().expect("cells");
    assert_eq!(
        cells.len(),
        3 * 6,
        "every tier × bucket cell, empty ones too"
    );
    let decimal = |v: &Value| {
        v.as_str()
            .expect("a decimal string")
            .parse::<rust_decimal::Decimal>()
            .expect("decimal")
    };
    let find = |segments: &Value, tier: &Value, bucket: &Value| -> Value {
        segments["segments"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["risk_tier"] == *tier && c["dpd_bucket"] == *bucket)
            .cloned()
            .expect("the same grid")
    };
    let mut moved = 0;
    for cell in cells {
        let old = find(&before, &cell["risk_tier"], &cell["dpd_bucket"]);
        let change = &cell["change"];
        assert_eq!(
            change["accounts"].as_i64(),
            Some(cell["accounts"].as_i64().expect("n") - old["accounts"].as_i64().expect("n"))
        );
        for field in ["balance", "expected_value"] {
            assert_eq!(
                decimal(&change[field]),
                decimal(&cell[field]) - decimal(&old[field]),
                "{field} change of {cell}"
            );
        }
        moved += usize::from(change["accounts"] != 0);
    }
    assert!(moved > 0, "two weeks apart, some accounts change cell");
    let total: u64 = cells
        .iter()
        .map(|c| c["accounts"].as_u64().expect("n"))
        .sum();
    assert_eq!(total as usize, fx.plan.len());
    assert_eq!(now["totals"]["accounts"].as_u64(), Some(total));
    for queue in now["queues"].as_array().expect("queues") {
        let old = before["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["strategy"] == queue["strategy"])
            .expect("same strategies");
        assert_eq!(
            queue["planned_change"].as_i64(),
            Some(queue["planned"].as_i64().expect("n") - old["planned"].as_i64().expect("n"))
        );
    }
    let calibration = &now["calibration"];
    assert_eq!(calibration["outcomes_in_training"], true);
    let outcomes = &calibration["outcomes"];
    assert_eq!(outcomes["deciles"].as_array().map(Vec::len), Some(10));
    let rows: u64 = outcomes["deciles"]
        .as_array()
        .expect("deciles")
        .iter()
        .map(|d| d["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(Some(rows), outcomes["rows"].as_u64());
    assert!(outcomes["roc_auc"].as_f64().expect("auc") > 0.6);
    assert_eq!(
        calibration["held_out"]["deciles"].as_array().map(Vec::len),
        Some(10)
    );
    // The same data and model on both days: the outcomes' calibration is unchanged.
    assert_eq!(calibration["roc_auc_change"].as_f64(), Some(0.0));

    // The page and its script, with a policy that loads nothing from elsewhere.
    let page = client().get(server.url("/dashboard")).send().expect("page");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    assert!(page.text().expect("html").contains("/dashboard/app.js"));
    let script = client()
        .get(server.url("/dashboard/app.js"))
        .send()
        .expect("script");
    assert_eq!(script.status(), 200);
    assert!(script.text().expect("js").contains("/v1/segments"));
}

/// A page shows every lease and block committed before it was asked for,
/// whichever replica took it: pages come from memory, kept current by each
/// commit (SQLite) or by every replica's notifications (PostgreSQL).
fn pages_show_every_change_committed_before_them(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "fresh") else {
        return;
    };
    let (first, second) = replicas(backend, &db);
    let servers: Vec<&Server> = std::iter::once(&first).chain(second.as_ref()).collect();
    let ids = |server: &Server| -> Vec<String> {
        server
            .queue("sms_reminder", 500, None)
            .iter()
            .map(|i| i["account_id"].as_str().expect("id").to_string())
            .collect()
    };
    let mut expected = ids(&first);
    assert!(expected.len() >= 20);
    for round in 0..10 {
        let (writer, reader) = (
            servers[round % servers.len()],
            servers[(round + 1) % servers.len()],
        );
        let leased = writer.lease("sms_reminder", &format!("agent-{round}"), 1);
        let account = leased[0]["account_id"].as_str().expect("id").to_string();
        assert_eq!(account, expected[0], "the head of the queue is leased");
        expected.remove(0);
        assert_eq!(
            ids(reader),
            expected,
            "round {round}: the lease is seen at once"
        );
        if round % 2 == 0 {
            // An action ends the lease: the account is back at once.
            writer.act(
                &account,
                json!({"at": now_text(), "channel": "sms", "outcome": "delivered"}),
            );
            expected.insert(0, account.clone());
            assert_eq!(
                ids(reader),
                expected,
                "round {round}: the release is seen at once"
            );
            // A dispute takes it out of every queue at once.
            writer.act(
                &account,
                json!({"at": now_text(), "channel": "sms", "outcome": "dispute"}),
            );
            expected.remove(0);
            assert_eq!(
                ids(reader),
                expected,
                "round {round}: the block is seen at once"
            );
        }
    }
}

/// Champion/challenger: the configured share of people is planned by a
/// second model, every account names the model that decided it, the models
/// list shows each side's plan, and activating the challenger makes it
/// plan everyone.
fn a_challenger_plans_a_share_and_can_be_activated(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "challenger") else {
        return;
    };
    let fx = fixture();
    let side = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let root = fx.config.parent().expect("fixture folder");
    let challenger = root.join(format!("challengers/{side}"));
    train_once(&challenger, "11");
    // The folder is named relative to the config file.
    let config = root.join(format!("challenger-{side}.toml"));
    let base = std::fs::read_to_string(&fx.config).expect("config");
    std::fs::write(
        &config,
        format!("{base}[challenger]\nmodel = \"challengers/{side}\"\nshare = 0.4\n"),
    )
    .expect("config written");
    let server = Server::start_with(&db, DAY, &config);
    let models = server.json("/v1/models", "analyst");
    let models = models["models"].as_array().expect("models");
    let role = |r: &str| {
        models
            .iter()
            .find(|m| m["role"] == r)
            .unwrap_or_else(|| panic!("no {r} in {models:?}"))
    };
    let (champion, rival) = (role("champion"), role("challenger"));
    let rival_version = rival["version"].as_str().expect("version").to_string();
    let planned = |m: &Value| m["planned_accounts"].as_u64().expect("accounts");
    assert_eq!(planned(champion) + planned(rival), fx.plan.len() as u64);
    let share = planned(rival) as f64 / fx.plan.len() as f64;
    assert!((0.3..=0.5).contains(&share), "challenger share {share}");
    for m in [champion, rival] {
        let per_account: rust_decimal::Decimal = m["expected_value_per_account"]
            .as_str()
            .expect("decimal")
            .parse()
            .expect("decimal");
        let total: rust_decimal::Decimal = m["planned_expected_value"]
            .as_str()
            .expect("decimal")
            .parse()
            .expect("decimal");
        let mean = total / rust_decimal::Decimal::from(planned(m));
        assert!((per_account - mean).abs() <= rust_decimal::Decimal::new(1, 2));
    }
    // Each account says which model decided it; both sides share the queues.
    let mut deciders: HashMap<String, usize> = HashMap::new();
    for item in server.queue("demand_letter", 50, None) {
        let id = item["account_id"].as_str().expect("id");
        let account = server.json(&format!("/v1/accounts/{id}"), "collector");
        *deciders
            .entry(
                account["model_version"]
                    .as_str()
                    .expect("version")
                    .to_string(),
            )
            .or_default() += 1;
    }
    assert_eq!(deciders.len(), 2, "letters from both models: {deciders:?}");

    // Activating the challenger makes it the live model for everyone.
    let response = server.post(
        &format!("/v1/models/{rival_version}/activate"),
        "analyst",
        &json!({}),
    );
    assert_eq!(response.status(), 202);
    let run: Value = response.json().expect("run");
    wait_run(&server, run["run_id"].as_u64().expect("id"));
    assert_eq!(
        server.json("/readyz", "analyst")["model_version"],
        rival_version.as_str()
    );
    let models = server.json("/v1/models", "analyst");
    let live: Vec<&Value> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter(|m| !m["role"].is_null())
        .collect();
    assert_eq!(live.len(), 1, "one model plans everyone: {live:?}");
    assert_eq!(live[0]["version"], rival_version.as_str());
    assert_eq!(planned(live[0]), fx.plan.len() as u64);
}

/// The payments of `data`'s history within the horizon of a decision on
/// `day` (the days after it, up to and including `day + horizon`), by hand.
fn paid_within(data: &Path, account: &str, day: &str, horizon: i64) -> rust_decimal::Decimal {
    let start: chrono::NaiveDate = day.parse().expect("a day");
    let end = start + chrono::Duration::days(horizon);
    read_rows(&data.join("payment_history.csv"))
        .iter()
        .filter(|r| r["account_id"] == account)
        .filter(|r| {
            let cycle: chrono::NaiveDate = r["cycle_end"].parse().expect("a date");
            cycle > start && cycle <= end
        })
        .map(|r| {
            r["amount_paid"]
                .parse::<rust_decimal::Decimal>()
                .expect("money")
        })
        .sum()
}

/// Outcomes come from what was served: the decisions of two served days,
/// each with the payments that followed within the horizon (the history of
/// a later data folder, and a `paid` action posted through the API), checked
/// row by row against a hand computation; decisions whose horizon has not
/// passed are left out and counted. `GET /v1/outcomes` gives the same rows.
fn outcomes_come_from_served_decisions(backend: Backend) {
    let Some((dir, db)) = store_url(backend, "outcomes") else {
        return;
    };
    let fx = fixture();
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let days = ["2026-09-16", DAY];
    let plans: Vec<Vec<HashMap<String, String>>> = days
        .iter()
        .map(|day| {
            let csv = dir.path().join(format!("plan-{day}.csv"));
            run(&[
                "plan",
                "--data",
                &s(&fx.data),
                "--model",
                &s(&fx.models.join("a")),
                "--as-of",
                day,
                "--config",
                &s(&fx.config),
                "--out",
                &s(&csv),
            ]);
            read_rows(&csv)
        })
        .collect();
    drop(Server::start_with(&db, days[0], &fx.config));
    let server = Server::start_with(&db, DAY, &fx.config);
    let payer = plans[1][0]["account_id"].clone();
    server.act(
        &payer,
        json!({"at": "2026-10-05T10:00:00+00:00", "channel": "call", "outcome": "paid", "agent_id": "a1"}),
    );

    // The lender's next delivery: the same book with later billing cycles.
    let later = copy_of_data(&dir.path().join("later"));
    let (in_window, outside) = (&plans[0][3]["account_id"], &plans[0][4]["account_id"]);
    let history = later.join("payment_history.csv");
    let header = std::fs::read_to_string(&history).expect("history");
    let columns: Vec<&str> = header.lines().next().expect("header").split(',').collect();
    let cycle = |account: &str, end: &str, paid: &str| -> String {
        let cell = |c: &str| match c {
            "account_id" => account.to_string(),
            "cycle_end" => end.to_string(),
            "amount_due" => "100.00".to_string(),
            "amount_paid" => paid.to_string(),
            "balance" => "900.00".to_string(),
            "days_past_due" => "0".to_string(),
            _ => String::new(),
        };
        columns
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(",")
            + "\n"
    };
    let mut text = header.clone();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text += &cycle(in_window, "2026-10-10", "75.25");
    text += &cycle(outside, "2026-12-20", "50.00");
    std::fs::write(&history, text).expect("history written");

    let horizon = 30;
    let expected =
        |data: &Path| -> HashMap<(String, String), (String, bool, rust_decimal::Decimal, f64)> {
            let mut out = HashMap::new();
            for (day, plan) in days.iter().zip(&plans) {
                for row in plan {
                    let account = &row["account_id"];
                    let amount = paid_within(data, account, day, horizon);
                    let told = *account == payer; // 2026-10-05 is within both horizons
                    out.insert(
                        (account.clone(), day.to_string()),
                        (
                            row["strategy"].clone(),
                            told || amount > rust_decimal::Decimal::ZERO,
                            amount,
                            row["propensity"].parse().expect("propensity"),
                        ),
                    );
                }
            }
            out
        };
    let check =
        |got: &[(String, String, String, bool, rust_decimal::Decimal, f64)],
         want: &HashMap<(String, String), (String, bool, rust_decimal::Decimal, f64)>| {
            assert_eq!(got.len(), want.len(), "one row per served decision");
            for (account, day, strategy, paid, amount, propensity) in got {
                let (s, p, a, e) = &want[&(account.clone(), day.clone())];
                assert_eq!((strategy, paid, amount), (s, p, a), "{account} on {day}");
                assert!(
                    (propensity - e).abs() < 1e-9,
                    "{account} on {day}: {propensity} vs {e}"
                );
            }
        };

    let out = dir.path().join("outcomes");
    run(&[
        "outcomes",
        "--db",
        &db,
        "--data",
        &s(&later),
        "--horizon-days",
        "30",
        "--out",
        &s(&out),
    ]);
    let rows: Vec<_> = read_rows(&out.join("outcomes.csv"))
        .into_iter()
        .map(|r| {
            (
                r["account_id"].clone(),
                r["as_of"].clone(),
                r["strategy"].clone(),
                r["paid"] == "true",
                r["paid_amount"].parse().expect("money"),
                r["propensity"].parse().expect("propensity"),
            )
        })
        .collect();
    let want = expected(&later);
    check(&rows, &want);
    // The new cycles: one within the first day's horizon, one beyond every horizon.
    assert!(
        want[&(in_window.clone(), days[0].to_string())].2
            >= "75.25".parse::<rust_decimal::Decimal>().unwrap()
    );
    assert_eq!(
        want[&(outside.clone(), days[0].to_string())].2,
        paid_within(&fx.data, outside, days[0], horizon)
    );

    // Known only through 2026-10-20: the second day's horizon has not passed.
    let early = dir.path().join("early");
    let output = Command::new(binary())
        .args([
            "outcomes",
            "--db",
            &db,
            "--data",
            &s(&later),
            "--through",
            "2026-10-20",
            "--out",
            &s(&early),
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains(&format!("{} decisions not yet matured", plans[1].len())),
        "{said}"
    );
    let early_rows = read_rows(&early.join("outcomes.csv"));
    assert_eq!(early_rows.len(), plans[0].len());
    assert!(early_rows.iter().all(|r| r["as_of"] == days[0]));

    // The exported table is a valid outcomes table of the contract.
    std::fs::copy(out.join("outcomes.csv"), later.join("outcomes.csv")).expect("copied");
    run(&["validate", "--data", &s(&later)]);

    // The API serves the same rows, from the served data folder.
    assert_eq!(server.get("/v1/outcomes", "collector").status(), 403);
    assert_problem(
        server.get("/v1/outcomes?horizon_days=0", "analyst"),
        422,
        "horizon_days",
    );
    let body = server.json("/v1/outcomes?horizon_days=30&through=2026-12-31", "analyst");
    assert_eq!(body["pending"], 0);
    let rows: Vec<_> = body["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|r| {
            (
                r["account_id"].as_str().expect("id").to_string(),
                r["as_of"].as_str().expect("day").to_string(),
                r["strategy"].as_str().expect("strategy").to_string(),
                r["paid"].as_bool().expect("paid"),
                r["paid_amount"]
                    .as_str()
                    .expect("money")
                    .parse()
                    .expect("money"),
                r["propensity"].as_f64().expect("propensity"),
            )
        })
        .collect();
    check(&rows, &expected(&fx.data));
}

/// A copy of the fixture's data folder (its tables only) in `dir`.
fn copy_of_data(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("folder");
    for entry in std::fs::read_dir(&fixture().data).expect("data folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "csv") {
            std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copied");
        }
    }
    dir.to_path_buf()
}

/// One history: actions recorded through the API count in the next plan's
/// features and rules exactly as if the lender had delivered them in the
/// data folder's `actions`, and one the lender also delivers counts once.
fn api_actions_count_in_the_next_plan(backend: Backend) {
    let Some((dir, db)) = store_url(backend, "history") else {
        return;
    };
    let fx = fixture();
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let data = copy_of_data(&dir.path().join("data"));
    let promised = planned("call")[0]["account_id"].clone();
    let refused = planned("call")[1]["account_id"].clone();
    // The lender's folder already holds the refusal the API will also record.
    let refusal = ("2026-09-27T12:00:00+00:00", "call", "refused");
    let promise = ("2026-09-28T15:00:00+00:00", "call", "promise_to_pay");
    let actions = data.join("actions.csv");
    let text = std::fs::read_to_string(&actions).expect("actions");
    let columns: Vec<String> = text
        .lines()
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let row = |account: &str, (at, channel, outcome): (&str, &str, &str)| -> String {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "account_id" => account.to_string(),
                "at" => at.to_string(),
                "channel" => channel.to_string(),
                "outcome" => outcome.to_string(),
                "promised_amount" if outcome == "promise_to_pay" => "50.00".to_string(),
                "promised_on" if outcome == "promise_to_pay" => "2026-10-05".to_string(),
                _ => String::new(),
            })
            .collect();
        cells.join(",") + "\n"
    };
    let mut folder = text.clone();
    if !folder.ends_with('\n') {
        folder.push('\n');
    }
    std::fs::write(&actions, folder.clone() + &row(&refused, refusal)).expect("written");

    // Recorded through the API while an earlier day is served.
    {
        let server = Server::start_on(&db, "2026-09-16", &fx.config, &data);
        let body = |(at, channel, outcome): (&str, &str, &str)| {
            let mut b = json!({"at": at, "channel": channel, "outcome": outcome, "agent_id": "a1"});
            if outcome == "promise_to_pay" {
                b["promised_amount"] = json!("50.00");
                b["promised_on"] = json!("2026-10-05");
            }
            b
        };
        server.act(&promised, body(promise));
        server.act(&refused, body(refusal));
    }
    let server = Server::start_on(&db, DAY, &fx.config, &data);

    // What `plan` makes of a folder holding both actions once.
    let expected_data = copy_of_data(&dir.path().join("expected"));
    std::fs::write(
        expected_data.join("actions.csv"),
        folder + &row(&refused, refusal) + &row(&promised, promise),
    )
    .expect("written");
    let csv = dir.path().join("expected-plan.csv");
    run(&[
        "plan",
        "--data",
        &s(&expected_data),
        "--model",
        &s(&fx.models.join("a")),
        "--as-of",
        DAY,
        "--config",
        &s(&fx.config),
        "--out",
        &s(&csv),
    ]);
    let expected = read_rows(&csv);
    for account in [&promised, &refused] {
        let want = expected
            .iter()
            .find(|r| r["account_id"] == *account)
            .expect("planned");
        let got = server.json(&format!("/v1/accounts/{account}"), "collector");
        assert_eq!(got["strategy"], want["strategy"].as_str(), "{account}");
        assert_eq!(got["blocked_by"], want["blocked_by"].as_str(), "{account}");
        let p: f64 = want["p_pay"].parse().expect("p_pay");
        assert!(
            (got["p_pay"].as_f64().expect("p_pay") - p).abs() < 1e-4,
            "{account}: {got} vs {want:?}"
        );
        // Each action shows once in the account's history.
        let shown = got["recent_actions"]
            .as_array()
            .expect("recent")
            .iter()
            .filter(|a| {
                a["at"].as_str().is_some_and(|t| t.starts_with("2026-09-2"))
                    && a["channel"] == "call"
                    && (a["outcome"] == "refused" || a["outcome"] == "promise_to_pay")
            })
            .count();
        assert_eq!(shown, 1, "{account}: {got}");
    }
    // The promise made the plan itself hold the account, not only a live block.
    let held = server.json(&format!("/v1/accounts/{promised}"), "collector");
    assert_eq!(held["strategy"], "none", "{held}");
    assert!(
        held["blocked_by"]
            .as_str()
            .expect("blocked_by")
            .contains("promise_pending"),
        "{held}"
    );
}

/// A TCP relay between `serve` and PostgreSQL that the test can cut (every
/// connection reset, new ones refused) and restore, as a database restart
/// or a network fault would.
struct Relay {
    port: u16,
    target: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn new(target: &str) -> Relay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let mut relay = Relay {
            port,
            target: target.to_string(),
            up: Default::default(),
            open: Default::default(),
            accepting: None,
        };
        relay.start();
        relay
    }

    fn start(&mut self) {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("relay binds");
        listener.set_nonblocking(true).expect("nonblocking");
        self.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (self.up.clone(), self.open.clone(), self.target.clone());
        self.accepting = Some(std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).expect("blocking");
                        let Ok(server) = std::net::TcpStream::connect(&target) else {
                            continue;
                        };
                        let mut held = open.lock().expect("open");
                        held.push(client.try_clone().expect("clone"));
                        held.push(server.try_clone().expect("clone"));
                        for (mut from, mut to) in [
                            (
                                client.try_clone().expect("clone"),
                                server.try_clone().expect("clone"),
                            ),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Resets every connection and refuses new ones until [`Relay::start`].
    fn cut(&mut self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(accepting) = self.accepting.take() {
            accepting.join().expect("relay thread");
        }
        for stream in self.open.lock().expect("open").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Posts an action until it is acknowledged, waiting as each 503 says
/// (which must carry `Retry-After` and problem+json); any other answer fails.
fn act_until_stored(
    server: &Server,
    account: &str,
    idempotency_key: &str,
    answers: &std::sync::Mutex<Vec<u16>>,
) -> Value {
    let started = Instant::now();
    let body =
        json!({"at": now_text(), "channel": "email", "outcome": "delivered", "agent_id": "outage"});
    loop {
        let sent = client()
            .post(server.url(&format!("/v1/accounts/{account}/actions")))
            .bearer_auth(key("collector"))
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send();
        let response = match sent {
            Ok(response) => response,
            Err(e) => panic!("the server itself must keep answering: {e}"),
        };
        let status = response.status().as_u16();
        answers.lock().expect("answers").push(status);
        match status {
            201 => return response.json().expect("JSON"),
            503 => {
                let wait: u64 = response.headers()["retry-after"]
                    .to_str()
                    .expect("text")
                    .parse()
                    .expect("Retry-After in seconds");
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json"
                );
                std::thread::sleep(Duration::from_millis(250 * wait));
            }
            other => panic!(
                "action {idempotency_key}: {other} {}",
                response.text().unwrap_or_default()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not stored in 2 minutes"
        );
    }
}

/// PostgreSQL goes away under a stream of actions and comes back: writes get
/// 503 with `Retry-After` (never a 500), pages keep coming from memory
/// (marked `Prioritize-Stale`), the service reconnects by itself, and every
/// acknowledged action is stored exactly once.
fn a_store_outage_is_retried_and_loses_nothing(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "outage") else {
        return;
    };
    let target = db
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the URL")
        .to_string();
    let mut relay = Relay::new(&target);
    let relayed = db.replacen(&target, &format!("127.0.0.1:{}", relay.port), 1);
    let server = Server::start(&relayed);
    let accounts: Vec<String> = planned("email_reminder")
        .iter()
        .take(10)
        .map(|r| r["account_id"].clone())
        .collect();
    let answers = std::sync::Mutex::new(Vec::new());
    let mut stored = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        stored.push(act_until_stored(
            &server,
            account,
            &format!("before-{i}"),
            &answers,
        ));
    }

    relay.cut();
    let refused = server.post(
        &format!("/v1/accounts/{}/actions", accounts[0]),
        "collector",
        &json!({"at": now_text(), "channel": "email", "outcome": "delivered"}),
    );
    assert_eq!(refused.status(), 503, "a write while the store is away");
    assert!(refused.headers().contains_key("retry-after"));
    let page = server.get("/v1/worklists/email_reminder?limit=5", "collector");
    assert_eq!(page.status(), 200, "pages come from memory");
    assert_eq!(page.headers()["prioritize-stale"], "true");
    let page: Value = page.json().expect("JSON");
    assert_eq!(page["items"].as_array().expect("items").len(), 5);

    // Writes keep coming while the store is away; it returns after 4 s.
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            accounts
                .iter()
                .enumerate()
                .map(|(i, account)| {
                    act_until_stored(&server, account, &format!("during-{i}"), &answers)
                })
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_secs(4));
        relay.start();
        stored.extend(writer.join().expect("writer"));
    });
    let answers = answers.into_inner().expect("answers");
    assert!(
        answers.contains(&503),
        "some writes met the outage: {answers:?}"
    );
    assert!(
        answers.iter().all(|s| matches!(s, 201 | 503)),
        "{answers:?}"
    );

    // Reconnected by itself: fresh pages again.
    let started = Instant::now();
    loop {
        let page = server.get("/v1/worklists/email_reminder?limit=5", "collector");
        assert_eq!(page.status(), 200);
        if page.headers().get("prioritize-stale").is_none() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still stale after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every acknowledged action is in the store once, read past the relay.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let rows: Vec<(i64, String)> = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db).await.expect("PostgreSQL");
        sqlx::query_as(
            "SELECT id, idempotency_key FROM actions WHERE agent_id = 'outage' ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .expect("actions")
    });
    let mut keys: Vec<&str> = rows.iter().map(|(_, k)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(rows.len(), 2 * accounts.len(), "each action once: {rows:?}");
    assert_eq!(keys.len(), rows.len());
    let ids: HashSet<i64> = rows.iter().map(|(id, _)| *id).collect();
    for record in &stored {
        assert!(
            ids.contains(&record["id"].as_i64().expect("id")),
            "acknowledged {record} is stored"
        );
    }
    drop(server);
}

const BOUND_KEY: &str = "test-bound-collector-key";

/// The default id of a key: the first 12 hex digits of its hash.
fn key_id(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))[..12].to_string()
}

/// Every audit row the manager can see, page by page (`limit` per page).
fn audit_rows(server: &Server, query: &str, limit: usize) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = server.json(&path, "manager");
        let got = page["entries"].as_array().expect("entries").clone();
        assert!(got.len() <= limit);
        rows.extend(got);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return rows,
        }
    }
}

/// A key bound to an agent acts only as that agent (and is its default),
/// a manager lifts a pause an action put on an account (never anything
/// else), and every write lands in the append-only audit table with the key
/// that made it, in the same transaction.
fn keys_are_bound_and_every_write_is_audited(backend: Backend) {
    let Some((dir, db)) = store_url(backend, "audit") else {
        return;
    };
    let config = dir.path().join("audit.toml");
    let base = std::fs::read_to_string(&fixture().config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{base}[[api_keys]]\nrole = \"collector\"\nkey_sha256 = \"{}\"\nid = \"desk-1\"\nagent_id = \"a1\"\n",
            hex(&Sha256::digest(BOUND_KEY.as_bytes()))
        ),
    )
    .expect("written");
    let server = Server::start_with(&db, DAY, &config);
    let bound = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client()
            .request(method, server.url(path))
            .bearer_auth(BOUND_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().expect("request")
    };
    use reqwest::Method;

    // As another agent: refused, naming agent_id. Its own agent is the default.
    assert_problem(
        bound(
            Method::GET,
            "/v1/worklists/email_reminder?agent_id=a2",
            None,
        ),
        403,
        "agent_id",
    );
    assert_eq!(
        bound(
            Method::GET,
            "/v1/worklists/email_reminder?agent_id=a1",
            None
        )
        .status(),
        200
    );
    assert_problem(
        bound(
            Method::POST,
            "/v1/worklists/email_reminder/leases",
            Some(json!({"agent_id": "a2", "count": 1})),
        ),
        403,
        "agent_id",
    );
    assert_problem(
        server.post(
            "/v1/worklists/email_reminder/leases",
            "collector",
            &json!({"count": 1}),
        ),
        422,
        "agent_id",
    );
    let leased = bound(
        Method::POST,
        "/v1/worklists/email_reminder/leases",
        Some(json!({"count": 2})),
    );
    assert_eq!(leased.status(), 200);
    let leased: Value = leased.json().expect("JSON");
    let leased = leased["leases"].as_array().expect("leases").clone();
    assert_eq!(leased.len(), 2);
    assert!(leased.iter().all(|l| l["agent_id"] == "a1"), "{leased:?}");
    let acted = leased[0]["account_id"].as_str().expect("id").to_string();
    let released = leased[1]["account_id"].as_str().expect("id").to_string();
    let delivered = json!({"at": now_text(), "channel": "email", "outcome": "delivered"});
    let mut as_other = delivered.clone();
    as_other["agent_id"] = json!("a2");
    assert_problem(
        bound(
            Method::POST,
            &format!("/v1/accounts/{acted}/actions"),
            Some(as_other),
        ),
        403,
        "agent_id",
    );
    let action = bound(
        Method::POST,
        &format!("/v1/accounts/{acted}/actions"),
        Some(delivered),
    );
    assert_eq!(action.status(), 201);
    assert_eq!(action.json::<Value>().expect("JSON")["agent_id"], "a1");
    let release = bound(
        Method::DELETE,
        &format!("/v1/worklists/email_reminder/leases/{released}"),
        None,
    );
    assert_eq!(release.status(), 200);
    assert_eq!(release.json::<Value>().expect("JSON")["agent_id"], "a1");

    // A promise pauses an account; a manager lifts the pause, and only that.
    let unblock = |account: &str, role: &str, rule: &str| {
        server.post(
            &format!("/v1/accounts/{account}/unblock"),
            role,
            &json!({"rule": rule, "reason": "promise taken on the wrong account"}),
        )
    };
    let promise_on = (chrono::Utc::now().date_naive() + chrono::Duration::days(7)).to_string();
    let promise = json!({"at": now_text(), "channel": "sms", "outcome": "promise_to_pay",
        "promised_on": promise_on, "promised_amount": "40.00"});
    let promised = planned("sms_reminder")[0]["account_id"].clone();
    server.act(&promised, promise.clone());
    let view = |account: &str| server.json(&format!("/v1/accounts/{account}"), "collector");
    assert_eq!(view(&promised)["blocked_since_plan"], "promise_pending");
    for rule in [
        "call_attempt_limit",
        "conversation_cool_off",
        "no_contact",
        "do_not_call",
    ] {
        assert_problem(unblock(&promised, "manager", rule), 422, "rule");
    }
    assert_problem(
        unblock(&promised, "collector", "promise_pending"),
        403,
        "manager",
    );
    assert_problem(
        unblock(&promised, "manager", "dispute_open"),
        409,
        "dispute_open",
    );
    assert_problem(
        unblock("no-such-account", "manager", "promise_pending"),
        404,
        "no-such-account",
    );
    let lifted = unblock(&promised, "manager", "promise_pending");
    assert_eq!(lifted.status(), 200);
    let lifted: Value = lifted.json().expect("JSON");
    assert_eq!(lifted["lifted_now"], true, "{lifted}");
    assert_eq!(view(&promised)["blocked_since_plan"], Value::Null);
    let in_queue = |strategy: &str, account: &str| {
        server
            .queue(strategy, 500, None)
            .iter()
            .any(|i| i["account_id"] == account)
    };
    assert!(in_queue("sms_reminder", &promised), "back in its queue");
    assert_problem(
        unblock(&promised, "manager", "promise_pending"),
        409,
        "promise_pending",
    );
    // On a call, the promise's conversation also starts the cool-off: lifting
    // the promise leaves the account blocked by that.
    let called = planned("call")[0]["account_id"].clone();
    let mut by_phone = promise.clone();
    by_phone["channel"] = json!("call");
    server.act(&called, by_phone);
    let lifted: Value = unblock(&called, "manager", "promise_pending")
        .json()
        .expect("JSON");
    assert_eq!(lifted["lifted_now"], false, "{lifted}");
    assert_eq!(lifted["still_blocked_by"], "conversation_cool_off");
    assert_eq!(view(&called)["blocked_since_plan"], "conversation_cool_off");
    assert!(!in_queue("call", &called));

    // A rebuilt plan replays the recorded actions, less the lifted pause.
    let run: Value = server
        .post("/v1/runs", "analyst", &json!({}))
        .json()
        .expect("run");
    assert_eq!(run["started_by"], key_id(key("analyst")));
    let run = wait_run(&server, run["run_id"].as_u64().expect("id"));
    assert_ne!(view(&promised)["blocked_since_plan"], "promise_pending");
    assert_eq!(view(&called)["blocked_since_plan"], "conversation_cool_off");

    // The audit: who did what to each account, with the key's id.
    assert_problem(server.get("/v1/audit", "collector"), 403, "manager");
    let of = |account: &str| audit_rows(&server, &format!("&account_id={account}"), 100);
    let summary = |rows: &[Value]| -> Vec<(String, String, Value)> {
        rows.iter()
            .map(|r| {
                (
                    r["action"].as_str().expect("action").to_string(),
                    r["key_id"].as_str().expect("key").to_string(),
                    r["agent_id"].clone(),
                )
            })
            .collect()
    };
    let desk = || "desk-1".to_string();
    assert_eq!(
        summary(&of(&acted)),
        [
            ("lease".into(), desk(), json!("a1")),
            ("action".into(), desk(), json!("a1"))
        ]
    );
    assert_eq!(
        summary(&of(&released)),
        [
            ("lease".into(), desk(), json!("a1")),
            ("release".into(), desk(), json!("a1"))
        ]
    );
    let promised_rows = of(&promised);
    assert_eq!(
        summary(&promised_rows),
        [
            ("action".into(), key_id(key("collector")), Value::Null),
            ("unblock".into(), key_id(key("manager")), Value::Null),
        ]
    );
    assert_eq!(promised_rows[1]["role"], "manager");
    assert_eq!(promised_rows[1]["detail"]["rule"], "promise_pending");
    assert_eq!(
        promised_rows[1]["detail"]["reason"],
        "promise taken on the wrong account"
    );
    assert_eq!(promised_rows[0]["detail"]["outcome"], "promise_to_pay");
    // Refused requests wrote nothing; runs and activations are there too:
    // the server's own first plan, then the analyst's.
    let all = audit_rows(&server, "", 1000);
    assert_eq!(audit_rows(&server, "", 3).len(), all.len(), "pages add up");
    let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the order written");
    let runs: Vec<(String, String)> = all
        .iter()
        .filter(|r| r["account_id"].is_null())
        .map(|r| {
            (
                r["action"].as_str().expect("action").to_string(),
                r["key_id"].as_str().expect("key").to_string(),
            )
        })
        .collect();
    let analyst = key_id(key("analyst"));
    assert_eq!(
        runs,
        [
            ("run".into(), "system".into()),
            ("activate".into(), "system".into()),
            ("run".into(), analyst.clone()),
            ("activate".into(), analyst),
        ]
    );
    let activation = all.last().expect("rows");
    assert_eq!(activation["detail"]["plan_id"], run["plan_id"]);
    let leases = all.iter().filter(|r| r["action"] == "lease").count();
    assert_eq!(leases, 2, "one row per account leased");
    let since = promised_rows[1]["at"].as_str().expect("at");
    let later = audit_rows(&server, &format!("&since={since}"), 100);
    assert_eq!(
        later.first().map(|r| r["id"].clone()),
        Some(promised_rows[1]["id"].clone())
    );
    assert!(audit_rows(&server, "&since=2999-01-01", 100).is_empty());
    assert_problem(
        server.get("/v1/audit?since=yesterday", "manager"),
        422,
        "since",
    );

    // Append-only, whoever connects to the store.
    let (tamper, guard) = match backend {
        Backend::Sqlite => ("DROP TRIGGER audit_no_delete", "audit_no_delete"),
        Backend::Postgres => (
            "ALTER TABLE audit DISABLE TRIGGER audit_no_truncate",
            "audit_no_truncate",
        ),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db).await.expect("the store");
        let mut statements = vec![
            "UPDATE audit SET key_id = 'someone-else'",
            "DELETE FROM audit",
        ];
        if backend == Backend::Postgres {
            statements.push("TRUNCATE audit");
        }
        for statement in statements {
            let refused = sqlx::query(statement).execute(&mut conn).await;
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("append-only")),
                "{statement}: {refused:?}"
            );
        }
        // Only the owner gets past, by dropping or disabling a trigger; a
        // store left that way is refused at the next start, naming it.
        sqlx::query(tamper).execute(&mut conn).await.expect(tamper);
    });
    let fx = fixture();
    let restart = Command::new(binary())
        .args([
            "serve",
            "--as-of",
            DAY,
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--data",
        ])
        .arg(&fx.data)
        .arg("--model")
        .arg(fx.models.join("a"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("serve runs");
    let stderr = String::from_utf8_lossy(&restart.stderr);
    assert!(
        !restart.status.success() && stderr.contains(guard) && stderr.contains("append-only"),
        "a store whose audit lost a guard must be refused: {stderr}"
    );
}

/// A lease ends early by `DELETE`: only its holder (naming itself) or a
/// manager may end it, and the account is free for the next lease at once.
fn leases_can_be_released(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "release") else {
        return;
    };
    let server = Server::start(&db);
    let delete = |path: &str, role: &str| {
        client()
            .delete(server.url(path))
            .bearer_auth(key(role))
            .send()
            .expect("request")
    };
    let first = server.lease("email_reminder", "a1", 1);
    let account = first[0]["account_id"].as_str().expect("id").to_string();
    let path = format!("/v1/worklists/email_reminder/leases/{account}");
    assert_problem(
        delete(&format!("{path}?agent_id=a2"), "collector"),
        403,
        "agent_id",
    );
    assert_problem(delete(&path, "collector"), 422, "agent_id");
    assert_problem(
        delete(&format!("{path}?agent_id=a1"), "analyst"),
        403,
        "collector",
    );
    assert_problem(
        delete(
            &format!("/v1/worklists/call/leases/{account}?agent_id=a1"),
            "collector",
        ),
        404,
        &account,
    );
    let released = delete(&format!("{path}?agent_id=a1"), "collector");
    assert_eq!(released.status(), 200);
    let released: Value = released.json().expect("JSON");
    assert_eq!(released["agent_id"], "a1");
    assert_eq!(released["account_id"], account.as_str());
    assert_problem(
        delete(&format!("{path}?agent_id=a1"), "collector"),
        404,
        "no live lease",
    );
    // Free at once: the head of the queue again, for another agent.
    let again = server.lease("email_reminder", "a2", 1);
    assert_eq!(again[0]["account_id"], account.as_str());
    // A manager ends anyone's lease without naming the agent.
    let ended = delete(&path, "manager");
    assert_eq!(ended.status(), 200);
    assert_eq!(ended.json::<Value>().expect("JSON")["agent_id"], "a2");
    let view = server.json(&format!("/v1/accounts/{account}"), "collector");
    assert!(view["leased_by"].is_null(), "{view}");
}

/// A lease request retried with its `Idempotency-Key` (its reply lost) gets
/// the same accounts and leases nothing more; the key with another body is
/// refused; keys are per queue.
fn leases_are_idempotent(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "lease_idempotent") else {
        return;
    };
    let server = Server::start(&db);
    let send = |strategy: &str, body: &Value, idempotency_key: &str| {
        client()
            .post(server.url(&format!("/v1/worklists/{strategy}/leases")))
            .bearer_auth(key("collector"))
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .expect("request")
    };
    let ids = |response: Response| -> (bool, Vec<String>) {
        assert_eq!(response.status(), 200);
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let body: Value = response.json().expect("JSON");
        let ids = body["leases"]
            .as_array()
            .expect("leases")
            .iter()
            .map(|l| l["account_id"].as_str().expect("id").to_string())
            .collect();
        (replayed, ids)
    };
    let body = json!({"agent_id": "a3", "count": 2, "ttl_seconds": 600});
    let (replayed, first) = ids(send("email_reminder", &body, "lease-1"));
    assert!(!replayed);
    assert_eq!(first.len(), 2);
    let (replayed, again) = ids(send("email_reminder", &body, "lease-1"));
    assert!(replayed, "the retry is a replay");
    assert_eq!(again, first);
    assert_problem(
        send(
            "email_reminder",
            &json!({"agent_id": "a3", "count": 3}),
            "lease-1",
        ),
        422,
        "Idempotency-Key",
    );
    let (_, next) = ids(send("email_reminder", &body, "lease-2"));
    assert_eq!(next.len(), 2);
    assert!(
        next.iter().all(|a| !first.contains(a)),
        "{first:?} {next:?}"
    );
    // Nothing more was leased by the retry: exactly four accounts are a3's.
    let held: Vec<String> = server
        .queue("email_reminder", 500, Some("a3"))
        .iter()
        .filter(|item| {
            let id = item["account_id"].as_str().expect("id");
            server.json(&format!("/v1/accounts/{id}"), "collector")["leased_by"] == "a3"
        })
        .map(|item| item["account_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(held.len(), 4, "{held:?}");
    let (replayed, other_queue) = ids(send("sms_reminder", &body, "lease-1"));
    assert!(!replayed, "keys are per queue");
    assert_eq!(other_queue.len(), 2);
}

/// What a broken or hostile client cannot do: hold a connection open without
/// sending its headers, take every request slot (the rest are shed with 503),
/// or go past its key's rate (429); all with `Retry-After` where a retry helps.
fn limits_protect_the_server(backend: Backend) {
    use std::io::{Read, Write};
    let Some((dir, db)) = store_url(backend, "limits") else {
        return;
    };
    let config = dir.path().join("limits.toml");
    let base = std::fs::read_to_string(&fixture().config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{base}[limits]\nheader_read_timeout_seconds = 4\nbody_read_timeout_seconds = 45\n\
             max_concurrent_requests = 2\nper_key_per_second = 1\nper_key_burst = 3\n"
        ),
    )
    .expect("written");
    let server = Server::start_with(&db, DAY, &config);
    let address = server.base.trim_start_matches("http://").to_string();

    // Headers that never end: the connection is closed after the timeout.
    let mut slow = std::net::TcpStream::connect(&address).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let started = Instant::now();
    let mut rest = Vec::new();
    let ended = slow.read_to_end(&mut rest);
    assert!(ended.is_ok(), "the server closed the connection: {ended:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "closed after {:?}",
        started.elapsed()
    );

    // The key is checked from the headers, before the body is read: a
    // request without a good key whose body never arrives is refused at
    // once (long before the bodies' 45 s) and holds no slot.
    let account = planned("email_reminder")[0]["account_id"].clone();
    for authorization in ["", "Authorization: Bearer not-a-key\r\n"] {
        let mut keyless = std::net::TcpStream::connect(&address).expect("connect");
        keyless
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        write!(
            keyless,
            "POST /v1/accounts/{account}/actions HTTP/1.1\r\nHost: x\r\n{authorization}\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"at\""
        )
        .expect("write");
        let mut answer = [0u8; 12];
        keyless
            .read_exact(&mut answer)
            .expect("an answer before the body arrives");
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert_eq!(answer, "HTTP/1.1 401", "{authorization:?}");
    }

    // Two keyed requests whose bodies never arrive take both slots: a third
    // is shed at once, while health and readiness still answer.
    let hold = || {
        let mut held = std::net::TcpStream::connect(&address).expect("connect");
        write!(
            held,
            "POST /v1/accounts/{account}/actions HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"at\"",
            key("admin")
        )
        .expect("write");
        held
    };
    // What a held connection got so far: nothing (still held), an answer,
    // or its end.
    let got = |held: &std::net::TcpStream| -> Option<String> {
        let mut peek = [0u8; 200];
        held.set_nonblocking(true).expect("nonblocking");
        let got = match held.peek(&mut peek) {
            Ok(0) => Some("closed".to_string()),
            Ok(n) => Some(String::from_utf8_lossy(&peek[..n]).to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(format!("error: {e}")),
        };
        held.set_nonblocking(false).expect("blocking");
        got
    };
    let mut holding: Vec<std::net::TcpStream> = (0..2).map(|_| hold()).collect();
    let page = || {
        client()
            .get(server.url("/v1/worklists/email_reminder?limit=1"))
            .bearer_auth(key("collector"))
            .send()
            .expect("request")
    };
    // A held request that reaches the server while a probe is in flight is
    // itself shed (on PostgreSQL a page waits for its freshness marker, so
    // the window is wide): it is sent again until both hold their slots.
    let started = Instant::now();
    let shed = loop {
        std::thread::sleep(Duration::from_millis(200));
        for held in holding.iter_mut() {
            if got(held).is_some() {
                *held = hold();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let response = page();
        if response.status() == 503 {
            break response;
        }
        if started.elapsed() > Duration::from_secs(25) {
            let got: Vec<Option<String>> = holding.iter().map(got).collect();
            panic!(
                "nothing was shed in 25 s (last page {}); the held connections got {got:?}",
                response.status()
            );
        }
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_problem(shed, 503, "max_concurrent_requests");
    for path in ["/healthz", "/readyz"] {
        let probe = client().get(server.url(path)).send().expect("request");
        assert_eq!(probe.status(), 200, "{path} is never shed");
    }
    // The request's time runs out (30 s, before the bodies' 45 s): each
    // held request is answered and its slot freed.
    for mut held in holding {
        held.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut answer = [0u8; 12];
        held.read_exact(&mut answer)
            .expect("an answer within the body timeout");
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    let started = Instant::now();
    while page().status() == 503 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slots were not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Each key has its own budget: a burst of 3, then 1 a second.
    for _ in 0..3 {
        assert_eq!(server.get("/v1/models", "analyst").status(), 200);
    }
    let limited = server.get("/v1/models", "analyst");
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_problem(limited, 429, "per_key_per_second");
    assert_eq!(
        server.get("/v1/segments", "manager").status(),
        200,
        "another key"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        server.get("/v1/models", "analyst").status(),
        200,
        "after the wait"
    );
}

/// `sslmode=require` (and `verify-ca` against the server's certificate)
/// connect, and every connection `serve` holds is encrypted.
fn serve_connects_over_tls(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "tls") else {
        return;
    };
    let separator = if db.contains('?') { '&' } else { '?' };
    let mut urls = vec![format!("{db}{separator}sslmode=require")];
    // The machine's PostgreSQL serves Debian's self-signed snakeoil
    // certificate, made out to localhost: verified against it as the root, by
    // that name (sqlx 0.8.6 also checks the name under verify-ca, launchbadge/sqlx#3793).
    let certificate = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if Path::new(certificate).is_file() {
        let by_name = db.replacen("@127.0.0.1:", "@localhost:", 1);
        for mode in ["verify-ca", "verify-full"] {
            urls.push(format!(
                "{by_name}{separator}sslmode={mode}&sslrootcert={certificate}"
            ));
        }
    }
    for url in urls {
        let server = Server::start(&url);
        assert_eq!(
            server
                .get("/v1/worklists/call?limit=1", "collector")
                .status(),
            200
        );
        let name = db.rsplit('/').next().expect("database").to_string();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (connections, encrypted): (i64, i64) = runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db).await.expect("PostgreSQL");
            sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            )
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_ssl")
        });
        assert!(connections > 0, "{url}: serve holds connections");
        assert_eq!(encrypted, connections, "{url}: every connection is TLS");
        drop(server);
    }
}

/// Replicas that start together on a new day build one plan between them:
/// runs take turns (an advisory lock), and a replica that then finds the
/// day's plan active serves it instead of building its own.
fn replicas_starting_together_build_one_plan(backend: Backend) {
    let Some((_dir, db)) = store_url(backend, "together") else {
        return;
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(&db));
        let b = s.spawn(|| Server::start(&db));
        (a.join().expect("replica a"), b.join().expect("replica b"))
    });
    let plan = |server: &Server| server.json("/readyz", "analyst")["plan_id"].clone();
    assert_eq!(plan(&a), plan(&b));
    let runs: Vec<(String, Value)> = audit_rows(&b, "", 1000)
        .into_iter()
        .filter(|r| r["account_id"].is_null())
        .map(|r| {
            (
                r["action"].as_str().expect("action").to_string(),
                r["detail"]["plan_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("run".to_string(), plan(&a)),
            ("activate".to_string(), plan(&a))
        ],
        "one plan built and activated"
    );
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $case() { super::$case(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $case() { super::$case(super::Backend::Postgres) })*
        }
    };
}

on_both_stores!(
    worklists_page_through_the_plan,
    pages_show_every_change_committed_before_them,
    a_challenger_plans_a_share_and_can_be_activated,
    keys_and_roles,
    leases_are_exclusive,
    actions_are_idempotent,
    actions_change_compliance_at_once,
    actions_survive_kill_9,
    bad_input_is_a_problem,
    segments_models_openapi_metrics,
    segments_show_the_change_since_the_previous_plan,
    outcomes_come_from_served_decisions,
    api_actions_count_in_the_next_plan,
    limits_protect_the_server,
    leases_can_be_released,
    leases_are_idempotent,
    keys_are_bound_and_every_write_is_audited,
);

/// Cases only PostgreSQL has: a server to lose, and TLS to it.
mod postgres_only {
    #[test]
    fn a_store_outage_is_retried_and_loses_nothing() {
        super::a_store_outage_is_retried_and_loses_nothing(super::Backend::Postgres)
    }
    #[test]
    fn serve_connects_over_tls() {
        super::serve_connects_over_tls(super::Backend::Postgres)
    }
    #[test]
    fn replicas_starting_together_build_one_plan() {
        super::replicas_starting_together_build_one_plan(super::Backend::Postgres)
    }
}
