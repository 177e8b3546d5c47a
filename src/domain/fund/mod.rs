//! The fund: where money comes from, and the consistency boundary for every
//! euro that flows out of it.
//!
//! All money rules of one fund live in one aggregate: a fund never hands out
//! more than its amount, and a wijk never spends more from a fund than was
//! allocated to it from that fund. Because both rules only ever look at one
//! fund, optimistic concurrency on the fund's stream is enough to keep them
//! true under any number of concurrent commands (see ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{CommitmentId, ExpenseId, FundId, WijkId, Year};
use super::money::{format_euro, Amount};

mod apply;
mod commands;
mod errors;
mod events;

pub use commands::*;
pub use errors::*;
pub use events::*;

/// Whether a wijk exists. Wijken are never removed, so a "yes" can never
/// become stale.
#[async_trait]
pub trait WijkDirectory: Send + Sync {
    async fn is_registered(&self, wijk_id: &WijkId) -> Result<bool, String>;
}

/// Whether a year is closed: a closed year takes no new funds.
#[async_trait]
pub trait YearRegister: Send + Sync {
    async fn is_closed(&self, year: Year) -> Result<bool, String>;
}

/// A register in which no year is closed yet.
pub struct NoYearClosed;

#[async_trait]
impl YearRegister for NoYearClosed {
    async fn is_closed(&self, _year: Year) -> Result<bool, String> {
        Ok(false)
    }
}

/// The event that introduced an expense id: a direct expense or a payment
/// on a commitment, with the fund it belongs to and its sequence there.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedExpense {
    pub fund_id: FundId,
    pub sequence: usize,
    pub event: FundEvent,
}

/// Finds the expense an id was used for, in any fund. Expense ids are unique
/// across funds; the store claims each one together with its event.
///
/// The fund keeps no expense of its own in its state, so its state (and its
/// snapshot) does not grow with its expenses. A lookup may see an expense
/// committed after the state it decides on was loaded. Deciding on it is
/// still safe: a decision that appends conflicts, because that expense took
/// the fund's next sequence, and the command is decided again; a decision
/// that appends nothing (already recorded, id taken, unknown or not
/// reversible) rests only on the expense's claim and event, which never
/// change once stored.
#[async_trait]
pub trait ExpenseRegister: Send + Sync {
    async fn recorded(&self, expense_id: &ExpenseId) -> Result<Option<RecordedExpense>, String>;
}

/// The outside knowledge a fund needs.
#[derive(Clone)]
pub struct FundServices {
    pub wijken: Arc<dyn WijkDirectory>,
    pub years: Arc<dyn YearRegister>,
    pub expenses: Arc<dyn ExpenseRegister>,
}

/// One wijk's money in one fund. Every field is the balance of one account
/// of the double entry in [`super::postings`], except `amount_allocated`,
/// which sums what the wijk ever received from the fund.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetLine {
    pub amount_allocated: Decimal,
    /// Net of transfers in and out.
    pub amount_transferred: Decimal,
    /// Promised to initiatives and not yet paid.
    pub amount_committed: Decimal,
    /// Paid, directly or against commitments, net of reversals and recoveries.
    pub amount_spent: Decimal,
    /// Owed back after a settlement below what was paid.
    pub amount_receivable: Decimal,
    pub amount_lapsed: Decimal,
    pub amount_carried_over: Decimal,
    /// The wijk's available money: what it can still promise or spend.
    pub amount_available: Decimal,
}

impl BudgetLine {
    /// What the wijk can still promise or spend: allocated − committed − spent
    /// (and less what lapsed, was carried over or is owed back).
    pub fn amount_remaining(&self) -> Decimal {
        self.amount_available
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitmentStatus {
    Open,
    Settled,
    Withdrawn,
    Cancelled,
}

impl CommitmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Settled => "settled",
            Self::Withdrawn => "withdrawn",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CommitmentState {
    details: CommitmentDetails,
    status: CommitmentStatus,
    paid: Decimal,
    /// The latest booking on this commitment (made, paid or settled): later
    /// bookings on it may not be dated before it, so as-of answers never see
    /// money paid or released before it was committed.
    #[serde(default)]
    last_booked_on: Option<NaiveDate>,
    /// The amount payments may reach: the commitment, or the settled amount.
    ceiling: Decimal,
    owed: Decimal,
}

impl CommitmentState {
    /// Committed money not yet paid.
    fn open_amount(&self) -> Decimal {
        if self.status == CommitmentStatus::Open || self.status == CommitmentStatus::Settled {
            (self.ceiling - self.paid).max(Decimal::ZERO)
        } else {
            Decimal::ZERO
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fund {
    terms: Option<FundTerms>,
    /// Money not yet allocated to any wijk (the `fund` account).
    amount_unallocated: Decimal,
    lines: BTreeMap<WijkId, BudgetLine>,
    /// The expenses reversed so far: the only per-expense fact a decision
    /// needs that the expense's own event cannot tell (see [`ExpenseRegister`]).
    /// Deliberately without a serde default: a snapshot from before this
    /// field (which held every expense) no longer reads, and cqrs-es then
    /// replays the stream instead.
    reversed: BTreeSet<ExpenseId>,
    commitments: BTreeMap<CommitmentId, CommitmentState>,
    closed: bool,
    carried_over_from: Option<FundId>,
    /// When the fund's money entered the ledger; nothing is allocated before.
    #[serde(default)]
    booked_on: Option<NaiveDate>,
    /// Per wijk, the changes of its available money by booking date, so a
    /// back-dated booking is only accepted if the money was there on that
    /// day and every day after it.
    #[serde(default)]
    available_by_date: BTreeMap<WijkId, BTreeMap<NaiveDate, Decimal>>,
}

fn euro(d: Decimal) -> String {
    format_euro(d)
}

/// A change of money with its sign, as a refusal quotes it: `+50000.00`.
fn signed_euro(d: Decimal) -> String {
    if d >= Decimal::ZERO {
        format!("+{}", euro(d))
    } else {
        euro(d)
    }
}

/// The dates behind a refusal for lack of money (see [`Fund::date_context`]).
#[derive(Debug, Default)]
struct DateContext {
    /// ` on DAY` or ` from DAY on`, after the amount the refusal quotes.
    on: String,
    /// The bookings that decide it, and the fix, after the refusal.
    dates: String,
}

impl Fund {
    pub fn terms(&self) -> Option<&FundTerms> {
        self.terms.as_ref()
    }

    /// The booking date of an allocation that names none: the day the
    /// fund's money entered the ledger (its decision's adoption date, or the
    /// first day of its year when the decision came before the year). Not
    /// today: an allocation entered late, or clamped to the year's last day,
    /// would make every earlier expense of the year overspend, and a retry
    /// on another day would be another command. `None` before the fund is
    /// established.
    pub fn default_allocation_date(&self) -> Option<NaiveDate> {
        let terms = self.terms.as_ref()?;
        Some(self.booked_on.unwrap_or_else(|| terms.booking_date()))
    }

    pub fn amount_unallocated(&self) -> Decimal {
        self.amount_unallocated
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn carried_over_from(&self) -> Option<&FundId> {
        self.carried_over_from.as_ref()
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

    /// Bookings that create or move money must fall inside the fund's year
    /// and, once the year is closed, are refused.
    fn check_open_booking(&self, terms: &FundTerms, booked_on: NaiveDate) -> Result<(), FundError> {
        if !terms.year.contains(booked_on) {
            return Err(FundError::OutsideFundYear { fund_id: terms.fund_id.clone(), year: terms.year, booked_on });
        }
        if self.closed {
            return Err(FundError::YearClosed { fund_id: terms.fund_id.clone(), year: terms.year, booked_on });
        }
        // A carry-over fund's money exists from the council's close decision
        // on, and any fund's from its own booking: nothing before that.
        let what = if self.carried_over_from.is_some() {
            "the close decision that carried this money over"
        } else {
            "the fund's booking"
        };
        Self::check_not_before(booked_on, what, self.booked_on)
    }

    /// Bookings on an existing commitment may also come after the fund's year,
    /// since open commitments are carried along; never before its start, and
    /// never inside a closed year.
    fn check_commitment_booking(&self, terms: &FundTerms, booked_on: NaiveDate) -> Result<(), FundError> {
        if booked_on < terms.year.first_day() {
            return Err(FundError::OutsideFundYear { fund_id: terms.fund_id.clone(), year: terms.year, booked_on });
        }
        if self.closed && booked_on <= terms.year.last_day() {
            return Err(FundError::YearClosedBookAfter {
                fund_id: terms.fund_id.clone(),
                year: terms.year,
                booked_on,
                from: terms.year.last_day() + chrono::Days::new(1),
            });
        }
        Ok(())
    }

    /// Whether money a commitment returns on `booked_on` (released or
    /// repaid) lapses instead of becoming available again: once the fund is
    /// closed, and also when it is booked after the fund's year. Money back
    /// in a year that has ended can never be spent, and the close, dated on
    /// the year's last day, would lapse it before it came back, so an as-of
    /// answer for that day would show negative money.
    fn lapses(&self, terms: &FundTerms, booked_on: NaiveDate) -> bool {
        self.closed || booked_on > terms.year.last_day()
    }

    /// The event of this fund that introduced `expense_id`, if any; an id
    /// used in another fund is refused outright.
    async fn recorded_expense(
        &self,
        services: &FundServices,
        terms: &FundTerms,
        expense_id: &ExpenseId,
    ) -> Result<Option<RecordedExpense>, FundError> {
        match services.expenses.recorded(expense_id).await.map_err(FundError::ExpenseRegisterUnavailable)? {
            Some(r) if r.fund_id != terms.fund_id => {
                Err(FundError::ExpenseIdUsedElsewhere { expense_id: expense_id.clone(), fund_id: r.fund_id })
            }
            found => Ok(found),
        }
    }

    async fn check_registered(&self, services: &FundServices, wijk_id: &WijkId) -> Result<(), FundError> {
        if self.lines.contains_key(wijk_id) {
            return Ok(());
        }
        let known = services.wijken.is_registered(wijk_id).await.map_err(FundError::DirectoryUnavailable)?;
        if known {
            Ok(())
        } else {
            Err(FundError::UnknownWijk(wijk_id.clone()))
        }
    }

    /// The least a wijk has available on `date` or any later day: what a
    /// booking dated `date` may take without any as-of answer going negative.
    fn available_from(&self, wijk_id: &WijkId, date: NaiveDate) -> Decimal {
        let Some(changes) = self.available_by_date.get(wijk_id) else { return Decimal::ZERO };
        let mut running: Decimal = changes.range(..=date).map(|(_, d)| *d).sum();
        let mut least = running;
        for (_, change) in changes.range((std::ops::Bound::Excluded(date), std::ops::Bound::Unbounded)) {
            running += *change;
            least = least.min(running);
        }
        least
    }

    /// Why a booking of `amount` dated `date` does not fit, in dates: the
    /// day judged and what it had, the later bookings that take the money
    /// below `amount`, and the day from which enough would be there. Empty
    /// when no other date would change the answer.
    fn date_context(&self, wijk_id: &WijkId, date: NaiveDate, amount: Decimal) -> DateContext {
        let Some(changes) = self.available_by_date.get(wijk_id) else { return DateContext::default() };
        let on_day: Decimal = changes.range(..=date).map(|(_, d)| *d).sum();
        let later = || changes.range((std::ops::Bound::Excluded(date), std::ops::Bound::Unbounded));
        // The first later day on which the money is at its lowest.
        let mut running = on_day;
        let mut lowest = (date, on_day);
        for (day, change) in later() {
            running += *change;
            if running < lowest.1 {
                lowest = (*day, running);
            }
        }
        // The first later day from which enough stays available.
        let enough_from =
            later().map(|(day, change)| (*day, *change)).find(|(day, _)| self.available_from(wijk_id, *day) >= amount);
        if lowest.0 == date && enough_from.is_none() {
            return DateContext::default();
        }
        let mut dates = String::new();
        if lowest.0 != date {
            let change = changes.get(&lowest.0).copied().unwrap_or_default();
            dates.push_str(&format!(
                "; it has {} on {date}, but the bookings dated {} ({}) leave {} on that day, and no day may go below zero",
                euro(on_day),
                lowest.0,
                signed_euro(change),
                euro(lowest.1)
            ));
        }
        if let Some((day, change)) = enough_from {
            dates.push_str(&format!(
                "; the bookings dated {day} ({}) make the difference: book it on or after {day}",
                signed_euro(change)
            ));
        }
        let on = if lowest.0 == date { format!(" on {date}") } else { format!(" from {date} on") };
        DateContext { on, dates }
    }

    fn track_available(&mut self, wijk_id: &WijkId, date: NaiveDate, change: Decimal) {
        if change != Decimal::ZERO {
            *self.available_by_date.entry(wijk_id.clone()).or_default().entry(date).or_default() += change;
        }
    }

    fn check_not_before(booked_on: NaiveDate, what: &'static str, earlier: Option<NaiveDate>) -> Result<(), FundError> {
        match earlier {
            Some(earlier) if booked_on < earlier => Err(FundError::BookedTooEarly { booked_on, what, earlier }),
            _ => Ok(()),
        }
    }

    fn check_available(
        &self,
        terms: &FundTerms,
        wijk_id: &WijkId,
        amount: Amount,
        booked_on: NaiveDate,
        what: &'static str,
    ) -> Result<(), FundError> {
        let available = self.available_from(wijk_id, booked_on);
        if amount.as_decimal() > available {
            let DateContext { on, dates } = self.date_context(wijk_id, booked_on, amount.as_decimal());
            return Err(FundError::NotAvailable {
                wijk_id: wijk_id.clone(),
                fund_id: terms.fund_id.clone(),
                requested: amount.to_string(),
                available: euro(available),
                what,
                on,
                dates,
            });
        }
        Ok(())
    }

    fn commitment(&self, terms: &FundTerms, id: &CommitmentId) -> Result<&CommitmentState, FundError> {
        self.commitments
            .get(id)
            .ok_or_else(|| FundError::UnknownCommitment { fund_id: terms.fund_id.clone(), commitment_id: id.clone() })
    }

    fn open_commitment(
        &self,
        terms: &FundTerms,
        id: &CommitmentId,
        what: &'static str,
    ) -> Result<&CommitmentState, FundError> {
        let c = self.commitment(terms, id)?;
        if c.status != CommitmentStatus::Open {
            return Err(FundError::CommitmentNotOpen { commitment_id: id.clone(), status: c.status.as_str(), what });
        }
        Ok(c)
    }

    async fn handle_command(&self, command: FundCommand, services: &FundServices) -> Result<Vec<FundEvent>, FundError> {
        match command {
            FundCommand::Establish(terms) => {
                return match &self.terms {
                    Some(existing) if *existing == terms && self.carried_over_from.is_none() => Ok(vec![]),
                    Some(existing) => Err(FundError::AlreadyEstablished(existing.fund_id.clone())),
                    None => {
                        if services.years.is_closed(terms.year).await.map_err(FundError::DirectoryUnavailable)? {
                            return Err(FundError::YearClosedForNewFunds(terms.year));
                        }
                        let booked_on = terms.booking_date();
                        Ok(vec![FundEvent::FundEstablished { terms, booked_on }])
                    }
                };
            }
            FundCommand::EstablishCarryOver { terms, from_fund, allocations } => {
                return match &self.terms {
                    Some(existing) if *existing == terms && self.carried_over_from.as_ref() == Some(&from_fund) => {
                        Ok(vec![])
                    }
                    Some(existing) => Err(FundError::AlreadyEstablished(existing.fund_id.clone())),
                    None => {
                        let allocated: Decimal = allocations.iter().map(|(_, a)| a.as_decimal()).sum();
                        if allocated != terms.amount.as_decimal() {
                            return Err(FundError::CarryOverMismatch {
                                allocated: euro(allocated),
                                amount: terms.amount.to_string(),
                            });
                        }
                        for (wijk_id, _) in &allocations {
                            self.check_registered(services, wijk_id).await?;
                        }
                        // The money exists once the council decided to carry
                        // it over: on the decision's date, or on 1 January if
                        // the decision came before the new year.
                        let decided_on = terms.decision.adopted_on;
                        if decided_on > terms.year.last_day() {
                            return Err(FundError::CarryOverDecisionTooLate {
                                fund_id: terms.fund_id.clone(),
                                year: terms.year,
                                decided_on,
                                last_day: terms.year.last_day(),
                            });
                        }
                        let booked_on = decided_on.max(terms.year.first_day());
                        Ok(vec![FundEvent::FundCarriedOver { terms, from_fund, booked_on, allocations }])
                    }
                };
            }
            _ => {}
        }
        let terms = self.established()?;
        let fund_id = terms.fund_id.clone();
        match command {
            FundCommand::Establish(_) | FundCommand::EstablishCarryOver { .. } => unreachable!("handled above"),
            FundCommand::Allocate { wijk_id, amount, reason, booked_on } => {
                self.check_open_booking(terms, booked_on)?;
                self.check_registered(services, &wijk_id).await?;
                if amount.as_decimal() > self.amount_unallocated {
                    return Err(FundError::FundExhausted {
                        fund_id,
                        requested: amount.to_string(),
                        unallocated: euro(self.amount_unallocated),
                    });
                }
                Ok(vec![FundEvent::BudgetAllocated { wijk_id, amount, reason, booked_on }])
            }
            FundCommand::RecordExpense(details) => {
                if let Some(existing) = self.recorded_expense(services, terms, &details.expense_id).await? {
                    let same = matches!(&existing.event, FundEvent::ExpenseRecorded(d) if *d == details);
                    return if same { Ok(vec![]) } else { Err(FundError::ExpenseIdTaken(details.expense_id)) };
                }
                self.check_open_booking(terms, details.booked_on)?;
                self.check_registered(services, &details.wijk_id).await?;
                let remaining = self.available_from(&details.wijk_id, details.booked_on);
                if details.amount.as_decimal() > remaining {
                    let DateContext { on, dates } =
                        self.date_context(&details.wijk_id, details.booked_on, details.amount.as_decimal());
                    return Err(FundError::Overspend {
                        wijk_id: details.wijk_id,
                        fund_id,
                        requested: details.amount.to_string(),
                        remaining: euro(remaining),
                        on,
                        dates,
                    });
                }
                Ok(vec![FundEvent::ExpenseRecorded(details)])
            }
            FundCommand::ReverseExpense { expense_id, reason, booked_on, requested_on, post_closing } => {
                let original = match self.recorded_expense(services, terms, &expense_id).await {
                    Ok(Some(original)) => original,
                    Ok(None) | Err(FundError::ExpenseIdUsedElsewhere { .. }) => {
                        return Err(FundError::UnknownExpense { fund_id, expense_id })
                    }
                    Err(other) => return Err(other),
                };
                if self.reversed.contains(&expense_id) {
                    return Err(FundError::AlreadyReversed(expense_id));
                }
                let FundEvent::ExpenseRecorded(details) = original.event else {
                    return Err(FundError::PaymentNotReversible(expense_id));
                };
                if self.closed != post_closing {
                    return Err(if self.closed {
                        FundError::MarkPostClosing { fund_id }
                    } else {
                        FundError::NotPostClosing { fund_id, year: terms.year }
                    });
                }
                let wijk_id = details.wijk_id;
                let amount = details.amount;
                let reverses_sequence = original.sequence;
                if self.closed {
                    // A post-closing correction is booked after the closed
                    // year, so every as-of answer inside that year stays as
                    // the close left it.
                    let after_year = terms.year.last_day() + chrono::Days::new(1);
                    let booked_on = booked_on.unwrap_or(requested_on.max(after_year));
                    self.check_commitment_booking(terms, booked_on)?;
                    return Ok(vec![FundEvent::ExpenseReversedAfterClose {
                        expense_id,
                        wijk_id,
                        amount,
                        reason,
                        booked_on,
                        reverses_sequence,
                    }]);
                }
                // Giving money back never makes an as-of answer negative, but
                // undoing an expense before it was booked would.
                let booked_on = booked_on.unwrap_or(requested_on.clamp(details.booked_on, terms.year.last_day()));
                self.check_open_booking(terms, booked_on)?;
                Self::check_not_before(booked_on, "the expense's own booking", Some(details.booked_on))?;
                Ok(vec![FundEvent::ExpenseReversed {
                    expense_id,
                    wijk_id,
                    amount,
                    reason,
                    booked_on,
                    reverses_sequence,
                }])
            }
            FundCommand::Commit(details) => {
                if let Some(existing) = self.commitments.get(&details.commitment_id) {
                    return if existing.details == details {
                        Ok(vec![])
                    } else {
                        Err(FundError::CommitmentIdTaken(details.commitment_id))
                    };
                }
                self.check_open_booking(terms, details.booked_on)?;
                self.check_registered(services, &details.wijk_id).await?;
                self.check_available(terms, &details.wijk_id, details.amount, details.booked_on, "committed")?;
                Ok(vec![FundEvent::CommitmentMade(details)])
            }
            FundCommand::Pay { commitment_id, expense_id, amount, booked_on, reference } => {
                let c = self.commitment(terms, &commitment_id)?;
                if let Some(existing) = self.recorded_expense(services, terms, &expense_id).await? {
                    let same = matches!(&existing.event,
                        FundEvent::CommitmentPaid { commitment_id: c, amount: a, booked_on: b, reference: r, .. }
                            if *c == commitment_id && *a == amount && *b == booked_on && *r == reference);
                    return if same { Ok(vec![]) } else { Err(FundError::ExpenseIdTaken(expense_id)) };
                }
                if !matches!(c.status, CommitmentStatus::Open | CommitmentStatus::Settled) {
                    return Err(FundError::CommitmentNotOpen {
                        commitment_id,
                        status: c.status.as_str(),
                        what: "paid",
                    });
                }
                self.check_commitment_booking(terms, booked_on)?;
                Self::check_not_before(booked_on, "the commitment's last booking", c.last_booked_on)?;
                let left = c.open_amount();
                if amount.as_decimal() > left {
                    return Err(FundError::OverPayment {
                        commitment_id,
                        requested: amount.to_string(),
                        left: euro(left),
                    });
                }
                let wijk_id = c.details.wijk_id.clone();
                Ok(vec![FundEvent::CommitmentPaid { commitment_id, expense_id, wijk_id, amount, booked_on, reference }])
            }
            FundCommand::Settle { commitment_id, settled_amount, decision_reference, booked_on } => {
                let c = self.open_commitment(terms, &commitment_id, "settled")?;
                let amount = c.details.amount.as_decimal();
                if settled_amount < Decimal::ZERO || settled_amount > amount || settled_amount.normalize().scale() > 2 {
                    return Err(FundError::BadSettlement { settled: settled_amount.to_string(), amount: euro(amount) });
                }
                self.check_commitment_booking(terms, booked_on)?;
                Self::check_not_before(booked_on, "the commitment's last booking", c.last_booked_on)?;
                let mut settled_amount = settled_amount;
                settled_amount.rescale(2);
                // Unpaid commitment above the settled amount is released; what
                // was paid above it is claimed back.
                let released = amount - settled_amount.max(c.paid);
                let recovery_claimed = (c.paid - settled_amount).max(Decimal::ZERO);
                Ok(vec![FundEvent::CommitmentSettled {
                    commitment_id,
                    wijk_id: c.details.wijk_id.clone(),
                    settled_amount,
                    released,
                    recovery_claimed,
                    decision_reference,
                    booked_on,
                    after_close: self.lapses(terms, booked_on),
                }])
            }
            FundCommand::Repay { commitment_id, amount, booked_on, reference } => {
                let c = self.commitment(terms, &commitment_id)?;
                if amount.as_decimal() > c.owed {
                    return Err(FundError::OverRepayment {
                        commitment_id,
                        requested: amount.to_string(),
                        owed: euro(c.owed),
                    });
                }
                self.check_commitment_booking(terms, booked_on)?;
                Self::check_not_before(booked_on, "the commitment's last booking", c.last_booked_on)?;
                Ok(vec![FundEvent::RepaymentReceived {
                    commitment_id,
                    wijk_id: c.details.wijk_id.clone(),
                    amount,
                    booked_on,
                    reference,
                    after_close: self.lapses(terms, booked_on),
                }])
            }
            FundCommand::Withdraw { commitment_id, reason, cancelled, booked_on } => {
                let what = if cancelled { "cancelled" } else { "withdrawn" };
                let c = self.commitment(terms, &commitment_id)?;
                // A settled commitment may still hold an unpaid rest; that too
                // can be withdrawn, releasing it.
                let releasable = match c.status {
                    CommitmentStatus::Open => true,
                    CommitmentStatus::Settled => c.open_amount() > Decimal::ZERO,
                    CommitmentStatus::Withdrawn | CommitmentStatus::Cancelled => false,
                };
                if !releasable {
                    return Err(FundError::CommitmentNotOpen { commitment_id, status: c.status.as_str(), what });
                }
                self.check_commitment_booking(terms, booked_on)?;
                Self::check_not_before(booked_on, "the commitment's last booking", c.last_booked_on)?;
                Ok(vec![FundEvent::CommitmentWithdrawn {
                    commitment_id,
                    wijk_id: c.details.wijk_id.clone(),
                    released: c.open_amount(),
                    reason,
                    cancelled,
                    booked_on,
                    after_close: self.lapses(terms, booked_on),
                }])
            }
            FundCommand::Transfer { from_wijk, to_wijk, amount, decision_reference, reason, booked_on } => {
                if from_wijk == to_wijk {
                    return Err(FundError::TransferToSelf);
                }
                self.check_open_booking(terms, booked_on)?;
                if !self.lines.contains_key(&from_wijk) {
                    return Err(FundError::NotInFund(from_wijk));
                }
                self.check_registered(services, &to_wijk).await?;
                self.check_available(terms, &from_wijk, amount, booked_on, "transferred")?;
                Ok(vec![FundEvent::BudgetTransferred {
                    from_wijk,
                    to_wijk,
                    amount,
                    decision_reference,
                    reason,
                    booked_on,
                }])
            }
            FundCommand::Close(closing) => {
                if self.closed {
                    return Err(FundError::AlreadyClosed(fund_id));
                }
                if !closing.carry_over.is_empty() && closing.carry_over_fund.is_none() {
                    return Err(FundError::CarryOverNeedsFund);
                }
                for wijk in &closing.carry_over {
                    if !self.lines.contains_key(wijk) {
                        return Err(FundError::NotInFund(wijk.clone()));
                    }
                }
                let lines: Vec<CloseLine> = self
                    .lines
                    .iter()
                    .map(|(wijk_id, line)| {
                        let carry = closing.carry_over.contains(wijk_id);
                        CloseLine {
                            wijk_id: wijk_id.clone(),
                            lapsed: if carry { Decimal::ZERO } else { line.amount_available },
                            carried_over: if carry { line.amount_available } else { Decimal::ZERO },
                            committed_open: line.amount_committed,
                        }
                    })
                    .collect();
                let lines: Vec<CloseLine> = lines;
                let carries = lines.iter().any(|l| l.carried_over > Decimal::ZERO);
                Ok(vec![FundEvent::FundClosed {
                    decision_reference: closing.decision_reference,
                    booked_on: terms.year.last_day(),
                    lines,
                    unallocated_lapsed: self.amount_unallocated,
                    // A close that carries nothing names no carry-over fund.
                    carry_over_fund: closing.carry_over_fund.filter(|_| carries),
                }])
            }
        }
    }
}
