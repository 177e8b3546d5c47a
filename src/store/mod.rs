//! Storage: one event log in PostgreSQL or in an embedded SQLite file, with
//! the same schema, the same append path and the same behaviour.

pub mod chain;
pub mod copy;
mod group;
mod pg_group;
mod pg_script;
pub mod repository;
mod sqlite_group;

pub use group::AppendTimes;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, Transaction};

/// Where the log lives when nothing else is said.
pub const DEFAULT_DATABASE: &str = "sqlite://wijkbudget.db";

/// A connection pool to one of the two supported stores.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same code against either pool. Each arm is compiled separately,
/// so the body may use anything both sqlx drivers support; SQL text uses
/// `$1`-style parameters, which SQLite understands too.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::Sqlite($pool) => $body,
        }
    };
}

impl Db {
    /// Connects to `postgres://...` or `sqlite://PATH`, creating the SQLite file if needed.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No ping on every checkout: it was 11 % of the server's CPU under
            // write load (benches/RESULTS.md). A connection PostgreSQL dropped
            // then fails the one statement that finds out, and sqlx discards it.
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .test_before_acquire(false)
                .connect(url)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}", redact(url)))?;
            Ok(Self::Postgres(pool))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            // FULL, not sqlite-es's NORMAL: in WAL mode NORMAL may lose the
            // last committed transactions on power loss, and a ledger may not.
            Self::open_sqlite(url, path, SqliteSynchronous::Full).await
        } else {
            anyhow::bail!("unsupported database URL `{}`: use postgres://USER@HOST/DB or sqlite://PATH", redact(url))
        }
    }

    /// Opens a throwaway SQLite ledger, such as the copy an import is tried
    /// on, without waiting for the disk on each commit: nothing in it needs
    /// to survive a power cut, and the import's check runs several times
    /// faster for it.
    pub async fn connect_scratch(path: &std::path::Path) -> anyhow::Result<Self> {
        let url = format!("sqlite://{}", path.display());
        Self::open_sqlite(&url, &path.display().to_string(), SqliteSynchronous::Off).await
    }

    async fn open_sqlite(url: &str, path: &str, synchronous: SqliteSynchronous) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .with_context(|| format!("reading the SQLite path in {url}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            // A transaction dropped after a failed COMMIT (a full disk,
            // SQLITE_FULL) comes back with a queued ROLLBACK, which fails
            // when SQLite already rolled back by itself; sqlx then keeps the
            // connection "in a transaction" for good, and every write on
            // it fails. Let a queued rollback run first (a ping goes through
            // the same queue), and close a connection still stuck.
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite store at {path}"))?;
        Ok(Self::Sqlite(pool))
    }

    /// Applies every migration in `migrations/` that has not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Self::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        }
        .context("applying migrations")
    }

    /// Checks, without changing anything, that every migration has been
    /// applied: for a service role that may not create tables.
    pub async fn check_migrated(&self) -> anyhow::Result<()> {
        let (migrator, applied) = match self {
            Self::Postgres(pool) => (
                sqlx::migrate!("./migrations/postgres"),
                sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await,
            ),
            Self::Sqlite(pool) => (
                sqlx::migrate!("./migrations/sqlite"),
                sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await,
            ),
        };
        let applied =
            applied.context("reading the applied migrations; run `wijkbudget migrate` as the schema owner first")?;
        let missing: Vec<String> = migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the schema lacks migrations {}; run `wijkbudget migrate` as the schema owner",
                missing.join(", ")
            );
        }
        Ok(())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

/// Whether a store error means the database cannot be reached or cannot
/// take the request just now (down, restarting, connections cut, pool
/// exhausted, SQLite busy or full), rather than a fault in the request or
/// the code. Such a request was not carried out and may be retried.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: 08 connection exceptions, 57P01-03 shutdown and
            // start-up, 53300 too many connections, 55000 a database that does
            // not accept connections. SQLite: 5 busy, 6 locked, 13 full.
            code.starts_with("08")
                || ["57P01", "57P02", "57P03", "53300", "55000", "5", "6", "13"].contains(&code.as_ref())
        }
        _ => false,
    }
}

/// Hides a password in a connection URL before it is printed.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Starting a transaction that writes, the way each store needs it.
pub trait WritePool {
    type Database: sqlx::Database;
    /// SQLite starts with `BEGIN IMMEDIATE` so a transaction that reads
    /// before it writes cannot fail halfway on a lock upgrade.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<Transaction<'static, Self::Database>>> + Send;

    /// A write transaction that holds the append lock `lock` from its
    /// start (PostgreSQL: `BEGIN` and `pg_advisory_xact_lock` in one round
    /// trip; SQLite: `BEGIN IMMEDIATE`, which excludes every other writer).
    fn begin_locked(
        &self,
        lock: i64,
    ) -> impl std::future::Future<Output = sqlx::Result<Transaction<'static, Self::Database>>> + Send;
}

impl WritePool for PgPool {
    type Database = Postgres;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin().await
    }

    async fn begin_locked(&self, lock: i64) -> sqlx::Result<Transaction<'static, Postgres>> {
        // Sent as one simple query: both statements, one round trip.
        self.begin_with(format!("BEGIN; SELECT pg_advisory_xact_lock({lock})")).await
    }
}

impl WritePool for SqlitePool {
    type Database = Sqlite;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_locked(&self, _lock: i64) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden_from_printed_urls() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
