//! Holes a careless or curious client could find, closed, on both stores:
//! money-moving writes that could book twice on a retry, a wijkregisseur
//! probing commitment ids, a year close on a fund whose id leaves no room
//! for `-overheveling`, and funds established while their year closes.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt;

use common::{Backend, TestStore, BACKENDS};
use wijkbudget::auth::{create_token, Role};
use wijkbudget::http::{router, AppState};
use wijkbudget::service::Service;

struct Api {
    store: TestStore,
    router: Router,
    stop: watch::Sender<bool>,
    projector: tokio::task::JoinHandle<()>,
    finance: String,
    regisseur: String,
    ledger: wijkbudget::ledger::Ledger,
}

struct Reply {
    status: u16,
    body: Value,
}

impl Api {
    async fn start(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let Service { db, ledger, projector } = Service::open(&store.url).await.expect("the service opens");
        let (stop, stopped) = watch::channel(false);
        let projector = tokio::spawn(projector.run(stopped));
        let finance = create_token(&db, Role::Finance, &[], "finance").await.unwrap();
        let regisseur =
            create_token(&db, Role::Wijkregisseur, &["oost-1223".to_string()], "Anna de Vries").await.unwrap();
        Self { store, router: router(AppState::new(ledger.clone())), stop, projector, finance, regisseur, ledger }
    }

    async fn send(&self, token: &str, method: Method, path: &str, body: Option<&Value>, key: Option<&str>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", format!("Bearer {token}"));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    async fn post(&self, path: &str, body: Value, key: Option<&str>) -> Reply {
        self.send(&self.finance, Method::POST, path, Some(&body), key).await
    }

    async fn ok(&self, path: &str, body: Value, key: Option<&str>) -> Value {
        let reply = self.post(path, body, key).await;
        assert!(matches!(reply.status, 200 | 201), "{path}: {} {}", reply.status, reply.body);
        reply.body
    }

    async fn head(&self) -> i64 {
        wijkbudget::projections::status(&self.store.db).await.unwrap().1
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.projector.await.unwrap();
        self.store.cleanup().await;
    }

    /// Two wijken and fund `fund_id` of 2022 with 1000.00 allocated to oost-1223.
    async fn seed(&self, fund_id: &str) {
        for w in ["oost-1223", "centrum"] {
            self.ok("/wijken", json!({"wijk_id": w, "name": w}), None).await;
        }
        self.ok(
            "/funds",
            json!({"fund_id": fund_id, "year": 2022, "kind": "begroting", "name": "Wijkbudgetten 2022",
                "amount": "5000.00", "decision": {"reference": "Begroting 2022", "adopted_on": "2021-11-11"},
                "purpose": "Initiatieven van inwoners"}),
            None,
        )
        .await;
        let allocation = json!({"wijk_id": "oost-1223", "amount": "1000.00", "reason": "verdeling"});
        self.ok(&format!("/funds/{fund_id}/allocations"), allocation, Some("seed-allocation")).await;
    }
}

#[tokio::test]
async fn money_moving_writes_without_an_idempotency_key_are_refused_with_428_and_store_nothing() {
    for backend in BACKENDS {
        let api = Api::start(backend).await;
        api.seed("F-1").await;
        let head = api.head().await;
        let transfer = json!({"from_wijk": "oost-1223", "to_wijk": "centrum", "amount": "1.00",
            "decision_reference": "Collegebesluit 1", "reason": "herverdeling", "booked_on": "2022-03-01"});
        let repayment = json!({"amount": "1.00", "booked_on": "2022-03-01", "reference": "terugbetaling"});
        for (path, body) in [
            ("/funds/F-1/allocations", json!({"wijk_id": "centrum", "amount": "1.00", "reason": "verdeling"})),
            ("/funds/F-1/transfers", transfer),
            ("/commitments/c-1/repayments", repayment),
        ] {
            let reply = api.post(path, body, None).await;
            assert_eq!(reply.status, 428, "{backend:?} {path}: {}", reply.body);
            assert_eq!(reply.body["code"], "idempotency_key_required", "{}", reply.body);
            assert_eq!(reply.body["errors"][0]["in"], "header", "{}", reply.body);
            assert_eq!(reply.body["errors"][0]["location"], "#/Idempotency-Key", "{}", reply.body);
            assert!(reply.body["detail"].as_str().unwrap().contains("Idempotency-Key"), "{}", reply.body);
        }
        assert_eq!(api.head().await, head, "{backend:?}: a refusal stores nothing");

        // With a key, a retry books once and answers as the first time did.
        let body = json!({"wijk_id": "centrum", "amount": "250.00", "reason": "verdeling"});
        let first = api.ok("/funds/F-1/allocations", body.clone(), Some("alloc-centrum-1")).await;
        let again = api.ok("/funds/F-1/allocations", body, Some("alloc-centrum-1")).await;
        assert_eq!(first, again, "{backend:?}");
        let fund = api.send(&api.finance, Method::GET, "/funds/F-1", None, None).await.body;
        assert_eq!(fund["amount_allocated"], "1250.00", "{backend:?}: allocated once: {fund}");
        api.finish().await;
    }
}

#[tokio::test]
async fn a_wijkregisseur_cannot_tell_another_wijks_commitment_from_one_that_does_not_exist() {
    for backend in BACKENDS {
        let api = Api::start(backend).await;
        api.seed("F-1").await;
        let centrum = json!({"wijk_id": "centrum", "amount": "100.00", "reason": "verdeling"});
        api.ok("/funds/F-1/allocations", centrum, Some("alloc-centrum")).await;
        let commitment = json!({
            "commitment_id": "SUB-CENTRUM", "wijk_id": "centrum", "fund_id": "F-1", "amount": "50.00",
            "initiative": "Burendag", "applicant": "Bewonersgroep", "theme": "ontmoeting",
            "decision": {"reference": "Beschikking 1", "adopted_on": "2022-03-01"},
            "grant_rule": "Subsidieregeling wijkbudgetten", "booked_on": "2022-03-01",
        });
        api.ok("/commitments", commitment, None).await;

        let taken = api.send(&api.regisseur, Method::GET, "/commitments/SUB-CENTRUM", None, None).await;
        let free = api.send(&api.regisseur, Method::GET, "/commitments/SUB-NOWHERE", None, None).await;
        assert_eq!(taken.status, free.status, "{backend:?}: {} vs {}", taken.body, free.body);
        assert_eq!(taken.status, 404);
        let taken_body = taken.body.to_string().replace("SUB-CENTRUM", "ID");
        let free_body = free.body.to_string().replace("SUB-NOWHERE", "ID");
        assert_eq!(taken_body, free_body, "{backend:?}: the same answer either way");
        // Finance still reads it.
        let seen = api.send(&api.finance, Method::GET, "/commitments/SUB-CENTRUM", None, None).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        api.finish().await;
    }
}

#[tokio::test]
async fn a_year_close_carries_over_a_fund_whose_id_is_64_characters_long() {
    let long_id = format!("begroting-2022-{}", "x".repeat(64 - 15));
    assert_eq!(long_id.len(), 64);
    for backend in BACKENDS {
        let api = Api::start(backend).await;
        api.seed(&long_id).await;
        let close = json!({"decision": {"reference": "Raadsbesluit jaarrekening 2022", "adopted_on": "2023-06-29"},
            "carry_over": ["oost-1223"]});
        let reply = api.post("/years/2022/close", close, None).await;
        assert_eq!(reply.status, 200, "{backend:?}: {}", reply.body);
        let carried_into = reply.body["funds"][0]["carried_into"].as_str().expect("a carry-over fund").to_string();
        assert!(carried_into.len() <= 64 && carried_into.ends_with("-overheveling"), "{carried_into}");
        let carried = api.send(&api.finance, Method::GET, &format!("/funds/{carried_into}"), None, None).await;
        assert_eq!(carried.status, 200, "{}", carried.body);
        assert_eq!(carried.body["amount"], "1000.00", "{backend:?}: {}", carried.body);
        api.finish().await;
    }
}

fn fund_body(fund_id: &str, year: i32) -> Value {
    json!({"fund_id": fund_id, "year": year, "kind": "begrotingswijziging", "name": "Wijziging",
        "amount": "100.00", "decision": {"reference": "Besluit", "adopted_on": "2029-11-11"},
        "purpose": "Initiatieven van inwoners"})
}

/// Establishing funds while their year is being closed, from many requests
/// at once: each establish either fails as `year_closed` or its fund ends
/// up closed with the year. Never an open fund in a closed year.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_fund_stays_open_in_a_year_closed_while_it_was_being_established() {
    for backend in BACKENDS {
        let api = std::sync::Arc::new(Api::start(backend).await);
        let (mut refused, mut closed_with_the_year) = (0, 0);
        for year in 2030..2036 {
            api.ok("/funds", fund_body(&format!("basis-{year}"), year), None).await;
            let mut racers = Vec::new();
            let closer = api.clone();
            racers.push(tokio::spawn(async move {
                let close = json!({"decision": {"reference": "Jaarrekening", "adopted_on": format!("{}-03-01", year + 1)},
                    "carry_over": []});
                let reply = closer.post(&format!("/years/{year}/close"), close, None).await;
                assert_eq!(reply.status, 200, "the close: {}", reply.body);
                None
            }));
            for i in 0..8 {
                let api = api.clone();
                racers.push(tokio::spawn(async move {
                    let id = format!("race-{year}-{i}");
                    let reply = api.post("/funds", fund_body(&id, year), None).await;
                    Some((id, reply.status, reply.body))
                }));
            }
            for racer in racers {
                let Some((id, status, body)) = racer.await.unwrap() else { continue };
                match status {
                    201 => {
                        let fund =
                            api.ledger.load_fund(&wijkbudget::domain::ids::FundId::parse(&id).unwrap()).await.unwrap();
                        assert!(
                            fund.is_closed(),
                            "{backend:?}: {id} was established in {year} and left open by its close"
                        );
                        closed_with_the_year += 1;
                    }
                    422 => {
                        assert_eq!(body["code"], "year_closed", "{body}");
                        refused += 1;
                    }
                    other => panic!("{backend:?}: establishing {id} answered {other}: {body}"),
                }
            }
        }
        eprintln!(
            "{backend:?}: {refused} establishes refused as year_closed, {closed_with_the_year} closed with their year"
        );
        match std::sync::Arc::try_unwrap(api) {
            Ok(api) => api.finish().await,
            Err(_) => panic!("a racer still holds the api"),
        }
    }
}
