//! The group commit on SQLite: two calls to the committer's own connection.
//!
//! sqlx runs each SQLite connection on a thread of its own, and every
//! statement is a call to that thread and back. A group used to make a
//! dozen (`BEGIN`, the reads, one insert per table, the projection's reads
//! and writes, the checkpoint, `COMMIT`), and under load each call waited
//! for both threads to be scheduled: at 32 clients the reads alone took
//! about 1 ms a group (benches/RESULTS.md). SQLite takes several
//! statements in one call, binding a query's `?` parameters in order
//! across them, so a group is two calls, as on PostgreSQL's careful way:
//! `BEGIN IMMEDIATE` (SQLite's one writer at a time is the append lock)
//! and every read the checks and the projection need ([`reads`]); then,
//! after the decision in memory ([`super::group::decide`]) and the
//! projection's plan, every insert, the projection's writes, the
//! checkpoint and `COMMIT` ([`writes`]). A group that writes snapshots
//! (every hundredth event of a fund) checks them before a `COMMIT` of its
//! own.
//!
//! The statements' text grows with the group, so only a group of one
//! command (every command at low concurrency) keeps its statements
//! prepared, whose few texts recur; larger groups' many shapes would only
//! churn the connection's statement cache.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::persist::PersistenceError;
use sqlx::sqlite::Sqlite;
use sqlx::{ConnectOptions, Connection, Executor, QueryBuilder, SqliteConnection, SqlitePool};

use super::group::{
    decide, waiting, AppendJob, CheckRow, GroupInput, GroupRows, Read, AVAILABLE, CHECKPOINT_ROW, CLAIM, CLOSED,
    CLOSED_YEAR, CLOSING, HEAD, KEY, STREAM,
};
use super::repository::{
    insert_events, projection_failed, snapshot_ahead, store_error, GroupOutcome, ROWS_PER_STATEMENT, SNAPSHOT_FORWARD,
};
use crate::domain::postings::AccountKind;
use crate::projections::apply::{Plan, Write};
use crate::projections::{push_sqlite_writes, CHECKPOINT};

/// The group committer's own connection to SQLite, opened with the pool's
/// options. A group's calls leave a transaction open between them, which
/// a pooled connection must never carry back into the pool; and after a
/// failure the connection is closed, which rolls back whatever the group
/// left uncommitted, and the next group opens another.
pub(super) struct Session {
    pool: SqlitePool,
    conn: Option<SqliteConnection>,
    /// Time spent waiting for SQLite since the last [`Session::take_waited`].
    waited: Duration,
}

impl Session {
    pub fn new(pool: &SqlitePool) -> Self {
        Self { pool: pool.clone(), conn: None, waited: Duration::ZERO }
    }

    /// The time spent waiting for SQLite since the last call.
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }

    pub async fn append_group(
        &mut self,
        group: &[AppendJob],
        input: GroupInput,
        project: bool,
        recorded_at: DateTime<Utc>,
    ) -> Result<GroupOutcome, PersistenceError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let connected = waiting(&mut self.waited, self.pool.connect_options().connect()).await;
                self.conn.insert(connected.map_err(store_error)?)
            }
        };
        let appended = append(conn, &mut self.waited, group, input, project, recorded_at).await;
        if appended.is_err() {
            if let Some(conn) = self.conn.take() {
                let _ = waiting(&mut self.waited, conn.close()).await;
            }
        }
        appended
    }
}

async fn append(
    conn: &mut SqliteConnection,
    waited: &mut Duration,
    group: &[AppendJob],
    input: GroupInput,
    project: bool,
    recorded_at: DateTime<Utc>,
) -> Result<GroupOutcome, PersistenceError> {
    // Which wijken the group posts to is known before its commands are
    // decided: their events are (a refused command's included).
    let wijken = project.then(|| {
        let funds = group.iter().filter(|job| job.aggregate_type == "fund");
        Plan::wijken_of(funds.flat_map(|job| &job.events).map(|e| (e.aggregate_id.as_str(), &e.payload)))
    });
    let prepare = group.len() == 1;
    let found = waiting(waited, reads(&input, wijken.as_ref()).build().persistent(prepare).fetch_all(&mut *conn))
        .await
        .map_err(store_error)?;
    let found = found.iter().map(CheckRow::of).collect::<Result<Vec<_>, _>>()?;
    let Read { found, checkpoint, available } = Read::of(found, &input)?;

    let (rows, outcomes) = decide(group, input, found, recorded_at);

    // Projected here only if the read models are exactly at the position
    // before the group (`BEGIN IMMEDIATE` already excludes every other
    // writer, a projector step included); otherwise (the projector is
    // behind, or of another projection version, whose checkpoint row has
    // another name) the group is left to the projector. A failure while
    // projecting fails the transaction, and the group commit appends the
    // group again without projecting it.
    let mut projection = None;
    if let (true, Some(first), Some(last)) = (project, rows.events.first(), rows.events.last()) {
        if checkpoint == Some(first.position - 1) {
            let plan = Plan::new(&rows.events).map_err(projection_failed)?;
            projection = Some((plan.into_writes(&available).map_err(projection_failed)?, last.position));
        }
    }
    crate::failpoint::hit("append-before-projection");
    let mut sql = writes(&rows, projection.as_ref())?;
    let projected_to = projection.as_ref().map(|(_, to)| *to);
    if rows.snapshots.is_empty() {
        sql.push("COMMIT;");
        crate::failpoint::hit("append-before-commit");
        waiting(waited, sql.build().persistent(prepare).execute(&mut *conn)).await.map_err(store_error)?;
    } else {
        waiting(waited, sql.build().persistent(false).execute(&mut *conn)).await.map_err(store_error)?;
        let mut sql = snapshots(&rows);
        let written = waiting(waited, sql.build().persistent(false).execute(&mut *conn)).await.map_err(store_error)?;
        if written.rows_affected() != rows.snapshots.len() as u64 {
            return Err(snapshot_ahead());
        }
        crate::failpoint::hit("append-before-commit");
        waiting(waited, conn.execute("COMMIT")).await.map_err(store_error)?;
    }
    crate::failpoint::hit("append-after-commit");
    Ok((outcomes, projected_to))
}

/// The first call: `BEGIN IMMEDIATE` and, under SQLite's write lock, every
/// read, each row of the shape [`CheckRow`] decodes: the head of the log,
/// each stream's head (one step down the end of the stream's unique
/// index), the client ids already claimed and the idempotency keys already
/// used among those the group touches; the closed years among those it
/// establishes funds in, and the first event of each fund it closes; and,
/// if it may project, the read models' checkpoint and the available money
/// of each wijk the group's events post to (`wijken`).
fn reads<'a>(input: &'a GroupInput, wijken: Option<&'a BTreeSet<String>>) -> QueryBuilder<'a, Sqlite> {
    const NO_TEXT: &str = "CAST(NULL AS TEXT)";
    let mut sql = QueryBuilder::new(format!(
        "BEGIN IMMEDIATE;\nSELECT CAST({HEAD} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, h.position AS n, h.hash AS a, \
         {NO_TEXT} AS b, {NO_TEXT} AS c \
         FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) h"
    ));
    for (i, (aggregate_type, aggregate_id)) in input.streams.iter().enumerate() {
        sql.push(format_args!(
            " UNION ALL SELECT CAST({STREAM} AS BIGINT), CAST({i} AS BIGINT), \
             (SELECT sequence FROM events WHERE aggregate_type = "
        ));
        sql.push_bind(aggregate_type.as_str()).push(" AND aggregate_id = ").push_bind(aggregate_id.as_str());
        sql.push(format_args!(" ORDER BY sequence DESC LIMIT 1), CAST(NULL AS TEXT), {NO_TEXT}, {NO_TEXT}"));
    }
    if !input.claim_ids.is_empty() {
        sql.push(format_args!(
            " UNION ALL SELECT CAST({CLAIM} AS BIGINT), CAST(0 AS BIGINT), CAST(NULL AS BIGINT), kind, id, aggregate_id \
             FROM client_ids WHERE kind IN ("
        ));
        let mut kinds = sql.separated(", ");
        input.claim_kinds.iter().for_each(|kind| {
            kinds.push_bind(*kind);
        });
        sql.push(") AND id IN (");
        let mut ids = sql.separated(", ");
        input.claim_ids.iter().for_each(|id| {
            ids.push_bind(id.as_str());
        });
        sql.push(")");
    }
    if !input.keys.is_empty() {
        sql.push(format_args!(
            " UNION ALL SELECT CAST({KEY} AS BIGINT), CAST(0 AS BIGINT), CAST(NULL AS BIGINT), key, \
             {NO_TEXT}, {NO_TEXT} FROM idempotency_keys WHERE key IN ("
        ));
        let mut list = sql.separated(", ");
        input.keys.iter().for_each(|key| {
            list.push_bind(key.as_str());
        });
        sql.push(")");
    }
    sql.push(";\n");
    // Establishing and closing funds are rare.
    for year in input.years_established() {
        sql.push(format_args!(
            "SELECT CAST({CLOSED} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, CAST({year} AS BIGINT) AS n, \
             {NO_TEXT} AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM client_ids WHERE kind = "
        ));
        sql.push_bind(CLOSED_YEAR).push(" AND id LIKE ").push_bind(format!("{year}:%")).push(" LIMIT 1;\n");
    }
    for (i, fund) in input.closing.iter().enumerate() {
        sql.push(format_args!(
            "SELECT CAST({CLOSING} AS BIGINT) AS tag, CAST({i} AS BIGINT) AS i, CAST(NULL AS BIGINT) AS n, \
             CAST(payload AS TEXT) AS a, {NO_TEXT} AS b, {NO_TEXT} AS c \
             FROM events WHERE aggregate_type = 'fund' AND sequence = 1 AND aggregate_id = "
        ));
        sql.push_bind(fund.as_str()).push(";\n");
    }
    if let Some(wijken) = wijken {
        sql.push(format_args!(
            "SELECT CAST({CHECKPOINT_ROW} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, position AS n, \
             {NO_TEXT} AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM projector_checkpoints WHERE name = "
        ));
        sql.push_bind(CHECKPOINT).push(";\n");
        if !wijken.is_empty() {
            // A probe of the balances' key (wijk, fund, kind) per wijk.
            sql.push(format_args!(
                "SELECT CAST({AVAILABLE} AS BIGINT) AS tag, CAST(0 AS BIGINT) AS i, CAST(SUM(cents) AS BIGINT) AS n, \
                 wijk_id AS a, {NO_TEXT} AS b, {NO_TEXT} AS c FROM rm_balances WHERE kind = "
            ));
            sql.push_bind(AccountKind::WijkBudget.as_str()).push(" AND wijk_id IN (");
            let mut list = sql.separated(", ");
            wijken.iter().for_each(|wijk| {
                list.push_bind(wijk.as_str());
            });
            sql.push(") GROUP BY wijk_id;\n");
        }
    }
    sql
}

/// The second call, but for its `COMMIT`: the group's events, claims and
/// idempotency keys, then the projection's writes and the checkpoint.
fn writes<'a>(
    rows: &'a GroupRows,
    projection: Option<&'a (Vec<Write>, i64)>,
) -> Result<QueryBuilder<'a, Sqlite>, PersistenceError> {
    let mut sql = QueryBuilder::new("");
    for chunk in rows.events.chunks(ROWS_PER_STATEMENT) {
        insert_events!(sql, chunk, false);
        sql.push(";\n");
    }
    for chunk in rows.claims.chunks(ROWS_PER_STATEMENT) {
        sql.push("INSERT INTO client_ids (kind, id, aggregate_id, position) ");
        sql.push_values(chunk, |mut row, claim| {
            row.push_bind(claim.kind)
                .push_bind(claim.id.as_str())
                .push_bind(claim.owner.as_str())
                .push_bind(claim.position);
        });
        sql.push(";\n");
    }
    for chunk in rows.idempotency_keys.chunks(ROWS_PER_STATEMENT) {
        sql.push("INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) ");
        sql.push_values(chunk, |mut row, claim| {
            row.push_bind(claim.key.as_str())
                .push_bind(claim.fingerprint.as_str())
                .push_bind(claim.first_position)
                .push_bind(claim.last_position);
        });
        sql.push(";\n");
    }
    if let Some((writes, checkpoint)) = projection {
        push_sqlite_writes(&mut sql, writes).map_err(projection_failed)?;
        sql.push("UPDATE projector_checkpoints SET position = ").push_bind(*checkpoint);
        sql.push(" WHERE name = ").push_bind(CHECKPOINT).push(";\n");
    }
    Ok(sql)
}

/// The group's snapshots, moving only forward: a statement of its own, so
/// that the rows it changed can be counted before the `COMMIT`.
fn snapshots(rows: &GroupRows) -> QueryBuilder<'_, Sqlite> {
    let mut sql = QueryBuilder::new(
        "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) ",
    );
    sql.push_values(&rows.snapshots, |mut row, ((aggregate_type, aggregate_id), (last_sequence, counter, payload))| {
        row.push_bind(*aggregate_type)
            .push_bind(aggregate_id.as_str())
            .push_bind(*last_sequence)
            .push_bind(*counter)
            .push_bind(payload);
    });
    sql.push(SNAPSHOT_FORWARD);
    sql
}
