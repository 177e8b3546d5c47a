//! The store-independent half of the group commit (see
//! [`super::repository`]): what a group of commands needs checked, and the
//! decision, in memory and in command order, of which of them are appended
//! and with which rows. Both stores read what [`GroupInput`] asks under the
//! append lock, hand it over as [`Found`], and write the [`GroupRows`] that
//! [`decide`] answers; PostgreSQL in one message or two
//! ([`super::pg_group`]), SQLite in two calls ([`super::sqlite_group`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cqrs_es::persist::{PersistenceError, SerializedEvent};
use serde_json::Value;
use tokio::sync::oneshot;

use super::chain::{chain_hash, ChainedEvent, GENESIS};
use super::repository::{meta, AppendRefused};
use crate::domain;

/// The `client_ids` kind that records, in the same transaction as a fund's
/// `FundClosed`, that its year is closed (`{year}:{fund}`). Checked under
/// the append lock before a fund of that year is established, so a fund can
/// never slip into a year closed moments before, from any process.
pub(super) const CLOSED_YEAR: &str = "closed_year";

/// One command's outcome: the positions of its first and last event (none
/// for a command without events), or why it was refused.
pub(super) type Outcome = Result<Option<(i64, i64)>, PersistenceError>;

/// Where the group committer's time has gone since it started. Appends are
/// serialised (one group at a time, for gap-free positions and one chain),
/// so the committer's busy time per command is the ceiling of the write
/// rate, and the part of it spent waiting for the database says how much
/// of that ceiling is the database's. Read by `GET /ready` and the bench.
#[derive(Debug, Default)]
pub struct AppendClock {
    groups: AtomicU64,
    commands: AtomicU64,
    busy_us: AtomicU64,
    database_us: AtomicU64,
}

/// A reading of an [`AppendClock`]: counters since the committer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendTimes {
    pub groups: u64,
    pub commands: u64,
    /// From taking a group off the queue to having answered its commands.
    pub busy: Duration,
    /// Of `busy`, waiting for the database's answers (its work on the
    /// group's statements, the commit and its flush, the round trips).
    pub database: Duration,
}

impl AppendClock {
    pub(super) fn add(&self, commands: usize, busy: Duration, database: Duration) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(commands as u64, Ordering::Relaxed);
        self.busy_us.fetch_add(busy.as_micros() as u64, Ordering::Relaxed);
        self.database_us.fetch_add(database.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> AppendTimes {
        AppendTimes {
            groups: self.groups.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            busy: Duration::from_micros(self.busy_us.load(Ordering::Relaxed)),
            database: Duration::from_micros(self.database_us.load(Ordering::Relaxed)),
        }
    }
}

/// Awaits a call to the database, adding the wait to `waited`.
pub(super) async fn waiting<T>(waited: &mut Duration, call: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let answer = call.await;
    *waited += start.elapsed();
    answer
}

/// One command's events, waiting for the group committer.
pub(super) struct AppendJob {
    pub aggregate_type: &'static str,
    pub events: Vec<SerializedEvent>,
    pub snapshot_update: Option<(String, Value, usize)>,
    pub done: oneshot::Sender<Outcome>,
}

/// What the checks of a group need to read, gathered from its commands
/// before anything is read; deduplicated, in a fixed order.
#[derive(Clone)]
pub(super) struct GroupInput {
    /// Per command, per event: the client id it claims, if any.
    pub claims: Vec<Vec<Option<(&'static str, String)>>>,
    /// The streams the group appends to: (aggregate type, aggregate id).
    pub streams: Vec<(String, String)>,
    pub claim_kinds: BTreeSet<&'static str>,
    pub claim_ids: BTreeSet<String>,
    pub keys: BTreeSet<String>,
    /// Per command: the year it establishes a fund in.
    pub establishes: Vec<Option<i64>>,
    /// The funds the group closes; their years come from their first events.
    pub closing: BTreeSet<String>,
}

impl GroupInput {
    pub fn of(group: &[AppendJob]) -> Self {
        let claims: Vec<Vec<_>> = group
            .iter()
            .map(|job| job.events.iter().map(|e| domain::client_id_claim(&e.event_type, &e.payload)).collect())
            .collect();
        let mut streams = BTreeSet::new();
        let mut claim_kinds = BTreeSet::new();
        let mut claim_ids = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (job, claims) in group.iter().zip(&claims) {
            if let Some(first) = job.events.first() {
                streams.insert((job.aggregate_type.to_string(), first.aggregate_id.clone()));
                if let Some(key) = metadata_str(&first.metadata, meta::IDEMPOTENCY_KEY) {
                    keys.insert(key);
                }
            }
            for (kind, id) in claims.iter().flatten() {
                claim_kinds.insert(*kind);
                claim_ids.insert(id.clone());
            }
        }
        let establishes = group
            .iter()
            .map(|job| {
                job.events
                    .iter()
                    .filter(|e| job.aggregate_type == "fund" && e.sequence == 1)
                    .find_map(|e| year_of_first_fund_event(&e.payload))
            })
            .collect();
        let closing = group
            .iter()
            .filter(|job| job.aggregate_type == "fund" && job.events.iter().any(|e| e.event_type == "FundClosed"))
            .filter_map(|job| job.events.first().map(|e| e.aggregate_id.clone()))
            .collect();
        Self { claims, streams: streams.into_iter().collect(), claim_kinds, claim_ids, keys, establishes, closing }
    }

    /// The years this group establishes funds in, each once.
    pub fn years_established(&self) -> BTreeSet<i64> {
        self.establishes.iter().flatten().copied().collect()
    }
}

/// What the reads under the append lock found. Appends are serialised, so
/// it is exact until the group's transaction ends.
#[derive(Default)]
pub(super) struct Found {
    /// The log's head: its last position and hash.
    pub position: i64,
    pub previous: [u8; 32],
    /// Each stream's last sequence; a stream without events is absent.
    pub heads: HashMap<(String, String), i64>,
    /// Client ids already claimed: (kind, id) -> owning aggregate.
    pub owners: HashMap<(String, String), String>,
    pub used_keys: HashSet<String>,
    /// Among [`GroupInput::years_established`], those already closed.
    pub closed_years: HashSet<i64>,
    /// The year of each fund in [`GroupInput::closing`], from its first event.
    pub years_closing: HashMap<String, i64>,
}

// The tags of the rows the checks' read answers, all of one shape: `tag`,
// `i` (an index into the input's list), `n` (a number), `a`, `b`, `c`
// (text).
/// The log's head: `n` its position, `a` its hash.
pub(super) const HEAD: i64 = 0;
/// A stream's head: `i` into [`GroupInput::streams`], `n` its sequence.
pub(super) const STREAM: i64 = 1;
/// A client id already claimed: `a` its kind, `b` the id, `c` its owner.
pub(super) const CLAIM: i64 = 2;
/// An idempotency key already used: `a`.
pub(super) const KEY: i64 = 3;
/// A year of [`GroupInput::years_established`] that is closed: `n`.
pub(super) const CLOSED: i64 = 4;
/// The first event of a fund the group closes: `i` into
/// [`GroupInput::closing`], `a` its payload.
pub(super) const CLOSING: i64 = 5;
/// The read models' checkpoint: `n`.
pub(super) const CHECKPOINT_ROW: i64 = 6;
/// A wijk's available money: `a` the wijk, `n` the cents.
pub(super) const AVAILABLE: i64 = 7;

/// One row of the checks' read, decoded.
pub(super) struct CheckRow {
    pub tag: i64,
    pub i: usize,
    pub n: Option<i64>,
    pub a: Option<String>,
    pub b: Option<String>,
    pub c: Option<String>,
}

impl CheckRow {
    pub fn of<R: sqlx::Row>(row: &R) -> Result<Self, PersistenceError>
    where
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        i64: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
        String: sqlx::Type<R::Database> + for<'a> sqlx::Decode<'a, R::Database>,
    {
        let get = |e: sqlx::Error| super::repository::store_error(e);
        Ok(Self {
            tag: row.try_get("tag").map_err(get)?,
            i: row.try_get::<i64, _>("i").map_err(get)? as usize,
            n: row.try_get("n").map_err(get)?,
            a: row.try_get("a").map_err(get)?,
            b: row.try_get("b").map_err(get)?,
            c: row.try_get("c").map_err(get)?,
        })
    }
}

impl Found {
    /// Takes in a row of the head ([`HEAD`]), a stream's head ([`STREAM`],
    /// `i` into `streams`), a claimed client id ([`CLAIM`]) or a used key
    /// ([`KEY`]); any other row is handed back.
    pub fn take(&mut self, row: CheckRow, streams: &[(String, String)]) -> Result<Option<CheckRow>, PersistenceError> {
        match row.tag {
            HEAD => {
                self.previous = super::repository::head_hash(row.a.as_deref().unwrap_or_default())?;
                self.position = row.n.unwrap_or_default();
            }
            STREAM => {
                if let Some(head) = row.n {
                    self.heads.insert(streams[row.i].clone(), head);
                }
            }
            CLAIM => {
                self.owners.insert((row.a.unwrap_or_default(), row.b.unwrap_or_default()), row.c.unwrap_or_default());
            }
            KEY => {
                self.used_keys.insert(row.a.unwrap_or_default());
            }
            _ => return Ok(Some(row)),
        }
        Ok(None)
    }
}

/// Everything the careful read of a group answered: what the checks
/// need, the read models' checkpoint and each wijk's available money (when
/// the group may project).
#[derive(Default)]
pub(super) struct Read {
    pub found: Found,
    pub checkpoint: Option<i64>,
    pub available: BTreeMap<String, i64>,
}

impl Read {
    pub fn of(rows: impl IntoIterator<Item = CheckRow>, input: &GroupInput) -> Result<Self, PersistenceError> {
        let mut read = Self { found: Found { previous: GENESIS, ..Found::default() }, ..Self::default() };
        for row in rows {
            let Some(row) = read.found.take(row, &input.streams)? else { continue };
            match row.tag {
                CLOSED => read.found.closed_years.extend(row.n),
                CLOSING => {
                    let payload: Option<Value> = row.a.and_then(|p| serde_json::from_str(&p).ok());
                    let fund = input.closing.iter().nth(row.i).cloned().unwrap_or_default();
                    if let Some(year) = payload.as_ref().and_then(year_of_first_fund_event) {
                        read.found.years_closing.insert(fund, year);
                    }
                }
                CHECKPOINT_ROW => read.checkpoint = row.n,
                AVAILABLE => {
                    read.available.insert(row.a.unwrap_or_default(), row.n.unwrap_or_default());
                }
                _ => {}
            }
        }
        Ok(read)
    }
}

/// A client id claimed by an event: `client_ids` row.
pub(super) struct Claim {
    pub kind: &'static str,
    pub id: String,
    pub owner: String,
    pub position: i64,
}

/// A command's idempotency key and the positions of its events: `idempotency_keys` row.
pub(super) struct KeyClaim {
    pub key: String,
    pub fingerprint: String,
    pub first_position: i64,
    pub last_position: i64,
}

/// The rows of a group's accepted commands, written together.
#[derive(Default)]
pub(super) struct GroupRows {
    pub events: Vec<ChainedEvent>,
    pub claims: Vec<Claim>,
    pub idempotency_keys: Vec<KeyClaim>,
    /// Per aggregate, the newest snapshot of the group: (type, id) -> (last sequence, counter, payload).
    pub snapshots: HashMap<(&'static str, String), (i64, i64, Value)>,
}

/// Decides, in command order, which commands of the group are appended,
/// and builds their rows: positions from the head on, the chain extended.
/// Every check of a command is made before any row of it is built, so a
/// refused command leaves nothing behind, and each command sees what the
/// commands before it in the group claimed.
pub(super) fn decide(
    group: &[AppendJob],
    input: GroupInput,
    found: Found,
    recorded_at: DateTime<Utc>,
) -> (GroupRows, Vec<Outcome>) {
    let Found { mut position, mut previous, mut heads, mut owners, mut used_keys, mut closed_years, years_closing } =
        found;
    let mut rows = GroupRows::default();
    let mut outcomes = Vec::with_capacity(group.len());
    for ((job, claims), establishes) in group.iter().zip(input.claims).zip(&input.establishes) {
        let events = &job.events;
        if let Some(year) = establishes.filter(|y| closed_years.contains(y)) {
            outcomes.push(Err(refused(AppendRefused::YearClosed(year))));
            continue;
        }
        if let Some(first) = events.first() {
            let head = heads.get(&(job.aggregate_type.to_string(), first.aggregate_id.clone())).copied().unwrap_or(0);
            if head as usize + 1 != first.sequence {
                outcomes.push(Err(PersistenceError::OptimisticLockError));
                continue;
            }
        }
        // Taken before, or twice within this command.
        let mut own = HashSet::new();
        let taken = claims.iter().flatten().find_map(|(kind, id)| match owners.get(&(kind.to_string(), id.clone())) {
            Some(owner) => Some((kind, id, owner.clone())),
            None if !own.insert((kind, id)) => Some((kind, id, events[0].aggregate_id.clone())),
            None => None,
        });
        if let Some((kind, id, owner)) = taken {
            let reason = AppendRefused::ClientIdTaken { kind: kind.to_string(), id: id.clone(), owner };
            outcomes.push(Err(refused(reason)));
            continue;
        }
        let key = events.first().and_then(|e| metadata_str(&e.metadata, meta::IDEMPOTENCY_KEY));
        if let Some(key) = key.as_ref().filter(|k| used_keys.contains(*k)) {
            outcomes.push(Err(refused(AppendRefused::IdempotencyKeyUsed(key.clone()))));
            continue;
        }

        let first_position = position + 1;
        for (event, claim) in events.iter().zip(&claims) {
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
            if let Some((kind, id)) = claim {
                owners.insert((kind.to_string(), id.clone()), event.aggregate_id.clone());
                rows.claims.push(Claim { kind, id: id.clone(), owner: event.aggregate_id.clone(), position });
            }
            heads.insert((job.aggregate_type.to_string(), event.aggregate_id.clone()), event.sequence as i64);
            rows.events.push(chained);
        }
        if let Some(year) = events.first().and_then(|e| years_closing.get(&e.aggregate_id)) {
            if events.iter().any(|e| e.event_type == "FundClosed") {
                let fund = events[0].aggregate_id.clone();
                closed_years.insert(*year);
                rows.claims.push(Claim { kind: CLOSED_YEAR, id: format!("{year}:{fund}"), owner: fund, position });
            }
        }
        if let Some(key) = key {
            let fingerprint = metadata_str(&events[0].metadata, meta::REQUEST_FINGERPRINT).unwrap_or_default();
            used_keys.insert(key.clone());
            rows.idempotency_keys.push(KeyClaim { key, fingerprint, first_position, last_position: position });
        }
        let positions = (!events.is_empty()).then_some((first_position, position));
        if let Some((aggregate_id, payload, current_snapshot)) = &job.snapshot_update {
            let last_sequence = events.last().map_or(0, |e| e.sequence) as i64;
            rows.snapshots.insert(
                (job.aggregate_type, aggregate_id.clone()),
                (last_sequence, *current_snapshot as i64, payload.clone()),
            );
        }
        outcomes.push(Ok(positions));
    }
    (rows, outcomes)
}

/// The budget year in a fund stream's first event (`FundEstablished` or
/// `FundCarriedOver`), if `payload` is one.
pub(super) fn year_of_first_fund_event(payload: &Value) -> Option<i64> {
    let (_, inner) = payload.as_object()?.iter().next()?;
    inner.pointer("/terms/year")?.as_i64()
}

pub(super) fn refused(reason: AppendRefused) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(reason))
}

pub(super) fn metadata_str(metadata: &Value, key: &str) -> Option<String> {
    metadata.get(key).and_then(Value::as_str).map(str::to_string)
}
