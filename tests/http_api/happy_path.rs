//! Every endpoint, happy path: each answers, and a read sees the write before it.

use super::*;

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
        // The group committer's clock counted the writes above.
        let appends = &ready["appends"];
        let count = |field: &str| appends[field].as_u64().unwrap_or_else(|| panic!("{field} in {ready}"));
        assert!(count("commands") >= 1 && count("groups") <= count("commands"), "{ready}");
        assert!(count("database_us") > 0 && count("database_us") <= count("busy_us"), "{ready}");
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
