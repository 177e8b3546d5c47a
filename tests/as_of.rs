//! Every figure as it stood on its day: as-of answers use only what was
//! booked on or before the asked day, on SQLite and PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use chrono::NaiveDate;
use common::{date, fund_id, meta, text, wijk, Backend, Harness, TestStore, BACKENDS};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use wijkbudget::auth::{create_token, Role};
use wijkbudget::domain::fund::{ApplicantKind, CommitmentDetails, Decision, FundCommand, FundKind, FundTerms};
use wijkbudget::domain::ids::{CommitmentId, ExpenseId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::WijkCommand;
use wijkbudget::http::{router, AppState};
use wijkbudget::ledger::Ledger;
use wijkbudget::projections::reports;
use wijkbudget::service::Service;

const FUND: &str = "begroting-2022";

fn euro(cents: i64) -> Amount {
    Amount::try_from(Decimal::new(cents, 2)).unwrap()
}

fn commitment_id(id: &str) -> CommitmentId {
    CommitmentId::parse(id).unwrap()
}

fn commit(id: &str, on: NaiveDate) -> FundCommand {
    FundCommand::Commit(CommitmentDetails {
        commitment_id: commitment_id(id),
        wijk_id: wijk("oost-1223"),
        amount: euro(100_000),
        initiative: text("Buurtmoestuin"),
        applicant: text("Tuingroep"),
        applicant_kind: ApplicantKind::Organisation,
        theme: text("groen"),
        decision: Decision { reference: text(&format!("Beschikking {id}")), adopted_on: on },
        grant_rule: text("Subsidieregeling wijkbudgetten"),
        booked_on: on,
    })
}

/// A wijk with 10,000.00 from the 2022 begroting.
async fn funded(ledger: &Ledger) {
    ledger
        .register_wijk(WijkCommand::Register { wijk_id: wijk("oost-1223"), name: text("Oost 1223") }, &meta())
        .await
        .unwrap();
    let terms = FundTerms {
        fund_id: fund_id(FUND),
        year: Year::new(2022).unwrap(),
        kind: FundKind::Begroting,
        name: text("Wijkbudgetten 2022"),
        amount: euro(1_000_000),
        decision: Decision { reference: text("Begroting 2022"), adopted_on: date("2021-11-11") },
        purpose: text("Initiatieven van inwoners"),
    };
    ledger.fund(&fund_id(FUND), FundCommand::Establish(terms), &meta()).await.unwrap();
    let allocate = FundCommand::Allocate {
        wijk_id: wijk("oost-1223"),
        amount: euro(1_000_000),
        reason: text("verdeling"),
        booked_on: date("2022-01-03"),
    };
    ledger.fund(&fund_id(FUND), allocate, &meta()).await.unwrap();
}

#[tokio::test]
async fn the_stale_commitments_of_a_past_day_are_those_open_and_unpaid_on_that_day() {
    for backend in BACKENDS {
        let h = Harness::new(backend).await;
        funded(&h.ledger).await;
        let fund = fund_id(FUND);
        let run = |command: FundCommand| {
            let ledger = h.ledger.clone();
            let fund = fund.clone();
            async move { ledger.fund(&fund, command, &meta()).await.unwrap() }
        };
        // Four commitments decided in March; each is later paid, settled,
        // withdrawn or left alone. One more is booked only in August.
        for id in ["PAID", "SETTLED", "WITHDRAWN", "WAITING"] {
            run(commit(id, date("2022-03-01"))).await;
        }
        run(commit("LATE", date("2022-08-01"))).await;
        run(FundCommand::Pay {
            commitment_id: commitment_id("PAID"),
            expense_id: ExpenseId::parse("PAID-1").unwrap(),
            amount: euro(50_000),
            booked_on: date("2022-10-01"),
            reference: text("betaalopdracht"),
        })
        .await;
        // Settled at the full amount with nothing paid: an event without postings.
        run(FundCommand::Settle {
            commitment_id: commitment_id("SETTLED"),
            settled_amount: Decimal::new(100_000, 2),
            decision_reference: text("Vaststelling"),
            booked_on: date("2022-10-01"),
        })
        .await;
        run(FundCommand::Withdraw {
            commitment_id: commitment_id("WITHDRAWN"),
            reason: text("gaat niet door"),
            cancelled: false,
            booked_on: date("2022-10-01"),
        })
        .await;
        h.catch_up().await;
        let db = &h.store.db;

        // On 1 July 2022 all four March commitments were open and unpaid,
        // and older than 13 weeks; LATE did not exist yet.
        let stale = reports::stale_commitments(db, date("2022-07-01")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["PAID", "SETTLED", "WAITING", "WITHDRAWN"], "{backend:?}: {stale:?}");
        for c in &stale {
            assert_eq!(c.status, "open", "{backend:?}: as it stood on the day: {c:?}");
            assert_eq!(c.amount_paid.to_string(), "0.00", "{backend:?}: {c:?}");
            assert_eq!(c.amount_settled, None, "{backend:?}: {c:?}");
            assert_eq!(c.last_paid_on, None, "{backend:?}: {c:?}");
        }
        // By the end of the year only WAITING is left, and LATE (decided in
        // August) is not yet 13 weeks old on 1 October but is by December.
        let stale = reports::stale_commitments(db, date("2022-10-01")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["WAITING"], "{backend:?}: {stale:?}");
        let stale = reports::stale_commitments(db, date("2022-12-31")).await.unwrap();
        let ids: Vec<&str> = stale.iter().map(|c| c.commitment_id.as_str()).collect();
        assert_eq!(ids, ["WAITING", "LATE"], "{backend:?}: {stale:?}");
        h.store.cleanup().await;
    }
}

// ---------------------------------------------------------------------------
// Over HTTP: advice that the API accepts, and corrections with a booking date
// ---------------------------------------------------------------------------

/// A running service on a fresh store, driven in-process as finance.
struct Api {
    store: TestStore,
    router: Router,
    stop: watch::Sender<bool>,
    projector: JoinHandle<()>,
    token: String,
}

impl Api {
    async fn start(backend: Backend) -> Self {
        let store = TestStore::new(backend).await;
        let Service { db, ledger, projector } = Service::open(&store.url).await.expect("the service opens");
        let (stop, stopped) = watch::channel(false);
        let router = router(AppState::new(ledger));
        let projector = tokio::spawn(projector.run(stopped));
        let token = create_token(&db, Role::Finance, &[], "finance").await.unwrap();
        Self { store, router, stop, projector, token }
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        self.projector.await.expect("the projector stops cleanly");
        self.store.cleanup().await;
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if method == Method::POST {
            // Each request here is a new booking: a fresh key, which some routes require.
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
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body reads");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, path, Some(&body)).await;
        assert!(status == 200 || status == 201, "POST {path} {body} answered {status}: {answer}");
        answer
    }

    async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {answer}");
        answer
    }
}

fn expense_body(id: &str, fund: &str, cents: &str, booked_on: &str) -> Value {
    json!({"expense_id": id, "wijk_id": "oost-1223", "fund_id": fund, "amount": cents,
        "initiative": "Buurtfeest", "theme": "sociale cohesie", "booked_on": booked_on, "reference": "factuur"})
}

/// oost-1223 with 10,000.00 from the 2022 begroting, a 100.00 expense and a
/// 1,000.00 commitment; 2022 closed by a council decision of 30 March 2023
/// that carries oost-1223's 8,900.00 over into `begroting-2022-overheveling`.
async fn closed_2022(api: &Api) {
    api.ok("/wijken", json!({"wijk_id": "oost-1223", "name": "Oost 1223"})).await;
    api.ok(
        "/funds",
        json!({"fund_id": FUND, "year": 2022, "kind": "begroting", "name": "Wijkbudgetten 2022", "amount": "10000.00",
            "decision": {"reference": "Begroting 2022", "adopted_on": "2021-11-11"}, "purpose": "Initiatieven"}),
    )
    .await;
    api.ok(
        &format!("/funds/{FUND}/allocations"),
        json!({"wijk_id": "oost-1223", "amount": "10000.00", "reason": "verdeling", "booked_on": "2022-01-03"}),
    )
    .await;
    api.ok("/expenses", expense_body("dubbel", FUND, "100.00", "2022-06-01")).await;
    api.ok(
        "/commitments",
        json!({"commitment_id": "SUB-1", "wijk_id": "oost-1223", "fund_id": FUND, "amount": "1000.00",
            "initiative": "Moestuin", "applicant": "Tuingroep", "theme": "groen",
            "decision": {"reference": "Beschikking SUB-1", "adopted_on": "2022-03-01"},
            "grant_rule": "Subsidieregeling wijkbudgetten", "booked_on": "2022-03-01"}),
    )
    .await;
    api.ok(
        "/years/2022/close",
        json!({"decision": {"reference": "Raadsbesluit jaarrekening 2022", "adopted_on": "2023-03-30"},
            "carry_over": ["oost-1223"]}),
    )
    .await;
}

const CARRIED: &str = "begroting-2022-overheveling";

/// Every refusal that advises a fix is sent; then the advised correction is
/// sent and accepted. Issue 14: an expense in a closed year was told to "mark
/// it post_closing", a field it does not have.
#[tokio::test]
async fn every_refusal_that_advises_a_fix_is_followed_by_that_fix_being_accepted() {
    for backend in BACKENDS {
        let api = Api::start(backend).await;
        closed_2022(&api).await;
        api.ok("/expenses", expense_body("later-2023", CARRIED, "50.00", "2023-06-01")).await;
        api.ok(
            "/commitments/SUB-1/payments",
            json!({"expense_id": "SUB-1-b1", "amount": "400.00", "booked_on": "2023-02-01", "reference": "b1"}),
        )
        .await;
        // (what, refused request, code, a phrase of its advice, the advised request)
        let cases: Vec<(&str, (&str, Value), &str, &str, (String, Value))> = vec![
            (
                "an expense dated in the closed year",
                ("/expenses", expense_body("laat", FUND, "10.00", "2022-12-01")),
                "year_closed",
                "book it on a fund of an open year",
                ("/expenses".into(), expense_body("laat", CARRIED, "10.00", "2023-04-03")),
            ),
            (
                "a payment dated in the closed year",
                (
                    "/commitments/SUB-1/payments",
                    json!({"expense_id": "SUB-1-b2", "amount": "100.00", "booked_on": "2022-12-20", "reference": "b2"}),
                ),
                "year_closed",
                "book it on or after 2023-01-01",
                (
                    "/commitments/SUB-1/payments".into(),
                    json!({"expense_id": "SUB-1-b2", "amount": "100.00", "booked_on": "2023-02-01", "reference": "b2"}),
                ),
            ),
            (
                "a reversal in a closed year without the mark",
                ("/expenses/dubbel/reversal", json!({"reason": "dubbel geboekt"})),
                "mark_post_closing",
                "\"post_closing\": true",
                ("/expenses/dubbel/reversal".into(), json!({"reason": "dubbel geboekt", "post_closing": true})),
            ),
            (
                "a reversal in an open year marked post_closing",
                ("/expenses/later-2023/reversal", json!({"reason": "vergissing", "post_closing": true})),
                "not_post_closing",
                "send it without post_closing",
                ("/expenses/later-2023/reversal".into(), json!({"reason": "vergissing"})),
            ),
            (
                "carried-over money spent before the close decision",
                ("/expenses", expense_body("januari", CARRIED, "10.00", "2023-01-15")),
                "booked_too_early",
                "on 2023-03-30; book it on or after that day",
                ("/expenses".into(), expense_body("januari", CARRIED, "10.00", "2023-03-30")),
            ),
            (
                "an expense outside its fund's year",
                ("/expenses", expense_body("volgend-jaar", CARRIED, "10.00", "2024-01-02")),
                "outside_fund_year",
                "book it within 2023",
                ("/expenses".into(), expense_body("volgend-jaar", CARRIED, "10.00", "2023-12-30")),
            ),
            (
                "an expense id used for another expense",
                ("/expenses", expense_body("laat", CARRIED, "11.00", "2023-04-03")),
                "expense_exists",
                "choose another expense_id",
                ("/expenses".into(), expense_body("laat-2", CARRIED, "11.00", "2023-04-03")),
            ),
            (
                "a reversal of a payment on a commitment",
                ("/expenses/SUB-1-b1/reversal", json!({"reason": "te veel", "post_closing": true})),
                "payment_not_reversible",
                "through the commitment's settlement",
                (
                    "/commitments/SUB-1/settlement".into(),
                    json!({"settled_amount": "400.00", "decision_reference": "Vaststelling SUB-1", "booked_on": "2023-03-01"}),
                ),
            ),
        ];
        let fund_body = |fund_id: &str, year: i32| {
            json!({"fund_id": fund_id, "year": year, "kind": "begrotingswijziging", "name": "Extra", "amount": "100.00",
                "decision": {"reference": "Wijziging", "adopted_on": format!("{year}-02-01")}, "purpose": "Initiatieven"})
        };
        let commitment_body = |id: &str, amount: &str| {
            json!({"commitment_id": id, "wijk_id": "oost-1223", "fund_id": CARRIED, "amount": amount,
                "initiative": "Speeltuin", "applicant": "Buurtgroep", "theme": "spelen",
                "decision": {"reference": format!("Beschikking {id}"), "adopted_on": "2023-04-01"},
                "grant_rule": "Subsidieregeling wijkbudgetten", "booked_on": "2023-04-01"})
        };
        let more: Vec<(&str, (&str, Value), &str, &str, (String, Value))> = vec![
            (
                "a fund id already used with other terms",
                ("/funds", fund_body(FUND, 2023)),
                "fund_exists",
                "choose another fund_id",
                ("/funds".into(), fund_body("wijziging-2023", 2023)),
            ),
            (
                "a new fund in the closed year",
                ("/funds", fund_body("wijziging-2022", 2022)),
                "year_closed",
                "use a fund of an open year",
                ("/funds".into(), fund_body("wijziging-2022-b", 2023)),
            ),
            (
                "a commitment id used with other details",
                ("/commitments", commitment_body("SUB-1", "10.00")),
                "commitment_exists",
                "choose another commitment_id",
                ("/commitments".into(), commitment_body("SUB-9", "10.00")),
            ),
            (
                "a payment before the commitment's last booking",
                (
                    "/commitments/SUB-9/payments",
                    json!({"expense_id": "SUB-9-b1", "amount": "5.00", "booked_on": "2023-03-31", "reference": "b"}),
                ),
                "booked_too_early",
                "on 2023-04-01; book it on or after that day",
                (
                    "/commitments/SUB-9/payments".into(),
                    json!({"expense_id": "SUB-9-b1", "amount": "5.00", "booked_on": "2023-04-01", "reference": "b"}),
                ),
            ),
        ];
        for (what, (path, body), code, advice, (fixed_path, fixed_body)) in cases.into_iter().chain(more) {
            let (status, problem) = api.call(Method::POST, path, Some(&body)).await;
            let expected = if code.ends_with("_exists") { 409 } else { 422 };
            assert_eq!((status, problem["code"].as_str()), (expected, Some(code)), "{backend:?}: {what}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(advice), "{backend:?}: {what}: the advice `{advice}` is missing from {detail:?}");
            let (status, answer) = api.call(Method::POST, &fixed_path, Some(&fixed_body)).await;
            assert_eq!(status, 201, "{backend:?}: {what}: the advised {fixed_path} {fixed_body} was refused: {answer}");
        }
        // A wijk nobody registered: register it, as advised, and the transfer goes through.
        let transfer = json!({"from_wijk": "oost-1223", "to_wijk": "nieuw-1", "amount": "10.00",
            "decision_reference": "Collegebesluit", "reason": "herverdeling", "booked_on": "2023-05-01"});
        let path = format!("/funds/{CARRIED}/transfers");
        let (status, problem) = api.call(Method::POST, &path, Some(&transfer)).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("unknown_wijk")), "{backend:?}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("register it first with POST /api/v1/wijken"));
        api.ok("/wijken", json!({"wijk_id": "nieuw-1", "name": "Nieuw 1"})).await;
        api.ok(&path, transfer).await;
        api.finish().await;
    }
}

/// Reversals, withdrawals, settlements and repayments take an optional
/// `booked_on` (issue 14: a reversal was always booked "today, clamped into
/// the fund's year"), within the same rules as every other booking.
#[tokio::test]
async fn corrections_are_booked_on_the_day_they_name_within_the_rules() {
    for backend in BACKENDS {
        let api = Api::start(backend).await;
        closed_2022(&api).await;
        for (id, on) in [("a", "2023-04-03"), ("b", "2023-05-01")] {
            api.ok("/expenses", expense_body(id, CARRIED, "100.00", on)).await;
        }
        // A reversal on the day finance decided it.
        api.ok("/expenses/a/reversal", json!({"reason": "dubbel", "booked_on": "2023-04-20"})).await;
        // Never before the expense, never outside the open year.
        for (body, code) in [
            (json!({"reason": "dubbel", "booked_on": "2023-04-30"}), "booked_too_early"),
            (json!({"reason": "dubbel", "booked_on": "2024-01-02"}), "outside_fund_year"),
        ] {
            let (status, problem) = api.call(Method::POST, "/expenses/b/reversal", Some(&body)).await;
            assert_eq!((status, problem["code"].as_str()), (422, Some(code)), "{backend:?}: {body}: {problem}");
        }
        // A post-closing reversal of a 2022 expense: after the closed year only.
        let (status, problem) = api
            .call(
                Method::POST,
                "/expenses/dubbel/reversal",
                Some(&json!({"reason": "dubbel", "post_closing": true, "booked_on": "2022-12-31"})),
            )
            .await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("year_closed")), "{backend:?}: {problem}");
        api.ok(
            "/expenses/dubbel/reversal",
            json!({"reason": "dubbel", "post_closing": true, "booked_on": "2023-04-02"}),
        )
        .await;
        // Settlement, repayment and withdrawal with and without a date.
        api.ok(
            "/commitments/SUB-1/payments",
            json!({"expense_id": "SUB-1-b1", "amount": "600.00", "booked_on": "2023-02-01", "reference": "b1"}),
        )
        .await;
        let (status, problem) = api
            .call(
                Method::POST,
                "/commitments/SUB-1/settlement",
                Some(&json!({"settled_amount": "500.00", "decision_reference": "V", "booked_on": "2023-01-31"})),
            )
            .await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("booked_too_early")), "{backend:?}: {problem}");
        api.ok(
            "/commitments/SUB-1/settlement",
            json!({"settled_amount": "500.00", "decision_reference": "V", "booked_on": "2023-03-01"}),
        )
        .await;
        api.ok(
            "/commitments/SUB-1/repayments",
            json!({"amount": "40.00", "booked_on": "2023-03-02", "reference": "r1"}),
        )
        .await;
        api.ok("/commitments/SUB-1/repayments", json!({"amount": "60.00", "reference": "r2"})).await;

        let today = chrono::Utc::now().date_naive().to_string();
        let trail = api.get("/wijken/oost-1223/audit-trail?limit=1000").await;
        let booked = |event_type: &str| -> Vec<String> {
            let mut days: Vec<String> = trail["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["event_type"] == event_type)
                .map(|r| r["booked_on"].as_str().unwrap().to_string())
                .collect();
            days.dedup();
            days
        };
        assert_eq!(booked("ExpenseReversed"), ["2023-04-20"], "{backend:?}");
        assert_eq!(booked("ExpenseReversedAfterClose"), ["2023-04-02"], "{backend:?}");
        assert_eq!(booked("CommitmentSettled"), ["2023-03-01"], "{backend:?}");
        assert_eq!(booked("RepaymentReceived"), ["2023-03-02".to_string(), today], "{backend:?}");
        api.finish().await;
    }
}
