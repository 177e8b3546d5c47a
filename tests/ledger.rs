//! The shared behavioural suite of the ledger: every test runs on SQLite and
//! on PostgreSQL through the same command path and projector.

mod common;

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

#[tokio::test]
async fn an_amendment_is_allocated_spent_in_full_and_read_back_on_both_stores() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        let l = &h.ledger;
        register(l, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        l.fund(&a21, FundCommand::Establish(terms("A21-182", "50000")), &meta()).await.unwrap();
        l.fund(&a21, allocate("oost-1223", "50000"), &meta()).await.unwrap();
        let outcome = l.fund(&a21, expense("wegaplein", "oost-1223", "50000"), &meta()).await.unwrap();
        let Outcome::Recorded { last_position, .. } = outcome else { panic!("expected events") };
        assert_eq!(last_position, 4, "{backend:?}: positions are global and gap-free");

        h.projector.catch_up(|_| {}).await.unwrap();
        assert!(l.wait_for_projection(last_position, Duration::from_secs(1)).await);
        let summaries = queries::wijk_summaries(&h.store.db, Period { year: Some(2022), as_of: None }).await.unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].totals.amount_allocated.to_string(), "50000.00");
        assert_eq!(summaries[0].totals.amount_spent.to_string(), "50000.00");
        assert_eq!(summaries[0].totals.amount_remaining.to_string(), "0.00");

        let before_expense = Period { year: Some(2022), as_of: Some(date("2022-05-31")) };
        let then = queries::wijk_budget(&h.store.db, "oost-1223", before_expense).await.unwrap().unwrap();
        assert_eq!(then.totals.amount_remaining.to_string(), "50000.00", "{backend:?}: as-of uses booking dates");

        let detail = queries::fund_detail(&h.store.db, "A21-182", 0, 1000).await.unwrap().unwrap();
        assert_eq!(detail.expenses[0].initiative, "Herinrichting Wegaplein");
        assert_eq!(detail.fund.amount_remaining.to_string(), "0.00");

        let trail = queries::audit_trail(&h.store.db, "oost-1223", &Default::default(), 0, 10).await.unwrap();
        // The allocation posts once on the wijk, the expense twice (available and spent).
        assert_eq!(trail.rows.len(), 3);
        assert_eq!(trail.rows[2].balance.to_string(), "0.00");
        assert_eq!(trail.rows[2].account, "spent:oost-1223:A21-182");
        assert_eq!(trail.rows[2].decision_reference, "A21-182");
        h.store.cleanup().await;
    }
}

#[tokio::test]
async fn an_overspend_is_rejected_and_stores_nothing_on_both_stores() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        let l = &h.ledger;
        register(l, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        l.fund(&a21, FundCommand::Establish(terms("A21-182", "100")), &meta()).await.unwrap();
        l.fund(&a21, allocate("oost-1223", "100"), &meta()).await.unwrap();
        let before = wijkbudget::store::repository::head(&h.store.db).await.unwrap();
        let err = l.fund(&a21, expense("te-veel", "oost-1223", "100.01"), &meta()).await.unwrap_err();
        assert!(matches!(err, LedgerError::Fund(FundError::Overspend { .. })), "{backend:?}: {err}");
        assert_eq!(wijkbudget::store::repository::head(&h.store.db).await.unwrap(), before);
        h.store.cleanup().await;
    }
}

// ---------------------------------------------------------------------------
// Shared helpers of the concurrency, recovery and rebuild tests below.
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
/// Each fund gets well under 100 events (see the snapshot test below).
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

/// Half the commands go through a second `Ledger` on the same store, as a
/// second service instance would: within one instance commands on a fund
/// take turns, between instances only optimistic locking keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_expenses_that_together_exceed_the_budget_only_the_affordable_ones_succeed() {
    const EXPENSES: usize = 20;
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        register(&h.ledger, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        h.ledger.fund(&a21, FundCommand::Establish(terms("A21-182", "1000")), &meta()).await.unwrap();
        h.ledger.fund(&a21, allocate("oost-1223", "1000"), &meta()).await.unwrap();
        let other_instance = Ledger::new(LedgerRepository::new(h.store.db.clone()), h.projector.subscribe());

        let tasks: Vec<_> = (0..EXPENSES)
            .map(|i| {
                let ledger = if i % 2 == 0 { h.ledger.clone() } else { other_instance.clone() };
                let a21 = a21.clone();
                tokio::spawn(async move {
                    let id = format!("gelijktijdig-{i:02}");
                    let result = ledger.fund(&a21, expense(&id, "oost-1223", "100"), &meta()).await;
                    (id, result)
                })
            })
            .collect();
        let (mut succeeded, mut overspent, mut conflicted) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for task in tasks {
            let (id, result) = task.await.unwrap();
            match result {
                Ok(Outcome::Recorded { first_position, last_position }) => {
                    assert_eq!(first_position, last_position, "{backend:?}: one expense, one event");
                    succeeded.insert(id);
                }
                Err(LedgerError::Fund(FundError::Overspend { .. })) => {
                    overspent.insert(id);
                }
                Err(LedgerError::Conflict(_)) => {
                    conflicted.insert(id);
                }
                other => panic!("{backend:?}: {id}: unexpected {other:?}"),
            }
        }
        eprintln!(
            "{backend:?}: {} succeeded, {} overspent, {} lost every race",
            succeeded.len(),
            overspent.len(),
            conflicted.len()
        );
        assert!(succeeded.len() <= 10, "{backend:?}: never more than the budget allows");
        if conflicted.is_empty() {
            assert_eq!(succeeded.len(), 10, "{backend:?}: exactly the affordable expenses succeed");
        }
        if !overspent.is_empty() {
            // An overspend is only decided on a state where the budget is used up.
            assert_eq!(succeeded.len(), 10, "{backend:?}: an expense was refused while money was left");
        }

        h.projector.catch_up(|_| {}).await.unwrap();
        let spent_cents = 10_000 * succeeded.len() as i64;
        let line = h.ledger.load_fund(&a21).await.unwrap().line(&wijk("oost-1223"));
        assert_eq!(line.amount_spent, euro_from_cents(spent_cents), "{backend:?}: the stream has every success once");
        let detail = queries::fund_detail(&h.store.db, "A21-182", 0, 1000).await.unwrap().unwrap();
        assert_eq!(detail.fund.amount_spent.0, spent_cents, "{backend:?}: the read model has every success once");
        assert_eq!(detail.allocations[0].totals.amount_remaining.0, 100_000 - spent_cents);

        // Exactly the successful expense ids were stored, each once.
        let stored: BTreeSet<String> = detail.expenses.iter().map(|e| e.expense_id.clone()).collect();
        assert_eq!(stored, succeeded, "{backend:?}: the read model holds exactly the accepted expenses");
        let claimed: Vec<String> = on_db!(&h.store.db, pool => {
            sqlx::query_scalar("SELECT id FROM client_ids WHERE kind = 'expense' ORDER BY id").fetch_all(pool).await.unwrap()
        });
        assert_eq!(
            claimed,
            succeeded.iter().cloned().collect::<Vec<_>>(),
            "{backend:?}: each accepted id claimed once"
        );
        assert_eq!(
            scalar(&h.store.db, "SELECT COUNT(*) FROM events WHERE event_type = 'ExpenseRecorded'").await,
            succeeded.len() as i64,
            "{backend:?}: no expense event stored twice"
        );
        let per_expense = scalar(
            &h.store.db,
            "SELECT COUNT(*) FROM (SELECT expense_id FROM rm_postings WHERE expense_id IS NOT NULL \
             GROUP BY expense_id HAVING COUNT(*) <> 2) x",
        )
        .await;
        assert_eq!(per_expense, 0, "{backend:?}: each expense has exactly its two postings");
        assert_projected_exactly_once(&h.store.db, &format!("{backend:?}")).await;
        h.store.cleanup().await;
    }
}

#[tokio::test]
async fn a_reversed_expense_gives_the_money_back_and_leaves_a_trail_to_the_original() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        let l = &h.ledger;
        register(l, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        l.fund(&a21, FundCommand::Establish(terms("A21-182", "1000")), &meta()).await.unwrap();
        l.fund(&a21, allocate("oost-1223", "1000"), &meta()).await.unwrap();
        let Outcome::Recorded { last_position: original_position, .. } =
            l.fund(&a21, expense_on("dubbel", "oost-1223", eur("300"), date("2022-06-01")), &meta()).await.unwrap()
        else {
            panic!("expected an event")
        };
        l.fund(&a21, expense_on("blijft", "oost-1223", eur("200"), date("2022-06-02")), &meta()).await.unwrap();
        let Outcome::Recorded { last_position: reversal_position, .. } =
            l.fund(&a21, reverse("dubbel", "2022-07-01"), &meta()).await.unwrap()
        else {
            panic!("expected an event")
        };
        h.projector.catch_up(|_| {}).await.unwrap();
        let db = &h.store.db;

        let budget = queries::wijk_budget(db, "oost-1223", Period::default()).await.unwrap().unwrap();
        assert_eq!(budget.totals.amount_spent.to_string(), "200.00", "{backend:?}: the money is back");
        assert_eq!(budget.totals.amount_remaining.to_string(), "800.00", "{backend:?}");
        let before = Period { year: Some(2022), as_of: Some(date("2022-06-30")) };
        let then = queries::wijk_budget(db, "oost-1223", before).await.unwrap().unwrap();
        assert_eq!(then.totals.amount_spent.to_string(), "500.00", "{backend:?}: before the correction it was spent");

        let detail = queries::fund_detail(db, "A21-182", 0, 1000).await.unwrap().unwrap();
        let reversed: BTreeMap<_, _> =
            detail.expenses.iter().map(|e| (e.expense_id.as_str(), (e.reversed, e.reversal_reason.clone()))).collect();
        assert_eq!(reversed["dubbel"], (true, Some("dubbel geboekt".to_string())), "{backend:?}");
        assert_eq!(reversed["blijft"], (false, None), "{backend:?}");
        assert_eq!(detail.fund.amount_spent.to_string(), "200.00", "{backend:?}");

        let original_sequence: i64 = on_db!(db, pool => {
            sqlx::query_scalar("SELECT sequence FROM events WHERE position = $1")
                .bind(original_position)
                .fetch_one(pool)
                .await
                .unwrap()
        });
        let trail = queries::audit_trail(db, "oost-1223", &Default::default(), 0, 10).await.unwrap();
        let last = trail.rows.last().unwrap();
        assert_eq!(
            trail.rows.len(),
            7,
            "{backend:?}: allocation, two expenses and one reversal, two postings each but the allocation"
        );
        assert_eq!(last.position, reversal_position);
        assert_eq!(last.event_type, "ExpenseReversed");
        assert_eq!(last.expense_id.as_deref(), Some("dubbel"));
        assert_eq!(last.amount.to_string(), "300.00", "{backend:?}: the reversal debits the wijk budget again");
        assert_eq!(last.balance.to_string(), "800.00", "{backend:?}");
        assert_eq!(last.booked_on, "2022-07-01");
        assert_eq!(last.counter_account, "spent:oost-1223:A21-182");
        let reference = last.reference.clone().unwrap();
        assert_eq!(reference, format!("reverses fund/A21-182 event {original_sequence}"), "{backend:?}");
        assert_eq!(original_sequence, 3, "{backend:?}: establish, allocate, then the expense");

        // Reversing again, or reversing what was never recorded here, stores nothing.
        let head = log_head(db).await;
        let again = l.fund(&a21, reverse("dubbel", "2022-07-02"), &meta()).await.unwrap_err();
        assert!(matches!(again, LedgerError::Fund(FundError::AlreadyReversed(_))), "{backend:?}: {again}");
        let unknown = l.fund(&a21, reverse("nooit", "2022-07-02"), &meta()).await.unwrap_err();
        assert!(matches!(unknown, LedgerError::Fund(FundError::UnknownExpense { .. })), "{backend:?}: {unknown}");
        assert_eq!(log_head(db).await, head, "{backend:?}");
        assert_projected_exactly_once(db, &format!("{backend:?}")).await;
        h.store.cleanup().await;
    }
}

/// Runs a projector step for at most `budget` and then drops it, as a
/// process that dies somewhere inside the step would: before it began, in
/// the middle of its transaction, or after its commit. Where exactly depends
/// on timing; what the caller asserts holds for every one of those points.
/// Returns whether the step finished.
async fn step_and_die(projector: &Projector, budget: Duration) -> bool {
    match tokio::time::timeout(budget, projector.step()).await {
        Ok(result) => {
            result.unwrap();
            true
        }
        Err(_) => false,
    }
}

/// In one snapshot: the checkpoint, all postings, the postings beyond the
/// checkpoint, and the fund events up to the checkpoint.
async fn consistent_view(db: &Db) -> (i64, i64, i64, i64) {
    const SQL: &str = "SELECT c.position, \
        (SELECT COUNT(*) FROM rm_postings), \
        (SELECT COUNT(*) FROM rm_postings p WHERE p.position > c.position), \
        (SELECT COUNT(*) FROM events e WHERE e.aggregate_type = 'fund' AND e.position <= c.position) \
        FROM projector_checkpoints c WHERE c.name = $1";
    on_db!(db, pool => sqlx::query_as(SQL).bind(projections::CHECKPOINT).fetch_one(pool).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_resumes_exactly_after_a_crash_between_commit_and_projection() {
    let skip = ["event_id", "recorded_at"];
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        // The reference: a projector that ran after every command.
        let reference = Harness::new(backend).await;
        // The crashed one: commands were committed, nothing was dispatched.
        let crashed = Harness::new(backend).await;
        let script = random_script(7, 30);
        let (first, rest) = script.split_at(script.len() / 2);

        for cmd in first {
            let expected = kind_of(&run(&reference.ledger, cmd).await);
            reference.projector.catch_up(|_| {}).await.unwrap();
            assert_eq!(kind_of(&run(&crashed.ledger, cmd).await), expected, "{label}: {cmd:?}");
        }
        assert_eq!(projections::status(&crashed.store.db).await.unwrap().0, 0, "{label}: nothing projected yet");

        // A new process starts, applies one batch and dies right after committing it.
        let head = log_head(&crashed.store.db).await;
        let (db, restarted) = other_instance(&crashed.store).await;
        assert_eq!(restarted.step().await.unwrap() as i64, head, "{label}: one batch covers the small log");
        drop(restarted);
        db.close().await;
        assert_eq!(projections::status(&crashed.store.db).await.unwrap(), (head, head), "{label}");

        // More commands; each time a new process dies somewhere inside a step.
        let mut finished_steps = 0;
        for (i, cmd) in rest.iter().enumerate() {
            let expected = kind_of(&run(&reference.ledger, cmd).await);
            reference.projector.catch_up(|_| {}).await.unwrap();
            assert_eq!(kind_of(&run(&crashed.ledger, cmd).await), expected, "{label}: {cmd:?}");
            let (db, dying) = other_instance(&crashed.store).await;
            let finished = step_and_die(&dying, Duration::from_micros(250 << (i % 8))).await;
            drop(dying);
            db.close().await;
            // Whatever it got to, the checkpoint and the rows agree. A step
            // dropped while its COMMIT is in flight may still land a moment
            // later, so everything is read in one statement (one snapshot).
            let (_, postings, beyond, fund_events) = consistent_view(&crashed.store.db).await;
            finished_steps += usize::from(finished);
            assert_eq!(postings, 2 * fund_events, "{label}: exactly the events up to the checkpoint are applied");
            assert_eq!(beyond, 0, "{label}: no rows beyond the checkpoint");
        }

        eprintln!("{label}: {finished_steps} of {} dying projectors finished their step", rest.len());

        // The last process resumes and catches up.
        let (db, last) = other_instance(&crashed.store).await;
        last.catch_up(|_| {}).await.unwrap();
        db.close().await;
        assert_projected_exactly_once(&crashed.store.db, &label).await;
        assert_projected_exactly_once(&reference.store.db, &label).await;
        assert_eq!(
            read_models(&crashed.store.db, &skip).await,
            read_models(&reference.store.db, &skip).await,
            "{label}: resumed read models equal those of a projector that never stopped"
        );
        assert_read_models_match_the_log(&crashed.ledger, &crashed.store.db, &FUNDS, &label).await;
        reference.store.cleanup().await;
        crashed.store.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_projectors_on_one_database_apply_every_event_exactly_once() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        for w in WIJKEN {
            register(&h.ledger, w, w).await;
        }
        for f in FUNDS {
            h.ledger.fund(&fund_id(f), FundCommand::Establish(terms(f, "100000")), &meta()).await.unwrap();
        }

        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(AtomicUsize::new(0));
        let mut instances = Vec::new();
        for _ in 0..2 {
            let (db, projector) = other_instance(&h.store).await;
            let (stop, applied) = (stop.clone(), applied.clone());
            instances.push(tokio::spawn(async move {
                loop {
                    let done = stop.load(Ordering::SeqCst);
                    let n = projector.step().await.expect("a projector step fails only on a double apply");
                    applied.fetch_add(n, Ordering::SeqCst);
                    if n == 0 {
                        if done {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                db.close().await;
            }));
        }

        // Three writers, each on its own wijk, across both funds.
        let writers: Vec<_> = WIJKEN
            .iter()
            .enumerate()
            .map(|(n, w)| {
                let ledger = h.ledger.clone();
                tokio::spawn(async move {
                    for i in 0..10 {
                        let f = fund_id(FUNDS[i % 2]);
                        let command = if i < 2 {
                            allocate(w, "1000")
                        } else {
                            expense_on(&format!("w{n}-{i}"), w, eur("10.50"), date("2022-05-01"))
                        };
                        ledger.fund(&f, command, &meta()).await.unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        for instance in instances {
            instance.await.unwrap();
        }

        let head = log_head(&h.store.db).await;
        assert_eq!(head, 3 + 2 + 30, "{label}");
        // The instances ran until they saw nothing left, so between them they applied everything, once.
        assert_eq!(applied.load(Ordering::SeqCst) as i64, head, "{label}: every event applied exactly once");
        assert_eq!(h.projector.catch_up(|_| {}).await.unwrap(), head, "{label}: nothing left to apply");
        let doubled = scalar(
            &h.store.db,
            "SELECT COUNT(*) FROM (SELECT position, line FROM rm_postings GROUP BY position, line HAVING COUNT(*) > 1) x",
        )
        .await;
        assert_eq!(doubled, 0, "{label}");
        assert_projected_exactly_once(&h.store.db, &label).await;
        assert_read_models_match_the_log(&h.ledger, &h.store.db, &FUNDS, &label).await;
        for w in WIJKEN {
            let budget = queries::wijk_budget(&h.store.db, w, Period::default()).await.unwrap().unwrap();
            assert_eq!(budget.totals.amount_allocated.to_string(), "2000.00", "{label}: {w}");
            assert_eq!(budget.totals.amount_spent.to_string(), "84.00", "{label}: {w}");
        }
        h.store.cleanup().await;
    }
}

#[tokio::test]
async fn rebuild_recomputes_the_same_read_models_as_incremental_projection() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        let mut outcomes = BTreeMap::<String, usize>::new();
        for (i, cmd) in random_script(2022, 120).iter().enumerate() {
            let result = run(&h.ledger, cmd).await;
            *outcomes.entry(outcome_name(&result)).or_default() += 1;
            if i % 9 == 0 {
                h.projector.catch_up(|_| {}).await.unwrap();
            }
        }
        h.projector.catch_up(|_| {}).await.unwrap();
        eprintln!("{label}: outcomes {outcomes:?}");
        assert!(scalar(&h.store.db, "SELECT COUNT(*) FROM events WHERE event_type = 'ExpenseReversed'").await > 0);
        assert_projected_exactly_once(&h.store.db, &label).await;
        assert_read_models_match_the_log(&h.ledger, &h.store.db, &FUNDS, &label).await;

        let incremental = read_models(&h.store.db, &[]).await;
        projections::reset(&h.store.db).await.unwrap();
        assert_eq!(projections::status(&h.store.db).await.unwrap().0, 0, "{label}");
        assert!(
            read_models(&h.store.db, &[]).await.values().all(Vec::is_empty),
            "{label}: reset wipes every read model"
        );
        let (db, rebuilder) = other_instance(&h.store).await;
        let head = rebuilder.catch_up(|_| {}).await.unwrap();
        db.close().await;
        assert_eq!(head, log_head(&h.store.db).await, "{label}");
        assert_eq!(
            read_models(&h.store.db, &[]).await,
            incremental,
            "{label}: rebuilt read models equal the incremental ones"
        );
        h.store.cleanup().await;
    }
}

/// `Ledger` snapshots a fund every 100 events. The state it snapshots must be
/// the state its log folds to, or every later command decides on wrong numbers.
#[tokio::test]
async fn a_fund_past_its_hundredth_event_still_decides_on_the_state_its_log_folds_to() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        let l = &h.ledger;
        register(l, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        l.fund(&a21, FundCommand::Establish(terms("A21-182", "10000")), &meta()).await.unwrap();
        l.fund(&a21, allocate("oost-1223", "100"), &meta()).await.unwrap();
        // Events 3..=99 of the fund's stream: 97 expenses of one euro.
        for sequence in 3..=99 {
            l.fund(&a21, expense_on(&format!("klein-{sequence}"), "oost-1223", eur("1"), date("2022-06-01")), &meta())
                .await
                .unwrap();
        }
        // Event 100, which makes the fund's first snapshot.
        l.fund(&a21, allocate("oost-1223", "100"), &meta()).await.unwrap();
        h.projector.catch_up(|_| {}).await.unwrap();
        let projected = queries::wijk_budget(&h.store.db, "oost-1223", Period::default()).await.unwrap().unwrap();
        assert_eq!(projected.totals.amount_remaining.to_string(), "103.00", "{label}: 200 allocated, 97 spent");

        let head = log_head(&h.store.db).await;
        let result = l.fund(&a21, expense_on("te-veel", "oost-1223", eur("150"), date("2022-06-01")), &meta()).await;
        let line = l.load_fund(&a21).await.unwrap().line(&wijk("oost-1223"));
        assert!(
            matches!(result, Err(LedgerError::Fund(FundError::Overspend { .. }))),
            "{label}: an expense of 150.00 with 103.00 left must be refused, got {result:?}; \
             the fund as loaded has allocated {} and spent {}",
            line.amount_allocated,
            line.amount_spent
        );
        assert_eq!(log_head(&h.store.db).await, head, "{label}");
        assert_eq!(line.amount_allocated, euro_from_cents(20_000), "{label}: the fund as loaded (from its snapshot)");

        // Event 101, decided on the snapshot: its reversal must point at event 101.
        l.fund(&a21, expense_on("na-snapshot", "oost-1223", eur("3"), date("2022-06-01")), &meta()).await.unwrap();
        l.fund(&a21, reverse("na-snapshot", "2022-07-01"), &meta()).await.unwrap();
        h.projector.catch_up(|_| {}).await.unwrap();
        let trail = queries::audit_trail(&h.store.db, "oost-1223", &Default::default(), 100, 10).await.unwrap();
        let reversal = trail.rows.last().unwrap();
        assert_eq!(reversal.reference.as_deref(), Some("reverses fund/A21-182 event 101"), "{label}");
        assert_eq!(reversal.balance.to_string(), "103.00", "{label}");
        assert_read_models_match_the_log(l, &h.store.db, &["A21-182"], &label).await;
        h.store.cleanup().await;
    }
}

/// Snapshots are a cache: one written by an older shape of the fund (a
/// fund's snapshot used to hold every expense and no `reversed` set) must be
/// passed over, so the fund is folded from its log instead of failing to
/// load or deciding on a state that misses a field.
#[tokio::test]
async fn a_snapshot_of_an_older_fund_shape_is_passed_over() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        let l = &h.ledger;
        register(l, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        l.fund(&a21, FundCommand::Establish(terms("A21-182", "10000")), &meta()).await.unwrap();
        l.fund(&a21, allocate("oost-1223", "200"), &meta()).await.unwrap();
        l.fund(&a21, expense_on("dubbel", "oost-1223", eur("50"), date("2022-06-01")), &meta()).await.unwrap();
        l.fund(&a21, reverse("dubbel", "2022-07-01"), &meta()).await.unwrap();
        for sequence in 5..=100 {
            l.fund(&a21, expense_on(&format!("klein-{sequence}"), "oost-1223", eur("1"), date("2022-06-01")), &meta())
                .await
                .unwrap();
        }
        // Rewrite the snapshot into the old shape, with numbers that would be
        // wrong if anyone used them.
        let payload: String = on_db!(&h.store.db, pool => {
            sqlx::query_scalar("SELECT CAST(payload AS TEXT) FROM snapshots WHERE aggregate_id = 'A21-182'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        let mut old: serde_json::Value = serde_json::from_str(&payload).unwrap();
        let state = old.as_object_mut().unwrap();
        assert!(state.remove("reversed").is_some(), "{label}: the current shape has a `reversed` set");
        state.insert("expenses".into(), serde_json::json!({}));
        state["lines"]["oost-1223"]["amount_available"] = serde_json::json!("9999");
        let old = old.to_string();
        let cast = if matches!(h.store.db, Db::Postgres(_)) { "$1::json" } else { "$1" };
        on_db!(&h.store.db, pool => {
            sqlx::query(&format!("UPDATE snapshots SET payload = {cast} WHERE aggregate_id = 'A21-182'"))
                .bind(&old)
                .execute(pool)
                .await
                .unwrap();
        });

        let line = l.load_fund(&a21).await.unwrap().line(&wijk("oost-1223"));
        assert_eq!(line.amount_available, euro_from_cents(200_00 - 96_00), "{label}: folded from the log");
        let again = l.fund(&a21, reverse("dubbel", "2022-08-01"), &meta()).await;
        assert!(matches!(again, Err(LedgerError::Fund(FundError::AlreadyReversed(_)))), "{label}: {again:?}");
        let result = l.fund(&a21, expense_on("te-veel", "oost-1223", eur("105"), date("2022-06-01")), &meta()).await;
        assert!(matches!(result, Err(LedgerError::Fund(FundError::Overspend { .. }))), "{label}: {result:?}");
        h.store.cleanup().await;
    }
}

/// Waits until `n` sessions of this database are blocked on a lock.
async fn wait_for_lock_waiters(pool: &sqlx::PgPool, n: i64) {
    for _ in 0..1000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never blocked");
}

/// PostgreSQL only (SQLite's `BEGIN IMMEDIATE` serialises both). `reset`,
/// which `wijkbudget rebuild` runs first, wipes the read models while the
/// projector of a running instance may be in the middle of a step: the rows
/// that step inserted and had not committed yet must not survive the wipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_another_instance_is_projecting_still_applies_every_event_once() {
    let h = Harness::new(Backend::Postgres).await;
    let l = &h.ledger;
    register(l, "oost-1223", "Oost 1223").await;
    let a21 = fund_id("A21-182");
    l.fund(&a21, FundCommand::Establish(terms("A21-182", "1000")), &meta()).await.unwrap();
    l.fund(&a21, allocate("oost-1223", "100"), &meta()).await.unwrap();
    h.projector.catch_up(|_| {}).await.unwrap();
    // What the running instance will be applying: a new wijk, then a change to an existing budget line.
    register(l, "west-7", "West 7").await;
    l.fund(&a21, allocate("oost-1223", "100"), &meta()).await.unwrap();

    let Db::Postgres(pool) = &h.store.db else { unreachable!("PostgreSQL harness") };
    // Hold the existing budget line, so the instance's step stops halfway through its transaction
    // (after inserting the new wijk's row) instead of racing through it.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM rm_balances WHERE wijk_id = 'oost-1223' AND fund_id = 'A21-182' AND kind = 'allocated' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let (db, instance) = other_instance(&h.store).await;
    let step = tokio::spawn(async move {
        let applied = instance.step().await.map_err(|e| e.to_string());
        db.close().await;
        applied
    });
    wait_for_lock_waiters(pool, 1).await;
    let wiping = h.store.db.clone();
    let reset = tokio::spawn(async move { projections::reset(&wiping).await.map_err(|e| e.to_string()) });
    wait_for_lock_waiters(pool, 2).await;
    holder.rollback().await.unwrap();
    assert_eq!(step.await.unwrap(), Ok(2), "the running instance applied its batch");
    assert_eq!(reset.await.unwrap(), Ok(()));

    // What survived the wipe, then the rest of `wijkbudget rebuild`: catch up from zero.
    let survivors: Vec<(&str, usize)> =
        read_models(&h.store.db, &[]).await.into_iter().map(|(table, rows)| (table, rows.len())).collect();
    let rebuilt = h.projector.catch_up(|_| {}).await;
    assert!(
        rebuilt.is_ok(),
        "the rebuild after a concurrent step failed: {rebuilt:?}; rows left after the wipe: {survivors:?}"
    );
    assert_projected_exactly_once(&h.store.db, "Postgres").await;
    assert_read_models_match_the_log(l, &h.store.db, &["A21-182"], "Postgres").await;
    h.store.cleanup().await;
}

/// The opening balance as the audit trail computed it before the running
/// `wijk_available_cents`: the sum of every earlier posting on the wijk's
/// available money that the filter keeps.
async fn summed_opening(db: &Db, wijk_id: &str, filter: &queries::AuditFilter, after: i64) -> i64 {
    on_db!(db, pool => sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM rm_postings \
         WHERE wijk_id = $1 AND account_kind = 'wijk_budget' AND position <= $2 \
         AND ($3 IS NULL OR fund_id = $3) AND ($4 IS NULL OR year = $4)",
    )
    .bind(wijk_id)
    .bind(after)
    .bind(filter.fund_id.as_deref())
    .bind(filter.year)
    .fetch_one(pool)
    .await
    .unwrap())
}

/// Pages through a wijk's trail `limit` rows at a time and checks every
/// page against the old computation: its opening is the summed opening and
/// the previous page's last balance, and each balance is the opening plus
/// the page's postings on available money so far. Returns every row, in order.
async fn page_through(
    db: &Db,
    wijk_id: &str,
    filter: &queries::AuditFilter,
    limit: i64,
    label: &str,
) -> Vec<queries::AuditRow> {
    let mut rows = Vec::new();
    let mut after = 0;
    let mut carried = 0;
    loop {
        let page = queries::audit_trail(db, wijk_id, filter, after, limit).await.unwrap();
        let opening = page.opening_balance.0;
        assert_eq!(opening, carried, "{label}: the page after {after} opens where the previous one closed");
        assert_eq!(opening, summed_opening(db, wijk_id, filter, after).await, "{label}: opening after {after}");
        let mut balance = opening;
        for row in &page.rows {
            if row.account.starts_with("wijk_budget:") {
                balance += row.amount.0;
            }
            assert_eq!(row.balance.0, balance, "{label}: balance at position {} ({})", row.position, row.account);
        }
        carried = balance;
        rows.extend(page.rows);
        match page.next_after {
            Some(next) => after = next,
            None => return rows,
        }
    }
}

/// A deep page of the whole audit trail reads its opening balance from one
/// posting's running `wijk_available_cents` instead of summing the wijk's
/// history. On the demo's two years (several funds, reversals, commitments
/// made, paid and settled, a transfer between wijken, the 2021 close with
/// carry-over), paged a few rows at a time, every opening and balance is
/// what the sum gives; so is every filtered page, which still sums; and a
/// database left by projection 4 (the column empty) is filled by the rebuild
/// projection 5 starts with.
#[tokio::test]
async fn every_audit_trail_page_opens_where_the_sum_of_the_wijks_postings_before_it_says() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        wijkbudget::demo::load(&h.ledger, |_, _| {}).await.expect("the demo loads");
        h.catch_up().await;
        let db = &h.store.db;

        let wijken: Vec<String> = on_db!(db, pool => sqlx::query_scalar("SELECT wijk_id FROM rm_wijken ORDER BY wijk_id")
            .fetch_all(pool)
            .await
            .unwrap());
        let mut event_types = BTreeSet::new();
        for wijk_id in &wijken {
            let whole = queries::AuditFilter::default();
            let rows = page_through(db, wijk_id, &whole, 3, &format!("{label} {wijk_id}")).await;
            let one_page = queries::audit_trail(db, wijk_id, &whole, 0, 100_000).await.unwrap();
            assert_eq!(one_page.rows, rows, "{label} {wijk_id}: small pages add up to the one large page");
            // Every position as `after`, not only where pages happen to end (mid-event included).
            for after in rows.iter().flat_map(|row| [row.position - 1, row.position]) {
                let page = queries::audit_trail(db, wijk_id, &whole, after, 1).await.unwrap();
                assert_eq!(
                    page.opening_balance.0,
                    summed_opening(db, wijk_id, &whole, after).await,
                    "{label} {wijk_id}: opening after {after}"
                );
            }
            let remaining = queries::wijk_budget(db, wijk_id, Period::default()).await.unwrap().unwrap();
            let last = rows.last().map_or(0, |row| row.balance.0);
            assert_eq!(last, remaining.totals.amount_remaining.0, "{label} {wijk_id}: the trail ends at what is left");
            event_types.extend(rows.iter().map(|row| row.event_type.clone()));

            for fund in remaining.funds {
                let by_fund = queries::AuditFilter { fund_id: Some(fund.fund_id.clone()), ..Default::default() };
                page_through(db, wijk_id, &by_fund, 2, &format!("{label} {wijk_id} {}", fund.fund_id)).await;
            }
            let by_year = queries::AuditFilter { year: Some(2022), ..Default::default() };
            page_through(db, wijk_id, &by_year, 2, &format!("{label} {wijk_id} 2022")).await;
        }
        for needed in [
            "BudgetAllocated",
            "ExpenseRecorded",
            "ExpenseReversed",
            "CommitmentMade",
            "BudgetTransferred",
            "FundClosed",
        ] {
            assert!(event_types.contains(needed), "{label}: the trails cover {needed}, saw {event_types:?}");
        }

        // A database projection 4 kept: no running balances yet.
        let unfilled = "SELECT COUNT(*) FROM rm_postings WHERE wijk_id IS NOT NULL AND wijk_available_cents IS NULL";
        on_db!(db, pool => {
            sqlx::query("UPDATE rm_postings SET wijk_available_cents = NULL").execute(pool).await.unwrap();
            sqlx::query("UPDATE projector_checkpoints SET name = 'read_models@4'").execute(pool).await.unwrap();
        });
        assert!(scalar(db, unfilled).await > 0, "{label}");
        h.catch_up().await;
        assert_eq!(
            scalar(db, unfilled).await,
            0,
            "{label}: projection 5 rebuilt the read models and filled the column"
        );
        assert_eq!(
            scalar(db, "SELECT COUNT(*) FROM rm_postings WHERE wijk_id IS NULL AND wijk_available_cents IS NOT NULL")
                .await,
            0,
            "{label}: a posting without a wijk has no wijk balance"
        );
        for wijk_id in &wijken {
            page_through(db, wijk_id, &Default::default(), 5, &format!("{label} {wijk_id} after the rebuild")).await;
        }
        h.store.cleanup().await;
    }
}

/// Two instances that both hold a fund in their caches (issue 11): each
/// decides first on what it last saw, so most of their decisions rest on a
/// stale entry. The append's stream-head check must turn every such decision
/// into a conflict and a decision on the stored state: an expense the stale
/// state would allow but the stored state cannot afford is refused, a
/// reversal is applied once, and racing expenses never spend more than was
/// allocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_with_warm_caches_on_one_fund_break_no_rule() {
    const RACERS: usize = 24;
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        let a = &h.ledger;
        let b = Ledger::new(LedgerRepository::new(h.store.db.clone()), h.projector.subscribe());
        register(a, "oost-1223", "Oost 1223").await;
        let a21 = fund_id("A21-182");
        a.fund(&a21, FundCommand::Establish(terms("A21-182", "5000")), &meta()).await.unwrap();
        a.fund(&a21, allocate("oost-1223", "1000"), &meta()).await.unwrap();
        // Both caches warm: `b` loads the fund as it records, `a` still holds it as allocated.
        b.fund(&a21, expense("b-600", "oost-1223", "600"), &meta()).await.unwrap();

        // `a`'s entry says 1000 is available; the store says 400.
        let head = log_head(&h.store.db).await;
        let stale = a.fund(&a21, expense("a-600", "oost-1223", "600"), &meta()).await;
        assert!(
            matches!(stale, Err(LedgerError::Fund(FundError::Overspend { .. }))),
            "{label}: decided on a stale entry, an expense of 600 with 400 left was {stale:?}"
        );
        assert_eq!(log_head(&h.store.db).await, head, "{label}: the refusal stored nothing");

        // `b`'s entry does not know that `a` allocated more; `a` reverses `b`'s expense.
        a.fund(&a21, allocate("oost-1223", "500"), &meta()).await.unwrap();
        let reversed = a.fund(&a21, reverse("b-600", "2022-07-01"), &meta()).await;
        assert!(matches!(reversed, Ok(Outcome::Recorded { .. })), "{label}: {reversed:?}");
        // `b`'s entry now says 1000 allocated and 600 spent; the store says
        // 1500 and nothing. An expense only the stored state affords must be
        // accepted, not refused on the stale entry.
        let affordable = b.fund(&a21, expense_on("b-900", "oost-1223", eur("900"), date("2022-07-15")), &meta()).await;
        assert!(
            matches!(affordable, Ok(Outcome::Recorded { .. })),
            "{label}: refused on a stale entry: {affordable:?}"
        );
        let undone = a.fund(&a21, reverse("b-900", "2022-07-20"), &meta()).await;
        assert!(matches!(undone, Ok(Outcome::Recorded { .. })), "{label}: {undone:?}");
        // `b` holds the fund from before `a`'s reversal of `b-900` now: reversing it again must fail.
        let twice = b.fund(&a21, reverse("b-900", "2022-07-21"), &meta()).await;
        assert!(matches!(twice, Err(LedgerError::Fund(FundError::AlreadyReversed(_)))), "{label}: {twice:?}");
        // Re-recording the reversed expense id is a retry of the same expense: unchanged, from either instance.
        for (name, ledger) in [("a", a), ("b", &b)] {
            let again = ledger.fund(&a21, expense("b-600", "oost-1223", "600"), &meta()).await;
            assert!(matches!(again, Ok(Outcome::Unchanged)), "{label}: {name} recording b-600 again: {again:?}");
        }

        // 1500 allocated, nothing spent: 15 of the racing expenses of 100 fit.
        // Before the race `a` spends 100 and `b` 100, so that both enter it
        // with a warm entry and at least one of them with a stale one.
        a.fund(&a21, expense("a-100", "oost-1223", "100"), &meta()).await.unwrap();
        b.fund(&a21, expense("b-100", "oost-1223", "100"), &meta()).await.unwrap();
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
                let a21 = a21.clone();
                tokio::spawn(async move {
                    let id = format!("race-{i:02}");
                    // Dated after the reversal, so the reversed 600 is available to them.
                    let command = expense_on(&id, "oost-1223", eur("100"), date("2022-08-01"));
                    let result = ledger.fund(&a21, command, &meta()).await;
                    (id, result)
                })
            })
            .collect();
        let (mut succeeded, mut overspent, mut conflicted) = (BTreeSet::new(), 0, 0);
        for task in tasks {
            let (id, result) = task.await.unwrap();
            match result {
                Ok(Outcome::Recorded { .. }) => {
                    succeeded.insert(id);
                }
                Err(LedgerError::Fund(FundError::Overspend { .. })) => overspent += 1,
                Err(LedgerError::Conflict(_)) => conflicted += 1,
                other => panic!("{label}: {id}: unexpected {other:?}"),
            }
        }
        assert!(succeeded.len() <= 13, "{label}: {} racers succeeded with room for 13", succeeded.len());
        if conflicted == 0 {
            assert_eq!(succeeded.len(), 13, "{label}: exactly the affordable expenses succeed");
        }
        if overspent > 0 {
            assert_eq!(succeeded.len(), 13, "{label}: an expense was refused while money was left");
        }

        // Afterwards both instances decide on the stored state, whatever their entries held.
        let line = a.load_fund(&a21).await.unwrap().line(&wijk("oost-1223"));
        let spent = euro_from_cents(10_000 * (2 + succeeded.len() as i64));
        assert_eq!(line.amount_spent, spent, "{label}: every accepted expense once, the reversed one not");
        assert_eq!(line.amount_allocated, euro_from_cents(150_000), "{label}");
        let left = line.amount_available;
        for (name, ledger) in [("a", a), ("b", &b)] {
            let too_much = Amount::try_from(left + rust_decimal::Decimal::new(1, 2)).unwrap();
            let id = format!("te-veel-{name}");
            let result = ledger.fund(&a21, expense_on(&id, "oost-1223", too_much, date("2022-08-01")), &meta()).await;
            assert!(
                matches!(result, Err(LedgerError::Fund(FundError::Overspend { .. }))),
                "{label}: {name} with {left} left accepted {too_much}: {result:?}"
            );
        }
        h.projector.catch_up(|_| {}).await.unwrap();
        assert_read_models_match_the_log(a, &h.store.db, &["A21-182"], &label).await;
        assert_projected_exactly_once(&h.store.db, &label).await;
        h.store.cleanup().await;
    }
}

/// A service's appends project their own events inside the append's
/// transaction while the read models are at the head (issue 11), and leave
/// them to the projector otherwise. Mixed with an instance that never
/// projects and with projector steps, every event is still applied exactly
/// once, and the read models equal those of a projector that applied the
/// same commands on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_project_their_own_events_exactly_once_beside_the_projector() {
    let skip = ["event_id", "recorded_at"];
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let reference = Harness::new(backend).await;
        // `plain` appends without projecting; `inline` is wired as a service is.
        let plain = Harness::new(backend).await;
        let repo = LedgerRepository::new(plain.store.db.clone());
        let projector = Projector::for_repository(&repo);
        let inline = Ledger::new(repo, projector.subscribe());
        projector.catch_up(|_| {}).await.unwrap();

        let script = random_script(11, 60);
        let mut projected_inside = 0;
        for (i, cmd) in script.iter().enumerate() {
            let expected = kind_of(&run(&reference.ledger, cmd).await);
            reference.projector.catch_up(|_| {}).await.unwrap();
            if i % 5 == 4 {
                // Behind the projector's back: the next inline append finds
                // the read models behind and leaves its events to the projector.
                assert_eq!(kind_of(&run(&plain.ledger, cmd).await), expected, "{label}: {cmd:?}");
                continue;
            }
            if i % 5 == 0 {
                projector.catch_up(|_| {}).await.unwrap();
            }
            let before = projections::status(&plain.store.db).await.unwrap();
            let result = run(&inline, cmd).await;
            assert_eq!(kind_of(&result), expected, "{label}: {cmd:?}");
            let after = projections::status(&plain.store.db).await.unwrap();
            if let (Ok(Outcome::Recorded { last_position, .. }), true) = (&result, before.0 == before.1) {
                // No projector step ran: the append itself moved the read models.
                assert_eq!(after, (*last_position, *last_position), "{label}: {cmd:?} was projected with its append");
                assert!(inline.projected_position() >= *last_position, "{label}: and published for read-your-writes");
                projected_inside += 1;
            } else {
                assert_eq!(after.0, before.0, "{label}: {cmd:?} left the lagging read models to the projector");
            }
        }
        assert!(projected_inside > 10, "{label}: only {projected_inside} appends projected themselves");
        projector.catch_up(|_| {}).await.unwrap();
        assert_projected_exactly_once(&plain.store.db, &label).await;
        assert_eq!(
            read_models(&plain.store.db, &skip).await,
            read_models(&reference.store.db, &skip).await,
            "{label}: read models projected inside appends equal those of the projector alone"
        );

        // Two instances that both project inside their appends, racing on
        // both funds, beside a projector that keeps stepping.
        let other_repo = LedgerRepository::new(plain.store.db.clone());
        let other_projector = Projector::for_repository(&other_repo);
        let other = Ledger::new(other_repo, other_projector.subscribe());
        let stop = Arc::new(AtomicBool::new(false));
        let stepping = {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    other_projector.step().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let ledger = if i % 2 == 0 { inline.clone() } else { other.clone() };
                tokio::spawn(async move {
                    let fund = FUNDS[i % FUNDS.len()];
                    let command = expense_on(&format!("samen-{i}"), WIJKEN[i % 3], eur("1"), date("2022-09-01"));
                    ledger.fund(&fund_id(fund), command, &meta()).await
                })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) | Err(LedgerError::Fund(FundError::Overspend { .. })) | Err(LedgerError::Conflict(_)) => {}
                Err(other) => panic!("{label}: unexpected {other:?}"),
            }
        }
        stop.store(true, Ordering::SeqCst);
        stepping.await.unwrap();
        projector.catch_up(|_| {}).await.unwrap();
        assert_projected_exactly_once(&plain.store.db, &label).await;
        assert_read_models_match_the_log(&inline, &plain.store.db, &FUNDS, &label).await;
        reference.store.cleanup().await;
        plain.store.cleanup().await;
    }
}
