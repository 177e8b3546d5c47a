//! Given/when/then tests of the budget lifecycle: commitments, payments,
//! settlement, repayment, withdrawal, transfers, closing the year and the
//! carry-over fund, including every refusal, and the double-entry invariants
//! over a long scenario. The helpers are here; the tests in `grants.rs` and
//! `year_end.rs`.

mod grants;
mod year_end;

use std::collections::BTreeMap;

use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;

use super::fund::*;
use super::ids::*;
use super::postings::{postings, AccountKind};
use super::test_support::{a21_182, allocate, allocated, date, established, eur, fund, text, wegaplein, wijk};

// ---------------------------------------------------------------------------
// Helpers (copied from fund_tests.rs where they overlap, so each file stands
// on its own).
// ---------------------------------------------------------------------------

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}
fn cid(s: &str) -> CommitmentId {
    CommitmentId::parse(s).unwrap()
}
fn eid(s: &str) -> ExpenseId {
    ExpenseId::parse(s).unwrap()
}
fn fid(s: &str) -> FundId {
    FundId::parse(s).unwrap()
}

/// A grant decision for oost-1223.
fn grant(commitment_id: &str, amount: &str) -> CommitmentDetails {
    CommitmentDetails {
        commitment_id: cid(commitment_id),
        wijk_id: wijk("oost-1223"),
        amount: eur(amount),
        initiative: text("Buurtfeest Oost"),
        applicant: text("Bewonersgroep Oost"),
        applicant_kind: ApplicantKind::Organisation,
        theme: text("sociale cohesie"),
        decision: Decision { reference: text("SV-2022-017"), adopted_on: date("2022-03-01") },
        grant_rule: text("Subsidieregeling wijkbudgetten"),
        booked_on: date("2022-03-01"),
    }
}

fn grant_in(wijk_id: &str, commitment_id: &str, amount: &str) -> CommitmentDetails {
    CommitmentDetails { wijk_id: wijk(wijk_id), ..grant(commitment_id, amount) }
}

fn committed(commitment_id: &str, amount: &str) -> FundEvent {
    FundEvent::CommitmentMade(grant(commitment_id, amount))
}

fn pay(commitment_id: &str, expense_id: &str, amount: &str, booked_on: &str) -> FundCommand {
    FundCommand::Pay {
        commitment_id: cid(commitment_id),
        expense_id: eid(expense_id),
        amount: eur(amount),
        booked_on: date(booked_on),
        reference: text("voorschot"),
    }
}

fn paid(commitment_id: &str, expense_id: &str, amount: &str, booked_on: &str) -> FundEvent {
    FundEvent::CommitmentPaid {
        commitment_id: cid(commitment_id),
        expense_id: eid(expense_id),
        wijk_id: wijk("oost-1223"),
        amount: eur(amount),
        booked_on: date(booked_on),
        reference: text("voorschot"),
    }
}

fn settle(commitment_id: &str, settled_amount: &str, booked_on: &str) -> FundCommand {
    FundCommand::Settle {
        commitment_id: cid(commitment_id),
        settled_amount: dec(settled_amount),
        decision_reference: text("VS-2022-003"),
        booked_on: date(booked_on),
    }
}

fn settled(
    commitment_id: &str,
    settled_amount: &str,
    released: &str,
    recovery_claimed: &str,
    booked_on: &str,
    after_close: bool,
) -> FundEvent {
    FundEvent::CommitmentSettled {
        commitment_id: cid(commitment_id),
        wijk_id: wijk("oost-1223"),
        settled_amount: dec(settled_amount),
        released: dec(released),
        recovery_claimed: dec(recovery_claimed),
        decision_reference: text("VS-2022-003"),
        booked_on: date(booked_on),
        after_close,
    }
}

fn repay(commitment_id: &str, amount: &str, booked_on: &str) -> FundCommand {
    FundCommand::Repay {
        commitment_id: cid(commitment_id),
        amount: eur(amount),
        booked_on: date(booked_on),
        reference: text("terugbetaling"),
    }
}

fn repaid(commitment_id: &str, amount: &str, booked_on: &str, after_close: bool) -> FundEvent {
    FundEvent::RepaymentReceived {
        commitment_id: cid(commitment_id),
        wijk_id: wijk("oost-1223"),
        amount: eur(amount),
        booked_on: date(booked_on),
        reference: text("terugbetaling"),
        after_close,
    }
}

fn withdraw(commitment_id: &str, cancelled: bool, booked_on: &str) -> FundCommand {
    FundCommand::Withdraw {
        commitment_id: cid(commitment_id),
        reason: text("initiatief gaat niet door"),
        cancelled,
        booked_on: date(booked_on),
    }
}

fn withdrawn(commitment_id: &str, released: &str, cancelled: bool, booked_on: &str, after_close: bool) -> FundEvent {
    FundEvent::CommitmentWithdrawn {
        commitment_id: cid(commitment_id),
        wijk_id: wijk("oost-1223"),
        released: dec(released),
        reason: text("initiatief gaat niet door"),
        cancelled,
        booked_on: date(booked_on),
        after_close,
    }
}

fn transfer(from: &str, to: &str, amount: &str, booked_on: &str) -> FundCommand {
    FundCommand::Transfer {
        from_wijk: wijk(from),
        to_wijk: wijk(to),
        amount: eur(amount),
        decision_reference: text("B&W 2022-114"),
        reason: text("herverdeling"),
        booked_on: date(booked_on),
    }
}

fn transferred(from: &str, to: &str, amount: &str, booked_on: &str) -> FundEvent {
    FundEvent::BudgetTransferred {
        from_wijk: wijk(from),
        to_wijk: wijk(to),
        amount: eur(amount),
        decision_reference: text("B&W 2022-114"),
        reason: text("herverdeling"),
        booked_on: date(booked_on),
    }
}

fn close(carry_over: &[&str], carry_over_fund: Option<&str>) -> FundCommand {
    FundCommand::Close(Closing {
        decision_reference: text("Raad 2023-07 jaarrekening"),
        carry_over: carry_over.iter().map(|w| wijk(w)).collect(),
        carry_over_fund: carry_over_fund.map(fid),
    })
}

fn close_line(wijk_id: &str, lapsed: &str, carried_over: &str, committed_open: &str) -> CloseLine {
    CloseLine {
        wijk_id: wijk(wijk_id),
        lapsed: dec(lapsed),
        carried_over: dec(carried_over),
        committed_open: dec(committed_open),
    }
}

fn closed(lines: Vec<CloseLine>, unallocated_lapsed: &str, carry_over_fund: Option<&str>) -> FundEvent {
    FundEvent::FundClosed {
        decision_reference: text("Raad 2023-07 jaarrekening"),
        booked_on: date("2022-12-31"),
        lines,
        unallocated_lapsed: dec(unallocated_lapsed),
        carry_over_fund: carry_over_fund.map(fid),
    }
}

fn reverse(expense_id: &str, requested_on: &str, post_closing: bool) -> FundCommand {
    FundCommand::ReverseExpense {
        booked_on: None,
        expense_id: eid(expense_id),
        reason: text("dubbel geboekt"),
        requested_on: date(requested_on),
        post_closing,
    }
}

/// The fund of the next year that receives oost-1223's carried-over money.
fn carry_over_terms() -> FundTerms {
    FundTerms {
        fund_id: fid("A21-182-overheveling"),
        year: Year::new(2023).unwrap(),
        kind: FundKind::Begrotingswijziging,
        name: text("Overheveling A21-182 naar 2023"),
        amount: eur("6500"),
        decision: Decision { reference: text("Raad 2023-07 jaarrekening"), adopted_on: date("2023-03-30") },
        purpose: text("Versterken van sociale cohesie en verbinding in de wijken"),
    }
}

fn establish_carry_over() -> FundCommand {
    FundCommand::EstablishCarryOver {
        terms: carry_over_terms(),
        from_fund: fid("A21-182"),
        allocations: vec![(wijk("oost-1223"), eur("6500"))],
    }
}

fn carried_over() -> FundEvent {
    FundEvent::FundCarriedOver {
        terms: carry_over_terms(),
        from_fund: fid("A21-182"),
        // The close decision's date: the money exists from then on (issue 14).
        booked_on: date("2023-03-30"),
        allocations: vec![(wijk("oost-1223"), eur("6500"))],
    }
}

/// The fund state after `events`, folded exactly as the store would.
fn fold(events: &[FundEvent]) -> Fund {
    let mut fund = Fund::default();
    for event in events {
        fund.apply(event.clone());
    }
    fund
}

/// A fund with 10000 allocated to oost-1223.
fn oost_has_10000() -> Vec<FundEvent> {
    vec![established(), allocated("oost-1223", "10000")]
}

/// oost-1223 has 10000, of which 3000 is promised under sv-1.
fn with_commitment() -> Vec<FundEvent> {
    let mut events = oost_has_10000();
    events.push(committed("sv-1", "3000"));
    events
}

/// sv-1 of 3000 with 1000 paid.
fn with_partial_payment() -> Vec<FundEvent> {
    let mut events = with_commitment();
    events.push(paid("sv-1", "f-1", "1000", "2022-04-01"));
    events
}

/// sv-1 of 3000, 1000 paid, and the year closed with everything lapsing.
fn closed_with_open_commitment() -> Vec<FundEvent> {
    let mut events = with_partial_payment();
    events.push(closed(vec![close_line("oost-1223", "7000", "0", "2000")], "40000", None));
    events
}

/// sv-1 of 3000, 2800 paid, settled at 2500: 300 to claim back.
fn with_recovery_claimed() -> Vec<FundEvent> {
    let mut events = with_commitment();
    events.push(paid("sv-1", "f-1", "2800", "2022-04-01"));
    events.push(settled("sv-1", "2500", "200", "300", "2022-10-01", false));
    events
}
