//! Idempotency: retries, reused keys, replays after a restart, concurrent duplicates.

use super::*;

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
