//! What the domain's given/when/then tests share: a wijk register that knows
//! oost-1223, centrum and zuid, and short constructors for parsed values.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::test::TestFramework;

use super::fund::{
    Decision, ExpenseDetails, Fund, FundCommand, FundEvent, FundKind, FundServices, FundTerms, NoYearClosed,
    WijkDirectory,
};
use super::ids::{ExpenseId, FundId, Text, WijkId, Year};
use super::money::Amount;

struct KnownWijken(HashSet<&'static str>);

#[async_trait]
impl WijkDirectory for KnownWijken {
    async fn is_registered(&self, wijk_id: &WijkId) -> Result<bool, String> {
        Ok(self.0.contains(wijk_id.as_str()))
    }
}

pub fn services() -> FundServices {
    FundServices {
        wijken: Arc::new(KnownWijken(["oost-1223", "centrum", "zuid"].into_iter().collect())),
        years: Arc::new(NoYearClosed),
    }
}

pub fn fund() -> TestFramework<Fund> {
    TestFramework::with(services())
}

pub fn eur(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

pub fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

pub fn wijk(s: &str) -> WijkId {
    WijkId::parse(s).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The amendment A21-182: EUR 50,000 for 2022.
pub fn a21_182() -> FundTerms {
    FundTerms {
        fund_id: FundId::parse("A21-182").unwrap(),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Amendement,
        name: text("Amendement A21-182: meer geld voor de buurt"),
        amount: eur("50000"),
        decision: Decision { reference: text("A21-182"), adopted_on: date("2021-11-11") },
        purpose: text("Versterken van sociale cohesie en verbinding in de wijken"),
    }
}

pub fn established() -> FundEvent {
    FundEvent::FundEstablished { terms: a21_182(), booked_on: date("2022-01-01") }
}

pub fn allocate(wijk_id: &str, amount: &str) -> FundCommand {
    FundCommand::Allocate {
        wijk_id: wijk(wijk_id),
        amount: eur(amount),
        reason: text("Raadsbesluit"),
        booked_on: date("2022-01-10"),
    }
}

pub fn allocated(wijk_id: &str, amount: &str) -> FundEvent {
    FundEvent::BudgetAllocated {
        wijk_id: wijk(wijk_id),
        amount: eur(amount),
        reason: text("Raadsbesluit"),
        booked_on: date("2022-01-10"),
    }
}

/// A direct expense of oost-1223 on the Wegaplein, without a commitment.
pub fn wegaplein(expense_id: &str, amount: &str) -> ExpenseDetails {
    ExpenseDetails {
        expense_id: ExpenseId::parse(expense_id).unwrap(),
        wijk_id: wijk("oost-1223"),
        amount: eur(amount),
        initiative: text("Herinrichting Wegaplein"),
        theme: text("spelen"),
        booked_on: date("2022-06-01"),
        reference: text("factuur 2022-0042"),
    }
}
