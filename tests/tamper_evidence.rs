//! Issue 4, tamper-evident history: the database refuses changes to the log,
//! and when a superuser changes it anyway, verification names the first bad
//! position. Every scenario runs on SQLite and on PostgreSQL.
//!
//! Events are written through the real append path (`LedgerRepository`
//! driven by cqrs-es), so the chains under test are the ones the service
//! writes; tampering is plain SQL, as an intruder would do it.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use serde_json::Value;
use wijkbudget::domain;
use wijkbudget::domain::fund::{
    Decision, ExpenseDetails, Fund, FundCommand, FundKind, FundServices, FundTerms, NoYearClosed, WijkDirectory,
};
use wijkbudget::domain::ids::{ExpenseId, FundId, Text, WijkId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::{Wijk, WijkCommand};
use wijkbudget::store::chain::{chain_hash, parse_hash, GENESIS};
use wijkbudget::store::repository::{head, read_log, LedgerRepository};
use wijkbudget::store::Db;
use wijkbudget::verify::{export, verify_database, verify_file, Head, VerifyFailure, VerifyReport};

use common::{Backend, TestStore};

/// Runs each scenario once per store, as `<scenario>::on_sqlite` and `<scenario>::on_postgres`.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$scenario(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$scenario(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both_stores!(
    updates_deletes_and_truncates_of_the_log_are_refused_as_append_only,
    a_changed_byte_in_a_payload_is_found_at_its_position,
    a_deleted_event_is_found_at_its_missing_position,
    swapped_payloads_are_found_at_the_first_of_the_two_positions,
    concurrent_writers_produce_one_unbroken_chain,
    an_export_verifies_offline_and_fails_after_one_changed_byte,
    a_true_earlier_head_is_accepted_and_a_rewritten_history_is_rejected,
    a_forged_overspend_with_a_consistent_chain_is_found_by_the_balances,
);

// ---------------------------------------------------------------------------
// Writing real events

/// The tests are about the log, not the wijk register: every wijk exists.
struct EveryWijkExists;

#[async_trait]
impl WijkDirectory for EveryWijkExists {
    async fn is_registered(&self, _wijk_id: &WijkId) -> Result<bool, String> {
        Ok(true)
    }
}

/// Commands through cqrs-es and the ledger's own repository, without the
/// command layer.
struct Writer {
    funds: PersistedEventStore<LedgerRepository, Fund>,
    wijken: PersistedEventStore<LedgerRepository, Wijk>,
    services: FundServices,
}

impl Writer {
    fn new(db: &Db) -> Arc<Self> {
        let repo = LedgerRepository::new(db.clone());
        Arc::new(Self {
            funds: PersistedEventStore::new_event_store(repo.clone()).with_upcasters(domain::upcasters()),
            wijken: PersistedEventStore::new_event_store(repo.clone()).with_upcasters(domain::upcasters()),
            services: FundServices {
                wijken: Arc::new(EveryWijkExists),
                years: Arc::new(NoYearClosed),
                expenses: Arc::new(repo.clone()),
            },
        })
    }

    async fn fund(&self, fund_id: &str, command: FundCommand) -> Result<(), AggregateError<domain::fund::FundError>> {
        execute(&self.funds, fund_id, command, &self.services).await
    }

    /// Retries while another writer got to the same fund first, as the
    /// command layer will.
    async fn fund_retrying(&self, fund_id: &str, command: FundCommand) {
        for _ in 0..1000 {
            match self.fund(fund_id, command.clone()).await {
                Ok(()) => return,
                Err(AggregateError::AggregateConflict) => tokio::task::yield_now().await,
                Err(err) => panic!("command on fund {fund_id} failed: {err}"),
            }
        }
        panic!("fund {fund_id} stayed in conflict for 1000 attempts");
    }

    async fn register_wijk(&self, wijk_id: &str) {
        let command = WijkCommand::Register { wijk_id: wijk(wijk_id), name: text(&format!("Wijk {wijk_id}")) };
        execute(&self.wijken, wijk_id, command, &()).await.expect("wijk registers");
    }

    async fn establish(&self, fund_id: &str, amount: &str) {
        let terms = FundTerms {
            fund_id: FundId::parse(fund_id).unwrap(),
            year: Year::new(2022).unwrap(),
            kind: FundKind::Amendement,
            name: text(&format!("Fonds {fund_id}")),
            amount: eur(amount),
            decision: Decision { reference: text(fund_id), adopted_on: date("2021-11-11") },
            purpose: text("Versterken van sociale cohesie in de wijken"),
        };
        self.fund(fund_id, FundCommand::Establish(terms)).await.expect("fund is established");
    }

    async fn allocate(&self, fund_id: &str, wijk_id: &str, amount: &str) {
        let command = FundCommand::Allocate {
            wijk_id: wijk(wijk_id),
            amount: eur(amount),
            reason: text("Raadsbesluit"),
            booked_on: date("2022-01-10"),
        };
        self.fund(fund_id, command).await.expect("budget is allocated");
    }

    async fn spend(&self, fund_id: &str, wijk_id: &str, expense_id: &str, amount: &str) {
        self.fund_retrying(fund_id, expense(wijk_id, expense_id, amount)).await;
    }
}

async fn execute<A: Aggregate>(
    store: &PersistedEventStore<LedgerRepository, A>,
    aggregate_id: &str,
    command: A::Command,
    services: &A::Services,
) -> Result<(), AggregateError<A::Error>> {
    let mut context = store.load_aggregate(aggregate_id).await?;
    let sink = EventSink::default();
    context.aggregate.handle(command, services, &sink).await.map_err(AggregateError::UserError)?;
    store.commit(sink.collect().await, context, HashMap::new()).await?;
    Ok(())
}

fn expense(wijk_id: &str, expense_id: &str, amount: &str) -> FundCommand {
    FundCommand::RecordExpense(ExpenseDetails {
        expense_id: ExpenseId::parse(expense_id).unwrap(),
        wijk_id: wijk(wijk_id),
        amount: eur(amount),
        initiative: text(&format!("Herinrichting Wegaplein ({expense_id})")),
        theme: text("groen"),
        booked_on: date("2022-03-01"),
        reference: text(&format!("factuur {expense_id}")),
    })
}

fn eur(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}
fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}
fn wijk(s: &str) -> WijkId {
    WijkId::parse(s).unwrap()
}
fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A realistic small ledger: two wijken, two funds, allocations, and
/// `expenses` expenses alternating between the wijken. Returns the number of events.
async fn seed(writer: &Writer, expenses: usize) -> i64 {
    writer.register_wijk("oost-1223").await;
    writer.register_wijk("centrum").await;
    writer.establish("A21-182", "50000").await;
    writer.establish("begroting-2022", "200000").await;
    writer.allocate("A21-182", "oost-1223", "20000").await;
    writer.allocate("A21-182", "centrum", "20000").await;
    writer.allocate("begroting-2022", "oost-1223", "50000").await;
    for i in 0..expenses {
        let wijk_id = if i % 2 == 0 { "oost-1223" } else { "centrum" };
        writer.spend("A21-182", wijk_id, &format!("exp-{i}"), &format!("{}.00", 101 + i)).await;
    }
    7 + expenses as i64
}

// ---------------------------------------------------------------------------
// Looking at and tampering with the store as an intruder would

async fn verified(db: &Db, expect_head: Option<&Head>) -> VerifyReport {
    match verify_database(db, expect_head, false).await.expect("the log can be read") {
        Ok(report) => report,
        Err(failure) => panic!("expected the log to verify, but: {failure}"),
    }
}

async fn failed(db: &Db, expect_head: Option<&Head>) -> VerifyFailure {
    match verify_database(db, expect_head, false).await.expect("the log can be read") {
        Ok(report) => panic!("expected verification to fail, but it passed: {report:?}"),
        Err(failure) => failure,
    }
}

async fn execute_sql(db: &Db, sql: &str) -> Result<(), sqlx::Error> {
    wijkbudget::on_db!(db, pool => sqlx::query(sql).execute(pool).await.map(drop))
}

async fn positions_of(db: &Db, event_type: &str) -> Vec<i64> {
    const SQL: &str = "SELECT position FROM events WHERE event_type = $1 ORDER BY position";
    wijkbudget::on_db!(db, pool => sqlx::query_scalar(SQL).bind(event_type).fetch_all(pool).await).unwrap()
}

async fn count_events(db: &Db) -> i64 {
    wijkbudget::on_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(pool).await).unwrap()
}

/// What a superuser can do: switch off the append-only triggers.
async fn disable_append_only_guard(store: &TestStore) {
    let statements: &[&str] = match store.backend() {
        Backend::Postgres => &["ALTER TABLE events DISABLE TRIGGER USER"],
        Backend::Sqlite => &["DROP TRIGGER events_no_update", "DROP TRIGGER events_no_delete"],
    };
    for sql in statements {
        execute_sql(&store.db, sql).await.expect("a superuser may switch the guard off");
    }
}

/// The payload exactly as stored.
async fn payload_text(db: &Db, position: i64) -> String {
    const SQL: &str = "SELECT CAST(payload AS TEXT) FROM events WHERE position = $1";
    wijkbudget::on_db!(db, pool => sqlx::query_scalar(SQL).bind(position).fetch_one(pool).await).unwrap()
}

async fn set_payload_text(db: &Db, position: i64, payload: &str) {
    let changed = match db {
        Db::Postgres(pool) => sqlx::query("UPDATE events SET payload = $1::json WHERE position = $2")
            .bind(payload)
            .bind(position)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        Db::Sqlite(pool) => sqlx::query("UPDATE events SET payload = $1 WHERE position = $2")
            .bind(payload)
            .bind(position)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
    };
    assert_eq!(changed.expect("the guard is off"), 1);
}

async fn set_hash(db: &Db, position: i64, hash: &str) {
    const SQL: &str = "UPDATE events SET hash = $1 WHERE position = $2";
    let changed = wijkbudget::on_db!(db, pool => sqlx::query(SQL).bind(hash).bind(position).execute(pool).await.map(|done| done.rows_affected()));
    assert_eq!(changed.expect("the guard is off"), 1);
}

/// Changes the first digit of the amount in a payload's text: one byte.
/// (PostgreSQL returns the text as jsonb prints it, with spaces.)
fn raise_amount_by_one_byte(text: &str) -> String {
    let key = text.find(r#""amount":"#).expect("an expense has an amount") + r#""amount":"#.len();
    let at = key + text[key..].find('"').expect("the amount is a string") + 1;
    let mut bytes = text.as_bytes().to_vec();
    assert_ne!(bytes[at], b'9', "the seeded amounts start with 1");
    bytes[at] = b'9';
    String::from_utf8(bytes).unwrap()
}

// ---------------------------------------------------------------------------
// Scenarios

async fn updates_deletes_and_truncates_of_the_log_are_refused_as_append_only(backend: Backend) {
    let store = TestStore::new(backend).await;
    let events = seed(&Writer::new(&store.db), 2).await;

    let mut refused = vec![
        ("UPDATE", execute_sql(&store.db, "UPDATE events SET sequence = sequence WHERE position = 1").await),
        ("DELETE", execute_sql(&store.db, "DELETE FROM events WHERE position = 1").await),
    ];
    if backend == Backend::Postgres {
        refused.push(("TRUNCATE", execute_sql(&store.db, "TRUNCATE events").await));
    }
    for (statement, outcome) in refused {
        let err = outcome.expect_err(&format!("{statement} of events must be refused"));
        assert!(err.to_string().contains("append-only"), "{statement} was refused with `{err}`");
    }

    assert_eq!(count_events(&store.db).await, events);
    assert_eq!(verified(&store.db, None).await.events, events as u64);
    store.cleanup().await;
}

async fn a_changed_byte_in_a_payload_is_found_at_its_position(backend: Backend) {
    let store = TestStore::new(backend).await;
    seed(&Writer::new(&store.db), 6).await;
    let target = positions_of(&store.db, "ExpenseRecorded").await[3];
    disable_append_only_guard(&store).await;

    let original = payload_text(&store.db, target).await;
    set_payload_text(&store.db, target, &raise_amount_by_one_byte(&original)).await;

    let failure = failed(&store.db, None).await;
    assert_eq!(failure.position, target, "{failure}");
    assert_eq!(failure.aggregate, "fund/A21-182");
    assert!(failure.problem.contains("does not match the recomputed"), "{failure}");
    assert!(failure.to_string().contains(&format!("position {target}")));
    store.cleanup().await;
}

async fn a_deleted_event_is_found_at_its_missing_position(backend: Backend) {
    let store = TestStore::new(backend).await;
    seed(&Writer::new(&store.db), 6).await;
    let target = positions_of(&store.db, "ExpenseRecorded").await[2];
    disable_append_only_guard(&store).await;

    execute_sql(&store.db, &format!("DELETE FROM events WHERE position = {target}")).await.unwrap();

    let failure = failed(&store.db, None).await;
    assert_eq!(failure.position, target, "{failure}");
    assert!(failure.problem.contains(&format!("position {target} is missing")), "{failure}");
    store.cleanup().await;
}

async fn swapped_payloads_are_found_at_the_first_of_the_two_positions(backend: Backend) {
    let store = TestStore::new(backend).await;
    seed(&Writer::new(&store.db), 6).await;
    let expenses = positions_of(&store.db, "ExpenseRecorded").await;
    let (first, second) = (expenses[1], expenses[4]);
    disable_append_only_guard(&store).await;

    let (a, b) = (payload_text(&store.db, first).await, payload_text(&store.db, second).await);
    assert_ne!(a, b);
    set_payload_text(&store.db, first, &b).await;
    set_payload_text(&store.db, second, &a).await;

    let failure = failed(&store.db, None).await;
    assert_eq!(failure.position, first, "{failure}");
    assert_eq!(failure.aggregate, "fund/A21-182");
    store.cleanup().await;
}

async fn concurrent_writers_produce_one_unbroken_chain(backend: Backend) {
    const OWN_FUNDS: usize = 8;
    const EXPENSES_PER_FUND: usize = 10;
    const SHARED_WRITERS: usize = 4;
    const EXPENSES_PER_SHARED_WRITER: usize = 5;

    let store = TestStore::new(backend).await;
    let writer = Writer::new(&store.db);
    writer.register_wijk("oost-1223").await;
    let mut funds: Vec<String> = (0..OWN_FUNDS).map(|i| format!("fund-{i}")).collect();
    funds.push("shared".into());
    for fund_id in &funds {
        writer.establish(fund_id, "100000").await;
        writer.allocate(fund_id, "oost-1223", "100000").await;
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (i, fund_id) in funds.iter().take(OWN_FUNDS).cloned().enumerate() {
        let writer = writer.clone();
        tasks.spawn(async move {
            for n in 0..EXPENSES_PER_FUND {
                writer.spend(&fund_id, "oost-1223", &format!("own-{i}-{n}"), "10.00").await;
            }
        });
    }
    // These race for the same stream; losers get AggregateConflict and retry.
    for i in 0..SHARED_WRITERS {
        let writer = writer.clone();
        tasks.spawn(async move {
            for n in 0..EXPENSES_PER_SHARED_WRITER {
                writer.spend("shared", "oost-1223", &format!("shared-{i}-{n}"), "10.00").await;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a writer task finished without panicking");
    }

    let expected = 1 + 2 * funds.len() + OWN_FUNDS * EXPENSES_PER_FUND + SHARED_WRITERS * EXPENSES_PER_SHARED_WRITER;
    let report = verified(&store.db, None).await;
    assert_eq!(report.events, expected as u64);
    assert_eq!(report.head.position, expected as i64, "positions run 1..=n without gaps");
    assert_eq!(count_events(&store.db).await, expected as i64);
    let (position, hash) = head(&store.db).await.unwrap();
    assert_eq!(report.head, Head { position, hash });
    store.cleanup().await;
}

async fn an_export_verifies_offline_and_fails_after_one_changed_byte(backend: Backend) {
    let store = TestStore::new(backend).await;
    seed(&Writer::new(&store.db), 6).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wijkbudget-log.jsonl");

    let exported = export(&store.db, &path, false).await.expect("the log exports");
    let online = verified(&store.db, None).await;
    assert_eq!(exported, online.head);
    let offline = verify_file(&path, Some(&exported), false).expect("the export can be read");
    assert_eq!(offline, Ok(online.clone()));
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, vec![std::ffi::OsString::from("wijkbudget-log.jsonl")], "no partial file is left behind");

    let original = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    assert_eq!(lines.len() as u64, online.events);
    let (index, position) = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let event: Value = serde_json::from_str(line).unwrap();
            (event["event_type"] == "ExpenseRecorded").then(|| (i, event["position"].as_i64().unwrap()))
        })
        .nth(2)
        .unwrap();
    lines[index] = raise_amount_by_one_byte(&lines[index]);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let failure = verify_file(&path, None, false).unwrap().expect_err("a changed export fails");
    assert_eq!(failure.position, position, "{failure}");
    assert_eq!(failure.aggregate, "fund/A21-182");

    // A file cut short in its last line fails at that line's position, rather than erroring.
    let cut = &original[..original.len() - 40];
    std::fs::write(&path, cut).unwrap();
    let failure = verify_file(&path, None, false).unwrap().expect_err("a cut export fails");
    assert_eq!(failure.position, online.head.position, "{failure}");
    assert!(failure.problem.contains("is not a stored event"), "{failure}");
    store.cleanup().await;
}

async fn a_true_earlier_head_is_accepted_and_a_rewritten_history_is_rejected(backend: Backend) {
    let store = TestStore::new(backend).await;
    let writer = Writer::new(&store.db);
    seed(&writer, 4).await;
    let (position, hash) = head(&store.db).await.unwrap();
    let yesterday = Head { position, hash };
    for i in 0..3 {
        writer.spend("begroting-2022", "oost-1223", &format!("later-{i}"), "250.00").await;
    }

    let today = verified(&store.db, Some(&yesterday)).await;
    assert_eq!(today.head.position, yesterday.position + 3);

    let forged = Head { position: yesterday.position, hash: "ab".repeat(32) };
    let failure = failed(&store.db, Some(&forged)).await;
    assert_eq!(failure.position, yesterday.position, "{failure}");

    let beyond = Head { position: today.head.position + 1, hash: today.head.hash.clone() };
    assert_eq!(failed(&store.db, Some(&beyond)).await.position, beyond.position);

    // A thorough intruder changes an old expense and recomputes every later
    // hash. The chain is then consistent in itself; only the head kept from
    // yesterday shows that history was rewritten.
    let target = positions_of(&store.db, "ExpenseRecorded").await[1];
    assert!(target < yesterday.position);
    disable_append_only_guard(&store).await;
    let changed = raise_amount_by_one_byte(&payload_text(&store.db, target).await);
    set_payload_text(&store.db, target, &changed).await;
    let mut previous = GENESIS;
    for event in read_log(&store.db, 0, 10_000).await.unwrap() {
        let hash = chain_hash(&previous, &event);
        if event.position >= target {
            set_hash(&store.db, event.position, &hex::encode(hash)).await;
        } else {
            assert_eq!(Some(hash), parse_hash(&event.hash));
        }
        previous = hash;
    }

    verified(&store.db, None).await;
    let failure = failed(&store.db, Some(&yesterday)).await;
    assert_eq!(failure.position, yesterday.position, "{failure}");
    assert!(failure.problem.contains("rewritten"), "{failure}");
    store.cleanup().await;
}

/// SQLite stores JSON as plain text, so an intruder can leave a row that no
/// longer decodes at all. That is a finding at its position, not an outage.
#[tokio::test]
async fn a_row_that_no_longer_decodes_is_found_at_its_position_on_sqlite() {
    let store = TestStore::new(Backend::Sqlite).await;
    seed(&Writer::new(&store.db), 6).await;
    let target = positions_of(&store.db, "ExpenseRecorded").await[3];
    disable_append_only_guard(&store).await;

    set_payload_text(&store.db, target, "{\"ExpenseRecorded\": ").await;

    let failure = failed(&store.db, None).await;
    assert_eq!(failure.position, target, "{failure}");
    assert_eq!(failure.aggregate, "fund/A21-182");
    assert!(failure.problem.contains("cannot be read"), "{failure}");
    store.cleanup().await;
}

/// An intruder (or a service misled by a forged snapshot) appends an expense
/// the wijk cannot afford, with a correctly computed hash. The chain is
/// consistent; the account balances are not.
async fn a_forged_overspend_with_a_consistent_chain_is_found_by_the_balances(backend: Backend) {
    let store = TestStore::new(backend).await;
    let writer = Writer::new(&store.db);
    seed(&writer, 2).await;
    let log = read_log(&store.db, 0, 10_000).await.unwrap();
    let last = log.last().unwrap().clone();
    let sequence = log.iter().filter(|e| e.aggregate_id == "A21-182").map(|e| e.sequence).max().unwrap() + 1;
    let payload = serde_json::json!({"ExpenseRecorded": {
        "expense_id": "vals", "wijk_id": "oost-1223", "amount": "999999.00", "initiative": "Niets",
        "theme": "spelen", "booked_on": "2022-06-01", "reference": "geen"
    }});
    let mut forged = wijkbudget::store::chain::ChainedEvent {
        position: last.position + 1,
        event_id: uuid::Uuid::new_v4().to_string(),
        recorded_at: last.recorded_at,
        aggregate_type: "fund".into(),
        aggregate_id: "A21-182".into(),
        sequence,
        event_type: "ExpenseRecorded".into(),
        event_version: "1.0.0".into(),
        payload: payload.clone(),
        metadata: serde_json::json!({}),
        hash: String::new(),
    };
    forged.hash = hex::encode(chain_hash(&parse_hash(&last.hash).unwrap(), &forged));
    let sql = "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
               event_type, event_version, payload, metadata, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    wijkbudget::on_db!(&store.db, pool => {
        sqlx::query(sql)
            .bind(forged.position)
            .bind(&forged.event_id)
            .bind(forged.recorded_at)
            .bind(&forged.aggregate_type)
            .bind(&forged.aggregate_id)
            .bind(forged.sequence)
            .bind(&forged.event_type)
            .bind(&forged.event_version)
            .bind(sqlx::types::Json(&forged.payload))
            .bind(sqlx::types::Json(&forged.metadata))
            .bind(&forged.hash)
            .execute(pool)
            .await
            .unwrap();
    });
    let failure = failed(&store.db, None).await;
    assert_eq!(failure.position, forged.position, "{failure}");
    assert!(failure.problem.contains("wijk_budget:oost-1223:A21-182"), "{failure}");
    store.cleanup().await;
}
