//! The ledger benchmark suite (issue 6): write throughput, history growth,
//! rebuild, query latency, server memory and verify, each printed next to
//! the baseline it is chasing, measured in the same run on the same machine.
//!
//! Run with `cargo bench --bench ledger`. It prints a table and writes JSON
//! to `target/bench-results.json`. Without `--bench` (as under
//! `cargo test --benches`) it runs as a quick smoke test with tiny sizes.
//!
//! Everything runs against the real thing: the release binary of
//! `wijkbudget` as a child process (`serve`, `rebuild`, `verify`), so its
//! resident memory is its own, driven over HTTP/1.1 keep-alive connections
//! by a minimal client in this file. PostgreSQL databases are created as
//! `wb_bench_*` on `WIJKBUDGET_BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432`, trust auth) and dropped at the end.
//!
//! Knobs (environment variables; defaults fit about ten minutes on a 2-core machine):
//! - `WIJKBUDGET_BENCH_EVENTS`: events in the big store of scenarios 2, 3, 4 and 6
//!   (default 1 000 000).
//! - `WIJKBUDGET_BENCH_HISTORY`: fund history sizes for scenario 2 (default `100,10000,100000`);
//!   these funds are part of the big store.
//! - `WIJKBUDGET_BENCH_RUNS`: repetitions of every measurement (default 3, at least 3 for a spread).
//! - `WIJKBUDGET_BENCH_RUN_SECS`: measured seconds of one write run (default 1.5, after 0.5 s of warm-up).
//! - `WIJKBUDGET_BENCH_HISTORY_COMMANDS`, `WIJKBUDGET_BENCH_HISTORY_SECS`: commands per
//!   history run, at most (default 20) and time per run (default 5 s, at least 5 commands).
//! - `WIJKBUDGET_BENCH_CLIENTS`: concurrency levels of scenario 1 (default `1,8,32,128,512`).
//! - `WIJKBUDGET_BENCH_REBUILD_RUNS`: rebuilds of the big store (default: `WIJKBUDGET_BENCH_RUNS`).
//! - `WIJKBUDGET_BENCH_IMPORT_ROWS`: rows of scenario 7's import file (default 100 000).
//! - `WIJKBUDGET_BENCH_ONLY`: a comma list of `writes`, `big`, `import` to run a part.
//! - `WIJKBUDGET_BENCH_SYSTEMS`: scenario 1's systems, a comma list of `raw`, `cqrs`, `http`, `sqlite` (default all).
//! - `WIJKBUDGET_BENCH_KEEP=1`: keep the databases for inspection.
//! - `WIJKBUDGET_BENCH_TLS=1`: connect to PostgreSQL over TLS (default: `sslmode=disable`, for every system alike).
//! - `WIJKBUDGET_BENCH_BIN`: the `wijkbudget` binary to measure (default: the one cargo built for this bench).
//!
//! One module per scenario: `writes` (1), `queries` (4, and 2 on the same
//! server), `rebuild` (3), `verify` (6), `import` (7); memory (5) is gathered by all of
//! them and printed here. `baselines` holds the systems 1 measures against, `harness` and
//! `http_client` are what they share, `big_store` the million-event store of 2, 3, 4 and 6.
//!
//! Figures only: nothing here asserts a time, and no test depends on it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{NaiveDate, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateError, DomainEvent};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use wijkbudget::auth::{create_token, Role};
use wijkbudget::domain::fund::{Decision, ExpenseDetails, Fund, FundEvent, FundKind, FundTerms};
use wijkbudget::domain::ids::{ExpenseId, FundId, Text, WijkId, Year};
use wijkbudget::domain::money::Amount;
use wijkbudget::domain::wijk::WijkEvent;
use wijkbudget::store::chain::{canonical_fields, chain_hash, ChainedEvent, GENESIS};
use wijkbudget::store::Db;

/// The release binary, built by cargo for this bench (same profile as
/// `cargo build --release`), or `WIJKBUDGET_BENCH_BIN` to measure another
/// build of it (an earlier commit's, say) with the same bench.
fn bin() -> String {
    std::env::var("WIJKBUDGET_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wijkbudget").to_string())
}

/// Scenario 1's ledger: expenses spread over this many funds and wijken.
const FUNDS: usize = 32;
const WIJKEN: usize = 9;
/// Expenses in the amendment fund of the big store.
const AMENDMENT_EXPENSES: u64 = 60;
const AMENDMENT: &str = "A21-182";
/// The big store's default size: the million events.
const DEFAULT_EVENTS: u64 = 1_000_000;

mod baselines;
mod big_store;
mod harness;
mod http_client;
mod import;
mod queries;
mod rebuild;
mod verify;
mod writes;

use big_store::*;
use harness::*;
use http_client::*;
use writes::*;

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

impl Bench {
    fn machine(&self) -> Value {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_default();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        json!({
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu_model": cpu,
            "memory": mem,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        })
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        let machine = self.machine();
        let pg = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let version: String = sqlx::query_scalar("SELECT version()").fetch_one(&pg).await?;
        pg.close().await;
        let started = Instant::now();
        self.say(format!(
            "wijkbudget benchmarks, {} UTC; {} CPUs ({}), {}; {}; load average at start {}",
            Utc::now().format("%Y-%m-%d %H:%M"),
            machine["cpus"],
            machine["cpu_model"].as_str().unwrap_or(""),
            machine["memory"].as_str().unwrap_or(""),
            version.split(" on ").next().unwrap_or(&version),
            loadavg()
        ));
        if self.cfg.smoke {
            self.say(
                "(smoke run with tiny sizes: pass --bench, as `cargo bench --bench ledger` does, for real figures)",
            );
        }
        self.say("The bench's own load generator shares the 2 CPUs with the server and PostgreSQL; other processes on the machine may too (load average is logged per step).");
        self.report.insert("machine".into(), machine);
        self.report.insert("postgres_version".into(), json!(version));
        self.report.insert("date_utc".into(), json!(Utc::now().to_rfc3339()));
        self.report.insert("config".into(), serde_json::to_value(&self.cfg)?);
        self.report.insert("load_average_start".into(), json!(loadavg()));

        if self.cfg.wants("writes") {
            self.scenario_writes().await?;
        }
        if self.cfg.wants("big") {
            let big = self.fill_big_store().await?;
            self.scenario_verify(&big).await?;
            self.scenario_rebuild(&big).await?;
            self.scenario_big_server(&big).await?;
        }
        if self.cfg.wants("import") {
            self.scenario_import().await?;
        }

        // 5. Memory.
        self.say("");
        self.say("5. MEMORY: peak resident set (VmHWM from /proc/PID/status, reset with clear_refs before each phase) of the wijkbudget child process");
        let memory = std::mem::take(&mut self.memory);
        for (what, kb, note) in &memory {
            self.say(format!("   {:<62} {:>8.0} MB  {}", what, mb(*kb), note));
        }
        let find = |needle: &str| memory.iter().find(|m| m.0.contains(needle)).map(|m| m.1);
        let hist: Vec<u64> =
            memory.iter().filter(|m| m.0.contains("first commands on a fund of")).map(|m| m.1).collect();
        // Flat in the size of the log: the same work on the small and the big store.
        let big_rebuild = memory
            .iter()
            .find(|m| m.0.starts_with("`wijkbudget rebuild` over") && !m.0.contains("scenario 1"))
            .map(|m| m.1);
        if let (Some(small), Some(large)) = (find("(scenario 1's store)"), big_rebuild) {
            let grow = large as f64 / small as f64;
            self.target(
                "memory flat in log size: rebuild peak RSS, big store / scenario-1 store",
                "flat (<= 1.5x)",
                format!("{:.2}x ({:.0} / {:.0} MB)", grow, mb(large), mb(small)),
                Some(grow <= 1.5),
            );
        }
        if let (Some(fresh), Some(big)) = (find("scenario 1 on PostgreSQL"), find("light queries + write load")) {
            let grow = big as f64 / fresh as f64;
            self.target(
                "server memory flat in log size: peak RSS under write load, big / scenario-1 store",
                "flat (<= 1.5x)",
                format!("{:.2}x ({:.0} / {:.0} MB)", grow, mb(big), mb(fresh)),
                Some(grow <= 1.5),
            );
        }
        if let (Some(a), Some(b)) = (hist.first(), hist.last()) {
            let grow = *b as f64 / *a as f64;
            self.target(
                "server memory flat in fund history: peak RSS, commands on largest / smallest fund",
                "flat (<= 1.5x)",
                format!("{:.2}x ({:.0} / {:.0} MB)", grow, mb(*b), mb(*a)),
                Some(grow <= 1.5),
            );
        }
        self.report.insert(
            "5_memory".into(),
            Value::Array(
                memory.iter().map(|(w, kb, n)| json!({"what": w, "peak_rss_mb": mb(*kb), "note": n})).collect(),
            ),
        );

        // Targets.
        self.say("");
        self.say("TARGETS (issue 6)");
        self.say(format!("   {:<86} {:>16} {:>26} {:>5}", "target", "wanted", "measured", "met"));
        for [what, wanted, measured, met] in self.targets.clone() {
            self.say(format!("   {:<86} {:>16} {:>26} {:>5}", what, wanted, measured, met));
        }
        self.report.insert(
            "targets".into(),
            Value::Array(
                self.targets
                    .iter()
                    .map(|[w, want, m, met]| json!({"target": w, "wanted": want, "measured": m, "met": met}))
                    .collect(),
            ),
        );
        self.say(format!("total time {:.0} s; load average at end {}", started.elapsed().as_secs_f64(), loadavg()));
        self.report.insert("total_secs".into(), json!(started.elapsed().as_secs_f64()));
        self.report.insert("load_average_end".into(), json!(loadavg()));
        self.report.insert("table".into(), json!(self.out));
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::from_env()?;
    let mut bench = Bench {
        cfg,
        dbs: Vec::new(),
        dir: tempfile::tempdir()?,
        report: serde_json::Map::new(),
        out: String::new(),
        targets: Vec::new(),
        memory: Vec::new(),
    };
    let outcome = bench.run_all().await;
    let dropped = bench.drop_dbs().await;
    if let Err(err) = &outcome {
        bench.report.insert("error".into(), json!(format!("{err:#}")));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join(if bench.cfg.smoke {
        "bench-results-smoke.json"
    } else {
        "bench-results.json"
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&Value::Object(bench.report.clone()))?)?;
    println!("\nJSON written to {}", path.display());
    if bench.cfg.keep {
        println!("kept the databases {:?} and the directory {}", bench.dbs, bench.dir.keep().display());
    }
    outcome?;
    dropped
}
