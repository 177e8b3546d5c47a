//! Concurrent commands: racing expenses on one budget through two instances,
//! and two instances whose warm caches hold a stale fund.

use super::*;

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
