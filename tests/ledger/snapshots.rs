//! Snapshots: a fund past its hundredth event decides on what its log folds
//! to, and a snapshot of an older fund shape is passed over.

use super::*;

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
