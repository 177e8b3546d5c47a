//! The projector writes each batch set-based (multi-row inserts, balance
//! deltas summed per balance, a close ending its segment). The read models
//! must not depend on where batches begin and end: projecting a rich log one
//! event per transaction and thousands per transaction gives the same rows,
//! on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use common::{date, fund_id, meta, read_models, text, wijk, Harness, ReadModels, BACKENDS};
use tokio::sync::Notify;
use wijkbudget::domain::fund::{Decision, FundCommand};
use wijkbudget::domain::ids::{CommitmentId, ExpenseId, Year};
use wijkbudget::on_db;
use wijkbudget::projections::{self, Projector};
use wijkbudget::store::Db;

/// The demo's two years (allocations, expenses, reversals, commitments made,
/// paid, settled with a recovery claim, repaid and withdrawn, a transfer, the
/// 2021 close with carry-over and a payment after it), then a post-closing
/// reversal, a cancellation and the 2022 close: a log that ends in a close.
async fn rich_log(h: &Harness) {
    wijkbudget::demo::load(&h.ledger, |_, _| {}).await.expect("the demo loads");
    let ledger = &h.ledger;
    ledger
        .fund(
            &fund_id("begroting-2021"),
            FundCommand::ReverseExpense {
                booked_on: None,
                expense_id: ExpenseId::parse("2021-centrum-00").unwrap(),
                reason: text("Factuur gecrediteerd na de jaarrekening"),
                requested_on: date("2022-07-04"),
                post_closing: true,
            },
            &meta(),
        )
        .await
        .expect("a post-closing reversal is recorded");
    ledger
        .fund(
            &fund_id("begroting-2022"),
            FundCommand::Withdraw {
                commitment_id: CommitmentId::parse("SUB-2022-019").unwrap(),
                reason: text("Dubbele aanvraag"),
                cancelled: true,
                booked_on: date("2022-09-01"),
            },
            &meta(),
        )
        .await
        .expect("a cancellation is recorded");
    ledger
        .close_year(
            Year::new(2022).unwrap(),
            Decision { reference: text("Raadsbesluit jaarrekening 2022"), adopted_on: date("2023-06-29") },
            &[wijk("oost-1221"), wijk("centrum")],
            &meta(),
        )
        .await
        .expect("2022 closes");
}

/// The first row where two dumps differ, table by table, or `None` when they are equal.
fn first_difference(left: &ReadModels, right: &ReadModels) -> Option<String> {
    for (table, rows) in left {
        let other = &right[table];
        if let Some(i) = (0..rows.len().max(other.len())).find(|&i| rows.get(i) != other.get(i)) {
            return Some(format!("{table}, row {i} in order: {:?} vs {:?}", rows.get(i), other.get(i)));
        }
    }
    None
}

/// Wipes the read models and projects the whole log again, `batch` events per transaction.
async fn rebuilt(db: &Db, batch: i64) -> ReadModels {
    projections::reset(db).await.unwrap();
    let projector = Projector::new(db.clone(), Arc::new(Notify::new())).with_batch_size(batch);
    let (_, head) = projections::status(db).await.unwrap();
    assert_eq!(projector.catch_up(|_| {}).await.unwrap(), head, "batch size {batch}: the rebuild reaches the head");
    read_models(db, &[]).await
}

#[tokio::test]
async fn read_models_are_the_same_whatever_the_batch_boundaries() {
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        rich_log(&h).await;
        h.catch_up().await;
        let live = read_models(&h.store.db, &[]).await;
        for (table, rows) in &live {
            assert!(!rows.is_empty(), "{label}: the log fills {table}");
        }
        let closes = on_db!(&h.store.db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events WHERE event_type = 'FundClosed'",
        )
        .fetch_one(pool)
        .await
        .unwrap());
        assert!(closes >= 3, "{label}: the log holds closes in both years, got {closes}");

        let one_by_one = rebuilt(&h.store.db, 1).await;
        assert_eq!(
            first_difference(&one_by_one, &live),
            None,
            "{label}: one event per batch gives the live projector's read models"
        );
        for batch in [2, 7, 64, 100_000] {
            let batched = rebuilt(&h.store.db, batch).await;
            assert_eq!(first_difference(&batched, &one_by_one), None, "{label}: batch size {batch}");
        }
        h.store.cleanup().await;
    }
}

/// PostgreSQL's `wijkbudget rebuild` builds the read models beside the live
/// ones while a service goes on appending (and projecting inside its
/// appends), and swaps them in under the append lock: what it swaps in is
/// exactly what projecting the whole log from scratch gives, the writes made
/// meanwhile included, and the service appends and projects into the new
/// tables afterwards as before.
#[tokio::test]
async fn a_rebuild_beside_the_live_read_models_takes_in_the_writes_made_meanwhile() {
    let store = common::TestStore::new(common::Backend::Postgres).await;
    let repo = wijkbudget::store::repository::LedgerRepository::new(store.db.clone());
    let projector = Projector::for_repository(&repo);
    let ledger = wijkbudget::ledger::Ledger::new(repo, projector.subscribe());
    wijkbudget::demo::load(&ledger, |_, _| {}).await.expect("the demo loads");
    projector.catch_up(|_| {}).await.unwrap();
    let expense = |n: usize| {
        FundCommand::RecordExpense(wijkbudget::domain::fund::ExpenseDetails {
            expense_id: ExpenseId::parse(&format!("meanwhile-{n}")).unwrap(),
            wijk_id: wijk("oost-1223"),
            amount: wijkbudget::domain::money::Amount::parse("1.25").unwrap(),
            initiative: text("Speeltuin"),
            theme: text("spelen"),
            booked_on: date("2022-11-01"),
            reference: text(&format!("bon {n}")),
        })
    };
    let Db::Postgres(pool) = store.db.clone() else { unreachable!() };
    let rebuild = tokio::spawn(async move { projections::rebuild::rebuild_beside(&pool, |_| {}).await });
    for n in 0..40 {
        ledger.fund(&fund_id("begroting-2022"), expense(n), &meta()).await.unwrap();
    }
    rebuild.await.unwrap().expect("the rebuild completes");
    for n in 40..50 {
        ledger.fund(&fund_id("begroting-2022"), expense(n), &meta()).await.unwrap();
    }
    projector.catch_up(|_| {}).await.unwrap();
    let head = wijkbudget::store::repository::head(&store.db).await.unwrap().0;
    assert_eq!(projections::status(&store.db).await.unwrap(), (head, head));
    let live = read_models(&store.db, &[]).await;
    assert_eq!(first_difference(&rebuilt(&store.db, 100_000).await, &live), None);
    store.cleanup().await;
}

/// PostgreSQL's `wijkbudget rebuild` streams the log into new tables, copying
/// postings and expenses in and filling what the projector would look up
/// (a fund's year, a commitment's or a reversed expense's initiative and
/// theme) from memory or after the load. On the rich log (reversals before
/// and after a close, payments, settlements, repayments, cancellations,
/// closes in both years) it swaps in exactly the live projector's rows.
#[tokio::test]
async fn a_streamed_rebuild_gives_the_live_projectors_read_models() {
    let h = Harness::new(common::Backend::Postgres).await;
    rich_log(&h).await;
    h.catch_up().await;
    let live = read_models(&h.store.db, &[]).await;
    let Db::Postgres(pool) = h.store.db.clone() else { unreachable!() };
    let mut reached = Vec::new();
    let rebuilt = projections::rebuild::rebuild_beside(&pool, |p| reached.push(p)).await.unwrap();
    let (_, head) = projections::status(&h.store.db).await.unwrap();
    assert_eq!(rebuilt.position, head, "the rebuild reaches the log's head");
    use projections::rebuild::Progress;
    let indexing = reached.iter().position(|p| *p == Progress::Indexing).expect("it says when it builds the indexes");
    assert_eq!(reached[indexing - 1], Progress::Loaded(head), "after saying it loaded the whole log");
    assert_eq!(first_difference(&read_models(&h.store.db, &[]).await, &live), None);
    h.store.cleanup().await;
}
