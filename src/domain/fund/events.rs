//! What a fund records: its events, stored as they are forever.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId};
use crate::domain::money::Amount;

use super::{CommitmentDetails, ExpenseDetails, FundTerms};

/// One wijk's line of a close statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseLine {
    pub wijk_id: WijkId,
    pub lapsed: Decimal,
    pub carried_over: Decimal,
    /// Still committed and not paid; stays open and is carried along.
    pub committed_open: Decimal,
}

/// The facts of a fund's life. Stored events are never renamed or reshaped:
/// a change gets a new `event_version` and an upcaster in [`crate::domain::upcasters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FundEvent {
    /// Version 2.0 added `booked_on`; see [`crate::domain::upcasters`].
    FundEstablished {
        terms: FundTerms,
        booked_on: NaiveDate,
    },
    BudgetAllocated {
        wijk_id: WijkId,
        amount: Amount,
        reason: Text,
        booked_on: NaiveDate,
    },
    ExpenseRecorded(ExpenseDetails),
    /// A correction: it references the original expense by id and by its
    /// sequence number in this fund's stream, and moves the money back.
    ExpenseReversed {
        expense_id: ExpenseId,
        wijk_id: WijkId,
        amount: Amount,
        reason: Text,
        booked_on: NaiveDate,
        reverses_sequence: usize,
    },
    CommitmentMade(CommitmentDetails),
    CommitmentPaid {
        commitment_id: CommitmentId,
        expense_id: ExpenseId,
        wijk_id: WijkId,
        amount: Amount,
        booked_on: NaiveDate,
        reference: Text,
    },
    /// `released` returns to the wijk's available money; `recovery_claimed`
    /// is what was paid above the settled amount and is now owed back.
    CommitmentSettled {
        commitment_id: CommitmentId,
        wijk_id: WijkId,
        settled_amount: Decimal,
        released: Decimal,
        recovery_claimed: Decimal,
        decision_reference: Text,
        booked_on: NaiveDate,
        /// Released money lapses instead of returning to the wijk: the fund
        /// was closed, or the settlement is booked after the fund's year.
        after_close: bool,
    },
    RepaymentReceived {
        commitment_id: CommitmentId,
        wijk_id: WijkId,
        amount: Amount,
        booked_on: NaiveDate,
        reference: Text,
        after_close: bool,
    },
    CommitmentWithdrawn {
        commitment_id: CommitmentId,
        wijk_id: WijkId,
        released: Decimal,
        reason: Text,
        cancelled: bool,
        booked_on: NaiveDate,
        after_close: bool,
    },
    BudgetTransferred {
        from_wijk: WijkId,
        to_wijk: WijkId,
        amount: Amount,
        decision_reference: Text,
        reason: Text,
        booked_on: NaiveDate,
    },
    /// The year is closed: each wijk's available money lapses or is carried
    /// over, the fund's unallocated money lapses, open commitments stay.
    FundClosed {
        decision_reference: Text,
        booked_on: NaiveDate,
        lines: Vec<CloseLine>,
        unallocated_lapsed: Decimal,
        carry_over_fund: Option<FundId>,
    },
    /// A correction after the year was closed, explicitly marked as such:
    /// the expense is undone and its money lapses with the closed year.
    ExpenseReversedAfterClose {
        expense_id: ExpenseId,
        wijk_id: WijkId,
        amount: Amount,
        reason: Text,
        booked_on: NaiveDate,
        reverses_sequence: usize,
    },
    /// A fund established from a closed fund's carried-over money; links back
    /// to it, so an amendment's money can be followed across years.
    FundCarriedOver {
        terms: FundTerms,
        from_fund: FundId,
        booked_on: NaiveDate,
        allocations: Vec<(WijkId, Amount)>,
    },
}

pub const FUND_ESTABLISHED_VERSION: &str = "2.0.0";
/// 1.1.0 marks the applicant as an organisation or a private person.
pub const COMMITMENT_MADE_VERSION: &str = "1.1.0";

impl DomainEvent for FundEvent {
    fn event_type(&self) -> String {
        match self {
            Self::FundEstablished { .. } => "FundEstablished",
            Self::BudgetAllocated { .. } => "BudgetAllocated",
            Self::ExpenseRecorded(_) => "ExpenseRecorded",
            Self::ExpenseReversed { .. } => "ExpenseReversed",
            Self::CommitmentMade(_) => "CommitmentMade",
            Self::CommitmentPaid { .. } => "CommitmentPaid",
            Self::CommitmentSettled { .. } => "CommitmentSettled",
            Self::RepaymentReceived { .. } => "RepaymentReceived",
            Self::CommitmentWithdrawn { .. } => "CommitmentWithdrawn",
            Self::BudgetTransferred { .. } => "BudgetTransferred",
            Self::FundClosed { .. } => "FundClosed",
            Self::ExpenseReversedAfterClose { .. } => "ExpenseReversedAfterClose",
            Self::FundCarriedOver { .. } => "FundCarriedOver",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            Self::FundEstablished { .. } => FUND_ESTABLISHED_VERSION,
            Self::CommitmentMade(_) => COMMITMENT_MADE_VERSION,
            _ => "1.0.0",
        }
        .into()
    }
}

impl FundEvent {
    /// The date this event's money counts from in as-of questions.
    pub fn booked_on(&self) -> NaiveDate {
        match self {
            Self::FundEstablished { booked_on, .. }
            | Self::BudgetAllocated { booked_on, .. }
            | Self::ExpenseReversed { booked_on, .. }
            | Self::CommitmentPaid { booked_on, .. }
            | Self::CommitmentSettled { booked_on, .. }
            | Self::RepaymentReceived { booked_on, .. }
            | Self::CommitmentWithdrawn { booked_on, .. }
            | Self::BudgetTransferred { booked_on, .. }
            | Self::FundClosed { booked_on, .. }
            | Self::ExpenseReversedAfterClose { booked_on, .. }
            | Self::FundCarriedOver { booked_on, .. } => *booked_on,
            Self::ExpenseRecorded(details) => details.booked_on,
            Self::CommitmentMade(details) => details.booked_on,
        }
    }
}
