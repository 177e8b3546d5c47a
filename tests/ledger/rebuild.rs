//! Rebuild: `reset` and a catch-up from zero give the incremental read models,
//! also while another instance is in the middle of a projector step.

use super::*;

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
