//! Why a fund refuses a command.

use chrono::NaiveDate;

use crate::domain::ids::{CommitmentId, ExpenseId, FundId, WijkId, Year};

/// Why a fund command was refused. Every message names what is wrong and
/// what would fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FundError {
    #[error("this fund does not exist; establish it first with POST /api/v1/funds")]
    UnknownFund,
    #[error("fund {0} already exists with other terms; choose another fund_id")]
    AlreadyEstablished(FundId),
    #[error("wijk {0} is not registered; register it first with POST /api/v1/wijken")]
    UnknownWijk(WijkId),
    #[error("fund {fund_id} has {unallocated} unallocated, so {requested} cannot be allocated")]
    FundExhausted { fund_id: FundId, requested: String, unallocated: String },
    /// `on` and `dates` are empty unless the booking date makes the
    /// difference; then they name the day judged, what it had, and the
    /// bookings that decide it (see [`DateContext`]).
    #[error(
        "wijk {wijk_id} has {remaining} left from fund {fund_id}{on}, so an expense of {requested} would overspend it{dates}"
    )]
    Overspend { wijk_id: WijkId, fund_id: FundId, requested: String, remaining: String, on: String, dates: String },
    #[error("wijk {wijk_id} has {available} available in fund {fund_id}{on}, so {requested} cannot be {what}{dates}")]
    NotAvailable {
        wijk_id: WijkId,
        fund_id: FundId,
        requested: String,
        available: String,
        what: &'static str,
        on: String,
        dates: String,
    },
    #[error("booking date {booked_on} is outside fund {fund_id}'s year {year}; book it within {year} or use a fund of that year")]
    OutsideFundYear { fund_id: FundId, year: Year, booked_on: NaiveDate },
    #[error("fund {fund_id}'s year {year} is closed, so nothing more can be booked in it on {booked_on}; book it on a fund of an open year")]
    YearClosed { fund_id: FundId, year: Year, booked_on: NaiveDate },
    /// A booking on a commitment (or a post-closing correction) dated inside
    /// a closed year: it can still be booked after that year.
    #[error("fund {fund_id}'s year {year} is closed, so nothing more can be booked in it on {booked_on}; book it on or after {from}")]
    YearClosedBookAfter { fund_id: FundId, year: Year, booked_on: NaiveDate, from: NaiveDate },
    #[error("fund {0} is already closed")]
    AlreadyClosed(FundId),
    #[error("booking date {booked_on} is before {what} on {earlier}; book it on or after that day")]
    BookedTooEarly { booked_on: NaiveDate, what: &'static str, earlier: NaiveDate },
    #[error("year {0} is closed, so no new fund can be established in it; use a fund of an open year")]
    YearClosedForNewFunds(Year),
    #[error("expense {0} already exists with other details; choose another expense_id")]
    ExpenseIdTaken(ExpenseId),
    #[error("expense {expense_id} is already used in fund {fund_id}; choose another expense_id")]
    ExpenseIdUsedElsewhere { expense_id: ExpenseId, fund_id: FundId },
    #[error("expense {expense_id} is not recorded in fund {fund_id}")]
    UnknownExpense { fund_id: FundId, expense_id: ExpenseId },
    #[error("expense {0} has already been reversed")]
    AlreadyReversed(ExpenseId),
    #[error("expense {0} is a payment on a commitment; correct it through the commitment's settlement")]
    PaymentNotReversible(ExpenseId),
    #[error(
        "fund {fund_id} is closed, so this reversal must be marked post_closing: send \"post_closing\": true with it"
    )]
    MarkPostClosing { fund_id: FundId },
    #[error("fund {fund_id}'s year {year} is not closed, so this reversal is not a post-closing correction; send it without post_closing")]
    NotPostClosing { fund_id: FundId, year: Year },
    #[error("the close decision of {decided_on} comes after carry-over fund {fund_id}'s year {year}, so the money could never be used; a carry-over needs a decision adopted by {last_day}")]
    CarryOverDecisionTooLate { fund_id: FundId, year: Year, decided_on: NaiveDate, last_day: NaiveDate },
    #[error("commitment {0} already exists with other details; choose another commitment_id")]
    CommitmentIdTaken(CommitmentId),
    #[error("commitment {commitment_id} is not recorded in fund {fund_id}")]
    UnknownCommitment { fund_id: FundId, commitment_id: CommitmentId },
    #[error("commitment {commitment_id} is {status}, so it can no longer be {what}")]
    CommitmentNotOpen { commitment_id: CommitmentId, status: &'static str, what: &'static str },
    #[error("commitment {commitment_id} has {left} left to pay, so a payment of {requested} is too much")]
    OverPayment { commitment_id: CommitmentId, requested: String, left: String },
    #[error("the settled amount {settled} must be between 0.00 and the committed {amount}, in whole cents")]
    BadSettlement { settled: String, amount: String },
    #[error("commitment {commitment_id} has {owed} owed back, so a repayment of {requested} is too much")]
    OverRepayment { commitment_id: CommitmentId, requested: String, owed: String },
    #[error("a transfer needs two different wijken")]
    TransferToSelf,
    #[error("wijk {0} is not among the wijken with money in this fund")]
    NotInFund(WijkId),
    #[error("a carry-over fund must be in the year after {0}")]
    CarryOverYear(Year),
    #[error("the carry-over allocations sum to {allocated}, but the fund's amount is {amount}; they must be equal")]
    CarryOverMismatch { allocated: String, amount: String },
    #[error("wijken to carry over need a carry_over_fund to carry into")]
    CarryOverNeedsFund,
    #[error("the wijk register could not be read: {0}")]
    DirectoryUnavailable(String),
    #[error("the expense register could not be read: {0}")]
    ExpenseRegisterUnavailable(String),
}
