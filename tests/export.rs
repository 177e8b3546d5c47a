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
    let cents = |cell: &Data| match cell {
        Data::Float(v) => (v * 100.0).round() as i64,
        Data::Empty => 0,
        other => panic!("{other:?} is not a number"),
    };
    for s in &statements {
        let sheet = book.worksheet_range(&s.fund_id).unwrap();
        let rows: Vec<_> = sheet.rows().collect();
        let lines = &rows[1..rows.iter().position(|r| r[0].to_string() == "totaal").unwrap()];
        // Every column sums to the statement's total, the lapsed one with the unallocated line.
        for (column, total) in
            [(3, s.amount_spent), (4, s.amount_committed), (6, s.amount_lapsed), (7, s.amount_carried_over)]
        {
            assert_eq!(lines.iter().map(|r| cents(&r[column])).sum::<i64>(), total.0, "{} column {column}", s.fund_id);
        }
        let difference = rows.iter().find(|r| r[0].to_string().starts_with("verschil")).unwrap();
        assert_eq!(cents(&difference[1]), 0, "{} reconciles", s.fund_id);
    }
    let refused = export(&service.db, What::CloseStatement, ExportFormat::Csv, Some(2022), None, &path).await;
    assert!(refused.unwrap_err().to_string().contains("no fund of 2022 is closed"));
    service.db.close().await;
    store.cleanup().await;
}

#[tokio::test]
async fn the_subsidy_register_never_names_a_private_person() {
    let (store, service) = demo().await;
    let lines = wijkbudget::projections::subsidies::register(&service.db, 2022).await.unwrap();
    let private = lines.iter().find(|l| l.initiative == "Opening pumptrack").expect("the demo's private grant");
    assert_eq!((private.recipient.as_str(), private.applicant_kind.as_str()), ("particulier", "private"));
    assert!(lines.iter().any(|l| l.recipient == "Bewonerscommissie Larenseweg"), "organisations are named");
    let dir = tempfile::tempdir().unwrap();
    for format in [ExportFormat::Csv, ExportFormat::Xlsx] {
        let path = dir.path().join("register");
        export(&service.db, What::Subsidieregister, format, Some(2022), None, &path).await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let text = match format {
            ExportFormat::Csv => String::from_utf8(bytes).unwrap(),
            ExportFormat::Xlsx => {
                let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
                let sheet = book.worksheet_range("Subsidieregister").unwrap();
                sheet.rows().flat_map(|r| r.iter().map(|c| c.to_string())).collect::<Vec<_>>().join(",")
            }
        };
        assert!(text.contains("particulier") && !text.contains("Mila Jansen"), "{format:?}: {text}");
    }
    service.db.close().await;
    store.cleanup().await;
}

#[tokio::test]
async fn a_grant_recorded_before_applicants_were_marked_counts_as_a_private_person() {
    use wijkbudget::on_db;
    let (store, service) = demo().await;
    // Rewrite nothing: store a grant as version 1.0.0 stored it, without the mark,
    // by appending through the ledger and reading the register as if the field were absent.
    let stored: i64 = on_db!(&service.db, pool => {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM events WHERE event_type = 'CommitmentMade' AND event_version = '1.1.0'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert!(stored > 0, "new grants are stored as CommitmentMade 1.1.0");
    let old = serde_json::json!({"CommitmentMade": {"commitment_id": "SUB-OUD", "applicant": "Jan Jansen"}});
    let upcast = wijkbudget::domain::upcasters()
        .iter()
        .find(|u| u.can_upcast("CommitmentMade", "1.0.0"))
        .expect("an upcaster for CommitmentMade 1.0.0")
        .upcast(cqrs_es::persist::SerializedEvent {
            aggregate_id: "f".into(),
            sequence: 1,
            aggregate_type: "fund".into(),
            event_type: "CommitmentMade".into(),
            event_version: "1.0.0".into(),
            payload: old,
            metadata: serde_json::json!({}),
        });
    assert_eq!(upcast.payload["CommitmentMade"]["applicant_kind"], "private");
    service.db.close().await;
    store.cleanup().await;
}

/// Each wijk's remaining money, per fund and in total, as the API answers it.
async fn remaining_budgets(db: &wijkbudget::store::Db) -> Vec<(String, Vec<(String, i64)>, i64)> {
    let mut out = Vec::new();
    for w in queries::wijk_summaries(db, Period::default()).await.unwrap() {
        let budget = queries::wijk_budget(db, &w.wijk_id, Period::default()).await.unwrap().unwrap();
        let funds = budget.funds.iter().map(|f| (f.fund_id.clone(), f.totals.amount_remaining.0)).collect();
        out.push((w.wijk_id, funds, w.totals.amount_remaining.0));
    }
    out
}

#[tokio::test]
async fn the_ledger_exported_as_bookings_imports_into_a_fresh_store_with_the_same_remaining_budgets() {
    let (store, service) = demo().await;
    let expected = remaining_budgets(&service.db).await;
    assert!(expected.iter().any(|(_, _, remaining)| *remaining != 0), "the demo has money left somewhere");
    let dir = tempfile::tempdir().unwrap();
    for (format, name) in [(ExportFormat::Csv, "boekingen.csv"), (ExportFormat::Xlsx, "boekingen.xlsx")] {
        let path = dir.path().join(name);
        let rows = export(&service.db, What::Bookings, format, None, None, &path).await.unwrap();

        let fresh_store = TestStore::new(Backend::Sqlite).await;
        let fresh = Service::open(&fresh_store.url).await.unwrap();
        let actor = wijkbudget::ledger::Actor { name: "round trip".into(), role: "finance".into() };
        let report = wijkbudget::import::import_file(&fresh, &path, false, &actor, |_, _, _| {}).await.unwrap();
        assert!(report.problems.is_empty(), "{name}: {:?}", report.problems);
        assert_eq!((report.rows, report.booked), (rows, rows), "{name}: every booking is booked again");
        fresh.projector.catch_up(|_| {}).await.unwrap();
        assert_eq!(remaining_budgets(&fresh.db).await, expected, "{name}");
        // Exported again, the copy's bookings are the original's.
        let again = dir.path().join(format!("again-{name}"));
        export(&fresh.db, What::Bookings, ExportFormat::Csv, None, None, &again).await.unwrap();
        let first = dir.path().join("first.csv");
        export(&service.db, What::Bookings, ExportFormat::Csv, None, None, &first).await.unwrap();
        assert_eq!(std::fs::read_to_string(&again).unwrap(), std::fs::read_to_string(&first).unwrap(), "{name}");
        fresh.db.close().await;
        fresh_store.cleanup().await;
    }
    store.cleanup().await;
}

#[tokio::test]
async fn the_api_answers_a_workbook_when_asked_for_one_in_accept() {
    use tower::ServiceExt;
    let (store, service) = demo().await;
    let app = wijkbudget::http::router(wijkbudget::http::AppState::new(service.ledger.clone()));
    let auditor =
        wijkbudget::auth::create_token(&service.db, wijkbudget::auth::Role::Auditor, &[], "auditor").await.unwrap();
    let get = |uri: &str| {
        axum::http::Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {auditor}"))
            .header("accept", wijkbudget::spreadsheet::XLSX_MEDIA_TYPE)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let workbook = |bytes: &[u8]| calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();

    let response = app.clone().oneshot(get("/api/v1/wijken/oost-1223/audit-trail?year=2022")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], wijkbudget::spreadsheet::XLSX_MEDIA_TYPE);
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap();
    let mut book = workbook(&bytes);
    assert_eq!(book.sheet_names(), ["Over dit bestand", "oost-1223"]);
    let sheet = book.worksheet_range("oost-1223").unwrap();
    assert!(sheet.rows().skip(1).all(|r| matches!(r[9], Data::Float(_))), "amounts are numbers");

    // A workbook is the whole trail: a narrowing it cannot honour is refused, naming it.
    let response = app.clone().oneshot(get("/api/v1/wijken/oost-1223/audit-trail?fund_id=A21-182")).await.unwrap();
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert!(problem.to_string().contains("fund_id"), "{problem}");

    let response = app.clone().oneshot(get("/api/v1/years/2021/close-statement")).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap();
    let statements = wijkbudget::projections::reports::close_statements(&service.db, 2021).await.unwrap();
    assert_eq!(workbook(&bytes).sheet_names().len(), statements.len() + 1, "a sheet per closed fund");
    service.db.close().await;
    store.cleanup().await;
}
