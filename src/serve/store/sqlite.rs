//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`.
//! All writes go through one connection, so they are serialised and a lease
//! needs no row lock; reads have a pool of their own. One process only: it
//! makes every change itself, so it has nobody to tell of one.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool};

use super::sql::{self, SqlBackend};
use super::{Backend, Change, StoreError};

/// The SQLite store.
pub struct SqliteStore {
    read: AnyPool,
    write: AnyPool,
}

impl SqliteStore {
    /// Opens (creating if needed) the file of `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let url = if url.contains('?') {
            url.to_string()
        } else {
            format!("{url}?mode=rwc")
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(pragmas)
            .connect_with(options.clone())
            .await?;
        let read = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(pragmas)
            .connect_with(options)
            .await?;
        let mut conn = write.acquire().await?;
        sql::migrate(&mut conn, Backend::Sqlite).await?;
        drop(conn);
        Ok(SqliteStore { read, write })
    }
}

type Connected<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// WAL with full sync: a committed write survives a crash of the process or
/// the machine.
fn pragmas(conn: &mut AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> Connected<'_> {
    Box::pin(async move {
        use sqlx::Executor;
        for pragma in [
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = FULL",
            "PRAGMA busy_timeout = 10000",
        ] {
            conn.execute(pragma).await?;
        }
        Ok(())
    })
}

#[async_trait]
impl SqlBackend for SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;

    fn read(&self) -> &AnyPool {
        &self.read
    }

    fn write(&self) -> &AnyPool {
        &self.write
    }

    /// The one process applies its own changes; there is nobody else to tell.
    async fn announce(&self, _conn: &mut AnyConnection, _change: Change) -> Result<(), StoreError> {
        Ok(())
    }

    async fn plan_stored(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor};

    use super::*;
    use crate::serve::store::Store;

    async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        sqlx::any::install_default_drivers();
        SqliteStore::open(url).await
    }

    async fn execute(url: &str, statement: &str) {
        let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
        conn.execute(statement).await.expect(statement);
        conn.close().await.expect("close");
    }

    async fn versions(url: &str) -> Vec<i64> {
        let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .expect("migrations recorded");
        rows.into_iter().map(|(v,)| v).collect()
    }

    #[tokio::test]
    async fn versions_are_recorded_and_a_store_of_another_build_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        open(&url).await.expect("a new store").close().await;
        assert_eq!(versions(&url).await, [1]);

        // A store made before versions were recorded (its tables, no
        // history) takes the first version as it is, keeping its rows.
        execute(&url, "INSERT INTO unblocks (account_id, rule, at, key_id, reason) VALUES ('A', 'dispute_open', 1, 'k', 'r')").await;
        execute(&url, "DROP TABLE _sqlx_migrations").await;
        open(&url).await.expect("an older store").close().await;
        assert_eq!(versions(&url).await, [1]);
        let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
        let (kept,): (i64,) = sqlx::query_as("SELECT count(*) FROM unblocks")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(kept, 1);
        conn.close().await.expect("close");

        // A newer build's version, or a changed file, stops the start.
        execute(&url, "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'later', 1, x'00', 0)").await;
        let error = open(&url).await.err().expect("refused").to_string();
        assert!(error.contains("9999"), "{error}");
        execute(&url, "DELETE FROM _sqlx_migrations WHERE version = 9999").await;
        execute(
            &url,
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1",
        )
        .await;
        let error = open(&url).await.err().expect("refused").to_string();
        assert!(
            error.contains("migration 1") && error.contains("modified"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_store_whose_audit_lost_a_guard_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        open(&url).await.expect("a new store").close().await;
        execute(&url, "DROP TRIGGER audit_no_delete").await;
        let error = open(&url).await.err().expect("refused").to_string();
        assert!(
            error.contains("audit_no_delete") && !error.contains("audit_no_update"),
            "{error}"
        );
        // Put back as the message says, the store opens again.
        execute(&url, "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END").await;
        open(&url).await.expect("guards restored").close().await;
    }
}
