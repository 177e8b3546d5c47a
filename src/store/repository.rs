//! The cqrs-es `PersistedEventRepository` behind both stores.
//!
//! Reading an aggregate's stream and its snapshot is delegated to postgres-es
//! and sqlite-es, whose queries work unchanged on our `events` and
//! `snapshots` tables. Appending is ours, because it must do four things in
//! one transaction that those crates cannot: assign the global position in
//! commit order, extend the hash chain, claim client ids and idempotency
//! keys, and check the snapshot update before committing.

use std::collections::{HashMap, HashSet};
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

/// One accepted command's rows, ready to be written with the rest of its group.
#[derive(Default)]
struct GroupRows {
    events: Vec<ChainedEvent>,
    claims: Vec<(&'static str, String, String, i64)>,
    idempotency_keys: Vec<(String, String, i64, i64)>,
    /// Per aggregate, the newest snapshot of the group: (type, id) -> (last sequence, counter, payload).
    snapshots: HashMap<(&'static str, String), (i64, i64, Value)>,
}

/// Appends a group in one transaction. The inner results are the commands'
/// own refusals; an outer error means the whole group was rolled back.
///
/// A group costs the same few statements whatever its size: one read each
/// for the streams' heads, the client ids and the idempotency keys the group
/// touches, the checks in memory in command order (so a command sees what
/// the commands before it in the group wrote), then one multi-row insert
/// per table.
async fn append_group(db: &Db, group: &[AppendJob]) -> Result<Vec<Result<(), PersistenceError>>, PersistenceError> {
    let recorded_at = Utc::now().trunc_subsecs(6);
    let postgres = matches!(db, Db::Postgres(_));
    // What the checks need to know, deduplicated.
    let mut stream_types = HashSet::new();
    let mut stream_ids = HashSet::new();
    let mut claim_kinds = HashSet::new();
    let mut claim_ids = HashSet::new();
    let mut keys = HashSet::new();
    for job in group {
        if let Some(first) = job.events.first() {
            stream_types.insert(job.aggregate_type.to_string());
            stream_ids.insert(first.aggregate_id.clone());
            if let Some(key) = metadata_str(&first.metadata, meta::IDEMPOTENCY_KEY) {
                keys.insert(key);
            }
        }
        for event in &job.events {
            if let Some((kind, id)) = domain::client_id_claim(&event.event_type, &event.payload) {
                claim_kinds.insert(kind.to_string());
                claim_ids.insert(id);
            }
        }
    }
    let list = |set: HashSet<String>| set.into_iter().collect::<Vec<String>>();
    let (stream_types, stream_ids, claim_kinds, claim_ids, keys) =
        (list(stream_types), list(stream_ids), list(claim_kinds), list(claim_ids), list(keys));

    on_db!(db, pool => {
        let mut tx = pool.begin_write().await.map_err(store_error)?;
        if postgres {
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

        // Appends are serialised, so these reads are exact; the unique
        // constraints stay as a second line of defence.
        let mut heads: HashMap<(String, String), i64> = HashMap::new();
        if !stream_ids.is_empty() {
            let mut sql = sqlx::QueryBuilder::new(
                "SELECT aggregate_type, aggregate_id, MAX(sequence) AS head FROM events WHERE aggregate_type IN (",
            );
            let mut list = sql.separated(", ");
            stream_types.iter().for_each(|t| { list.push_bind(t.as_str()); });
            sql.push(") AND aggregate_id IN (");
            let mut list = sql.separated(", ");
            stream_ids.iter().for_each(|id| { list.push_bind(id.as_str()); });
            sql.push(") GROUP BY aggregate_type, aggregate_id");
            for row in sql.build().persistent(false).fetch_all(&mut *tx).await.map_err(store_error)? {
                let stream = (row.try_get("aggregate_type").map_err(store_error)?, row.try_get("aggregate_id").map_err(store_error)?);
                heads.insert(stream, row.try_get("head").map_err(store_error)?);
            }
        }
        let mut owners: HashMap<(String, String), String> = HashMap::new();
        if !claim_ids.is_empty() {
            let mut sql = sqlx::QueryBuilder::new("SELECT kind, id, aggregate_id FROM client_ids WHERE kind IN (");
            let mut list = sql.separated(", ");
            claim_kinds.iter().for_each(|k| { list.push_bind(k.as_str()); });
            sql.push(") AND id IN (");
            let mut list = sql.separated(", ");
            claim_ids.iter().for_each(|id| { list.push_bind(id.as_str()); });
            sql.push(")");
            for row in sql.build().persistent(false).fetch_all(&mut *tx).await.map_err(store_error)? {
                let claim = (row.try_get("kind").map_err(store_error)?, row.try_get("id").map_err(store_error)?);
                owners.insert(claim, row.try_get("aggregate_id").map_err(store_error)?);
            }
        }
        let mut used_keys: HashSet<String> = HashSet::new();
        if !keys.is_empty() {
            let mut sql = sqlx::QueryBuilder::new("SELECT key FROM idempotency_keys WHERE key IN (");
            let mut list = sql.separated(", ");
            keys.iter().for_each(|k| { list.push_bind(k.as_str()); });
            sql.push(")");
            for row in sql.build().persistent(false).fetch_all(&mut *tx).await.map_err(store_error)? {
                used_keys.insert(row.try_get("key").map_err(store_error)?);
            }
        }

        let mut rows = GroupRows::default();
        let mut outcomes = Vec::with_capacity(group.len());
        for job in group {
            let events = &job.events;
            // First every check, then the rows: a refused command leaves
            // nothing behind, and the commands after it see the ones before.
            if let Some(first) = events.first() {
                let head = heads.get(&(job.aggregate_type.to_string(), first.aggregate_id.clone())).copied().unwrap_or(0);
                if head as usize + 1 != first.sequence {
                    outcomes.push(Err(PersistenceError::OptimisticLockError));
                    continue;
                }
            }
            let claims: Vec<(&'static str, String)> =
                events.iter().filter_map(|e| domain::client_id_claim(&e.event_type, &e.payload)).collect();
            let taken = claims.iter().find_map(|(kind, id)| {
                owners.get(&(kind.to_string(), id.clone())).map(|owner| (kind, id, owner))
            });
            if let Some((kind, id, owner)) = taken {
                let reason = AppendRefused::ClientIdTaken { kind: kind.to_string(), id: id.clone(), owner: owner.clone() };
                outcomes.push(Err(refused(reason)));
                continue;
            }
            let key = events.first().and_then(|e| metadata_str(&e.metadata, meta::IDEMPOTENCY_KEY));
            if let Some(key) = key.as_ref().filter(|k| used_keys.contains(*k)) {
                outcomes.push(Err(refused(AppendRefused::IdempotencyKeyUsed(key.clone()))));
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
                if domain::client_id_claim(&event.event_type, &event.payload).is_some() {
                    let (kind, id) = claims.next().expect("one claim per claiming event");
                    owners.insert((kind.to_string(), id.clone()), event.aggregate_id.clone());
                    rows.claims.push((kind, id, event.aggregate_id.clone(), position));
                }
                heads.insert((job.aggregate_type.to_string(), event.aggregate_id.clone()), event.sequence as i64);
                rows.events.push(chained);
            }
            if let Some(key) = key {
                let fingerprint = metadata_str(&events[0].metadata, meta::REQUEST_FINGERPRINT).unwrap_or_default();
                used_keys.insert(key.clone());
                rows.idempotency_keys.push((key, fingerprint, first_position, position));
            }
            if let Some((aggregate_id, payload, current_snapshot)) = &job.snapshot_update {
                let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
                rows.snapshots.insert(
                    (job.aggregate_type, aggregate_id.clone()),
                    (last_sequence, *current_snapshot as i64, payload.clone()),
                );
            }
            outcomes.push(Ok(()));
        }

        // Payload and metadata are written as their canonical JSON text, so
        // what is stored is byte for byte what was hashed (PostgreSQL's
        // `json` keeps text as given; sqlx's own `Json` goes through `jsonb`).
        let json = if postgres { "::json" } else { "" };
        for chunk in rows.events.chunks(ROWS_PER_STATEMENT) {
            let mut sql = sqlx::QueryBuilder::new(
                "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
                 event_type, event_version, payload, metadata, hash) ",
            );
            sql.push_values(chunk, |mut row, e| {
                row.push_bind(e.position)
                    .push_bind(e.event_id.as_str())
                    .push_bind(e.recorded_at)
                    .push_bind(e.aggregate_type.as_str())
                    .push_bind(e.aggregate_id.as_str())
                    .push_bind(e.sequence)
                    .push_bind(e.event_type.as_str())
                    .push_bind(e.event_version.as_str())
                    .push_bind(canonical_json(&e.payload))
                    .push_unseparated(json)
                    .push_bind(canonical_json(&e.metadata))
                    .push_unseparated(json)
                    .push_bind(e.hash.as_str());
            });
            sql.build().persistent(false).execute(&mut *tx).await.map_err(store_error)?;
        }
        for chunk in rows.claims.chunks(ROWS_PER_STATEMENT) {
            let mut sql = sqlx::QueryBuilder::new("INSERT INTO client_ids (kind, id, aggregate_id, position) ");
            sql.push_values(chunk, |mut row, (kind, id, owner, position)| {
                row.push_bind(*kind).push_bind(id.as_str()).push_bind(owner.as_str()).push_bind(*position);
            });
            sql.build().persistent(false).execute(&mut *tx).await.map_err(store_error)?;
        }
        for chunk in rows.idempotency_keys.chunks(ROWS_PER_STATEMENT) {
            let mut sql =
                sqlx::QueryBuilder::new("INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) ");
            sql.push_values(chunk, |mut row, (key, fingerprint, first, last)| {
                row.push_bind(key.as_str()).push_bind(fingerprint.as_str()).push_bind(*first).push_bind(*last);
            });
            sql.build().persistent(false).execute(&mut *tx).await.map_err(store_error)?;
        }
        let snapshots: Vec<_> = rows.snapshots.into_iter().collect();
        for chunk in snapshots.chunks(ROWS_PER_STATEMENT) {
            // Snapshots only move forward. Keyed on the sequence rather than
            // cqrs-es's snapshot counter, so a snapshot that no longer
            // deserialises (the aggregate's shape changed) is replaced
            // instead of blocking the aggregate. The streams' sequences were
            // checked above under the append lock, so no stored snapshot can
            // be as new as these; if one is, the store is inconsistent and
            // the whole group is rolled back.
            let mut sql = sqlx::QueryBuilder::new(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) ",
            );
            sql.push_values(chunk, |mut row, ((aggregate_type, aggregate_id), (last_sequence, counter, payload))| {
                row.push_bind(*aggregate_type)
                    .push_bind(aggregate_id.as_str())
                    .push_bind(*last_sequence)
                    .push_bind(*counter)
                    .push_bind(payload);
            });
            sql.push(
                " ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                 SET last_sequence = excluded.last_sequence, current_snapshot = excluded.current_snapshot, payload = excluded.payload \
                 WHERE snapshots.last_sequence < excluded.last_sequence",
            );
            let updated = sql.build().persistent(false).execute(&mut *tx).await.map_err(store_error)?;
            if updated.rows_affected() != chunk.len() as u64 {
                return Err(PersistenceError::UnknownError(
                    "a stored snapshot is ahead of its stream; run `wijkbudget verify`".into(),
                ));
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(outcomes)
    })
}

/// Rows per multi-row insert: 11 columns of events stay well under SQLite's
/// 32,766 parameters and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 1_000;

fn refused(reason: AppendRefused) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(reason))
}

fn metadata_str(metadata: &Value, key: &str) -> Option<String> {
    metadata.get(key).and_then(Value::as_str).map(str::to_string)
}

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
        let mut previous = GENESIS;
        for event in read_log(&db, 0, 10).await.unwrap() {
            previous = chain_hash(&previous, &event);
            assert_eq!(hex::encode(previous), event.hash, "the chain runs through position {}", event.position);
        }
    }
}
