//! Faults against a real server process: the database going away and
//! coming back, and clients that are slow or idle on purpose.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::server::{request, serve, wijkbudget};
use common::{Backend, TestStore};

async fn admin(sql: &str) {
    let pool = sqlx::PgPool::connect(&format!("{}/postgres", common::postgres_admin_url())).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
}

#[tokio::test]
async fn while_postgresql_is_away_requests_get_503_with_retry_after_and_the_service_recovers_by_itself() {
    let store = TestStore::new(Backend::Postgres).await;
    let url = store.url.clone();
    let name = url.rsplit('/').next().unwrap().to_string();
    let created = wijkbudget(&["token", "create", "--role", "finance", "--database", &url]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let server = serve(&url, &[]).await;
    let addr = server.addr.clone();

    let oost = r#"{"wijk_id":"oost-1223","name":"Oost 1223"}"#;
    assert_eq!(request(&addr, "POST", "/wijken", &token, Some(oost), None).await.status, 201);

    // The database goes away: no new connections, and the open ones are cut.
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")).await;

    let centrum = r#"{"wijk_id":"centrum","name":"Centrum"}"#;
    for (method, path, body) in [("GET", "/wijken", None), ("POST", "/wijken", Some(centrum)), ("GET", "/ready", None)]
    {
        let answer = request(&addr, method, path, &token, body, Some("centrum-1")).await;
        assert_eq!(answer.status, 503, "{method} {path} while the database is away: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{answer:?}");
        assert!(answer.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()), "{answer:?}");
        let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(problem["code"], "store_unavailable", "{problem}");
        assert!(!problem["detail"].as_str().unwrap().contains("pg_"), "no internals: {problem}");
    }
    let ready = request(&addr, "GET", "/ready", &token, None, None).await;
    assert!(ready.body.contains("not ready: the database"), "/ready says what happened: {}", ready.body);

    // It comes back; the service reconnects without a restart. A client
    // retries as told; each retry of the refused write carries its key.
    admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let mut written = None;
    for _ in 0..20 {
        let answer = request(&addr, "POST", "/wijken", &token, Some(centrum), Some("centrum-1")).await;
        if answer.status != 503 {
            written = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let written = written.expect("the service recovered");
    assert_eq!(written.status, 201, "{written:?}");
    let again = request(&addr, "POST", "/wijken", &token, Some(centrum), Some("centrum-1")).await;
    assert_eq!((again.status, &again.body), (201, &written.body), "the retry answers as the write did");
    assert_eq!(request(&addr, "GET", "/ready", &token, None, None).await.status, 200);
    drop(server);

    // Nothing lost, nothing doubled, and the chain verifies.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(events, 2, "two wijken registered, once each");
    pool.close().await;
    let verified = wijkbudget(&["verify", "--database", &url]);
    assert!(verified.status.success(), "{verified:?}");
    store.cleanup().await;
}

/// Reads until the server closes the connection or answers; `None` means
/// it closed without an answer.
async fn closed_without_answer(stream: &mut TcpStream) -> Option<String> {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_do_not_keep_others_from_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let server = serve(&database, &["--max-connections", "4", "--header-read-timeout", "1"]).await;
    let addr = server.addr.clone();

    // More idle connections than the limit, and one that sends its headers
    // a byte at a time.
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let slow_addr = addr.clone();
    let slow = tokio::spawn(async move {
        let mut stream = TcpStream::connect(&slow_addr).await.unwrap();
        let header = format!("GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Padding: {}\r\n\r\n", "a".repeat(200));
        for byte in header.bytes() {
            if stream.write_all(&[byte]).await.is_err() {
                return (true, None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Any answer or close before the headers are complete ends it.
            let mut peek = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut peek)).await {
                return (true, None);
            }
        }
        let answer = closed_without_answer(&mut stream).await;
        (false, answer)
    });

    // Another client still gets its answer.
    let health = tokio::time::timeout(Duration::from_secs(60), request(&addr, "GET", "/health", "-", None, None))
        .await
        .expect("a request is answered despite the idle connections");
    assert_eq!(health.status, 200, "{health:?}");

    for (i, stream) in idle.iter_mut().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(60), closed_without_answer(stream)).await;
        assert!(matches!(outcome, Ok(None)), "idle connection {i} was not closed: {outcome:?}");
    }
    let (cut_off, answer) = tokio::time::timeout(Duration::from_secs(120), slow).await.unwrap().unwrap();
    assert!(cut_off, "the byte-by-byte client sent all its headers and got {answer:?}");
}

/// The group append's failpoints (issue 11): before the group's events are
/// projected inside its transaction, before that transaction commits, and
/// after it committed but before the client's answer.
#[tokio::test]
async fn a_server_killed_between_the_append_and_its_projection_leaves_read_models_a_rebuild_agrees_with() {
    use common::server::serve_with_env;
    use wijkbudget::store::repository::head;
    let demo_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-import.csv");
    let body = r#"{"expense_id":"killed-1","wijk_id":"oost-1223","fund_id":"begroting-2022","amount":"10.00",
        "initiative":"Bankjes","theme":"ontmoeten","booked_on":"2022-10-01","reference":"factuur 1"}"#;
    for backend in common::BACKENDS {
        for (failpoint, stored) in
            [("append-before-projection", false), ("append-before-commit", false), ("append-after-commit", true)]
        {
            let store = TestStore::new(backend).await;
            let url = store.url.clone();
            let imported = wijkbudget(&["import", "--file", demo_file.to_str().unwrap(), "--database", &url]);
            assert!(imported.status.success(), "{imported:?}");
            let created = wijkbudget(&["token", "create", "--role", "finance", "--database", &url]);
            let token = String::from_utf8(created.stdout).unwrap().trim().to_string();
            let db = wijkbudget::store::Db::connect(&url).await.unwrap();
            let before = head(&db).await.unwrap().0;
            let what = format!("{backend:?} {failpoint}");

            let mut server = serve_with_env(&url, &[], &[(wijkbudget::failpoint::VARIABLE, failpoint)]).await;
            let answer = request(&server.addr, "POST", "/expenses", &token, Some(body), Some("killed-1")).await;
            assert_eq!(answer.status, 0, "{what}: a process that died answers nothing: {answer:?}");
            assert!(!server.wait_for_exit().success(), "{what}");
            drop(server);
            assert_eq!(head(&db).await.unwrap().0 > before, stored, "{what}: the append is all or nothing");

            // Restarted, the server catches up, and the client's retry books the expense once.
            let server = serve(&url, &[]).await;
            let retried = request(&server.addr, "POST", "/expenses", &token, Some(body), Some("killed-1")).await;
            assert!(matches!(retried.status, 200 | 201), "{what}: {retried:?}");
            let budget = request(&server.addr, "GET", "/wijken/oost-1223/budget?year=2022", &token, None, None).await;
            assert!(budget.body.contains("\"amount_remaining\":\"3170.00\""), "{what}: {}", budget.body);
            drop(server);
            assert_eq!(head(&db).await.unwrap().0, before + 1, "{what}: one expense, one event");

            // The read models are exactly what a rebuild from the log makes.
            let served = common::read_models(&db, &[]).await;
            let rebuilt = wijkbudget(&["rebuild", "--database", &url]);
            assert!(rebuilt.status.success(), "{what}: {rebuilt:?}");
            assert_eq!(common::read_models(&db, &[]).await, served, "{what}: the read models after the crash");
            db.close().await;
            store.cleanup().await;
        }
    }
}

/// `wijkbudget rebuild`, killed at any of its steps, leaves read models
/// that are whole. On SQLite it wipes them and projects the log again, and
/// the next start completes what a kill after the wipe or in the middle of
/// a batch left. On PostgreSQL it builds them beside the live ones and swaps
/// them in with one commit, so whenever it dies the live read models are
/// exactly what they were, with no catching up; the next rebuild clears
/// what the killed one left and completes.
#[tokio::test]
async fn a_rebuild_killed_at_any_step_leaves_whole_read_models() {
    let demo_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-import.csv");
    for backend in common::BACKENDS {
        let store = TestStore::new(backend).await;
        let url = store.url.clone();
        let imported = wijkbudget(&["import", "--file", demo_file.to_str().unwrap(), "--database", &url]);
        assert!(imported.status.success(), "{imported:?}");
        let db = wijkbudget::store::Db::connect(&url).await.unwrap();
        let expected = common::read_models(&db, &[]).await;
        let failpoints: &[&str] = match backend {
            Backend::Sqlite => &["rebuild-after-reset", "projector-before-commit"],
            Backend::Postgres => {
                &["rebuild-batch-before-commit", "rebuild-before-swap", "rebuild-mid-swap", "rebuild-after-swap"]
            }
        };
        for failpoint in failpoints {
            let killed = std::process::Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
                .args(["rebuild", "--database", &url])
                .env(wijkbudget::failpoint::VARIABLE, failpoint)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&killed.stderr);
            assert!(!killed.status.success() && stderr.contains(failpoint), "{backend:?} {failpoint}: {stderr}");
            if backend == Backend::Postgres {
                assert_eq!(
                    common::read_models(&db, &[]).await,
                    expected,
                    "{failpoint}: as served right after the kill"
                );
            }
            let service = wijkbudget::service::Service::open(&url).await.unwrap();
            service.projector.catch_up(|_| {}).await.unwrap();
            assert_eq!(common::read_models(&db, &[]).await, expected, "{backend:?} {failpoint}");
            service.db.close().await;
        }
        let rebuilt = wijkbudget(&["rebuild", "--database", &url]);
        assert!(rebuilt.status.success(), "{backend:?}: {rebuilt:?}");
        assert_eq!(common::read_models(&db, &[]).await, expected, "{backend:?}: after a whole rebuild");
        if let wijkbudget::store::Db::Postgres(pool) = &db {
            let said = String::from_utf8_lossy(&rebuilt.stdout);
            assert!(
                said.contains("read models rebuilt from") && said.contains("keys and indexes") && said.contains("swap"),
                "it says each step's time: {said}"
            );
            let leftovers: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE nspname IN ('wb_rebuild', 'wb_retired')")
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(leftovers, 0, "a whole rebuild clears what the killed ones left");
        }
        db.close().await;
        store.cleanup().await;
    }
}
