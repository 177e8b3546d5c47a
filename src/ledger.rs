//! The command side: runs a command against its aggregate through cqrs-es,
//! retrying a bounded number of times when another command won the race.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventStore, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventStore};
use serde::Serialize;
use tokio::sync::watch;

use crate::domain::fund::{
    Closing, Decision, ExpenseRegister, Fund, FundCommand, FundError, FundKind, FundServices, FundTerms,
    RecordedExpense, WijkDirectory, YearRegister,
};
use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId, Year};
use crate::domain::money::Amount;
use crate::domain::upcasters;
use crate::domain::wijk::{Wijk, WijkCommand, WijkError};
use crate::on_db;
use crate::store::repository::{meta, AppendRefused, LedgerRepository};
use crate::store::Db;

/// How often a command is tried when its aggregate keeps changing underneath it.
pub const MAX_ATTEMPTS: u32 = 10;

/// Snapshot a fund every this many events, so loading it stays cheap as its history grows.
const FUND_SNAPSHOT_EVERY: usize = 100;

/// Who is acting, as recorded on every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    /// A hash of what the request asked for, to tell a retry from a different request.
    pub fingerprint: String,
}

/// The envelope fields of a command, written into each of its events' metadata.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub actor: Actor,
    pub correlation_id: String,
    pub idempotency: Option<Idempotency>,
}

impl CommandMeta {
    pub fn new(actor: Actor) -> Self {
        Self { actor, correlation_id: uuid::Uuid::new_v4().to_string(), idempotency: None }
    }

    fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            (meta::ACTOR.to_string(), self.actor.name.clone()),
            (meta::ROLE.to_string(), self.actor.role.clone()),
            (meta::CORRELATION_ID.to_string(), self.correlation_id.clone()),
        ]);
        if let Some(idem) = &self.idempotency {
            m.insert(meta::IDEMPOTENCY_KEY.into(), idem.key.clone());
            m.insert(meta::REQUEST_FINGERPRINT.into(), idem.fingerprint.clone());
        }
        m
    }
}

/// One fund closed by [`Ledger::close_year`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClosedFund {
    #[schema(value_type = String)]
    pub fund_id: FundId,
    /// Where the close was recorded; absent if the fund was closed before.
    pub closed_at_position: Option<i64>,
    /// The next year's fund that received carried-over money, if any.
    #[schema(value_type = Option<String>)]
    pub carried_into: Option<FundId>,
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New events were stored at these global positions.
    Recorded { first_position: i64, last_position: i64 },
    /// The command asked for what was already true; nothing was stored.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Fund(#[from] FundError),
    #[error(transparent)]
    Wijk(#[from] WijkError),
    #[error(transparent)]
    Refused(#[from] AppendRefused),
    #[error("the command lost {0} races in a row against concurrent commands; try again")]
    Conflict(u32),
    #[error("the store failed: {0}")]
    Store(String),
    /// The database cannot be reached just now; nothing was stored.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(err: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&err) {
            Self::Unavailable(err.to_string())
        } else {
            Self::Store(err.to_string())
        }
    }
}

/// Answers the fund's "is this wijk registered?" from the wijk's own stream.
struct StoredWijken(LedgerRepository);

#[async_trait]
impl WijkDirectory for StoredWijken {
    async fn is_registered(&self, wijk_id: &WijkId) -> Result<bool, String> {
        let store = PersistedEventStore::<_, Wijk>::new_event_store(self.0.clone());
        let mut context = store.load_aggregate(wijk_id.as_str()).await.map_err(|e| e.to_string())?;
        Ok(context.aggregate().is_registered())
    }
}

/// Answers "is this year closed?" from the read model (see ARCHITECTURE.md).
struct ProjectedYears(Db);

#[async_trait]
impl YearRegister for ProjectedYears {
    /// The first, cheap refusal, with the domain's message. It lags the log
    /// by the projector's lag; the append itself closes that window
    /// (`AppendRefused::YearClosed`, see `store::repository`).
    async fn is_closed(&self, year: Year) -> Result<bool, String> {
        let closed: Option<i64> = on_db!(&self.0, pool => {
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM rm_funds WHERE year = $1 AND closed_on IS NOT NULL LIMIT 1")
                .bind(i64::from(year.value()))
                .fetch_optional(pool)
                .await
                .map_err(|e| e.to_string())?
        });
        Ok(closed.is_some())
    }
}

/// Commands on one aggregate in this process take turns instead of racing.
/// A lost race costs a reload, a second decision and a backoff sleep, and
/// with group commit two commands on one fund in one group always race;
/// waiting for a turn costs nothing. Aggregates hash onto a fixed number of
/// turns, so memory stays bounded and two aggregates that share one merely
/// take turns too. Other processes are still kept out by optimistic locking.
///
/// Never execute a command while holding a turn (from a service an
/// aggregate calls, say): a second turn on the same stripe would wait for
/// itself.
struct Turns(Vec<tokio::sync::Mutex<()>>);

impl Turns {
    const COUNT: usize = 1024;

    fn new() -> Self {
        Self((0..Self::COUNT).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn of(&self, aggregate_type: &str, aggregate_id: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::hash::DefaultHasher::new();
        (aggregate_type, aggregate_id).hash(&mut hasher);
        &self.0[(hasher.finish() % Self::COUNT as u64) as usize]
    }
}

/// Answers "no such expense" without asking, for recording a new expense:
/// the store claims the expense id in the same transaction as the event and
/// refuses the append if it is taken, and then the command is decided again
/// with the real register (see [`execute`]). This saves a read per expense.
struct PresumedNew;

#[async_trait]
impl ExpenseRegister for PresumedNew {
    async fn recorded(&self, _expense_id: &ExpenseId) -> Result<Option<RecordedExpense>, String> {
        Ok(None)
    }
}

#[derive(Clone)]
pub struct Ledger {
    repo: LedgerRepository,
    fund_services: FundServices,
    /// `fund_services` with [`PresumedNew`] as the expense register.
    presumed_new: FundServices,
    projected: watch::Receiver<i64>,
    turns: Arc<Turns>,
    funds: Arc<Decided<Fund>>,
    wijken: Arc<Decided<Wijk>>,
}

impl Ledger {
    /// `projected` follows the projector's checkpoint, for read-your-writes.
    pub fn new(repo: LedgerRepository, projected: watch::Receiver<i64>) -> Self {
        let fund_services = FundServices {
            wijken: Arc::new(StoredWijken(repo.clone())),
            years: Arc::new(ProjectedYears(repo.db().clone())),
            expenses: Arc::new(repo.clone()),
        };
        let presumed_new = FundServices { expenses: Arc::new(PresumedNew), ..fund_services.clone() };
        Self {
            repo,
            fund_services,
            presumed_new,
            projected,
            turns: Arc::new(Turns::new()),
            funds: Arc::new(Decided::new()),
            wijken: Arc::new(Decided::new()),
        }
    }

    pub fn db(&self) -> &Db {
        self.repo.db()
    }

    pub fn repository(&self) -> &LedgerRepository {
        &self.repo
    }

    fn fund_store(&self) -> PersistedEventStore<LedgerRepository, Fund> {
        PersistedEventStore::new_snapshot_store(self.repo.clone(), FUND_SNAPSHOT_EVERY).with_upcasters(upcasters())
    }

    fn wijk_store(&self) -> PersistedEventStore<LedgerRepository, Wijk> {
        PersistedEventStore::new_event_store(self.repo.clone()).with_upcasters(upcasters())
    }

    pub async fn register_wijk(&self, command: WijkCommand, meta: &CommandMeta) -> Result<Outcome, LedgerError> {
        let WijkCommand::Register { wijk_id, .. } = &command;
        let id = wijk_id.to_string();
        execute(&self.wijk_store(), None, &self.repo, &self.wijken, &self.turns, &id, command, &(), None, meta).await
    }

    pub async fn fund(
        &self,
        fund_id: &FundId,
        command: FundCommand,
        meta: &CommandMeta,
    ) -> Result<Outcome, LedgerError> {
        // Recording an expense is the hot path; its id is checked by the
        // store's claim instead of a read first (see `PresumedNew`).
        let presumed = matches!(command, FundCommand::RecordExpense(_)).then_some(&self.presumed_new);
        execute(
            &self.fund_store(),
            Some(FUND_SNAPSHOT_EVERY),
            &self.repo,
            &self.funds,
            &self.turns,
            fund_id.as_str(),
            command,
            &self.fund_services,
            presumed,
            meta,
        )
        .await
    }

    /// The current state of a fund, straight from its stream (not a projection).
    pub async fn load_fund(&self, fund_id: &FundId) -> Result<Fund, LedgerError> {
        let mut context = self.fund_store().load_aggregate(fund_id.as_str()).await.map_err(store_failure)?;
        Ok(std::mem::take(context.aggregate()))
    }

    /// The fund an expense was recorded in, from the claim made with it.
    pub async fn fund_of_expense(&self, expense_id: &ExpenseId) -> Result<Option<FundId>, LedgerError> {
        self.owner("expense", expense_id.as_str()).await
    }

    /// The fund a commitment was made in, from the claim made with it.
    pub async fn fund_of_commitment(&self, commitment_id: &CommitmentId) -> Result<Option<FundId>, LedgerError> {
        self.owner("commitment", commitment_id.as_str()).await
    }

    async fn owner(&self, kind: &str, id: &str) -> Result<Option<FundId>, LedgerError> {
        let owner: Option<String> = on_db!(self.db(), pool => {
            sqlx::query_scalar("SELECT aggregate_id FROM client_ids WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(owner.and_then(|id| FundId::parse(&id).ok()))
    }

    /// Closes every open fund of `year`. The available money of the wijken in
    /// `carry_over` moves into a new fund of the next year per closed fund
    /// (`{fund}-overheveling`, see [`FundId::carry_over`]), allocated to the same wijken; everything else
    /// lapses. Safe to run again after a crash: a closed fund is skipped and
    /// establishing its carry-over fund is idempotent.
    pub async fn close_year(
        &self,
        year: Year,
        decision: Decision,
        carry_over: &[WijkId],
        meta: &CommandMeta,
    ) -> Result<Vec<ClosedFund>, LedgerError> {
        let next_year = Year::new(year.value() + 1).map_err(|_| FundError::CarryOverYear(year))?;
        // A misspelt wijk would silently lapse instead of carrying over: refuse it.
        for wijk_id in carry_over {
            if !self.fund_services.wijken.is_registered(wijk_id).await.map_err(FundError::DirectoryUnavailable)? {
                return Err(FundError::UnknownWijk(wijk_id.clone()).into());
            }
        }
        // The funds are listed again after each pass, until a pass finds no
        // new one: a fund established before the first close of the year
        // was appended is then listed, and one established after it is
        // refused by the append itself (see `store::repository`), so no fund
        // of the year stays open, whichever process established it.
        let mut closed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let funds: Vec<String> = on_db!(self.db(), pool => {
                sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_type = 'fund' AND sequence = 1 ORDER BY position")
                    .fetch_all(pool)
                    .await?
            });
            let new: Vec<String> = funds.into_iter().filter(|id| seen.insert(id.clone())).collect();
            if new.is_empty() {
                break;
            }
            self.close_funds(year, next_year, &decision, carry_over, meta, new, &mut closed).await?;
        }
        Ok(closed)
    }

    /// One pass of [`Ledger::close_year`] over `funds`.
    #[allow(clippy::too_many_arguments)]
    async fn close_funds(
        &self,
        year: Year,
        next_year: Year,
        decision: &Decision,
        carry_over: &[WijkId],
        meta: &CommandMeta,
        funds: Vec<String>,
        closed: &mut Vec<ClosedFund>,
    ) -> Result<(), LedgerError> {
        for id in funds {
            let fund_id = FundId::parse(&id).map_err(|e| LedgerError::Store(format!("stored fund id {id} {e}")))?;
            let fund = self.load_fund(&fund_id).await?;
            let Some(terms) = fund.terms().filter(|t| t.year == year).cloned() else { continue };
            let carry_over_fund = terms.fund_id.carry_over();
            let first_position = if fund.is_closed() {
                None
            } else {
                // The carry-over fund's id must be free (or already this
                // fund's carry-over), or the money would have nowhere to go.
                let target = self.load_fund(&carry_over_fund).await?;
                if target.terms().is_some() && target.carried_over_from() != Some(&fund_id) {
                    return Err(FundError::AlreadyEstablished(carry_over_fund).into());
                }
                // Of the named wijken, those with money in this fund; the
                // domain names no carry-over fund if nothing is carried.
                let closing = Closing {
                    decision_reference: decision.reference.clone(),
                    carry_over: fund.lines().filter(|(w, _)| carry_over.contains(w)).map(|(w, _)| w.clone()).collect(),
                    carry_over_fund: Some(carry_over_fund.clone()),
                };
                match self.fund(&fund_id, FundCommand::Close(closing), meta).await? {
                    Outcome::Recorded { first_position, .. } => Some(first_position),
                    Outcome::Unchanged => None,
                }
            };
            let fund = self.load_fund(&fund_id).await?;
            let allocations: Vec<(WijkId, Amount)> = fund
                .lines()
                .filter_map(|(wijk, line)| Amount::try_from(line.amount_carried_over).ok().map(|a| (wijk.clone(), a)))
                .collect();
            let total: rust_decimal::Decimal = allocations.iter().map(|(_, a)| a.as_decimal()).sum();
            let mut carried_into = None;
            if let Ok(amount) = Amount::try_from(total) {
                let carried_terms = FundTerms {
                    fund_id: carry_over_fund.clone(),
                    year: next_year,
                    kind: FundKind::Begrotingswijziging,
                    name: Text::parse(&format!("Overheveling {} naar {next_year}", terms.fund_id))
                        .map_err(|e| LedgerError::Store(format!("carry-over name {e}")))?,
                    amount,
                    decision: decision.clone(),
                    purpose: terms.purpose.clone(),
                };
                let command =
                    FundCommand::EstablishCarryOver { terms: carried_terms, from_fund: fund_id.clone(), allocations };
                self.fund(&carry_over_fund, command, meta).await?;
                carried_into = Some(carry_over_fund);
            }
            closed.push(ClosedFund { fund_id, closed_at_position: first_position, carried_into });
        }
        Ok(())
    }

    /// The stored claim of an idempotency key: `(fingerprint, first_position, last_position)`.
    pub async fn idempotency_record(&self, key: &str) -> Result<Option<(String, i64, i64)>, LedgerError> {
        Ok(on_db!(self.db(), pool => {
            sqlx::query_as("SELECT fingerprint, first_position, last_position FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Waits until the projector has applied `position`, so a client that
    /// reads right after its write sees it. False on timeout.
    pub async fn wait_for_projection(&self, position: i64, timeout: Duration) -> bool {
        let mut projected = self.projected.clone();
        tokio::time::timeout(timeout, projected.wait_for(|p| *p >= position)).await.is_ok_and(|r| r.is_ok())
    }

    pub fn projected_position(&self) -> i64 {
        *self.projected.borrow()
    }
}

fn store_failure<E: std::error::Error>(err: AggregateError<E>) -> LedgerError {
    match err {
        AggregateError::DatabaseConnectionError(cause) => LedgerError::Unavailable(cause.to_string()),
        other => LedgerError::Store(other.to_string()),
    }
}

/// How a failed append reaches the caller.
fn append_failure(err: PersistenceError) -> LedgerError {
    match err {
        PersistenceError::ConnectionError(cause) => LedgerError::Unavailable(cause.to_string()),
        PersistenceError::UnknownError(err) => match err.downcast::<AppendRefused>() {
            Ok(refused) => LedgerError::Refused(*refused),
            Err(other) => match other.downcast::<sqlx::Error>() {
                Ok(sql) => <LedgerError as From<sqlx::Error>>::from(*sql),
                Err(other) => LedgerError::Store(other.to_string()),
            },
        },
        other => LedgerError::Store(other.to_string()),
    }
}

/// Whether appending `added` events to a stream at `sequence` passes a
/// multiple of `every` (the aggregate's snapshot interval, if it has one), as
/// cqrs-es's snapshot store counts.
fn snapshot_due(every: Option<usize>, sequence: usize, added: usize) -> bool {
    every.is_some_and(|every| sequence / every != (sequence + added) / every)
}

/// Decide, append; on a lost race reload and decide again. cqrs-es itself
/// never retries, and retrying here is safe because every attempt that
/// appends was decided on the state the append's stream-head check found
/// stored.
///
/// The state comes from this process's [`Decided`] cache when it holds the
/// aggregate, and otherwise from the store (snapshot and the events after
/// it). The cache is never trusted: the group commit appends only if the
/// stream's head is still the sequence the decision was taken on, so a
/// stale entry (another instance appended meanwhile) costs one conflict,
/// after which the aggregate is loaded from the store and decided again
/// without a backoff sleep. `presumed` are services that answer without IO
/// on the assumption the store will refuse what they get wrong (see
/// `Ledger::fund`); any refusal or domain error decided with them is decided
/// again with the real `services`, so only a command the store accepted
/// ever rests on them.
#[allow(clippy::too_many_arguments)]
async fn execute<A>(
    store: &PersistedEventStore<LedgerRepository, A>,
    snapshot_every: Option<usize>,
    repo: &LedgerRepository,
    decided: &Decided<A>,
    turns: &Turns,
    aggregate_id: &str,
    command: A::Command,
    services: &A::Services,
    presumed: Option<&A::Services>,
    meta: &CommandMeta,
) -> Result<Outcome, LedgerError>
where
    A: Aggregate + Clone,
    A::Command: Clone,
    LedgerError: From<A::Error>,
{
    let _turn = turns.of(A::TYPE, aggregate_id).lock().await;
    let metadata = serde_json::to_value(meta.to_metadata()).map_err(|e| LedgerError::Store(e.to_string()))?;
    let mut presumed = presumed;
    let mut attempt = 0;
    while attempt < MAX_ATTEMPTS {
        let (state, from_cache) = match decided.take(aggregate_id) {
            Some(entry) => (entry, true),
            None => {
                let context = store.load_aggregate(aggregate_id).await.map_err(store_failure)?;
                let entry = Entry {
                    state: context.aggregate,
                    sequence: context.current_sequence,
                    snapshot: context.current_snapshot,
                };
                (entry, false)
            }
        };
        // Decide on a copy: the state stays as stored until the append says so.
        let mut decider = state.state.clone();
        let sink = EventSink::<A>::default();
        let decision = decider.handle(command.clone(), presumed.unwrap_or(services), &sink).await;
        if decision.is_err() && presumed.take().is_some() {
            decided.put(aggregate_id, state);
            continue;
        }
        let events = sink.collect().await;
        if decision.is_err() || events.is_empty() {
            // Nothing to append, so no stream-head check confirms the
            // decision: a cached state is confirmed by reading the head (a
            // refusal or "unchanged" is rare, and one probe), and if another
            // instance appended meanwhile the command is decided again on
            // what is stored. Without this a stale entry could refuse an
            // expense the stored state allows.
            if from_cache && repo.stream_head(A::TYPE, aggregate_id).await? != state.sequence as i64 {
                continue;
            }
            decided.put(aggregate_id, state);
            decision?;
            return Ok(Outcome::Unchanged);
        }
        attempt += 1;
        let added = events.len();
        let serialized = events
            .iter()
            .zip(state.sequence + 1..)
            .map(|(event, sequence)| {
                Ok(SerializedEvent::new(
                    aggregate_id.to_string(),
                    sequence,
                    A::TYPE.to_string(),
                    event.event_type(),
                    event.event_version(),
                    serde_json::to_value(event)?,
                    metadata.clone(),
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| LedgerError::Store(e.to_string()))?;
        // The snapshot is of the state after the whole command, stored
        // under the command's last sequence (see `store::repository::Appender`).
        let snapshot = if snapshot_due(snapshot_every, state.sequence, added) {
            let payload = serde_json::to_value(&decider).map_err(|e| LedgerError::Store(e.to_string()))?;
            Some((aggregate_id.to_string(), payload, state.snapshot.map_or(1, |s| s + 1)))
        } else {
            None
        };
        let next_snapshot = snapshot.as_ref().map(|(_, _, counter)| *counter).or(state.snapshot);
        match repo.append_events(A::TYPE, serialized, snapshot).await {
            Ok(positions) => {
                let (first_position, last_position) = positions.ok_or_else(|| {
                    LedgerError::Store("the store answered an append of events with no positions".into())
                })?;
                let entry = Entry { state: decider, sequence: state.sequence + added, snapshot: next_snapshot };
                decided.put(aggregate_id, entry);
                return Ok(Outcome::Recorded { first_position, last_position });
            }
            Err(PersistenceError::OptimisticLockError) => {
                // The entry is gone (taken above): the next attempt loads what is stored.
                tracing::debug!(aggregate_id, attempt, from_cache, "lost a race; reloading and retrying");
                if !from_cache {
                    // Exponential backoff with full jitter, so a crowd of commands on
                    // one fund spreads out instead of colliding again in lockstep.
                    let ceiling_ms = (4u64 << attempt.min(6)).min(250);
                    tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % ceiling_ms + 1)).await;
                }
            }
            Err(PersistenceError::UnknownError(err)) if presumed.is_some() && err.is::<AppendRefused>() => {
                // Nothing was stored, and the head was checked before the
                // refusal: the state is still the stored one.
                decided.put(aggregate_id, state);
                presumed = None;
            }
            // Whatever else went wrong, the entry stays out: a commit that
            // failed may still have reached the disk.
            Err(err) => return Err(append_failure(err)),
        }
    }
    Err(LedgerError::Conflict(MAX_ATTEMPTS))
}

/// The state of an aggregate as this process last decided or loaded it,
/// with the stream's sequence it reflects and its snapshot counter.
struct Entry<A> {
    state: A,
    sequence: usize,
    snapshot: Option<usize>,
}

/// Aggregates this process decided on lately, kept so that the next command
/// on one decides without reading the store. A cache, never the truth: see
/// [`execute`]. At most [`Decided::CAPACITY`] aggregates are kept; inserting
/// into a full cache drops the least recently used one. A fund's state does
/// not grow with its expenses (only with its wijken, commitments, reversals
/// and booking days), typically a few KB, so the cache stays within a few
/// MB.
///
/// An entry is taken out while a command decides on it (under the
/// aggregate's turn) and put back only when the command's outcome is known
/// to match the store: unchanged, refused by the domain, or appended.
struct Decided<A> {
    entries: std::sync::Mutex<(u64, HashMap<String, (Entry<A>, u64)>)>,
}

impl<A> Decided<A> {
    const CAPACITY: usize = 1_024;

    fn new() -> Self {
        Self { entries: std::sync::Mutex::new((0, HashMap::new())) }
    }

    fn take(&self, aggregate_id: &str) -> Option<Entry<A>> {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.remove(aggregate_id).map(|(entry, _)| entry)
    }

    fn put(&self, aggregate_id: &str, entry: Entry<A>) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if entries.len() >= Self::CAPACITY && !entries.contains_key(aggregate_id) {
            if let Some(oldest) = entries.iter().min_by_key(|(_, (_, used))| *used).map(|(id, _)| id.clone()) {
                entries.remove(&oldest);
            }
        }
        entries.insert(aggregate_id.to_string(), (entry, *clock));
    }
}
