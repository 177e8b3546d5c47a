//! The group commit on PostgreSQL: one message per group, or two.
//!
//! At one client a command's cost was its round trips: about a dozen
//! statements (lock, reads, one insert per table, the projection's reads
//! and writes, the checkpoint, `COMMIT`), each a wake-up of PostgreSQL and
//! of the service, where a raw `INSERT` has one. sqlx sends one statement
//! per round trip and cannot pipeline, but PostgreSQL's simple-query
//! protocol takes several statements in one message ([`super::pg_script`]).
//!
//! The careful way ([`append`]) is two messages: `BEGIN`, the append lock,
//! the checkpoint's row lock and every read the checks and the projection
//! need ([`read_script`]); then, after the decision in memory
//! ([`super::group::decide`]) and the projection's plan, every insert, the
//! projection's writes, the checkpoint and `COMMIT` ([`write_script`]).
//!
//! The usual way ([`append_on_known`]) is one message: the committer's
//! [`Session`] remembers what its last group left (the log's head and hash,
//! every wijk's available money), the commands' decisions say which
//! sequence each stream was at, and the message checks under the append
//! lock that all of it still holds (`pg_temp.wb_expect`) before the same
//! writes and `COMMIT`; the claims and idempotency keys are checked by
//! their unique keys. If anything moved (another instance appended, a
//! projector step holds the checkpoint, a claim is taken), the message
//! fails whole, nothing is stored, and the group is appended the careful
//! way. Either way the same locks are taken in the same order, the same
//! rows are written and the transaction commits once.
//!
//! Planning a statement cost PostgreSQL more than running it
//! (pg_stat_statements, one client: about 550 µs of planning against 410
//! µs of execution per command), so the session's connection is its own,
//! and each statement is `PREPARE`d on it once, with array parameters so
//! that its text does not depend on the group's size.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::persist::PersistenceError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};

use super::chain::{canonical_json, format_recorded_at};
use super::group::{
    decide, waiting, AppendJob, CheckRow, Found, GroupInput, GroupRows, Outcome, Read, AVAILABLE, CHECKPOINT_ROW,
    CLAIM, CLOSED, CLOSED_YEAR, CLOSING, HEAD, KEY, STREAM,
};
use super::pg_script::{Prepared, Script};
use super::repository::{projection_failed, snapshot_ahead, store_error, GroupOutcome, APPEND_LOCK, SNAPSHOT_FORWARD};
use crate::domain::postings::AccountKind;
use crate::projections::apply::{Plan, Write};
use crate::projections::CHECKPOINT;

/// The group committer's own connection to PostgreSQL, and what it has
/// prepared on it. One group at a time is appended, so one connection is
/// all it needs; it is opened again after any failure that leaves its
/// state unknown.
pub(super) struct Session {
    options: Arc<PgConnectOptions>,
    conn: Option<PgConnection>,
    prepared: HashSet<String>,
    /// Set while a transaction is open: if a group's future were dropped
    /// half-way, the next group would find it set and reconnect rather
    /// than continue inside someone else's transaction.
    busy: bool,
    known: Option<Known>,
    /// Groups appended in one message on what the session knew; the tests
    /// read it to see that path taken.
    pub on_known: u64,
    /// Time spent waiting for PostgreSQL since the last [`Session::take_waited`].
    waited: Duration,
}

impl Session {
    pub fn new(pool: &PgPool) -> Self {
        Self {
            options: pool.connect_options(),
            conn: None,
            prepared: HashSet::new(),
            busy: false,
            known: None,
            on_known: 0,
            waited: Duration::ZERO,
        }
    }

    /// The time spent waiting for PostgreSQL since the last call.
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }

    /// [`super::repository`]'s `Appender::append` on PostgreSQL: in one
    /// message on what the session knows when it can, otherwise (or when
    /// that message finds the store moved) in two, reading first.
    pub async fn append_group(
        &mut self,
        group: &[AppendJob],
        input: GroupInput,
        project: bool,
        recorded_at: DateTime<Utc>,
    ) -> Result<GroupOutcome, PersistenceError> {
        if self.busy || self.conn.is_none() {
            self.conn = None;
            self.prepared.clear();
            self.known = None;
            let waited = &mut self.waited;
            let mut conn = waiting(waited, PgConnection::connect_with(&self.options)).await.map_err(store_error)?;
            waiting(waited, conn.execute(sqlx::raw_sql(SESSION_SETTINGS))).await.map_err(store_error)?;
            self.conn = Some(conn);
        }
        self.busy = true;
        let known = self.known.take();
        if let Some(known) = &known {
            let conn = self.conn.as_mut().expect("connected above");
            let mut exchange =
                Exchange { conn, prepared: &self.prepared, preparing: Vec::new(), waited: &mut self.waited };
            let attempt = append_on_known(&mut exchange, group, input.clone(), project, known, recorded_at).await;
            let preparing = exchange.preparing;
            match attempt {
                None => {}
                Some(Ok((outcomes, projected_to, known))) => {
                    self.prepared.extend(preparing);
                    self.known = Some(known);
                    self.on_known += 1;
                    self.busy = false;
                    return Ok((outcomes, projected_to));
                }
                Some(Err(err)) => {
                    // Another instance appended, a claim was taken, or the
                    // read models moved: nothing was stored, and the group
                    // is appended again the careful way.
                    tracing::debug!(error = %err, "the store moved since the last group; reading it first");
                    if !self.roll_back(&preparing).await {
                        self.busy = false;
                        return Err(err);
                    }
                }
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut exchange = Exchange { conn, prepared: &self.prepared, preparing: Vec::new(), waited: &mut self.waited };
        let outcome = append(&mut exchange, group, input, project, recorded_at).await;
        let preparing = exchange.preparing;
        let outcome = match outcome {
            Ok((outcomes, projected_to, known)) => {
                self.prepared.extend(preparing);
                self.known = Some(known);
                Ok((outcomes, projected_to))
            }
            Err(err) => {
                self.roll_back(&preparing).await;
                Err(err)
            }
        };
        self.busy = false;
        outcome
    }

    /// Ends a failed group's transaction (outside one, after a failed
    /// `COMMIT`, `ROLLBACK` only warns). A `PREPARE` is not undone by a
    /// rollback, so if the failed messages prepared statements, which of
    /// them exist is unknown, and all are dropped to be prepared again. If
    /// even that fails the connection is dropped, and PostgreSQL rolls back.
    /// Answers whether the session can go on.
    async fn roll_back(&mut self, preparing: &[String]) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        let sql = if preparing.is_empty() { "ROLLBACK" } else { "ROLLBACK; DEALLOCATE ALL" };
        if !preparing.is_empty() {
            self.prepared.clear();
        }
        let rolled_back = waiting(&mut self.waited, conn.execute(sqlx::raw_sql(sql))).await.is_ok();
        if !rolled_back {
            self.conn = None;
            self.prepared.clear();
        }
        rolled_back
    }
}

/// One group's messages on the session's connection: what was prepared on
/// it before the group, and what the group's messages have prepared since
/// (the session keeps those only if the group commits).
struct Exchange<'a> {
    conn: &'a mut PgConnection,
    prepared: &'a HashSet<String>,
    preparing: Vec<String>,
    waited: &'a mut Duration,
}

impl Exchange<'_> {
    /// A message to write, knowing what is prepared.
    fn script(&self) -> Script<'_> {
        Script::new(self.prepared, &self.preparing)
    }

    /// The text of a written message; what it prepares counts as prepared
    /// for the messages after it.
    fn finish(&mut self, script: Result<(String, Vec<String>), PersistenceError>) -> Result<String, PersistenceError> {
        let (sql, preparing) = script?;
        self.preparing.extend(preparing);
        Ok(sql)
    }
}

/// What the session's last group left in the store, as far as the session
/// knows: the log's head, and each wijk's available money if the session
/// projected everything up to that head itself. Nothing else appends in a
/// typical deployment, so the next group can be written on it in one
/// message ([`append_on_known`]), which checks that it still holds.
#[derive(Clone)]
struct Known {
    position: i64,
    previous: [u8; 32],
    available: Option<BTreeMap<String, i64>>,
}

/// How the committer's statements are planned, on its connection only.
/// A group is at most 64 commands, so every lookup it makes (a stream's
/// head, a claim, a fund, commitment or expense a posting takes its year
/// or theme from) is best an index probe, however large the table, and
/// the planner, going by statistics of tables that grew since their last
/// `ANALYZE`, did not always choose one (the posting insert: 359 µs per
/// command at one client; 112 µs with these settings). And one generic
/// plan per statement, made once, saves planning on every execution, which
/// custom plans of these array-parameter statements did not (147 µs for
/// the reads).
///
/// `pg_temp.wb_expect(holds, refusal)`, a function of this connection
/// only, fails a message whose check does not hold ([`EXPECT`], and the
/// count of snapshots written), with `refusal` as the error.
const SESSION_SETTINGS: &str = "SET plan_cache_mode = force_generic_plan; SET enable_hashjoin = off; \
    SET enable_mergejoin = off; SET enable_seqscan = off; \
    CREATE FUNCTION pg_temp.wb_expect(holds boolean, refusal text) RETURNS void LANGUAGE plpgsql AS \
    $$ BEGIN IF holds IS NOT TRUE THEN RAISE EXCEPTION '%', refusal; END IF; END $$";

/// Appends the group the careful way: one message of reads, the decision
/// on what they found, one message of writes.
async fn append(
    exchange: &mut Exchange<'_>,
    group: &[AppendJob],
    input: GroupInput,
    project: bool,
    recorded_at: DateTime<Utc>,
) -> Result<(Vec<Outcome>, Option<i64>, Known), PersistenceError> {
    let reads = read_script(exchange.script(), &input, project);
    let reads = exchange.finish(reads)?;
    let rows = waiting(exchange.waited, exchange.conn.fetch_all(sqlx::raw_sql(&reads))).await.map_err(store_error)?;
    // `BEGIN` and the lock answer no row of this shape.
    let rows =
        rows.iter().filter(|row| row.try_column("tag").is_ok()).map(CheckRow::of).collect::<Result<Vec<_>, _>>()?;
    let Read { found, checkpoint, available } = Read::of(rows, &input)?;

    let before = (found.position, found.previous);
    let (rows, outcomes) = decide(group, input, found, recorded_at);

    // Projected here only if the read models are exactly at the position
    // before the group and no projector step holds the checkpoint (`SKIP
    // LOCKED` found the row); otherwise the projector catches up.
    let mut projection = None;
    if let (true, Some(first)) = (project, rows.events.first()) {
        if checkpoint == Some(first.position - 1) {
            // Every wijk's available money was read: the session knows them all after this.
            projection = Some(plan(&rows, &available)?);
        }
    }
    let projected_to = projection.as_ref().map(|(_, to, _)| *to);
    let after = write(exchange, &rows, projection, None).await?;
    Ok((outcomes, projected_to, known_after(before, &rows, after)))
}

/// The projection's writes for the group's rows, the checkpoint they move
/// to, and each wijk's available money after them.
fn plan(rows: &GroupRows, available: &BTreeMap<String, i64>) -> Result<Projection, PersistenceError> {
    projection_of(Plan::new(&rows.events).map_err(projection_failed)?, rows, available)
}

/// [`plan`], for a plan already made.
fn projection_of(
    plan: Plan,
    rows: &GroupRows,
    available: &BTreeMap<String, i64>,
) -> Result<Projection, PersistenceError> {
    let last = rows.events.last().map_or(0, |e| e.position);
    let (writes, after) = plan.into_writes_and_available(available).map_err(projection_failed)?;
    Ok((writes, last, after))
}

type Projection = (Vec<Write>, i64, BTreeMap<String, i64>);

/// What the session knows once the group has committed.
fn known_after(before: (i64, [u8; 32]), rows: &GroupRows, available: Option<BTreeMap<String, i64>>) -> Known {
    let (position, previous) = match rows.events.last() {
        Some(last) => (last.position, super::chain::parse_hash(&last.hash).unwrap_or(before.1)),
        None => before,
    };
    Known { position, previous, available }
}

/// The second message (or, on what the session knows, the only one after
/// `guard`): the group's rows, the projection and `COMMIT`. Answers each
/// wijk's available money after the group, if it was projected.
async fn write(
    exchange: &mut Exchange<'_>,
    rows: &GroupRows,
    projection: Option<Projection>,
    guard: Option<String>,
) -> Result<Option<BTreeMap<String, i64>>, PersistenceError> {
    let (projection, available) = match projection {
        Some((writes, to, after)) => (Some((writes, to)), Some(after)),
        None => (None, None),
    };
    crate::failpoint::hit("append-before-projection");
    let writes = write_script(exchange.script(), rows, projection);
    let mut writes = exchange.finish(writes)?;
    if let Some(guard) = guard {
        writes.insert_str(0, &guard);
    }
    crate::failpoint::hit("append-before-commit");
    waiting(exchange.waited, exchange.conn.execute(sqlx::raw_sql(&writes))).await.map_err(store_error)?;
    crate::failpoint::hit("append-after-commit");
    Ok(available)
}

/// Appends the group in one message on what the session knows, or answers
/// `None` if the group needs reads first: it establishes or closes a fund
/// (the closed years), or touches a wijk whose available money the
/// session does not know. The message checks, under the append lock, that
/// the log's head and every stream's head are what the session and the
/// commands' decisions took them to be, and that the read models are at
/// that head; the claims and idempotency keys are left to their unique
/// keys. If anything moved, the message fails as a whole and stores
/// nothing.
async fn append_on_known(
    exchange: &mut Exchange<'_>,
    group: &[AppendJob],
    input: GroupInput,
    project: bool,
    known: &Known,
    recorded_at: DateTime<Utc>,
) -> Option<Result<(Vec<Outcome>, Option<i64>, Known), PersistenceError>> {
    if !input.closing.is_empty() || input.establishes.iter().any(Option::is_some) {
        return None;
    }
    let available = if project { Some(known.available.as_ref()?) } else { None };
    // Each stream's head as the first command on it decided on.
    let mut heads: BTreeMap<(String, String), i64> = BTreeMap::new();
    for job in group {
        if let Some(first) = job.events.first() {
            let head = first.sequence as i64 - 1;
            let stream = (job.aggregate_type.to_string(), first.aggregate_id.clone());
            heads.entry(stream).and_modify(|h| *h = (*h).min(head)).or_insert(head);
        }
    }
    let found = Found {
        position: known.position,
        previous: known.previous,
        heads: heads.iter().map(|(stream, head)| (stream.clone(), *head)).collect(),
        ..Found::default()
    };
    let before = (known.position, known.previous);
    let (rows, outcomes) = decide(group, input, found, recorded_at);
    let projection = match (available, rows.events.is_empty()) {
        (Some(available), false) => {
            let plan = match Plan::new(&rows.events) {
                Ok(plan) => plan,
                Err(err) => return Some(Err(projection_failed(err))),
            };
            if !plan.wijken().iter().all(|wijk| available.contains_key(*wijk)) {
                return None;
            }
            match projection_of(plan, &rows, available) {
                Ok(projection) => Some(projection),
                Err(err) => return Some(Err(err)),
            }
        }
        _ => None,
    };
    let projected_to = projection.as_ref().map(|(_, to, _)| *to);
    let mut s = exchange.script();
    s.sql("BEGIN;\n").execute(&LOCK).int(APPEND_LOCK).sql(");\n");
    s.execute(&EXPECT).int(known.position).sql(", ");
    s.texts(heads.keys().map(|(t, _)| t.as_str())).sql(", ");
    s.texts(heads.keys().map(|(_, id)| id.as_str())).sql(", ");
    s.ints(heads.values().copied()).sql(", ");
    match projection {
        Some(_) => s.text(CHECKPOINT),
        None => s.sql("CAST(NULL AS TEXT)"),
    };
    s.sql(");\n");
    let guard = s.finish();
    let guard = match exchange.finish(guard) {
        Ok(guard) => guard,
        Err(err) => return Some(Err(err)),
    };
    let after = match write(exchange, &rows, projection, Some(guard)).await {
        Ok(after) => after,
        Err(err) => return Some(Err(err)),
    };
    // The plan started from everything the session knew, so `after` holds
    // every wijk it knew, those the group touched updated.
    Some(Ok((outcomes, projected_to, known_after(before, &rows, after))))
}

const NO_TEXT: &str = "CAST(NULL AS TEXT)";

static LOCK: LazyLock<Prepared> = LazyLock::new(|| Prepared::new(&["int8"], "SELECT FROM pg_advisory_xact_lock($1)"));

static LOCK_CHECKPOINT: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["text"],
        &format!(
            "SELECT CAST({CHECKPOINT_ROW} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, position AS n, \
             {NO_TEXT} AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM projector_checkpoints WHERE name = $1 FOR UPDATE SKIP LOCKED"
        ),
    )
});

/// The head of the log; each stream's head (`$1` types, `$2` ids: one step
/// down the end of the stream's unique index, `ORDER BY sequence DESC LIMIT
/// 1`, not `MAX`, which PostgreSQL turns into that step only when its
/// statistics say the stream is large); the client ids already claimed
/// among the pairs of `$3` kinds and `$4` ids; the idempotency keys among
/// `$5` already used. Each is a probe of a unique index per value.
static READS: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["text[]", "text[]", "text[]", "text[]", "text[]"],
        &format!(
            "SELECT CAST({HEAD} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, h.position AS n, h.hash AS a, {NO_TEXT} AS b, {NO_TEXT} AS c \
             FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) h \
             UNION ALL SELECT {STREAM}, s.i - 1, (SELECT e.sequence FROM events e WHERE e.aggregate_type = s.t \
             AND e.aggregate_id = s.id ORDER BY e.sequence DESC LIMIT 1), NULL, NULL, NULL \
             FROM UNNEST($1, $2) WITH ORDINALITY AS s(t, id, i) \
             UNION ALL SELECT {CLAIM}, 0, NULL, c.kind, c.id, c.aggregate_id \
             FROM UNNEST($3, $4) AS q(kind, id) JOIN client_ids c ON c.kind = q.kind AND c.id = q.id \
             UNION ALL SELECT {KEY}, 0, NULL, k.key, NULL, NULL FROM UNNEST($5) AS q(key) JOIN idempotency_keys k ON k.key = q.key"
        ),
    )
});

/// Every wijk's available money: the sum of its balances of kind `$1`
/// (`wijk_budget`). All of them, not only those the group touches, so that
/// the session knows them all for the groups after it ([`Known`]).
static AVAILABLE_MONEY: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["text"],
        &format!(
            "SELECT CAST({AVAILABLE} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, CAST(SUM(cents) AS BIGINT) AS n, \
             wijk_id AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM rm_balances \
             WHERE kind = $1 GROUP BY wijk_id"
        ),
    )
});

/// Fails unless the log's head is `$1`, each stream (`$2` types, `$3`
/// ids) is at its sequence in `$4` (0: no events), and, given a checkpoint
/// name `$5`, the read models are at `$1` and their checkpoint row is not
/// held by a projector step (which it then holds). With `pg_temp.wb_expect`.
static EXPECT: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["int8", "text[]", "text[]", "int8[]", "text"],
        "SELECT pg_temp.wb_expect( \
           (SELECT position FROM events ORDER BY position DESC LIMIT 1) IS NOT DISTINCT FROM NULLIF($1, 0) \
           AND NOT EXISTS (SELECT 1 FROM UNNEST($2, $3, $4) AS s(t, id, seq) \
             WHERE (SELECT e.sequence FROM events e WHERE e.aggregate_type = s.t AND e.aggregate_id = s.id \
               ORDER BY e.sequence DESC LIMIT 1) IS DISTINCT FROM NULLIF(s.seq, 0)) \
           AND ($5 IS NULL OR (SELECT position FROM projector_checkpoints WHERE name = $5 FOR UPDATE SKIP LOCKED) \
             IS NOT DISTINCT FROM $1), 'the store moved since the last group')",
    )
});

static INSERT_EVENTS: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["int8[]", "text[]", "text[]", "text[]", "text[]", "int8[]", "text[]", "text[]", "text[]", "text[]", "text[]"],
        // Canonical JSON text, kept as given by `json`: byte for byte what was hashed.
        "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata, hash) \
         SELECT p, id, CAST(r AS TIMESTAMPTZ), t, a, s, et, v, CAST(pl AS JSON), CAST(m AS JSON), h \
         FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS u(p, id, r, t, a, s, et, v, pl, m, h)",
    )
});

static INSERT_CLAIMS: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["text[]", "text[]", "text[]", "int8[]"],
        "INSERT INTO client_ids (kind, id, aggregate_id, position) SELECT * FROM UNNEST($1, $2, $3, $4)",
    )
});

static INSERT_KEYS: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(
        &["text[]", "text[]", "int8[]", "int8[]"],
        "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) SELECT * FROM UNNEST($1, $2, $3, $4)",
    )
});

static MOVE_CHECKPOINT: LazyLock<Prepared> = LazyLock::new(|| {
    Prepared::new(&["int8", "text"], "UPDATE projector_checkpoints SET position = $1 WHERE name = $2")
});

/// The first message: `BEGIN`, the append lock, and under it every read.
/// The checkpoint's lock is taken before the balances are read, as a
/// projector step would, so they are those at the checkpoint.
fn read_script(
    mut s: Script<'_>,
    input: &GroupInput,
    project: bool,
) -> Result<(String, Vec<String>), PersistenceError> {
    s.sql("BEGIN;\n").execute(&LOCK).int(APPEND_LOCK).sql(");\n");
    if project {
        s.execute(&LOCK_CHECKPOINT).text(CHECKPOINT).sql(");\n");
    }
    s.execute(&READS);
    s.texts(input.streams.iter().map(|(t, _)| t.as_str())).sql(", ");
    s.texts(input.streams.iter().map(|(_, id)| id.as_str())).sql(", ");
    let claims: BTreeSet<&(&str, String)> = input.claims.iter().flatten().flatten().collect();
    s.texts(claims.iter().map(|(kind, _)| *kind)).sql(", ");
    s.texts(claims.iter().map(|(_, id)| id.as_str())).sql(", ");
    s.texts(input.keys.iter().map(String::as_str)).sql(");\n");
    // Establishing and closing funds are rare: these stay unprepared.
    for year in input.years_established() {
        s.sql(&format!("SELECT CAST({CLOSED} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, CAST("));
        s.int(year).sql(&format!(
            " AS BIGINT) AS n, {NO_TEXT} AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM client_ids WHERE kind = "
        ));
        s.text(CLOSED_YEAR).sql(" AND id LIKE ").text(&format!("{year}:%")).sql(" LIMIT 1;\n");
    }
    for (i, fund) in input.closing.iter().enumerate() {
        s.sql(&format!("SELECT CAST({CLOSING} AS BIGINT) AS tag, CAST("));
        s.int(i as i64).sql(&format!(
            " AS BIGINT) AS i, CAST(NULL AS BIGINT) AS n, CAST(payload AS TEXT) AS a, {NO_TEXT} AS b, {NO_TEXT} AS c \
             FROM events WHERE aggregate_type = 'fund' AND sequence = 1 AND aggregate_id = "
        ));
        s.text(fund).sql(";\n");
    }
    if project {
        s.execute(&AVAILABLE_MONEY).text(AccountKind::WijkBudget.as_str()).sql(");\n");
    }
    s.finish()
}

/// The second message: the group's rows, the projection's writes and the
/// checkpoint, and `COMMIT`.
fn write_script(
    mut s: Script<'_>,
    rows: &GroupRows,
    projection: Option<(Vec<Write>, i64)>,
) -> Result<(String, Vec<String>), PersistenceError> {
    let events = &rows.events;
    if !events.is_empty() {
        let recorded: Vec<String> = events.iter().map(|e| format_recorded_at(&e.recorded_at)).collect();
        let payloads: Vec<String> = events.iter().map(|e| canonical_json(&e.payload)).collect();
        let metadata: Vec<String> = events.iter().map(|e| canonical_json(&e.metadata)).collect();
        s.execute(&INSERT_EVENTS).ints(events.iter().map(|e| e.position)).sql(", ");
        s.texts(events.iter().map(|e| e.event_id.as_str())).sql(", ");
        s.texts(recorded.iter().map(String::as_str)).sql(", ");
        s.texts(events.iter().map(|e| e.aggregate_type.as_str())).sql(", ");
        s.texts(events.iter().map(|e| e.aggregate_id.as_str())).sql(", ");
        s.ints(events.iter().map(|e| e.sequence)).sql(", ");
        s.texts(events.iter().map(|e| e.event_type.as_str())).sql(", ");
        s.texts(events.iter().map(|e| e.event_version.as_str())).sql(", ");
        s.texts(payloads.iter().map(String::as_str)).sql(", ");
        s.texts(metadata.iter().map(String::as_str)).sql(", ");
        s.texts(events.iter().map(|e| e.hash.as_str())).sql(");\n");
    }
    let claims = &rows.claims;
    if !claims.is_empty() {
        s.execute(&INSERT_CLAIMS).texts(claims.iter().map(|c| c.kind)).sql(", ");
        s.texts(claims.iter().map(|c| c.id.as_str())).sql(", ");
        s.texts(claims.iter().map(|c| c.owner.as_str())).sql(", ");
        s.ints(claims.iter().map(|c| c.position)).sql(");\n");
    }
    let keys = &rows.idempotency_keys;
    if !keys.is_empty() {
        s.execute(&INSERT_KEYS).texts(keys.iter().map(|k| k.key.as_str())).sql(", ");
        s.texts(keys.iter().map(|k| k.fingerprint.as_str())).sql(", ");
        s.ints(keys.iter().map(|k| k.first_position)).sql(", ");
        s.ints(keys.iter().map(|k| k.last_position)).sql(");\n");
    }
    if let Some((writes, checkpoint)) = projection {
        for write in writes {
            match &write {
                Write::Insert(insert) => s.insert(insert).map_err(projection_failed)?,
                Write::Statement(statement) => s.statement(statement.sql, &statement.params),
            };
            s.sql(";\n");
        }
        s.execute(&MOVE_CHECKPOINT).int(checkpoint).sql(", ").text(CHECKPOINT).sql(");\n");
    }
    if !rows.snapshots.is_empty() {
        // Every hundredth event of a fund: unprepared.
        s.sql(
            "WITH written AS (INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             VALUES ",
        )
        .list(&rows.snapshots, |s, ((aggregate_type, aggregate_id), (last_sequence, counter, payload))| {
            s.sql("(").text(aggregate_type).sql(", ").text(aggregate_id).sql(", ").int(*last_sequence).sql(", ");
            s.int(*counter).sql(", ").text(&payload.to_string()).sql("::json)");
        })
        .sql(SNAPSHOT_FORWARD)
        .sql(" RETURNING 1) SELECT pg_temp.wb_expect((SELECT COUNT(*) FROM written) = ")
        .int(rows.snapshots.len() as i64)
        .sql(", ")
        .text(&snapshot_ahead().to_string())
        .sql(");\n");
    }
    s.sql("COMMIT;\n");
    s.finish()
}
