//! Double entry: every money-moving event is a balanced set of postings.
//!
//! Amounts are debit-positive. The accounts of one fund are:
//! - `appropriation`: the council decision the money comes from (goes negative
//!   by the fund's amount when the fund is established);
//! - `carried_in`: the same for a fund made of carried-over money;
//! - `fund`: money of the fund not yet allocated to a wijk;
//! - `wijk_budget`: a wijk's available money from this fund;
//! - `committed`: promised to initiatives (verplichtingen), not yet paid;
//! - `spent`: what a wijk has paid from this fund;
//! - `receivable`: paid above a settled amount and owed back;
//! - `lapsed`: returned to the municipality's general means at year end
//!   (per wijk, or for the fund's unallocated money);
//! - `carried_over`: moved into next year's carry-over fund.
//!
//! The postings of every event sum to zero, so the whole ledger does too
//! (the trial balance), and every balance except `appropriation` and
//! `carried_in` stays >= 0.

use rust_decimal::Decimal;
use serde::Serialize;

use super::fund::FundEvent;
use super::ids::{FundId, WijkId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Appropriation,
    CarriedIn,
    Fund,
    WijkBudget,
    Committed,
    Spent,
    Receivable,
    Lapsed,
    CarriedOver,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appropriation => "appropriation",
            Self::CarriedIn => "carried_in",
            Self::Fund => "fund",
            Self::WijkBudget => "wijk_budget",
            Self::Committed => "committed",
            Self::Spent => "spent",
            Self::Receivable => "receivable",
            Self::Lapsed => "lapsed",
            Self::CarriedOver => "carried_over",
        }
    }
}

/// A named account: its kind, the fund it belongs to and, for wijk accounts, the wijk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    pub kind: AccountKind,
    pub fund_id: FundId,
    pub wijk_id: Option<WijkId>,
}

impl Account {
    /// The account's name as auditors read it, e.g. `wijk_budget:oost-1223:A21-182`.
    pub fn name(&self) -> String {
        match &self.wijk_id {
            Some(wijk) => format!("{}:{}:{}", self.kind.as_str(), wijk, self.fund_id),
            None => format!("{}:{}", self.kind.as_str(), self.fund_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    /// Debit-positive.
    pub amount: Decimal,
}

fn account(kind: AccountKind, fund_id: &FundId, wijk_id: Option<&WijkId>) -> Account {
    Account { kind, fund_id: fund_id.clone(), wijk_id: wijk_id.cloned() }
}

/// A transfer of `amount` from one account to another, as two postings.
fn transfer(from: Account, to: Account, amount: Decimal) -> Vec<Posting> {
    vec![Posting { account: from, amount: -amount }, Posting { account: to, amount }]
}

/// Where released or repaid money goes: back to the wijk while the year is
/// open, to `lapsed` once it is closed.
fn returned_to(fund_id: &FundId, wijk_id: &WijkId, after_close: bool) -> Account {
    let kind = if after_close { AccountKind::Lapsed } else { AccountKind::WijkBudget };
    account(kind, fund_id, Some(wijk_id))
}

/// The postings of one event of fund `fund_id`. Zero-amount moves are left out.
pub fn postings(fund_id: &FundId, event: &FundEvent) -> Vec<Posting> {
    use AccountKind::*;
    let wijk = |kind, w: &WijkId| account(kind, fund_id, Some(w));
    let fund = |kind| account(kind, fund_id, None);
    let mut postings = Vec::new();
    let mut move_money = |from: Account, to: Account, amount: Decimal| {
        if amount != Decimal::ZERO {
            postings.extend(transfer(from, to, amount));
        }
    };
    match event {
        FundEvent::FundEstablished { terms, .. } => {
            move_money(fund(Appropriation), fund(Fund), terms.amount.as_decimal())
        }
        FundEvent::FundCarriedOver { terms, allocations, .. } => {
            move_money(fund(CarriedIn), fund(Fund), terms.amount.as_decimal());
            for (w, amount) in allocations {
                move_money(fund(Fund), wijk(WijkBudget, w), amount.as_decimal());
            }
        }
        FundEvent::BudgetAllocated { wijk_id, amount, .. } => {
            move_money(fund(Fund), wijk(WijkBudget, wijk_id), amount.as_decimal())
        }
        FundEvent::ExpenseRecorded(d) => {
            move_money(wijk(WijkBudget, &d.wijk_id), wijk(Spent, &d.wijk_id), d.amount.as_decimal())
        }
        FundEvent::ExpenseReversed { wijk_id, amount, .. } => {
            move_money(wijk(Spent, wijk_id), wijk(WijkBudget, wijk_id), amount.as_decimal())
        }
        FundEvent::ExpenseReversedAfterClose { wijk_id, amount, .. } => {
            move_money(wijk(Spent, wijk_id), wijk(Lapsed, wijk_id), amount.as_decimal())
        }
        FundEvent::CommitmentMade(d) => {
            move_money(wijk(WijkBudget, &d.wijk_id), wijk(Committed, &d.wijk_id), d.amount.as_decimal())
        }
        FundEvent::CommitmentPaid { wijk_id, amount, .. } => {
            move_money(wijk(Committed, wijk_id), wijk(Spent, wijk_id), amount.as_decimal())
        }
        FundEvent::CommitmentSettled { wijk_id, released, recovery_claimed, after_close, .. } => {
            move_money(wijk(Committed, wijk_id), returned_to(fund_id, wijk_id, *after_close), *released);
            move_money(wijk(Spent, wijk_id), wijk(Receivable, wijk_id), *recovery_claimed);
        }
        FundEvent::RepaymentReceived { wijk_id, amount, after_close, .. } => {
            move_money(wijk(Receivable, wijk_id), returned_to(fund_id, wijk_id, *after_close), amount.as_decimal())
        }
        FundEvent::CommitmentWithdrawn { wijk_id, released, after_close, .. } => {
            move_money(wijk(Committed, wijk_id), returned_to(fund_id, wijk_id, *after_close), *released)
        }
        FundEvent::BudgetTransferred { from_wijk, to_wijk, amount, .. } => {
            move_money(wijk(WijkBudget, from_wijk), wijk(WijkBudget, to_wijk), amount.as_decimal())
        }
        FundEvent::FundClosed { lines, unallocated_lapsed, .. } => {
            for line in lines {
                move_money(wijk(WijkBudget, &line.wijk_id), wijk(Lapsed, &line.wijk_id), line.lapsed);
                move_money(wijk(WijkBudget, &line.wijk_id), wijk(CarriedOver, &line.wijk_id), line.carried_over);
            }
            move_money(fund(Fund), fund(Lapsed), *unallocated_lapsed);
        }
    }
    debug_assert_eq!(postings.iter().map(|p| p.amount).sum::<Decimal>(), Decimal::ZERO);
    postings
}
