//! HTTP load on a running `prioritize serve`: requests per second and p50/p99
//! latency for worklist pages of 50, leases and durable actions.
//!
//! `benches/serve.sh` starts the servers (SQLite and PostgreSQL) and runs this:
//!
//! ```text
//! cargo bench --bench serve_load -- --base http://127.0.0.1:8080 --key KEY \
//!     --scenario pages --seconds 10 --concurrency 32
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Args {
    base: String,
    key: String,
    scenario: String,
    seconds: u64,
    concurrency: usize,
}

fn args() -> Args {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        key: String::new(),
        scenario: "pages".into(),
        seconds: 10,
        concurrency: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--base" => args.base = value(),
            "--key" => args.key = value(),
            "--scenario" => args.scenario = value(),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency N"),
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !args.key.is_empty(),
        "--key KEY (a collector or admin key) is required"
    );
    args
}

/// What every worker needs: the plan, its queues and some account ids.
struct Target {
    plan_id: i64,
    /// (strategy, queue length)
    queues: Vec<(String, u64)>,
    /// The largest queue of work not done by phone: calls are leased only
    /// where it is now within calling hours, which would make the figure
    /// depend on the hour the benchmark runs.
    lease_queue: String,
    accounts: Vec<String>,
}

async fn target(client: &reqwest::Client, args: &Args) -> Target {
    let ready: Value = client
        .get(format!("{}/readyz", args.base))
        .send()
        .await
        .expect("server up")
        .json()
        .await
        .expect("JSON");
    let plan_id = ready["plan_id"].as_i64().expect("a plan is served");
    let segments: Value = client
        .get(format!("{}/v1/segments", args.base))
        .bearer_auth(&args.key)
        .send()
        .await
        .expect("segments")
        .json()
        .await
        .expect("JSON");
    let queues: Vec<(String, u64)> = segments["queues"]
        .as_array()
        .expect("queues (the key must be admin)")
        .iter()
        .map(|q| {
            (
                q["strategy"].as_str().expect("name").to_string(),
                q["planned"].as_u64().expect("planned"),
            )
        })
        .filter(|(_, n)| *n >= 100)
        .collect();
    let mut queues = queues;
    // The largest queue first: leases and actions draw from it.
    queues.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let page: Value = client
        .get(format!(
            "{}/v1/worklists/{}?limit=500",
            args.base, queues[0].0
        ))
        .bearer_auth(&args.key)
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("JSON");
    let accounts = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["account_id"].as_str().expect("id").to_string())
        .collect();
    let by_phone = ["call", "settlement_offer", "installment_plan"];
    let lease_queue = queues
        .iter()
        .find(|(s, _)| s != "none" && !by_phone.contains(&s.as_str()))
        .expect("a queue not worked by phone")
        .0
        .clone();
    Target {
        plan_id,
        queues,
        lease_queue,
        accounts,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Arc::new(args());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .expect("client");
    let target = Arc::new(target(&client, &args).await);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let finished = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (client, args, target, errors, counter, finished) = (
                client.clone(),
                args.clone(),
                target.clone(),
                errors.clone(),
                counter.clone(),
                finished.clone(),
            );
            tokio::spawn(async move {
                let mut latencies: Vec<u64> = Vec::new();
                let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ worker as u64;
                let mut next = move || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let request = match args.scenario.as_str() {
                        "pages" => {
                            let (strategy, len) = &target.queues[next() as usize % target.queues.len()];
                            let rank = next() % len.saturating_sub(50).max(1);
                            client.get(format!(
                                "{}/v1/worklists/{strategy}?limit=50&cursor={}.{rank}",
                                args.base, target.plan_id
                            ))
                        }
                        "leases" => {
                            let strategy = &target.lease_queue;
                            client
                                .post(format!("{}/v1/worklists/{strategy}/leases", args.base))
                                .json(&json!({"agent_id": format!("bench-{worker}"), "count": 1, "ttl_seconds": 600}))
                        }
                        "actions" => {
                            let account = &target.accounts[next() as usize % target.accounts.len()];
                            client
                                .post(format!("{}/v1/accounts/{account}/actions", args.base))
                                .header("Idempotency-Key", format!("bench-{}-{n}", target.plan_id))
                                .json(&json!({
                                    "at": chrono::Utc::now().to_rfc3339(),
                                    "channel": "email",
                                    "outcome": "delivered",
                                }))
                        }
                        other => panic!("unknown scenario {other}: pages, leases or actions"),
                    };
                    let sent = Instant::now();
                    match request.bearer_auth(&args.key).send().await {
                        Ok(response) if response.status().is_success() => {
                            let body = response.bytes().await.unwrap_or_default();
                            // An empty lease: the queue is done (leases last 10 minutes,
                            // so none come back during the run). Only leases that got
                            // an account count, over the time until the queue emptied.
                            if args.scenario == "leases" && body.as_ref() == br#"{"leases":[]}"# {
                                break;
                            }
                            latencies.push(sent.elapsed().as_micros() as u64);
                            *finished.lock().expect("lock") = started.elapsed();
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    // Until the last counted reply (a lease run may end when its queue does).
    let elapsed = finished.lock().expect("lock").as_secs_f64();
    all.sort_unstable();
    println!(
        "{:<8} {:>9} requests {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}   ({} connections, {:.0} s)",
        args.scenario,
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        errors.load(Ordering::Relaxed),
        args.concurrency,
        elapsed
    );
}
