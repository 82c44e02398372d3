//! The served plan's queues in memory, so that a worklist page needs no
//! database round trip.
//!
//! A [`Snapshot`] holds every queue of the active plan in rank order, each
//! entry already rendered as JSON, plus each account's live state (blocked
//! since the plan, leased to whom until when). The live state follows the
//! store through [`Change`]s:
//! - SQLite has one process: the server applies its own commits right after
//!   them, before it replies;
//! - PostgreSQL has replicas: each one applies every replica's changes from
//!   `LISTEN`/`NOTIFY` (delivered on commit, in commit order), and a page
//!   read first waits for a marker it sent itself to come back, so that it
//!   sees everything committed before it began ([`Freshness`]).
//!
//! Changes that arrive while a snapshot loads are kept and replayed on it:
//! each sets an absolute state, so replaying one the load already saw is
//! harmless. When no snapshot of the active plan is in place (a switch in
//! progress, a lost listener), pages come from the store as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::store::{Change, QueueRow};
use crate::contract::Strategy;
use crate::strategy::allocate::K;

/// An account's state since the plan was made.
#[derive(Debug, Clone, Default)]
struct LiveState {
    blocked: bool,
    /// Agent and expiry (microseconds since the epoch).
    lease: Option<(Box<str>, i64)>,
    /// Named to a lease in flight until then: concurrent leases name others.
    reserved_until: i64,
}

impl LiveState {
    /// Whether `agent` (anybody, when `None`) sees the account in its queue at `now`.
    fn visible(&self, now: i64, agent: Option<&str>) -> bool {
        if self.blocked {
            return false;
        }
        match &self.lease {
            Some((holder, expires)) => *expires <= now || agent == Some(&**holder),
            None => true,
        }
    }
}

/// How long a lease in flight holds the accounts it named (microseconds).
pub const RESERVATION: i64 = 2_000_000;

/// One strategy's queue.
#[derive(Default)]
struct Queue {
    ranks: Vec<i64>,
    ids: Vec<Box<str>>,
    /// Each entry rendered as a worklist item.
    json: Vec<Box<str>>,
    /// Index of the account's time zone in [`Snapshot::zones`].
    zone: Vec<u32>,
    /// No call before this instant (`i64::MIN`: no cool-off).
    call_from: Vec<i64>,
    live: RwLock<Vec<LiveState>>,
}

/// The active plan's queues with their live state.
pub struct Snapshot {
    pub plan_id: i64,
    queues: Vec<Queue>,
    /// Where an account stands: its queue and position.
    position: HashMap<Box<str>, (usize, usize)>,
    /// The plan's time zones.
    zones: Vec<String>,
}

impl Snapshot {
    /// Builds a snapshot of plan `plan_id` from its rows, rendering each entry with `render`.
    pub fn new(
        plan_id: i64,
        mut rows: Vec<QueueRow>,
        render: impl Fn(&super::store::Item) -> String,
    ) -> Snapshot {
        rows.sort_by_key(|r| (r.strategy, r.item.queue_rank));
        let mut queues: Vec<Queue> = (0..K).map(|_| Queue::default()).collect();
        let mut position = HashMap::with_capacity(rows.len());
        let mut live: Vec<Vec<LiveState>> = vec![Vec::new(); K];
        let mut zones: Vec<String> = Vec::new();
        let mut zone_index: HashMap<String, u32> = HashMap::new();
        for row in rows {
            let queue = &mut queues[row.strategy];
            position.insert(
                row.item.account_id.clone().into_boxed_str(),
                (row.strategy, queue.ranks.len()),
            );
            queue.ranks.push(row.item.queue_rank);
            queue.ids.push(row.item.account_id.clone().into_boxed_str());
            queue.json.push(render(&row.item).into_boxed_str());
            let zone = *zone_index.entry(row.timezone.clone()).or_insert_with(|| {
                zones.push(row.timezone.clone());
                zones.len() as u32 - 1
            });
            queue.zone.push(zone);
            queue.call_from.push(row.call_from.unwrap_or(i64::MIN));
            live[row.strategy].push(LiveState {
                blocked: row.blocked,
                lease: row
                    .lease
                    .map(|(agent, expires)| (agent.into_boxed_str(), expires)),
                reserved_until: 0,
            });
        }
        for (queue, live) in queues.iter_mut().zip(live) {
            queue.live = RwLock::new(live);
        }
        Snapshot {
            plan_id,
            queues,
            position,
            zones,
        }
    }

    /// The first `count` accounts of `strategy`'s queue that nobody holds at
    /// `now`; with `zones` (calls), only those time zones and past any
    /// cool-off. They are reserved for [`RESERVATION`] so that leases in
    /// flight at the same time name different accounts.
    pub fn candidates(
        &self,
        strategy: Strategy,
        count: usize,
        now: i64,
        zones: Option<&[String]>,
    ) -> Vec<String> {
        let allowed: Option<Vec<bool>> =
            zones.map(|names| self.zones.iter().map(|z| names.contains(z)).collect());
        let queue = &self.queues[strategy as usize];
        let mut live = queue.live.write().expect("queue lock");
        let picked: Vec<usize> = (0..queue.ranks.len())
            .filter(|&k| live[k].visible(now, None) && live[k].reserved_until <= now)
            .filter(|&k| match &allowed {
                Some(allowed) => allowed[queue.zone[k] as usize] && queue.call_from[k] <= now,
                None => true,
            })
            .take(count)
            .collect();
        for &k in &picked {
            live[k].reserved_until = now + RESERVATION;
        }
        picked.iter().map(|&k| queue.ids[k].to_string()).collect()
    }

    /// Ends the reservation of accounts a lease named but did not get.
    pub fn release_reservations(&self, accounts: &[String]) {
        for account in accounts {
            if let Some(&(strategy, k)) = self.position.get(account.as_str()) {
                self.queues[strategy].live.write().expect("queue lock")[k].reserved_until = 0;
            }
        }
    }

    /// Writes up to `limit` items of `strategy`'s queue after rank `after`
    /// that `agent` may see at `now` to `out`, comma-separated; returns how
    /// many, and the last one's rank when more follow it.
    pub fn page(
        &self,
        strategy: Strategy,
        after: i64,
        limit: usize,
        now: i64,
        agent: Option<&str>,
        out: &mut String,
    ) -> (usize, Option<i64>) {
        let queue = &self.queues[strategy as usize];
        let live = queue.live.read().expect("queue lock");
        let start = queue.ranks.partition_point(|&rank| rank <= after);
        let mut taken = 0;
        let mut last = None;
        for k in start..queue.ranks.len() {
            if !live[k].visible(now, agent) {
                continue;
            }
            if taken == limit {
                return (taken, last);
            }
            if taken > 0 {
                out.push(',');
            }
            out.push_str(&queue.json[k]);
            taken += 1;
            last = Some(queue.ranks[k]);
        }
        (taken, None)
    }

    fn apply(&self, change: &Change) {
        let set = |account: &str, update: &dyn Fn(&mut LiveState)| {
            if let Some(&(strategy, k)) = self.position.get(account) {
                let mut live = self.queues[strategy].live.write().expect("queue lock");
                update(&mut live[k]);
            }
        };
        match change {
            Change::Leased {
                agent,
                expires,
                accounts,
                ..
            } => {
                for account in accounts {
                    set(account, &|s| {
                        s.lease = Some((agent.clone().into_boxed_str(), *expires))
                    });
                }
            }
            Change::Blocked { accounts, .. } => {
                for account in accounts {
                    set(account, &|s| {
                        s.blocked = true;
                        s.lease = None;
                    });
                }
            }
            Change::Released { account, .. } => set(account, &|s| s.lease = None),
            Change::Unblocked { account, .. } => set(account, &|s| s.blocked = false),
            Change::Activated { .. } | Change::Marker { .. } => {}
        }
    }
}

/// The snapshot in service and the changes that must reach the next one.
pub struct Queues {
    current: ArcSwapOption<Snapshot>,
    /// The last snapshot installed, kept through an invalidation: pages come
    /// from it while the store cannot be reached.
    last: ArcSwapOption<Snapshot>,
    /// The store's active plan as last heard; a snapshot of another plan is not served.
    active: AtomicI64,
    /// While a snapshot loads: the changes applied meanwhile, to replay on it,
    /// and the generation the load started in.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    changes: Option<Vec<Change>>,
    /// Bumped when changes may have been missed: a load started before
    /// cannot be trusted and is not installed.
    generation: u64,
}

impl Default for Queues {
    fn default() -> Self {
        Queues {
            current: ArcSwapOption::empty(),
            last: ArcSwapOption::empty(),
            active: AtomicI64::new(-1),
            pending: Mutex::new(Pending::default()),
        }
    }
}

impl Queues {
    /// The snapshot to serve from, if it is of the active plan.
    pub fn serving(&self) -> Option<Arc<Snapshot>> {
        self.current
            .load_full()
            .filter(|s| s.plan_id == self.active.load(Ordering::SeqCst))
    }

    /// The store's active plan is now `plan_id`.
    pub fn activated(&self, plan_id: i64) {
        self.active.store(plan_id, Ordering::SeqCst);
    }

    /// Applies a committed change to the snapshot (and to one being loaded).
    pub fn apply(&self, change: Change) {
        if let Change::Activated { plan } = change {
            self.activated(plan);
            return;
        }
        let mut pending = self.pending.lock().expect("pending lock");
        if let Some(snapshot) = self.current.load().as_ref() {
            if Some(snapshot.plan_id) == change.plan() {
                snapshot.apply(&change);
            }
        }
        if let Some(changes) = pending.changes.as_mut() {
            changes.push(change);
        }
    }

    /// Marks the start of a load: changes from now on are kept for it.
    /// Returns the generation to hand to [`Queues::install`].
    pub fn loading(&self) -> u64 {
        let mut pending = self.pending.lock().expect("pending lock");
        pending.changes = Some(Vec::new());
        pending.generation
    }

    /// Installs a loaded snapshot after replaying the changes made while it
    /// loaded; false (and nothing installed) when the queues were
    /// invalidated after the load began.
    pub fn install(&self, snapshot: Snapshot, generation: u64) -> bool {
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.generation != generation {
            return false;
        }
        for change in pending.changes.take().unwrap_or_default() {
            if change.plan() == Some(snapshot.plan_id) {
                snapshot.apply(&change);
            }
        }
        let snapshot = Arc::new(snapshot);
        self.last.store(Some(snapshot.clone()));
        self.current.store(Some(snapshot));
        true
    }

    /// The last snapshot installed, even if invalidated since (changes
    /// applied to it before the invalidation included), if it is of the
    /// active plan as last heard.
    pub fn last(&self) -> Option<Arc<Snapshot>> {
        self.last
            .load_full()
            .filter(|s| s.plan_id == self.active.load(Ordering::SeqCst))
    }

    /// Drops the snapshot, and any load under way: changes may have been
    /// missed (a lost listener), so only a load started after this counts.
    pub fn invalidate(&self) {
        let mut pending = self.pending.lock().expect("pending lock");
        pending.generation += 1;
        pending.changes = None;
        self.current.store(None);
    }
}

/// Read-after-commit across replicas: a page read waits until this replica
/// has applied every change committed before the read began. Reads that
/// arrive together share one round trip (a marker sent through the store and
/// heard back on the listener).
pub struct Freshness {
    replica: String,
    gate: tokio::sync::Mutex<()>,
    started: AtomicU64,
    done: AtomicU64,
    heard: tokio::sync::watch::Sender<u64>,
}

impl Freshness {
    pub fn new(replica: String) -> Freshness {
        Freshness {
            replica,
            gate: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            done: AtomicU64::new(0),
            heard: tokio::sync::watch::channel(0).0,
        }
    }

    /// This replica's name in markers.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The listener heard marker `n` of this replica.
    pub fn heard(&self, n: u64) {
        self.heard.send_if_modified(|seen| {
            let newer = n > *seen;
            if newer {
                *seen = n;
            }
            newer
        });
    }

    /// Waits until every change committed before the call has been applied;
    /// `send` sends marker `n`. False when the marker did not come back in time.
    pub async fn wait<F, Fut>(&self, send: F) -> bool
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let arrival = self.started.load(Ordering::SeqCst);
        let _gate = self.gate.lock().await;
        if self.done.load(Ordering::SeqCst) > arrival {
            return true;
        }
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let mut heard = self.heard.subscribe();
        if !send(n).await {
            return false;
        }
        let back = tokio::time::timeout(Duration::from_secs(2), heard.wait_for(|&seen| seen >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        if back {
            self.done.store(n, Ordering::SeqCst);
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::store::Item;

    fn row(id: &str, strategy: Strategy, rank: i64) -> QueueRow {
        QueueRow {
            strategy: strategy as usize,
            item: Item {
                account_id: id.into(),
                queue_rank: rank,
                priority: 0,
                p_pay: 0.5,
                expected_value: 0,
                currency: "USD".into(),
                reasons: String::new(),
            },
            blocked: false,
            lease: None,
            timezone: if rank % 2 == 0 {
                "Europe/Paris"
            } else {
                "America/Chicago"
            }
            .into(),
            call_from: (rank == 3).then_some(5_000),
        }
    }

    /// Twelve calls a1…a12 (given out of order) and one letter.
    fn snapshot(plan: i64) -> Snapshot {
        let mut rows: Vec<QueueRow> = (1..=12)
            .rev()
            .map(|k| row(&format!("a{k}"), Strategy::Call, k))
            .collect();
        rows.push(row("letter", Strategy::DemandLetter, 1));
        rows[3].blocked = true; // a9
        rows[4].lease = Some(("ann".into(), 2_000)); // a8
        Snapshot::new(plan, rows, |item| format!("\"{}\"", item.account_id))
    }

    fn page(
        s: &Snapshot,
        after: i64,
        limit: usize,
        now: i64,
        agent: Option<&str>,
    ) -> (String, Option<i64>) {
        let mut out = String::new();
        let (_, next) = s.page(Strategy::Call, after, limit, now, agent, &mut out);
        (out, next)
    }

    #[test]
    fn pages_leave_out_blocked_accounts_and_others_leases_until_they_expire() {
        let s = snapshot(1);
        assert_eq!(
            page(&s, 0, 5, 1_000, None),
            (r#""a1","a2","a3","a4","a5""#.into(), Some(5))
        );
        assert_eq!(
            page(&s, 5, 5, 1_000, None),
            (r#""a6","a7","a10","a11","a12""#.into(), None)
        );
        assert_eq!(page(&s, 5, 3, 1_000, Some("ann")).0, r#""a6","a7","a8""#);
        assert_eq!(
            page(&s, 5, 3, 2_000, None).0,
            r#""a6","a7","a8""#,
            "an expired lease"
        );
        assert_eq!(
            page(&s, 7, 5, 1_000, None),
            (r#""a10","a11","a12""#.into(), None)
        );
        assert_eq!(page(&s, 12, 5, 1_000, None), (String::new(), None));
    }

    #[test]
    fn lease_candidates_are_the_first_free_accounts_in_open_zones_past_any_cool_off() {
        let s = snapshot(1);
        let all = |s: &Snapshot| {
            let named: Vec<String> = (1..=12).map(|k| format!("a{k}")).collect();
            s.release_reservations(&named);
        };
        assert_eq!(
            s.candidates(Strategy::Call, 3, 1_000, None),
            ["a1", "a2", "a3"]
        );
        // Named to a lease in flight, they are not named again until it ends.
        assert_eq!(s.candidates(Strategy::Call, 2, 1_000, None), ["a4", "a5"]);
        assert_eq!(
            s.candidates(Strategy::Call, 1, 1_000 + RESERVATION, None),
            ["a1"],
            "a reservation lapses"
        );
        all(&s);
        // a8 is leased until 2000 and a9 blocked.
        let paris = ["Europe/Paris".to_string()];
        assert_eq!(
            s.candidates(Strategy::Call, 5, 1_000, Some(&paris)),
            ["a2", "a4", "a6", "a10", "a12"]
        );
        all(&s);
        let chicago = ["America/Chicago".to_string()];
        assert_eq!(
            s.candidates(Strategy::Call, 2, 1_000, Some(&chicago)),
            ["a1", "a5"],
            "a3 cools off"
        );
        all(&s);
        assert_eq!(
            s.candidates(Strategy::Call, 2, 5_000, Some(&chicago)),
            ["a1", "a3"]
        );
        assert!(s.candidates(Strategy::Call, 2, 1_000, Some(&[])).is_empty());
        assert_eq!(
            s.candidates(Strategy::DemandLetter, 5, 1_000, None),
            ["letter"]
        );
    }

    #[test]
    fn changes_apply_only_to_their_plan_and_reach_a_snapshot_that_was_loading() {
        let queues = Queues::default();
        queues.activated(1);
        assert!(queues.serving().is_none(), "nothing loaded yet");
        let generation = queues.loading();
        assert!(queues.install(snapshot(1), generation));
        let leased = |accounts: &[&str], plan| Change::Leased {
            plan,
            agent: "bo".into(),
            expires: 9_000,
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
        };
        queues.apply(leased(&["a1", "a2"], 1));
        queues.apply(leased(&["a3"], 2));
        queues.apply(Change::Blocked {
            plan: 1,
            accounts: vec!["a4".into()],
        });
        let served = queues.serving().expect("plan 1");
        assert_eq!(page(&served, 0, 3, 1_000, None).0, r#""a3","a5","a6""#);
        queues.apply(Change::Released {
            plan: 1,
            account: "a1".into(),
        });
        assert_eq!(page(&served, 0, 1, 1_000, None).0, r#""a1""#);

        // Plan 2 becomes active: plan 1 is no longer served; what happens
        // while plan 2 loads is replayed on it.
        queues.apply(Change::Activated { plan: 2 });
        assert!(queues.serving().is_none(), "a snapshot of the old plan");
        let generation = queues.loading();
        let loaded = snapshot(2);
        queues.apply(leased(&["a1"], 2));
        queues.apply(Change::Blocked {
            plan: 2,
            accounts: vec!["a2".into()],
        });
        assert!(queues.install(loaded, generation));
        let served = queues.serving().expect("plan 2");
        assert_eq!(page(&served, 0, 2, 1_000, None).0, r#""a3","a4""#);
        queues.invalidate();
        assert!(queues.serving().is_none());

        // A load under way when the queues are invalidated (changes may have
        // been missed meanwhile) is not installed; one started after is.
        let stale = queues.loading();
        queues.invalidate();
        assert!(!queues.install(snapshot(2), stale));
        assert!(queues.serving().is_none());
        let fresh = queues.loading();
        assert!(queues.install(snapshot(2), fresh));
        assert!(queues.serving().is_some());
    }

    #[tokio::test]
    async fn reads_that_arrive_together_share_one_marker() {
        let freshness = Arc::new(Freshness::new("r".into()));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reads: Vec<_> = (0..20)
            .map(|_| {
                let (freshness, sent) = (freshness.clone(), sent.clone());
                tokio::spawn(async move {
                    let echo = freshness.clone();
                    freshness
                        .wait(|n| async move {
                            sent.lock().expect("lock").push(n);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            echo.heard(n);
                            true
                        })
                        .await
                })
            })
            .collect();
        for read in reads {
            assert!(read.await.expect("read"));
        }
        let sent = sent.lock().expect("lock").clone();
        assert!(sent.len() < 20, "20 reads sent {} markers", sent.len());
        assert_eq!(sent, (1..=sent.len() as u64).collect::<Vec<_>>());
        // A marker that never comes back fails the wait (the read asks the store).
        assert!(!freshness.wait(|_| async { true }).await);
    }
}
