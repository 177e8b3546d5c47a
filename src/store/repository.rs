//! The cqrs-es `PersistedEventRepository` behind both stores.
//!
//! Reading an aggregate's stream and its snapshot is delegated to postgres-es
//! and sqlite-es, whose queries work unchanged on our `events` and
//! `snapshots` tables. Appending is ours, because it must do four things in
//! one transaction that those crates cannot: assign the global position in
//! commit order, extend the hash chain, claim client ids and idempotency
//! keys, and check the snapshot update before committing.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, Notify};

use super::chain::{canonical_json, chain_hash, parse_hash, ChainedEvent, GENESIS};
use super::{Db, WritePool};
use crate::domain;
use crate::domain::fund::{ExpenseRegister, RecordedExpense};
use crate::domain::ids::{ExpenseId, FundId};
use crate::on_db;

/// Metadata keys the ledger writes on every command's events.
pub mod meta {
    pub const ACTOR: &str = "actor";
    pub const ROLE: &str = "role";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const REQUEST_FINGERPRINT: &str = "request_fingerprint";
}

/// An append the store refused for a reason the caller can act on. It
/// travels through cqrs-es as `PersistenceError::UnknownError` and is
/// recovered by downcasting in `Ledger::execute`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefused {
    #[error("{kind} id {id} is already used in {owner}")]
    ClientIdTaken { kind: String, id: String, owner: String },
    #[error("idempotency key {0} was already used")]
    IdempotencyKeyUsed(String),
}

/// The PostgreSQL advisory lock that serialises appends, so positions are
/// handed out in commit order and the chain can never fork.
const APPEND_LOCK: i64 = 0x7769_6a6b; // "wijk"

#[derive(Clone)]
pub struct LedgerRepository {
    db: Db,
    appended: Arc<Notify>,
    /// The queue of the group committer, started by the first append.
    group_commit: Arc<OnceLock<mpsc::Sender<AppendJob>>>,
}

fn store_error(err: sqlx::Error) -> PersistenceError {
    match &err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            PersistenceError::ConnectionError(Box::new(err))
        }
        _ => PersistenceError::UnknownError(Box::new(err)),
    }
}

impl LedgerRepository {
    pub fn new(db: Db) -> Self {
        Self { db, appended: Arc::new(Notify::new()), group_commit: Arc::new(OnceLock::new()) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Woken (at least once) after every successful append, so the projector
    /// in this process does not wait for its next poll.
    pub fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// The global positions of events `first..=last` of one stream.
    pub async fn positions_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        first: usize,
        last: usize,
    ) -> sqlx::Result<(i64, i64)> {
        const SQL: &str = "SELECT MIN(position) AS first, MAX(position) AS last FROM events \
                           WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence BETWEEN $3 AND $4";
        on_db!(&self.db, pool => {
            let row = sqlx::query(SQL)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(first as i64)
                .bind(last as i64)
                .fetch_one(pool)
                .await?;
            Ok((row.try_get("first")?, row.try_get("last")?))
        })
    }

    /// Appends one command's events atomically, extending the hash chain.
    /// The command joins the next group commit (see [`group_commit`]) and
    /// returns once that group is durable, or with the reason it was refused.
    async fn append(
        &self,
        aggregate_type: &'static str,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let (done, outcome) = oneshot::channel();
        let job = AppendJob { aggregate_type, events: events.to_vec(), snapshot_update, done };
        let queue = self.group_commit.get_or_init(|| {
            let (queue, jobs) = mpsc::channel(MAX_GROUP * 4);
            tokio::spawn(group_commit(self.db.clone(), self.appended.clone(), jobs));
            queue
        });
        let stopped = || PersistenceError::UnknownError("the group committer stopped; restart the service".into());
        queue.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    fn reader_pg(pool: &sqlx::PgPool) -> PostgresEventRepository {
        PostgresEventRepository::new(pool.clone())
    }

    fn reader_sqlite(pool: &sqlx::SqlitePool) -> SqliteEventRepository {
        SqliteEventRepository::new(pool.clone())
    }
}

/// Commands appended in one transaction at most: enough for every client of
/// a busy server to share one commit (one WAL flush), few enough to keep the
/// append lock short.
const MAX_GROUP: usize = 64;

/// One command's events, waiting for the group committer.
struct AppendJob {
    aggregate_type: &'static str,
    events: Vec<SerializedEvent>,
    snapshot_update: Option<(String, Value, usize)>,
    done: oneshot::Sender<Result<(), PersistenceError>>,
}

/// Group commit: one task per repository takes every command waiting to be
/// appended and appends them in one transaction, so concurrent commands on
/// any aggregates share one lock, one read of the head and one durable
/// commit. Nothing is weakened: each command is checked (its stream's
/// sequence, its client ids, its idempotency key) before anything of it is
/// written, so a refused command leaves no trace while the rest of its group
/// commits, and every command is answered only after its group's commit.
/// While one group commits the next one queues up, which is where the
/// batching comes from: an idle server commits groups of one.
async fn group_commit(db: Db, appended: Arc<Notify>, mut jobs: mpsc::Receiver<AppendJob>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match append_group(&db, &group).await {
            Ok(outcomes) => {
                let wrote = group.iter().zip(&outcomes).any(|(job, outcome)| outcome.is_ok() && !job.events.is_empty());
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.done.send(outcome);
                }
                if wrote {
                    appended.notify_one();
                }
            }
            Err(err) => {
                // The transaction rolled back: nothing of the group is stored.
                let reason = err.to_string();
                for job in group {
                    let _ = job.done.send(Err(PersistenceError::UnknownError(reason.clone().into())));
                }
            }
        }
    }
}

/// Appends a group in one transaction. The inner results are the commands'
/// own refusals; an outer error means the whole group was rolled back.
async fn append_group(db: &Db, group: &[AppendJob]) -> Result<Vec<Result<(), PersistenceError>>, PersistenceError> {
    let recorded_at = Utc::now().trunc_subsecs(6);
    on_db!(db, pool => {
        let mut tx = pool.begin_write().await.map_err(store_error)?;
        let insert_sql = if matches!(db, Db::Postgres(_)) { INSERT_EVENT_POSTGRES } else { INSERT_EVENT_SQLITE };
        if matches!(db, Db::Postgres(_)) {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let head = sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let (mut position, mut previous) = match head {
            Some(row) => {
                let hash: String = row.try_get("hash").map_err(store_error)?;
                let previous = parse_hash(&hash).ok_or_else(|| {
                    PersistenceError::UnknownError(format!("the stored head hash `{hash}` is not 32 hex bytes; run `wijkbudget verify`").into())
                })?;
                (row.try_get::<i64, _>("position").map_err(store_error)?, previous)
            }
            None => (0, GENESIS),
        };

        let mut outcomes = Vec::with_capacity(group.len());
        for job in group {
            let events = &job.events;
            // First every check, then every write: a refused command must
            // leave nothing behind in the shared transaction. Within the
            // group the checks see the writes of the commands before it.
            if let Some(first) = events.first() {
                // Appends are serialised, so checking the stream's head here is
                // exact; the unique constraint stays as a second line of defence.
                let current: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
                )
                .bind(job.aggregate_type)
                .bind(&first.aggregate_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
                if current as usize + 1 != first.sequence {
                    outcomes.push(Err(PersistenceError::OptimisticLockError));
                    continue;
                }
            }
            let mut claims = Vec::new();
            let mut refusal = None;
            for event in events {
                if let Some((kind, id)) = domain::client_id_claim(&event.event_type, &event.payload) {
                    let owner: Option<String> = sqlx::query_scalar(
                        "SELECT aggregate_id FROM client_ids WHERE kind = $1 AND id = $2",
                    )
                    .bind(kind)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
                    if let Some(owner) = owner {
                        refusal = Some(AppendRefused::ClientIdTaken { kind: kind.into(), id, owner });
                        break;
                    }
                    claims.push((kind, id));
                }
            }
            let idempotency_key = events.first().and_then(|e| metadata_str(&e.metadata, meta::IDEMPOTENCY_KEY));
            if let (None, Some(key)) = (&refusal, &idempotency_key) {
                let taken: Option<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
                if taken.is_some() {
                    refusal = Some(AppendRefused::IdempotencyKeyUsed(key.clone()));
                }
            }
            if let Some(reason) = refusal {
                outcomes.push(Err(refused(reason)));
                continue;
            }

            let first_position = position + 1;
            let mut claims = claims.into_iter();
            for event in events {
                position += 1;
                let mut chained = ChainedEvent {
                    position,
                    event_id: uuid::Uuid::now_v7().to_string(),
                    recorded_at,
                    aggregate_type: job.aggregate_type.to_string(),
                    aggregate_id: event.aggregate_id.clone(),
                    sequence: event.sequence as i64,
                    event_type: event.event_type.clone(),
                    event_version: event.event_version.clone(),
                    payload: event.payload.clone(),
                    metadata: event.metadata.clone(),
                    hash: String::new(),
                };
                previous = chain_hash(&previous, &chained);
                chained.hash = hex::encode(previous);
                insert_event(&mut tx, insert_sql, &chained).await.map_err(store_error)?;
                if domain::client_id_claim(&event.event_type, &event.payload).is_some() {
                    let (kind, id) = claims.next().expect("one claim per claiming event");
                    sqlx::query("INSERT INTO client_ids (kind, id, aggregate_id, position) VALUES ($1, $2, $3, $4)")
                        .bind(kind)
                        .bind(&id)
                        .bind(&event.aggregate_id)
                        .bind(position)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                }
            }
            if let Some(key) = idempotency_key {
                let fingerprint = metadata_str(&events[0].metadata, meta::REQUEST_FINGERPRINT).unwrap_or_default();
                sqlx::query("INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) VALUES ($1, $2, $3, $4)")
                    .bind(&key)
                    .bind(&fingerprint)
                    .bind(first_position)
                    .bind(position)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
            }
            if let Some((aggregate_id, payload, current_snapshot)) = &job.snapshot_update {
                let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
                // Snapshots only move forward. Keyed on the sequence rather
                // than cqrs-es's snapshot counter, so a snapshot that no longer
                // deserialises (the aggregate's shape changed) is replaced
                // instead of blocking the fund. The stream's sequence was
                // checked above under the append lock, so no stored snapshot
                // can be as new as this one; if one is, the store is
                // inconsistent and the whole group is rolled back.
                let updated = sqlx::query(
                    "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                     SET last_sequence = excluded.last_sequence, current_snapshot = excluded.current_snapshot, payload = excluded.payload \
                     WHERE snapshots.last_sequence < excluded.last_sequence",
                )
                .bind(job.aggregate_type)
                .bind(aggregate_id)
                .bind(last_sequence)
                .bind(*current_snapshot as i64)
                .bind(payload)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                if updated.rows_affected() != 1 {
                    return Err(PersistenceError::UnknownError(
                        format!("the snapshot of {aggregate_id} is ahead of its stream; run `wijkbudget verify`").into(),
                    ));
                }
            }
            outcomes.push(Ok(()));
        }
        tx.commit().await.map_err(store_error)?;
        Ok(outcomes)
    })
}

fn refused(reason: AppendRefused) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(reason))
}

fn metadata_str(metadata: &Value, key: &str) -> Option<String> {
    metadata.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Inserts one chained event. The payload and metadata are written as their
/// canonical JSON text, so what is stored is byte for byte what was hashed
/// (PostgreSQL's `json` type keeps text as given; sqlx's own `Json` binding
/// would go through `jsonb` and reformat it).
async fn insert_event<DB>(tx: &mut sqlx::Transaction<'static, DB>, sql: &str, e: &ChainedEvent) -> sqlx::Result<()>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    DateTime<Utc>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
{
    sqlx::query(sql)
        .bind(e.position)
        .bind(e.event_id.clone())
        .bind(e.recorded_at)
        .bind(e.aggregate_type.clone())
        .bind(e.aggregate_id.clone())
        .bind(e.sequence)
        .bind(e.event_type.clone())
        .bind(e.event_version.clone())
        .bind(canonical_json(&e.payload))
        .bind(canonical_json(&e.metadata))
        .bind(e.hash.clone())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const INSERT_EVENT_SQLITE: &str = "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload, metadata, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const INSERT_EVENT_POSTGRES: &str = "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload, metadata, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json, $10::json, $11)";

/// Expense ids are claimed in `client_ids` with the position of the event
/// that introduced them, so finding that event is two index lookups.
#[async_trait::async_trait]
impl ExpenseRegister for LedgerRepository {
    async fn recorded(&self, expense_id: &ExpenseId) -> Result<Option<RecordedExpense>, String> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE position = (SELECT position FROM client_ids WHERE kind = 'expense' AND id = $1)"
        );
        let row = on_db!(&self.db, pool => {
            sqlx::query(&sql).bind(expense_id.as_str()).fetch_optional(pool).await.map_err(|e| e.to_string())?
                .map(|row| chained_event_from_row(&row)).transpose().map_err(|e| e.to_string())?
        });
        let Some(event) = row else { return Ok(None) };
        let fund_id = FundId::parse(&event.aggregate_id).map_err(|e| format!("expense {expense_id}: fund id {e}"))?;
        let recorded = event.read_payload().map_err(|e| format!("expense {expense_id}: unreadable event: {e}"))?;
        Ok(Some(RecordedExpense { fund_id, sequence: event.sequence as usize, event: recorded }))
    }
}

impl PersistedEventRepository for LedgerRepository {
    async fn get_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.db {
            Db::Postgres(pool) => Self::reader_pg(pool).get_events::<A>(aggregate_id).await,
            Db::Sqlite(pool) => Self::reader_sqlite(pool).get_events::<A>(aggregate_id).await,
        }
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        match &self.db {
            Db::Postgres(pool) => Self::reader_pg(pool).get_last_events::<A>(aggregate_id, last_sequence).await,
            Db::Sqlite(pool) => Self::reader_sqlite(pool).get_last_events::<A>(aggregate_id, last_sequence).await,
        }
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let snapshot = match &self.db {
            Db::Postgres(pool) => Self::reader_pg(pool).get_snapshot::<A>(aggregate_id).await?,
            Db::Sqlite(pool) => Self::reader_sqlite(pool).get_snapshot::<A>(aggregate_id).await?,
        };
        // A snapshot is a cache. One written by an older shape of the
        // aggregate is passed over, so the stream is replayed from its start
        // and the next snapshot replaces it.
        Ok(snapshot.filter(|s| {
            let readable = A::deserialize(&s.aggregate).is_ok();
            if !readable {
                tracing::info!(aggregate_id, "passing over a snapshot of an older aggregate shape");
            }
            readable
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() && snapshot_update.is_none() {
            return Ok(());
        }
        self.append(A::TYPE, events, snapshot_update).await
    }

    async fn stream_events<A: Aggregate>(&self, aggregate_id: &str) -> Result<ReplayStream, PersistenceError> {
        match &self.db {
            Db::Postgres(pool) => Self::reader_pg(pool).stream_events::<A>(aggregate_id).await,
            Db::Sqlite(pool) => Self::reader_sqlite(pool).stream_events::<A>(aggregate_id).await,
        }
    }

    /// Unlike the library versions, this streams in global (commit) order.
    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(200);
        let log = self.clone();
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = match read_log(log.db(), after, 500).await {
                    Ok(page) => page,
                    Err(err) => {
                        let _ = feed.push(Err(store_error(err))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = last.position;
                for e in page.into_iter().filter(|e| e.aggregate_type == A::TYPE) {
                    let serialized = SerializedEvent::new(
                        e.aggregate_id,
                        e.sequence as usize,
                        e.aggregate_type,
                        e.event_type,
                        e.event_version,
                        e.payload,
                        e.metadata,
                    );
                    if feed.push(Ok(serialized)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}

/// The columns of a stored event, in the order [`chained_event_from_row`] reads them.
pub const EVENT_COLUMNS: &str = "position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
    event_type, event_version, payload, metadata, hash";

/// Decodes one `events` row, on either store.
pub fn chained_event_from_row<R: Row>(row: &R) -> sqlx::Result<ChainedEvent>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    String: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    DateTime<Utc>: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    sqlx::types::Json<Value>: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
{
    Ok(ChainedEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        recorded_at: row.try_get("recorded_at")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get::<sqlx::types::Json<Value>, _>("payload")?.0,
        metadata: row.try_get::<sqlx::types::Json<Value>, _>("metadata")?.0,
        hash: row.try_get("hash")?,
    })
}

/// The query for up to `$2` events after global position `$1`, in order.
pub fn log_page_sql() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2")
}

/// Reads up to `limit` events after global position `after`, in order.
pub async fn read_log(db: &Db, after: i64, limit: i64) -> sqlx::Result<Vec<ChainedEvent>> {
    let sql = log_page_sql();
    on_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(after).bind(limit).fetch_all(pool).await?;
        rows.iter().map(chained_event_from_row).collect()
    })
}

/// The last position and hash of the log, or `(0, GENESIS hex)` when it is empty.
pub async fn head(db: &Db) -> sqlx::Result<(i64, String)> {
    on_db!(db, pool => {
        let row = sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
        Ok(match row {
            Some(row) => (row.try_get("position")?, row.try_get("hash")?),
            None => (0, hex::encode(GENESIS)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(aggregate_id: &str, expense_id: Option<&str>, idempotency_key: Option<&str>) -> AppendJob {
        let payload = match expense_id {
            Some(id) => serde_json::json!({ "ExpenseRecorded": { "expense_id": id } }),
            None => serde_json::json!({ "BudgetAllocated": {} }),
        };
        let event_type = if expense_id.is_some() { "ExpenseRecorded" } else { "BudgetAllocated" };
        let metadata = match idempotency_key {
            Some(key) => serde_json::json!({ meta::IDEMPOTENCY_KEY: key }),
            None => serde_json::json!({}),
        };
        let event = SerializedEvent::new(
            aggregate_id.into(),
            1,
            "fund".into(),
            event_type.into(),
            "1.0".into(),
            payload,
            metadata,
        );
        AppendJob { aggregate_type: "fund", events: vec![event], snapshot_update: None, done: oneshot::channel().0 }
    }

    fn outcome_name(outcome: &Result<(), PersistenceError>) -> String {
        match outcome {
            Ok(()) => "appended".into(),
            Err(PersistenceError::OptimisticLockError) => "conflict".into(),
            Err(other) => other.to_string(),
        }
    }

    /// In a group, a refused command leaves nothing behind, and the commands
    /// after it see exactly what the commands before it wrote.
    #[tokio::test]
    async fn a_group_commits_its_accepted_commands_and_nothing_of_its_refused_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("group.db").display())).await.unwrap();
        db.migrate().await.unwrap();
        let group = [
            job("a", Some("e-1"), None),
            job("b", Some("e-1"), None),
            job("a", None, None),
            job("c", None, Some("k")),
            job("d", None, Some("k")),
            job("b", Some("e-2"), None),
        ];
        let outcomes: Vec<String> = append_group(&db, &group).await.unwrap().iter().map(outcome_name).collect();
        assert_eq!(
            outcomes,
            [
                "appended",
                "expense id e-1 is already used in a",
                "conflict",
                "appended",
                "idempotency key k was already used",
                "appended"
            ]
        );
        let Db::Sqlite(pool) = &db else { unreachable!() };
        let log: Vec<(i64, String)> = sqlx::query_as("SELECT position, aggregate_id FROM events ORDER BY position")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(log, [(1, "a".into()), (2, "c".into()), (3, "b".into())]);
        let claims: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, aggregate_id, position FROM client_ids ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(claims, [("e-1".into(), "a".into(), 1), ("e-2".into(), "b".into(), 3)]);
        let keys: Vec<(String, i64)> =
            sqlx::query_as("SELECT key, first_position FROM idempotency_keys").fetch_all(pool).await.unwrap();
        assert_eq!(keys, [("k".into(), 2)]);
    }
}
