//! Three service instances on one PostgreSQL database, with writes spread
//! over them at once: positions stay gap-free, the chain verifies, every
//! instance answers the same, and the read models equal a fresh rebuild.

mod common;

use common::server::{request, serve, wijkbudget};
use common::{read_models, Backend, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database_keep_one_ledger() {
    let store = TestStore::new(Backend::Postgres).await;
    let url = store.url.clone();
    let created = wijkbudget(&["token", "create", "--role", "finance", "--database", &url]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let servers = vec![serve(&url, &[]).await, serve(&url, &[]).await, serve(&url, &[]).await];
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();

    let first = &addrs[0];
    for (wijk, name) in [("oost-1223", "Oost 1223"), ("centrum", "Centrum")] {
        let body = format!(r#"{{"wijk_id":"{wijk}","name":"{name}"}}"#);
        assert_eq!(request(first, "POST", "/wijken", &token, Some(&body), None).await.status, 201);
    }
    let fund = r#"{"fund_id":"begroting-2022","year":2022,"kind":"begroting","name":"Wijkbudgetten 2022",
        "amount":"10000.00","decision":{"reference":"Begroting 2022","adopted_on":"2021-11-11"},"purpose":"Initiatieven"}"#;
    assert_eq!(request(first, "POST", "/funds", &token, Some(fund), None).await.status, 201);
    for (i, wijk) in ["oost-1223", "centrum"].iter().enumerate() {
        let body = format!(r#"{{"wijk_id":"{wijk}","amount":"1000.00","reason":"Jaarbudget"}}"#);
        let key = format!("alloc-{i}");
        assert_eq!(
            request(first, "POST", "/funds/begroting-2022/allocations", &token, Some(&body), Some(&key)).await.status,
            201
        );
    }

    // 60 expenses of 40.00 on one fund, 30 per wijk, spread over the three
    // instances at once: 1200.00 a wijk, more than its 1000.00, so the money
    // rule is raced across instances too. Exactly 25 per wijk fit.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (addr, token) = (addrs[i % 3].clone(), token.clone());
        let wijk = if i % 2 == 0 { "oost-1223" } else { "centrum" };
        tasks.push(tokio::spawn(async move {
            let body = format!(
                r#"{{"expense_id":"e-{i}","wijk_id":"{wijk}","fund_id":"begroting-2022","amount":"40.00",
                "initiative":"Bankjes","theme":"ontmoeten","booked_on":"2022-06-01","reference":"factuur {i}"}}"#
            );
            request(&addr, "POST", "/expenses", &token, Some(&body), None).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let booked = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 422).count();
    assert_eq!((booked, refused), (50, 10), "25 expenses fit per wijk, the rest are refused: {statuses:?}");

    // Every instance answers the same, once its projector has caught up.
    let mut answers = Vec::new();
    for addr in &addrs {
        let mut budget = String::new();
        for _ in 0..400 {
            let ready = request(addr, "GET", "/ready", &token, None, None).await;
            if ready.body.contains("\"projector_lag\":0") {
                budget = request(addr, "GET", "/wijken/oost-1223/budget", &token, None, None).await.body;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(budget.contains("\"amount_spent\":\"1000.00\""), "{addr}: {budget}");
        answers.push(budget);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");

    // Positions gap-free, the chain verifies, and the read models equal a fresh rebuild.
    let (count, max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COALESCE(MAX(position), 0) FROM events")
        .fetch_one(match &store.db {
            wijkbudget::store::Db::Postgres(pool) => pool,
            _ => unreachable!("a PostgreSQL store"),
        })
        .await
        .unwrap();
    assert_eq!(count, max, "positions are gap-free");
    let live = read_models(&store.db, &[]).await;
    drop(servers);
    let verified = wijkbudget(&["verify", "--database", &url]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let rebuilt = wijkbudget(&["rebuild", "--database", &url]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(read_models(&store.db, &[]).await == live, "the three instances' read models equal a fresh rebuild");
    store.cleanup().await;
}
