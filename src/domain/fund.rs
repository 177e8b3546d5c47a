//! The fund: where money comes from, and the consistency boundary for every
//! euro that flows out of it.
//!
//! All money rules of one fund live in one aggregate: a fund never hands out
//! more than its amount, and a wijk never spends more from a fund than was
//! allocated to it from that fund. Because both rules only ever look at one
//! fund, optimistic concurrency on the fund's stream is enough to keep them
//! true under any number of concurrent commands (see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{ExpenseId, FundId, Text, WijkId, Year};
use super::money::{format_euro, Amount};

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
    /// Reverses an expense. `requested_on` is the day the correction is made;
    /// the reversal is booked on that day, or on the last day of the fund's
    /// year when the correction comes later.
    ReverseExpense {
        expense_id: ExpenseId,
        reason: Text,
        requested_on: NaiveDate,
    },
}

/// The facts of a fund's life. Stored events are never renamed or reshaped:
/// a change gets a new `event_version` and an upcaster in [`super::upcasters`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FundEvent {
    /// Version 2.0 added `booked_on`; see [`super::upcasters`].
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
}

pub const FUND_ESTABLISHED_VERSION: &str = "2.0.0";

impl DomainEvent for FundEvent {
    fn event_type(&self) -> String {
        match self {
            Self::FundEstablished { .. } => "FundEstablished",
            Self::BudgetAllocated { .. } => "BudgetAllocated",
            Self::ExpenseRecorded(_) => "ExpenseRecorded",
            Self::ExpenseReversed { .. } => "ExpenseReversed",
        }
        .into()
    }
    fn event_version(&self) -> String {
        match self {
            Self::FundEstablished { .. } => FUND_ESTABLISHED_VERSION,
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
            | Self::ExpenseReversed { booked_on, .. } => *booked_on,
            Self::ExpenseRecorded(details) => details.booked_on,
        }
    }
}

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
    FundExhausted {
        fund_id: FundId,
        requested: String,
        unallocated: String,
    },
    #[error("wijk {wijk_id} has {remaining} left from fund {fund_id}, so an expense of {requested} would overspend it")]
    Overspend {
        wijk_id: WijkId,
        fund_id: FundId,
        requested: String,
        remaining: String,
    },
    #[error("booking date {booked_on} is outside fund {fund_id}'s year {year}; book it within {year} or use a fund of that year")]
    OutsideFundYear {
        fund_id: FundId,
        year: Year,
        booked_on: NaiveDate,
    },
    #[error("expense {0} already exists with other details; choose another expense_id")]
    ExpenseIdTaken(ExpenseId),
    #[error("expense {expense_id} is not recorded in fund {fund_id}")]
    UnknownExpense { fund_id: FundId, expense_id: ExpenseId },
    #[error("expense {0} has already been reversed")]
    AlreadyReversed(ExpenseId),
    #[error("the wijk register could not be read: {0}")]
    DirectoryUnavailable(String),
}

/// The outside knowledge a fund needs: whether a wijk exists. Wijken are
/// never removed, so a "yes" can never become stale.
#[async_trait]
pub trait WijkDirectory: Send + Sync {
    async fn is_registered(&self, wijk_id: &WijkId) -> Result<bool, String>;
}

#[derive(Clone)]
pub struct FundServices {
    pub wijken: Arc<dyn WijkDirectory>,
}

/// What one wijk has received from and spent out of one fund.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLine {
    pub amount_allocated: Decimal,
    pub amount_spent: Decimal,
}

impl BudgetLine {
    pub fn amount_remaining(&self) -> Decimal {
        self.amount_allocated - self.amount_spent
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RecordedExpense {
    details: ExpenseDetails,
    sequence: usize,
    reversed: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fund {
    terms: Option<FundTerms>,
    amount_allocated: Decimal,
    lines: BTreeMap<WijkId, BudgetLine>,
    expenses: BTreeMap<ExpenseId, RecordedExpense>,
    /// The sequence number of the last applied event, so a reversal can
    /// point at the exact event it corrects.
    sequence: usize,
}

impl Fund {
    pub fn terms(&self) -> Option<&FundTerms> {
        self.terms.as_ref()
    }

    pub fn amount_unallocated(&self) -> Decimal {
        self.terms.as_ref().map_or(Decimal::ZERO, |t| t.amount.as_decimal()) - self.amount_allocated
    }

    pub fn line(&self, wijk_id: &WijkId) -> BudgetLine {
        self.lines.get(wijk_id).cloned().unwrap_or_default()
    }

    pub fn lines(&self) -> impl Iterator<Item = (&WijkId, &BudgetLine)> {
        self.lines.iter()
    }

    fn established(&self) -> Result<&FundTerms, FundError> {
        self.terms.as_ref().ok_or(FundError::UnknownFund)
    }

    fn check_in_year(terms: &FundTerms, booked_on: NaiveDate) -> Result<(), FundError> {
        if terms.year.contains(booked_on) {
            Ok(())
        } else {
            Err(FundError::OutsideFundYear {
                fund_id: terms.fund_id.clone(),
                year: terms.year,
                booked_on,
            })
        }
    }

    async fn handle_command(
        &self,
        command: FundCommand,
        services: &FundServices,
    ) -> Result<Vec<FundEvent>, FundError> {
        if let FundCommand::Establish(terms) = command {
            return match &self.terms {
                Some(existing) if *existing == terms => Ok(vec![]),
                Some(existing) => Err(FundError::AlreadyEstablished(existing.fund_id.clone())),
                None => {
                    let booked_on = terms.booking_date();
                    Ok(vec![FundEvent::FundEstablished { terms, booked_on }])
                }
            };
        }
        let terms = self.established()?;
        match command {
            FundCommand::Establish(_) => unreachable!("handled above"),
            FundCommand::Allocate { wijk_id, amount, reason, booked_on } => {
                Self::check_in_year(terms, booked_on)?;
                let known = services
                    .wijken
                    .is_registered(&wijk_id)
                    .await
                    .map_err(FundError::DirectoryUnavailable)?;
                if !known {
                    return Err(FundError::UnknownWijk(wijk_id));
                }
                let unallocated = self.amount_unallocated();
                if amount.as_decimal() > unallocated {
                    return Err(FundError::FundExhausted {
                        fund_id: terms.fund_id.clone(),
                        requested: amount.to_string(),
                        unallocated: format_euro(unallocated),
                    });
                }
                Ok(vec![FundEvent::BudgetAllocated { wijk_id, amount, reason, booked_on }])
            }
            FundCommand::RecordExpense(details) => {
                if let Some(existing) = self.expenses.get(&details.expense_id) {
                    return if existing.details == details {
                        Ok(vec![])
                    } else {
                        Err(FundError::ExpenseIdTaken(details.expense_id))
                    };
                }
                Self::check_in_year(terms, details.booked_on)?;
                if !self.lines.contains_key(&details.wijk_id) {
                    let known = services
                        .wijken
                        .is_registered(&details.wijk_id)
                        .await
                        .map_err(FundError::DirectoryUnavailable)?;
                    if !known {
                        return Err(FundError::UnknownWijk(details.wijk_id));
                    }
                }
                let remaining = self.line(&details.wijk_id).amount_remaining();
                if details.amount.as_decimal() > remaining {
                    return Err(FundError::Overspend {
                        wijk_id: details.wijk_id,
                        fund_id: terms.fund_id.clone(),
                        requested: details.amount.to_string(),
                        remaining: format_euro(remaining),
                    });
                }
                Ok(vec![FundEvent::ExpenseRecorded(details)])
            }
            FundCommand::ReverseExpense { expense_id, reason, requested_on } => {
                let Some(original) = self.expenses.get(&expense_id) else {
                    return Err(FundError::UnknownExpense { fund_id: terms.fund_id.clone(), expense_id });
                };
                if original.reversed {
                    return Err(FundError::AlreadyReversed(expense_id));
                }
                let booked_on = requested_on
                    .clamp(original.details.booked_on, terms.year.last_day());
                Ok(vec![FundEvent::ExpenseReversed {
                    expense_id,
                    wijk_id: original.details.wijk_id.clone(),
                    amount: original.details.amount,
                    reason,
                    booked_on,
                    reverses_sequence: original.sequence,
                }])
            }
        }
    }
}

impl Aggregate for Fund {
    const TYPE: &'static str = "fund";
    type Command = FundCommand;
    type Event = FundEvent;
    type Error = FundError;
    type Services = FundServices;

    async fn handle(
        &mut self,
        command: FundCommand,
        services: &FundServices,
        sink: &EventSink<Self>,
    ) -> Result<(), FundError> {
        let events = self.handle_command(command, services).await?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: FundEvent) {
        self.sequence += 1;
        match event {
            FundEvent::FundEstablished { terms, .. } => self.terms = Some(terms),
            FundEvent::BudgetAllocated { wijk_id, amount, .. } => {
                self.amount_allocated += amount.as_decimal();
                self.lines.entry(wijk_id).or_default().amount_allocated += amount.as_decimal();
            }
            FundEvent::ExpenseRecorded(details) => {
                self.lines.entry(details.wijk_id.clone()).or_default().amount_spent +=
                    details.amount.as_decimal();
                self.expenses.insert(
                    details.expense_id.clone(),
                    RecordedExpense { details, sequence: self.sequence, reversed: false },
                );
            }
            FundEvent::ExpenseReversed { expense_id, wijk_id, amount, .. } => {
                self.lines.entry(wijk_id).or_default().amount_spent -= amount.as_decimal();
                if let Some(expense) = self.expenses.get_mut(&expense_id) {
                    expense.reversed = true;
                }
            }
        }
        debug_assert!(self.amount_unallocated() >= Decimal::ZERO, "a fund handed out more than its amount");
        debug_assert!(
            self.lines.values().all(|l| l.amount_remaining() >= Decimal::ZERO && l.amount_spent >= Decimal::ZERO),
            "a wijk spent more than was allocated to it"
        );
    }
}
