//! What the domain's given/when/then tests share: a wijk register that knows
//! oost-1223, centrum and zuid, and short constructors for parsed values.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::test::{AggregateTestExecutor, TestFramework};

use super::fund::{
    Decision, ExpenseDetails, ExpenseRegister, Fund, FundCommand, FundEvent, FundKind, FundServices, FundTerms,
    NoYearClosed, RecordedExpense, WijkDirectory,
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

/// The expense register as the store would answer it: the expenses of the
/// given events, plus any recorded in other funds.
#[derive(Default)]
struct GivenExpenses(HashMap<ExpenseId, RecordedExpense>);

#[async_trait]
impl ExpenseRegister for GivenExpenses {
    async fn recorded(&self, expense_id: &ExpenseId) -> Result<Option<RecordedExpense>, String> {
        Ok(self.0.get(expense_id).cloned())
    }
}

fn services(expenses: GivenExpenses) -> FundServices {
    FundServices {
        wijken: Arc::new(KnownWijken(["oost-1223", "centrum", "zuid"].into_iter().collect())),
        years: Arc::new(NoYearClosed),
        expenses: Arc::new(expenses),
    }
}

/// A given/when/then test of one fund whose services know what the store
/// would know: the expenses among the given events.
#[derive(Default)]
pub struct FundTest {
    elsewhere: GivenExpenses,
}

pub fn fund() -> FundTest {
    FundTest::default()
}

impl FundTest {
    /// An expense id already used in another fund.
    pub fn with_expense_in_other_fund(mut self, fund_id: &str, details: ExpenseDetails) -> Self {
        let recorded = RecordedExpense {
            fund_id: FundId::parse(fund_id).unwrap(),
            sequence: 2,
            event: FundEvent::ExpenseRecorded(details.clone()),
        };
        self.elsewhere.0.insert(details.expense_id, recorded);
        self
    }

    pub fn given_no_previous_events(self) -> AggregateTestExecutor<Fund> {
        TestFramework::with(services(self.elsewhere)).given_no_previous_events()
    }

    pub fn given(mut self, events: Vec<FundEvent>) -> AggregateTestExecutor<Fund> {
        let mut fund_id = a21_182().fund_id;
        for (index, event) in events.iter().enumerate() {
            let expense_id = match event {
                FundEvent::FundEstablished { terms, .. } | FundEvent::FundCarriedOver { terms, .. } => {
                    fund_id = terms.fund_id.clone();
                    continue;
                }
                FundEvent::ExpenseRecorded(details) => details.expense_id.clone(),
                FundEvent::CommitmentPaid { expense_id, .. } => expense_id.clone(),
                _ => continue,
            };
            let recorded = RecordedExpense { fund_id: fund_id.clone(), sequence: index + 1, event: event.clone() };
            self.elsewhere.0.insert(expense_id, recorded);
        }
        TestFramework::with(services(self.elsewhere)).given(events)
    }
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
