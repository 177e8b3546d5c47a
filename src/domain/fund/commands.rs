//! What a fund is asked to do: its commands and the details they carry.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::ids::{CommitmentId, ExpenseId, FundId, Text, WijkId, Year};
use crate::domain::money::Amount;

/// Where a fund's money was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FundKind {
    /// The regular wijkbudget of a year, from the adopted begroting.
    Begroting,
    /// A council amendment such as A21-182.
    Amendement,
    /// A budget change during the year.
    Begrotingswijziging,
}

impl FundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begroting => "begroting",
            Self::Amendement => "amendement",
            Self::Begrotingswijziging => "begrotingswijziging",
        }
    }
}

/// The council or college decision behind a fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub reference: Text,
    pub adopted_on: NaiveDate,
}

/// Everything that defines a fund when it is established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundTerms {
    pub fund_id: FundId,
    pub year: Year,
    pub kind: FundKind,
    pub name: Text,
    pub amount: Amount,
    pub decision: Decision,
    /// The doelbinding: what the money may be spent on.
    pub purpose: Text,
}

impl FundTerms {
    /// The date the fund's money enters the ledger: the first day of its
    /// year, or the adoption date when the decision falls inside the year.
    pub fn booking_date(&self) -> NaiveDate {
        if self.year.contains(self.decision.adopted_on) {
            self.decision.adopted_on
        } else {
            self.year.first_day()
        }
    }
}

/// One expense as recorded: an initiative paid from a wijk's money in this fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpenseDetails {
    pub expense_id: ExpenseId,
    pub wijk_id: WijkId,
    pub amount: Amount,
    /// The resident initiative, e.g. "Herinrichting Wegaplein".
    pub initiative: Text,
    /// groen, spelen, sociale cohesie, veiligheid, ...
    pub theme: Text,
    pub booked_on: NaiveDate,
    /// The document behind the payment, such as an invoice number.
    pub reference: Text,
}

/// Who applied for a grant. Under the AVG a private person's name is never
/// published: the subsidy register shows them as "particulier".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplicantKind {
    /// An organisation: a foundation, an association, a residents' group.
    Organisation,
    /// A private person. Grants recorded before applicants were marked
    /// count as private, the safe side.
    #[default]
    Private,
}

/// A grant decision (subsidieverlening): money promised to an approved
/// initiative before a euro is paid. It holds the wijk's money in one fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentDetails {
    pub commitment_id: CommitmentId,
    pub wijk_id: WijkId,
    pub amount: Amount,
    pub initiative: Text,
    /// The organisation or residents' group that applied.
    pub applicant: Text,
    /// Whether the applicant is an organisation or a private person
    /// (`CommitmentMade` 1.1.0; older events read as private).
    #[serde(default)]
    pub applicant_kind: ApplicantKind,
    pub theme: Text,
    /// The grant decision: its reference and date.
    pub decision: Decision,
    /// The rule the grant was made under, e.g. "Subsidieregeling wijkbudgetten".
    pub grant_rule: Text,
    pub booked_on: NaiveDate,
}

/// How a year's fund is closed, by council decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    pub decision_reference: Text,
    /// The wijken whose available money is carried over (budgetoverheveling)
    /// into `carry_over_fund`; every other wijk's available money lapses.
    pub carry_over: Vec<WijkId>,
    /// The new fund, in the next year, that receives the carried-over money.
    pub carry_over_fund: Option<FundId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FundCommand {
    Establish(FundTerms),
    Allocate {
        wijk_id: WijkId,
        amount: Amount,
        reason: Text,
        booked_on: NaiveDate,
    },
    RecordExpense(ExpenseDetails),
    /// Reverses an expense, booked on `booked_on` when given. Without it, a
    /// reversal in an open year is booked on `requested_on` (the day the
    /// correction is made), kept within the fund's year and not before the
    /// expense; a post-closing correction on `requested_on`, and at the
    /// earliest the day after the closed year. Once the fund is closed, a
    /// reversal must be marked `post_closing`, and only then.
    ReverseExpense {
        expense_id: ExpenseId,
        reason: Text,
        booked_on: Option<NaiveDate>,
        requested_on: NaiveDate,
        post_closing: bool,
    },
    Commit(CommitmentDetails),
    /// A (partial) payment against a commitment, recorded as an expense.
    Pay {
        commitment_id: CommitmentId,
        expense_id: ExpenseId,
        amount: Amount,
        booked_on: NaiveDate,
        reference: Text,
    },
    /// Vaststelling: fixes the final grant at or below the commitment.
    Settle {
        commitment_id: CommitmentId,
        settled_amount: Decimal,
        decision_reference: Text,
        booked_on: NaiveDate,
    },
    /// Money paid back after a recovery claim (terugvordering).
    Repay {
        commitment_id: CommitmentId,
        amount: Amount,
        booked_on: NaiveDate,
        reference: Text,
    },
    /// Intrekking (`cancelled: false`) or annulering (`cancelled: true`):
    /// releases whatever of the commitment is not yet paid.
    Withdraw {
        commitment_id: CommitmentId,
        reason: Text,
        cancelled: bool,
        booked_on: NaiveDate,
    },
    Transfer {
        from_wijk: WijkId,
        to_wijk: WijkId,
        amount: Amount,
        decision_reference: Text,
        reason: Text,
        booked_on: NaiveDate,
    },
    Close(Closing),
    /// Establishes a fund with money carried over from a closed fund, already
    /// allocated to the wijken it belonged to.
    EstablishCarryOver {
        terms: FundTerms,
        from_fund: FundId,
        allocations: Vec<(WijkId, Amount)>,
    },
}
