//! Double entry: every money-moving event is a balanced set of postings.
//!
//! Amounts are debit-positive. The accounts of one fund are:
//! - `appropriation`: the council decision the money comes from (goes negative
//!   by the fund's amount when the fund is established);
//! - `fund`: money of the fund not yet allocated to a wijk;
//! - `wijk_budget`: money allocated to one wijk from this fund and not yet spent;
//! - `spent`: what one wijk has spent from this fund.
//!
//! The postings of every event sum to zero, so the whole ledger does too
//! (the trial balance), and every balance except `appropriation` stays >= 0.

use rust_decimal::Decimal;
use serde::Serialize;

use super::fund::FundEvent;
use super::ids::{FundId, WijkId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Appropriation,
    Fund,
    WijkBudget,
    Spent,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appropriation => "appropriation",
            Self::Fund => "fund",
            Self::WijkBudget => "wijk_budget",
            Self::Spent => "spent",
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

/// The postings of one event of fund `fund_id`.
pub fn postings(fund_id: &FundId, event: &FundEvent) -> Vec<Posting> {
    use AccountKind::*;
    let postings = match event {
        FundEvent::FundEstablished { terms, .. } => transfer(
            account(Appropriation, fund_id, None),
            account(Fund, fund_id, None),
            terms.amount.as_decimal(),
        ),
        FundEvent::BudgetAllocated { wijk_id, amount, .. } => transfer(
            account(Fund, fund_id, None),
            account(WijkBudget, fund_id, Some(wijk_id)),
            amount.as_decimal(),
        ),
        FundEvent::ExpenseRecorded(details) => transfer(
            account(WijkBudget, fund_id, Some(&details.wijk_id)),
            account(Spent, fund_id, Some(&details.wijk_id)),
            details.amount.as_decimal(),
        ),
        FundEvent::ExpenseReversed { wijk_id, amount, .. } => transfer(
            account(Spent, fund_id, Some(wijk_id)),
            account(WijkBudget, fund_id, Some(wijk_id)),
            amount.as_decimal(),
        ),
    };
    debug_assert_eq!(postings.iter().map(|p| p.amount).sum::<Decimal>(), Decimal::ZERO);
    postings
}
