//! Audit-trail paging: every page opens where the sum of the wijk's earlier
//! postings says, filtered or not, and after the rebuild of projection 5.

use super::*;

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
