//! The HTTP API end to end: every endpoint, the access matrix, idempotency,
//! bad input and the OpenAPI document, on SQLite and on PostgreSQL. The
//! router is driven in-process with `tower::ServiceExt::oneshot`; one test
//! goes over a real socket.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod bad_input;
mod happy_path;
mod idempotency;
mod openapi;
mod socket;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use common::{Backend, TestStore, BACKENDS};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use wijkbudget::auth::{create_token, Role};
use wijkbudget::http::{router, AppState, BODY_LIMIT};
use wijkbudget::service::Service;
use wijkbudget::store::repository::head;
use wijkbudget::store::Db;

const API: &str = "/api/v1";

const OOST: &str = "oost-1223";
const CENTRUM: &str = "centrum";
const FUND: &str = "A21-182";
const WEGAPLEIN: &str = "2022-oost-1223-wegaplein";
const BANKJES: &str = "2022-oost-1223-bankjes";

/// Every route of the router, as the tests exercise it.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/wijken"),
    ("GET", "/wijken"),
    ("GET", "/wijken/{wijk_id}/budget"),
    ("GET", "/wijken/{wijk_id}/audit-trail"),
    ("POST", "/funds"),
    ("GET", "/funds"),
    ("GET", "/funds/{fund_id}"),
    ("POST", "/funds/{fund_id}/allocations"),
    ("POST", "/expenses"),
    ("POST", "/expenses/{expense_id}/reversal"),
    ("GET", "/events"),
    ("GET", "/integrity"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/openapi.json"),
];

/// The lifecycle's routes, whose behaviour and access `tests/lifecycle/`
/// covers; here they are only checked to be documented.
const LIFECYCLE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/commitments"),
    ("GET", "/commitments/{commitment_id}"),
    ("POST", "/commitments/{commitment_id}/payments"),
    ("POST", "/commitments/{commitment_id}/settlement"),
    ("POST", "/commitments/{commitment_id}/repayments"),
    ("POST", "/commitments/{commitment_id}/withdrawal"),
    ("POST", "/funds/{fund_id}/transfers"),
    ("POST", "/years/{year}/close"),
    ("GET", "/reports/themes"),
    ("GET", "/reports/stale-commitments"),
    ("GET", "/years/{year}/close-statement"),
];

/// The columns the audit trail's CSV has, in this order (others may sit between them).
const AUDIT_CSV_COLUMNS: [&str; 18] = [
    "position",
    "booked_on",
    "recorded_at",
    "event_type",
    "fund_id",
    "decision_reference",
    "account",
    "counter_account",
    "amount",
    "balance",
    "actor",
    "role",
    "reason",
    "reference",
    "initiative",
    "theme",
    "expense_id",
    "event_id",
];

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// Who calls: one token per role, no token, or a token that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Finance,
    Regisseur,
    Council,
    Auditor,
    Anonymous,
    Forged,
}

/// The order of the columns in the access matrix.
const CALLERS: [Who; 6] = [Who::Finance, Who::Regisseur, Who::Council, Who::Auditor, Who::Anonymous, Who::Forged];

#[derive(Clone)]
struct Tokens {
    finance: String,
    regisseur: String,
    council: String,
    auditor: String,
}

impl Tokens {
    async fn create(db: &Db) -> Self {
        Self {
            finance: create_token(db, Role::Finance, &[], "fenna-finance").await.unwrap(),
            regisseur: create_token(db, Role::Wijkregisseur, &[OOST.to_string()], "ward-regisseur").await.unwrap(),
            council: create_token(db, Role::Council, &[], "cor-council").await.unwrap(),
            auditor: create_token(db, Role::Auditor, &[], "anna-auditor").await.unwrap(),
        }
    }

    fn bearer(&self, who: Who) -> Option<String> {
        let token = match who {
            Who::Finance => &self.finance,
            Who::Regisseur => &self.regisseur,
            Who::Council => &self.council,
            Who::Auditor => &self.auditor,
            Who::Anonymous => return None,
            Who::Forged => return Some(format!("Bearer wb_{}", "0".repeat(48))),
        };
        Some(format!("Bearer {token}"))
    }
}

/// A running service on a fresh store: router, projector and tokens.
struct App {
    store: TestStore,
    db: Db,
    router: Router,
    stop: watch::Sender<bool>,
    projector: Option<JoinHandle<()>>,
    tokens: Tokens,
}

async fn open_service(url: &str) -> (Db, Router, watch::Sender<bool>, JoinHandle<()>) {
    let Service { db, ledger, projector } = Service::open(url).await.expect("the service opens");
    let (stop, stopped) = watch::channel(false);
    let projector = tokio::spawn(projector.run(stopped));
    (db, router(AppState::new(ledger)), stop, projector)
}

impl App {
    async fn start(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let (db, router, stop, projector) = open_service(&store.url).await;
        let tokens = Tokens::create(&db).await;
        Self { store, db, router, stop, projector: Some(projector), tokens }
    }

    async fn stop_service(&mut self) {
        let _ = self.stop.send(true);
        if let Some(projector) = self.projector.take() {
            projector.await.expect("the projector stops cleanly");
        }
        self.db.close().await;
    }

    /// Drops the router and the service and opens a new one on the same store.
    async fn restart(&mut self) {
        self.stop_service().await;
        let (db, router, stop, projector) = open_service(&self.store.url).await;
        self.db = db;
        self.router = router;
        self.stop = stop;
        self.projector = Some(projector);
    }

    async fn finish(mut self) {
        self.stop_service().await;
        self.store.cleanup().await;
    }

    fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// The position of the last event in the log.
    async fn head(&self) -> i64 {
        head(&self.db).await.expect("the log head reads").0
    }

    fn req(&self, method: Method, path: &str) -> Req {
        Req {
            router: self.router.clone(),
            tokens: self.tokens.clone(),
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn get(&self, path: &str) -> Req {
        self.req(Method::GET, path)
    }

    fn post(&self, path: &str, body: &Value) -> Req {
        self.req(Method::POST, path).json(body)
    }

    /// POST as finance and expect 201.
    async fn created(&self, path: &str, body: &Value) -> Value {
        self.post(path, body).by(Who::Finance).send().await.expect_json(201)
    }

    /// GET as finance and expect 200.
    async fn read(&self, path: &str) -> Value {
        self.get(path).by(Who::Finance).send().await.expect_json(200)
    }
}

/// One request, built up and then sent through the router.
struct Req {
    router: Router,
    tokens: Tokens,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn by(mut self, who: Who) -> Self {
        if let Some(bearer) = self.tokens.bearer(who) {
            self.headers.push((header::AUTHORIZATION.to_string(), bearer));
        }
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn key(self, idempotency_key: &str) -> Self {
        self.header("idempotency-key", idempotency_key)
    }

    fn json(self, body: &Value) -> Self {
        self.raw(Some("application/json"), serde_json::to_vec(body).unwrap())
    }

    /// A body exactly as given, with this content type (or none).
    fn raw(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        if let Some(content_type) = content_type {
            self.headers.push((header::CONTENT_TYPE.to_string(), content_type.to_string()));
        }
        self.body = body.into();
        self
    }

    async fn send(self) -> Resp {
        let what = format!("{} {}{}", self.method, API, self.path);
        let mut request = Request::builder().method(self.method.clone()).uri(format!("{API}{}", self.path));
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        // Each booking here is a new one: the routes that require an
        // Idempotency-Key get a fresh key unless the test gives its own
        // (tests/hardening.rs tests the 428).
        let keyed = self.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"));
        if self.method == Method::POST
            && !keyed
            && wijkbudget::http::writes::KEY_REQUIRED.iter().any(|r| same_route(r, &self.path))
        {
            request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        let request = request.body(Body::from(self.body)).unwrap();
        let response = self.router.oneshot(request).await.expect("the router never fails");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body reads");
        Resp { what, status: parts.status, headers: parts.headers, body }
    }
}

#[derive(Debug)]
struct Resp {
    what: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn content_type(&self) -> String {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: the body is not JSON ({e}): {}", self.what, self.text()))
    }

    #[track_caller]
    fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{} answered {}: {}", self.what, self.status, self.text());
        self
    }

    #[track_caller]
    fn expect_json(&self, status: u16) -> Value {
        self.expect_status(status);
        self.json()
    }

    /// Checks that this is an `application/problem+json` answer with this
    /// status and code, a non-empty detail that leaks no internals, and (if
    /// given) the field at fault.
    fn problem(&self, status: u16, code: &str, field: Option<&str>) -> Result<Value, String> {
        let fail = |why: String| {
            Err(format!("{}: {why}; got {} {} {}", self.what, self.status, self.content_type(), self.text()))
        };
        if self.status.as_u16() != status {
            return fail(format!("expected status {status}"));
        }
        if self.content_type() != "application/problem+json" {
            return fail("expected content-type application/problem+json".into());
        }
        let Ok(problem) = serde_json::from_slice::<Value>(&self.body) else {
            return fail("the problem is not JSON".into());
        };
        if problem["code"] != code {
            return fail(format!("expected code {code}"));
        }
        if problem["status"] != status {
            return fail("the problem's status differs from the response's".into());
        }
        if problem["type"] != format!("urn:wijkbudget:problem:{code}") {
            return fail("the problem's type does not match its code".into());
        }
        let detail = problem["detail"].as_str().unwrap_or("");
        if detail.trim().is_empty() {
            return fail("expected a non-empty detail".into());
        }
        let lower = detail.to_lowercase();
        if ["sqlx", "select ", "insert ", "panicked", "error returned from database", "src/"]
            .iter()
            .any(|s| lower.contains(s))
        {
            return fail("the detail leaks internals".into());
        }
        if let Some(field) = field {
            // The NLGov invalid-input extension: the field as a JSON pointer.
            let pointer = format!("#/{}", field.replace('.', "/"));
            if problem["errors"][0]["location"] != pointer.as_str() || problem["errors"][0]["code"] != code {
                return fail(format!("expected errors[0] at {pointer} with code {code}"));
            }
        }
        Ok(problem)
    }

    #[track_caller]
    fn expect_problem(&self, status: u16, code: &str, field: Option<&str>) -> Value {
        self.problem(status, code, field).unwrap_or_else(|why| panic!("{why}"))
    }
}

/// Fails with every collected mismatch at once.
#[track_caller]
fn assert_no_failures(context: &str, failures: &[String]) {
    assert!(failures.is_empty(), "{context}: {} failure(s):\n  {}", failures.len(), failures.join("\n  "));
}

// ---------------------------------------------------------------------------
// Request bodies and fixtures
// ---------------------------------------------------------------------------

fn wijk_body(wijk_id: &str, name: &str) -> Value {
    json!({ "wijk_id": wijk_id, "name": name })
}

fn fund_body(fund_id: &str, year: i32, amount: &str) -> Value {
    json!({
        "fund_id": fund_id,
        "year": year,
        "kind": "amendement",
        "name": format!("Amendement {fund_id}"),
        "amount": amount,
        "decision": { "reference": "A21-182", "adopted_on": "2021-11-11" },
        "purpose": "Sociale cohesie in de wijk"
    })
}

fn allocation_body(wijk_id: &str, amount: &str, booked_on: &str) -> Value {
    json!({ "wijk_id": wijk_id, "amount": amount, "reason": "Wijkbudget 2022", "booked_on": booked_on })
}

fn expense_body(
    expense_id: &str,
    wijk_id: &str,
    fund_id: &str,
    amount: &str,
    initiative: &str,
    booked_on: &str,
) -> Value {
    json!({
        "expense_id": expense_id,
        "wijk_id": wijk_id,
        "fund_id": fund_id,
        "amount": amount,
        "initiative": initiative,
        "theme": "spelen",
        "booked_on": booked_on,
        "reference": format!("factuur {expense_id}")
    })
}

fn allocations_path(fund_id: &str) -> String {
    format!("/funds/{fund_id}/allocations")
}

/// Two wijken, fund A21-182 (2022, 50000.00), 20000.00 allocated to
/// oost-1223 and 5000.00 to centrum, and two expenses of oost-1223:
/// 12500.00 on "Herinrichting Wegaplein" and 100.00 on benches. 7 events.
async fn seed(app: &App) {
    app.created("/wijken", &wijk_body(OOST, "Oost 1223")).await;
    app.created("/wijken", &wijk_body(CENTRUM, "Centrum")).await;
    app.created("/funds", &fund_body(FUND, 2022, "50000.00")).await;
    app.created(&allocations_path(FUND), &allocation_body(OOST, "20000.00", "2022-02-01")).await;
    app.created(&allocations_path(FUND), &allocation_body(CENTRUM, "5000.00", "2022-02-01")).await;
    app.created("/expenses", &expense_body(WEGAPLEIN, OOST, FUND, "12500.00", "Herinrichting Wegaplein", "2022-03-15"))
        .await;
    app.created("/expenses", &expense_body(BANKJES, OOST, FUND, "100.00", "Bankjes Wegaplein", "2022-06-01")).await;
}

fn positions(written: &Value) -> (i64, i64) {
    let first = written["positions"]["first"].as_i64().unwrap_or_else(|| panic!("no positions in {written}"));
    let last = written["positions"]["last"].as_i64().unwrap_or_else(|| panic!("no positions in {written}"));
    assert!(0 < first && first <= last, "positions out of order in {written}");
    (first, last)
}

/// The allocation line of one wijk in a fund's detail.
fn allocation_of<'a>(fund: &'a Value, wijk_id: &str) -> &'a Value {
    fund["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["wijk_id"] == wijk_id)
        .unwrap_or_else(|| panic!("no allocation to {wijk_id} in {fund}"))
}

/// Whether `path` (`/funds/F/allocations`) is an instance of `route` (`/funds/{fund_id}/allocations`).
fn same_route(route: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (route, path): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len() && route.iter().zip(&path).all(|(r, p)| r.starts_with('{') || r == p)
}

/// The fields of one CSV line in which every field is quoted.
fn csv_fields(line: &str) -> Vec<String> {
    let inner =
        line.strip_prefix('"').and_then(|l| l.strip_suffix('"')).unwrap_or_else(|| panic!("unquoted CSV line {line}"));
    inner.split("\",\"").map(|f| f.replace("\"\"", "\"")).collect()
}

/// An audit trail as CSV: a plain header line, then quoted rows.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    #[track_caller]
    fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(str::to_string).collect();
        let mut at = 0;
        for column in AUDIT_CSV_COLUMNS {
            match header[at..].iter().position(|h| h == column) {
                Some(i) => at += i + 1,
                None => panic!("the CSV header lacks `{column}` (or has it out of order): {}", header.join(",")),
            }
        }
        let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
        for row in &rows {
            assert_eq!(
                row.len(),
                header.len(),
                "a CSV row has {} fields for {} columns: {row:?}",
                row.len(),
                header.len()
            );
        }
        Self { header, rows }
    }

    fn get<'a>(&self, row: &'a [String], column: &str) -> &'a str {
        let i = self.header.iter().position(|h| h == column).unwrap_or_else(|| panic!("no column {column}"));
        &row[i]
    }
}
