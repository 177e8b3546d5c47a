//! Test harness: a fresh store per test. SQLite lives in a temp dir; each
//! PostgreSQL test gets its own database, created here and dropped by
//! [`TestStore::cleanup`], so parallel tests never see each other's rows.

#![allow(dead_code)]

pub mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use sqlx::Row;
use wijkbudget::domain::ids::{FundId, Text, WijkId};
use wijkbudget::ledger::{Actor, CommandMeta, Ledger};
use wijkbudget::on_db;
use wijkbudget::projections::{self, Projector};
use wijkbudget::store::repository::LedgerRepository;
use wijkbudget::store::Db;

/// The server the tests create their databases on. Override with
/// `WIJKBUDGET_TEST_POSTGRES` (a URL without the database name's path).
pub fn postgres_admin_url() -> String {
    std::env::var("WIJKBUDGET_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

pub struct TestStore {
    pub db: Db,
    pub url: String,
    backend: Backend,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A new, migrated, empty store.
    pub async fn new(backend: Backend) -> Self {
        let store = Self::unmigrated(backend).await;
        store.db.migrate().await.expect("migrations apply");
        store
    }

    pub async fn unmigrated(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("wijkbudget.db");
                let url = format!("sqlite://{}", path.display());
                let db = Db::connect(&url).await.expect("sqlite opens");
                Self { db, url, backend, pg_name: None, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name = format!("wb_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(&format!("{}/postgres", postgres_admin_url()))
                    .await
                    .expect("PostgreSQL is reachable; start it with .ci/run or pg_ctlcluster");
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
                admin.close().await;
                let url = format!("{}/{name}", postgres_admin_url());
                let db = Db::connect(&url).await.expect("postgres connects");
                Self { db, url, backend, pg_name: Some(name), _dir: None }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool and drops the PostgreSQL database.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some(name) = self.pg_name {
            if let Ok(admin) = sqlx::PgPool::connect(&format!("{}/postgres", postgres_admin_url())).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await;
                admin.close().await;
            }
        }
    }
}

/// A fresh store with the command side, and a projector the test drives by hand.
pub struct Harness {
    pub store: TestStore,
    pub ledger: Ledger,
    pub projector: Projector,
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let repo = LedgerRepository::new(store.db.clone());
        let projector = Projector::new(store.db.clone(), repo.appended());
        let ledger = Ledger::new(repo, projector.subscribe());
        Self { store, ledger, projector }
    }

    pub async fn catch_up(&self) {
        self.projector.catch_up(|_| {}).await.expect("the projector catches up");
    }

    /// The last position of the log.
    pub async fn head(&self) -> i64 {
        wijkbudget::store::repository::head(&self.store.db).await.expect("the log head reads").0
    }
}

/// The envelope of a command by a finance test user.
pub fn meta() -> CommandMeta {
    CommandMeta::new(Actor { name: "test".into(), role: "finance".into() })
}

pub fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

pub fn fund_id(s: &str) -> FundId {
    FundId::parse(s).unwrap()
}

pub fn wijk(s: &str) -> WijkId {
    WijkId::parse(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Every read model as [`read_models`] dumps it: per table, its rows, each a
/// list of (column, value as text).
pub type ReadModels = BTreeMap<&'static str, Vec<Vec<(String, Option<String>)>>>;

/// Every row of every read model (each table `projections::reset` wipes,
/// every column the schema has), each column as text, rows in a fixed
/// order; `skip` leaves out columns that legitimately differ between two
/// stores fed the same commands (event ids, recording times).
pub async fn read_models(db: &Db, skip: &[&str]) -> ReadModels {
    let mut out = BTreeMap::new();
    for table in projections::apply::READ_MODEL_TABLES {
        let columns: Vec<String> = on_db!(db, pool => match db {
            Db::Postgres(_) => sqlx::query_scalar(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            ),
            Db::Sqlite(_) => sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid"),
        }
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap());
        assert!(!columns.is_empty(), "read model {table} has no columns");
        let columns: Vec<String> = columns.into_iter().filter(|c| !skip.contains(&c.as_str())).collect();
        let select = columns.iter().map(|c| format!("CAST({c} AS TEXT)")).collect::<Vec<_>>().join(", ");
        let order = (1..=columns.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {select} FROM {table} ORDER BY {order}");
        let rows = on_db!(db, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await.unwrap();
            rows.iter()
                .map(|r| {
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), r.try_get::<Option<String>, _>(i).unwrap()))
                        .collect()
                })
                .collect::<Vec<Vec<_>>>()
        });
        out.insert(table, rows);
    }
    out
}
