//! Taking the books out: the XLSX audit trail holds numbers and dates, one
//! sheet per wijk after a sheet that ties it to the chain's head, and its
//! amounts sum to the ledger's figures to the cent; CSV holds the same rows.

mod common;

use calamine::{Data, Reader};
use common::{Backend, TestStore};
use wijkbudget::projections::queries::{self, Period};
use wijkbudget::service::Service;
use wijkbudget::spreadsheet::{export, ExportFormat, What};

async fn demo() -> (TestStore, Service) {
    let store = TestStore::new(Backend::Sqlite).await;
    let service = Service::open(&store.url).await.unwrap();
    wijkbudget::demo::load(&service.ledger, |_, _| {}).await.unwrap();
    service.projector.catch_up(|_| {}).await.unwrap();
    (store, service)
}

#[tokio::test]
async fn the_xlsx_audit_trail_holds_numbers_and_dates_that_sum_to_the_ledger() {
    let (store, service) = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audittrail-2022.xlsx");
    let rows = export(&service.db, What::AuditTrail, ExportFormat::Xlsx, Some(2022), None, &path).await.unwrap();
    assert!(rows >= 9 * 2, "at least an allocation for each of the nine wijken: {rows}");

    let mut book = calamine::open_workbook_auto(&path).unwrap();
    let names = book.sheet_names();
    assert_eq!(names[0], "Over dit bestand");
    let (position, hash) = wijkbudget::store::repository::head(&service.db).await.unwrap();
    let about = book.worksheet_range("Over dit bestand").unwrap();
    let about_text: Vec<String> = about.rows().flat_map(|r| r.iter().map(|c| c.to_string())).collect();
    assert!(about_text.iter().any(|t| t == &format!("{position}:{hash}")), "the first sheet names the chain's head");

    let wijken = queries::wijk_summaries(&service.db, Period { year: Some(2022), as_of: None }).await.unwrap();
    assert_eq!(names.len(), wijken.len() + 1, "one sheet per wijk");
    let mut exported_rows = 0;
    for wijk in &wijken {
        let sheet = book.worksheet_range(&wijk.wijk_id).unwrap();
        let mut rows = sheet.rows();
        let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let (amount, account, booked_on) = (column("amount"), column("account"), column("booked_on"));
        let mut available_cents = 0i64;
        for row in rows {
            exported_rows += 1;
            let Data::Float(value) = row[amount] else {
                panic!("{}: the amount {:?} is not a number", wijk.wijk_id, row[amount])
            };
            assert!(
                matches!(row[booked_on], Data::DateTime(_)),
                "{}: the booking date {:?} is no date",
                wijk.wijk_id,
                row[booked_on]
            );
            if row[account].to_string().starts_with("wijk_budget:") {
                available_cents += (value * 100.0).round() as i64;
            }
        }
        assert_eq!(
            available_cents, wijk.totals.amount_remaining.0,
            "{}: the sheet's available money sums to the ledger's to the cent",
            wijk.wijk_id
        );
    }
    assert_eq!(exported_rows, rows);

    // The CSV holds the same rows.
    let csv = dir.path().join("audittrail-2022.csv");
    let csv_rows = export(&service.db, What::AuditTrail, ExportFormat::Csv, Some(2022), None, &csv).await.unwrap();
    assert_eq!(csv_rows, rows);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), rows + 1);
    service.db.close().await;
    store.cleanup().await;
}

#[tokio::test]
async fn the_close_statement_has_a_sheet_per_fund_and_a_year_without_a_close_is_refused() {
    let (store, service) = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jaarafsluiting-2021.xlsx");
    export(&service.db, What::CloseStatement, ExportFormat::Xlsx, Some(2021), None, &path).await.unwrap();
    let statements = wijkbudget::projections::reports::close_statements(&service.db, 2021).await.unwrap();
    let mut book = calamine::open_workbook_auto(&path).unwrap();
    for s in &statements {
        let sheet = book.worksheet_range(&s.fund_id).unwrap();
        let spent: i64 = sheet
            .rows()
            .skip(1)
            .map(|r| match r[3] {
                Data::Float(v) => (v * 100.0).round() as i64,
                ref other => panic!("spent {other:?} is not a number"),
            })
            .sum();
        assert_eq!(spent, s.amount_spent.0, "{}", s.fund_id);
    }
    let refused = export(&service.db, What::CloseStatement, ExportFormat::Csv, Some(2022), None, &path).await;
    assert!(refused.unwrap_err().to_string().contains("no fund of 2022 is closed"));
    service.db.close().await;
    store.cleanup().await;
}
