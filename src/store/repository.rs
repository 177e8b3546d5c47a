//! The cqrs-es `PersistedEventRepository` behind both stores.
//!
//! Reading an aggregate's stream and its snapshot is delegated to postgres-es
//! and sqlite-es, whose queries work unchanged on our `events` and
//! `snapshots` tables. Appending is ours, because it must do four things in
//! one transaction that those crates cannot: assign the global position in
//! commit order, extend the hash chain, claim client ids and idempotency
//! keys, and check the snapshot update before committing; and it does them
//! for a whole group of concurrent commands at once (group commit). In a
//! running service the same transaction also projects the group's events
//! when the read models are at the head, with the projector's own code.
//! Which commands of a group are appended is decided in `group.rs`, the
//! same for both stores; how each store writes a group is `pg_group.rs` and
//! `sqlite_group.rs`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::chain::{parse_hash, ChainedEvent, GENESIS};
use super::group::{AppendClock, AppendJob, AppendTimes, GroupInput, Outcome};
use super::Db;
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
    #[error("{kind} id {id} is already used in {owner}; choose another {kind}_id")]
    ClientIdTaken { kind: String, id: String, owner: String },
    #[error("idempotency key {0} was already used")]
    IdempotencyKeyUsed(String),
    /// A fund would be established in a year of which a fund has closed.
    #[error("year {0} is closed, so no new fund can be established in it; use a fund of an open year")]
    YearClosed(i64),
}

/// The PostgreSQL advisory lock that serialises appends, so positions are
/// handed out in commit order and the chain can never fork.
pub(crate) const APPEND_LOCK: i64 = 0x7769_6a6b; // "wijk"

#[derive(Clone)]
pub struct LedgerRepository {
    db: Db,
    appended: Arc<Notify>,
    /// Set by [`LedgerRepository::project_inside_appends`]: where a group
    /// commit that projected its own events publishes the checkpoint.
    projected: Arc<std::sync::OnceLock<Arc<watch::Sender<i64>>>>,
    /// The queue of the group committer, started by the first append and
    /// started again should it ever have stopped.
    group_commit: Arc<Mutex<Option<mpsc::Sender<AppendJob>>>>,
    /// Where the group committer's time went, over every committer this
    /// repository started.
    clock: Arc<AppendClock>,
}

pub(super) fn store_error(err: sqlx::Error) -> PersistenceError {
    if super::is_unavailable(&err) {
        PersistenceError::ConnectionError(Box::new(err))
    } else {
        PersistenceError::UnknownError(Box::new(err))
    }
}

impl LedgerRepository {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            appended: Arc::new(Notify::new()),
            projected: Arc::new(std::sync::OnceLock::new()),
            group_commit: Arc::new(Mutex::new(None)),
            clock: Arc::new(AppendClock::default()),
        }
    }

    /// The group committer's groups, commands and time since the start.
    pub fn append_times(&self) -> AppendTimes {
        self.clock.read()
    }

    /// From now on, a group commit also projects its events into the read
    /// models, in its own transaction, whenever the read models are exactly
    /// at the log's head (see `Appender`); the answer is the channel
    /// on which it publishes the checkpoint it reached, the same channel on
    /// every call ([`crate::projections::Projector::for_repository`]).
    pub fn project_inside_appends(&self) -> Arc<watch::Sender<i64>> {
        self.projected.get_or_init(|| Arc::new(watch::channel(0).0)).clone()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Woken (at least once) after every successful append, so the projector
    /// in this process does not wait for its next poll.
    pub fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// The last sequence of one stream (0 if it has no events): one step
    /// down the end of the stream's unique index.
    pub async fn stream_head(&self, aggregate_type: &str, aggregate_id: &str) -> sqlx::Result<i64> {
        const SQL: &str =
            "SELECT COALESCE((SELECT sequence FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
             ORDER BY sequence DESC LIMIT 1), 0)";
        on_db!(&self.db, pool => {
            sqlx::query_scalar(SQL).bind(aggregate_type).bind(aggregate_id).fetch_one(pool).await
        })
    }

    /// Appends one command's events atomically, extending the hash chain,
    /// and answers the global positions of the first and last of them
    /// (none for a command without events). The command joins the next
    /// group commit (see [`group_commit`]) and returns once that group is
    /// durable, or with the reason it was refused: `OptimisticLockError` if
    /// the stream's head is no longer the sequence before the first event.
    ///
    /// Once queued, a command is appended even if its caller goes away (an
    /// HTTP client that disconnects): the group is not the caller's to
    /// cancel. Every later decision is still taken on what was stored, and a
    /// retry with the same idempotency key answers as the first attempt did.
    pub async fn append_events(
        &self,
        aggregate_type: &'static str,
        events: Vec<SerializedEvent>,
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<Option<(i64, i64)>, PersistenceError> {
        let (done, outcome) = oneshot::channel();
        let job = AppendJob { aggregate_type, events, snapshot_update, done };
        let queue = {
            let mut queue = self.group_commit.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match queue.as_ref().filter(|q| !q.is_closed()) {
                Some(running) => running.clone(),
                None => {
                    if queue.is_some() {
                        tracing::error!("the group committer stopped; starting a new one");
                    }
                    let (sender, jobs) = mpsc::channel(MAX_GROUP * 4);
                    let projected = self.projected.get().cloned();
                    let committer =
                        group_commit(self.db.clone(), self.appended.clone(), projected, self.clock.clone(), jobs);
                    tokio::spawn(committer);
                    queue.insert(sender).clone()
                }
            }
        };
        let lost = || PersistenceError::UnknownError("the group committer stopped before answering; try again".into());
        queue.send(job).await.map_err(|_| lost())?;
        outcome.await.map_err(|_| lost())?
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
/// append lock short, and well under SQLite's 500 terms of a compound SELECT
/// (the streams' heads are read with one term per command).
const MAX_GROUP: usize = 64;

/// Group commit: one task per repository takes every command waiting to be
/// appended and appends them in one transaction, so concurrent commands on
/// any aggregates share one lock, one read of the head and one durable
/// commit. Nothing is weakened: each command is checked (its stream's
/// sequence, its client ids, its idempotency key) before anything of it is
/// written, so a refused command leaves no trace while the rest of its group
/// commits, and every command is answered only after its group's commit.
/// While one group commits the next one queues up, which is where the
/// batching comes from: an idle server commits groups of one.
async fn group_commit(
    db: Db,
    appended: Arc<Notify>,
    projected: Option<Arc<watch::Sender<i64>>>,
    clock: Arc<AppendClock>,
    mut jobs: mpsc::Receiver<AppendJob>,
) {
    let project = projected.is_some();
    let mut appender = Appender::new(&db);
    while let Some(first) = jobs.recv().await {
        let started = std::time::Instant::now();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut projected_to = None;
        let outcomes = match appender.append(&group, project).await {
            Ok((outcomes, to)) => {
                projected_to = to;
                outcomes
            }
            // The transaction rolled back: nothing of the group is stored.
            // One command's failure (or a connection that died) must not
            // fail the others, so each is tried again on its own. That is
            // safe even if the failed commit did in fact reach the disk:
            // every check is made against what is stored, so a command that
            // is already there is refused as a lost race and decided again.
            // The retries do not project: projecting inside the append must
            // never fail an append, so a failure there (a fault in the
            // projection code, say) costs one retry and leaves the events to
            // the projector, which reports it.
            Err(err) if group.len() > 1 || project => {
                tracing::warn!(error = %err, commands = group.len(), "a group commit failed; appending its commands one by one, without projecting them");
                let mut outcomes = Vec::with_capacity(group.len());
                for job in &group {
                    outcomes.push(match appender.append(std::slice::from_ref(job), false).await {
                        Ok((mut one, to)) => {
                            projected_to = projected_to.max(to);
                            one.pop().expect("one outcome per command")
                        }
                        Err(err) => Err(err),
                    });
                }
                outcomes
            }
            Err(err) => vec![Err(err)],
        };
        // The last position this group stored, if it stored any.
        let stored_to =
            outcomes.iter().filter_map(|outcome| outcome.as_ref().ok().copied().flatten()).map(|(_, last)| last).max();
        // Published before anyone is answered, so an answered write is
        // already readable (read-your-writes without waiting).
        if let (Some(to), Some(channel)) = (projected_to, &projected) {
            channel.send_if_modified(|position| {
                let moved = to > *position;
                *position = (*position).max(to);
                moved
            });
        }
        let commands = group.len();
        for (job, outcome) in group.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
        // The projector has work only if something stored was not projected here.
        if stored_to.is_some_and(|stored| projected_to.map_or(true, |projected| projected < stored)) {
            appended.notify_one();
        }
        clock.add(commands, started.elapsed(), appender.take_waited());
    }
}

/// Outcomes per command, and the checkpoint the read models were moved to
/// inside the transaction, if they were.
pub(super) type GroupOutcome = (Vec<Outcome>, Option<i64>);

/// Appends groups in one transaction each, on the group committer's own
/// connection: on PostgreSQL in one message or two ([`super::pg_group`]),
/// on SQLite in two calls ([`super::sqlite_group`]).
///
/// A group costs the same few statements whatever its size: the reads
/// [`GroupInput`] asks for, the checks in memory in command order
/// ([`super::group::decide`]), then one multi-row insert per table. In a running service
/// the same transaction projects the group's events when the read models
/// are exactly at the position before it. The inner results are the
/// commands' own refusals; an outer error means the whole group was rolled
/// back.
enum Appender {
    Postgres(super::pg_group::Session),
    Sqlite(super::sqlite_group::Session),
}

impl Appender {
    fn new(db: &Db) -> Self {
        match db {
            Db::Postgres(pool) => Self::Postgres(super::pg_group::Session::new(pool)),
            Db::Sqlite(pool) => Self::Sqlite(super::sqlite_group::Session::new(pool)),
        }
    }

    /// The time spent waiting for the database since the last call.
    fn take_waited(&mut self) -> std::time::Duration {
        match self {
            Self::Postgres(session) => session.take_waited(),
            Self::Sqlite(session) => session.take_waited(),
        }
    }

    async fn append(&mut self, group: &[AppendJob], project: bool) -> Result<GroupOutcome, PersistenceError> {
        let recorded_at = Utc::now().trunc_subsecs(6);
        let input = GroupInput::of(group);
        match self {
            Self::Postgres(session) => session.append_group(group, input, project, recorded_at).await,
            Self::Sqlite(session) => session.append_group(group, input, project, recorded_at).await,
        }
    }
}

/// Snapshots only move forward. Keyed on the sequence rather than cqrs-es's
/// snapshot counter, so a snapshot that no longer deserialises (the
/// aggregate's shape changed) is replaced instead of blocking the aggregate.
/// The streams' sequences were checked under the append lock, so no stored
/// snapshot can be as new as these; if one is, the store is inconsistent
/// and the whole group is rolled back ([`snapshot_ahead`]).
pub(super) const SNAPSHOT_FORWARD: &str = " ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
     SET last_sequence = excluded.last_sequence, current_snapshot = excluded.current_snapshot, payload = excluded.payload \
     WHERE snapshots.last_sequence < excluded.last_sequence";

pub(super) fn snapshot_ahead() -> PersistenceError {
    PersistenceError::UnknownError("a stored snapshot is ahead of its stream; run `wijkbudget verify`".into())
}

/// The head's hash as read, or why the store cannot be appended to.
pub(super) fn head_hash(hash: &str) -> Result<[u8; 32], PersistenceError> {
    parse_hash(hash).ok_or_else(|| {
        PersistenceError::UnknownError(
            format!("the stored head hash `{hash}` is not 32 hex bytes; run `wijkbudget verify`").into(),
        )
    })
}

/// Projecting inside the append must never fail an append for good: the
/// error rolls the group back, and `group_commit` appends it again without
/// projecting, leaving the events to the projector, which reports it.
pub(super) fn projection_failed(err: anyhow::Error) -> PersistenceError {
    tracing::error!(error = %format!("{err:#}"), "projecting inside the append failed");
    PersistenceError::UnknownError(err.into())
}

/// Rows per multi-row insert: 11 columns of events stay well under SQLite's
/// 32,766 parameters and PostgreSQL's 65,535.
pub(super) const ROWS_PER_STATEMENT: usize = 1_000;

/// Pushes the statement that inserts a slice of [`ChainedEvent`]s into
/// `events` onto a query builder, for either store (`$postgres`: is it
/// PostgreSQL). Payload and metadata are written as their canonical JSON
/// text, so what is stored is byte for byte what was hashed (PostgreSQL's
/// `json` keeps text as given; sqlx's own `Json` goes through `jsonb`). A
/// macro because the builder's type is the store's, fixed inside each arm
/// of `on_db!`.
macro_rules! insert_events {
    ($sql:expr, $events:expr, $postgres:expr) => {{
        let json = if $postgres { "::json" } else { "" };
        $sql.push(
            "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
             event_type, event_version, payload, metadata, hash) ",
        );
        $sql.push_values($events, |mut row, e| {
            row.push_bind(e.position)
                .push_bind(e.event_id.as_str())
                .push_bind(e.recorded_at)
                .push_bind(e.aggregate_type.as_str())
                .push_bind(e.aggregate_id.as_str())
                .push_bind(e.sequence)
                .push_bind(e.event_type.as_str())
                .push_bind(e.event_version.as_str())
                .push_bind($crate::store::chain::canonical_json(&e.payload))
                .push_unseparated(json)
                .push_bind($crate::store::chain::canonical_json(&e.metadata))
                .push_unseparated(json)
                .push_bind(e.hash.as_str());
        });
    }};
}
pub(crate) use insert_events;

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
        // A snapshot of an older shape of the aggregate no longer
        // deserialises; cqrs-es then replays the stream from its start, and
        // the next snapshot (keyed on the sequence, see `SNAPSHOT_FORWARD`)
        // replaces it.
        match &self.db {
            Db::Postgres(pool) => Self::reader_pg(pool).get_snapshot::<A>(aggregate_id).await,
            Db::Sqlite(pool) => Self::reader_sqlite(pool).get_snapshot::<A>(aggregate_id).await,
        }
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() && snapshot_update.is_none() {
            return Ok(());
        }
        self.append_events(A::TYPE, events.to_vec(), snapshot_update).await.map(|_| ())
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
        Ok(head_or_genesis(sqlx::query_as(HEAD_SQL).fetch_optional(pool).await?))
    })
}

/// The last event's position and hash, if the log has one ([`head`] inside
/// a transaction of one's own, with [`head_or_genesis`]).
pub(crate) const HEAD_SQL: &str = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1";

/// The head [`HEAD_SQL`] found, or an empty log's: position 0 and the genesis hash.
pub(crate) fn head_or_genesis(found: Option<(i64, String)>) -> (i64, String) {
    found.unwrap_or_else(|| (0, hex::encode(GENESIS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::chain_hash;

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

    fn outcome_name(outcome: &Result<Option<(i64, i64)>, PersistenceError>) -> String {
        match outcome {
            Ok(_) => "appended".into(),
            Err(PersistenceError::OptimisticLockError) => "conflict".into(),
            Err(other) => other.to_string(),
        }
    }

    /// In a group, a refused command leaves nothing behind, and the commands
    /// after it see exactly what the commands before it wrote.
    #[tokio::test]
    async fn a_group_commits_its_accepted_commands_and_nothing_of_its_refused_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_store(&dir).await;
        let group = [
            job("a", Some("e-1"), None),
            job("b", Some("e-1"), None),
            job("a", None, None),
            job("c", None, Some("k")),
            job("d", None, Some("k")),
            job("b", Some("e-2"), None),
        ];
        let outcomes: Vec<String> =
            Appender::new(&db).append(&group, false).await.unwrap().0.iter().map(outcome_name).collect();
        assert_eq!(
            outcomes,
            [
                "appended",
                "expense id e-1 is already used in a; choose another expense_id",
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

    /// On PostgreSQL a session appends in one message on what it last saw
    /// (the log's head, the streams' heads its commands decided on), and
    /// the store's checks and unique keys refuse that message whenever the
    /// store moved. Two sessions taking turns on one database, as two
    /// instances would, then find each other's appends, claims and streams
    /// and decide exactly as they would have with reading first.
    #[tokio::test]
    async fn two_sessions_taking_turns_find_what_the_other_appended() {
        let server =
            std::env::var("WIJKBUDGET_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("wb_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await.expect("PostgreSQL is reachable");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        let db = Db::connect(&format!("{server}/{name}")).await.unwrap();
        db.migrate().await.unwrap();
        let on = |stream: &str, sequence: usize, expense: Option<&str>| {
            let mut job = job(stream, expense, None);
            job.events[0].sequence = sequence;
            job
        };
        let mut appenders = [Appender::new(&db), Appender::new(&db)];
        let mut outcomes = Vec::new();
        for (appender, job) in [
            (0, on("s", 1, Some("e-1"))), // a reads first: it knows nothing yet
            (0, on("s", 2, None)),        // one message
            (1, on("t", 1, None)),        // b reads first
            (0, on("s", 3, None)),        // the head moved: a reads again
            (0, on("u", 1, Some("e-1"))), // one message, refused by the claim's key: a reads again
            (1, on("s", 3, None)),        // the head moved: b reads again, and finds it lost a race
            (1, on("t", 2, Some("e-2"))), // one message: b read the head with that refusal
        ] {
            let (mut one, _) = appenders[appender].append(&[job], false).await.unwrap();
            outcomes.push(outcome_name(&one.pop().unwrap()));
        }
        assert_eq!(
            outcomes,
            [
                "appended",
                "appended",
                "appended",
                "appended",
                "expense id e-1 is already used in s; choose another expense_id",
                "conflict",
                "appended"
            ]
        );
        let on_known = |appender: &Appender| match appender {
            Appender::Postgres(session) => session.on_known,
            Appender::Sqlite(_) => unreachable!(),
        };
        assert_eq!(
            (on_known(&appenders[0]), on_known(&appenders[1])),
            (1, 1),
            "the commented ones went in one message"
        );
        let log = read_log(&db, 0, 100).await.unwrap();
        let positions: Vec<i64> = log.iter().map(|e| e.position).collect();
        assert_eq!(positions, [1, 2, 3, 4, 5], "gap-free");
        let mut previous = GENESIS;
        for event in &log {
            previous = chain_hash(&previous, event);
            assert_eq!(hex::encode(previous), event.hash, "the chain runs through position {}", event.position);
        }
        db.close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
    }

    async fn sqlite_store(dir: &tempfile::TempDir) -> Db {
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("group.db").display())).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    /// One command whose two events claim the same id is refused whole.
    #[tokio::test]
    async fn a_command_claiming_one_id_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_store(&dir).await;
        let mut twice = job("a", Some("e-1"), None);
        let mut second = twice.events[0].clone();
        second.sequence = 2;
        twice.events.push(second);
        let outcomes: Vec<String> =
            Appender::new(&db).append(&[twice], false).await.unwrap().0.iter().map(outcome_name).collect();
        assert_eq!(outcomes, ["expense id e-1 is already used in a; choose another expense_id"]);
        assert_eq!(read_log(&db, 0, 10).await.unwrap().len(), 0);
    }

    /// Projecting inside the append never fails it: an event the projection
    /// cannot apply (here a payload no fund event has) fails the group's
    /// transaction, and the command is appended again without projecting,
    /// its events left to the projector.
    #[tokio::test]
    async fn a_projection_that_fails_inside_the_append_leaves_the_append_standing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_store(&dir).await;
        let Db::Sqlite(pool) = &db else { unreachable!() };
        sqlx::query("INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0)")
            .bind(crate::projections::CHECKPOINT)
            .execute(pool)
            .await
            .unwrap();
        let (queue, jobs) = mpsc::channel(8);
        let (done, answer) = oneshot::channel();
        let mut unprojectable = job("a", None, None);
        unprojectable.done = done;
        queue.send(unprojectable).await.unwrap();
        drop(queue);
        let projected = Arc::new(watch::channel(0).0);
        group_commit(db.clone(), Arc::new(Notify::new()), Some(projected.clone()), Arc::default(), jobs).await;
        assert_eq!(outcome_name(&answer.await.unwrap()), "appended");
        assert_eq!(read_log(&db, 0, 10).await.unwrap().len(), 1, "the event is stored");
        let checkpoint: i64 = sqlx::query_scalar("SELECT position FROM projector_checkpoints WHERE name = $1")
            .bind(crate::projections::CHECKPOINT)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((checkpoint, *projected.borrow()), (0, 0), "and left to the projector");
    }

    /// When a group's transaction fails, each of its commands is appended
    /// again on its own, so only the command that caused it fails.
    #[tokio::test]
    async fn a_failing_group_fails_only_the_command_that_broke_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_store(&dir).await;
        let Db::Sqlite(pool) = &db else { unreachable!() };
        // A snapshot ahead of its (empty) stream: appending to it must fail.
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             VALUES ('fund', 'x', 5, 1, '{}')",
        )
        .execute(pool)
        .await
        .unwrap();
        let mut broken = job("x", None, None);
        broken.snapshot_update = Some(("x".into(), serde_json::json!({}), 1));
        let (queue, jobs) = mpsc::channel(8);
        let mut answers = Vec::new();
        for mut job in [job("a", None, None), broken, job("b", None, None)] {
            let (done, answer) = oneshot::channel();
            job.done = done;
            queue.send(job).await.unwrap();
            answers.push(answer);
        }
        drop(queue);
        // All three are queued before the committer starts: one group.
        let clock = Arc::new(AppendClock::default());
        group_commit(db.clone(), Arc::new(Notify::new()), None, clock.clone(), jobs).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(outcome_name(&answer.await.unwrap()));
        }
        assert_eq!(
            outcomes,
            ["appended", "a stored snapshot is ahead of its stream; run `wijkbudget verify`", "appended"]
        );
        let log: Vec<String> = read_log(&db, 0, 10).await.unwrap().into_iter().map(|e| e.aggregate_id).collect();
        assert_eq!(log, ["a", "b"]);
        // The failed group and its three retries count as one group of
        // three commands, and all of its time as the committer's.
        let times = clock.read();
        assert_eq!((times.groups, times.commands), (1, 3));
        assert!(times.database > std::time::Duration::ZERO && times.database <= times.busy, "{times:?}");
    }
}
