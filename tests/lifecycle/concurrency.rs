//! Concurrent commitments never promise more than a wijk has.

use super::*;

// ---------------------------------------------------------------------------
// 2. Concurrent commitments
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commitments_against_one_wijk_never_over_commit() {
    const COMMITMENTS: usize = 20;
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        register(&h.ledger, "oost-1221").await;
        let fund = fund_id("begroting-2022");
        h.ledger
            .fund(&fund, FundCommand::Establish(terms_2022("begroting-2022", amount_cents(100_000))), &meta())
            .await
            .unwrap();
        h.ledger.fund(&fund, allocate("oost-1221", amount_cents(100_000)), &meta()).await.unwrap();

        let tasks: Vec<_> = (0..COMMITMENTS)
            .map(|i| {
                let ledger = h.ledger.clone();
                let fund = fund.clone();
                tokio::spawn(async move {
                    let id = format!("SUB-2022-{i:03}");
                    let result = ledger
                        .fund(&fund, commit(&id, "oost-1221", amount_cents(10_000), date("2022-04-01")), &meta())
                        .await;
                    (id, result)
                })
            })
            .collect();
        let (mut succeeded, mut refused, mut conflicted) = (0i64, 0usize, 0usize);
        for task in tasks {
            let (id, result) = task.await.unwrap();
            match result {
                Ok(Outcome::Recorded { .. }) => succeeded += 1,
                Err(LedgerError::Fund(FundError::NotAvailable { .. })) => refused += 1,
                Err(LedgerError::Conflict(_)) => conflicted += 1,
                other => panic!("{label}: {id}: unexpected {other:?}"),
            }
        }
        eprintln!("{label}: {succeeded} committed, {refused} refused as not available, {conflicted} lost every race");
        assert!(succeeded <= 10, "{label}: {succeeded} commitments of 100.00 against 1000.00");
        if conflicted == 0 {
            assert_eq!(succeeded, 10, "{label}: without lost races exactly the affordable ones succeed");
        }

        let folded = h.ledger.load_fund(&fund).await.unwrap();
        let line = folded.line(&wijk("oost-1221"));
        assert_eq!(cents(line.amount_committed), succeeded * 10_000, "{label}: committed in the fund's stream");
        assert_eq!(
            cents(line.amount_available),
            100_000 - succeeded * 10_000,
            "{label}: available in the fund's stream"
        );
        assert!(line.amount_available >= Decimal::ZERO, "{label}");

        h.catch_up().await;
        let db = &h.store.db;
        assert_eq!(
            balance(db, "oost-1221", "begroting-2022", "committed").await,
            succeeded * 10_000,
            "{label}: read model"
        );
        let available = balance(db, "oost-1221", "begroting-2022", "wijk_budget").await;
        assert_eq!(available, 100_000 - succeeded * 10_000, "{label}: read model");
        assert!(available >= 0, "{label}");
        let budget = queries::wijk_budget(db, "oost-1221", queries::Period::default()).await.unwrap().unwrap();
        assert_eq!(budget.totals.amount_committed.0, succeeded * 10_000, "{label}");
        assert_eq!(budget.totals.amount_remaining.0, available, "{label}");
        let rows: i64 = on_db!(db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM rm_commitments").fetch_one(pool).await.unwrap()
        });
        assert_eq!(rows, succeeded, "{label}: one commitment row per success");
        h.store.cleanup().await;
    }
}

/// When no wijk carries money over, no carry-over fund is established; the
/// closed fund must then not name one either (a reference nobody can follow).
#[tokio::test]
async fn a_close_that_carries_nothing_over_names_no_carry_over_fund() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let label = format!("{backend:?}");
        let h = Harness::new(backend).await;
        register(&h.ledger, "oost-1221").await;
        let fund = fund_id("begroting-2022");
        h.ledger
            .fund(&fund, FundCommand::Establish(terms_2022("begroting-2022", amount_cents(100_000))), &meta())
            .await
            .unwrap();
        h.ledger.fund(&fund, allocate("oost-1221", amount_cents(100_000)), &meta()).await.unwrap();
        let decision = Decision { reference: text("Raadsbesluit jaarrekening 2022"), adopted_on: date("2023-06-29") };
        let closed = h.ledger.close_year(Year::new(2022).unwrap(), decision, &[], &meta()).await.unwrap();
        assert_eq!(closed.len(), 1, "{label}");
        assert_eq!(closed[0].carried_into, None, "{label}: nothing was carried over");
        h.catch_up().await;
        let db = &h.store.db;
        let statements = reports::close_statements(db, 2022).await.unwrap();
        assert_eq!(statements.len(), 1, "{label}");
        assert_eq!(statements[0].amount_carried_over.0, 0, "{label}");
        assert_eq!(statements[0].difference.0, 0, "{label}");
        let funds: Vec<String> = queries::funds(db, None).await.unwrap().into_iter().map(|f| f.fund_id).collect();
        if let Some(named) = &statements[0].carry_over_fund {
            if !funds.contains(named) {
                failures.push(format!(
                    "{label}: the close statement names carry-over fund {named}, which does not exist (funds: {funds:?})"
                ));
            }
        }
        let summary = queries::fund_detail(db, "begroting-2022", 0, 1000).await.unwrap().unwrap();
        if let Some(named) = &summary.fund.carry_over_fund {
            if !funds.contains(named) {
                failures.push(format!(
                    "{label}: GET /funds/begroting-2022 names carry-over fund {named}, which does not exist"
                ));
            }
        }
        h.store.cleanup().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
