//! Recovery: a projector that dies anywhere inside its step, and the one after
//! it that resumes exactly where the last committed step ended.

use super::*;

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
