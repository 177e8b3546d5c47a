//! Every figure as it stood on its day: as-of answers use only what was
//! booked on or before the asked day, on SQLite and PostgreSQL.

mod common;

use chrono::NaiveDate;
use common::{date, fund_id, meta, text, wijk, Harness, BACKENDS};
use rust_decimal::Decimal;
use wijkbudget::domain::fund::{CommitmentDetails, Decision, FundCommand, FundKind, FundTerms};
use wijkbudget::domain::ids::{CommitmentId, ExpenseId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::ledger::Ledger;
use wijkbudget::projections::reports;

const FUND: &str = "begroting-2022";

fn euro(cents: i64) -> Amount {
    Amount::try_from(Decimal::new(cents, 2)).unwrap()
}

fn commitment_id(id: &str) -> CommitmentId {
    CommitmentId::parse(id).unwrap()
}

fn commit(id: &str, on: NaiveDate) -> FundCommand {
    FundCommand::Commit(CommitmentDetails {
        commitment_id: commitment_id(id),
        wijk_id: wijk("oost-1223"),
        amount: euro(100_000),
        initiative: text("Buurtmoestuin"),
        applicant: text("Tuingroep"),
        theme: text("groen"),
        decision: Decision { reference: text(&format!("Beschikking {id}")), adopted_on: on },
        grant_rule: text("Subsidieregeling wijkbudgetten"),
        booked_on: on,
    })
}

/// A wijk with 10,000.00 from the 2022 begroting.
async fn funded(ledger: &Ledger) {
    ledger
        .register_wijk(WijkCommand::Register { wijk_id: wijk("oost-1223"), name: text("Oost 1223") }, &meta())
        .await
        .unwrap();
    let terms = FundTerms {
        fund_id: fund_id(FUND),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Begroting,
        name: text("Wijkbudgetten 2022"),
        amount: euro(1_000_000),
        decision: Decision { reference: text("Begroting 2022"), adopted_on: date("2021-11-11") },
        purpose: text("Initiatieven van inwoners"),
    };
    ledger.fund(&fund_id(FUND), FundCommand::Establish(terms), &meta()).await.unwrap();
    let allocate = FundCommand::Allocate {
        wijk_id: wijk("oost-1223"),
        amount: euro(1_000_000),
        reason: text("verdeling"),
        booked_on: date("2022-01-03"),
    };
    ledger.fund(&fund_id(FUND), allocate, &meta()).await.unwrap();
}

#[tokio::test]
async fn the_stale_commitments_of_a_past_day_are_those_open_and_unpaid_on_that_day() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        funded(&h.ledger).await;
        let fund = fund_id(FUND);
        let run = |command: FundCommand| {
            let ledger = h.ledger.clone();
            let fund = fund.clone();
            async move { ledger.fund(&fund, command, &meta()).await.unwrap() }
        };
        // Four commitments decided in March; each is later paid, settled,
        // withdrawn or left alone. One more is booked only in August.
        for id in ["PAID", "SETTLED", "WITHDRAWN", "WAITING"] {
            run(commit(id, date("2022-03-01"))).await;
        }
        run(commit("LATE", date("2022-08-01"))).await;
        run(FundCommand::Pay {
            commitment_id: commitment_id("PAID"),
            expense_id: ExpenseId::parse("PAID-1").unwrap(),
            amount: euro(50_000),
            booked_on: date("2022-10-01"),
            reference: text("betaalopdracht"),
        })
        .await;
        // Settled at the full amount with nothing paid: an event without postings.
        run(FundCommand::Settle {
            commitment_id: commitment_id("SETTLED"),
            settled_amount: Decimal::new(100_000, 2),
            decision_reference: text("Vaststelling"),
            booked_on: date("2022-10-01"),
        })
        .await;
        run(FundCommand::Withdraw {
            commitment_id: commitment_id("WITHDRAWN"),
            reason: text("gaat niet door"),
            cancelled: false,
            booked_on: date("2022-10-01"),
        })
        .await;
        h.catch_up().await;
        let db = &h.store.db;

        // On 1 July 2022 all four March commitments were open and unpaid,
        // and older than 13 weeks; LATE did not exist yet.
        let stale = reports::stale_commitments(db, date("2022-07-01")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["PAID", "SETTLED", "WAITING", "WITHDRAWN"], "{backend:?}: {stale:?}");
        for c in &stale {
            assert_eq!(c.status, "open", "{backend:?}: as it stood on the day: {c:?}");
            assert_eq!(c.amount_paid.to_string(), "0.00", "{backend:?}: {c:?}");
            assert_eq!(c.amount_settled, None, "{backend:?}: {c:?}");
            assert_eq!(c.last_paid_on, None, "{backend:?}: {c:?}");
        }
        // By the end of the year only WAITING is left, and LATE (decided in
        // August) is not yet 13 weeks old on 1 October but is by December.
        let stale = reports::stale_commitments(db, date("2022-10-01")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["WAITING"], "{backend:?}: {stale:?}");
        let stale = reports::stale_commitments(db, date("2022-12-31")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["WAITING", "LATE"], "{backend:?}: {stale:?}");
        h.store.cleanup().await;
    }
}
