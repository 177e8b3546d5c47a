//! Projections: the read models, derived from the event log and nothing else.
//!
//! The projector reads the log in global-position order from its checkpoint
//! and writes read-model rows and the new checkpoint in one transaction, so
//! after a crash at any point it resumes exactly where the last commit left
//! off. Several service instances on one database take turns on the
//! checkpoint row's lock, so nothing is ever applied twice.

pub mod apply;
pub mod overview;
pub mod plan_event;
pub mod queries;
pub mod rebuild;
mod rebuild_load;
pub use rebuild_load::copy_escape;
pub mod reports;
pub mod subsidies;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::on_db;
use crate::store::chain::ChainedEvent;
use crate::store::repository::{chained_event_from_row, log_page_sql, LedgerRepository};
use crate::store::{Db, WritePool};

use apply::{Param, Write};

/// The version of what `apply` writes. Bump it whenever a change to the
/// projection code changes the read models: the first projector step of the
/// new version finds no checkpoint of its own, wipes the read models and
/// rebuilds them from position zero, and an instance of an older version
/// sharing the database stops projecting instead of fighting over them.
pub const PROJECTION_VERSION: u32 = 6;

/// The checkpoint row of the read models, named after the projection version.
pub const CHECKPOINT: &str = "read_models@6";

fn checkpoint_version(name: &str) -> Option<u32> {
    // The row migration 0002 wrote, before versions, counts as version 0.
    if name == "read_models" {
        return Some(0);
    }
    name.strip_prefix("read_models@")?.parse().ok()
}

/// Events applied per transaction by a running service: large enough to
/// amortise the commit, small enough to keep the lock short.
pub const BATCH: i64 = 500;
/// Events applied per transaction by `wijkbudget rebuild`: fewer, larger
/// set-based writes. Memory grows with it (about 55 MB peak at 5 000 events
/// of the bench's shape, against 13 MB at 500), not with the log.
pub const REBUILD_BATCH: i64 = 5_000;
/// How often an idle projector looks for events written by other instances.
const POLL: Duration = Duration::from_millis(250);

pub struct Projector {
    db: Db,
    appended: Arc<Notify>,
    position: Arc<watch::Sender<i64>>,
    batch_size: i64,
}

impl Projector {
    /// A projector on its own, woken by `appended`.
    pub fn new(db: Db, appended: Arc<Notify>) -> Self {
        let (position, _) = watch::channel(0);
        Self { db, appended, position: Arc::new(position), batch_size: BATCH }
    }

    /// The projector of a service: the repository's group commit projects
    /// each group inside its own transaction while the read models are up
    /// to date, and this projector catches up whatever it did not (after a
    /// start, behind another instance's appends, or after a failure). Both
    /// publish the checkpoint they reached on the same channel.
    pub fn for_repository(repo: &LedgerRepository) -> Self {
        let position = repo.project_inside_appends();
        Self { db: repo.db().clone(), appended: repo.appended(), position, batch_size: BATCH }
    }

    /// At most `events` events per step (per transaction). The read models
    /// come out the same whatever the batch boundaries.
    pub fn with_batch_size(self, events: i64) -> Self {
        Self { batch_size: events.max(1), ..self }
    }

    /// Follows the checkpoint as it advances.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.position.subscribe()
    }

    /// Applies at most one batch. Returns how many events it applied.
    pub async fn step(&self) -> anyhow::Result<usize> {
        Ok(self.step_to().await?.0)
    }

    /// Applies at most one batch: how many events, and the checkpoint after it.
    async fn step_to(&self) -> anyhow::Result<(usize, i64)> {
        // Nothing to do is the common case in a service, whose appends
        // project themselves. It is found without the checkpoint's lock:
        // an append that finds the lock held leaves its group unprojected
        // (to this projector), so an idle step holding it would keep the
        // appends from projecting, and wake this projector again, for
        // nothing.
        let (checkpoint, head): (Option<i64>, Option<i64>) = on_db!(&self.db, pool => {
            sqlx::query_as(
                "SELECT (SELECT position FROM projector_checkpoints WHERE name = $1), \
                 (SELECT position FROM events ORDER BY position DESC LIMIT 1)",
            )
            .bind(CHECKPOINT)
            .fetch_one(pool)
            .await?
        });
        if let Some(checkpoint) = checkpoint.filter(|c| *c >= head.unwrap_or(0)) {
            self.publish(checkpoint);
            return Ok((0, checkpoint));
        }
        let postgres = matches!(self.db, Db::Postgres(_));
        let (applied, checkpoint) = on_db!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let lock = if postgres { " FOR UPDATE" } else { "" };
            // Lock every checkpoint row: the projection versions present
            // decide whether this instance projects, waits for an upgrade, or
            // rebuilds.
            let rows: Vec<(String, i64)> = sqlx::query_as(&format!("SELECT name, position FROM projector_checkpoints{lock}"))
                .fetch_all(&mut *tx)
                .await?;
            let newest = rows.iter().filter_map(|(name, _)| checkpoint_version(name)).max();
            if newest.is_some_and(|v| v > PROJECTION_VERSION) {
                anyhow::bail!(
                    "the read models are kept by a newer version of wijkbudget (projection {}, this is {PROJECTION_VERSION}); \
                     upgrade this instance",
                    newest.unwrap_or_default()
                );
            }
            let stored = rows.iter().find(|(name, _)| name == CHECKPOINT).map(|(_, position)| *position);
            let checkpoint = match stored {
                Some(position) => position,
                None => {
                    // Whoever inserts the new checkpoint row wipes the read
                    // models; a concurrent instance of the same version waits
                    // on that insert and then simply reads the row.
                    let created = sqlx::query(
                        "INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(CHECKPOINT)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if created == 1 {
                        // A store whose read models never held anything (fresh
                        // from its migrations) needs no word about a change of code.
                        if rows.iter().any(|(_, position)| *position > 0) {
                            tracing::info!(checkpoint = CHECKPOINT, "the projection code changed; rebuilding the read models from position zero");
                        }
                        for table in apply::READ_MODEL_TABLES {
                            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
                        }
                        sqlx::query("DELETE FROM projector_checkpoints WHERE name <> $1").bind(CHECKPOINT).execute(&mut *tx).await?;
                        0
                    } else {
                        sqlx::query_scalar(&format!("SELECT position FROM projector_checkpoints WHERE name = $1{lock}"))
                            .bind(CHECKPOINT)
                            .fetch_one(&mut *tx)
                            .await?
                    }
                }
            };
            // Read on this transaction's own connection: with SQLite, a second
            // connection could wait behind writers that wait for this lock.
            let events = sqlx::query(&log_page_sql())
                .bind(checkpoint)
                .bind(self.batch_size)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(chained_event_from_row)
                .collect::<sqlx::Result<Vec<_>>>()?;
            let last = events.last().map_or(checkpoint, |event| event.position);
            Apply::apply_batch(&mut *tx, &events, last).await?;
            if !events.is_empty() {
                crate::failpoint::hit("projector-before-commit");
            }
            tx.commit().await?;
            (events.len(), last)
        });
        self.publish(checkpoint);
        Ok((applied, checkpoint))
    }

    /// Tells the subscribers the checkpoint, never backwards: an append may
    /// have projected further meanwhile.
    fn publish(&self, checkpoint: i64) {
        self.position.send_if_modified(|position| {
            let moved = checkpoint > *position;
            *position = (*position).max(checkpoint);
            moved
        });
    }

    /// Applies everything in the log now; `progress` is told the checkpoint after each batch.
    pub async fn catch_up(&self, mut progress: impl FnMut(i64)) -> anyhow::Result<i64> {
        loop {
            let (applied, checkpoint) = self.step_to().await?;
            if applied == 0 {
                return Ok(checkpoint);
            }
            progress(checkpoint);
        }
    }

    /// Runs until `shutdown` flips to true, waking on every local append.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.step().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(err) => tracing::error!(error = %err, "projector step failed; retrying"),
            }
            tokio::select! {
                _ = self.appended.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Writes a batch of events (the next ones after the checkpoint, in position
/// order) into the read models and moves the checkpoint to `checkpoint`, on
/// a transaction that holds the checkpoint's lock. The projector's step and
/// the group commit's projection inside the append (see
/// [`crate::store::repository`]) share it, so both write the same rows.
pub trait Apply {
    fn apply_batch(
        &mut self,
        events: &[ChainedEvent],
        checkpoint: i64,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;

    /// Executes planned writes, in order (what `apply_batch` does once it
    /// has planned them; the rebuild's loader hands it the writes it does
    /// not copy in).
    fn write_all(&mut self, writes: Vec<Write>) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

macro_rules! impl_apply {
    ($connection:ty, $postgres:expr) => {
        impl Apply for $connection {
            async fn apply_batch(&mut self, events: &[ChainedEvent], checkpoint: i64) -> anyhow::Result<()> {
                let tx = self;
                let plan = apply::Plan::new(events)?;
                // Before anything of the batch is written, the wijk_budget
                // balances are the sum of every wijk_budget posting so far.
                let wijken = plan.wijken();
                let mut available_before = BTreeMap::new();
                if !wijken.is_empty() {
                    let mut sql = sqlx::QueryBuilder::new(
                        "SELECT wijk_id, CAST(SUM(cents) AS BIGINT) FROM rm_balances WHERE kind = 'wijk_budget' AND wijk_id IN (",
                    );
                    let mut list = sql.separated(", ");
                    for wijk_id in wijken {
                        list.push_bind(wijk_id);
                    }
                    sql.push(") GROUP BY wijk_id");
                    let rows: Vec<(String, i64)> = sql.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                    available_before.extend(rows);
                }
                tx.write_all(plan.into_writes(&available_before)?).await?;
                sqlx::query("UPDATE projector_checkpoints SET position = $1 WHERE name = $2")
                    .bind(checkpoint)
                    .bind(CHECKPOINT)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            }

            async fn write_all(&mut self, writes: Vec<Write>) -> anyhow::Result<()> {
                let postgres = $postgres;
                let tx = self;
                for write in writes {
                    match write {
                        Write::Insert(insert) => {
                            for mut statement in InsertRows::insert_statements(&insert)? {
                                // PostgreSQL's text is the same for every batch (one array per
                                // column), so it is prepared once; SQLite's grows with the rows
                                // and stays out of the statement cache.
                                statement.build().persistent(postgres).execute(&mut *tx).await?;
                            }
                        }
                        Write::Statement(statement) => {
                            let mut query = sqlx::query(statement.sql);
                            for param in statement.params {
                                query = match param {
                                    Param::Int(v) => query.bind(v),
                                    Param::OptInt(v) => query.bind(v),
                                    Param::Text(v) => query.bind(v),
                                    Param::OptText(v) => query.bind(v),
                                };
                            }
                            query.execute(&mut *tx).await?;
                        }
                    }
                }
                Ok(())
            }
        }
    };
}

impl_apply!(sqlx::PgConnection, true);
impl_apply!(sqlx::SqliteConnection, false);

/// How a store takes the rows of an [`apply::Insert`] in as few statements as it can.
trait InsertRows: sqlx::Database {
    fn insert_statements(insert: &apply::Insert) -> anyhow::Result<Vec<sqlx::QueryBuilder<'_, Self>>>;
}

impl InsertRows for sqlx::Postgres {
    /// One statement, each column one array parameter: PostgreSQL parses and
    /// plans a VALUES list value by value, which costs more than the insert.
    fn insert_statements(insert: &apply::Insert) -> anyhow::Result<Vec<sqlx::QueryBuilder<'_, Self>>> {
        let Some(first) = insert.rows.first() else { return Ok(Vec::new()) };
        let select = insert.lookup.map_or("*", |lookup| lookup.select);
        let mut sql = sqlx::QueryBuilder::new(format!("INSERT INTO {} SELECT {select} FROM UNNEST(", insert.into));
        let mut columns = sql.separated(", ");
        for (i, kind) in first.iter().enumerate() {
            let mixed = || anyhow::anyhow!("column {} of an insert into {} mixes numbers and text", i + 1, insert.into);
            if matches!(kind, Param::Int(_) | Param::OptInt(_)) {
                let values = insert
                    .rows
                    .iter()
                    .map(|row| match row[i] {
                        Param::Int(v) => Ok(Some(v)),
                        Param::OptInt(v) => Ok(v),
                        _ => Err(mixed()),
                    })
                    .collect::<anyhow::Result<Vec<Option<i64>>>>()?;
                columns.push_bind(values).push_unseparated("::int8[]");
            } else {
                let values = insert
                    .rows
                    .iter()
                    .map(|row| match &row[i] {
                        Param::Text(v) => Ok(Some(v.as_str())),
                        Param::OptText(v) => Ok(v.as_deref()),
                        Param::Int(_) | Param::OptInt(_) => Err(mixed()),
                    })
                    .collect::<anyhow::Result<Vec<Option<&str>>>>()?;
                columns.push_bind(values).push_unseparated("::text[]");
            }
        }
        let names = (1..=first.len()).map(|i| format!("column{i}")).collect::<Vec<_>>().join(", ");
        let joins = insert.lookup.map_or("", |lookup| lookup.joins);
        sql.push(format_args!(") AS v({names}) {joins} WHERE true {}", insert.then));
        Ok(vec![sql])
    }
}

impl InsertRows for sqlx::Sqlite {
    /// Multi-row VALUES, as many rows per statement as SQLite's parameter limit allows.
    fn insert_statements(insert: &apply::Insert) -> anyhow::Result<Vec<sqlx::QueryBuilder<'_, Self>>> {
        Ok(insert.statements().map(|rows| values_statement(insert, rows)).collect())
    }
}

fn values_statement<'a>(insert: &apply::Insert, rows: &'a [Vec<Param>]) -> sqlx::QueryBuilder<'a, sqlx::Sqlite> {
    let mut sql = sqlx::QueryBuilder::new("");
    push_values_statement(&mut sql, insert, rows);
    sql
}

fn push_values_statement<'a>(
    sql: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>,
    insert: &apply::Insert,
    rows: &'a [Vec<Param>],
) {
    sql.push(format_args!("INSERT INTO {} ", insert.into));
    if let Some(lookup) = insert.lookup {
        sql.push(format_args!("SELECT {} FROM (", lookup.select));
    }
    sql.push_values(rows, |mut values, row| {
        for param in row {
            push_param(&mut values, param);
        }
    });
    if let Some(lookup) = insert.lookup {
        // `WHERE true` keeps SQLite from reading an upsert's ON CONFLICT as a join constraint.
        sql.push(format_args!(") AS v {} WHERE true", lookup.joins));
    }
    sql.push(" ").push(insert.then);
}

fn push_param<'a>(values: &mut sqlx::query_builder::Separated<'_, 'a, sqlx::Sqlite, &str>, param: &'a Param) {
    match param {
        Param::Int(v) => values.push_bind(*v),
        Param::OptInt(v) => values.push_bind(*v),
        Param::Text(v) => values.push_bind(v.as_str()),
        Param::OptText(v) => values.push_bind(v.as_deref()),
    };
}

/// Pushes a plan's writes onto `sql` as SQLite statements, each ended by
/// `;`, so that one call to the connection runs them all: SQLite binds a
/// multi-statement query's anonymous `?` parameters in order, statement
/// after statement. A [`Write::Statement`]'s `$n` (numbered, as PostgreSQL
/// needs them, and numbered per statement) becomes a `?` bound to its
/// `n`-th parameter, once per occurrence.
pub(crate) fn push_sqlite_writes<'a>(
    sql: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>,
    writes: &'a [Write],
) -> anyhow::Result<()> {
    for write in writes {
        match write {
            Write::Insert(insert) => {
                for rows in insert.statements() {
                    push_values_statement(sql, insert, rows);
                    sql.push(";\n");
                }
            }
            Write::Statement(statement) => {
                push_numbered(sql, statement.sql, &statement.params)?;
                sql.push(";\n");
            }
        }
    }
    Ok(())
}

/// `text` with each `$n` replaced by a `?` bound to `params[n - 1]`.
fn push_numbered<'a>(
    sql: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>,
    text: &str,
    params: &'a [Param],
) -> anyhow::Result<()> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        sql.push(&rest[..at]);
        let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
        let n: usize =
            rest[at + 1..at + 1 + digits].parse().with_context(|| format!("a `$` without a number in {text}"))?;
        let param = params.get(n.wrapping_sub(1)).with_context(|| format!("no parameter ${n} for {text}"))?;
        let mut values = sql.separated("");
        push_param(&mut values, param);
        rest = &rest[at + 1 + digits..];
    }
    sql.push(rest);
    Ok(())
}

/// The checkpoint as stored, and the head of the log: their difference is the lag.
pub async fn status(db: &Db) -> sqlx::Result<(i64, i64)> {
    on_db!(db, pool => {
        let checkpoint: i64 = sqlx::query_scalar("SELECT position FROM projector_checkpoints WHERE name = $1")
            .bind(CHECKPOINT)
            .fetch_optional(pool)
            .await?
            .unwrap_or(0);
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(pool).await?;
        Ok((checkpoint, head))
    })
}

/// Wipes every read model and resets the checkpoint to zero, in one
/// transaction; the projector then rebuilds from position zero. The log is
/// never touched.
pub async fn reset(db: &Db) -> sqlx::Result<()> {
    on_db!(db, pool => {
        let mut tx = pool.begin_write().await?;
        // Take the checkpoint's lock first, as a projector step does, so a
        // step running elsewhere finishes before anything is wiped; otherwise
        // rows it commits later would survive the wipe and be applied twice.
        if matches!(db, Db::Postgres(_)) {
            sqlx::query("SELECT position FROM projector_checkpoints WHERE name = $1 FOR UPDATE")
                .bind(CHECKPOINT)
                .execute(&mut *tx)
                .await?;
        }
        for table in apply::READ_MODEL_TABLES {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM projector_checkpoints").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0)")
            .bind(CHECKPOINT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
}

#[cfg(test)]
mod tests {
    use super::apply::{Param, Statement, Write};

    /// Two statements in one call, the second with a parameter used twice:
    /// each `$n` is bound to its own statement's `n`-th parameter.
    #[tokio::test]
    async fn sqlite_writes_bind_each_statements_numbered_parameters_in_one_call() {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, paid INTEGER, first TEXT, last TEXT)").await.unwrap();
        conn.execute("INSERT INTO t VALUES ('a', 0, NULL, NULL), ('b', 0, 'earlier', NULL)").await.unwrap();
        let pay = |id: &str, cents: i64, on: &str| {
            Write::Statement(Statement {
                sql: "UPDATE t SET paid = paid + $1, last = $2, first = COALESCE(first, $2) WHERE id = $3",
                params: vec![Param::Int(cents), Param::Text(on.into()), Param::Text(id.into())],
            })
        };
        let writes = [pay("a", 5, "monday"), pay("b", 7, "tuesday")];
        let mut sql = sqlx::QueryBuilder::new("");
        super::push_sqlite_writes(&mut sql, &writes).unwrap();
        sql.build().execute(&mut conn).await.unwrap();
        let rows: Vec<(String, i64, String, String)> =
            sqlx::query_as("SELECT id, paid, first, last FROM t ORDER BY id").fetch_all(&mut conn).await.unwrap();
        assert_eq!(
            rows,
            [("a".into(), 5, "monday".into(), "monday".into()), ("b".into(), 7, "earlier".into(), "tuesday".into())]
        );
        let missing = [Write::Statement(Statement { sql: "UPDATE t SET paid = $2", params: vec![Param::Int(1)] })];
        assert!(super::push_sqlite_writes(&mut sqlx::QueryBuilder::new(""), &missing).is_err());
    }

    #[test]
    fn the_checkpoint_is_named_after_the_projection_version() {
        assert_eq!(super::checkpoint_version(super::CHECKPOINT), Some(super::PROJECTION_VERSION));
        assert_eq!(super::checkpoint_version("read_models"), Some(0));
        assert_eq!(super::checkpoint_version("other"), None);
    }
}
