//! Projection exactly once: two projectors on one database, and appends that
//! project their own events beside the projector.

use super::*;

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
