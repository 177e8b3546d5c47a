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
//!   including the close is written first, and nothing after it.

use std::collections::BTreeMap;

use anyhow::Context;
use serde_json::Value;

use crate::domain::fund::FundEvent;
use crate::domain::ids::{FundId, WijkId};
use crate::domain::money::cents;
use crate::domain::postings::postings;
use crate::domain::wijk::WijkEvent;
use crate::store::chain::{format_recorded_at, ChainedEvent};
use crate::store::repository::meta;

/// Every table `rebuild` wipes. The log and its claims are not among them.
pub const READ_MODEL_TABLES: [&str; 7] =
    ["rm_wijken", "rm_funds", "rm_balances", "rm_postings", "rm_expenses", "rm_commitments", "rm_close_lines"];

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Param>,
}

/// One value of an inserted row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Bound(Param),
    /// A value looked up in the read models: SQL pieces with one parameter
    /// bound between each two of them.
    Lookup(&'static [&'static str], Vec<Param>),
}

impl Cell {
    fn binds(&self) -> usize {
        match self {
            Cell::Bound(_) => 1,
            Cell::Lookup(_, params) => params.len(),
        }
    }
}

/// Rows for `INSERT INTO {into} VALUES (..), (..) {then}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub into: &'static str,
    pub then: &'static str,
    pub rows: Vec<Vec<Cell>>,
}

/// Parameters per statement, under both SQLite's limit (32 766) and PostgreSQL's (65 535).
const MAX_BINDS: usize = 32_000;

impl Insert {
    fn new(into: &'static str) -> Self {
        Self { into, then: "", rows: Vec::new() }
    }

    /// The rows split into runs that each fit one statement.
    pub fn statements(&self) -> impl Iterator<Item = &[Vec<Cell>]> {
        let mut rest = self.rows.as_slice();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (mut binds, mut n) = (0, 0);
            while n < rest.len() && (n == 0 || binds + row_binds(&rest[n]) <= MAX_BINDS) {
                binds += row_binds(&rest[n]);
                n += 1;
            }
            let (run, after) = rest.split_at(n);
            rest = after;
            Some(run)
        })
    }
}

fn row_binds(row: &[Cell]) -> usize {
    row.iter().map(Cell::binds).sum()
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
fn bound(p: Param) -> Cell {
    Cell::Bound(p)
}

pub fn fund_event(event: &ChainedEvent) -> anyhow::Result<FundEvent> {
    event.read_payload().with_context(|| format!("event at position {} is not a readable fund event", event.position))
}

const INSERT_POSTINGS: &str = "rm_postings (position, line, event_id, event_type, fund_id, wijk_id, \
    account_kind, account, amount_cents, year, booked_on, recorded_at, actor, role, reason, reference, \
    initiative, theme, expense_id, commitment_id)";
const INSERT_EXPENSES: &str = "rm_expenses (expense_id, fund_id, wijk_id, amount_cents, initiative, theme, \
    booked_on, reference, position, event_id, commitment_id)";
const INSERT_COMMITMENTS: &str = "rm_commitments (commitment_id, fund_id, wijk_id, amount_cents, paid_cents, \
    owed_cents, status, initiative, applicant, theme, decision_reference, decided_on, grant_rule, booked_on, position)";
const INSERT_FUNDS: &str = "rm_funds (fund_id, year, kind, name, amount_cents, decision_reference, adopted_on, \
    purpose, booked_on, position, carried_over_from)";
const INSERT_WIJKEN: &str = "rm_wijken (wijk_id, name, position)";
const INSERT_BALANCES: &str = "rm_balances (wijk_id, fund_id, year, kind, cents)";
/// Adds to a balance, creating it (even at zero cents) when it is new.
const ADD_TO_BALANCES: &str =
    "ON CONFLICT (wijk_id, fund_id, kind) DO UPDATE SET cents = rm_balances.cents + excluded.cents";

/// The year of a fund, by its id.
const YEAR_OF_FUND: &[&str] = &["(SELECT year FROM rm_funds WHERE fund_id = ", ")"];
/// A payment's expense takes its initiative and theme from its commitment, by commitment id.
const INITIATIVE_OF_COMMITMENT: &[&str] = &["(SELECT initiative FROM rm_commitments WHERE commitment_id = ", ")"];
const THEME_OF_COMMITMENT: &[&str] = &["(SELECT theme FROM rm_commitments WHERE commitment_id = ", ")"];
/// A posting without its own initiative and theme (a payment, a reversal, a
/// settlement) takes them from its commitment or else its expense, by
/// commitment id and expense id, so reports per theme and the audit trail's
/// initiative filter see every posting.
const INITIATIVE_OF_COMMITMENT_OR_EXPENSE: &[&str] = &[
    "COALESCE((SELECT initiative FROM rm_commitments WHERE commitment_id = ",
    "), (SELECT initiative FROM rm_expenses WHERE expense_id = ",
    "))",
];
const THEME_OF_COMMITMENT_OR_EXPENSE: &[&str] = &[
    "COALESCE((SELECT theme FROM rm_commitments WHERE commitment_id = ",
    "), (SELECT theme FROM rm_expenses WHERE expense_id = ",
    "))",
];

/// Freezes a fund's close statement from its balances, right after the
/// close's own postings were applied.
const FREEZE_CLOSE_LINES: &str = "INSERT INTO rm_close_lines (fund_id, wijk_id, allocated_cents, transferred_cents, \
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
}

impl Segment {
    fn new() -> Self {
        Self {
            wijken: Insert::new(INSERT_WIJKEN),
            funds: Insert::new(INSERT_FUNDS),
            commitments: Insert::new(INSERT_COMMITMENTS),
            expenses: Insert::new(INSERT_EXPENSES),
            postings: Insert::new(INSERT_POSTINGS),
            balances: BTreeMap::new(),
            updates: Vec::new(),
            close: None,
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
        let mut balances = Insert::new(INSERT_BALANCES);
        balances.then = ADD_TO_BALANCES;
        balances.rows = self
            .balances
            .into_iter()
            .map(|((wijk_id, fund_id, kind), cents)| {
                vec![
                    bound(Param::Text(wijk_id)),
                    bound(Param::Text(fund_id.clone())),
                    Cell::Lookup(YEAR_OF_FUND, vec![Param::Text(fund_id)]),
                    bound(text(kind)),
                    bound(Param::Int(cents)),
                ]
            })
            .collect();
        let inserts = [self.wijken, self.funds, self.commitments, self.expenses, self.postings, balances];
        out.extend(inserts.into_iter().filter(|insert| !insert.rows.is_empty()).map(Write::Insert));
        out.extend(self.updates.into_iter().chain(self.close).map(Write::Statement));
    }
}

/// The writes that bring the read models from before `events` (consecutive,
/// in log order) to after them.
pub fn plan(events: &[ChainedEvent]) -> anyhow::Result<Vec<Write>> {
    let mut writes = Vec::new();
    let mut segment = Segment::new();
    for event in events {
        match event.aggregate_type.as_str() {
            "wijk" => {
                let WijkEvent::WijkRegistered { wijk_id, name } = event
                    .read_payload()
                    .with_context(|| format!("event at position {} is not a readable wijk event", event.position))?;
                segment.wijken.rows.push(vec![
                    bound(text(wijk_id)),
                    bound(text(name)),
                    bound(Param::Int(event.position)),
                ]);
            }
            "fund" => {
                let fund_event = fund_event(event)?;
                add_fund_event(&mut segment, event, &fund_event)?;
                if segment.close.is_some() {
                    std::mem::replace(&mut segment, Segment::new()).into_writes(&mut writes);
                }
            }
            other => anyhow::bail!("event at position {} has unknown aggregate type `{other}`", event.position),
        }
    }
    segment.into_writes(&mut writes);
    Ok(writes)
}

fn fund_row(
    fund_id: &FundId,
    terms: &crate::domain::fund::FundTerms,
    booked_on: &chrono::NaiveDate,
    from: Option<&FundId>,
    position: i64,
) -> Vec<Cell> {
    vec![
        bound(text(fund_id)),
        bound(Param::Int(terms.year.value().into())),
        bound(text(terms.kind.as_str())),
        bound(text(&terms.name)),
        bound(Param::Int(terms.amount.cents())),
        bound(text(&terms.decision.reference)),
        bound(text(terms.decision.adopted_on)),
        bound(text(&terms.purpose)),
        bound(text(booked_on)),
        bound(Param::Int(position)),
        bound(opt(from)),
    ]
}

fn add_fund_event(segment: &mut Segment, event: &ChainedEvent, fund_event: &FundEvent) -> anyhow::Result<()> {
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
                bound(text(&details.expense_id)),
                bound(text(&fund_id)),
                bound(text(&details.wijk_id)),
                bound(Param::Int(details.amount.cents())),
                bound(text(&details.initiative)),
                bound(text(&details.theme)),
                bound(text(details.booked_on)),
                bound(text(&details.reference)),
                bound(position.clone()),
                bound(text(&event.event_id)),
                bound(Param::OptText(None)),
            ]);
            d.reference = Some(details.reference.to_string());
            d.initiative = Some(details.initiative.to_string());
            d.theme = Some(details.theme.to_string());
            d.expense_id = Some(details.expense_id.to_string());
        }
        FundEvent::ExpenseReversed { expense_id, reason, reverses_sequence, .. }
        | FundEvent::ExpenseReversedAfterClose { expense_id, reason, reverses_sequence, .. } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_expenses SET reversed_position = $1, reversal_reason = $2 WHERE expense_id = $3",
                params: vec![position.clone(), text(reason), text(expense_id)],
            });
            d.reason = Some(reason.to_string());
            let marker = if matches!(fund_event, FundEvent::ExpenseReversedAfterClose { .. }) {
                "post-closing correction: "
            } else {
                ""
            };
            d.reference =
                Some(format!("{marker}reverses {}/{} event {}", event.aggregate_type, fund_id, reverses_sequence));
            d.expense_id = Some(expense_id.to_string());
        }
        FundEvent::CommitmentMade(c) => {
            segment.commitments.rows.push(vec![
                bound(text(&c.commitment_id)),
                bound(text(&fund_id)),
                bound(text(&c.wijk_id)),
                bound(Param::Int(c.amount.cents())),
                bound(Param::Int(0)),
                bound(Param::Int(0)),
                bound(text("open")),
                bound(text(&c.initiative)),
                bound(text(&c.applicant)),
                bound(text(&c.theme)),
                bound(text(&c.decision.reference)),
                bound(text(c.decision.adopted_on)),
                bound(text(&c.grant_rule)),
                bound(text(c.booked_on)),
                bound(position.clone()),
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
                sql: "UPDATE rm_commitments SET paid_cents = paid_cents + $1, last_paid_on = $2 WHERE commitment_id = $3",
                params: vec![Param::Int(amount.cents()), text(booked_on), text(commitment_id)],
            });
            segment.expenses.rows.push(vec![
                bound(text(expense_id)),
                bound(text(&fund_id)),
                bound(text(wijk_id)),
                bound(Param::Int(amount.cents())),
                Cell::Lookup(INITIATIVE_OF_COMMITMENT, vec![text(commitment_id)]),
                Cell::Lookup(THEME_OF_COMMITMENT, vec![text(commitment_id)]),
                bound(text(booked_on)),
                bound(text(reference)),
                bound(position.clone()),
                bound(text(&event.event_id)),
                bound(text(commitment_id)),
            ]);
            d.reference = Some(reference.to_string());
            d.expense_id = Some(expense_id.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::CommitmentSettled {
            commitment_id, settled_amount, recovery_claimed, decision_reference, ..
        } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET status = 'settled', settled_cents = $1, owed_cents = owed_cents + $2 \
                      WHERE commitment_id = $3",
                params: vec![
                    Param::Int(cents(*settled_amount)),
                    Param::Int(cents(*recovery_claimed)),
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
        FundEvent::CommitmentWithdrawn { commitment_id, reason, cancelled, .. } => {
            segment.updates.push(Statement {
                sql: "UPDATE rm_commitments SET status = $1 WHERE commitment_id = $2",
                params: vec![text(if *cancelled { "cancelled" } else { "withdrawn" }), text(commitment_id)],
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
    let actor = metadata(&event.metadata, meta::ACTOR);
    let role = metadata(&event.metadata, meta::ROLE);
    let booked_on = fund_event.booked_on().to_string();
    let recorded_at = format_recorded_at(&event.recorded_at);
    for (line, posting) in postings(&fund_id, fund_event).into_iter().enumerate() {
        if let Some(wijk_id) = &posting.account.wijk_id {
            segment.add_to_balance(wijk_id, &fund_id, posting.account.kind.as_str(), cents(posting.amount))?;
        }
        let initiative = match &d.initiative {
            Some(own) => bound(text(own)),
            None => Cell::Lookup(
                INITIATIVE_OF_COMMITMENT_OR_EXPENSE,
                vec![opt(d.commitment_id.as_ref()), opt(d.expense_id.as_ref())],
            ),
        };
        let theme = match &d.theme {
            Some(own) => bound(text(own)),
            None => Cell::Lookup(
                THEME_OF_COMMITMENT_OR_EXPENSE,
                vec![opt(d.commitment_id.as_ref()), opt(d.expense_id.as_ref())],
            ),
        };
        segment.postings.rows.push(vec![
            bound(position.clone()),
            bound(Param::Int(line as i64)),
            bound(text(&event.event_id)),
            bound(text(&event.event_type)),
            bound(text(&fund_id)),
            bound(opt(posting.account.wijk_id.as_ref())),
            bound(text(posting.account.kind.as_str())),
            bound(text(posting.account.name())),
            bound(Param::Int(cents(posting.amount))),
            Cell::Lookup(YEAR_OF_FUND, vec![text(&fund_id)]),
            bound(text(&booked_on)),
            bound(text(&recorded_at)),
            bound(text(&actor)),
            bound(text(&role)),
            bound(opt(d.reason.as_ref())),
            bound(opt(d.reference.as_ref())),
            initiative,
            theme,
            bound(opt(d.expense_id.as_ref())),
            bound(opt(d.commitment_id.as_ref())),
        ]);
    }
    Ok(())
}

fn metadata(metadata: &Value, key: &str) -> String {
    metadata.get(key).and_then(Value::as_str).unwrap_or("unknown").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_is_split_into_statements_under_the_parameter_limit() {
        let row = |n: i64| vec![bound(Param::Int(n)), Cell::Lookup(YEAR_OF_FUND, vec![text("f")])];
        let insert = Insert { rows: (0..40_000).map(row).collect(), ..Insert::new(INSERT_WIJKEN) };
        let runs: Vec<&[Vec<Cell>]> = insert.statements().collect();
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 40_000);
        assert!(runs.iter().all(|r| row_binds(&r.concat()) <= MAX_BINDS));
        assert_eq!(runs.len(), 3, "as few statements as the limit allows");
        assert_eq!(Insert::new(INSERT_WIJKEN).statements().count(), 0);
    }
}
