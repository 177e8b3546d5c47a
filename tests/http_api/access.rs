//! The access matrix: every endpoint answers each role as it says.

use super::*;

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
