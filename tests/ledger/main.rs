//! The shared behavioural suite of the ledger: every test runs on SQLite and
//! on PostgreSQL through the same command path and projector.

#[path = "../common/mod.rs"]
mod common;

mod audit_trail;
mod commands;
mod concurrency;
mod projection;
mod rebuild;
mod recovery;
mod snapshots;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::{date, fund_id, meta, read_models, text, wijk, Backend, Harness, TestStore, BACKENDS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;
use tokio::sync::Notify;
use wijkbudget::domain::fund::{Decision, ExpenseDetails, FundCommand, FundError, FundKind, FundTerms};
use wijkbudget::domain::ids::{ExpenseId, Year};
use wijkbudget::domain::money::{euro_from_cents, Amount};
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::ledger::{Ledger, LedgerError, Outcome};
use wijkbudget::on_db;
use wijkbudget::projections::queries::{self, Period};
use wijkbudget::projections::{self as projections, Projector};
use wijkbudget::store::repository::LedgerRepository;
use wijkbudget::store::Db;

fn eur(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

async fn register(ledger: &Ledger, id: &str, name: &str) {
    ledger.register_wijk(WijkCommand::Register { wijk_id: wijk(id), name: text(name) }, &meta()).await.unwrap();
}

fn terms(id: &str, amount: &str) -> FundTerms {
    FundTerms {
        fund_id: fund_id(id),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Amendement,
        name: text("Amendement A21-182"),
        amount: eur(amount),
        decision: Decision { reference: text("A21-182"), adopted_on: date("2021-11-11") },
        purpose: text("Sociale cohesie"),
    }
}

fn allocate(wijk_id: &str, amount: &str) -> FundCommand {
    FundCommand::Allocate {
        wijk_id: wijk(wijk_id),
        amount: eur(amount),
        reason: text("raadsbesluit"),
        booked_on: date("2022-02-01"),
    }
}

fn expense(id: &str, wijk_id: &str, amount: &str) -> FundCommand {
    FundCommand::RecordExpense(ExpenseDetails {
        expense_id: ExpenseId::parse(id).unwrap(),
        wijk_id: wijk(wijk_id),
        amount: eur(amount),
        initiative: text("Herinrichting Wegaplein"),
        theme: text("spelen"),
        booked_on: date("2022-06-01"),
        reference: text("factuur 42"),
    })
}

// ---------------------------------------------------------------------------
// Shared helpers of the concurrency, recovery, projection, rebuild, snapshot
// and audit-trail modules.
// ---------------------------------------------------------------------------

fn cents_amount(cents: i64) -> Amount {
    Amount::try_from(rust_decimal::Decimal::new(cents, 2)).unwrap()
}

fn expense_on(id: &str, wijk_id: &str, amount: Amount, booked_on: NaiveDate) -> FundCommand {
    FundCommand::RecordExpense(ExpenseDetails {
        expense_id: ExpenseId::parse(id).unwrap(),
        wijk_id: wijk(wijk_id),
        amount,
        initiative: text("Buurtfeest"),
        theme: text("sociale cohesie"),
        booked_on,
        reference: text(&format!("factuur {id}")),
    })
}

fn reverse(id: &str, requested_on: &str) -> FundCommand {
    FundCommand::ReverseExpense {
        booked_on: None,
        expense_id: ExpenseId::parse(id).unwrap(),
        reason: text("dubbel geboekt"),
        requested_on: date(requested_on),
        post_closing: false,
    }
}

/// A projector on its own pool, as a second service instance (or a restarted one) would have.
async fn other_instance(store: &TestStore) -> (Db, Projector) {
    let db = Db::connect(&store.url).await.unwrap();
    let projector = Projector::new(db.clone(), Arc::new(Notify::new()));
    (db, projector)
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap())
}

async fn log_head(db: &Db) -> i64 {
    wijkbudget::store::repository::head(db).await.unwrap().0
}

/// The projector is at the head, and every event of the log is in the read
/// models exactly once: two balanced postings per fund event, one row per
/// wijk and per expense, one reversal mark per reversal.
async fn assert_projected_exactly_once(db: &Db, label: &str) {
    let (checkpoint, head) = projections::status(db).await.unwrap();
    assert_eq!(checkpoint, head, "{label}: the checkpoint is the head of the log");
    let fund_events = scalar(db, "SELECT COUNT(*) FROM events WHERE aggregate_type = 'fund'").await;
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM rm_postings").await,
        2 * fund_events,
        "{label}: two postings per fund event"
    );
    let not_twice = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT e.position FROM events e LEFT JOIN rm_postings p ON p.position = e.position \
         WHERE e.aggregate_type = 'fund' GROUP BY e.position HAVING COUNT(p.position) <> 2) x",
    )
    .await;
    assert_eq!(not_twice, 0, "{label}: every fund event has exactly its own two postings");
    let unbalanced = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT position FROM rm_postings GROUP BY position HAVING SUM(amount_cents) <> 0) x",
    )
    .await;
    assert_eq!(unbalanced, 0, "{label}: every event's postings balance");
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM rm_wijken").await,
        scalar(db, "SELECT COUNT(*) FROM events WHERE aggregate_type = 'wijk'").await,
        "{label}: one row per registered wijk"
    );
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM rm_expenses").await,
        scalar(db, "SELECT COUNT(*) FROM events WHERE event_type = 'ExpenseRecorded'").await,
        "{label}: one row per recorded expense"
    );
    assert_eq!(
        scalar(db, "SELECT COUNT(*) FROM rm_expenses WHERE reversed_position IS NOT NULL").await,
        scalar(db, "SELECT COUNT(*) FROM events WHERE event_type = 'ExpenseReversed'").await,
        "{label}: one reversal mark per reversal"
    );
}

/// The budget lines and the fund's unallocated money in the read models are
/// what folding the fund's own stream gives.
async fn assert_read_models_match_the_log(ledger: &Ledger, db: &Db, funds: &[&str], label: &str) {
    for fund in funds {
        let folded = ledger.load_fund(&fund_id(fund)).await.unwrap();
        let expected: BTreeMap<String, (rust_decimal::Decimal, rust_decimal::Decimal)> =
            folded.lines().map(|(w, l)| (w.to_string(), (l.amount_allocated, l.amount_spent))).collect();
        let projected: BTreeMap<String, (rust_decimal::Decimal, rust_decimal::Decimal)> = on_db!(db, pool => {
            sqlx::query(
                "SELECT wijk_id, CAST(SUM(CASE WHEN kind = 'allocated' THEN cents ELSE 0 END) AS BIGINT) AS a, \
                 CAST(SUM(CASE WHEN kind = 'spent' THEN cents ELSE 0 END) AS BIGINT) AS s \
                 FROM rm_balances WHERE fund_id = $1 GROUP BY wijk_id",
            )
            .bind(*fund)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let a: i64 = r.get("a");
                let s: i64 = r.get("s");
                (r.get::<String, _>("wijk_id"), (euro_from_cents(a), euro_from_cents(s)))
            })
            .collect()
        });
        assert_eq!(projected, expected, "{label}: budget lines of {fund} equal the fold of its stream");
        match queries::fund_detail(db, fund, 0, 1000).await.unwrap() {
            Some(detail) => {
                assert!(folded.terms().is_some(), "{label}: {fund} is in the read model but not established");
                assert_eq!(
                    euro_from_cents(detail.fund.amount_unallocated.0),
                    folded.amount_unallocated(),
                    "{label}: unallocated of {fund}"
                );
            }
            None => assert!(folded.terms().is_none(), "{label}: established {fund} is missing from the read model"),
        }
    }
}

/// One command of a scripted run.
#[derive(Debug, Clone)]
enum Cmd {
    Register(&'static str),
    Fund(&'static str, FundCommand),
}

const WIJKEN: [&str; 3] = ["oost-1223", "west-7", "noord-3"];
const FUNDS: [&str; 2] = ["A21-182", "begroting-2022"];

async fn run(ledger: &Ledger, cmd: &Cmd) -> Result<Outcome, LedgerError> {
    match cmd {
        Cmd::Register(id) => {
            ledger.register_wijk(WijkCommand::Register { wijk_id: wijk(id), name: text(id) }, &meta()).await
        }
        Cmd::Fund(id, command) => ledger.fund(&fund_id(id), command.clone(), &meta()).await,
    }
}

/// What a command's result was, stable across stores (no positions).
fn kind_of(result: &Result<Outcome, LedgerError>) -> String {
    match result {
        Ok(Outcome::Recorded { first_position, last_position }) => {
            format!("recorded {first_position}..={last_position}")
        }
        Ok(Outcome::Unchanged) => "unchanged".into(),
        Err(err) => format!("refused: {err}"),
    }
}

/// The variant of a command's result, for tallies: `Recorded`, `Overspend`, ...
fn outcome_name(result: &Result<Outcome, LedgerError>) -> String {
    let debug = match result {
        Ok(outcome) => format!("{outcome:?}"),
        Err(LedgerError::Fund(err)) => format!("{err:?}"),
        Err(LedgerError::Refused(err)) => format!("{err:?}"),
        Err(err) => format!("{err:?}"),
    };
    debug.split([' ', '(', '{']).next().unwrap().to_string()
}

/// A seeded mix of every command, including refusals: overspends,
/// exhausted funds, unknown and reused expense ids, double reversals, a
/// wijk that is never registered and bookings outside the fund's year.
/// Each fund gets well under 100 events (see the snapshot tests in `snapshots.rs`).
fn random_script(seed: u64, len: usize) -> Vec<Cmd> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut script: Vec<Cmd> = WIJKEN.iter().map(|w| Cmd::Register(w)).collect();
    script.push(Cmd::Fund(FUNDS[0], FundCommand::Establish(terms(FUNDS[0], "5000"))));
    let mut begroting = terms(FUNDS[1], "3000");
    begroting.kind = FundKind::Begroting;
    begroting.name = text("Wijkbudget 2022");
    script.push(Cmd::Fund(FUNDS[1], FundCommand::Establish(begroting)));
    let mut expense_ids = 0usize;
    for _ in 0..len {
        let fund = FUNDS[rng.gen_range(0..FUNDS.len())];
        let wijk_id = if rng.gen_ratio(1, 20) { "zuid-9" } else { WIJKEN[rng.gen_range(0..WIJKEN.len())] };
        let roll = rng.gen_range(0..100);
        let command = if roll < 25 {
            FundCommand::Allocate {
                wijk_id: wijk(wijk_id),
                amount: cents_amount(rng.gen_range(1..=80_000)),
                reason: text("verdeling"),
                booked_on: date("2022-02-01"),
            }
        } else if roll < 70 {
            let id = if expense_ids > 0 && rng.gen_ratio(1, 8) {
                rng.gen_range(0..expense_ids)
            } else {
                expense_ids += 1;
                expense_ids - 1
            };
            let day = if rng.gen_ratio(1, 25) {
                date("2023-01-03")
            } else {
                date("2022-03-01") + chrono::Days::new(rng.gen_range(0..200))
            };
            expense_on(&format!("exp-{id}"), wijk_id, cents_amount(rng.gen_range(1..=40_000)), day)
        } else if roll < 92 {
            let id = rng.gen_range(0..expense_ids + 2);
            reverse(&format!("exp-{id}"), "2022-11-15")
        } else {
            let amount = if rng.gen_bool(0.5) { "5000" } else { "6000" };
            FundCommand::Establish(terms(fund, amount))
        };
        script.push(Cmd::Fund(fund, command));
    }
    script
}
