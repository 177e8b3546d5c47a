//! How one event changes the read models, as plain SQL statements. Kept pure
//! (event in, statements out) so the projector's transaction is the only IO.

use anyhow::Context;
use serde_json::Value;

use crate::domain::fund::FundEvent;
use crate::domain::ids::FundId;
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

fn text(s: impl ToString) -> Param {
    Param::Text(s.to_string())
}
fn opt(s: Option<impl ToString>) -> Param {
    Param::OptText(s.map(|s| s.to_string()))
}

pub fn fund_event(event: &ChainedEvent) -> anyhow::Result<FundEvent> {
    event.read_payload().with_context(|| format!("event at position {} is not a readable fund event", event.position))
}

/// A posting without its own initiative and theme (a payment, a reversal, a
/// settlement) takes them from its commitment or its expense, so reports per
/// theme and the audit trail's initiative filter see every posting.
const INSERT_POSTING: &str = "INSERT INTO rm_postings (position, line, event_id, event_type, fund_id, wijk_id, \
    account_kind, account, amount_cents, year, booked_on, recorded_at, actor, role, reason, reference, \
    initiative, theme, expense_id, commitment_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    (SELECT year FROM rm_funds WHERE fund_id = $5), $10, $11, $12, $13, $14, $15, \
    COALESCE($16, (SELECT initiative FROM rm_commitments WHERE commitment_id = $19), \
        (SELECT initiative FROM rm_expenses WHERE expense_id = $18)), \
    COALESCE($17, (SELECT theme FROM rm_commitments WHERE commitment_id = $19), \
        (SELECT theme FROM rm_expenses WHERE expense_id = $18)), $18, $19)";

/// Adds to one balance of one wijk in one fund.
const ADD_TO_BALANCE: &str = "INSERT INTO rm_balances (wijk_id, fund_id, year, kind, cents) \
    VALUES ($1, $2, (SELECT year FROM rm_funds WHERE fund_id = $2), $3, $4) \
    ON CONFLICT (wijk_id, fund_id, kind) DO UPDATE SET cents = rm_balances.cents + excluded.cents";

const INSERT_EXPENSE: &str = "INSERT INTO rm_expenses (expense_id, fund_id, wijk_id, amount_cents, initiative, theme, \
    booked_on, reference, position, event_id, commitment_id) VALUES ($1, $2, $3, $4, \
    COALESCE($5, (SELECT initiative FROM rm_commitments WHERE commitment_id = $11)), \
    COALESCE($6, (SELECT theme FROM rm_commitments WHERE commitment_id = $11)), $7, $8, $9, $10, $11)";

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

/// The statements that bring the read models from before `event` to after it.
pub fn statements_for(event: &ChainedEvent) -> anyhow::Result<Vec<Statement>> {
    match event.aggregate_type.as_str() {
        "wijk" => {
            let WijkEvent::WijkRegistered { wijk_id, name } = event
                .read_payload()
                .with_context(|| format!("event at position {} is not a readable wijk event", event.position))?;
            Ok(vec![Statement {
                sql: "INSERT INTO rm_wijken (wijk_id, name, position) VALUES ($1, $2, $3)",
                params: vec![text(wijk_id), text(name), Param::Int(event.position)],
            }])
        }
        "fund" => fund_statements(event, &fund_event(event)?),
        other => anyhow::bail!("event at position {} has unknown aggregate type `{other}`", event.position),
    }
}

fn balance(wijk_id: &crate::domain::ids::WijkId, fund_id: &FundId, kind: &str, cents: i64) -> Statement {
    Statement { sql: ADD_TO_BALANCE, params: vec![text(wijk_id), text(fund_id), text(kind), Param::Int(cents)] }
}

fn insert_fund(
    fund_id: &FundId,
    terms: &crate::domain::fund::FundTerms,
    booked_on: &chrono::NaiveDate,
    from: Option<&FundId>,
    position: i64,
) -> Statement {
    Statement {
        sql: "INSERT INTO rm_funds (fund_id, year, kind, name, amount_cents, decision_reference, \
              adopted_on, purpose, booked_on, position, carried_over_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        params: vec![
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
        ],
    }
}

fn fund_statements(event: &ChainedEvent, fund_event: &FundEvent) -> anyhow::Result<Vec<Statement>> {
    let fund_id = FundId::parse(&event.aggregate_id)
        .map_err(|e| anyhow::anyhow!("event at position {}: fund id {e}", event.position))?;
    let position = Param::Int(event.position);
    let mut out = Vec::new();
    let mut after = Vec::new();
    let mut d = Describe::default();
    match fund_event {
        FundEvent::FundEstablished { terms, booked_on } => {
            out.push(insert_fund(&fund_id, terms, booked_on, None, event.position));
            d.reason = Some(terms.purpose.to_string());
            d.reference = Some(terms.decision.reference.to_string());
        }
        FundEvent::FundCarriedOver { terms, from_fund, booked_on, allocations } => {
            out.push(insert_fund(&fund_id, terms, booked_on, Some(from_fund), event.position));
            for (wijk_id, amount) in allocations {
                out.push(balance(wijk_id, &fund_id, "allocated", amount.cents()));
            }
            d.reason = Some(format!("carried over from {from_fund}"));
            d.reference = Some(terms.decision.reference.to_string());
        }
        FundEvent::BudgetAllocated { wijk_id, amount, reason, .. } => {
            out.push(balance(wijk_id, &fund_id, "allocated", amount.cents()));
            d.reason = Some(reason.to_string());
        }
        FundEvent::ExpenseRecorded(details) => {
            out.push(Statement {
                sql: INSERT_EXPENSE,
                params: vec![
                    text(&details.expense_id),
                    text(&fund_id),
                    text(&details.wijk_id),
                    Param::Int(details.amount.cents()),
                    opt(Some(&details.initiative)),
                    opt(Some(&details.theme)),
                    text(details.booked_on),
                    text(&details.reference),
                    position.clone(),
                    text(&event.event_id),
                    Param::OptText(None),
                ],
            });
            d.reference = Some(details.reference.to_string());
            d.initiative = Some(details.initiative.to_string());
            d.theme = Some(details.theme.to_string());
            d.expense_id = Some(details.expense_id.to_string());
        }
        FundEvent::ExpenseReversed { expense_id, reason, reverses_sequence, .. }
        | FundEvent::ExpenseReversedAfterClose { expense_id, reason, reverses_sequence, .. } => {
            out.push(Statement {
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
            out.push(Statement {
                sql: "INSERT INTO rm_commitments (commitment_id, fund_id, wijk_id, amount_cents, paid_cents, owed_cents, \
                      status, initiative, applicant, theme, decision_reference, decided_on, grant_rule, booked_on, position) \
                      VALUES ($1, $2, $3, $4, 0, 0, 'open', $5, $6, $7, $8, $9, $10, $11, $12)",
                params: vec![
                    text(&c.commitment_id),
                    text(&fund_id),
                    text(&c.wijk_id),
                    Param::Int(c.amount.cents()),
                    text(&c.initiative),
                    text(&c.applicant),
                    text(&c.theme),
                    text(&c.decision.reference),
                    text(c.decision.adopted_on),
                    text(&c.grant_rule),
                    text(c.booked_on),
                    position.clone(),
                ],
            });
            // The applicant may be a person: it stays in rm_commitments, where
            // the API can withhold it, and out of the audit trail's text.
            d.reason = Some(format!("granted under {}", c.grant_rule));
            d.reference = Some(c.decision.reference.to_string());
            d.initiative = Some(c.initiative.to_string());
            d.theme = Some(c.theme.to_string());
            d.commitment_id = Some(c.commitment_id.to_string());
        }
        FundEvent::CommitmentPaid { commitment_id, expense_id, wijk_id, amount, booked_on, reference } => {
            out.push(Statement {
                sql: "UPDATE rm_commitments SET paid_cents = paid_cents + $1, last_paid_on = $2 WHERE commitment_id = $3",
                params: vec![Param::Int(amount.cents()), text(booked_on), text(commitment_id)],
            });
            out.push(Statement {
                sql: INSERT_EXPENSE,
                params: vec![
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
                ],
            });
            d.reference = Some(reference.to_string());
            d.expense_id = Some(expense_id.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::CommitmentSettled {
            commitment_id, settled_amount, recovery_claimed, decision_reference, ..
        } => {
            out.push(Statement {
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
            out.push(Statement {
                sql: "UPDATE rm_commitments SET owed_cents = owed_cents - $1 WHERE commitment_id = $2",
                params: vec![Param::Int(amount.cents()), text(commitment_id)],
            });
            d.reason = Some("repayment of a recovery claim".into());
            d.reference = Some(reference.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::CommitmentWithdrawn { commitment_id, reason, cancelled, .. } => {
            out.push(Statement {
                sql: "UPDATE rm_commitments SET status = $1 WHERE commitment_id = $2",
                params: vec![text(if *cancelled { "cancelled" } else { "withdrawn" }), text(commitment_id)],
            });
            d.reason = Some(reason.to_string());
            d.commitment_id = Some(commitment_id.to_string());
        }
        FundEvent::BudgetTransferred { from_wijk, to_wijk, amount, decision_reference, reason, .. } => {
            out.push(balance(from_wijk, &fund_id, "transferred", -amount.cents()));
            out.push(balance(to_wijk, &fund_id, "transferred", amount.cents()));
            d.reason = Some(reason.to_string());
            d.reference = Some(decision_reference.to_string());
        }
        FundEvent::FundClosed { decision_reference, booked_on, unallocated_lapsed, carry_over_fund, .. } => {
            out.push(Statement {
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
            after.push(Statement { sql: FREEZE_CLOSE_LINES, params: vec![text(&fund_id)] });
            d.reason = Some("year-end close".into());
            d.reference = Some(decision_reference.to_string());
        }
    }
    let actor = metadata(&event.metadata, meta::ACTOR);
    let role = metadata(&event.metadata, meta::ROLE);
    for (line, posting) in postings(&fund_id, fund_event).into_iter().enumerate() {
        if let Some(wijk_id) = &posting.account.wijk_id {
            out.push(balance(wijk_id, &fund_id, posting.account.kind.as_str(), cents(posting.amount)));
        }
        out.push(Statement {
            sql: INSERT_POSTING,
            params: vec![
                position.clone(),
                Param::Int(line as i64),
                text(&event.event_id),
                text(&event.event_type),
                text(&fund_id),
                opt(posting.account.wijk_id.as_ref()),
                text(posting.account.kind.as_str()),
                text(posting.account.name()),
                Param::Int(cents(posting.amount)),
                text(fund_event.booked_on()),
                text(format_recorded_at(&event.recorded_at)),
                text(&actor),
                text(&role),
                opt(d.reason.as_ref()),
                opt(d.reference.as_ref()),
                opt(d.initiative.as_ref()),
                opt(d.theme.as_ref()),
                opt(d.expense_id.as_ref()),
                opt(d.commitment_id.as_ref()),
            ],
        });
    }
    out.extend(after);
    Ok(out)
}

fn metadata(metadata: &Value, key: &str) -> String {
    metadata.get(key).and_then(Value::as_str).unwrap_or("unknown").to_string()
}
