//! The `wijkbudget` binary end to end: tokens, the demo data in the report,
//! rebuild, verify's exit codes, and a clean stop on SIGTERM; the theme
//! report as of a day.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Backend, TestStore};

fn wijkbudget(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wijkbudget")).args(args).env("RUST_LOG", "warn").output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A store holding the demo dataset, projected.
async fn demo_store() -> TestStore {
    let store = TestStore::new(Backend::Sqlite).await;
    let service = wijkbudget::service::Service::open(&store.url).await.unwrap();
    wijkbudget::demo::load(&service.ledger, |_, _| {}).await.unwrap();
    service.projector.catch_up(|_| {}).await.unwrap();
    store
}

#[tokio::test]
async fn the_report_for_2022_shows_every_wijk_and_a21_182_allocated_and_spent_in_oost_1223() {
    let store = demo_store().await;
    let output = wijkbudget(&["report", "--year", "2022", "--database", &store.url]);
    assert!(output.status.success(), "{output:?}");
    let report = stdout(&output);
    for (_, name) in wijkbudget::demo::WIJKEN {
        assert!(report.lines().any(|l| l.starts_with(name)), "{name} is missing from:\n{report}");
    }
    let a21 = report.lines().find(|l| l.trim_start().starts_with("A21-182")).expect("an A21-182 line");
    let figures: Vec<&str> = a21.split_whitespace().collect();
    assert_eq!(
        &figures[2..],
        ["50000.00", "0.00", "50000.00", "0.00"],
        "allocated, committed, spent, remaining: {a21}"
    );
    let oost = report.lines().position(|l| l.starts_with("Oost 1223")).unwrap();
    let a21_line = report.lines().position(|l| l.trim_start().starts_with("A21-182")).unwrap();
    assert!(a21_line > oost, "the A21-182 line belongs to Oost 1223:\n{report}");

    let close = stdout(&wijkbudget(&["report", "--year", "2021", "--kind", "close", "--database", &store.url]));
    assert!(close.lines().any(|l| l.starts_with("opening 450000.00") && l.ends_with("= 0.00")), "{close}");
    store.cleanup().await;
}

/// `--as-of` counts for the theme report too (issue 14), and a close
/// statement, frozen at the close, refuses it instead of ignoring it.
#[tokio::test]
async fn the_theme_report_answers_as_of_a_day_and_the_close_statement_refuses_one() {
    let store = demo_store().await;
    for as_of in [None, Some("2022-06-30")] {
        let mut args = vec!["report", "--year", "2022", "--kind", "themes", "--database", &store.url];
        if let Some(day) = as_of {
            args.extend(["--as-of", day]);
        }
        let output = wijkbudget(&args);
        assert!(output.status.success(), "{output:?}");
        let printed = stdout(&output);
        let period =
            wijkbudget::projections::queries::Period { year: Some(2022), as_of: as_of.map(|d| d.parse().unwrap()) };
        let report = wijkbudget::projections::reports::themes_in(&store.db, period).await.unwrap();
        let oost = report.iter().find(|w| w.wijk_id == "oost-1223").expect("oost-1223 in the report");
        let line = printed.lines().find(|l| l.starts_with("Oost 1223")).expect("an Oost 1223 row");
        let figures: Vec<&str> = line.split_whitespace().skip(2).collect();
        assert_eq!(figures[0], oost.amount_allocated.to_string(), "allocated as of {as_of:?}: {line}");
        assert_eq!(figures[4], oost.amounts.amount_spent.to_string(), "spent as of {as_of:?}: {line}");
    }
    let refused =
        wijkbudget(&["report", "--year", "2021", "--kind", "close", "--as-of", "2021-12-31", "--database", &store.url]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("leave out --as-of"), "{refused:?}");
    store.cleanup().await;
}

#[tokio::test]
async fn a_token_is_printed_alone_listed_without_its_secret_and_can_be_revoked() {
    let store = TestStore::new(Backend::Sqlite).await;
    let created = wijkbudget(&[
        "token",
        "create",
        "--role",
        "wijkregisseur",
        "--wijk",
        "oost-1223",
        "--name",
        "Anna",
        "--database",
        &store.url,
    ]);
    assert!(created.status.success(), "{created:?}");
    let token = stdout(&created);
    assert_eq!(token.lines().count(), 1, "only the token: {token:?}");
    let token = token.trim();
    assert!(token.starts_with("wb_"));

    let list = stdout(&wijkbudget(&["token", "list", "--database", &store.url]));
    assert!(list.contains("Anna") && list.contains("oost-1223"), "{list}");
    assert!(!list.contains(token), "the list never shows a token");

    let refused = wijkbudget(&["token", "create", "--role", "wijkregisseur", "--database", &store.url]);
    assert!(!refused.status.success(), "a wijkregisseur token needs a wijk");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--wijk"));

    assert!(wijkbudget(&["token", "revoke", "Anna", "--database", &store.url]).status.success());
    assert!(
        wijkbudget::auth::authenticate(&store.db, token).await.unwrap().is_none(),
        "a revoked token no longer works"
    );
    store.cleanup().await;
}

#[tokio::test]
async fn verify_passes_a_true_log_and_fails_naming_the_position_after_tampering() {
    let store = demo_store().await;
    let ok = wijkbudget(&["verify", "--database", &store.url]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout(&ok).starts_with("ok: "), "{}", stdout(&ok));

    let export = store.url.replace("sqlite://", "").replace("wijkbudget.db", "export.jsonl");
    assert!(wijkbudget(&["export", "--to", &export, "--database", &store.url]).status.success());
    assert!(wijkbudget(&["verify", "--file", &export]).status.success());

    let wijkbudget::store::Db::Sqlite(pool) = &store.db else { unreachable!() };
    sqlx::query("DROP TRIGGER events_no_update").execute(pool).await.unwrap();
    sqlx::query("UPDATE events SET payload = replace(payload, '450000.00', '450001.00') WHERE position = 10")
        .execute(pool)
        .await
        .unwrap();
    let bad = wijkbudget(&["verify", "--database", &store.url]);
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("position 10"), "{message}");
    store.cleanup().await;
}

#[tokio::test]
async fn rebuild_recomputes_the_read_models_and_says_how_many_events_it_read() {
    let store = demo_store().await;
    let before = stdout(&wijkbudget(&["report", "--year", "2022", "--database", &store.url]));
    let rebuilt = wijkbudget(&["rebuild", "--database", &store.url]);
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    assert!(stdout(&rebuilt).contains("read models rebuilt from"), "{}", stdout(&rebuilt));
    assert_eq!(stdout(&wijkbudget(&["report", "--year", "2022", "--database", &store.url])), before);
    store.cleanup().await;
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let store = TestStore::new(Backend::Sqlite).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let child = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &store.url])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server listens");
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stderr).contains("stopped cleanly"));
    store.cleanup().await;
}

/// The README's least-privilege setup: the owner migrates, the service role
/// gets only INSERT and SELECT on the log, and the service still works.
#[tokio::test]
async fn the_service_runs_with_only_insert_and_select_on_the_log() {
    let store = TestStore::new(Backend::Postgres).await;
    let role = format!("wb_service_{}", uuid::Uuid::new_v4().simple());
    let grants = include_str!("../README.md")
        .lines()
        .skip_while(|l| !l.starts_with("CREATE ROLE wijkbudget_service"))
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("wijkbudget_service", &role);
    assert!(grants.contains("GRANT SELECT, INSERT ON events"), "the README's grants: {grants}");
    let wijkbudget::store::Db::Postgres(pool) = &store.db else { unreachable!() };
    for statement in grants.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::query(statement).execute(pool).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let token =
        wijkbudget::auth::create_token(&store.db, wijkbudget::auth::Role::Finance, &[], "finance").await.unwrap();
    let service_url = store.url.replacen("postgres@", &format!("{role}@"), 1);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
        .args(["serve", "--no-migrate", "--listen", &format!("127.0.0.1:{port}"), "--database", &service_url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = r#"{"wijk_id":"oost-1223","name":"Oost 1223"}"#;
    let request = format!(
        "POST /api/v1/wijken HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    for _ in 0..100 {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(request.as_bytes()).await.unwrap();
            stream.read_to_string(&mut answer).await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // The service role cannot change the log, even without the triggers' help.
    let as_service = sqlx::PgPool::connect(&service_url).await.unwrap();
    let refused = sqlx::query("UPDATE events SET hash = hash").execute(&as_service).await.unwrap_err();
    assert!(refused.to_string().contains("permission denied"), "{refused}");
    as_service.close().await;
    sqlx::query(&format!("DROP OWNED BY {role}")).execute(pool).await.unwrap();
    store.cleanup().await;
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", common::postgres_admin_url())).await.unwrap();
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}")).execute(&admin).await.unwrap();
}

#[test]
fn a_read_on_a_ledger_file_that_does_not_exist_says_so_names_the_demo_file_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["report", "--year", "2022"],
        vec!["report", "--kind", "stale"],
        vec!["verify"],
        vec!["export", "--to", "log.jsonl"],
        vec!["rebuild"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wijkbudget"))
            .args(&args)
            .current_dir(dir.path())
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded on a missing ledger: {}", stdout(&output));
        assert!(stderr.contains("no ledger at wijkbudget.db"), "{args:?}: {stderr}");
        assert!(stderr.contains("--database sqlite://wijkbudget-demo.db"), "{args:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} left {left:?} behind");
    }
}
