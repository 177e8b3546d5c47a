//! How events change a fund: the cqrs-es `Aggregate` implementation, whose
//! `apply` is the one place a `Fund`'s state follows from its events.
//!
//! Separate from `mod.rs`, which keeps the state and the decisions: `handle`
//! here only hands the command to those decisions and writes the events they
//! return, so reading what a fund decides and reading what an event does to
//! it are two different files.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;

use crate::domain::postings::{postings, AccountKind};

use super::{BudgetLine, CommitmentState, CommitmentStatus, Fund, FundCommand, FundError, FundEvent, FundServices};

impl BudgetLine {
    /// Money a settlement or withdrawal releases, or a repayment brings
    /// back: after the fund's close it lapses, before it the wijk can spend
    /// it again. The postings' `returned_to` books it to the same account.
    fn returned(&mut self, amount: Decimal, after_close: bool) {
        if after_close {
            self.amount_lapsed += amount;
        } else {
            self.amount_available += amount;
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
        let booked_on = event.booked_on();
        let fund_id = match &event {
            FundEvent::FundEstablished { terms, .. } | FundEvent::FundCarriedOver { terms, .. } => {
                Some(terms.fund_id.clone())
            }
            _ => self.terms.as_ref().map(|t| t.fund_id.clone()),
        };
        // The wijk_budget postings are exactly the changes of available money.
        if let Some(fund_id) = fund_id {
            for posting in postings(&fund_id, &event) {
                if let (AccountKind::WijkBudget, Some(wijk_id)) = (posting.account.kind, &posting.account.wijk_id) {
                    self.track_available(wijk_id, booked_on, posting.amount);
                }
            }
        }
        match event {
            FundEvent::FundEstablished { terms, booked_on } => {
                self.amount_unallocated = terms.amount.as_decimal();
                self.terms = Some(terms);
                self.booked_on = Some(booked_on);
            }
            FundEvent::FundCarriedOver { terms, from_fund, allocations, booked_on } => {
                self.amount_unallocated = terms.amount.as_decimal();
                for (wijk_id, amount) in allocations {
                    self.amount_unallocated -= amount.as_decimal();
                    let line = self.lines.entry(wijk_id).or_default();
                    line.amount_allocated += amount.as_decimal();
                    line.amount_available += amount.as_decimal();
                }
                self.terms = Some(terms);
                self.carried_over_from = Some(from_fund);
                self.booked_on = Some(booked_on);
            }
            FundEvent::BudgetAllocated { wijk_id, amount, .. } => {
                self.amount_unallocated -= amount.as_decimal();
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_allocated += amount.as_decimal();
                line.amount_available += amount.as_decimal();
            }
            FundEvent::ExpenseRecorded(details) => {
                let line = self.lines.entry(details.wijk_id.clone()).or_default();
                line.amount_spent += details.amount.as_decimal();
                line.amount_available -= details.amount.as_decimal();
            }
            FundEvent::ExpenseReversed { expense_id, wijk_id, amount, .. } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_spent -= amount.as_decimal();
                line.amount_available += amount.as_decimal();
                self.reversed.insert(expense_id);
            }
            FundEvent::ExpenseReversedAfterClose { expense_id, wijk_id, amount, .. } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_spent -= amount.as_decimal();
                line.amount_lapsed += amount.as_decimal();
                self.reversed.insert(expense_id);
            }
            FundEvent::CommitmentMade(details) => {
                let amount = details.amount.as_decimal();
                let line = self.lines.entry(details.wijk_id.clone()).or_default();
                line.amount_available -= amount;
                line.amount_committed += amount;
                self.commitments.insert(
                    details.commitment_id.clone(),
                    CommitmentState {
                        last_booked_on: Some(details.booked_on),
                        details,
                        status: CommitmentStatus::Open,
                        paid: Decimal::ZERO,
                        ceiling: amount,
                        owed: Decimal::ZERO,
                    },
                );
            }
            FundEvent::CommitmentPaid { commitment_id, wijk_id, amount, booked_on, .. } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_committed -= amount.as_decimal();
                line.amount_spent += amount.as_decimal();
                if let Some(c) = self.commitments.get_mut(&commitment_id) {
                    c.paid += amount.as_decimal();
                    c.last_booked_on = Some(booked_on);
                }
            }
            FundEvent::CommitmentSettled {
                commitment_id,
                wijk_id,
                settled_amount,
                released,
                recovery_claimed,
                after_close,
                ..
            } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_committed -= released;
                line.returned(released, after_close);
                line.amount_spent -= recovery_claimed;
                line.amount_receivable += recovery_claimed;
                if let Some(c) = self.commitments.get_mut(&commitment_id) {
                    c.last_booked_on = Some(booked_on);
                    c.status = CommitmentStatus::Settled;
                    c.ceiling = settled_amount;
                    c.owed += recovery_claimed;
                }
            }
            FundEvent::RepaymentReceived { commitment_id, wijk_id, amount, after_close, .. } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_receivable -= amount.as_decimal();
                line.returned(amount.as_decimal(), after_close);
                if let Some(c) = self.commitments.get_mut(&commitment_id) {
                    c.last_booked_on = Some(booked_on);
                    c.owed -= amount.as_decimal();
                }
            }
            FundEvent::CommitmentWithdrawn { commitment_id, wijk_id, released, cancelled, after_close, .. } => {
                let line = self.lines.entry(wijk_id).or_default();
                line.amount_committed -= released;
                line.returned(released, after_close);
                if let Some(c) = self.commitments.get_mut(&commitment_id) {
                    c.last_booked_on = Some(booked_on);
                    c.status = if cancelled { CommitmentStatus::Cancelled } else { CommitmentStatus::Withdrawn };
                }
            }
            FundEvent::BudgetTransferred { from_wijk, to_wijk, amount, .. } => {
                let from = self.lines.entry(from_wijk).or_default();
                from.amount_transferred -= amount.as_decimal();
                from.amount_available -= amount.as_decimal();
                let to = self.lines.entry(to_wijk).or_default();
                to.amount_transferred += amount.as_decimal();
                to.amount_available += amount.as_decimal();
            }
            FundEvent::FundClosed { lines, unallocated_lapsed, .. } => {
                for close in lines {
                    let line = self.lines.entry(close.wijk_id).or_default();
                    line.amount_available -= close.lapsed + close.carried_over;
                    line.amount_lapsed += close.lapsed;
                    line.amount_carried_over += close.carried_over;
                }
                self.amount_unallocated -= unallocated_lapsed;
                self.closed = true;
            }
        }
        debug_assert!(self.amount_unallocated >= Decimal::ZERO, "a fund handed out more than its amount");
        debug_assert!(
            self.lines.values().all(|l| l.amount_available >= Decimal::ZERO
                && l.amount_committed >= Decimal::ZERO
                && l.amount_receivable >= Decimal::ZERO),
            "a wijk's available, committed or receivable money went negative"
        );
    }
}
