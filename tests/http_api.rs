//! The HTTP API end to end: every endpoint, the access matrix, idempotency,
//! bad input and the OpenAPI document, on SQLite and on PostgreSQL. The
//! router is driven in-process with `tower::ServiceExt::oneshot`; one test
//! goes over a real socket.

mod common;

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

/// The lifecycle's routes, whose behaviour and access `tests/lifecycle.rs`
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

// ---------------------------------------------------------------------------
// 1. Every endpoint, happy path
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_endpoint_answers_its_happy_path_and_reads_see_the_write_before_it() {
    for backend in BACKENDS {
        let app = App::start(backend).await;

        // POST /wijken, and the list sees it at once.
        let written = app.created("/wijken", &wijk_body(OOST, "Oost 1223")).await;
        assert_eq!(written["resource"], json!({ "wijk_id": OOST, "name": "Oost 1223" }));
        positions(&written);
        let wijken = app.read("/wijken").await;
        assert_eq!(wijken.as_array().unwrap().len(), 1, "{wijken}");
        assert_eq!(wijken[0]["wijk_id"], OOST);
        assert_eq!(wijken[0]["amount_allocated"], "0.00");
        app.created("/wijken", &wijk_body(CENTRUM, "Centrum")).await;

        // POST /funds
        let written = app.created("/funds", &fund_body(FUND, 2022, "50000.00")).await;
        assert_eq!(written["resource"]["fund_id"], FUND);
        assert_eq!(written["resource"]["amount"], "50000.00");
        positions(&written);
        let funds = app.read("/funds").await;
        assert_eq!(funds[0]["fund_id"], FUND, "{funds}");
        assert_eq!(funds[0]["amount"], "50000.00");
        assert_eq!(funds[0]["amount_unallocated"], "50000.00");
        assert_eq!(funds[0]["decision_reference"], "A21-182");

        // POST /funds/{id}/allocations
        let written = app.created(&allocations_path(FUND), &allocation_body(OOST, "20000.00", "2022-02-01")).await;
        assert_eq!(written["resource"]["fund_id"], FUND);
        assert_eq!(written["resource"]["wijk_id"], OOST);
        assert_eq!(written["resource"]["amount"], "20000.00");
        assert_eq!(written["resource"]["booked_on"], "2022-02-01");
        positions(&written);
        let budget = app.read(&format!("/wijken/{OOST}/budget")).await;
        assert_eq!(budget["amount_allocated"], "20000.00", "{budget}");
        assert_eq!(budget["amount_remaining"], "20000.00");

        // Without booked_on, the allocation books on a day of the fund's year.
        let mut centrum = allocation_body(CENTRUM, "5000.00", "");
        centrum.as_object_mut().unwrap().remove("booked_on");
        let written = app.created(&allocations_path(FUND), &centrum).await;
        let booked_on = written["resource"]["booked_on"].as_str().unwrap_or_default().to_string();
        assert!(booked_on.starts_with("2022-"), "booked_on {booked_on} is outside 2022: {written}");

        // POST /expenses: A21-182 spent on "Herinrichting Wegaplein".
        let wegaplein = expense_body(WEGAPLEIN, OOST, FUND, "12500.00", "Herinrichting Wegaplein", "2022-03-15");
        let written = app.created("/expenses", &wegaplein).await;
        assert_eq!(written["resource"]["expense_id"], WEGAPLEIN);
        assert_eq!(written["resource"]["amount"], "12500.00");
        positions(&written);
        let fund = app.read(&format!("/funds/{FUND}")).await;
        let expense = &fund["expenses"][0];
        assert_eq!(expense["expense_id"], WEGAPLEIN, "{fund}");
        assert_eq!(expense["initiative"], "Herinrichting Wegaplein");
        assert_eq!(expense["wijk_id"], OOST);
        assert_eq!(expense["amount"], "12500.00");
        assert_eq!(expense["reversed"], false);

        // POST /expenses/{id}/reversal
        let bankjes = expense_body(BANKJES, OOST, FUND, "100.00", "Bankjes Wegaplein", "2022-06-01");
        app.created("/expenses", &bankjes).await;
        let written =
            app.created(&format!("/expenses/{BANKJES}/reversal"), &json!({ "reason": "dubbel geboekt" })).await;
        assert_eq!(written["resource"], json!({ "expense_id": BANKJES, "fund_id": FUND, "reason": "dubbel geboekt" }));
        positions(&written);
        let fund = app.read(&format!("/funds/{FUND}")).await;
        let reversed = fund["expenses"].as_array().unwrap().iter().find(|e| e["expense_id"] == BANKJES).unwrap();
        assert_eq!(reversed["reversed"], true, "{fund}");
        assert_eq!(reversed["reversal_reason"], "dubbel geboekt");

        // GET /funds/{id}: allocated to oost-1223 and spent on the Wegaplein.
        assert_eq!(fund["fund_id"], FUND);
        assert_eq!(fund["amount_allocated"], "25000.00", "{fund}");
        assert_eq!(fund["amount_spent"], "12500.00");
        assert_eq!(fund["amount_unallocated"], "25000.00");
        let oost = allocation_of(&fund, OOST);
        assert_eq!(oost["amount_allocated"], "20000.00");
        assert_eq!(oost["amount_spent"], "12500.00");
        assert_eq!(oost["amount_remaining"], "7500.00");
        assert!(fund["expenses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["initiative"] == "Herinrichting Wegaplein" && e["wijk_id"] == OOST && e["reversed"] == false));
        assert_eq!(fund["next_after"], Value::Null, "{fund}");

        // GET /funds/{id}?limit=&after=: the expenses a page at a time; the
        // totals on every page still cover them all.
        let first = app.read(&format!("/funds/{FUND}?limit=1")).await;
        assert_eq!(first["expenses"].as_array().unwrap().len(), 1, "{first}");
        assert_eq!(first["expenses"][0]["expense_id"], WEGAPLEIN);
        assert_eq!(first["amount_spent"], "12500.00");
        let next = first["next_after"].as_i64().unwrap_or_else(|| panic!("{first}"));
        assert_eq!(next, first["expenses"][0]["position"].as_i64().unwrap());
        let second = app.read(&format!("/funds/{FUND}?limit=1&after={next}")).await;
        assert_eq!(second["expenses"][0]["expense_id"], BANKJES, "{second}");
        assert_eq!(second["next_after"], Value::Null, "{second}");

        // GET /wijken
        let wijken = app.read("/wijken").await;
        let ids: Vec<&str> = wijken.as_array().unwrap().iter().map(|w| w["wijk_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [CENTRUM, OOST]);
        let oost_summary = wijken.as_array().unwrap().iter().find(|w| w["wijk_id"] == OOST).unwrap();
        assert_eq!(oost_summary["amount_spent"], "12500.00");
        assert_eq!(app.read("/wijken?year=2023").await[1]["amount_allocated"], "0.00");

        // GET /wijken/{id}/budget, with ?year= and ?as_of=
        let budget = app.read(&format!("/wijken/{OOST}/budget")).await;
        assert_eq!(budget["wijk_id"], OOST);
        assert_eq!(budget["name"], "Oost 1223");
        assert_eq!(budget["amount_allocated"], "20000.00", "{budget}");
        assert_eq!(budget["amount_spent"], "12500.00");
        assert_eq!(budget["amount_remaining"], "7500.00");
        assert_eq!(budget["funds"][0]["fund_id"], FUND);
        assert_eq!(budget["funds"][0]["decision_reference"], "A21-182");
        let year = app.read(&format!("/wijken/{OOST}/budget?year=2022")).await;
        assert_eq!(year["year"], 2022);
        assert_eq!(year["amount_remaining"], "7500.00", "{year}");
        let other_year = app.read(&format!("/wijken/{OOST}/budget?year=2023")).await;
        assert_eq!(other_year["amount_allocated"], "0.00", "{other_year}");
        assert_eq!(other_year["funds"], json!([]));
        let before_expense = app.read(&format!("/wijken/{OOST}/budget?as_of=2022-03-01")).await;
        assert_eq!(before_expense["as_of"], "2022-03-01");
        assert_eq!(before_expense["amount_allocated"], "20000.00", "{before_expense}");
        assert_eq!(before_expense["amount_spent"], "0.00");
        let before_allocation = app.read(&format!("/wijken/{OOST}/budget?year=2022&as_of=2022-01-15")).await;
        assert_eq!(before_allocation["amount_allocated"], "0.00", "{before_allocation}");

        // GET /wijken/{id}/audit-trail as JSON: every posting on the wijk's
        // accounts: the allocation (one), two expenses and a reversal (two each).
        let trail = app.read(&format!("/wijken/{OOST}/audit-trail")).await;
        let rows = trail["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 7, "{trail}");
        assert_eq!(trail["opening_balance"], "0.00");
        assert_eq!(trail["next_after"], Value::Null);
        assert_eq!(rows[0]["event_type"], "BudgetAllocated");
        assert_eq!(rows[0]["balance"], "20000.00", "{trail}");
        assert_eq!(rows[1]["expense_id"], WEGAPLEIN);
        assert_eq!(rows[1]["initiative"], "Herinrichting Wegaplein");
        assert_eq!(rows[1]["decision_reference"], "A21-182");
        assert_eq!(rows[1]["counter_account"], "spent:oost-1223:A21-182", "{trail}");
        assert_eq!(rows[2]["account"], "spent:oost-1223:A21-182");
        assert_eq!(rows[2]["balance"], rows[1]["balance"], "a posting on spent leaves the available money as it was");
        assert_eq!(rows[6]["event_type"], "ExpenseReversed");
        assert_eq!(rows[6]["balance"], "7500.00");
        for row in rows {
            assert_eq!(row["actor"], "fenna-finance", "{row}");
            assert_eq!(row["role"], "finance");
            assert_eq!(row["fund_id"], FUND);
        }
        let all_positions: Vec<i64> = rows.iter().map(|r| r["position"].as_i64().unwrap()).collect();

        // Pagination with limit and after/next_after: pages of at most three
        // rows that never split an event, and together are the whole trail.
        let mut paged = Vec::new();
        let mut after = 0;
        let mut expected_opening = "0.00".to_string();
        loop {
            let page = app.read(&format!("/wijken/{OOST}/audit-trail?limit=3&after={after}")).await;
            let page_rows = page["rows"].as_array().unwrap();
            assert!(!page_rows.is_empty() && page_rows.len() <= 3, "{page}");
            assert_eq!(page["opening_balance"], expected_opening.as_str(), "{page}");
            expected_opening = page_rows.last().unwrap()["balance"].as_str().unwrap().to_string();
            paged.extend(page_rows.iter().map(|r| r["position"].as_i64().unwrap()));
            match page["next_after"].as_i64() {
                Some(next) => {
                    assert_eq!(next, page_rows.last().unwrap()["position"].as_i64().unwrap());
                    after = next;
                }
                None => break,
            }
        }
        assert_eq!(paged, all_positions, "the pages cover the trail once, in order");
        let filtered = app.read(&format!("/wijken/{OOST}/audit-trail?fund_id={FUND}&year=2022")).await;
        assert_eq!(filtered["rows"].as_array().unwrap().len(), 7);

        // The audit trail as CSV.
        let csv =
            app.get(&format!("/wijken/{OOST}/audit-trail")).by(Who::Finance).header("accept", "text/csv").send().await;
        csv.expect_status(200);
        assert!(csv.content_type().starts_with("text/csv"), "{}", csv.content_type());
        let text = csv.text();
        let table = Csv::parse(&text);
        assert_eq!(table.rows.len(), 7, "{text}");
        let row =
            table.rows.iter().find(|r| table.get(r, "expense_id") == WEGAPLEIN).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(table.get(row, "event_type"), "ExpenseRecorded");
        assert_eq!(table.get(row, "fund_id"), FUND);
        assert_eq!(table.get(row, "decision_reference"), "A21-182");
        assert_eq!(table.get(row, "actor"), "fenna-finance");
        assert_eq!(table.get(row, "role"), "finance");
        assert_eq!(table.get(row, "initiative"), "Herinrichting Wegaplein");
        assert_eq!(table.get(row, "booked_on"), "2022-03-15");
        assert_eq!(table.get(row, "balance"), "7500.00");
        let csv_page = app
            .get(&format!("/wijken/{OOST}/audit-trail?limit=1"))
            .by(Who::Finance)
            .header("accept", "text/csv")
            .send()
            .await;
        csv_page.expect_status(200);
        assert_eq!(
            csv_page.headers.get("x-next-after").and_then(|v| v.to_str().ok()),
            Some(all_positions[0].to_string().as_str())
        );

        // GET /funds with ?year=
        assert_eq!(app.read("/funds?year=2022").await.as_array().unwrap().len(), 1);
        assert_eq!(app.read("/funds?year=2023").await, json!([]));

        // GET /events?after=&limit=
        let log_head = app.head().await;
        let first = app.read("/events?after=0&limit=3").await;
        let events = first["events"].as_array().unwrap();
        assert_eq!(events.len(), 3, "{first}");
        assert_eq!(events[0]["position"], 1);
        assert!(events
            .iter()
            .all(|e| e["hash"].as_str().is_some_and(|h| !h.is_empty()) && e["event_type"].is_string()));
        let next = first["next_after"].as_i64().unwrap_or_else(|| panic!("{first}"));
        assert_eq!(next, events[2]["position"].as_i64().unwrap());
        let rest = app.read(&format!("/events?after={next}&limit=1000")).await;
        let rest = rest["events"].as_array().unwrap();
        assert_eq!(rest.len() as i64, log_head - next);
        assert_eq!(rest.last().unwrap()["position"], log_head);
        assert_eq!(app.read("/events").await["events"].as_array().unwrap().len() as i64, log_head);

        // GET /integrity: the head of the hash chain.
        let (position, hash) = head(&app.db).await.unwrap();
        let integrity = app.read("/integrity").await;
        assert_eq!(integrity["head"], format!("{position}:{hash}"), "{integrity}");

        // GET /health, /ready (no lag after the writes), /openapi.json
        assert_eq!(app.get("/health").send().await.expect_json(200), json!({ "status": "ok" }));
        let ready = app.get("/ready").send().await.expect_json(200);
        assert_eq!(ready["status"], "ready");
        assert_eq!(ready["projector_lag"], 0, "{ready}");
        assert_eq!(ready["log_head"], log_head);
        assert_eq!(ready["projector_position"], log_head);
        assert_eq!(ready["store"], if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
        let doc = app.get("/openapi.json").send().await.expect_json(200);
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);

        app.finish().await;
    }
}

/// An allocation's answer flattens the request and adds the booking date;
/// a JSON object must still name `booked_on` only once (RFC 8259 §4).
#[tokio::test]
async fn an_allocation_answer_names_each_key_once() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        for body in
            [allocation_body(OOST, "1.00", "2022-04-01"), json!({ "wijk_id": OOST, "amount": "1.00", "reason": "x" })]
        {
            let resp = app.post(&allocations_path(FUND), &body).by(Who::Finance).send().await;
            resp.expect_status(201);
            let text = resp.text();
            if text.matches("\"booked_on\"").count() != 1 {
                failures.push(format!("{backend:?}: `booked_on` appears more than once in {text}"));
            }
            assert!(resp.json()["resource"]["booked_on"].is_string(), "{text}");
        }
        app.finish().await;
    }
    assert_no_failures("allocation answers", &failures);
}

// ---------------------------------------------------------------------------
// 2. The access matrix
// ---------------------------------------------------------------------------

const OK: u16 = 200;
const NEW: u16 = 201;

struct Row {
    method: &'static str,
    template: &'static str,
    path: String,
    body: Option<Value>,
    /// Expected status for [finance, wijkregisseur, council, auditor, no token, wrong token].
    expect: [u16; 6],
}

fn row(method: &'static str, template: &'static str, path: &str, body: Option<Value>, expect: [u16; 6]) -> Row {
    Row { method, template, path: path.to_string(), body, expect }
}

fn access_matrix() -> Vec<Row> {
    let oost_budget = format!("/wijken/{OOST}/budget");
    let centrum_budget = format!("/wijken/{CENTRUM}/budget");
    let oost_trail = format!("/wijken/{OOST}/audit-trail");
    let centrum_trail = format!("/wijken/{CENTRUM}/audit-trail");
    let fund = format!("/funds/{FUND}");
    let reversal = format!("/expenses/{BANKJES}/reversal");
    #[rustfmt::skip]
    let rows = vec![
        //                                                                         finance regisseur council auditor none wrong
        row("POST", "/wijken", "/wijken", Some(wijk_body("noord-7", "Noord 7")),           [NEW, 403, 403, 403, 401, 401]),
        row("POST", "/funds", "/funds", Some(fund_body("B-2022", 2022, "1000.00")),        [NEW, 403, 403, 403, 401, 401]),
        row("POST", "/funds/{fund_id}/allocations", &allocations_path(FUND),
            Some(allocation_body(OOST, "1.00", "2022-04-01")),                             [NEW, 403, 403, 403, 401, 401]),
        row("POST", "/expenses", "/expenses",
            Some(expense_body("matrix-1", OOST, FUND, "1.00", "Matrix", "2022-04-02")),    [NEW, 403, 403, 403, 401, 401]),
        row("POST", "/expenses/{expense_id}/reversal", &reversal,
            Some(json!({ "reason": "onterecht" })),                                        [NEW, 403, 403, 403, 401, 401]),
        row("GET", "/wijken", "/wijken", None,                                             [OK, 403, OK, OK, 401, 401]),
        row("GET", "/wijken/{wijk_id}/budget", &oost_budget, None,                         [OK, OK, OK, OK, 401, 401]),
        row("GET", "/wijken/{wijk_id}/budget", &centrum_budget, None,                      [OK, 403, OK, OK, 401, 401]),
        row("GET", "/wijken/{wijk_id}/audit-trail", &oost_trail, None,                     [OK, OK, OK, OK, 401, 401]),
        row("GET", "/wijken/{wijk_id}/audit-trail", &centrum_trail, None,                  [OK, 403, OK, OK, 401, 401]),
        row("GET", "/funds", "/funds", None,                                               [OK, 403, OK, OK, 401, 401]),
        row("GET", "/funds/{fund_id}", &fund, None,                                        [OK, 403, OK, OK, 401, 401]),
        row("GET", "/events", "/events", None,                                             [OK, 403, 403, OK, 401, 401]),
        row("GET", "/integrity", "/integrity", None,                                       [OK, 403, 403, OK, 401, 401]),
        row("GET", "/health", "/health", None,                                             [OK, OK, OK, OK, OK, OK]),
        row("GET", "/ready", "/ready", None,                                               [OK, OK, OK, OK, OK, OK]),
        row("GET", "/openapi.json", "/openapi.json", None,                                 [OK, OK, OK, OK, OK, OK]),
    ];
    rows
}

struct Check {
    method: &'static str,
    path: String,
    body: Option<Value>,
    who: Who,
    status: u16,
}

fn check(method: &'static str, path: &str, body: Option<Value>, who: Who, status: u16) -> Check {
    Check { method, path: path.to_string(), body, who, status }
}

#[tokio::test]
async fn every_endpoint_answers_each_role_as_the_access_matrix_says() {
    let matrix = access_matrix();
    let covered: BTreeSet<(&str, &str)> = matrix.iter().map(|r| (r.method, r.template)).collect();
    for route in ROUTES {
        assert!(covered.contains(route), "the access matrix misses {route:?}");
    }
    // Refused callers first, so a write refused by mistake could not mask one that succeeds.
    let mut checks: Vec<Check> = Vec::new();
    for r in &matrix {
        for (i, who) in CALLERS.iter().enumerate().rev() {
            checks.push(check(r.method, &r.path, r.body.clone(), *who, r.expect[i]));
        }
    }
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let mut failures = Vec::new();
        for c in &checks {
            let method: Method = c.method.parse().unwrap();
            let mut req = app.req(method, &c.path).by(c.who);
            if let Some(body) = &c.body {
                req = req.json(body);
            }
            let resp = req.send().await;
            let context = format!("{backend:?} {:?}", c.who);
            let outcome = match c.status {
                401 => resp.problem(401, "unauthorized", None).map(drop),
                403 => resp.problem(403, "forbidden", None).map(drop),
                s if resp.status.as_u16() == s => Ok(()),
                s => Err(format!("{}: expected {s}, got {}: {}", resp.what, resp.status, resp.text())),
            };
            if let Err(why) = outcome {
                failures.push(format!("{context}: {why}"));
                continue;
            }
            // Council members see what happened, not who recorded it.
            if c.path.ends_with("/audit-trail") && resp.status == StatusCode::OK {
                let trail = resp.json();
                let rows = trail["rows"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    failures.push(format!("{context}: {} has no rows", resp.what));
                }
                for r in rows {
                    let hidden = r.get("actor") == Some(&Value::Null);
                    let shown = r["actor"].as_str().is_some_and(|a| !a.is_empty());
                    if (c.who == Who::Council && !hidden) || (c.who != Who::Council && !shown) {
                        failures.push(format!("{context}: {} shows actor {}", resp.what, r["actor"]));
                    }
                }
            }
        }
        // And the same for the CSV form of the audit trail.
        for who in [Who::Council, Who::Auditor] {
            let csv = app.get(&format!("/wijken/{OOST}/audit-trail")).by(who).header("accept", "text/csv").send().await;
            csv.expect_status(200);
            let table = Csv::parse(&csv.text());
            for row in &table.rows {
                let actor = table.get(row, "actor");
                if (who == Who::Council) != actor.is_empty() {
                    failures.push(format!("{backend:?} {who:?}: CSV audit trail shows actor `{actor}`"));
                }
            }
        }
        // A revoked token is no token.
        let revoked = wijkbudget::auth::revoke_token(&app.db, "cor-council").await.unwrap();
        assert_eq!(revoked, 1);
        if let Err(why) = app.get("/funds").by(Who::Council).send().await.problem(401, "unauthorized", None) {
            failures.push(format!("{backend:?} revoked council token: {why}"));
        }

        app.finish().await;
        assert_no_failures("access matrix", &failures);
    }
}

// ---------------------------------------------------------------------------
// 3. Idempotency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_answers_byte_for_byte_the_same_and_stores_nothing() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let writes: Vec<(String, Value)> = vec![
            ("/wijken".into(), wijk_body("west-9", "West 9")),
            ("/funds".into(), fund_body("begroting-2022", 2022, "10000.00")),
            (allocations_path(FUND), allocation_body(OOST, "250.00", "2022-05-01")),
            (allocations_path(FUND), json!({ "wijk_id": CENTRUM, "amount": "250.00", "reason": "zonder datum" })),
            ("/expenses".into(), expense_body("idem-1", OOST, FUND, "75.50", "Buurtfeest", "2022-07-01")),
            (format!("/expenses/{BANKJES}/reversal"), json!({ "reason": "verkeerde wijk" })),
        ];
        for (i, (path, body)) in writes.iter().enumerate() {
            let key = format!("retry-{i}");
            let first = app.post(path, body).by(Who::Finance).key(&key).send().await;
            first.expect_status(201);
            let head = app.head().await;
            let again = app.post(path, body).by(Who::Finance).key(&key).send().await;
            assert_eq!(again.status, first.status, "{}: {}", again.what, again.text());
            assert_eq!(again.body, first.body, "{backend:?} {}: the replay differs", again.what);
            assert_eq!(again.content_type(), first.content_type());
            // Whitespace and key order do not make a retry a different request.
            let mut reordered: Vec<(String, Value)> = body.as_object().unwrap().clone().into_iter().collect();
            reordered.reverse();
            let pretty = format!(
                "{{\n  {}\n}}",
                reordered.iter().map(|(k, v)| format!("{:?} : {}", k, v)).collect::<Vec<_>>().join(",\n  ")
            );
            let respelled = app
                .req(Method::POST, path)
                .by(Who::Finance)
                .key(&key)
                .raw(Some("application/json"), pretty)
                .send()
                .await;
            assert_eq!(respelled.status, first.status, "{}: {}", respelled.what, respelled.text());
            assert_eq!(respelled.body, first.body);
            assert_eq!(app.head().await, head, "{backend:?} {path}: a replay stored events");
            assert_eq!(app.read("/events?after=0&limit=1000").await["events"].as_array().unwrap().len() as i64, head);
        }
        app.finish().await;
    }
}

#[tokio::test]
async fn reusing_an_idempotency_key_for_another_request_is_refused_with_409() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let path = allocations_path(FUND);
        app.post(&path, &allocation_body(OOST, "10.00", "2022-05-01"))
            .by(Who::Finance)
            .key("k-1")
            .send()
            .await
            .expect_status(201);
        let head = app.head().await;
        let other_amount =
            app.post(&path, &allocation_body(OOST, "11.00", "2022-05-01")).by(Who::Finance).key("k-1").send().await;
        other_amount.expect_problem(409, "idempotency_key_reused", None);
        let other_route = app.post("/wijken", &wijk_body("zuid-3", "Zuid 3")).by(Who::Finance).key("k-1").send().await;
        other_route.expect_problem(409, "idempotency_key_reused", None);
        assert_eq!(app.head().await, head, "{backend:?}: a refused reuse stored events");
        let bad_key = app
            .post(&path, &allocation_body(OOST, "10.00", "2022-05-01"))
            .by(Who::Finance)
            .key("met spatie")
            .send()
            .await;
        bad_key.expect_problem(400, "invalid_idempotency_key", None);
        assert_eq!(app.head().await, head);
        app.finish().await;
    }
}

#[tokio::test]
async fn an_idempotent_replay_answers_the_same_after_a_restart() {
    for backend in BACKENDS {
        let mut app = App::start(backend).await;
        seed(&app).await;
        let path = allocations_path(FUND);
        let body = allocation_body(CENTRUM, "123.45", "2022-08-01");
        let first = app.post(&path, &body).by(Who::Finance).key("restart-1").send().await;
        first.expect_status(201);
        let head = app.head().await;

        app.restart().await;
        let again = app.post(&path, &body).by(Who::Finance).key("restart-1").send().await;
        assert_eq!(again.status, first.status, "{}", again.text());
        assert_eq!(again.body, first.body, "{backend:?}: the replay after a restart differs");
        let other = app
            .post(&path, &allocation_body(CENTRUM, "5.00", "2022-08-01"))
            .by(Who::Finance)
            .key("restart-1")
            .send()
            .await;
        other.expect_problem(409, "idempotency_key_reused", None);
        assert_eq!(app.head().await, head);
        let fund = app.read(&format!("/funds/{FUND}")).await;
        assert_eq!(allocation_of(&fund, CENTRUM)["amount_allocated"], "5123.45", "{fund}");
        app.finish().await;
    }
}

/// Ten tasks send the same allocation under the same key at the same moment.
/// Each burst uses its own key and wijk; three bursts make a rare
/// interleaving likely to show up in one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_duplicates_under_one_key_book_one_allocation() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        for burst in 1..=3 {
            let wijk_id = format!("west-{burst}");
            app.created("/wijken", &wijk_body(&wijk_id, "West")).await;
            let head = app.head().await;
            let body = allocation_body(&wijk_id, "777.00", "2022-09-01");
            let gate = std::sync::Arc::new(tokio::sync::Barrier::new(10));
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let req = app.post(&allocations_path(FUND), &body).by(Who::Finance).key(&format!("burst-{burst}"));
                    let gate = gate.clone();
                    tokio::spawn(async move {
                        gate.wait().await;
                        req.send().await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
            if let Some(odd) = answers.iter().find(|a| a.status != StatusCode::CREATED) {
                failures.push(format!(
                    "{backend:?} burst {burst}: ten concurrent duplicates answered {statuses:?}; the first other answer: {} content-type {:?} body `{}`",
                    odd.status,
                    odd.content_type(),
                    odd.text()
                ));
                break;
            }
            for answer in &answers {
                assert_eq!(answer.json()["positions"], answers[0].json()["positions"], "{backend:?}: positions differ");
                assert_eq!(answer.body, answers[0].body);
            }
            assert_eq!(
                app.head().await,
                head + 1,
                "{backend:?} burst {burst}: the duplicates booked more than one event"
            );
            let fund = app.read(&format!("/funds/{FUND}")).await;
            assert_eq!(allocation_of(&fund, &wijk_id)["amount_allocated"], "777.00", "{fund}");
            let trail = app.read(&format!("/wijken/{wijk_id}/audit-trail")).await;
            assert_eq!(trail["rows"].as_array().unwrap().len(), 1, "{trail}");
        }
        app.finish().await;
    }
    assert_no_failures("concurrent duplicates", &failures);
}

#[tokio::test]
async fn an_expense_id_reused_for_another_expense_is_refused_and_the_same_expense_again_changes_nothing() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let head = app.head().await;
        let same = expense_body(WEGAPLEIN, OOST, FUND, "12500.00", "Herinrichting Wegaplein", "2022-03-15");

        let other_amount = expense_body(WEGAPLEIN, OOST, FUND, "12499.00", "Herinrichting Wegaplein", "2022-03-15");
        app.post("/expenses", &other_amount).by(Who::Finance).send().await.expect_problem(
            409,
            "expense_exists",
            Some("expense_id"),
        );

        // The same id in another fund is another expense too.
        app.created("/funds", &fund_body("begroting-2022", 2022, "1000.00")).await;
        app.created(&allocations_path("begroting-2022"), &allocation_body(OOST, "1000.00", "2022-02-01")).await;
        let head_with_fund = app.head().await;
        let other_fund =
            expense_body(WEGAPLEIN, OOST, "begroting-2022", "12.00", "Herinrichting Wegaplein", "2022-03-15");
        app.post("/expenses", &other_fund).by(Who::Finance).send().await.expect_problem(
            409,
            "expense_exists",
            Some("expense_id"),
        );
        assert_eq!(app.head().await, head_with_fund);

        let unchanged = app.post("/expenses", &same).by(Who::Finance).send().await.expect_json(200);
        assert_eq!(unchanged["positions"], Value::Null, "{unchanged}");
        assert_eq!(unchanged["resource"]["expense_id"], WEGAPLEIN);
        assert_eq!(app.head().await, head_with_fund, "{backend:?}: the same expense again stored events");
        assert!(head_with_fund == head + 2);
        let fund = app.read(&format!("/funds/{FUND}")).await;
        assert_eq!(fund["expenses"].as_array().unwrap().iter().filter(|e| e["expense_id"] == WEGAPLEIN).count(), 1);
        assert_eq!(allocation_of(&fund, OOST)["amount_spent"], "12600.00");
        app.finish().await;
    }
}

// ---------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------

/// One refused request: what is sent, and the problem expected.
struct Refusal {
    label: String,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn refusal(
    label: &str,
    path: &str,
    body: &str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Refusal {
    Refusal {
        label: label.into(),
        method: Method::POST,
        path: path.into(),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status,
        code,
        field,
    }
}

/// Sends each refusal as finance and checks its problem and that the log did not grow.
async fn check_refusals(app: &App, refusals: Vec<Refusal>) -> Vec<String> {
    let mut failures = Vec::new();
    for r in refusals {
        let head = app.head().await;
        let mut req = app.req(r.method.clone(), &r.path).by(Who::Finance);
        req = req.raw(r.content_type, r.body);
        let resp = req.send().await;
        if let Err(why) = resp.problem(r.status, r.code, r.field) {
            failures.push(format!("{:?} [{}] {why}", app.backend(), r.label));
        }
        let after = app.head().await;
        if after != head {
            failures.push(format!("{:?} [{}] the log grew from {head} to {after}", app.backend(), r.label));
        }
    }
    failures
}

#[tokio::test]
async fn malformed_json_and_bodies_that_are_not_json_are_refused() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let good = serde_json::to_string(&wijk_body("noord-1", "Noord 1")).unwrap();
        let mut refusals = vec![
            refusal("truncated JSON", "/wijken", r#"{"wijk_id": "noord-1", "name": "#, 400, "malformed_json", None),
            refusal(
                "trailing comma",
                "/wijken",
                r#"{"wijk_id": "noord-1", "name": "Noord",}"#,
                400,
                "malformed_json",
                None,
            ),
            refusal("empty body", "/wijken", "", 400, "malformed_json", None),
        ];
        let mut no_type = refusal("no content type", "/wijken", &good, 415, "unsupported_media_type", None);
        no_type.content_type = None;
        let mut text_plain = refusal("text/plain", "/wijken", &good, 415, "unsupported_media_type", None);
        text_plain.content_type = Some("text/plain");
        let mut form = refusal("form", "/expenses", "a=b", 415, "unsupported_media_type", None);
        form.content_type = Some("application/x-www-form-urlencoded");
        refusals.extend([no_type, text_plain, form]);
        let failures = check_refusals(&app, refusals).await;
        // JSON with a charset parameter is still JSON.
        app.req(Method::POST, "/wijken")
            .by(Who::Finance)
            .raw(Some("application/json; charset=utf-8"), good)
            .send()
            .await
            .expect_status(201);
        app.finish().await;
        assert_no_failures("malformed bodies", &failures);
    }
}

#[tokio::test]
async fn missing_and_unknown_fields_are_refused_naming_the_field() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let refusals = vec![
            refusal("wijk without name", "/wijken", r#"{"wijk_id":"noord-1"}"#, 422, "invalid_field", Some("name")),
            refusal(
                "allocation without amount",
                &allocations_path(FUND),
                r#"{"wijk_id":"oost-1223","reason":"x"}"#,
                422,
                "invalid_field",
                Some("amount"),
            ),
            refusal(
                "expense without initiative",
                "/expenses",
                r#"{"expense_id":"e-1","wijk_id":"oost-1223","fund_id":"A21-182","amount":"1.00","theme":"t","booked_on":"2022-05-01","reference":"r"}"#,
                422,
                "invalid_field",
                Some("initiative"),
            ),
            refusal(
                "unknown field",
                "/wijken",
                r#"{"wijk_id":"noord-1","name":"Noord","mayor":"x"}"#,
                422,
                "invalid_field",
                Some("mayor"),
            ),
            refusal(
                "unknown field in allocation",
                &allocations_path(FUND),
                r#"{"wijk_id":"oost-1223","amount":"1.00","reason":"x","approved":true}"#,
                422,
                "invalid_field",
                Some("approved"),
            ),
            refusal(
                "reversal without reason",
                &format!("/expenses/{BANKJES}/reversal"),
                "{}",
                422,
                "invalid_field",
                Some("reason"),
            ),
            refusal(
                "year as a string",
                "/funds",
                &{
                    let mut f = fund_body("F-1", 2022, "1.00");
                    f["year"] = json!("2022");
                    f
                }
                .to_string(),
                422,
                "invalid_field",
                Some("year"),
            ),
            refusal(
                "missing nested field",
                "/funds",
                &{
                    let mut f = fund_body("F-1", 2022, "1.00");
                    f["decision"].as_object_mut().unwrap().remove("adopted_on");
                    f
                }
                .to_string(),
                422,
                "invalid_field",
                None,
            ),
            refusal(
                "bad kind",
                "/funds",
                &fund_body("F-1", 2022, "1.00").to_string().replace("amendement", "gift"),
                422,
                "invalid_field",
                Some("kind"),
            ),
            refusal(
                "bad wijk id",
                "/wijken",
                r#"{"wijk_id":"oost 1223","name":"Oost"}"#,
                422,
                "invalid_field",
                Some("wijk_id"),
            ),
        ];
        let failures = check_refusals(&app, refusals).await;
        app.finish().await;
        assert_no_failures("missing and unknown fields", &failures);
    }
}

#[tokio::test]
async fn invalid_amounts_are_refused_naming_amount_and_exact_numbers_are_kept_exact() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let allocation = |amount: &str| {
            format!(r#"{{"wijk_id":"{CENTRUM}","amount":{amount},"reason":"test","booked_on":"2022-05-01"}}"#)
        };
        let expense = |amount: &str| {
            format!(
                r#"{{"expense_id":"amt-1","wijk_id":"{OOST}","fund_id":"{FUND}","amount":{amount},"initiative":"i","theme":"t","booked_on":"2022-05-01","reference":"r"}}"#
            )
        };
        let fund = |amount: &str| fund_body("F-amt", 2022, "1.00").to_string().replace("\"1.00\"", amount);
        let invalid = [
            "0",
            "\"0.00\"",
            "-1",
            "\"-1\"",
            "\"abc\"",
            "\"NaN\"",
            "NaN",
            "1.005",
            "\"1.005\"",
            "1e400",
            "\"1e3\"",
            "\"99999999999999999999\"",
            "99999999999999999999",
            "null",
            "true",
            "\"\"",
        ];
        let mut refusals = Vec::new();
        for amount in invalid {
            let status = if amount == "NaN" { 400 } else { 422 };
            let (code, field) =
                if amount == "NaN" { ("malformed_json", None) } else { ("invalid_field", Some("amount")) };
            refusals.push(refusal(
                &format!("allocation amount {amount}"),
                &allocations_path(FUND),
                &allocation(amount),
                status,
                code,
                field,
            ));
            refusals.push(refusal(
                &format!("expense amount {amount}"),
                "/expenses",
                &expense(amount),
                status,
                code,
                field,
            ));
            refusals.push(refusal(&format!("fund amount {amount}"), "/funds", &fund(amount), status, code, field));
        }
        let failures = check_refusals(&app, refusals).await;

        // A JSON number is read from its text, never through a float.
        let written = app
            .req(Method::POST, &allocations_path(FUND))
            .by(Who::Finance)
            .raw(Some("application/json"), allocation("12.34"))
            .send()
            .await
            .expect_json(201);
        assert_eq!(written["resource"]["amount"], "12.34", "{written}");
        for amount in ["0.1", "0.2"] {
            app.req(Method::POST, &allocations_path(FUND))
                .by(Who::Finance)
                .raw(Some("application/json"), allocation(amount))
                .send()
                .await
                .expect_status(201);
        }
        let budget = app.read(&format!("/wijken/{CENTRUM}/budget")).await;
        assert_eq!(budget["amount_allocated"], "5012.64", "{budget}");
        let spent = app
            .req(Method::POST, "/expenses")
            .by(Who::Finance)
            .raw(Some("application/json"), expense("7000"))
            .send()
            .await
            .expect_json(201);
        assert_eq!(spent["resource"]["amount"], "7000.00", "{spent}");
        app.finish().await;
        assert_no_failures("invalid amounts", &failures);
    }
}

#[tokio::test]
async fn unknown_wijken_unknown_funds_wrong_years_and_impossible_dates_are_refused() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let outside_year = expense_body("late-1", OOST, FUND, "1.00", "Te laat", "2023-01-01");
        let refusals = vec![
            refusal(
                "unknown wijk in allocation",
                &allocations_path(FUND),
                &allocation_body("nergens-1", "1.00", "2022-05-01").to_string(),
                422,
                "unknown_wijk",
                Some("wijk_id"),
            ),
            refusal(
                "unknown wijk in expense",
                "/expenses",
                &expense_body("x-1", "nergens-1", FUND, "1.00", "i", "2022-05-01").to_string(),
                422,
                "unknown_wijk",
                Some("wijk_id"),
            ),
            refusal(
                "unknown fund in expense",
                "/expenses",
                &expense_body("x-2", OOST, "geen-fonds", "1.00", "i", "2022-05-01").to_string(),
                422,
                "unknown_fund",
                Some("fund_id"),
            ),
            refusal(
                "unknown fund in allocation path",
                &allocations_path("geen-fonds"),
                &allocation_body(OOST, "1.00", "2022-05-01").to_string(),
                404,
                "unknown_fund",
                None,
            ),
            refusal(
                "unknown fund in allocation path without booked_on",
                &allocations_path("geen-fonds"),
                r#"{"wijk_id":"oost-1223","amount":"1.00","reason":"x"}"#,
                404,
                "unknown_fund",
                None,
            ),
            refusal(
                "invalid fund id in allocation path",
                "/funds/geen%20fonds/allocations",
                &allocation_body(OOST, "1.00", "2022-05-01").to_string(),
                404,
                "not_found",
                None,
            ),
            refusal(
                "unknown expense reversal",
                "/expenses/bestaat-niet/reversal",
                r#"{"reason":"x"}"#,
                404,
                "unknown_expense",
                None,
            ),
            refusal(
                "expense outside the fund year",
                "/expenses",
                &outside_year.to_string(),
                422,
                "outside_fund_year",
                Some("booked_on"),
            ),
            refusal(
                "allocation outside the fund year",
                &allocations_path(FUND),
                &allocation_body(OOST, "1.00", "2021-12-31").to_string(),
                422,
                "outside_fund_year",
                Some("booked_on"),
            ),
            refusal(
                "30 February",
                "/expenses",
                &expense_body("x-3", OOST, FUND, "1.00", "i", "2022-02-30").to_string(),
                422,
                "invalid_field",
                Some("booked_on"),
            ),
            refusal(
                "30 February in allocation",
                &allocations_path(FUND),
                &allocation_body(OOST, "1.00", "2022-02-30").to_string(),
                422,
                "invalid_field",
                Some("booked_on"),
            ),
            refusal(
                "not a date",
                "/expenses",
                &expense_body("x-4", OOST, FUND, "1.00", "i", "15-03-2022").to_string(),
                422,
                "invalid_field",
                Some("booked_on"),
            ),
            refusal(
                "year out of range",
                "/funds",
                &fund_body("F-1999", 1999, "1.00").to_string(),
                422,
                "invalid_field",
                Some("year"),
            ),
            refusal(
                "fund re-established with other terms",
                "/funds",
                &fund_body(FUND, 2022, "1.00").to_string(),
                409,
                "fund_exists",
                Some("fund_id"),
            ),
            refusal(
                "wijk re-registered under another name",
                "/wijken",
                &wijk_body(OOST, "Andere naam").to_string(),
                409,
                "wijk_exists",
                Some("wijk_id"),
            ),
            refusal(
                "allocation beyond the fund",
                &allocations_path(FUND),
                &allocation_body(OOST, "25000.01", "2022-05-01").to_string(),
                422,
                "fund_exhausted",
                Some("amount"),
            ),
        ];
        let mut failures = check_refusals(&app, refusals).await;
        app.created(&format!("/expenses/{BANKJES}/reversal"), &json!({ "reason": "x" })).await;
        let twice = refusal(
            "reversal twice",
            &format!("/expenses/{BANKJES}/reversal"),
            r#"{"reason":"x"}"#,
            422,
            "already_reversed",
            None,
        );
        failures.extend(check_refusals(&app, vec![twice]).await);
        app.finish().await;
        assert_no_failures("references", &failures);
    }
}

#[tokio::test]
async fn names_that_are_too_long_or_contain_control_characters_are_refused() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let long = "x".repeat(501);
        let refusals = vec![
            refusal(
                "501-character name",
                "/wijken",
                &wijk_body("noord-1", &long).to_string(),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "name with a NUL",
                "/wijken",
                &wijk_body("noord-1", "Noord\u{0}1").to_string(),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "name with a line break",
                "/wijken",
                &wijk_body("noord-1", "Noord\n1").to_string(),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "name with an escape",
                "/wijken",
                &wijk_body("noord-1", "Noord\u{1b}[31m").to_string(),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "blank name",
                "/wijken",
                &wijk_body("noord-1", "   ").to_string(),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "501-character fund name",
                "/funds",
                &fund_body("F-1", 2022, "1.00").to_string().replace("Amendement F-1", &long),
                422,
                "invalid_field",
                Some("name"),
            ),
            refusal(
                "decision reference with a tab",
                "/funds",
                &fund_body("F-1", 2022, "1.00").to_string().replace("\"A21-182\"", "\"A21\\t182\""),
                422,
                "invalid_field",
                Some("decision.reference"),
            ),
            refusal(
                "501-character reversal reason",
                &format!("/expenses/{BANKJES}/reversal"),
                &json!({ "reason": long }).to_string(),
                422,
                "invalid_field",
                Some("reason"),
            ),
            refusal(
                "65-character wijk id",
                "/wijken",
                &wijk_body(&"w".repeat(65), "Noord").to_string(),
                422,
                "invalid_field",
                Some("wijk_id"),
            ),
        ];
        let failures = check_refusals(&app, refusals).await;
        // 500 characters is still fine.
        app.created("/wijken", &wijk_body("noord-1", &"x".repeat(500))).await;
        app.finish().await;
        assert_no_failures("texts", &failures);
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let padding = "x".repeat(BODY_LIMIT);
        let refusals = vec![
            refusal("large wijk", "/wijken", &wijk_body("noord-1", &padding).to_string(), 413, "body_too_large", None),
            refusal(
                "large expense",
                "/expenses",
                &expense_body("big-1", OOST, FUND, "1.00", &padding, "2022-05-01").to_string(),
                413,
                "body_too_large",
                None,
            ),
            refusal(
                "one byte over",
                "/wijken",
                &format!("{}{}", " ".repeat(BODY_LIMIT + 1 - 2), "{}"),
                413,
                "body_too_large",
                None,
            ),
        ];
        let failures = check_refusals(&app, refusals).await;
        app.finish().await;
        assert_no_failures("large bodies", &failures);
    }
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_with_a_problem() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let mut failures = Vec::new();
        for path in ["/nope", "/wijken/oost-1223/nope", "/funds/A21-182/expenses"] {
            let resp = app.get(path).by(Who::Finance).send().await;
            if let Err(why) = resp.problem(404, "not_found", None) {
                failures.push(why);
            }
        }
        // Outside the API the web app answers, and an unknown path is its own 404 page.
        let outside =
            app.router.clone().oneshot(Request::get("/bestaat-niet").body(Body::empty()).unwrap()).await.unwrap();
        if outside.status() != StatusCode::NOT_FOUND
            || !outside
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/html"))
        {
            failures.push(format!(
                "GET /bestaat-niet answered {} {:?}",
                outside.status(),
                outside.headers().get(header::CONTENT_TYPE)
            ));
        }
        for (method, path, allowed) in [
            (Method::DELETE, "/funds", &["GET", "POST"][..]),
            (Method::PUT, "/wijken", &["GET", "POST"][..]),
            (Method::DELETE, "/funds/A21-182", &["GET"][..]),
            (Method::PATCH, "/expenses", &["POST"][..]),
            (Method::POST, "/health", &["GET"][..]),
            (Method::GET, "/expenses/2022-oost-1223-bankjes/reversal", &["POST"][..]),
        ] {
            let head = app.head().await;
            let resp = app.req(method, path).by(Who::Finance).json(&json!({})).send().await;
            match resp.problem(405, "method_not_allowed", None) {
                Ok(_) => {
                    let allow = resp.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    for m in allowed {
                        if !allow.contains(m) {
                            failures.push(format!("{}: Allow `{allow}` lacks {m}", resp.what));
                        }
                    }
                }
                Err(why) => failures.push(why),
            }
            assert_eq!(app.head().await, head);
        }
        app.finish().await;
        assert_no_failures("paths and methods", &failures);
    }
}

#[tokio::test]
async fn spending_one_cent_more_than_is_left_is_refused_as_overspend() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        // oost-1223 has 20000.00 - 12500.00 - 100.00 = 7400.00 left.
        let refusals = vec![refusal(
            "one cent over",
            "/expenses",
            &expense_body("over-1", OOST, FUND, "7400.01", "Te veel", "2022-10-01").to_string(),
            422,
            "overspend",
            Some("amount"),
        )];
        let mut failures = check_refusals(&app, refusals).await;
        // A wijk that got nothing from a fund may not spend from it either.
        app.created("/wijken", &wijk_body("zuid-1", "Zuid 1")).await;
        failures.extend(
            check_refusals(
                &app,
                vec![refusal(
                    "no allocation",
                    "/expenses",
                    &expense_body("over-3", "zuid-1", FUND, "0.01", "x", "2022-10-01").to_string(),
                    422,
                    "overspend",
                    Some("amount"),
                )],
            )
            .await,
        );
        // Exactly what is left is fine, and then nothing is.
        app.created("/expenses", &expense_body("exact-1", OOST, FUND, "7400.00", "Precies", "2022-10-01")).await;
        failures.extend(
            check_refusals(
                &app,
                vec![refusal(
                    "after spending all",
                    "/expenses",
                    &expense_body("over-4", OOST, FUND, "0.01", "x", "2022-10-02").to_string(),
                    422,
                    "overspend",
                    Some("amount"),
                )],
            )
            .await,
        );
        let budget = app.read(&format!("/wijken/{OOST}/budget")).await;
        assert_eq!(budget["amount_remaining"], "0.00", "{budget}");
        app.finish().await;
        assert_no_failures("overspend", &failures);
    }
}

#[tokio::test]
async fn page_limits_outside_1_to_1000_and_unknown_query_parameters_are_refused() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let mut failures = Vec::new();
        let trail = format!("/wijken/{OOST}/audit-trail");
        let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
            ("/events?limit=0".into(), 422, "invalid_field", Some("limit")),
            ("/events?limit=5000".into(), 422, "invalid_field", Some("limit")),
            ("/events?limit=-1".into(), 422, "invalid_field", Some("limit")),
            (format!("{trail}?limit=0"), 422, "invalid_field", Some("limit")),
            (format!("{trail}?limit=5000"), 422, "invalid_field", Some("limit")),
            (format!("/funds/{FUND}?limit=0"), 422, "invalid_field", Some("limit")),
            (format!("/funds/{FUND}?limit=1001"), 422, "invalid_field", Some("limit")),
            (format!("/funds/{FUND}?page=2"), 400, "invalid_query", None),
            ("/events?limit=abc".into(), 400, "invalid_query", None),
            ("/events?after=x".into(), 400, "invalid_query", None),
            ("/events?page=2".into(), 400, "invalid_query", None),
            ("/wijken?as_of=2022-02-30".into(), 400, "invalid_query", None),
            (format!("/wijken/{OOST}/budget?year=twee"), 400, "invalid_query", None),
            ("/funds?colour=red".into(), 400, "invalid_query", None),
        ];
        for (path, status, code, field) in cases {
            let resp = app.get(&path).by(Who::Finance).send().await;
            if let Err(why) = resp.problem(status, code, field) {
                failures.push(why);
            }
        }
        // The bounds themselves are fine.
        app.get("/events?limit=1").by(Who::Finance).send().await.expect_status(200);
        app.get("/events?limit=1000").by(Who::Finance).send().await.expect_status(200);
        app.get(&format!("{trail}?limit=1000")).by(Who::Finance).send().await.expect_status(200);
        app.finish().await;
        assert_no_failures("query parameters", &failures);
    }
}

/// A body that is JSON but not an object has no field at fault: the problem
/// must not name one (and certainly not a value from the body as a field).
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused_without_naming_a_field() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let app = App::start(backend).await;
        for body in ["42", "[]", "\"oost-1223\"", "null", "true"] {
            let resp =
                app.req(Method::POST, "/wijken").by(Who::Finance).raw(Some("application/json"), body).send().await;
            match resp.problem(422, "invalid_body", None) {
                Ok(problem) => {
                    if let Some(field) = problem.get("field") {
                        failures.push(format!("{:?} body {body}: the problem names field {field}: {problem}", backend));
                    }
                }
                Err(why) => failures.push(format!("{backend:?} {why}")),
            }
        }
        assert_eq!(app.head().await, 0);
        app.finish().await;
    }
    assert_no_failures("non-object bodies", &failures);
}

/// `next_after` is always the position to continue from (issue 14; it was
/// null on a page that reached the head, so a consumer following it
/// stopped): the last event's position on a page with events, the asked
/// position (at most the head) on an empty page; `at_head` says whether to wait.
#[tokio::test]
async fn the_event_log_always_gives_the_position_to_continue_from() {
    let mut failures = Vec::new();
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let head = app.head().await;
        for after in [head, head + 7] {
            let empty = app.read(&format!("/events?after={after}")).await;
            assert_eq!(empty["events"], json!([]));
            assert_eq!(empty["next_after"], json!(head), "{backend:?}: an empty page continues from the head: {empty}");
            assert_eq!(empty["at_head"], json!(true), "{empty}");
        }
        for after in [0, head - 5] {
            let limit = head - after;
            let page = app.read(&format!("/events?after={after}&limit={limit}")).await;
            assert_eq!(page["events"].as_array().unwrap().len() as i64, limit);
            if page["next_after"] != json!(head) || page["at_head"] != json!(true) {
                failures.push(format!(
                    "{backend:?}: GET /events?after={after}&limit={limit} ends at the head ({head}) but offers next_after {} (at_head {})",
                    page["next_after"], page["at_head"]
                ));
            }
        }
        let short = app.read("/events?after=0&limit=2").await;
        assert_eq!((short["next_after"].clone(), short["at_head"].clone()), (json!(2), json!(false)), "{short}");
        app.finish().await;
    }
    assert_no_failures("event log pages", &failures);
}

// ---------------------------------------------------------------------------
// 5. The OpenAPI document
// ---------------------------------------------------------------------------

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        out.push(r.to_string());
                    }
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_documents_every_route() {
    let app = App::start(Backend::Sqlite).await;
    seed(&app).await;
    let doc = app.get("/openapi.json").send().await.expect_json(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "openapi is {}", doc["openapi"]);
    assert_eq!(
        doc,
        serde_json::to_value(wijkbudget::http::openapi()).unwrap(),
        "the served document differs from openapi()"
    );
    let paths = doc["paths"].as_object().expect("paths");

    // Every exercised route is documented (the document does not list itself).
    let mut failures = Vec::new();
    for (method, template) in ROUTES.iter().chain(LIFECYCLE_ROUTES).filter(|(_, t)| *t != "/openapi.json") {
        // Paths are relative to the document's server, `/api/v1`.
        let documented = paths.get(*template).and_then(|item| item.get(method.to_lowercase()));
        match documented {
            None => failures.push(format!("{method} {API}{template} is not documented")),
            Some(op) => {
                let statuses: Vec<&String> =
                    op["responses"].as_object().map(|r| r.keys().collect()).unwrap_or_default();
                if !statuses.iter().any(|s| s.starts_with('2')) {
                    failures.push(format!("{method} {template} documents no success response"));
                }
                let public = ["/health", "/ready"].contains(template);
                let secured = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
                if secured == public {
                    failures.push(format!("{method} {template}: security is {}", op["security"]));
                }
                if !public && !(statuses.iter().any(|s| *s == "401") && statuses.iter().any(|s| *s == "403")) {
                    failures.push(format!("{method} {template} does not document 401 and 403"));
                }
                if method == &"POST" && op["requestBody"]["content"]["application/json"].is_null() {
                    failures.push(format!("{method} {template} documents no JSON request body"));
                }
            }
        }
    }

    // Every documented operation is routed: it never meets the fallback's
    // "no such path" nor a 405. (A 404 for a missing resource is fine.)
    let exercised: BTreeSet<(String, String)> =
        ROUTES.iter().chain(LIFECYCLE_ROUTES).map(|(m, t)| (m.to_lowercase(), t.to_string())).collect();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| methods.contains(&k.as_str())) {
            if !exercised.contains(&(method.clone(), path.clone())) {
                eprintln!("note: {method} {path} is documented; this file does not exercise it beyond routing");
            }
            // Parameters: a path parameter is in the template, and the template's are declared.
            let declared: Vec<(&str, &str)> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter().map(|p| (p["name"].as_str().unwrap_or(""), p["in"].as_str().unwrap_or(""))).collect()
                })
                .unwrap_or_default();
            for (name, location) in &declared {
                if *location == "path" && !path.contains(&format!("{{{name}}}")) {
                    failures.push(format!("{method} {path}: parameter `{name}` is documented as a path parameter, but the path has no {{{name}}} (it is a query parameter)"));
                }
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                if !declared.contains(&(name, "path")) {
                    failures.push(format!("{method} {path}: path parameter `{name}` is not declared"));
                }
            }
            let concrete = path
                .strip_prefix(API)
                .unwrap_or(path)
                .replace("{wijk_id}", OOST)
                .replace("{fund_id}", FUND)
                .replace("{expense_id}", WEGAPLEIN)
                .replace("{commitment_id}", "c-1")
                .replace("{year}", "2022");
            let head = app.head().await;
            // No body: a write answers 415 before it does anything.
            let resp = app.req(method.to_uppercase().parse().unwrap(), &concrete).by(Who::Finance).send().await;
            let unrouted = resp.status == StatusCode::METHOD_NOT_ALLOWED
                || (resp.status == StatusCode::NOT_FOUND && resp.text().contains("no such path"));
            if unrouted {
                failures.push(format!("documented {method} {path} is not routed: {} {}", resp.status, resp.text()));
            }
            if app.head().await != head {
                failures.push(format!("documented {method} {path} stored events for a request without a body"));
            }
        }
    }

    // Every reference resolves, and bearer auth and Problem are defined.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let target = r.strip_prefix('#').map(|p| doc.pointer(p));
        if !matches!(target, Some(Some(_))) {
            failures.push(format!("unresolved $ref {r}"));
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // The document validates, if the validator happens to be installed. A
    // second run on a copy with misplaced path parameters moved to the query
    // shows whether anything else is wrong.
    match validate_openapi(&doc) {
        None => eprintln!("openapi-spec-validator is not installed; only the structural checks ran"),
        Some(Ok(())) => {}
        Some(Err(why)) => {
            failures.push(format!("openapi-spec-validator: {why}"));
            let mut repaired = doc.clone();
            for (path, item) in repaired["paths"].as_object_mut().unwrap() {
                for op in item.as_object_mut().unwrap().values_mut() {
                    for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                        let name = param["name"].as_str().unwrap_or("").to_string();
                        if param["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                            param["in"] = json!("query");
                            param["required"] = json!(false);
                        }
                    }
                }
            }
            if let Some(Err(why)) = validate_openapi(&repaired) {
                failures.push(format!("openapi-spec-validator, with query parameters repaired: {why}"));
            }
        }
    }
    app.finish().await;
    assert_no_failures("OpenAPI", &failures);
}

/// Runs Python's openapi-spec-validator on a document; None if it is not installed.
fn validate_openapi(doc: &Value) -> Option<Result<(), String>> {
    let probe = std::process::Command::new("python3").args(["-c", "import openapi_spec_validator"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  try:\n    validate(json.load(open(sys.argv[1])))\n\
                  except Exception as e:\n    sys.exit(type(e).__name__ + ': ' + str(e)[:400])";
    let out = std::process::Command::new("python3").args(["-c", script]).arg(&file).output().unwrap();
    Some(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) })
}

// ---------------------------------------------------------------------------
// 6. Over a real socket
// ---------------------------------------------------------------------------

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 GET on its own connection.
async fn raw_get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the server accepts");
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {raw}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line}"));
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    RawResponse { status, headers, body: body.to_string() }
}

#[tokio::test]
async fn over_a_real_socket_answers_carry_a_request_id() {
    for backend in BACKENDS {
        let app = App::start(backend).await;
        seed(&app).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = app.router.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });

        let health = raw_get(addr, "/api/v1/health", &[]).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert!(health.body.contains("\"status\":\"ok\""), "{}", health.body);
        let id = health.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id in {:?}", health.headers));
        assert!(!id.is_empty());

        let bearer = format!("Bearer {}", app.tokens.finance);
        let fund = raw_get(addr, &format!("/api/v1/funds/{FUND}"), &[("Authorization", &bearer)]).await;
        assert_eq!(fund.status, 200, "{}", fund.body);
        assert!(fund.body.contains("Herinrichting Wegaplein"), "{}", fund.body);
        let other_id = fund.header("x-request-id").unwrap_or_else(|| panic!("no x-request-id in {:?}", fund.headers));
        assert_ne!(other_id, id, "two requests got the same id");

        // A caller's own request id is passed back, also on a refusal.
        let refused = raw_get(addr, "/api/v1/funds", &[("x-request-id", "trace-abc-123")]).await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.header("x-request-id"), Some("trace-abc-123"));
        assert!(refused.header("content-type").is_some_and(|c| c == "application/problem+json"));

        let _ = stop.send(());
        server.await.unwrap().unwrap();
        app.finish().await;
    }
}
