//! Step 2 of [`super::rebuild::rebuild_beside`]: the whole log, streamed
//! into the new read models.
//!
//! The log is read with one query, as one stream, and planned chunk by
//! chunk with the projector's own [`Plan`]. The two tables that grow with
//! the log, `rm_postings` and `rm_expenses`, are not inserted into: their
//! rows are written as `COPY` text and sent to a `COPY ... FROM STDIN` of
//! their own, each on its own connection, open for the whole load, into
//! tables without keys or indexes. PostgreSQL takes those rows in while this
//! process decodes and plans the next chunk. Everything else a chunk writes
//! (wijken, funds, commitments and their changes, balances, close lines) is
//! small and goes through [`Apply::write_all`] on the rebuild's connection,
//! as the projector would write it.
//!
//! What the projector's inserts of postings and expenses look up in the
//! read models, [`Known`] keeps in memory, except an expense's initiative
//! and theme for a reversal's postings; and the projector's update of a
//! reversed expense cannot run before that expense is copied in. Both are
//! written down in two side tables of the new schema, and applied with one
//! update each once the copies are in and keyed ([`finish`]).
//!
//! Memory stays flat in the log's size: one chunk of events, the copy
//! buffers in flight (at most [`IN_FLIGHT`] per table), and [`Known`],
//! which grows with the funds and commitments only.

use std::collections::BTreeMap;

use anyhow::Context;
use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{Connection, Executor, PgConnection, Row};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::apply::{
    add_to_balances, Insert, Known, Param, Plan, Write, FREEZE_CLOSE_LINES, INSERT_BALANCES, INSERT_EXPENSES,
    INSERT_POSTINGS, REVERSE_EXPENSE,
};
use super::plan_event::{PlanEvent, StoredText};
use super::Apply;

/// The tables copied in, which get their keys and indexes only after the load.
pub const COPIED: [&str; 2] = ["rm_postings", "rm_expenses"];

/// Events planned at a time, as a projector's rebuild applies them.
const CHUNK: usize = super::REBUILD_BATCH as usize;
/// Chunks of copy text queued per table before the planning waits for PostgreSQL.
const IN_FLIGHT: usize = 2;

/// The reversals of expenses, as [`REVERSE_EXPENSE`]'s parameters, and the
/// postings whose initiative and theme are their expense's.
const PENDING_REVERSALS: &str = "pending_reversals (position, reason, booked_on, expense_id)";
const PENDING_LOOKUPS: &str = "pending_expense_lookups (position, line, expense_id)";

/// The side tables' definitions, in the schema the rebuild builds in.
pub(super) const SIDE_TABLES: &str =
    "CREATE TABLE pending_reversals (position BIGINT NOT NULL, reason TEXT, booked_on TEXT, expense_id TEXT NOT NULL); \
     CREATE TABLE pending_expense_lookups (position BIGINT NOT NULL, line BIGINT NOT NULL, expense_id TEXT NOT NULL)";

/// Streams the whole log (as it is when the query starts) into the new read
/// models. The reader and the two copies get connections of their own with
/// `options`, set up with `session` as `conn` is (its `search_path`
/// on the new tables). Answers the position of the last event loaded, or 0
/// for an empty log.
pub(super) async fn load(
    options: &PgConnectOptions,
    session: &str,
    conn: &mut PgConnection,
    progress: &mut impl FnMut(i64),
) -> anyhow::Result<i64> {
    let connect = || async {
        let mut conn = PgConnection::connect_with(options).await?;
        conn.execute(sqlx::raw_sql(session)).await?;
        anyhow::Ok(conn)
    };
    let mut reader = connect().await?;
    let postings = CopyIn::start(connect().await?, INSERT_POSTINGS);
    let expenses = CopyIn::start(connect().await?, INSERT_EXPENSES);
    let loaded = stream(&mut reader, conn, &postings, &expenses, progress).await;
    // A failed copy shows up as a closed channel in `stream`; its own error says why.
    let finished = [postings.finish(loaded.is_ok()).await, expenses.finish(loaded.is_ok()).await];
    let position = match loaded {
        Err(err) => return Err(finished.into_iter().find_map(Result::err).unwrap_or(err)),
        Ok(position) => position,
    };
    finished.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    reader.close().await?;
    Ok(position)
}

async fn stream(
    reader: &mut PgConnection,
    conn: &mut PgConnection,
    postings: &CopyIn,
    expenses: &CopyIn,
    progress: &mut impl FnMut(i64),
) -> anyhow::Result<i64> {
    let mut rows = sqlx::query(LOG_AS_TEXT).fetch(reader);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut loader = Loader::default();
    let mut position = 0;
    loop {
        let row = rows.try_next().await?;
        if let Some(row) = &row {
            chunk.push(plan_event_of_row(row)?);
        }
        if chunk.len() == CHUNK || (row.is_none() && !chunk.is_empty()) {
            let planned = loader.plan(&chunk)?;
            postings.send(planned.postings).await?;
            expenses.send(planned.expenses).await?;
            let mut tx = conn.begin().await?;
            tx.write_all(planned.others).await?;
            crate::failpoint::hit("rebuild-batch-before-commit");
            tx.commit().await?;
            position = chunk.last().map_or(position, |event| event.position);
            chunk.clear();
            progress(position);
        }
        if row.is_none() {
            if let Some(balances) = loader.balances() {
                let mut tx = conn.begin().await?;
                tx.write_all(vec![balances]).await?;
                tx.commit().await?;
            }
            return Ok(position);
        }
    }
}

/// The whole log in order, the payload and metadata as the JSON text they
/// are stored as, so that they are decoded once, straight into the event
/// types ([`PlanEvent::of_text`]): through `serde_json::Value` first, that
/// decoding and freeing was about a third of the rebuild process's CPU.
const LOG_AS_TEXT: &str = "SELECT position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
    event_type, event_version, CAST(payload AS TEXT) AS payload, CAST(metadata AS TEXT) AS metadata \
    FROM events ORDER BY position";

fn plan_event_of_row(row: &PgRow) -> anyhow::Result<PlanEvent> {
    PlanEvent::of_text(StoredText {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        recorded_at: row.try_get("recorded_at")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
    })
}

/// What the load carries from chunk to chunk.
#[derive(Default)]
struct Loader {
    known: Known,
    /// Each wijk's available money so far (the new read models start empty).
    available: BTreeMap<String, i64>,
    /// What the chunks since the last close add to each (wijk, fund, kind)
    /// balance. Written only before a close, which reads the balances, and
    /// at the end: upserting the same few hundred balances chunk after
    /// chunk left each row a chain of dead versions that the load's own
    /// long read of the log keeps from being pruned, and every upsert
    /// walked those chains (the rebuild's connection was on a CPU for 20 s
    /// of a million events' load).
    balances: BTreeMap<(String, String, String), i64>,
    /// The last chunk's copy text lengths, so the next one's buffers are
    /// allocated about once instead of grown by doubling.
    last_lengths: (usize, usize),
}

/// A chunk's writes: copy text for the two copied tables, the rest as the projector writes it.
struct Planned {
    postings: Vec<u8>,
    expenses: Vec<u8>,
    others: Vec<Write>,
}

impl Loader {
    fn plan(&mut self, events: &[PlanEvent]) -> anyhow::Result<Planned> {
        let (writes, available) = Plan::of(events)?.into_writes_and_available(&self.available)?;
        self.available = available;
        let (postings, expenses) = self.last_lengths;
        let mut planned = Planned {
            postings: Vec::with_capacity(postings + postings / 8),
            expenses: Vec::with_capacity(expenses + expenses / 8),
            others: Vec::new(),
        };
        let mut reversals = Insert { into: PENDING_REVERSALS, lookup: None, then: "", rows: Vec::new() };
        let mut lookups = Insert { into: PENDING_LOOKUPS, lookup: None, then: "", rows: Vec::new() };
        // In plan order: a segment's funds and commitments come before the
        // expenses and postings that look them up.
        for write in writes {
            match write {
                Write::Insert(insert) if insert.into == INSERT_POSTINGS => {
                    for row in insert.rows {
                        let (row, expense) = self.known.posting(row)?;
                        if let Some(expense_id) = expense {
                            lookups.rows.push(vec![row[0].clone(), row[1].clone(), Param::Text(expense_id)]);
                        }
                        copy_text(&row, &mut planned.postings);
                    }
                }
                Write::Insert(insert) if insert.into == INSERT_EXPENSES => {
                    for row in insert.rows {
                        copy_text(&self.known.expense(row), &mut planned.expenses);
                    }
                }
                Write::Statement(statement) if statement.sql == REVERSE_EXPENSE => {
                    reversals.rows.push(statement.params);
                }
                Write::Insert(insert) if insert.into == INSERT_BALANCES => {
                    for row in insert.rows {
                        let [Param::Text(wijk), Param::Text(fund), Param::Text(kind), Param::Int(cents)] = &row[..]
                        else {
                            anyhow::bail!("a balance row planned as {row:?}");
                        };
                        let sum = self.balances.entry((wijk.clone(), fund.clone(), kind.clone())).or_insert(0);
                        *sum = sum.checked_add(*cents).context("a balance overflows 64-bit cents")?;
                    }
                }
                Write::Statement(statement) if statement.sql == FREEZE_CLOSE_LINES => {
                    planned.others.extend(self.balances());
                    planned.others.push(Write::Statement(statement));
                }
                Write::Insert(insert) => {
                    self.known.learn(&insert);
                    planned.others.push(Write::Insert(insert));
                }
                other => planned.others.push(other),
            }
        }
        self.last_lengths = (planned.postings.len(), planned.expenses.len());
        planned.others.extend([reversals, lookups].into_iter().filter(|i| !i.rows.is_empty()).map(Write::Insert));
        Ok(planned)
    }

    /// The balances added up since they were last written, as one write.
    fn balances(&mut self) -> Option<Write> {
        let sums = std::mem::take(&mut self.balances);
        (!sums.is_empty()).then(|| Write::Insert(add_to_balances(sums)))
    }
}

/// Applies what the side tables hold, once the copied tables are in and
/// keyed: each reversed expense takes its last reversal, as the projector's
/// updates in log order leave it, and each posting waiting for its expense's
/// initiative and theme takes them where its own are empty.
pub(super) async fn finish(conn: &mut PgConnection) -> anyhow::Result<()> {
    conn.execute(sqlx::raw_sql(
        "UPDATE rm_expenses e SET reversed_position = r.position, reversal_reason = r.reason, reversed_on = r.booked_on \
         FROM (SELECT DISTINCT ON (expense_id) * FROM pending_reversals ORDER BY expense_id, position DESC) r \
         WHERE e.expense_id = r.expense_id; \
         UPDATE rm_postings p SET initiative = COALESCE(p.initiative, e.initiative), theme = COALESCE(p.theme, e.theme) \
         FROM pending_expense_lookups l JOIN rm_expenses e ON e.expense_id = l.expense_id \
         WHERE p.position = l.position AND p.line = l.line",
    ))
    .await
    .context("applying the reversals and the expenses' descriptions after the load")?;
    Ok(())
}

/// A row in `COPY`'s text format: tab-separated, `\N` for null.
fn copy_text(row: &[Param], out: &mut Vec<u8>) {
    for (i, param) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match param {
            Param::Int(n) | Param::OptInt(Some(n)) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Param::OptInt(None) | Param::OptText(None) => out.extend_from_slice(b"\\N"),
            Param::Text(text) | Param::OptText(Some(text)) => copy_escape(text, out),
        }
    }
    out.push(b'\n');
}

/// A field in `COPY`'s text format: backslash, tab, newline and carriage
/// return escaped, everything else as it is. Most fields have none of them,
/// and are copied in one go.
pub fn copy_escape(field: &str, out: &mut Vec<u8>) {
    let bytes = field.as_bytes();
    let mut plain = 0;
    for (i, byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escaped);
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
}

/// One `COPY ... FROM STDIN`, on a connection of its own, fed by a task.
struct CopyIn {
    chunks: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl CopyIn {
    fn start(mut conn: PgConnection, into: &'static str) -> Self {
        let (chunks, mut received) = mpsc::channel::<Vec<u8>>(IN_FLIGHT);
        let task = tokio::spawn(async move {
            let mut copy = conn.copy_in_raw(&format!("COPY {into} FROM STDIN")).await?;
            while let Some(chunk) = received.recv().await {
                copy.send(chunk).await?;
            }
            copy.finish().await.with_context(|| format!("copying the rebuilt {into}"))?;
            conn.close().await?;
            Ok(())
        });
        Self { chunks, task }
    }

    async fn send(&self, chunk: Vec<u8>) -> anyhow::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.chunks.send(chunk).await.map_err(|_| anyhow::anyhow!("the copy stopped"))
    }

    /// Commits the copy, or, when the load failed, drops its connection,
    /// which aborts it.
    async fn finish(self, commit: bool) -> anyhow::Result<()> {
        if !commit {
            self.task.abort();
        }
        drop(self.chunks);
        match self.task.await {
            Ok(result) => result,
            Err(err) if err.is_cancelled() => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_as_special_and_writes_null_as_backslash_n() {
        let row = [
            Param::Int(-42),
            Param::OptInt(None),
            Param::Text("a\\b\tc\nd\re".into()),
            Param::OptText(None),
            Param::OptText(Some("plain €".into())),
        ];
        let mut out = Vec::new();
        copy_text(&row, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "-42\t\\N\ta\\\\b\\tc\\nd\\re\t\\N\tplain €\n");
    }
}
