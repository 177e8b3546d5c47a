//! The inverse of [`super::plan`]: a ledger command as an import row. It
//! writes the demo's dataset as an example import file
//! (`examples/demo-import.csv`), so that file is always the demo, and the
//! whole ledger as bookings (`export --what bookings`), which an import
//! reads back into the same balances.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;

use super::rows::COLUMNS;
use crate::demo::Step;
use crate::domain::fund::{Decision, FundCommand, FundEvent};
use crate::domain::ids::{WijkId, Year};
use crate::domain::wijk::{WijkCommand, WijkEvent};
use crate::store::repository::read_log;
use crate::store::Db;

pub type Cells = BTreeMap<&'static str, String>;

fn cells(pairs: Vec<(&'static str, String)>) -> Cells {
    pairs.into_iter().collect()
}

/// One demo step as a row's cells.
pub fn row_of(step: &Step) -> Cells {
    match step {
        Step::Wijk(WijkCommand::Register { wijk_id, name }) => {
            cells(vec![("type", "wijk".into()), ("wijk_id", wijk_id.to_string()), ("wijk_name", name.to_string())])
        }
        Step::CloseYear { year, decision, carry_over } => cells(vec![
            ("type", "close".into()),
            ("year", year.value().to_string()),
            ("decision", decision.reference.to_string()),
            ("decided_on", decision.adopted_on.to_string()),
            ("carry_over", carry_over.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")),
        ]),
        Step::Fund(fund_id, command) => fund_row(&fund_id.to_string(), command),
    }
}

fn fund_row(fund_id: &str, command: &FundCommand) -> Cells {
    let fund = || ("fund_id", fund_id.to_string());
    match command {
        FundCommand::Establish(t) => cells(vec![
            ("type", "fund".into()),
            fund(),
            ("year", t.year.value().to_string()),
            (
                "kind",
                serde_json::to_value(t.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            ),
            ("name", t.name.to_string()),
            ("amount", t.amount.to_string()),
            ("decision", t.decision.reference.to_string()),
            ("decided_on", t.decision.adopted_on.to_string()),
            ("purpose", t.purpose.to_string()),
        ]),
        FundCommand::Allocate { wijk_id, amount, reason, booked_on } => cells(vec![
            ("type", "allocation".into()),
            fund(),
            ("wijk_id", wijk_id.to_string()),
            ("amount", amount.to_string()),
            ("reason", reason.to_string()),
            ("booked_on", booked_on.to_string()),
        ]),
        FundCommand::RecordExpense(d) => cells(vec![
            ("type", "expense".into()),
            fund(),
            ("expense_id", d.expense_id.to_string()),
            ("wijk_id", d.wijk_id.to_string()),
            ("amount", d.amount.to_string()),
            ("initiative", d.initiative.to_string()),
            ("theme", d.theme.to_string()),
            ("booked_on", d.booked_on.to_string()),
            ("reference", d.reference.to_string()),
        ]),
        FundCommand::ReverseExpense { expense_id, reason, booked_on, requested_on, post_closing } => cells(vec![
            ("type", "reversal".into()),
            ("expense_id", expense_id.to_string()),
            ("reason", reason.to_string()),
            ("booked_on", booked_on.unwrap_or(*requested_on).to_string()),
            ("post_closing", if *post_closing { "yes" } else { "no" }.into()),
        ]),
        FundCommand::Commit(d) => cells(vec![
            ("type", "commitment".into()),
            fund(),
            ("commitment_id", d.commitment_id.to_string()),
            ("wijk_id", d.wijk_id.to_string()),
            ("amount", d.amount.to_string()),
            ("initiative", d.initiative.to_string()),
            ("applicant", d.applicant.to_string()),
            (
                "applicant_kind",
                serde_json::to_value(d.applicant_kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
            ("theme", d.theme.to_string()),
            ("decision", d.decision.reference.to_string()),
            ("decided_on", d.decision.adopted_on.to_string()),
            ("grant_rule", d.grant_rule.to_string()),
            ("booked_on", d.booked_on.to_string()),
        ]),
        FundCommand::Pay { commitment_id, expense_id, amount, booked_on, reference } => cells(vec![
            ("type", "payment".into()),
            ("commitment_id", commitment_id.to_string()),
            ("expense_id", expense_id.to_string()),
            ("amount", amount.to_string()),
            ("booked_on", booked_on.to_string()),
            ("reference", reference.to_string()),
        ]),
        FundCommand::Settle { commitment_id, settled_amount, decision_reference, booked_on } => cells(vec![
            ("type", "settlement".into()),
            ("commitment_id", commitment_id.to_string()),
            ("amount", format!("{settled_amount:.2}")),
            ("decision", decision_reference.to_string()),
            ("booked_on", booked_on.to_string()),
        ]),
        FundCommand::Repay { commitment_id, amount, booked_on, reference } => cells(vec![
            ("type", "repayment".into()),
            ("commitment_id", commitment_id.to_string()),
            ("amount", amount.to_string()),
            ("booked_on", booked_on.to_string()),
            ("reference", reference.to_string()),
        ]),
        FundCommand::Withdraw { commitment_id, reason, cancelled, booked_on } => cells(vec![
            ("type", "withdrawal".into()),
            ("commitment_id", commitment_id.to_string()),
            ("reason", reason.to_string()),
            ("cancelled", if *cancelled { "yes" } else { "no" }.into()),
            ("booked_on", booked_on.to_string()),
        ]),
        FundCommand::Transfer { from_wijk, to_wijk, amount, decision_reference, reason, booked_on } => cells(vec![
            ("type", "transfer".into()),
            fund(),
            ("wijk_id", from_wijk.to_string()),
            ("to_wijk", to_wijk.to_string()),
            ("amount", amount.to_string()),
            ("decision", decision_reference.to_string()),
            ("reason", reason.to_string()),
            ("booked_on", booked_on.to_string()),
        ]),
        FundCommand::Close(_) | FundCommand::EstablishCarryOver { .. } => {
            unreachable!("a close is one `close` row for the whole year, not a fund's command")
        }
    }
}

/// A year's close, gathered from its funds' events: one `close` row.
struct YearClose {
    /// Where its row goes: where the year's first fund closed.
    row: usize,
    year: Year,
    decision: Decision,
    carry_over: BTreeSet<WijkId>,
}

/// The whole ledger as import rows, in log order: each event as the
/// command that made it. A year's close is one `close` row, where its first
/// fund closed; the carry-over funds a close establishes are left out, as
/// importing the close establishes them again. Up to log position `up_to`.
pub async fn ledger_rows(db: &Db, up_to: i64) -> anyhow::Result<Vec<Cells>> {
    let mut rows = Vec::new();
    let mut fund_years: HashMap<String, Year> = HashMap::new();
    let mut closes: BTreeMap<i32, YearClose> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = read_log(db, after, 1000).await?;
        let Some(last) = page.last().map(|e| e.position) else { break };
        for event in page.into_iter().filter(|e| e.position <= up_to) {
            let unreadable = || format!("reading the event at position {}", event.position);
            if event.aggregate_type == "wijk" {
                let WijkEvent::WijkRegistered { wijk_id, name } = event.read_payload().with_context(unreadable)?;
                rows.push(row_of(&Step::Wijk(WijkCommand::Register { wijk_id, name })));
                continue;
            }
            let fund_id = event.aggregate_id.clone();
            let command = match event.read_payload::<FundEvent>().with_context(unreadable)? {
                FundEvent::FundEstablished { terms, .. } => {
                    fund_years.insert(fund_id.clone(), terms.year);
                    FundCommand::Establish(terms)
                }
                FundEvent::BudgetAllocated { wijk_id, amount, reason, booked_on } => {
                    FundCommand::Allocate { wijk_id, amount, reason, booked_on }
                }
                FundEvent::ExpenseRecorded(details) => FundCommand::RecordExpense(details),
                FundEvent::ExpenseReversed { expense_id, reason, booked_on, .. } => FundCommand::ReverseExpense {
                    expense_id,
                    reason,
                    booked_on: Some(booked_on),
                    requested_on: booked_on,
                    post_closing: false,
                },
                FundEvent::ExpenseReversedAfterClose { expense_id, reason, booked_on, .. } => {
                    FundCommand::ReverseExpense {
                        expense_id,
                        reason,
                        booked_on: Some(booked_on),
                        requested_on: booked_on,
                        post_closing: true,
                    }
                }
                FundEvent::CommitmentMade(details) => FundCommand::Commit(details),
                FundEvent::CommitmentPaid { commitment_id, expense_id, amount, booked_on, reference, .. } => {
                    FundCommand::Pay { commitment_id, expense_id, amount, booked_on, reference }
                }
                FundEvent::CommitmentSettled {
                    commitment_id, settled_amount, decision_reference, booked_on, ..
                } => FundCommand::Settle { commitment_id, settled_amount, decision_reference, booked_on },
                FundEvent::RepaymentReceived { commitment_id, amount, booked_on, reference, .. } => {
                    FundCommand::Repay { commitment_id, amount, booked_on, reference }
                }
                FundEvent::CommitmentWithdrawn { commitment_id, reason, cancelled, booked_on, .. } => {
                    FundCommand::Withdraw { commitment_id, reason, cancelled, booked_on }
                }
                FundEvent::BudgetTransferred { from_wijk, to_wijk, amount, decision_reference, reason, booked_on } => {
                    FundCommand::Transfer { from_wijk, to_wijk, amount, decision_reference, reason, booked_on }
                }
                FundEvent::FundClosed { decision_reference, booked_on, lines, .. } => {
                    let year = *fund_years
                        .get(&fund_id)
                        .with_context(|| format!("fund {fund_id} closed before it was established"))?;
                    let close = closes.entry(year.value()).or_insert_with(|| {
                        rows.push(Cells::new());
                        YearClose {
                            row: rows.len() - 1,
                            year,
                            decision: Decision { reference: decision_reference, adopted_on: booked_on },
                            carry_over: BTreeSet::new(),
                        }
                    });
                    close.carry_over.extend(lines.into_iter().filter(|l| !l.carried_over.is_zero()).map(|l| l.wijk_id));
                    continue;
                }
                FundEvent::FundCarriedOver { terms, from_fund, .. } => {
                    // The close's decision, with its date, as the close took it.
                    if let Some(close) = fund_years.get(from_fund.as_str()).and_then(|y| closes.get_mut(&y.value())) {
                        close.decision = terms.decision.clone();
                    }
                    fund_years.insert(fund_id, terms.year);
                    continue;
                }
            };
            rows.push(fund_row(&fund_id, &command));
        }
        if last >= up_to {
            break;
        }
        after = last;
    }
    for close in closes.into_values() {
        let step = Step::CloseYear {
            year: close.year,
            decision: close.decision,
            carry_over: close.carry_over.into_iter().collect(),
        };
        rows[close.row] = row_of(&step);
    }
    Ok(rows)
}

/// Rows as CSV with every column, in the order of [`COLUMNS`].
pub fn csv(rows: &[Cells]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS.iter().map(|c| c.0)).expect("writing to memory");
    for row in rows {
        writer
            .write_record(COLUMNS.iter().map(|c| row.get(c.0).map(String::as_str).unwrap_or("")))
            .expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
}

/// The demo's dataset as an import file.
pub fn demo_csv() -> String {
    csv(&crate::demo::steps().iter().map(row_of).collect::<Vec<_>>())
}
