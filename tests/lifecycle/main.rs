//! The budget lifecycle end to end: commitments, payments, settlement with
//! recovery, repayment, withdrawal, transfers and the year close with
//! carry-over, through `Ledger` and over HTTP, on SQLite and PostgreSQL; the
//! demo's 2021 close statement; concurrent commitments; the access matrix of
//! the lifecycle endpoints; and a property test over generated lifecycles.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod concurrency;
mod demo_close;
mod endpoints;
mod generated;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::NaiveDate;
use common::{date, fund_id, meta, text, wijk, Backend, Harness, TestStore, BACKENDS};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use wijkbudget::auth::{create_token, Role};
use wijkbudget::domain::fund::{
    ApplicantKind, BudgetLine, CommitmentDetails, Decision, ExpenseDetails, FundCommand, FundError, FundKind, FundTerms,
};
use wijkbudget::domain::ids::{CommitmentId, ExpenseId, WijkId, Year};
use wijkbudget::domain::money::{cents, Amount};
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::http::{router, AppState};
use wijkbudget::ledger::{Ledger, LedgerError, Outcome};
use wijkbudget::on_db;
use wijkbudget::projections::{queries, reports};
use wijkbudget::service::Service;
use wijkbudget::store::repository::head;
use wijkbudget::store::Db;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

fn amount_cents(c: i64) -> Amount {
    Amount::try_from(Decimal::new(c, 2)).unwrap()
}

async fn register(ledger: &Ledger, id: &str) {
    ledger.register_wijk(WijkCommand::Register { wijk_id: wijk(id), name: text(id) }, &meta()).await.unwrap();
}

fn terms_2022(id: &str, amount: Amount) -> FundTerms {
    FundTerms {
        fund_id: fund_id(id),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Begroting,
        name: text("Wijkbudgetten 2022"),
        amount,
        decision: Decision { reference: text("Begroting 2022"), adopted_on: date("2021-11-11") },
        purpose: text("Initiatieven van inwoners"),
    }
}

fn allocate(wijk_id: &str, amount: Amount) -> FundCommand {
    FundCommand::Allocate { wijk_id: wijk(wijk_id), amount, reason: text("verdeling"), booked_on: date("2022-01-04") }
}

fn commit(id: &str, wijk_id: &str, amount: Amount, on: NaiveDate) -> FundCommand {
    FundCommand::Commit(CommitmentDetails {
        commitment_id: CommitmentId::parse(id).unwrap(),
        wijk_id: wijk(wijk_id),
        amount,
        initiative: text("Buurtmoestuin"),
        applicant: text("Tuingroep"),
        applicant_kind: ApplicantKind::Organisation,
        theme: text("groen"),
        decision: Decision { reference: text(&format!("Subsidiebeschikking {id}")), adopted_on: on },
        grant_rule: text("Subsidieregeling wijkbudgetten"),
        booked_on: on,
    })
}

/// The balance of one kind of one wijk in one fund, as the read model has it (cents).
async fn balance(db: &Db, wijk_id: &str, fund: &str, kind: &str) -> i64 {
    let value: Option<i64> = on_db!(db, pool => {
        sqlx::query_scalar("SELECT cents FROM rm_balances WHERE wijk_id = $1 AND fund_id = $2 AND kind = $3")
            .bind(wijk_id)
            .bind(fund)
            .bind(kind)
            .fetch_optional(pool)
            .await
            .unwrap()
    });
    value.unwrap_or(0)
}

// ---------------------------------------------------------------------------
// HTTP harness
// ---------------------------------------------------------------------------

const FUND: &str = "begroting-2022";

/// A running service on a fresh store, driven in-process.
struct Api {
    store: TestStore,
    db: Db,
    router: Router,
    stop: watch::Sender<bool>,
    projector: JoinHandle<()>,
    finance: String,
    council: String,
    auditor: String,
    /// A wijkregisseur of oost-1221 only.
    regisseur: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Finance,
    Council,
    Auditor,
    Regisseur,
}

struct Reply {
    what: String,
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.what, self.text()))
    }

    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{} answered {}: {}", self.what, self.status, self.text());
        self.json()
    }
}

impl Api {
    async fn start(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let Service { db, ledger, projector } = Service::open(&store.url).await.expect("the service opens");
        let (stop, stopped) = watch::channel(false);
        let router = router(AppState::new(ledger.clone()));
        let projector = tokio::spawn(projector.run(stopped));
        let finance = create_token(&db, Role::Finance, &[], "finance").await.unwrap();
        let council = create_token(&db, Role::Council, &[], "council").await.unwrap();
        let auditor = create_token(&db, Role::Auditor, &[], "auditor").await.unwrap();
        let regisseur = create_token(&db, Role::Wijkregisseur, &["oost-1221".to_string()], "regisseur").await.unwrap();
        Self { store, db, router, stop, projector, finance, council, auditor, regisseur }
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.projector.await.expect("the projector stops cleanly");
        self.db.close().await;
        self.store.cleanup().await;
    }

    async fn head(&self) -> i64 {
        head(&self.db).await.expect("the log head reads").0
    }

    async fn call(&self, who: Who, method: Method, path: &str, body: Option<&Value>, accept: Option<&str>) -> Reply {
        let token = match who {
            Who::Finance => &self.finance,
            Who::Council => &self.council,
            Who::Auditor => &self.auditor,
            Who::Regisseur => &self.regisseur,
        };
        let what = format!("{who:?} {method} {path}");
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        // Each booking here is a new one: the routes that require an
        // Idempotency-Key get a fresh key (tests/hardening.rs tests the 428).
        if method == Method::POST && wijkbudget::http::writes::KEY_REQUIRED.iter().any(|r| same_route(r, path)) {
            request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(value).unwrap())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body reads").to_vec();
        let content_type =
            parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Reply { what, status: parts.status, content_type, body }
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Who::Finance, Method::POST, path, Some(body), None).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Who::Finance, Method::GET, path, None, None).await
    }

    /// POST as finance, expecting `status` (201 or 200); returns the body.
    async fn written(&self, path: &str, body: &Value, status: u16) -> Value {
        self.post(path, body).await.expect(status)
    }

    /// Sends a request that must be refused with `status` and problem `code`,
    /// storing nothing. Returns a description of each way it was not.
    async fn refused(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
        code: &str,
    ) -> Vec<String> {
        let before = self.head().await;
        let reply = self.call(who, method, path, body, None).await;
        let after = self.head().await;
        let mut failures = Vec::new();
        let problem: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status.as_u16() != status || problem["code"] != code {
            failures.push(format!(
                "{} with {}: expected {status} `{code}`, got {} `{}`: {}",
                reply.what,
                body.map(|b| b.to_string()).unwrap_or_default(),
                reply.status.as_u16(),
                problem["code"].as_str().unwrap_or("?"),
                reply.text()
            ));
        }
        if !reply.content_type.starts_with("application/problem+json") {
            failures.push(format!("{}: content type `{}` is not problem+json", reply.what, reply.content_type));
        }
        if before != after {
            failures.push(format!("{}: the refusal stored events ({before} -> {after})", reply.what));
        }
        failures
    }
}

/// Whether `path` (`/funds/F/allocations`) is an instance of `route` (`/funds/{fund_id}/allocations`).
fn same_route(route: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (route, path): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len() && route.iter().zip(&path).all(|(r, p)| r.starts_with('{') || r == p)
}

fn fund_body(amount: &str) -> Value {
    json!({
        "fund_id": FUND, "year": 2022, "kind": "begroting", "name": "Wijkbudgetten 2022", "amount": amount,
        "decision": {"reference": "Begroting 2022", "adopted_on": "2021-11-11"},
        "purpose": "Initiatieven van inwoners",
    })
}

fn commitment_body(id: &str, wijk_id: &str, amount: &str, theme: &str, on: &str) -> Value {
    json!({
        "commitment_id": id, "wijk_id": wijk_id, "fund_id": FUND, "amount": amount,
        "initiative": format!("Initiatief {id}"), "applicant": "Bewonersgroep", "theme": theme,
        "decision": {"reference": format!("Subsidiebeschikking {id}"), "adopted_on": on},
        "grant_rule": "Subsidieregeling wijkbudgetten", "booked_on": on,
    })
}

fn payment_body(expense_id: &str, amount: &str, on: &str) -> Value {
    json!({"expense_id": expense_id, "amount": amount, "booked_on": on, "reference": format!("betaalopdracht {expense_id}")})
}

fn settlement_body(settled: Value, on: &str) -> Value {
    json!({"settled_amount": settled, "decision_reference": "Vaststellingsbeschikking", "booked_on": on})
}

fn repayment_body(amount: &str, on: &str) -> Value {
    json!({"amount": amount, "booked_on": on, "reference": "terugbetaling"})
}

fn withdrawal_body(cancelled: bool, on: &str) -> Value {
    json!({"reason": "Initiatief gaat niet door", "cancelled": cancelled, "booked_on": on})
}

fn transfer_body(from: &str, to: &str, amount: &str, on: &str) -> Value {
    json!({
        "from_wijk": from, "to_wijk": to, "amount": amount, "decision_reference": "Collegebesluit 2022-0101",
        "reason": "Herverdeling", "booked_on": on,
    })
}

fn expense_body(id: &str, wijk_id: &str, amount: &str, on: &str) -> Value {
    json!({
        "expense_id": id, "wijk_id": wijk_id, "fund_id": FUND, "amount": amount, "initiative": "Burendag",
        "theme": "sociale cohesie", "booked_on": on, "reference": format!("factuur {id}"),
    })
}

fn close_body(carry_over: &[&str]) -> Value {
    json!({"decision": {"reference": "Raadsbesluit jaarrekening 2022", "adopted_on": "2023-06-29"}, "carry_over": carry_over})
}

/// Wijken oost-1221 (5000.00), centrum (3000.00) and zuid (nothing) in a fund of
/// 10000.00 for 2022, and a direct expense of centrum, all through HTTP.
async fn seed(api: &Api) {
    for w in ["oost-1221", "centrum", "zuid"] {
        api.written("/wijken", &json!({"wijk_id": w, "name": w}), 201).await;
    }
    api.written("/funds", &fund_body("10000.00"), 201).await;
    for (w, amount) in [("oost-1221", "5000.00"), ("centrum", "3000.00")] {
        let body = json!({"wijk_id": w, "amount": amount, "reason": "verdeling", "booked_on": "2022-01-04"});
        api.written(&format!("/funds/{FUND}/allocations"), &body, 201).await;
    }
    api.written("/expenses", &expense_body("EXP-1", "centrum", "100.00", "2022-05-01"), 201).await;
}

#[track_caller]
fn assert_csv(reply: &Reply, header_line: &str, row_contains: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}: {}", reply.what, reply.text());
    assert!(reply.content_type.starts_with("text/csv"), "{}: content type {}", reply.what, reply.content_type);
    let body = reply.text();
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some(header_line), "{}: header line of\n{body}", reply.what);
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{}: no rows:\n{body}", reply.what);
    assert!(rows.iter().any(|r| r.contains(row_contains)), "{}: no row with {row_contains}:\n{body}", reply.what);
    let columns = header_line.split(',').count();
    for row in &rows {
        assert_eq!(row.matches("\",\"").count() + 1, columns, "{}: row {row} has the header's columns", reply.what);
    }
}
