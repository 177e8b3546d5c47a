//! Commands end to end: an amendment allocated, spent and read back, an overspend
//! refused with nothing stored, and a reversal that gives the money back and
//! leaves a trail to the original.

use super::*;

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
