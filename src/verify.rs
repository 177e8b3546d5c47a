//! Tamper evidence: re-walking the hash-chained log and proving that it is
//! the log the service wrote.
//!
//! The database refuses UPDATE and DELETE on `events`, but a superuser can
//! switch that off. Verification catches what such a person could change:
//! every hash is recomputed from [`GENESIS`], positions must run 1, 2, 3, ...
//! and each stream's sequences 1, 2, 3, ..., every payload must still read
//! as its event (after upcasting), and every money event must balance. A
//! rewrite that recomputes all later hashes is caught by comparing with a
//! head (`POSITION:HASH`) kept from an earlier run: today's log must extend
//! yesterday's unchanged. Without such a head, removing the newest events
//! cannot be detected (a shorter chain is still a valid chain), so keep the
//! printed head where the database's superusers cannot write.
//!
//! The same `Verifier` checks the live store ([`verify_database`]) and an
//! offline export ([`verify_file`]), so an auditor can verify a copy without
//! access to the database. Both walk the log in pages and keep only one
//! number per stream, so memory does not grow with the length of the log.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::domain::fund::FundEvent;
use crate::domain::ids::FundId;
use crate::domain::postings::{postings, AccountKind};
use crate::domain::wijk::WijkEvent;
use crate::on_db;
use crate::store::chain::{chain_hash, parse_hash, ChainedEvent, GENESIS};
use crate::store::repository::{head, read_log};
use crate::store::Db;

/// Events read per query: large enough that a million events take 500
/// round trips, small enough that a page of big payloads stays a few MB.
const PAGE: i64 = 2000;

/// A point in the log: the position of one event and the chain hash up to
/// and including it. Written and read as `POSITION:HASH`; the head of an
/// empty log is `0:` followed by the all-zero genesis hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Head {
    pub position: i64,
    /// 64 lowercase hex digits.
    pub hash: String,
}

impl Head {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        Self { position: 0, hash: hex::encode(GENESIS) }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.position, self.hash)
    }
}

/// Why a `POSITION:HASH` text is not a head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a log head: {reason}; write it as POSITION:HASH, exactly as `verify` printed it")]
pub struct InvalidHead {
    text: String,
    reason: &'static str,
}

impl FromStr for Head {
    type Err = InvalidHead;

    fn from_str(text: &str) -> Result<Self, InvalidHead> {
        let invalid = |reason| InvalidHead { text: text.chars().take(100).collect(), reason };
        let (position, hash) = text.trim().split_once(':').ok_or_else(|| invalid("there is no `:`"))?;
        let position: i64 = position
            .parse()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| invalid("the position is not a whole number of zero or more"))?;
        // Hex is case-insensitive; the store writes lowercase, so compare in lowercase.
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || parse_hash(&hash).is_none() {
            return Err(invalid("the hash is not 64 hex digits"));
        }
        Ok(Self { position, hash })
    }
}

/// A log that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The last verified event; an empty log reports [`Head::genesis`].
    pub head: Head,
    /// How many events were checked.
    pub events: u64,
}

/// The first thing wrong with a log. Verification stops there: everything
/// after a broken link is unproven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The first bad position (for a deleted event: the missing position).
    pub position: i64,
    /// `type/id` of the event's stream, or `unknown` when it cannot be read.
    pub aggregate: String,
    /// What is wrong, in words.
    pub problem: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the event log fails verification at position {} ({}): {}; compare the store with the last \
             verified export to find the change, and append nothing until it is explained",
            self.position, self.aggregate, self.problem
        )
    }
}

impl std::error::Error for VerifyFailure {}

const UNKNOWN_AGGREGATE: &str = "unknown";

/// The checks, fed one event at a time in log order. It remembers only the
/// running hash, the last position and the last sequence of each stream.
struct Verifier<'h> {
    expect_head: Option<&'h Head>,
    previous: [u8; 32],
    last_position: i64,
    /// aggregate type -> aggregate id -> last sequence. Nested so that a
    /// lookup borrows the event's strings instead of cloning them.
    streams: HashMap<String, HashMap<String, i64>>,
    /// The balance of every account, from the postings so far. A valid hash
    /// chain only proves the log was not changed after it was written; the
    /// balances prove that what was written obeys the money rules, so a log
    /// forged before hashing (or by a service with a forged snapshot) fails.
    balances: HashMap<String, Decimal>,
    events: u64,
}

impl<'h> Verifier<'h> {
    fn new(expect_head: Option<&'h Head>) -> Self {
        Self {
            expect_head,
            previous: GENESIS,
            last_position: 0,
            streams: HashMap::new(),
            balances: HashMap::new(),
            events: 0,
        }
    }

    /// The position the next event must have.
    fn next_position(&self) -> i64 {
        self.last_position + 1
    }

    fn feed(&mut self, event: ChainedEvent) -> Result<(), VerifyFailure> {
        let fail = |event: &ChainedEvent, problem: String| VerifyFailure {
            position: event.position,
            aggregate: format!("{}/{}", event.aggregate_type, event.aggregate_id),
            problem,
        };

        let expected = self.next_position();
        if event.position > expected {
            return Err(VerifyFailure {
                position: expected,
                aggregate: UNKNOWN_AGGREGATE.into(),
                problem: format!(
                    "position {expected} is missing: the next event is at position {} ({}/{}), so an event was deleted",
                    event.position, event.aggregate_type, event.aggregate_id
                ),
            });
        }
        if event.position < expected {
            return Err(fail(
                &event,
                format!(
                    "position {} comes after position {}: positions must rise by one, so an event was duplicated or reordered",
                    event.position, self.last_position
                ),
            ));
        }

        let hash = chain_hash(&self.previous, &event);
        let computed = hex::encode(hash);
        if computed != event.hash {
            return Err(fail(
                &event,
                format!(
                    "the stored hash {} does not match the recomputed {computed}: this event or its hash was changed after it was written",
                    event.hash
                ),
            ));
        }
        if let Some(expected_head) = self.expect_head.filter(|h| h.position == event.position) {
            if expected_head.hash != event.hash {
                return Err(fail(
                    &event,
                    format!(
                        "the hash here is {}, not the expected head's {}: the log was rewritten at or before this position",
                        event.hash, expected_head.hash
                    ),
                ));
            }
        }
        self.previous = hash;
        self.last_position = event.position;

        let last_sequence = match self.streams.get_mut(&event.aggregate_type) {
            Some(ids) => match ids.get_mut(&event.aggregate_id) {
                Some(last) => std::mem::replace(last, event.sequence),
                None => {
                    ids.insert(event.aggregate_id.clone(), event.sequence);
                    0
                }
            },
            None => {
                let ids = HashMap::from([(event.aggregate_id.clone(), event.sequence)]);
                self.streams.insert(event.aggregate_type.clone(), ids);
                0
            }
        };
        if event.sequence != last_sequence + 1 {
            return Err(fail(
                &event,
                format!(
                    "sequence {} follows sequence {last_sequence} of this stream; expected {}, so a stream event is missing or duplicated",
                    event.sequence,
                    last_sequence + 1
                ),
            ));
        }

        self.check_payload(&event).map_err(|problem| fail(&event, problem))?;
        self.events += 1;
        Ok(())
    }

    /// Reads the payload as the domain does and checks that money balances.
    fn check_payload(&mut self, event: &ChainedEvent) -> Result<(), String> {
        let cannot_read = |err: serde_json::Error| {
            format!(
                "the payload does not read as a {} {} event version {} (after upcasting): {err}",
                event.aggregate_type, event.event_type, event.event_version
            )
        };
        let type_mismatch =
            |found: String| format!("the stored event type is {} but the payload is a {found} event", event.event_type);
        match event.aggregate_type.as_str() {
            "fund" => {
                let fund_event = event.read_payload::<FundEvent>().map_err(cannot_read)?;
                if fund_event.event_type() != event.event_type {
                    return Err(type_mismatch(fund_event.event_type()));
                }
                let fund_id = FundId::parse(&event.aggregate_id)
                    .map_err(|err| format!("the stream id is not a fund id: it {err}"))?;
                if let FundEvent::FundEstablished { terms, .. } = &fund_event {
                    if terms.fund_id != fund_id {
                        return Err(format!("the payload establishes fund {} in the stream of another fund", terms.fund_id));
                    }
                }
                let postings = postings(&fund_id, &fund_event);
                let sum: Decimal = postings.iter().map(|p| p.amount).sum();
                if !sum.is_zero() {
                    return Err(format!("the postings of this event sum to {sum}, not zero"));
                }
                for posting in postings {
                    let name = posting.account.name();
                    let balance = self.balances.entry(name.clone()).or_default();
                    *balance += posting.amount;
                    let may_go_negative = matches!(posting.account.kind, AccountKind::Appropriation | AccountKind::CarriedIn);
                    if *balance < Decimal::ZERO && !may_go_negative {
                        return Err(format!(
                            "account {name} goes to {balance}: more money left it than it ever held, which the ledger refuses"
                        ));
                    }
                }
                Ok(())
            }
            "wijk" => {
                // Wijk events move no money, but must still read as events.
                let wijk_event = event.read_payload::<WijkEvent>().map_err(cannot_read)?;
                if wijk_event.event_type() != event.event_type {
                    return Err(type_mismatch(wijk_event.event_type()));
                }
                Ok(())
            }
            other => Err(format!(
                "aggregate type `{other}` is not one the ledger writes; if a new aggregate was added, teach `verify` to read it"
            )),
        }
    }

    /// A failure at a position whose event could not be read, or does not exist.
    fn failure_at(&self, position: i64, aggregate: Option<String>, problem: String) -> VerifyFailure {
        VerifyFailure { position, aggregate: aggregate.unwrap_or_else(|| UNKNOWN_AGGREGATE.into()), problem }
    }

    fn finish(&self) -> Result<VerifyReport, VerifyFailure> {
        let head = Head { position: self.last_position, hash: hex::encode(self.previous) };
        if let Some(expected) = self.expect_head {
            if expected.position > head.position {
                return Err(self.failure_at(
                    expected.position,
                    None,
                    format!(
                        "the expected head is at position {}, but the log ends at position {}: events were removed, \
                         or the head belongs to another log",
                        expected.position, head.position
                    ),
                ));
            }
            if expected.position == 0 && expected.hash != hex::encode(GENESIS) {
                return Err(self.failure_at(0, None, "position 0 can only have the all-zero genesis hash".into()));
            }
        }
        Ok(VerifyReport { head, events: self.events })
    }
}

fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("the template is valid").progress_chars("=> "));
    bar
}

const EVENTS_TEMPLATE: &str = "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)";

/// One page of the live log, or the events before a row that cannot be read.
enum Page {
    Events(Vec<ChainedEvent>),
    Unreadable { before: Vec<ChainedEvent>, position: i64, aggregate: Option<String>, error: String },
}

/// A row whose columns no longer decode (possible in SQLite, whose columns
/// are plain text) is evidence, not an outage: it must become a failure
/// naming its position rather than an error that stops verification.
fn is_decode_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
}

async fn read_page(db: &Db, after: i64) -> anyhow::Result<Page> {
    let context = || format!("reading the event log after position {after}");
    match read_log(db, after, PAGE).await {
        Ok(events) => return Ok(Page::Events(events)),
        Err(err) if is_decode_error(&err) => {}
        Err(err) => return Err(err).with_context(context),
    }
    // Rare path: find the first unreadable row by reading the page one event at a time.
    const POSITIONS: &str = "SELECT position FROM events WHERE position > $1 ORDER BY position LIMIT $2";
    let positions: Vec<i64> = on_db!(db, pool => {
        sqlx::query_scalar(POSITIONS).bind(after).bind(PAGE).fetch_all(pool).await
    })
    .with_context(context)?;
    let mut before = Vec::new();
    for position in positions {
        match read_log(db, position - 1, 1).await {
            Ok(events) => before.extend(events),
            Err(err) if is_decode_error(&err) => {
                const STREAM: &str = "SELECT aggregate_type || '/' || aggregate_id FROM events WHERE position = $1";
                let aggregate: Option<String> = on_db!(db, pool => {
                    sqlx::query_scalar(STREAM).bind(position).fetch_optional(pool).await
                })
                .ok()
                .flatten();
                return Ok(Page::Unreadable { before, position, aggregate, error: err.to_string() });
            }
            Err(err) => return Err(err).with_context(context),
        }
    }
    Ok(Page::Events(before))
}

/// Verifies the whole log in the store, from [`GENESIS`] to the head as it
/// stood when verification started (events appended meanwhile are left for
/// the next run). With `expect_head`, the event at that position must have
/// exactly that hash. With `progress`, draws a progress bar on stderr.
///
/// The outer error means the log could not be read; the inner one that it
/// was read and is not the log the service wrote.
pub async fn verify_database(
    db: &Db,
    expect_head: Option<&Head>,
    progress: bool,
) -> anyhow::Result<Result<VerifyReport, VerifyFailure>> {
    let mut bar = None;
    let outcome = verify_database_reporting(db, expect_head, |done, total| {
        bar.get_or_insert_with(|| {
            let bar = progress_bar(progress, total, EVENTS_TEMPLATE);
            bar.set_message("verifying");
            bar
        })
        .set_position(done)
    })
    .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outcome
}

/// Like [`verify_database`], telling `on_progress` how many events of how
/// many it has verified after each page, for a progress bar or a web page.
pub async fn verify_database_reporting(
    db: &Db,
    expect_head: Option<&Head>,
    mut on_progress: impl FnMut(u64, u64),
) -> anyhow::Result<Result<VerifyReport, VerifyFailure>> {
    let (last, _) = head(db).await.context("reading the head of the event log")?;
    let total = last.max(0) as u64;
    let mut done = 0u64;
    on_progress(done, total);
    let mut verifier = Verifier::new(expect_head);
    let mut after = 0;
    let outcome = 'walk: loop {
        let (events, unreadable) = match read_page(db, after).await? {
            Page::Events(events) => (events, None),
            Page::Unreadable { before, position, aggregate, error } => (before, Some((position, aggregate, error))),
        };
        let page_end = events.last().map(|e| e.position);
        let count = events.len() as u64;
        for event in events {
            if event.position > last {
                break 'walk verifier.finish();
            }
            if let Err(failure) = verifier.feed(event) {
                break 'walk Err(failure);
            }
        }
        done = (done + count).min(total);
        on_progress(done, total);
        if let Some((position, aggregate, error)) = unreadable {
            if position <= last {
                break Err(unreadable_row(&verifier, position, aggregate, error));
            }
            break verifier.finish();
        }
        match page_end {
            Some(end) => after = end,
            None => break verifier.finish(),
        }
    };
    Ok(outcome)
}

/// The failure for a row that cannot be decoded; an earlier gap is reported first.
fn unreadable_row(verifier: &Verifier<'_>, position: i64, aggregate: Option<String>, error: String) -> VerifyFailure {
    let expected = verifier.next_position();
    if position > expected {
        return verifier.failure_at(
            expected,
            None,
            format!(
                "position {expected} is missing: the next event is at position {position}, so an event was deleted"
            ),
        );
    }
    verifier.failure_at(
        position,
        aggregate,
        format!("the stored row cannot be read ({error}): it was changed outside the service"),
    )
}

/// Writes the whole log to `path` as JSON Lines, one [`ChainedEvent`] per
/// line in position order, up to the head as it stood when the export
/// started. The file appears only when complete: it is written next to
/// `path` and renamed into place. Returns the head of the exported log.
pub async fn export(db: &Db, path: &Path, progress: bool) -> anyhow::Result<Head> {
    let file_name = path.file_name().with_context(|| {
        format!("the export path {} names no file; give a file name such as wijkbudget-log.jsonl", path.display())
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(".partial");
    let temp = path.with_file_name(temp_name);

    let (last, _) = head(db).await.context("reading the head of the event log")?;
    let bar = progress_bar(progress, last.max(0) as u64, EVENTS_TEMPLATE);
    bar.set_message("exporting");
    let written = write_export(db, &temp, last, &bar).await;
    bar.finish_and_clear();
    match written {
        Ok(head) => {
            tokio::fs::rename(&temp, path)
                .await
                .with_context(|| format!("moving the finished export {} to {}", temp.display(), path.display()))?;
            Ok(head)
        }
        Err(err) => {
            // Best effort: the partial file is useless, and the error below says why.
            let _ = tokio::fs::remove_file(&temp).await;
            Err(err)
        }
    }
}

async fn write_export(db: &Db, temp: &Path, last: i64, bar: &ProgressBar) -> anyhow::Result<Head> {
    let file = tokio::fs::File::create(temp)
        .await
        .with_context(|| format!("creating {}; check that its directory exists and is writable", temp.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut head = Head::genesis();
    let mut line = Vec::new();
    let mut after = 0;
    'pages: loop {
        let page =
            read_log(db, after, PAGE).await.with_context(|| format!("reading the event log after position {after}"))?;
        let Some(page_end) = page.last().map(|e| e.position) else { break };
        for event in &page {
            if event.position > last {
                break 'pages;
            }
            line.clear();
            serde_json::to_writer(&mut line, event).context("serialising an event for the export")?;
            line.push(b'\n');
            out.write_all(&line).await.with_context(|| format!("writing {}", temp.display()))?;
            head = Head { position: event.position, hash: event.hash.clone() };
            bar.inc(1);
        }
        after = page_end;
    }
    out.flush().await.with_context(|| format!("writing {}", temp.display()))?;
    // On disk before the rename, so a crash never leaves a short file under the final name.
    out.get_ref().sync_all().await.with_context(|| format!("syncing {}", temp.display()))?;
    Ok(head)
}

/// Verifies an export written by [`export`] with the same checks as
/// [`verify_database`], without any database. A line that is not an event
/// is a failure at the position it should have held. This reads the file
/// with blocking IO: from async code, call it through `spawn_blocking`.
pub fn verify_file(
    path: &Path,
    expect_head: Option<&Head>,
    progress: bool,
) -> anyhow::Result<Result<VerifyReport, VerifyFailure>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the export {}", path.display()))?;
    let size = file.metadata().with_context(|| format!("reading the size of {}", path.display()))?.len();
    let bar = progress_bar(progress, size, "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)");
    bar.set_message("verifying");
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut verifier = Verifier::new(expect_head);
    let mut line = Vec::new();
    let mut line_number = 0u64;
    let outcome = loop {
        line.clear();
        // Bytes, not `String`: a changed byte may be invalid UTF-8, which is
        // a finding about the file rather than a failure to read it.
        let read = reader.read_until(b'\n', &mut line).with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break verifier.finish();
        }
        line_number += 1;
        bar.inc(read as u64);
        let event = match serde_json::from_slice::<ChainedEvent>(&line) {
            Ok(event) => event,
            Err(err) => {
                break Err(verifier.failure_at(
                    verifier.next_position(),
                    None,
                    format!("line {line_number} is not a stored event ({err}): the file was changed or cut short"),
                ));
            }
        };
        if let Err(failure) = verifier.feed(event) {
            break Err(failure);
        }
    };
    bar.finish_and_clear();
    Ok(outcome)
}

/// The outcome of the most recent verification, as the HTTP layer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastVerification {
    /// `POSITION:HASH` of the verified head; absent when verification failed.
    pub head: Option<String>,
    /// How many events were verified; absent when verification failed.
    pub events: Option<u64>,
    pub ok: bool,
    /// The failure message, naming the first bad position.
    pub first_problem: Option<String>,
    pub finished_at: DateTime<Utc>,
}

impl From<&Result<VerifyReport, VerifyFailure>> for LastVerification {
    /// Records an outcome as finished now.
    fn from(outcome: &Result<VerifyReport, VerifyFailure>) -> Self {
        let finished_at = Utc::now();
        match outcome {
            Ok(report) => Self {
                head: Some(report.head.to_string()),
                events: Some(report.events),
                ok: true,
                first_problem: None,
                finished_at,
            },
            Err(failure) => {
                Self { head: None, events: None, ok: false, first_problem: Some(failure.to_string()), finished_at }
            }
        }
    }
}

/// Where the last verification is kept in memory for the HTTP layer; it is
/// deliberately not stored, since the log tables are append-only evidence.
pub type LastVerificationCell = Arc<tokio::sync::RwLock<Option<LastVerification>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    fn event(
        position: i64,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
        event_type: &str,
        payload: Value,
    ) -> ChainedEvent {
        ChainedEvent {
            position,
            event_id: format!("e{position}"),
            recorded_at: DateTime::parse_from_rfc3339("2022-01-01T00:00:00Z").unwrap().into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            sequence,
            event_type: event_type.into(),
            event_version: "1.0.0".into(),
            payload,
            metadata: json!({}),
            hash: String::new(),
        }
    }

    /// Hashes `events` into a valid chain, as the store would.
    fn chained(mut events: Vec<ChainedEvent>) -> Vec<ChainedEvent> {
        let mut previous = GENESIS;
        for e in &mut events {
            previous = chain_hash(&previous, e);
            e.hash = hex::encode(previous);
        }
        events
    }

    fn registered(position: i64, wijk: &str) -> ChainedEvent {
        event(position, "wijk", wijk, 1, "WijkRegistered", json!({"WijkRegistered": {"wijk_id": wijk, "name": "Oost"}}))
    }

    fn run(events: Vec<ChainedEvent>, expect_head: Option<&Head>) -> Result<VerifyReport, VerifyFailure> {
        let mut verifier = Verifier::new(expect_head);
        for e in events {
            verifier.feed(e)?;
        }
        verifier.finish()
    }

    #[test]
    fn heads_are_read_and_written_as_position_colon_hash() {
        let text = format!("12:{}", "AB".repeat(32));
        let head: Head = text.parse().unwrap();
        assert_eq!(head, Head { position: 12, hash: "ab".repeat(32) });
        assert_eq!(head.to_string(), format!("12:{}", "ab".repeat(32)));
        assert!("12".parse::<Head>().is_err());
        assert!(format!("-1:{}", "ab".repeat(32)).parse::<Head>().is_err());
        assert!("12:abc".parse::<Head>().is_err());
    }

    #[test]
    fn an_empty_log_verifies_to_the_genesis_head() {
        assert_eq!(run(vec![], None), Ok(VerifyReport { head: Head::genesis(), events: 0 }));
        assert!(run(vec![], Some(&Head::genesis())).is_ok());
    }

    #[test]
    fn a_correctly_hashed_payload_that_is_not_an_event_fails_at_its_position() {
        let events =
            chained(vec![registered(1, "oost"), event(2, "fund", "A21-182", 1, "BudgetAllocated", json!({"x": 1}))]);
        let failure = run(events, None).unwrap_err();
        assert_eq!((failure.position, failure.aggregate.as_str()), (2, "fund/A21-182"));
        assert!(failure.problem.contains("does not read as a fund BudgetAllocated event"), "{failure}");
    }

    #[test]
    fn a_fund_established_in_version_1_is_upcast_before_it_is_checked() {
        let terms = json!({
            "fund_id": "A21-182", "year": 2022, "kind": "amendement", "name": "Amendement A21-182",
            "amount": "50000.00", "decision": {"reference": "A21-182", "adopted_on": "2021-11-11"},
            "purpose": "Sociale cohesie"
        });
        let mut old = event(1, "fund", "A21-182", 1, "FundEstablished", json!({ "FundEstablished": terms }));
        old.event_version = "1.0".into();
        assert_eq!(run(chained(vec![old]), None).map(|r| r.events), Ok(1));
    }

    #[test]
    fn a_fund_established_in_the_stream_of_another_fund_fails() {
        let terms = json!({
            "fund_id": "A21-182", "year": 2022, "kind": "amendement", "name": "Amendement A21-182",
            "amount": "50000.00", "decision": {"reference": "A21-182", "adopted_on": "2021-11-11"},
            "purpose": "Sociale cohesie"
        });
        let payload = json!({ "FundEstablished": { "terms": terms, "booked_on": "2022-01-01" } });
        let mut established = event(1, "fund", "A22-001", 1, "FundEstablished", payload);
        established.event_version = "2.0.0".into();
        let failure = run(chained(vec![established]), None).unwrap_err();
        assert!(failure.problem.contains("establishes fund A21-182 in the stream of another fund"), "{failure}");
    }

    #[test]
    fn a_payload_of_another_event_type_than_stored_fails() {
        let mut wrong = registered(1, "oost");
        wrong.event_type = "WijkRenamed".into();
        let failure = run(chained(vec![wrong]), None).unwrap_err();
        assert!(failure.problem.contains("the stored event type is WijkRenamed"), "{failure}");
    }

    #[test]
    fn a_gap_in_a_streams_sequences_fails_at_the_event_after_the_gap() {
        let mut second = registered(2, "oost");
        second.sequence = 3;
        let failure = run(chained(vec![registered(1, "oost"), second]), None).unwrap_err();
        assert_eq!(failure.position, 2);
        assert!(failure.problem.contains("sequence 3 follows sequence 1"), "{failure}");
    }

    #[test]
    fn an_expected_head_beyond_the_end_of_the_log_fails_at_that_position() {
        let events = chained(vec![registered(1, "oost")]);
        let beyond = Head { position: 5, hash: "00".repeat(32) };
        let failure = run(events, Some(&beyond)).unwrap_err();
        assert_eq!(failure.position, 5);
        assert!(failure.problem.contains("the log ends at position 1"), "{failure}");
    }
}
