//! Importing the books: the demo as an import file, a broken file that
//! stores nothing, re-importing and resuming, and XLSX, on both stores.

mod common;

use std::path::{Path, PathBuf};

use common::{read_models, Backend, TestStore, BACKENDS};
use wijkbudget::import::{self, rows_of, Report};
use wijkbudget::ledger::Actor;
use wijkbudget::service::Service;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-import.csv")
}

fn broken() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/import/broken.csv")
}

fn actor() -> Actor {
    Actor { name: "import test".into(), role: "finance".into() }
}

async fn run(service: &Service, file: &Path, dry_run: bool) -> Report {
    import::import_file(service, file, dry_run, &actor(), |_, _, _| {}).await.expect("the import runs")
}

async fn head(service: &Service) -> i64 {
    wijkbudget::store::repository::head(&service.db).await.unwrap().0
}

/// Columns that differ between two stores fed the same bookings by other hands.
const OTHER_HANDS: &[&str] = &["event_id", "recorded_at", "actor"];

#[test]
fn the_example_import_file_is_the_demo() {
    let expected = rows_of::demo_csv();
    if std::env::var("WIJKBUDGET_WRITE_EXAMPLES").is_ok() {
        std::fs::write(example(), &expected).unwrap();
    }
    let committed = std::fs::read_to_string(example()).unwrap_or_default();
    assert!(
        committed == expected,
        "examples/demo-import.csv is not the demo; write it anew with WIJKBUDGET_WRITE_EXAMPLES=1 cargo test --test import"
    );
}

#[tokio::test]
async fn importing_the_demo_file_gives_the_demos_read_models_and_again_books_nothing() {
    for backend in BACKENDS {
        let demo_store = TestStore::new(backend).await;
        let demo = Service::open(&demo_store.url).await.unwrap();
        wijkbudget::demo::load(&demo.ledger, |_, _| {}).await.unwrap();
        demo.projector.catch_up(|_| {}).await.unwrap();

        let store = TestStore::new(backend).await;
        let service = Service::open(&store.url).await.unwrap();
        let report = run(&service, &example(), false).await;
        assert!(report.problems.is_empty(), "{backend:?}: {:?}", report.problems);
        assert_eq!(report.booked, report.rows, "{backend:?}");
        service.projector.catch_up(|_| {}).await.unwrap();
        assert_eq!(
            read_models(&service.db, OTHER_HANDS).await,
            read_models(&demo.db, OTHER_HANDS).await,
            "{backend:?}: the imported demo differs from the demo"
        );

        let before = head(&service).await;
        let again = run(&service, &example(), false).await;
        assert_eq!((again.booked, again.already), (0, again.rows), "{backend:?}: a second import books nothing");
        assert_eq!(head(&service).await, before);
        demo.db.close().await;
        demo_store.cleanup().await;
        service.db.close().await;
        store.cleanup().await;
    }
}

#[tokio::test]
async fn a_broken_file_reports_every_bad_row_with_its_column_and_stores_nothing() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let service = Service::open(&store.url).await.unwrap();
        for dry_run in [true, false] {
            let report = run(&service, &broken(), dry_run).await;
            assert_eq!(head(&service).await, 0, "{backend:?}: a broken file stores nothing (dry run {dry_run})");
            let found: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
            // (row, column, words of the reason): the file's mistakes, one kind per row.
            for (row, column, words) in [
                (7, Some("type"), "no kind of booking"),
                (8, Some("amount"), "is not an amount"),
                (9, Some("amount"), "could be thousands or cents"),
                (10, Some("booked_on"), "is not a date"),
                (11, Some("initiative"), "is empty"),
                (12, Some("wijk_id"), "may only contain"),
                (13, Some("kind"), "no fund kind"),
                (14, Some("wijk_id"), "wijk zuid-9 is not registered"),
                (15, Some("amount"), "would overspend"),
                (16, Some("booked_on"), "outside fund begroting-2022's year"),
                (17, Some("expense_id"), "already"),
                (18, Some("commitment_id"), "no commitment has id `nergens`"),
                (19, Some("amount"), "too much"),
                (20, Some("cancelled"), "neither yes nor no"),
            ] {
                let column = column.map_or(String::new(), |c| format!(", {c}"));
                let prefix = format!("row {row}{column}: ");
                assert!(
                    found.iter().any(|p| p.starts_with(&prefix) && p.contains(words)),
                    "{backend:?}: no `{prefix}...{words}...` among {found:#?}"
                );
            }
            let good_rows = [2, 3, 4, 5, 6];
            assert!(report.problems.iter().all(|p| !good_rows.contains(&p.row)), "{found:#?}");
        }
        service.db.close().await;
        store.cleanup().await;
    }
}

#[tokio::test]
async fn an_import_stopped_halfway_books_each_row_exactly_once_when_run_again() {
    let store = TestStore::new(Backend::Sqlite).await;
    let service = Service::open(&store.url).await.unwrap();
    let full = std::fs::read_to_string(example()).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    // The first half of the file: as far as an import got before it was stopped.
    let half = dir.path().join("half.csv");
    std::fs::write(&half, lines[..lines.len() / 2].join("\n")).unwrap();
    let first = run(&service, &half, false).await;
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    let second = run(&service, &example(), false).await;
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    assert_eq!(second.already, first.booked, "the rows booked before are left alone");
    assert_eq!(first.booked + second.booked, second.rows);
    service.projector.catch_up(|_| {}).await.unwrap();

    let reference_store = TestStore::new(Backend::Sqlite).await;
    let reference = Service::open(&reference_store.url).await.unwrap();
    run(&reference, &example(), false).await;
    reference.projector.catch_up(|_| {}).await.unwrap();
    assert_eq!(read_models(&service.db, OTHER_HANDS).await, read_models(&reference.db, OTHER_HANDS).await);
    store.cleanup().await;
    reference_store.cleanup().await;
}

#[tokio::test]
async fn an_xlsx_workbook_imports_like_its_csv() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("demo.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let text = std::fs::read_to_string(example()).unwrap();
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
    for (r, record) in reader.records().enumerate() {
        for (c, value) in record.unwrap().iter().enumerate() {
            // Amounts as numbers and dates as dates, as a spreadsheet holds them.
            let (r, c) = (r as u32, c as u16);
            if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                let format = rust_xlsxwriter::Format::new().set_num_format("dd-mm-yyyy");
                sheet.write_date_with_format(r, c, &date, &format).unwrap();
            } else if r > 0 && value.contains('.') && value.parse::<f64>().is_ok() {
                sheet.write_number(r, c, value.parse::<f64>().unwrap()).unwrap();
            } else {
                sheet.write_string(r, c, value).unwrap();
            }
        }
    }
    workbook.save(&xlsx).unwrap();
    let store = TestStore::new(Backend::Sqlite).await;
    let service = Service::open(&store.url).await.unwrap();
    let report = run(&service, &xlsx, false).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    service.projector.catch_up(|_| {}).await.unwrap();
    let reference_store = TestStore::new(Backend::Sqlite).await;
    let reference = Service::open(&reference_store.url).await.unwrap();
    run(&reference, &example(), false).await;
    reference.projector.catch_up(|_| {}).await.unwrap();
    assert_eq!(read_models(&service.db, OTHER_HANDS).await, read_models(&reference.db, OTHER_HANDS).await);
    // The same books as CSV, after the workbook: its numbers and dates read
    // as the CSV's text, so nothing books twice.
    let again = run(&service, &example(), false).await;
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    assert_eq!((again.booked, again.already), (0, again.rows));
    store.cleanup().await;
    reference_store.cleanup().await;
}

#[test]
fn the_command_line_dry_run_lists_the_bad_rows_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
        .args(["import", "--dry-run", "--file"])
        .arg(broken())
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("row 8, amount: `12,34,56` is not an amount"), "{stderr}");
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    assert!(!db.exists(), "a dry run into a ledger that does not exist creates none");
}

/// The import as the command line runs it, dying at `failpoint` if given.
fn import_command(url: &str, failpoint: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wijkbudget"));
    command.args(["import", "--file"]).arg(example()).args(["--database", url]);
    if let Some(name) = failpoint {
        command.env(wijkbudget::failpoint::VARIABLE, name);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn an_import_killed_while_booking_or_projecting_books_each_row_once_when_run_again() {
    for backend in BACKENDS {
        let reference_store = TestStore::new(backend).await;
        let reference = Service::open(&reference_store.url).await.unwrap();
        run(&reference, &example(), false).await;
        reference.projector.catch_up(|_| {}).await.unwrap();
        let rows = rows_of::demo_csv().lines().count() as i64 - 1;

        // Killed with the whole file appended but not committed, and with it
        // committed but not yet in the read models.
        // And killed while the projector brings the read models up to it.
        for (failpoint, booked_before_the_kill) in
            [("import-before-commit", false), ("import-after-append", true), ("projector-before-commit", true)]
        {
            let store = TestStore::new(backend).await;
            let killed = import_command(&store.url, Some(failpoint));
            let stderr = String::from_utf8_lossy(&killed.stderr);
            assert!(stderr.contains(&format!("failpoint {failpoint}")), "{backend:?} {failpoint}: {stderr}");
            assert!(!killed.status.success());

            let service = Service::open(&store.url).await.unwrap();
            let after_kill = head(&service).await;
            assert_eq!(after_kill > 0, booked_before_the_kill, "{backend:?} {failpoint}: the file is all or nothing");
            service.db.close().await;

            let again = import_command(&store.url, None);
            assert!(again.status.success(), "{backend:?} {failpoint}: {}", String::from_utf8_lossy(&again.stderr));
            let stdout = String::from_utf8_lossy(&again.stdout);
            if booked_before_the_kill {
                assert!(stdout.contains("already in the ledger; nothing booked"), "{backend:?} {failpoint}: {stdout}");
            } else {
                assert!(stdout.contains(&format!("{rows} rows booked")), "{backend:?} {failpoint}: {stdout}");
            }
            let service = Service::open(&store.url).await.unwrap();
            service.projector.catch_up(|_| {}).await.unwrap();
            assert_eq!(
                read_models(&service.db, OTHER_HANDS).await,
                read_models(&reference.db, OTHER_HANDS).await,
                "{backend:?} {failpoint}: each row booked exactly once, and projected"
            );
            service.db.close().await;
            store.cleanup().await;
        }
        reference.db.close().await;
        reference_store.cleanup().await;
    }
}

#[tokio::test]
async fn a_copy_is_appended_only_onto_the_head_it_was_made_from() {
    use wijkbudget::domain::wijk::WijkCommand;
    use wijkbudget::ledger::CommandMeta;
    use wijkbudget::store::copy;
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let service = Service::open(&store.url).await.unwrap();
        let register = |id: &str| WijkCommand::Register {
            wijk_id: wijkbudget::domain::ids::WijkId::parse(id).unwrap(),
            name: wijkbudget::domain::ids::Text::parse(id).unwrap(),
        };
        let meta = CommandMeta::new(actor());
        service.ledger.register_wijk(register("oost"), &meta).await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (scratch, _) = copy::copy(&service.db, &dir.path().join("try.db"), |_| {}).await.unwrap();
        let base = wijkbudget::store::repository::head(&scratch).await.unwrap();
        let tried = Service::on(scratch);
        tried.ledger.register_wijk(register("west"), &meta).await.unwrap();
        // Someone books on the real ledger after the copy was made.
        service.ledger.register_wijk(register("zuid"), &meta).await.unwrap();
        let moved = head(&service).await;
        assert!(!copy::append_from_copy(&tried.db, &service.db, &base, |_| {}).await.unwrap(), "{backend:?}");
        assert_eq!(head(&service).await, moved, "{backend:?}: nothing of the copy is appended");

        // Onto the head it was made from, the copy's bookings go in whole and the chain holds.
        let (scratch, _) = copy::copy(&service.db, &dir.path().join("again.db"), |_| {}).await.unwrap();
        let base = wijkbudget::store::repository::head(&scratch).await.unwrap();
        let tried = Service::on(scratch);
        tried.ledger.register_wijk(register("west"), &meta).await.unwrap();
        assert!(copy::append_from_copy(&tried.db, &service.db, &base, |_| {}).await.unwrap(), "{backend:?}");
        assert_eq!(head(&service).await, moved + 1, "{backend:?}");
        let verified = wijkbudget::verify::verify_database(&service.db, None, false).await.unwrap();
        assert!(verified.is_ok(), "{backend:?}: {verified:?}");
        tried.db.close().await;
        service.db.close().await;
        store.cleanup().await;
    }
}

/// One request to the router, as a finance officer (or `token`'s holder).
async fn call(
    app: &axum::Router,
    token: &str,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> (axum::http::StatusCode, axum::http::HeaderMap, serde_json::Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/csv")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Follows an import's Location until it is no longer running.
async fn finished(app: &axum::Router, token: &str, location: &str) -> serde_json::Value {
    for _ in 0..600 {
        let (status, _, view) = call(app, token, "GET", location, Vec::new()).await;
        assert_eq!(status, 200, "{view}");
        if view["status"] != "running" {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import at {location} did not finish in 30 s");
}

#[tokio::test]
async fn over_http_an_import_runs_in_the_background_and_reports_every_bad_row() {
    use wijkbudget::auth::{create_token, Role};
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let service = Service::open(&store.url).await.unwrap();
        let app = wijkbudget::http::router(wijkbudget::http::AppState::new(service.ledger.clone()));
        let finance = create_token(&service.db, Role::Finance, &[], "financiën").await.unwrap();
        let auditor = create_token(&service.db, Role::Auditor, &[], "auditor").await.unwrap();
        let file = |path: PathBuf| std::fs::read(path).unwrap();

        // Only finance imports; a body that is no table of bookings is refused at once.
        let (status, ..) = call(&app, &auditor, "POST", "/api/v1/imports", file(example())).await;
        assert_eq!(status, 403, "{backend:?}");
        let (status, _, problem) = call(&app, &finance, "POST", "/api/v1/imports", Vec::new()).await;
        assert_eq!(status, 400, "{backend:?}: {problem}");
        let (status, _, problem) =
            call(&app, &finance, "POST", "/api/v1/imports", b"kleur,maat\nrood,1\n".to_vec()).await;
        assert_eq!(status, 422, "{backend:?}: {problem}");

        // The broken file: every bad row, as the command line reports them, and nothing stored.
        let expected = run(&service, &broken(), true).await.problems;
        let (status, headers, started) =
            call(&app, &finance, "POST", "/api/v1/imports?dry_run=true", file(broken())).await;
        assert_eq!(status, 202, "{backend:?}: {started}");
        let location = headers["location"].to_str().unwrap().to_string();
        assert_eq!(location, format!("/api/v1/imports/{}", started["id"].as_str().unwrap()));
        let report = finished(&app, &finance, &location).await;
        assert_eq!(report["status"], "finished", "{backend:?}: {report}");
        let problems = report["problems"].as_array().unwrap();
        assert_eq!(problems.len(), expected.len(), "{backend:?}: {report}");
        for (got, want) in problems.iter().zip(&expected) {
            assert_eq!(got["row"], want.row, "{backend:?}");
            assert_eq!(got["reason"], want.reason.as_str(), "{backend:?}");
        }
        assert_eq!(head(&service).await, 0, "{backend:?}: a broken file stores nothing");

        // The good file books; sent again, it books nothing.
        for (booked, already) in [(true, false), (false, true)] {
            let (status, headers, _) = call(&app, &finance, "POST", "/api/v1/imports", file(example())).await;
            assert_eq!(status, 202, "{backend:?}");
            let report = finished(&app, &finance, headers["location"].to_str().unwrap()).await;
            let rows = report["rows"].as_u64().unwrap();
            assert!(rows > 100, "{backend:?}: {report}");
            assert_eq!(report["booked"].as_u64() == Some(rows), booked, "{backend:?}: {report}");
            assert_eq!(report["already"].as_u64() == Some(rows), already, "{backend:?}: {report}");
        }
        let (status, _, problem) = call(&app, &finance, "GET", "/api/v1/imports/no-such-import", Vec::new()).await;
        assert_eq!(status, 404, "{backend:?}: {problem}");
        service.db.close().await;
        store.cleanup().await;
    }
}
