//! How a batch of events changes the read models, as plain SQL. Kept pure
//! (events in, a plan of writes out) so the projector's transaction is the
//! only IO.
//!
//! A batch is written set-based: the new rows of each table in multi-row
//! inserts, the balance deltas summed per balance, then the updates in event
//! order. That gives exactly the rows that applying the events one by one
//! gives, because
//! - the inserts run in the order their lookups need (funds before anything
//!   that reads a fund's year; commitments before the expenses and postings
//!   that take their initiative and theme; expenses before postings), and
//!   every looked-up column is fixed when its row is inserted;
//! - no insert reads a column an update writes: updates touch only payment,
//!   settlement, recovery, status, reversal and close columns, and no update
//!   reads anything but its own row;
//! - balances only ever add, so their sum does not depend on order, and a
//!   balance one event would create (even with zero cents) is created;
//! - the one write that reads what came before it, a close freezing its
//!   balances into `rm_close_lines`, ends a segment: everything up to and
//!   including the close is written first, and nothing after it;
//! - a posting's running `wijk_available_cents` starts from the wijk's
//!   available money before the batch, which the projector reads and passes
//!   in, and carries on in memory from segment to segment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use serde_json::Value;

use super::plan_event::{Payload, PlanEvent};
use crate::domain::fund::FundEvent;
use crate::domain::ids::{FundId, WijkId};
use crate::domain::money::cents;
use crate::domain::postings::{postings, AccountKind};
use crate::domain::wijk::WijkEvent;
use crate::store::chain::{format_recorded_at, ChainedEvent};

/// Every table `rebuild` wipes. The log and its claims are not among them.
pub const READ_MODEL_TABLES: [&str; 7] =
    ["rm_wijken", "rm_funds", "rm_balances", "rm_postings", "rm_expenses", "rm_commitments", "rm_close_lines"];

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
}

impl Param {
    /// The text, if this is a text that is there.
    pub fn text(&self) -> Option<&str> {
        match self {
            Param::Text(text) | Param::OptText(Some(text)) => Some(text),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
}

/// Rows for one table, inserted with as few statements as the store allows
/// (see `InsertRows` in the projector). With a lookup, each row of
/// parameters is a row `v` (columns `v.column1`, `v.column2`, ..) joined to
/// the read models it reads: `INSERT INTO {into} SELECT {select} FROM (rows)
/// AS v {joins} WHERE true {then}`. A join on a primary key finds at most one
/// row, as the subselect it replaces did, and is planned once per statement
/// instead of once per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub into: &'static str,
    pub lookup: Option<Lookup>,
    pub then: &'static str,
    pub rows: Vec<Vec<Param>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    pub select: &'static str,
    pub joins: &'static str,
}

/// Parameters per statement where every value is one (SQLite), under its limit of 32 766.
const MAX_BINDS: usize = 32_000;

impl Insert {
    fn new(into: &'static str, lookup: Option<Lookup>) -> Self {
        Self { into, lookup, then: "", rows: Vec::new() }
    }

    /// The rows split into runs that each fit one statement of parameters per value.
    pub fn statements(&self) -> std::slice::Chunks<'_, Vec<Param>> {
        let width = self.rows.first().map_or(1, Vec::len).max(1);
        self.rows.chunks((MAX_BINDS / width).max(1))
    }
}

/// One write of a plan, executed in plan order.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Insert(Insert),
    Statement(Statement),
}

fn text(s: impl ToString) -> Param {
    Param::Text(s.to_string())
}
fn opt(s: Option<impl ToString>) -> Param {
    Param::OptText(s.map(|s| s.to_string()))
}

pub(crate) const INSERT_POSTINGS: &str = "rm_postings (position, line, event_id, event_type, fund_id, wijk_id, \
    account_kind, account, amount_cents, year, booked_on, recorded_at, actor, role, reason, reference, \
    initiative, theme, expense_id, commitment_id, wijk_available_cents)";
pub(crate) const INSERT_EXPENSES: &str = "rm_expenses (expense_id, fund_id, wijk_id, amount_cents, initiative, theme, \
    booked_on, reference, position, event_id, commitment_id)";
pub(crate) const INSERT_COMMITMENTS: &str =
    "rm_commitments (commitment_id, fund_id, wijk_id, amount_cents, paid_cents, \
    owed_cents, status, initiative, applicant, theme, decision_reference, decided_on, grant_rule, booked_on, position)";
pub(crate) const INSERT_FUNDS: &str =
    "rm_funds (fund_id, year, kind, name, amount_cents, decision_reference, adopted_on, \
    purpose, booked_on, position, carried_over_from)";
const INSERT_WIJKEN: &str = "rm_wijken (wijk_id, name, position)";
pub(crate) const INSERT_BALANCES: &str = "rm_balances (wijk_id, fund_id, year, kind, cents)";
/// Adds to a balance, creating it (even at zero cents) when it is new.
const ADD_TO_BALANCES: &str =
    "ON CONFLICT (wijk_id, fund_id, kind) DO UPDATE SET cents = rm_balances.cents + excluded.cents";

/// A posting carries the year of its fund. One without its own initiative
/// and theme (a payment, a reversal, a settlement) takes them from its
/// commitment or else its expense, so reports per theme and the audit
/// trail's initiative filter see every posting.
const POSTING_LOOKUP: Lookup = Lookup {
    select: "v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, \
        f.year, v.column10, v.column11, v.column12, v.column13, v.column14, v.column15, \
        COALESCE(v.column16, c.initiative, e.initiative), COALESCE(v.column17, c.theme, e.theme), v.column18, v.column19, \
        v.column20",
    joins: "LEFT JOIN rm_funds f ON f.fund_id = v.column5 \
        LEFT JOIN rm_commitments c ON c.commitment_id = v.column19 \
        LEFT JOIN rm_expenses e ON e.expense_id = v.column18",
};
/// A payment's expense takes its initiative and theme from its commitment.
const EXPENSE_LOOKUP: Lookup = Lookup {
    select: "v.column1, v.column2, v.column3, v.column4, COALESCE(v.column5, c.initiative), \
        COALESCE(v.column6, c.theme), v.column7, v.column8, v.column9, v.column10, v.column11",
    joins: "LEFT JOIN rm_commitments c ON c.commitment_id = v.column11",
};
/// A balance carries the year of its fund.
const BALANCE_LOOKUP: Lookup = Lookup {
    select: "v.column1, v.column2, f.year, v.column3, v.column4",
    joins: "LEFT JOIN rm_funds f ON f.fund_id = v.column2",
};

/// What [`POSTING_LOOKUP`] and [`EXPENSE_LOOKUP`] read from the read models,
/// kept in memory instead by the rebuild's loader, which copies postings and
/// expenses in without reading anything back: each fund's year, and each
/// commitment's initiative and theme. Both are fixed when their row is
/// inserted, so knowing them from the rows planned so far gives what the
/// joins would find. It grows with the funds and commitments, not with the
/// events or expenses. An expense's own initiative and theme, which a
/// reversal's postings take, are not kept: [`Known::posting`] names the
/// expense, and the loader fills them in with one update after the load.
#[derive(Default)]
pub struct Known {
    fund_years: HashMap<String, i64>,
    commitments: HashMap<String, (String, String)>,
}

impl Known {
    /// Learns the funds and commitments an insert creates.
    pub fn learn(&mut self, insert: &Insert) {
        for row in &insert.rows {
            match (insert.into, row.as_slice()) {
                (INSERT_FUNDS, [Param::Text(fund_id), Param::Int(year), ..]) => {
                    self.fund_years.insert(fund_id.clone(), *year);
                }
                (
                    INSERT_COMMITMENTS,
                    [Param::Text(commitment_id), _, _, _, _, _, _, Param::Text(initiative), _, Param::Text(theme), ..],
                ) => {
                    self.commitments.insert(commitment_id.clone(), (initiative.clone(), theme.clone()));
                }
                _ => {}
            }
        }
    }

    /// A posting row as planned, as the row of `rm_postings` that
    /// [`POSTING_LOOKUP`] makes of it, with the expense whose initiative and
    /// theme its own and its commitment's leave to fill in, if any.
    pub fn posting(&self, mut row: Vec<Param>) -> anyhow::Result<(Vec<Param>, Option<String>)> {
        let Some(Param::Text(fund_id)) = row.get(4) else { anyhow::bail!("a posting row without its fund") };
        let year =
            *self.fund_years.get(fund_id).with_context(|| format!("a posting of {fund_id}, a fund not established"))?;
        let commitment = row.get(18).and_then(Param::text).and_then(|id| self.commitments.get(id));
        let (initiative, theme) = (15, 16);
        let described = described(&mut row, commitment, initiative, theme);
        let expense = row.get(17).and_then(Param::text).filter(|_| !described).map(str::to_string);
        row.insert(9, Param::Int(year));
        Ok((row, expense))
    }

    /// An expense row as planned, as the row of `rm_expenses` that [`EXPENSE_LOOKUP`] makes of it.
    pub fn expense(&self, mut row: Vec<Param>) -> Vec<Param> {
        let commitment = row.get(10).and_then(Param::text).and_then(|id| self.commitments.get(id));
        described(&mut row, commitment, 4, 5);
        row
    }
}

/// Fills the initiative and theme at `initiative` and `theme` that a row
/// leaves empty from its commitment, as the lookups' `COALESCE` does:
/// whether both are known now.
fn described(row: &mut [Param], commitment: Option<&(String, String)>, initiative: usize, theme: usize) -> bool {
    for (column, from) in [(initiative, commitment.map(|c| &c.0)), (theme, commitment.map(|c| &c.1))] {
        if let (Some(cell @ Param::OptText(None)), Some(value)) = (row.get_mut(column), from) {
            *cell = Param::OptText(Some(value.clone()));
        }
    }
    ![initiative, theme].iter().any(|&column| matches!(row.get(column), Some(Param::OptText(None))))
}

/// Marks an expense reversed: `$1` position, `$2` reason, `$3` booked on, `$4` expense id.
pub(crate) const REVERSE_EXPENSE: &str =
    "UPDATE rm_expenses SET reversed_position = $1, reversal_reason = $2, reversed_on = $3 WHERE expense_id = $4";

/// Freezes a fund's close statement from its balances, right after the
/// close's own postings were applied.
pub(crate) const FREEZE_CLOSE_LINES: &str =
    "INSERT INTO rm_close_lines (fund_id, wijk_id, allocated_cents, transferred_cents, \
    spent_cents, committed_cents, receivable_cents, lapsed_cents, carried_over_cents) \
    SELECT fund_id, wijk_id, \
    CAST(SUM(CASE WHEN kind = 'allocated' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'transferred' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'spent' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'committed' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'receivable' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'lapsed' THEN cents ELSE 0 END) AS BIGINT), \
    CAST(SUM(CASE WHEN kind = 'carried_over' THEN cents ELSE 0 END) AS BIGINT) \
    FROM rm_balances WHERE fund_id = $1 GROUP BY fund_id, wijk_id";

/// Descriptive columns a posting row carries besides its money.
#[derive(Default)]
struct Describe {
    reason: Option<String>,
    reference: Option<String>,
    initiative: Option<String>,
    theme: Option<String>,
    expense_id: Option<String>,
    commitment_id: Option<String>,
}

/// The writes of the events up to and including a close (or the batch's end).
struct Segment {
    wijken: Insert,
    funds: Insert,
    commitments: Insert,
    expenses: Insert,
    postings: Insert,
    /// Net cents per (wijk, fund, kind); every key an event touched, even at a net zero.
    balances: BTreeMap<(String, String, &'static str), i64>,
    updates: Vec<Statement>,
    close: Option<Statement>,
    /// The rows of `postings` on a wijk's account, in (position, line) order.
    wijk_postings: Vec<WijkPosting>,
}

/// A posting row on a wijk's account, whose `wijk_available_cents` (its last
/// column) is filled in once the wijk's available money before the batch is known.
struct WijkPosting {
    row: usize,
    wijk_id: String,
    /// Its amount on a `wijk_budget` account, zero on the wijk's other accounts.
    available_change: i64,
}

impl Segment {
    fn new() -> Self {
        Self {
            wijken: Insert::new(INSERT_WIJKEN, None),
            funds: Insert::new(INSERT_FUNDS, None),
            commitments: Insert::new(INSERT_COMMITMENTS, None),
            expenses: Insert::new(INSERT_EXPENSES, Some(EXPENSE_LOOKUP)),
            postings: Insert::new(INSERT_POSTINGS, Some(POSTING_LOOKUP)),
            balances: BTreeMap::new(),
            updates: Vec::new(),
            close: None,
            wijk_postings: Vec::new(),
        }
    }

    fn add_to_balance(
        &mut self,
        wijk_id: &WijkId,
        fund_id: &FundId,
        kind: &'static str,
        cents: i64,
    ) -> anyhow::Result<()> {
        let sum = self.balances.entry((wijk_id.to_string(), fund_id.to_string(), kind)).or_insert(0);
        *sum = sum
            .checked_add(cents)
            .with_context(|| format!("the {kind} balance of {wijk_id} in {fund_id} overflows 64-bit cents"))?;
        Ok(())
    }

    /// The segment's writes, in the order their lookups need (see the module comment).
    fn into_writes(self, out: &mut Vec<Write>) {
        let balances = add_to_balances(self.balances);
        let inserts = [self.wijken, self.funds, self.commitments, self.expenses, self.postings, balances];
        out.extend(inserts.into_iter().filter(|insert| !insert.rows.is_empty()).map(Write::Insert));
        out.extend(self.updates.into_iter().chain(self.close).map(Write::Statement));
    }
}

/// Adds each `((wijk, fund, kind), cents)` to its balance, creating the
/// balances that are new (even at zero cents).
pub(crate) fn add_to_balances<K: Into<String>>(sums: impl IntoIterator<Item = ((String, String, K), i64)>) -> Insert {
    let mut balances = Insert::new(INSERT_BALANCES, Some(BALANCE_LOOKUP));
    balances.then = ADD_TO_BALANCES;
    balances.rows = sums
        .into_iter()
        .map(|((wijk_id, fund_id, kind), cents)| {
            vec![Param::Text(wijk_id), Param::Text(fund_id), Param::Text(kind.into()), Param::Int(cents)]
        })
        .collect();
    balances
}

/// The writes that bring the read models from before a batch of events to
/// after them, but for the one value that depends on the read models before
/// the batch: each wijk's available money, where the running
/// `wijk_available_cents` of its postings starts. The projector reads that for
/// [`Plan::wijken`] and hands it to [`Plan::into_writes`], so planning stays pure.
pub struct Plan {
    segments: Vec<Segment>,
}

impl Plan {
    /// Plans `events`, consecutive and in log order.
    pub fn new(events: &[ChainedEvent]) -> anyhow::Result<Self> {
        let events = events.iter().map(PlanEvent::of).collect::<anyhow::Result<Vec<_>>>()?;
        Self::of(&events)
    }

    /// [`Plan::new`] for events already read for planning.
    pub fn of(events: &[PlanEvent]) -> anyhow::Result<Self> {
        let mut segments = Vec::new();
        let mut segment = Segment::new();
        for event in events {
            match &event.payload {
                Payload::Wijk(WijkEvent::WijkRegistered { wijk_id, name }) => {
                    segment.wijken.rows.push(vec![text(wijk_id), text(name), Param::Int(event.position)]);
                }
                Payload::Fund(fund_event) => {
                    add_fund_event(&mut segment, event, fund_event)?;
                    if segment.close.is_some() {
                        segments.push(std::mem::replace(&mut segment, Segment::new()));
                    }
                }
            }
        }
        segments.push(segment);
        Ok(Self { segments })
    }

    /// The wijken the batch posts to.
    pub fn wijken(&self) -> BTreeSet<&str> {
        self.segments.iter().flat_map(|s| &s.wijk_postings).map(|p| p.wijk_id.as_str()).collect()
    }

    /// [`Plan::wijken`] of fund events not yet in the log, so without
    /// positions: `(fund id, payload)`. The group commit on SQLite reads
    /// their available money before it decides which of its commands are
    /// appended. A payload that does not read as a fund event posts
    /// nowhere here; [`Plan::new`] refuses it.
    pub fn wijken_of<'a>(events: impl IntoIterator<Item = (&'a str, &'a Value)>) -> BTreeSet<String> {
        let mut wijken = BTreeSet::new();
        for (fund_id, payload) in events {
            // Decided by this version of the code, so no upcaster applies.
            let (Ok(event), Ok(fund_id)) =
                (<FundEvent as serde::Deserialize>::deserialize(payload), FundId::parse(fund_id))
            else {
                continue;
            };
            let posted = postings(&fund_id, &event).into_iter().filter_map(|posting| posting.account.wijk_id);
            wijken.extend(posted.map(|wijk_id| wijk_id.to_string()));
        }
        wijken
    }

    /// The writes, given each wijk's available money before the batch (the
    /// sum of its `wijk_budget` balances; a wijk left out has none). The
    /// running values carry on from segment to segment in memory, because
    /// a segment's balances are not written before the next one is planned.
    pub fn into_writes(self, available_before: &BTreeMap<String, i64>) -> anyhow::Result<Vec<Write>> {
        Ok(self.into_writes_and_available(available_before)?.0)
    }

    /// [`Plan::into_writes`], and each touched wijk's available money after
    /// the batch (with those of `available_before`).
    pub fn into_writes_and_available(
        self,
        available_before: &BTreeMap<String, i64>,
    ) -> anyhow::Result<(Vec<Write>, BTreeMap<String, i64>)> {
        let mut available = available_before.clone();
        let mut writes = Vec::new();
        for mut segment in self.segments {
            for posting in &segment.wijk_postings {
                let cents = available.entry(posting.wijk_id.clone()).or_insert(0);
                *cents = cents
                    .checked_add(posting.available_change)
                    .with_context(|| format!("the available money of {} overflows 64-bit cents", posting.wijk_id))?;
                if let Some(column) = segment.postings.rows[posting.row].last_mut() {
                    *column = Param::OptInt(Some(*cents));
                }
            }
            segment.into_writes(&mut writes);
        }
        Ok((writes, available))
    }
}

fn fund_row(
    fund_id: &FundId,
    terms: &crate::domain::fund::FundTerms,
    booked_on: &chrono::NaiveDate,
    from: Option<&FundId>,
    position: i64,
) -> Vec<Param> {
    vec![
        text(fund_id),
        Param::Int(terms.year.value().into()),
        text(terms.kind.as_str()),
        text(&terms.name),
        Param::Int(terms.amount.cents()),
        text(&terms.decision.reference),
        text(terms.decision.adopted_on),
        text(&terms.purpose),
        text(booked_on),
        Param::Int(position),
        opt(from),
    ]
}

fn add_fund_event(segment: &mut Segment, event: &PlanEvent, fund_event: &FundEvent) -> anyhow::Result<()> {
    let fund_id = FundId::parse(&event.aggregate_id)
        .map_err(|e| anyhow::anyhow!("event at position {}: fund id {e}", event.position))?;
    let position = Param::Int(event.position);
    let mut d = Describe::default();
    match fund_event {
        FundEvent::FundEstablished { terms, booked_on } => {
            segment.funds.rows.push(fund_row(&fund_id, terms, booked_on, None, event.position));
            d.reason = Some(terms.purpose.to_string());
            d.reference = Some(terms.decision.reference.to_string());
        }
        FundEvent::FundCarriedOver { terms, from_fund, booked_on, allocations } => {
            segment.funds.rows.push(fund_row(&fund_id, terms, booked_on, Some(from_fund), event.position));
            for (wijk_id, amount) in allocations {
                segment.add_to_balance(wijk_id, &fund_id, "allocated", amount.cents())?;
            }
            d.reason = Some(format!("carried over from {from_fund}"));
            d.reference = Some(terms.decision.reference.to_string());
        }
        FundEvent::BudgetAllocated { wijk_id, amount, reason, .. } => {
            segment.add_to_balance(wijk_id, &fund_id, "allocated", amount.cents())?;
            d.reason = Some(reason.to_string());
        }
        FundEvent::ExpenseRecorded(details) => {
            segment.expenses.rows.push(vec![
                text(&details.expense_id),
                text(&fund_id),
                text(&details.wijk_id),
                Param::Int(details.amount.cents()),
                text(&details.initiative),
                text(&details.theme),
                text(details.booked_on),
                text(&details.reference),
                position.clone(),
                text(&event.event_id),
                Param::OptText(None),
            ]);
            d.reference = Some(details.reference.to_string());
            d.initiative = Some(details.initiative.to_string());
            d.theme = Some(details.theme.to_string());
            d.expense_id = Some(details.expense_id.to_string());
        }
        FundEvent::ExpenseReversed { expense_id, reason, reverses_sequence, booked_on, .. }
        | FundEvent::ExpenseReversedAfterClose { expense_id, reason, reverses_sequence, booked_on, .. } => {
            segment.updates.push(Statement {
                sql: REVERSE_EXPENSE,
                params: vec![position.clone(), text(reason), text(booked_on), text(expense_id)],
            });
            d.reason = Some(reason.to_string());
            let marker = if matches!(fund_event, FundEvent::ExpenseReversedAfterClose { .. }) {
                "post-closing correction: "
            } else {
                ""
            };
            d.reference = Some(format!("{marker}reverses fund/{} event {}", fund_id, reverses_sequence));
            d.expense_id = Some(expense_id.to_string());
        }
        FundEvent::CommitmentMade(c) => {
            segment.commitments.rows.push(vec![
                text(&c.commitment_id),
                text(&fund_id),
                text(&c.wijk_id),
                Param::Int(c.amount.cents()),
                Param::Int(0),
                Param::Int(0),
                text("open"),
                text(&c.initiative),
                text(&c.applicant),
                text(&c.theme),
                text(&c.decision.reference),
                text(c.decision.adopted_on),
                text(&c.grant_rule),
                text(c.booked_on),
                position.clone(),
            ]);
            // The applicant may be a person: it stays in rm_commitments, where
            // the API can withhold it, and out of the audit trail's text.
            d.reason = Some(format!("granted under {}", c.grant_rule));
            d.reference = Some(c.decision.reference.to_string());
            d.initiative = Some(c.initiative.to_string());
            d.theme = Some(c.theme.to_string());
            d.commitment_id = Some(c.commitment_id.to_string());
        }
        FundEvent::CommitmentPaid { commitment_id, expense_id, wijk_id, amount, booked_on, reference } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET paid_cents = paid_cents + $1, last_paid_on = $2, \
                      first_paid_on = COALESCE(first_paid_on, $2) WHERE commitment_id = $3",
                params: vec![Param::Int(amount.cents()), text(booked_on), text(commitment_id)],
            });
            segment.expenses.rows.push(vec![
                text(expense_id),
                text(&fund_id),
                text(wijk_id),
                Param::Int(amount.cents()),
                Param::OptText(None),
                Param::OptText(None),
                text(booked_on),
                text(reference),
                position.clone(),
                text(&event.event_id),
                text(commitment_id),
            ]);
            d.reference = Some(reference.to_string());
            d.expense_id = Some(expense_id.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::CommitmentSettled {
            commitment_id,
            settled_amount,
            recovery_claimed,
            decision_reference,
            booked_on,
            ..
        } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET status = 'settled', settled_cents = $1, owed_cents = owed_cents + $2, \
                      settled_on = $3 WHERE commitment_id = $4",
                params: vec![
                    Param::Int(cents(*settled_amount)),
                    Param::Int(cents(*recovery_claimed)),
                    text(booked_on),
                    text(commitment_id),
                ],
            });
            d.reason = Some(format!("settled at {}", crate::domain::money::format_euro(*settled_amount)));
            d.reference = Some(decision_reference.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::RepaymentReceived { commitment_id, amount, reference, .. } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET owed_cents = owed_cents - $1 WHERE commitment_id = $2",
                params: vec![Param::Int(amount.cents()), text(commitment_id)],
            });
            d.reason = Some("repayment of a recovery claim".into());
            d.reference = Some(reference.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::CommitmentWithdrawn { commitment_id, reason, cancelled, booked_on, .. } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET status = $1, ended_on = $2 WHERE commitment_id = $3",
                params: vec![
                    text(if *cancelled { "cancelled" } else { "withdrawn" }),
                    text(booked_on),
                    text(commitment_id),
                ],
            });
            d.reason = Some(reason.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::BudgetTransferred { from_wijk, to_wijk, amount, decision_reference, reason, .. } => {
            segment.add_to_balance(from_wijk, &fund_id, "transferred", -amount.cents())?;
            segment.add_to_balance(to_wijk, &fund_id, "transferred", amount.cents())?;
            d.reason = Some(reason.to_string());
            d.reference = Some(decision_reference.to_string());
        }
        FundEvent::FundClosed { decision_reference, booked_on, unallocated_lapsed, carry_over_fund, .. } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_funds SET closed_on = $1, close_decision = $2, carry_over_fund = $3, \
                      unallocated_lapsed_cents = $4 WHERE fund_id = $5",
                params: vec![
                    text(booked_on),
                    text(decision_reference),
                    opt(carry_over_fund.as_ref()),
                    Param::Int(cents(*unallocated_lapsed)),
                    text(&fund_id),
                ],
            });
            segment.close = Some(Statement { sql: FREEZE_CLOSE_LINES, params: vec![text(&fund_id)] });
            d.reason = Some("year-end close".into());
            d.reference = Some(decision_reference.to_string());
        }
    }
    let booked_on = fund_event.booked_on().to_string();
    let recorded_at = format_recorded_at(&event.recorded_at);
    for (line, posting) in postings(&fund_id, fund_event).into_iter().enumerate() {
        if let Some(wijk_id) = &posting.account.wijk_id {
            segment.add_to_balance(wijk_id, &fund_id, posting.account.kind.as_str(), cents(posting.amount))?;
            let on_available = posting.account.kind == AccountKind::WijkBudget;
            segment.wijk_postings.push(WijkPosting {
                row: segment.postings.rows.len(),
                wijk_id: wijk_id.to_string(),
                available_change: if on_available { cents(posting.amount) } else { 0 },
            });
        }
        segment.postings.rows.push(vec![
            position.clone(),
            Param::Int(line as i64),
            text(&event.event_id),
            text(&event.event_type),
            text(&fund_id),
            opt(posting.account.wijk_id.as_ref()),
            text(posting.account.kind.as_str()),
            text(posting.account.name()),
            Param::Int(cents(posting.amount)),
            text(&booked_on),
            text(&recorded_at),
            text(&event.actor),
            text(&event.role),
            opt(d.reason.as_ref()),
            opt(d.reference.as_ref()),
            opt(d.initiative.as_ref()),
            opt(d.theme.as_ref()),
            opt(d.expense_id.as_ref()),
            opt(d.commitment_id.as_ref()),
            // wijk_available_cents: see `Plan::into_writes`.
            Param::OptInt(None),
        ]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn an_insert_is_split_into_statements_under_the_parameter_limit() {
        let mut insert = Insert::new(INSERT_BALANCES, Some(BALANCE_LOOKUP));
        insert.rows = (0..20_000).map(|n| vec![text("w"), text("f"), text("spent"), Param::Int(n)]).collect();
        let runs: Vec<&[Vec<Param>]> = insert.statements().collect();
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 20_000);
        assert!(runs.iter().all(|r| r.len() * 4 <= MAX_BINDS));
        assert_eq!(runs.len(), 3, "as few statements as the limit allows");
        assert_eq!(Insert::new(INSERT_WIJKEN, None).statements().count(), 0);
    }
}
