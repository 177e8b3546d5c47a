//! How one event changes the read models, as plain SQL statements. Kept pure
//! (event in, statements out) so the projector's transaction is the only IO.

use anyhow::Context;
use cqrs_es::persist::SerializedEvent;
use serde_json::Value;

use crate::domain::fund::FundEvent;
use crate::domain::money::cents;
use crate::domain::postings::postings;
use crate::domain::upcasters;
use crate::domain::wijk::WijkEvent;
use crate::domain::ids::FundId;
use crate::store::chain::{format_recorded_at, ChainedEvent};
use crate::store::repository::meta;

/// Every table `rebuild` wipes. The log and its claims are not among them.
pub const READ_MODEL_TABLES: [&str; 5] = ["rm_wijken", "rm_funds", "rm_budget_lines", "rm_postings", "rm_expenses"];

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

/// Turns a stored event back into its domain event, upcasting old versions.
pub fn upcast(event: &ChainedEvent) -> SerializedEvent {
    let serialized = SerializedEvent::new(
        event.aggregate_id.clone(),
        event.sequence as usize,
        event.aggregate_type.clone(),
        event.event_type.clone(),
        event.event_version.clone(),
        event.payload.clone(),
        event.metadata.clone(),
    );
    upcasters().iter().fold(serialized, |e, u| if u.can_upcast(&e.event_type, &e.event_version) { u.upcast(e) } else { e })
}

pub fn fund_event(event: &ChainedEvent) -> anyhow::Result<FundEvent> {
    serde_json::from_value(upcast(event).payload)
        .with_context(|| format!("event at position {} is not a readable fund event", event.position))
}

const INSERT_POSTING: &str = "INSERT INTO rm_postings (position, line, event_id, event_type, fund_id, wijk_id, \
    account_kind, account, amount_cents, year, booked_on, recorded_at, actor, role, reason, reference, \
    initiative, theme, expense_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    (SELECT year FROM rm_funds WHERE fund_id = $5), $10, $11, $12, $13, $14, $15, $16, $17, $18)";

const ADD_TO_BUDGET_LINE: &str = "INSERT INTO rm_budget_lines (wijk_id, fund_id, year, allocated_cents, spent_cents) \
    VALUES ($1, $2, (SELECT year FROM rm_funds WHERE fund_id = $2), $3, $4) \
    ON CONFLICT (wijk_id, fund_id) DO UPDATE SET \
    allocated_cents = rm_budget_lines.allocated_cents + excluded.allocated_cents, \
    spent_cents = rm_budget_lines.spent_cents + excluded.spent_cents";

/// Descriptive columns a posting row carries besides its money.
#[derive(Default)]
struct Describe {
    reason: Option<String>,
    reference: Option<String>,
    initiative: Option<String>,
    theme: Option<String>,
    expense_id: Option<String>,
}

/// The statements that bring the read models from before `event` to after it.
pub fn statements_for(event: &ChainedEvent) -> anyhow::Result<Vec<Statement>> {
    match event.aggregate_type.as_str() {
        "wijk" => {
            let WijkEvent::WijkRegistered { wijk_id, name } = serde_json::from_value(upcast(event).payload)
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

fn fund_statements(event: &ChainedEvent, fund_event: &FundEvent) -> anyhow::Result<Vec<Statement>> {
    let fund_id = FundId::parse(&event.aggregate_id)
        .map_err(|e| anyhow::anyhow!("event at position {}: fund id {e}", event.position))?;
    let position = Param::Int(event.position);
    let mut out = Vec::new();
    let mut describe = Describe::default();
    match fund_event {
        FundEvent::FundEstablished { terms, booked_on } => {
            out.push(Statement {
                sql: "INSERT INTO rm_funds (fund_id, year, kind, name, amount_cents, decision_reference, \
                      adopted_on, purpose, booked_on, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                params: vec![
                    text(&fund_id),
                    Param::Int(terms.year.value().into()),
                    text(terms.kind.as_str()),
                    text(&terms.name),
                    Param::Int(terms.amount.cents()),
                    text(&terms.decision.reference),
                    text(terms.decision.adopted_on),
                    text(&terms.purpose),
                    text(booked_on),
                    position.clone(),
                ],
            });
            describe.reason = Some(terms.purpose.to_string());
            describe.reference = Some(terms.decision.reference.to_string());
        }
        FundEvent::BudgetAllocated { wijk_id, amount, reason, .. } => {
            out.push(Statement {
                sql: ADD_TO_BUDGET_LINE,
                params: vec![text(wijk_id), text(&fund_id), Param::Int(amount.cents()), Param::Int(0)],
            });
            describe.reason = Some(reason.to_string());
        }
        FundEvent::ExpenseRecorded(details) => {
            out.push(Statement {
                sql: ADD_TO_BUDGET_LINE,
                params: vec![text(&details.wijk_id), text(&fund_id), Param::Int(0), Param::Int(details.amount.cents())],
            });
            out.push(Statement {
                sql: "INSERT INTO rm_expenses (expense_id, fund_id, wijk_id, amount_cents, initiative, theme, \
                      booked_on, reference, position, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                params: vec![
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
                ],
            });
            describe.reference = Some(details.reference.to_string());
            describe.initiative = Some(details.initiative.to_string());
            describe.theme = Some(details.theme.to_string());
            describe.expense_id = Some(details.expense_id.to_string());
        }
        FundEvent::ExpenseReversed { expense_id, wijk_id, amount, reason, reverses_sequence, .. } => {
            out.push(Statement {
                sql: ADD_TO_BUDGET_LINE,
                params: vec![text(wijk_id), text(&fund_id), Param::Int(0), Param::Int(-amount.cents())],
            });
            out.push(Statement {
                sql: "UPDATE rm_expenses SET reversed_position = $1, reversal_reason = $2 WHERE expense_id = $3",
                params: vec![position.clone(), text(reason), text(expense_id)],
            });
            describe.reason = Some(reason.to_string());
            describe.reference = Some(format!("reverses {}/{} event {}", event.aggregate_type, fund_id, reverses_sequence));
            describe.expense_id = Some(expense_id.to_string());
        }
    }
    let actor = metadata(&event.metadata, meta::ACTOR);
    let role = metadata(&event.metadata, meta::ROLE);
    for (line, posting) in postings(&fund_id, fund_event).into_iter().enumerate() {
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
                opt(describe.reason.as_ref()),
                opt(describe.reference.as_ref()),
                opt(describe.initiative.as_ref()),
                opt(describe.theme.as_ref()),
                opt(describe.expense_id.as_ref()),
            ],
        });
    }
    Ok(out)
}

fn metadata(metadata: &Value, key: &str) -> String {
    metadata.get(key).and_then(Value::as_str).unwrap_or("unknown").to_string()
}
