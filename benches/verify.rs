//! How fast `verify` walks a large log: fills a SQLite store in a temp dir
//! with `WIJKBUDGET_BENCH_EVENTS` events (default 1 000 000) and prints
//! events per second for `verify_database`, `export` and `verify_file`.
//!
//! The rows are inserted directly with correct hashes, in large
//! transactions, because the command path would spend the whole run on
//! filling. Figures only: nothing here asserts a time.
//!
//! Run with `cargo bench --bench verify`. Without `--bench` (as under
//! `cargo test --benches`) it runs as a smoke test over a small log.

use std::time::Instant;

use chrono::{NaiveDate, SubsecRound, Utc};
use serde_json::{json, Value};
use sqlx::{QueryBuilder, Sqlite};
use wijkbudget::domain::fund::{Decision, ExpenseDetails, FundEvent, FundKind, FundTerms};
use wijkbudget::domain::ids::{ExpenseId, FundId, Text, WijkId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::WijkEvent;
use wijkbudget::store::chain::{chain_hash, ChainedEvent, GENESIS};
use wijkbudget::store::Db;
use wijkbudget::verify::{export, verify_database, verify_file};

const DEFAULT_EVENTS: u64 = 1_000_000;
const SMOKE_EVENTS: u64 = 2_000;
const WIJKEN: u64 = 40;
const FUNDS: u64 = 20;
/// Rows per transaction while filling.
const TRANSACTION_ROWS: u64 = 20_000;
/// Rows per INSERT statement: 11 columns each, well under SQLite's 32 766 parameters.
const STATEMENT_ROWS: usize = 500;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let benching = std::env::args().any(|a| a == "--bench");
    let events = match std::env::var("WIJKBUDGET_BENCH_EVENTS") {
        Ok(n) => n.replace('_', "").parse().map_err(|_| {
            anyhow::anyhow!("WIJKBUDGET_BENCH_EVENTS=`{n}` is not a number of events; write it like 1000000")
        })?,
        Err(_) if benching => DEFAULT_EVENTS,
        Err(_) => SMOKE_EVENTS,
    };
    let minimum = WIJKEN + 2 * FUNDS;
    anyhow::ensure!(events >= minimum, "WIJKBUDGET_BENCH_EVENTS must be at least {minimum} to set up the ledger");

    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?;
    db.migrate().await?;

    let started = Instant::now();
    fill(&db, events).await?;
    report("fill (direct inserts)", events, started);

    let started = Instant::now();
    let outcome = verify_database(&db, None, false).await?;
    let verified = outcome.map_err(|failure| anyhow::anyhow!("the generated log does not verify: {failure}"))?;
    report("verify_database", verified.events, started);

    let path = dir.path().join("bench.jsonl");
    let started = Instant::now();
    let head = export(&db, &path, false).await?;
    report("export", head.position as u64, started);
    let size = std::fs::metadata(&path)?.len();
    println!("{:>24}  {:.1} MB, {:.0} bytes per event", "export size", size as f64 / 1e6, size as f64 / events as f64);

    let started = Instant::now();
    let offline = verify_file(&path, Some(&head), false)?
        .map_err(|failure| anyhow::anyhow!("the export does not verify: {failure}"))?;
    report("verify_file", offline.events, started);

    db.close().await;
    Ok(())
}

fn report(what: &str, events: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!("{what:>24}  {events} events in {seconds:.2} s = {:.0} events/s", events as f64 / seconds);
}

/// Inserts `count` events of a realistic shape: wijken registered, funds
/// established and allocated, then expenses spread over funds and wijken.
async fn fill(db: &Db, count: u64) -> anyhow::Result<()> {
    let Db::Sqlite(pool) = db else { anyhow::bail!("the bench fills a SQLite store") };
    let mut previous = GENESIS;
    let mut sequences = vec![0i64; (WIJKEN + FUNDS) as usize];
    let mut position = 0u64;
    while position < count {
        let mut tx = pool.begin().await?;
        let end = (position + TRANSACTION_ROWS).min(count);
        let mut batch = Vec::with_capacity(STATEMENT_ROWS);
        while position < end {
            position += 1;
            let mut event = generate(position, &mut sequences);
            previous = chain_hash(&previous, &event);
            event.hash = hex::encode(previous);
            batch.push(event);
            if batch.len() == STATEMENT_ROWS || position == end {
                insert(&mut tx, &batch).await?;
                batch.clear();
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn insert(tx: &mut sqlx::Transaction<'static, Sqlite>, events: &[ChainedEvent]) -> sqlx::Result<()> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, payload, metadata, hash) ",
    );
    query.push_values(events, |mut row, e| {
        row.push_bind(e.position)
            .push_bind(e.event_id.clone())
            .push_bind(e.recorded_at)
            .push_bind(e.aggregate_type.clone())
            .push_bind(e.aggregate_id.clone())
            .push_bind(e.sequence)
            .push_bind(e.event_type.clone())
            .push_bind(e.event_version.clone())
            .push_bind(sqlx::types::Json(e.payload.clone()))
            .push_bind(sqlx::types::Json(e.metadata.clone()))
            .push_bind(e.hash.clone());
    });
    query.build().execute(&mut **tx).await.map(drop)
}

fn generate(position: u64, sequences: &mut [i64]) -> ChainedEvent {
    let text = |s: &str| Text::parse(s).expect("bench texts are valid");
    let wijk_id = |i: u64| WijkId::parse(&format!("wijk-{i}")).expect("valid id");
    let fund_id = |i: u64| FundId::parse(&format!("fund-{i}")).expect("valid id");
    let date = NaiveDate::from_ymd_opt(2022, 3, 1).expect("a real date");

    let (stream, aggregate_type, aggregate_id, event_type, event_version, payload) = if position <= WIJKEN {
        let i = position - 1;
        let event = WijkEvent::WijkRegistered { wijk_id: wijk_id(i), name: text(&format!("Wijk {i}")) };
        (i, "wijk", format!("wijk-{i}"), "WijkRegistered", "1.0.0", to_value(&event))
    } else if position <= WIJKEN + FUNDS {
        let i = position - WIJKEN - 1;
        let terms = FundTerms {
            fund_id: fund_id(i),
            year: Year::new(2022).expect("valid year"),
            kind: FundKind::Begroting,
            name: text(&format!("Wijkbudget 2022 deel {i}")),
            amount: Amount::parse("1000000000").expect("valid amount"),
            decision: Decision { reference: text("Begroting 2022"), adopted_on: date },
            purpose: text("Initiatieven van bewoners"),
        };
        let event = FundEvent::FundEstablished { booked_on: terms.booking_date(), terms };
        (WIJKEN + i, "fund", format!("fund-{i}"), "FundEstablished", "2.0.0", to_value(&event))
    } else if position <= WIJKEN + 2 * FUNDS {
        let i = position - WIJKEN - FUNDS - 1;
        let event = FundEvent::BudgetAllocated {
            wijk_id: wijk_id(i % WIJKEN),
            amount: Amount::parse("500000").expect("valid amount"),
            reason: text("Raadsbesluit"),
            booked_on: date,
        };
        (WIJKEN + i, "fund", format!("fund-{i}"), "BudgetAllocated", "1.0.0", to_value(&event))
    } else {
        let i = position % FUNDS;
        let event = FundEvent::ExpenseRecorded(ExpenseDetails {
            expense_id: ExpenseId::parse(&format!("exp-{position}")).expect("valid id"),
            wijk_id: wijk_id(i % WIJKEN),
            amount: Amount::parse(&format!("{}.{:02}", 10 + position % 900, position % 100)).expect("valid amount"),
            initiative: text("Herinrichting Wegaplein"),
            theme: text("groen"),
            booked_on: date,
            reference: text(&format!("factuur {position}")),
        });
        (WIJKEN + i, "fund", format!("fund-{i}"), "ExpenseRecorded", "1.0.0", to_value(&event))
    };
    let sequence = &mut sequences[stream as usize];
    *sequence += 1;
    ChainedEvent {
        position: position as i64,
        event_id: uuid::Uuid::now_v7().to_string(),
        recorded_at: Utc::now().trunc_subsecs(6),
        aggregate_type: aggregate_type.into(),
        aggregate_id,
        sequence: *sequence,
        event_type: event_type.into(),
        event_version: event_version.into(),
        payload,
        metadata: json!({"actor": "bench", "role": "finance", "correlation_id": format!("bench-{position}")}),
        hash: String::new(),
    }
}

fn to_value<T: serde::Serialize>(event: &T) -> Value {
    serde_json::to_value(event).expect("domain events serialise")
}
