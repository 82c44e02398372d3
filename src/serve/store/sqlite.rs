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
