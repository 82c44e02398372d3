//! The store for several replicas: PostgreSQL. Migrations (`migrations/postgres`)
//! run under sqlx's advisory lock; a lease takes its rows with `FOR UPDATE SKIP LOCKED`;
//! leases and actions hold a share lock on the active-plan row while a plan
//! switch holds it exclusively; and every change to a plan's live state is
//! announced with `NOTIFY` in its own transaction, so every replica hears it
//! on commit, in commit order. [`PostgresStore::changes`] is the other end:
//! one `LISTEN` connection per server, taken up again whenever it is lost.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::sql::{self, SqlBackend};
use super::{Backend, Change, Heard, PlanRow, StoreError, CHANGES};

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: AnyPool,
    /// For the `LISTEN` connection, which is not one of the pool's.
    url: String,
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        // Replicas starting together: the migrator's advisory lock lets one migrate.
        let mut conn = pool.acquire().await?;
        sql::migrate(&mut conn, Backend::Postgres).await?;
        drop(conn);
        Ok(PostgresStore {
            pool,
            url: url.to_string(),
        })
    }
}

/// Changes in flight between the listener and the server: a slow reader
/// holds the listener back (PostgreSQL queues notifications meanwhile).
const HEARD_BUFFER: usize = 4096;

/// Hears every replica's changes and hands them to `out` until it is
/// dropped; connects again a second after a failure.
async fn listen(url: String, out: mpsc::Sender<Heard>) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANGES).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            connected = connected => connected,
            _ = out.closed() => return,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                if out.send(Heard::Unreachable(e.into())).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = out.closed() => return,
                }
            }
        };
        if out.send(Heard::Listening).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = out.closed() => return,
            };
            let heard = match received {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Change>(notification.payload()) {
                        Ok(change) => Heard::Change(change),
                        Err(e) => {
                            tracing::warn!(error = %e, "an unreadable change");
                            continue;
                        }
                    }
                }
                // The connection was lost; the listener takes it up again
                // on the next receive, but what was sent meanwhile is gone.
                Ok(None) => Heard::Missed,
                Err(e) => {
                    if out.send(Heard::Unreachable(e.into())).await.is_err() {
                        return;
                    }
                    break;
                }
            };
            if out.send(heard).await.is_err() {
                return;
            }
        }
    }
}

#[async_trait]
impl SqlBackend for PostgresStore {
    const BACKEND: Backend = Backend::Postgres;

    async fn copy_rows(&self, plan_id: i64, rows: &[PlanRow]) -> Result<bool, StoreError> {
        // COPY needs PostgreSQL's own connection, not the pool's `Any` one.
        use sqlx::Connection;
        const PART: usize = 50_000;
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        let statement = format!(
            "COPY plan_items ({}) FROM STDIN (FORMAT csv)",
            sql::ROW_COLUMNS
        );
        // Each part is sent in small pieces, so that PostgreSQL parses and
        // indexes one piece while the next is being formatted.
        const PIECE: usize = 2_000;
        let mut text = Vec::with_capacity(PIECE.min(rows.len()) * 320);
        for part in rows.chunks(PART) {
            let mut copy = conn.copy_in_raw(&statement).await?;
            for piece in part.chunks(PIECE) {
                text.clear();
                sql::rows_csv(plan_id, piece, &mut text);
                copy.send(text.as_slice()).await?;
            }
            copy.finish().await?;
        }
        conn.close().await?;
        Ok(true)
    }

    fn read(&self) -> &AnyPool {
        &self.pool
    }

    fn write(&self) -> &AnyPool {
        &self.pool
    }

    async fn announce(&self, conn: &mut AnyConnection, change: Change) -> Result<(), StoreError> {
        // A payload must stay under 8000 bytes: long account lists go in parts.
        let parts = match change {
            Change::Leased {
                plan,
                agent,
                expires,
                accounts,
            } => chunks(accounts)
                .into_iter()
                .map(|accounts| Change::Leased {
                    plan,
                    agent: agent.clone(),
                    expires,
                    accounts,
                })
                .collect(),
            Change::Blocked { plan, accounts } => chunks(accounts)
                .into_iter()
                .map(|accounts| Change::Blocked { plan, accounts })
                .collect(),
            other => vec![other],
        };
        for part in parts {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES)
                .bind(serde_json::to_string(&part).expect("changes serialise"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Without fresh statistics the planner sorts a whole queue for every
    /// lease instead of walking its index (23 leases/s at 100k accounts).
    async fn plan_stored(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE plan_items")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn changes(&self) -> Option<mpsc::Receiver<Heard>> {
        let (sender, receiver) = mpsc::channel(HEARD_BUFFER);
        tokio::spawn(listen(self.url.clone(), sender));
        Some(receiver)
    }
}

/// Account lists in parts whose JSON stays well under `NOTIFY`'s 8000 bytes.
fn chunks(accounts: Vec<String>) -> Vec<Vec<String>> {
    let mut parts = vec![Vec::new()];
    let mut bytes = 0;
    for account in accounts {
        // Escaping makes a character at most six bytes (a control character).
        let size = account.len() * 6 + 3;
        if bytes + size > 6000 && !parts.last().expect("a part").is_empty() {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        parts.last_mut().expect("a part").push(account);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_account_lists_are_announced_in_parts_that_fit_a_notification() {
        let accounts: Vec<String> = (0..100).map(|k| format!("{k:0>120}")).collect();
        let parts = chunks(accounts.clone());
        assert!(parts.len() > 1);
        assert_eq!(parts.concat(), accounts, "nothing lost or reordered");
        for part in parts {
            let change = Change::Leased {
                plan: 1,
                agent: "a".repeat(64),
                expires: i64::MAX,
                accounts: part,
            };
            assert!(serde_json::to_string(&change).unwrap().len() < 8000);
        }
    }
}
