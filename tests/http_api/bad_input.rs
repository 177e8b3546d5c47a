//! Bad input: a clear error, and nothing stored.

use super::*;

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
