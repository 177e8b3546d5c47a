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
//! - `WIJKBUDGET_BENCH_CLIENTS`: concurrency levels of scenario 1 (default `1,8,32`).
//! - `WIJKBUDGET_BENCH_REBUILD_RUNS`: rebuilds of the big store (default: `WIJKBUDGET_BENCH_RUNS`).
//! - `WIJKBUDGET_BENCH_ONLY`: a comma list of `writes`, `big` to run a part.
//! - `WIJKBUDGET_BENCH_SYSTEMS`: scenario 1's systems, a comma list of `raw`, `cqrs`, `http`, `sqlite` (default all).
//! - `WIJKBUDGET_BENCH_KEEP=1`: keep the databases for inspection.
//! - `WIJKBUDGET_BENCH_TLS=1`: connect to PostgreSQL over TLS (default: `sslmode=disable`, for every system alike).
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

/// The release binary, built by cargo for this bench (same profile as `cargo build --release`).
const BIN: &str = env!("CARGO_BIN_EXE_wijkbudget");

/// Scenario 1's ledger: expenses spread over this many funds and wijken.
const FUNDS: usize = 32;
const WIJKEN: usize = 9;
/// Expenses in the amendment fund of the big store.
const AMENDMENT_EXPENSES: u64 = 60;
const AMENDMENT: &str = "A21-182";
/// The big store's default size: the issue's million events.
const DEFAULT_EVENTS: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Config {
    smoke: bool,
    postgres: String,
    events: u64,
    history: Vec<u64>,
    runs: usize,
    rebuild_runs: usize,
    run_secs: f64,
    warmup_secs: f64,
    clients: Vec<usize>,
    history_commands: usize,
    history_secs: f64,
    query_samples: usize,
    query_secs: f64,
    only: Option<Vec<String>>,
    systems: Vec<String>,
    keep: bool,
    /// Connect to PostgreSQL over TLS (`WIJKBUDGET_BENCH_TLS=1`); off by default.
    tls: bool,
}

fn env_list(name: &str, default: &str) -> anyhow::Result<Vec<u64>> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .map(|s| s.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{name}=`{text}` is not a comma list of whole numbers"))
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text.replace('_', "").parse().map_err(|_| anyhow::anyhow!("{name}=`{text}` is not a number")),
        Err(_) => Ok(default),
    }
}

impl Config {
    /// Every system connects the same way: without TLS over loopback (as a
    /// service on the database's host, or over its Unix socket, would),
    /// unless `WIJKBUDGET_BENCH_TLS=1`; sqlx's default would negotiate TLS
    /// whenever the server offers it.
    fn url_options(&self) -> &'static str {
        if self.tls {
            ""
        } else {
            "?sslmode=disable"
        }
    }

    fn from_env() -> anyhow::Result<Self> {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let runs = env_num("WIJKBUDGET_BENCH_RUNS", if smoke { 1 } else { 3 })?;
        let cfg = Self {
            smoke,
            postgres: std::env::var("WIJKBUDGET_BENCH_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
                .trim_end_matches('/')
                .to_string(),
            events: env_num("WIJKBUDGET_BENCH_EVENTS", if smoke { 3_000 } else { DEFAULT_EVENTS })?,
            history: env_list("WIJKBUDGET_BENCH_HISTORY", if smoke { "100,1000" } else { "100,10000,100000" })?,
            runs,
            rebuild_runs: env_num("WIJKBUDGET_BENCH_REBUILD_RUNS", runs)?,
            run_secs: env_num("WIJKBUDGET_BENCH_RUN_SECS", if smoke { 0.3 } else { 1.5 })?,
            warmup_secs: if smoke { 0.1 } else { 0.5 },
            clients: env_list("WIJKBUDGET_BENCH_CLIENTS", "1,8,32")?.into_iter().map(|c| c as usize).collect(),
            history_commands: env_num("WIJKBUDGET_BENCH_HISTORY_COMMANDS", if smoke { 3 } else { 20 })?,
            history_secs: env_num("WIJKBUDGET_BENCH_HISTORY_SECS", if smoke { 0.5 } else { 5.0 })?,
            query_samples: if smoke { 10 } else { 200 },
            query_secs: if smoke { 0.2 } else { 1.0 },
            only: std::env::var("WIJKBUDGET_BENCH_ONLY")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
            systems: std::env::var("WIJKBUDGET_BENCH_SYSTEMS")
                .unwrap_or_else(|_| "raw,cqrs,http,sqlite".into())
                .split(',')
                .map(|p| p.trim().to_string())
                .collect(),
            keep: std::env::var("WIJKBUDGET_BENCH_KEEP").is_ok_and(|v| v == "1"),
            tls: std::env::var("WIJKBUDGET_BENCH_TLS").is_ok_and(|v| v == "1"),
        };
        anyhow::ensure!(cfg.runs >= 1 && cfg.rebuild_runs >= 1, "WIJKBUDGET_BENCH_RUNS must be at least 1");
        anyhow::ensure!(
            cfg.history.iter().all(|h| *h >= 3),
            "every WIJKBUDGET_BENCH_HISTORY size must be at least 3 events"
        );
        anyhow::ensure!(
            !cfg.clients.is_empty() && cfg.clients.iter().all(|c| *c >= 1),
            "WIJKBUDGET_BENCH_CLIENTS needs at least one level of 1 or more"
        );
        Ok(cfg)
    }

    fn wants(&self, part: &str) -> bool {
        self.only.as_ref().map_or(true, |only| only.iter().any(|p| p == part))
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Median and range over runs.
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

fn spread(values: &[f64]) -> Spread {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN, runs: 0 };
    }
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Spread { median, min: v[0], max: v[n - 1], runs: n }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x.abs() >= 10_000.0 {
        format!("{:.0}", x)
    } else {
        format!("{:.*}", decimals, x)
    }
}

fn show(s: Spread, decimals: usize) -> String {
    if s.runs <= 1 {
        return num(s.median, decimals);
    }
    format!("{} [{}-{}]", num(s.median, decimals), num(s.min, decimals), num(s.max, decimals))
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client over one keep-alive connection
// ---------------------------------------------------------------------------

struct Http {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// A web-app session to send with every request, for timing pages.
    cookie: Option<String>,
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None, buf: Vec::with_capacity(64 * 1024), cookie: None }
    }

    /// Sends one request and reads the whole answer. A keep-alive connection
    /// that turns out to be closed is reopened once (requests here carry an
    /// Idempotency-Key where a repeat would matter).
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut req = Vec::with_capacity(256 + body.len());
        write!(req, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr)?;
        for (name, value) in headers {
            write!(req, "{name}: {value}\r\n")?;
        }
        if !body.is_empty() || method != "GET" {
            write!(req, "Content-Length: {}\r\n", body.len())?;
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            if self.stream.is_none() {
                let stream =
                    TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_nodelay(true)?;
                self.stream = Some(stream);
                self.buf.clear();
            }
            match self.exchange(&req).await {
                Ok(answer) => return Ok(answer),
                Err(err) => {
                    self.stream = None;
                    self.buf.clear();
                    if !(reused && attempt == 0) {
                        return Err(err);
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let stream = self.stream.as_mut().context("no connection")?;
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    async fn exchange(&mut self, req: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.as_mut().context("no connection")?.write_all(req).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, 0, b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head is not UTF-8")?.to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .context("malformed status line")?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                match name.as_str() {
                    "content-length" => length = value.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = value.contains("chunked"),
                    "connection" => close = value.contains("close"),
                    _ => {}
                }
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            let mut at = head_end;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, at, b"\r\n") {
                        break i;
                    }
                    self.read_more().await?;
                };
                let size_text =
                    std::str::from_utf8(&self.buf[at..line_end])?.split(';').next().unwrap_or("").trim().to_string();
                let size = usize::from_str_radix(&size_text, 16).context("malformed chunk size")?;
                at = line_end + 2;
                if size == 0 {
                    loop {
                        let end = loop {
                            if let Some(i) = find(&self.buf, at, b"\r\n") {
                                break i;
                            }
                            self.read_more().await?;
                        };
                        let empty = end == at;
                        at = end + 2;
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                while self.buf.len() < at + size + 2 {
                    self.read_more().await?;
                }
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            self.buf.drain(..at);
            body
        } else if let Some(n) = length {
            while self.buf.len() < head_end + n {
                self.read_more().await?;
            }
            let body = self.buf[head_end..head_end + n].to_vec();
            self.buf.drain(..head_end + n);
            body
        } else {
            while self.read_more().await.is_ok() {}
            close = true;
            self.buf[head_end..].to_vec()
        };
        if close {
            self.stream = None;
            self.buf.clear();
        }
        Ok((status, body))
    }

    async fn get(&mut self, path: &str, auth: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        match self.cookie.clone() {
            Some(cookie) => self.request("GET", path, &[("Authorization", auth), ("Cookie", &cookie)], b"").await,
            None => self.request("GET", path, &[("Authorization", auth)], b"").await,
        }
    }

    /// POSTs JSON and insists on 200 or 201.
    async fn post_ok(&mut self, path: &str, auth: &str, key: Option<&str>, body: &str) -> anyhow::Result<Vec<u8>> {
        let mut headers = vec![("Authorization", auth), ("Content-Type", "application/json")];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        let (status, answer) = self.request("POST", path, &headers, body.as_bytes()).await?;
        if status != 200 && status != 201 {
            bail!("POST {path} answered {status}: {}", String::from_utf8_lossy(&answer));
        }
        Ok(answer)
    }
}

/// Signs in to the web app as a browser would (the sign-in form, its cookie
/// and CSRF value, then the token) and returns the session's `Cookie` header.
async fn web_session(addr: SocketAddr, token: &str) -> anyhow::Result<String> {
    async fn exchange(addr: SocketAddr, request: String) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
    let cookie_of = |answer: &str, name: &str| {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap_or("").to_string()))
    };
    let form = exchange(addr, format!("GET /inloggen HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await?;
    let form_cookie = cookie_of(&form, "wb_inloggen").context("the sign-in page sets no cookie")?;
    let marker = "name=\"csrf\" value=\"";
    let start = form.find(marker).context("the sign-in page has no CSRF value")? + marker.len();
    let csrf = form[start..].split('"').next().unwrap_or("");
    let body = format!("csrf={csrf}&token={token}&terug=%2F");
    let signed_in = exchange(
        addr,
        format!(
            "POST /inloggen HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: wb_inloggen={form_cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await?;
    let session = cookie_of(&signed_in, "wb_sessie").context("signing in gave no session")?;
    Ok(format!("wb_sessie={session}"))
}

// ---------------------------------------------------------------------------
// Child processes: the server, rebuild and verify
// ---------------------------------------------------------------------------

/// A value from /proc/PID/status in kB (VmHWM, VmRSS).
fn proc_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    async fn start(db_url: &str, log: PathBuf) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let file = std::fs::File::create(&log)?;
        let mut child = tokio::process::Command::new(BIN)
            .args(["serve", "--database", db_url, "--listen", &addr.to_string()])
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .env_remove("WIJKBUDGET_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {BIN} serve"))?;
        let pid = child.id().context("the server has no pid")?;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the server exited ({status}) while starting; its log ends:\n{}", tail(&log));
            }
            if let Ok((200, _)) = Http::new(addr).request("GET", "/api/v1/health", &[], b"").await {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not answer /health in time; its log ends:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, pid, addr, log })
    }

    fn kb(&self, key: &str) -> u64 {
        proc_kb(self.pid, key).unwrap_or(0)
    }

    /// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so a peak
    /// belongs to the phase that follows.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        let _ = tokio::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("  the server did not stop within 60 s; killing it (log {})", self.log.display());
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// What a finished `wijkbudget` child process used.
/// Waits until a server has verified the whole chain, which it does once at
/// start (seconds at a million events): measuring meanwhile would time the
/// verifier too. Returns the seconds waited.
async fn wait_for_start_up_verification(addr: SocketAddr, auth: &str) -> anyhow::Result<f64> {
    let mut http = Http::new(addr);
    let started = Instant::now();
    loop {
        let (status, body) = http.get("/api/v1/integrity", auth).await?;
        anyhow::ensure!(status == 200, "GET /integrity answered {status}");
        let integrity: Value = serde_json::from_slice(&body)?;
        if !integrity["last_verification"].is_null() {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the server's start-up verification never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct ChildRun {
    secs: f64,
    peak_kb: u64,
    /// CPU seconds of the child itself (last sample before it exited).
    cpu: f64,
    /// CPU seconds of the PostgreSQL backends serving it (sampled every 100 ms).
    pg_cpu: f64,
    out: String,
}

/// Runs `wijkbudget ARGS` to completion, sampling its peak RSS, its CPU and
/// that of the PostgreSQL backends connected to `database`.
async fn run_child(args: &[&str], log: &Path, admin: &PgPool, database: &str) -> anyhow::Result<ChildRun> {
    let file = std::fs::File::create(log)?;
    let before = backends_of(admin, database).await;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {BIN} {}", args.join(" ")))?;
    let pid = child.id().context("no pid")?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, admin, database) = (done.clone(), admin.clone(), database.to_string());
        tokio::spawn(async move {
            let (mut peak, mut cpu, mut backends) = (0u64, 0f64, HashMap::<u32, f64>::new());
            let mut tick = 0u64;
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = proc_kb(pid, "VmHWM") {
                    peak = peak.max(kb);
                }
                if let Some(c) = proc_cpu_secs(pid) {
                    cpu = c;
                }
                if tick % 5 == 0 {
                    for (p, c) in backends_of(&admin, &database).await {
                        backends.insert(p, c);
                    }
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (peak, cpu, backends)
        })
    };
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut out = String::new();
    stdout.read_to_string(&mut out).await?;
    let status = child.wait().await?;
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (peak_kb, cpu, backends) = sampler.await?;
    if !status.success() {
        bail!("wijkbudget {} failed ({status}): {out}\n{}", args.join(" "), tail(log));
    }
    let pg_cpu = backends.iter().map(|(p, c)| c - before.get(p).copied().unwrap_or(0.0)).sum::<f64>().max(0.0);
    Ok(ChildRun { secs, peak_kb, cpu, pg_cpu, out })
}

/// CPU seconds (user + system) a process has used so far.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based), in clock ticks of 1/100 s.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// (busy, total) clock ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Where the CPU went during one run: this process (the load generator and,
/// for the cqrs-es baseline, cqrs-es itself), the server, and the
/// PostgreSQL backends connected to one database.
struct CpuProbe {
    database: String,
    server: Option<u32>,
    bench: f64,
    server_cpu: f64,
    backends: HashMap<u32, f64>,
    machine: (u64, u64),
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct CpuUse {
    bench_ms_per_command: f64,
    server_ms_per_command: f64,
    postgres_ms_per_command: f64,
    machine_busy_percent: f64,
}

async fn backends_of(admin: &PgPool, database: &str) -> HashMap<u32, f64> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_all(admin)
        .await
        .unwrap_or_default();
    pids.into_iter().filter_map(|p| Some((p as u32, proc_cpu_secs(p as u32)?))).collect()
}

impl CpuProbe {
    async fn start(admin: &PgPool, database: &str, server: Option<u32>) -> Self {
        Self {
            database: database.to_string(),
            server,
            bench: proc_cpu_secs(std::process::id()).unwrap_or(0.0),
            server_cpu: server.and_then(proc_cpu_secs).unwrap_or(0.0),
            backends: backends_of(admin, database).await,
            machine: machine_ticks(),
        }
    }

    async fn finish(self, admin: &PgPool, commands: u64) -> CpuUse {
        let bench = proc_cpu_secs(std::process::id()).unwrap_or(0.0) - self.bench;
        let server = self.server.and_then(proc_cpu_secs).map_or(0.0, |c| c - self.server_cpu);
        let pg: f64 = backends_of(admin, &self.database)
            .await
            .iter()
            .map(|(pid, now)| now - self.backends.get(pid).copied().unwrap_or(0.0))
            .sum();
        let (busy, total) = machine_ticks();
        let per = |secs: f64| secs * 1000.0 / commands.max(1) as f64;
        CpuUse {
            bench_ms_per_command: per(bench),
            server_ms_per_command: per(server),
            postgres_ms_per_command: per(pg),
            machine_busy_percent: 100.0 * (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64,
        }
    }
}

// ---------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------

trait Client: Send + 'static {
    fn call(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Debug, Default)]
struct Load {
    ops: u64,
    secs: f64,
    /// Sorted latencies in microseconds of the commands completed in the window.
    lat_us: Vec<u64>,
    /// Successful calls including warm-up and the tail after the window, for CPU per command.
    total_ops: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Every client calls in a loop; only calls that complete inside the
/// measured window (after the warm-up) count.
async fn run_load<C: Client>(clients: Vec<C>, warmup: Duration, window: Duration) -> anyhow::Result<(Load, Vec<C>)> {
    let t0 = Instant::now();
    let (from, until) = (t0 + warmup, t0 + warmup + window);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let (mut lat, mut errors, mut first, mut total) = (Vec::new(), 0u64, None, 0u64);
                while Instant::now() < until {
                    let start = Instant::now();
                    let result = client.call().await;
                    let end = Instant::now();
                    if result.is_ok() {
                        total += 1;
                    }
                    match result {
                        Ok(()) if end >= from && end <= until => lat.push((end - start).as_micros() as u64),
                        Ok(()) => {}
                        Err(err) => {
                            errors += 1;
                            first.get_or_insert_with(|| format!("{err:#}"));
                            if errors > 100 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                (client, lat, errors, first, total)
            })
        })
        .collect();
    let mut load = Load { secs: window.as_secs_f64(), ..Default::default() };
    let mut back = Vec::new();
    for task in tasks {
        let (client, lat, errors, first, total) = task.await?;
        back.push(client);
        load.total_ops += total;
        load.lat_us.extend(lat);
        load.errors += errors;
        if load.first_error.is_none() {
            load.first_error = first;
        }
    }
    load.ops = load.lat_us.len() as u64;
    load.lat_us.sort_unstable();
    if load.ops == 0 {
        bail!("no command completed in the window: {}", load.first_error.unwrap_or_default());
    }
    Ok((load, back))
}

/// A cheap deterministic generator, one per client.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn expense_json(id: &str, wijk: &str, fund: &str, cents: u64, n: u64) -> String {
    json!({
        "expense_id": id,
        "wijk_id": wijk,
        "fund_id": fund,
        "amount": format!("{}.{:02}", cents / 100, cents % 100),
        "initiative": "Herinrichting Wegaplein",
        "theme": "groen",
        "booked_on": "2022-06-15",
        "reference": format!("factuur {n}"),
    })
    .to_string()
}

/// Records expenses over HTTP: a random fund and wijk per command, a fresh
/// expense id and the same string as its Idempotency-Key.
struct ExpenseClient {
    http: Http,
    auth: Arc<String>,
    funds: Arc<Vec<String>>,
    wijken: Arc<Vec<String>>,
    tag: String,
    n: u64,
    rng: XorShift,
    completed: Option<Arc<AtomicU64>>,
}

impl ExpenseClient {
    fn new(
        addr: SocketAddr,
        auth: &Arc<String>,
        funds: &Arc<Vec<String>>,
        wijken: &Arc<Vec<String>>,
        tag: String,
    ) -> Self {
        let seed = tag.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3)) | 1;
        Self {
            http: Http::new(addr),
            auth: auth.clone(),
            funds: funds.clone(),
            wijken: wijken.clone(),
            tag,
            n: 0,
            rng: XorShift(seed),
            completed: None,
        }
    }
}

impl Client for ExpenseClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        self.n += 1;
        let id = format!("{}-{}", self.tag, self.n);
        let fund = &self.funds[(self.rng.next() % self.funds.len() as u64) as usize];
        let wijk = &self.wijken[(self.rng.next() % self.wijken.len() as u64) as usize];
        let body = expense_json(&id, wijk, fund, 100 + self.rng.next() % 9900, self.n);
        self.http.post_ok("/api/v1/expenses", &self.auth, Some(&id), &body).await?;
        if let Some(c) = &self.completed {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Baseline (a): one event-sized row per INSERT, each its own transaction.
struct RawClient {
    pool: PgPool,
    row: Arc<String>,
}

impl Client for RawClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO raw_events (body) VALUES ($1::json)")
            .bind(self.row.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Baseline (b): plain cqrs-es + postgres-es with a tiny equivalent aggregate
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
struct PlainFund {
    established: bool,
    unallocated_cents: i64,
    /// wijk -> (allocated, spent) in cents.
    lines: BTreeMap<String, (i64, i64)>,
    expenses: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlainExpense {
    expense_id: String,
    wijk_id: String,
    amount: String,
    initiative: String,
    theme: String,
    booked_on: String,
    reference: String,
}

#[derive(Debug, Clone)]
enum PlainCommand {
    Establish { amount: String },
    Allocate { wijk_id: String, amount: String },
    RecordExpense(PlainExpense),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PlainEvent {
    FundEstablished { amount: String },
    BudgetAllocated { wijk_id: String, amount: String },
    ExpenseRecorded(PlainExpense),
}

impl DomainEvent for PlainEvent {
    fn event_type(&self) -> String {
        match self {
            Self::FundEstablished { .. } => "FundEstablished",
            Self::BudgetAllocated { .. } => "BudgetAllocated",
            Self::ExpenseRecorded(_) => "ExpenseRecorded",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1.0.0".into()
    }
}

#[derive(Debug)]
struct PlainError(String);

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlainError {}

fn cents_of(amount: &str) -> i64 {
    let (euro, cent) = amount.split_once('.').unwrap_or((amount, "0"));
    euro.parse::<i64>().unwrap_or(0) * 100 + format!("{cent:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

impl Aggregate for PlainFund {
    const TYPE: &'static str = "fund";
    type Command = PlainCommand;
    type Event = PlainEvent;
    type Error = PlainError;
    type Services = ();

    async fn handle(&mut self, command: PlainCommand, _: &(), sink: &EventSink<Self>) -> Result<(), PlainError> {
        let event = match command {
            PlainCommand::Establish { amount } if !self.established => PlainEvent::FundEstablished { amount },
            PlainCommand::Establish { .. } => return Ok(()),
            PlainCommand::Allocate { wijk_id, amount } => {
                if !self.established || cents_of(&amount) > self.unallocated_cents {
                    return Err(PlainError("fund exhausted".into()));
                }
                PlainEvent::BudgetAllocated { wijk_id, amount }
            }
            PlainCommand::RecordExpense(expense) => {
                if self.expenses.contains(&expense.expense_id) {
                    return Err(PlainError("expense id taken".into()));
                }
                let (allocated, spent) = self.lines.get(&expense.wijk_id).copied().unwrap_or_default();
                if spent + cents_of(&expense.amount) > allocated {
                    return Err(PlainError("overspend".into()));
                }
                PlainEvent::ExpenseRecorded(expense)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PlainEvent) {
        match event {
            PlainEvent::FundEstablished { amount } => {
                self.established = true;
                self.unallocated_cents = cents_of(&amount);
            }
            PlainEvent::BudgetAllocated { wijk_id, amount } => {
                self.unallocated_cents -= cents_of(&amount);
                self.lines.entry(wijk_id).or_default().0 += cents_of(&amount);
            }
            PlainEvent::ExpenseRecorded(e) => {
                self.lines.entry(e.wijk_id.clone()).or_default().1 += cents_of(&e.amount);
                self.expenses.insert(e.expense_id);
            }
        }
    }
}

type PlainCqrs = postgres_es::PostgresCqrs<PlainFund>;

struct CqrsClient {
    cqrs: Arc<PlainCqrs>,
    funds: Arc<Vec<String>>,
    wijken: Arc<Vec<String>>,
    tag: String,
    n: u64,
    rng: XorShift,
    conflicts: Arc<AtomicU64>,
}

impl Client for CqrsClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        self.n += 1;
        let fund = self.funds[(self.rng.next() % self.funds.len() as u64) as usize].clone();
        let wijk = self.wijken[(self.rng.next() % self.wijken.len() as u64) as usize].clone();
        let cents = 100 + self.rng.next() % 9900;
        let expense = PlainExpense {
            expense_id: format!("{}-{}", self.tag, self.n),
            wijk_id: wijk,
            amount: format!("{}.{:02}", cents / 100, cents % 100),
            initiative: "Herinrichting Wegaplein".into(),
            theme: "groen".into(),
            booked_on: "2022-06-15".into(),
            reference: format!("factuur {}", self.n),
        };
        let metadata = HashMap::from([
            ("actor".to_string(), "bench".to_string()),
            ("role".to_string(), "finance".to_string()),
            ("correlation_id".to_string(), uuid::Uuid::new_v4().to_string()),
        ]);
        // Plain cqrs-es does not retry a lost race; a caller must, as the
        // ledger does: same bound and the same jittered backoff.
        for attempt in 1..=10u32 {
            match self
                .cqrs
                .execute_with_metadata(&fund, PlainCommand::RecordExpense(expense.clone()), metadata.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(AggregateError::AggregateConflict) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    let ceiling_ms = (4u64 << attempt.min(6)).min(250);
                    tokio::time::sleep(Duration::from_millis(self.rng.next() % ceiling_ms + 1)).await;
                }
                Err(err) => bail!("cqrs-es refused: {err}"),
            }
        }
        bail!("lost 10 races in a row")
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL databases
// ---------------------------------------------------------------------------

struct Bench {
    cfg: Config,
    dbs: Vec<String>,
    dir: tempfile::TempDir,
    report: serde_json::Map<String, Value>,
    out: String,
    targets: Vec<[String; 4]>,
    /// (what, peak RSS in kB, note) for scenario 5.
    memory: Vec<(String, u64, String)>,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Bench {
    fn admin(&self) -> String {
        format!("{}/postgres{}", self.cfg.postgres, self.cfg.url_options())
    }

    async fn create_db(&mut self, name: &str) -> anyhow::Result<String> {
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await.with_context(|| {
            format!(
                "connecting to {}; set WIJKBUDGET_BENCH_POSTGRES to a server where you may create databases",
                self.admin()
            )
        })?;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        admin.close().await;
        if !self.dbs.iter().any(|d| d == name) {
            self.dbs.push(name.to_string());
        }
        Ok(format!("{}/{name}{}", self.cfg.postgres, self.cfg.url_options()))
    }

    async fn drop_dbs(&mut self) -> anyhow::Result<()> {
        if self.cfg.keep || self.dbs.is_empty() {
            return Ok(());
        }
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        for name in self.dbs.drain(..) {
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await?;
        }
        admin.close().await;
        Ok(())
    }

    fn say(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.out.push_str(line.as_ref());
        self.out.push('\n');
    }

    fn progress(&self, line: impl AsRef<str>) {
        eprintln!("  .. {}  (load {})", line.as_ref(), loadavg());
    }

    fn target(&mut self, what: &str, wanted: &str, measured: String, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "n/a",
        };
        self.targets.push([what.to_string(), wanted.to_string(), measured, met.to_string()]);
    }

    /// A token for a finance user, written straight into the store.
    async fn finance_token(&self, url: &str) -> anyhow::Result<Arc<String>> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        let token = create_token(&db, Role::Finance, &[], "bench").await?;
        db.close().await;
        Ok(Arc::new(format!("Bearer {token}")))
    }
}

fn names(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}-{i}")).collect())
}

/// Registers the wijken, establishes the funds and allocates each fund to each wijk, over HTTP.
async fn setup_over_http(addr: SocketAddr, auth: &str, wijken: &[String], funds: &[String]) -> anyhow::Result<()> {
    let mut http = Http::new(addr);
    for w in wijken {
        let body = json!({"wijk_id": w, "name": format!("Wijk {w}")}).to_string();
        http.post_ok("/api/v1/wijken", auth, None, &body).await?;
    }
    for f in funds {
        let body = json!({
            "fund_id": f, "year": 2022, "kind": "begroting", "name": format!("Wijkbudget 2022 {f}"),
            "amount": "1000000000", "decision": {"reference": "Begroting 2022", "adopted_on": "2021-11-11"},
            "purpose": "Initiatieven van bewoners"
        })
        .to_string();
        http.post_ok("/api/v1/funds", auth, None, &body).await?;
        for w in wijken {
            let body =
                json!({"wijk_id": w, "amount": "100000000", "reason": "Raadsbesluit", "booked_on": "2022-01-03"})
                    .to_string();
            // Allocations require a key: a retry must not allocate twice.
            let key = format!("bench-allocation-{f}-{w}");
            http.post_ok(&format!("/api/v1/funds/{f}/allocations"), auth, Some(&key), &body).await?;
        }
    }
    Ok(())
}

async fn pg_setting(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar::<_, String>(&format!("SHOW {name}")).fetch_one(pool).await.unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------------------
// Scenario 1: write throughput
// ---------------------------------------------------------------------------

#[derive(Default)]
struct WriteRow {
    cpu: Vec<CpuUse>,
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
}

impl WriteRow {
    fn add(&mut self, load: &Load) {
        self.rate.push(load.rate());
        self.p50.push(pct_ms(&load.lat_us, 0.50));
        self.p99.push(pct_ms(&load.lat_us, 0.99));
        self.errors += load.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&load.first_error);
        }
    }

    fn json(&self) -> Value {
        json!({
            "commands_per_s": spread(&self.rate), "p50_ms": spread(&self.p50), "p99_ms": spread(&self.p99),
            "per_run_commands_per_s": self.rate, "errors": self.errors, "first_error": self.first_error,
            "cpu_per_run": self.cpu,
        })
    }
}

impl Bench {
    async fn scenario_writes(&mut self) -> anyhow::Result<()> {
        let cfg = self.cfg.clone();
        let (warm, window) = (Duration::from_secs_f64(cfg.warmup_secs), Duration::from_secs_f64(cfg.run_secs));
        let wijken = names("wijk", WIJKEN);
        let funds = names("fund", FUNDS);

        // The wijkbudget server on PostgreSQL.
        let http_url = self.create_db("wb_bench_http").await?;
        let auth = self.finance_token(&http_url).await?;
        let server = Server::start(&http_url, self.dir.path().join("serve-http.log")).await?;
        setup_over_http(server.addr, &auth, &wijken, &funds).await?;
        let pg = PgPoolOptions::new().max_connections(1).connect(&http_url).await?;
        let settings = json!({
            "synchronous_commit": pg_setting(&pg, "synchronous_commit").await,
            "fsync": pg_setting(&pg, "fsync").await,
            "wal_sync_method": pg_setting(&pg, "wal_sync_method").await,
            "shared_buffers": pg_setting(&pg, "shared_buffers").await,
            "commit_delay": pg_setting(&pg, "commit_delay").await,
        });
        self.report.insert("postgres_settings".into(), settings.clone());

        // Baseline (a): a plain table.
        let raw_url = self.create_db("wb_bench_raw").await?;
        let raw_admin = PgPoolOptions::new().max_connections(1).connect(&raw_url).await?;
        sqlx::raw_sql("CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, body JSON NOT NULL)")
            .execute(&raw_admin)
            .await?;
        raw_admin.close().await;
        let sample_row = Arc::new(sample_event_json());

        // Baseline (b): plain cqrs-es + postgres-es, its default schema, no snapshots.
        let cqrs_url = self.create_db("wb_bench_cqrs").await?;
        let cqrs_pool = PgPoolOptions::new()
            .max_connections(cfg.clients.iter().copied().max().unwrap_or(1) as u32)
            .connect(&cqrs_url)
            .await?;
        sqlx::raw_sql(POSTGRES_ES_SCHEMA).execute(&cqrs_pool).await?;
        let cqrs = Arc::new(postgres_es::postgres_cqrs::<PlainFund>(cqrs_pool.clone(), vec![], ()));
        for f in funds.iter() {
            cqrs.execute(f, PlainCommand::Establish { amount: "1000000000.00".into() }).await?;
            for w in wijken.iter() {
                cqrs.execute(f, PlainCommand::Allocate { wijk_id: w.clone(), amount: "100000000.00".into() }).await?;
            }
        }
        let conflicts = Arc::new(AtomicU64::new(0));

        self.progress(format!(
            "scenario 1: {} runs of {:.1} s (+{:.1} s warm-up) at {:?} clients; raw row {} bytes",
            cfg.runs,
            cfg.run_secs,
            cfg.warmup_secs,
            cfg.clients,
            sample_row.len()
        ));
        server.reset_peak();
        let rss_start = server.kb("VmRSS");
        let mut rows: BTreeMap<(usize, &str), WriteRow> = BTreeMap::new();
        let mut ratio_raw: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut ratio_cqrs: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        const SYSTEMS: [(&str, &str, &str); 3] = [
            ("raw", "raw INSERT (sqlx)", "wb_bench_raw"),
            ("cqrs", "plain cqrs-es + postgres-es", "wb_bench_cqrs"),
            ("http", "wijkbudget HTTP, PostgreSQL", "wb_bench_http"),
        ];
        let mut round = 0usize;
        for &c in &cfg.clients {
            let raw_pool =
                PgPoolOptions::new().max_connections(c as u32).min_connections(c as u32).connect(&raw_url).await?;
            for run in 0..cfg.runs {
                let mut rates = HashMap::new();
                // Rotate the order so no system always runs first.
                for k in 0..3 {
                    let which = (round + k) % 3;
                    let (key, name, database) = SYSTEMS[which];
                    if !cfg.systems.iter().any(|s| s == key) {
                        continue;
                    }
                    let probe = CpuProbe::start(&admin, database, (which == 2).then_some(server.pid)).await;
                    let load = match which {
                        0 => {
                            let clients =
                                (0..c).map(|_| RawClient { pool: raw_pool.clone(), row: sample_row.clone() }).collect();
                            run_load(clients, warm, window).await?.0
                        }
                        1 => {
                            let clients = (0..c)
                                .map(|i| CqrsClient {
                                    cqrs: cqrs.clone(),
                                    funds: funds.clone(),
                                    wijken: wijken.clone(),
                                    tag: format!("c{c}r{run}x{i}"),
                                    n: 0,
                                    rng: XorShift(0x2545_F491_4F6C_DD1D ^ ((round * 131 + i) as u64 + 1)),
                                    conflicts: conflicts.clone(),
                                })
                                .collect();
                            run_load(clients, warm, window).await?.0
                        }
                        _ => {
                            let clients = (0..c)
                                .map(|i| {
                                    ExpenseClient::new(server.addr, &auth, &funds, &wijken, format!("h{c}r{run}x{i}"))
                                })
                                .collect();
                            run_load(clients, warm, window).await?.0
                        }
                    };
                    let cpu = probe.finish(&admin, load.total_ops).await;
                    rates.insert(which, load.rate());
                    let row = rows.entry((c, name)).or_default();
                    row.add(&load);
                    row.cpu.push(cpu);
                    self.progress(format!(
                        "{c} clients run {}: {name} {:.0}/s, p50 {:.2} ms; CPU ms/command: bench {:.2}, server {:.2}, postgres {:.2}; machine busy {:.0}%",
                        run + 1,
                        load.rate(),
                        pct_ms(&load.lat_us, 0.5),
                        cpu.bench_ms_per_command,
                        cpu.server_ms_per_command,
                        cpu.postgres_ms_per_command,
                        cpu.machine_busy_percent
                    ));
                }
                let rate = |w: usize| rates.get(&w).copied().unwrap_or(f64::NAN);
                ratio_raw.entry(c).or_default().push(rate(2) / rate(0));
                ratio_cqrs.entry(c).or_default().push(rate(2) / rate(1));
                round += 1;
            }
            raw_pool.close().await;
        }
        let http_peak = server.kb("VmHWM");
        let http_events: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&pg).await?;
        let cqrs_events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&cqrs_pool).await?;
        pg.close().await;
        server.stop().await?;
        cqrs_pool.close().await;
        // A rebuild of this small log, to compare the rebuild's memory with the big store's.
        let admin_small = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let small = run_child(
            &["rebuild", "--database", &http_url],
            &self.dir.path().join("rebuild-small.log"),
            &admin_small,
            "wb_bench_http",
        )
        .await?;
        admin_small.close().await;
        self.progress(format!(
            "rebuild of the scenario-1 store ({http_events} events): {:.1} s, peak RSS {:.0} MB",
            small.secs,
            mb(small.peak_kb)
        ));
        self.memory.push((
            format!("`wijkbudget rebuild` over {http_events} events (scenario 1's store)"),
            small.peak_kb,
            String::new(),
        ));

        // The same HTTP scenario on the embedded SQLite store.
        let mut sqlite_peak = 0;
        if cfg.systems.iter().any(|s| s == "sqlite") {
            let sqlite_url = format!("sqlite://{}", self.dir.path().join("writes.db").display());
            let sqlite_auth = self.finance_token(&sqlite_url).await?;
            let server = Server::start(&sqlite_url, self.dir.path().join("serve-sqlite.log")).await?;
            setup_over_http(server.addr, &sqlite_auth, &wijken, &funds).await?;
            server.reset_peak();
            for &c in &cfg.clients {
                for run in 0..cfg.runs {
                    let clients = (0..c)
                        .map(|i| {
                            ExpenseClient::new(server.addr, &sqlite_auth, &funds, &wijken, format!("s{c}r{run}x{i}"))
                        })
                        .collect();
                    let probe = CpuProbe::start(&admin, "-", Some(server.pid)).await;
                    let load = run_load(clients, warm, window).await?.0;
                    let cpu = probe.finish(&admin, load.total_ops).await;
                    self.progress(format!(
                        "{c} clients run {}: http sqlite {:.0}/s, p50 {:.2} ms; CPU ms/command: bench {:.2}, server {:.2}; machine busy {:.0}%",
                        run + 1,
                        load.rate(),
                        pct_ms(&load.lat_us, 0.5),
                        cpu.bench_ms_per_command,
                        cpu.server_ms_per_command,
                        cpu.machine_busy_percent
                    ));
                    let row = rows.entry((c, "wijkbudget HTTP, SQLite")).or_default();
                    row.add(&load);
                    row.cpu.push(cpu);
                }
            }
            sqlite_peak = server.kb("VmHWM");
            server.stop().await?;
        }
        admin.close().await;

        // Print.
        self.say("");
        self.say(format!(
            "1. WRITE THROUGHPUT: RecordExpense commands, random fund x wijk over {FUNDS} funds x {WIJKEN} wijken, each with an Idempotency-Key; \
             median [min-max] over {} runs of {:.1} s after {:.1} s warm-up",
            cfg.runs, cfg.run_secs, cfg.warmup_secs
        ));
        self.say(format!(
            "   durability: PostgreSQL synchronous_commit={} fsync={} wal_sync_method={} (every command committed durably before its answer); SQLite WAL synchronous=FULL",
            settings["synchronous_commit"].as_str().unwrap_or("?"),
            settings["fsync"].as_str().unwrap_or("?"),
            settings["wal_sync_method"].as_str().unwrap_or("?"),
        ));
        self.say(format!(
            "   raw row: {} bytes of JSON in a BIGSERIAL table; cqrs-es: postgres_cqrs (no snapshots), same commands in-process, retries lost races like the ledger ({} conflicts)",
            sample_row.len(),
            conflicts.load(Ordering::Relaxed)
        ));
        self.say(format!(
            "   {:<30} {:>7} {:>26} {:>22} {:>24} {:>20} {:>20}",
            "system", "clients", "commands/s", "p50 ms", "p99 ms", "x raw INSERT", "x plain cqrs-es"
        ));
        let order = [
            "raw INSERT (sqlx)",
            "plain cqrs-es + postgres-es",
            "wijkbudget HTTP, PostgreSQL",
            "wijkbudget HTTP, SQLite",
        ];
        let mut json_rows = Vec::new();
        for &c in &cfg.clients {
            let raw_rate = rows.get(&(c, order[0])).map(|r| spread(&r.rate).median).unwrap_or(f64::NAN);
            let cqrs_rate = rows.get(&(c, order[1])).map(|r| spread(&r.rate).median).unwrap_or(f64::NAN);
            for name in order {
                let Some(row) = rows.get(&(c, name)) else { continue };
                let rate = spread(&row.rate);
                let (vs_raw, vs_cqrs) = match name {
                    "wijkbudget HTTP, PostgreSQL" => {
                        (show(spread(&ratio_raw[&c]), 2), show(spread(&ratio_cqrs[&c]), 2))
                    }
                    "raw INSERT (sqlx)" => ("1.00".into(), num(raw_rate / cqrs_rate, 2)),
                    _ => (num(rate.median / raw_rate, 2), num(rate.median / cqrs_rate, 2)),
                };
                let line = format!(
                    "   {:<30} {:>7} {:>26} {:>22} {:>24} {:>20} {:>20}",
                    name,
                    c,
                    show(rate, 0),
                    show(spread(&row.p50), 2),
                    show(spread(&row.p99), 2),
                    vs_raw,
                    vs_cqrs
                );
                self.say(line);
                if row.errors > 0 {
                    self.say(format!(
                        "      {} failed commands; first: {}",
                        row.errors,
                        row.first_error.clone().unwrap_or_default()
                    ));
                }
                let mut j = row.json();
                j["system"] = json!(name);
                j["clients"] = json!(c);
                if name == "wijkbudget HTTP, PostgreSQL" {
                    j["ratio_to_raw"] = json!(spread(&ratio_raw[&c]));
                    j["ratio_to_cqrs_es"] = json!(spread(&ratio_cqrs[&c]));
                }
                json_rows.push(j);
            }
        }
        self.say(format!(
            "   (ratios for wijkbudget/PostgreSQL are per round of interleaved runs; store sizes at the end: wijkbudget {http_events} events, cqrs-es {cqrs_events} events)"
        ));
        self.say(
            "   CPU time per command in ms (median over runs; user+system from /proc/PID/stat, incl. warm-up; SQLite runs inside the server) and how busy the 2 CPUs were:",
        );
        self.say(format!(
            "   {:<30} {:>7} {:>14} {:>14} {:>14} {:>14}",
            "system", "clients", "load gen/cqrs", "server", "postgres", "machine busy"
        ));
        for &c in &cfg.clients {
            for name in order {
                let Some(row) = rows.get(&(c, name)) else { continue };
                let med = |f: fn(&CpuUse) -> f64| spread(&row.cpu.iter().map(f).collect::<Vec<_>>()).median;
                let postgres = if name.contains("SQLite") {
                    "-".to_string()
                } else {
                    format!("{:.3}", med(|u| u.postgres_ms_per_command))
                };
                self.say(format!(
                    "   {:<30} {:>7} {:>14.3} {:>14.3} {:>14} {:>13.0}%",
                    name,
                    c,
                    med(|u| u.bench_ms_per_command),
                    med(|u| u.server_ms_per_command),
                    postgres,
                    med(|u| u.machine_busy_percent)
                ));
            }
        }
        self.report.insert(
            "1_write_throughput".into(),
            json!({
                "rows": json_rows,
                "run_secs": cfg.run_secs, "warmup_secs": cfg.warmup_secs, "runs": cfg.runs,
                "funds": FUNDS, "wijken": WIJKEN, "raw_row_bytes": sample_row.len(),
                "cqrs_conflicts": conflicts.load(Ordering::Relaxed),
                "events_at_end": {"wijkbudget_postgres": http_events, "plain_cqrs_es": cqrs_events},
                "server_peak_rss_mb": {"postgres": mb(http_peak), "sqlite": mb(sqlite_peak), "postgres_rss_at_start_mb": mb(rss_start)},
            }),
        );
        self.memory.push((
            "server, scenario 1 on PostgreSQL (fresh store)".into(),
            http_peak,
            format!("{http_events} events at end"),
        ));
        self.memory.push(("server, scenario 1 on SQLite (fresh store)".into(), sqlite_peak, String::new()));
        if let Some(&top) = cfg.clients.iter().max() {
            let r = spread(&ratio_raw[&top]);
            self.target(
                &format!("HTTP writes at {top} clients vs raw INSERTs"),
                ">= 1.0x",
                format!("{}x", show(r, 2)),
                Some(r.median >= 1.0),
            );
        }
        Ok(())
    }
}

/// The default postgres-es schema (its db/init.sql, without the test data).
const POSTGRES_ES_SCHEMA: &str = "\
CREATE TABLE events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, sequence bigint CHECK (sequence >= 0) NOT NULL,
    event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence));
CREATE TABLE snapshots (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL, last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));";

/// The JSON of one whole stored expense event, as the raw baseline's row.
fn sample_event_json() -> String {
    let details = ExpenseDetails {
        expense_id: ExpenseId::parse("h32r0x17-1234").expect("valid"),
        wijk_id: WijkId::parse("wijk-3").expect("valid"),
        amount: Amount::parse("48.15").expect("valid"),
        initiative: Text::parse("Herinrichting Wegaplein").expect("valid"),
        theme: Text::parse("groen").expect("valid"),
        booked_on: NaiveDate::from_ymd_opt(2022, 6, 15).expect("date"),
        reference: Text::parse("factuur 1234").expect("valid"),
    };
    let event = ChainedEvent {
        position: 123_456,
        event_id: uuid::Uuid::now_v7().to_string(),
        recorded_at: Utc::now().trunc_subsecs(6),
        aggregate_type: "fund".into(),
        aggregate_id: "fund-17".into(),
        sequence: 4_321,
        event_type: "ExpenseRecorded".into(),
        event_version: "1.0.0".into(),
        payload: serde_json::to_value(FundEvent::ExpenseRecorded(details)).expect("serialises"),
        metadata: json!({
            "actor": "bench", "role": "finance", "correlation_id": uuid::Uuid::new_v4().to_string(),
            "idempotency_key": "h32r0x17-1234", "request_fingerprint": hex::encode([7u8; 32]),
        }),
        hash: hex::encode([9u8; 32]),
    };
    serde_json::to_string(&event).expect("serialises")
}

// ---------------------------------------------------------------------------
// The big store: hash-chained events written directly with COPY
// ---------------------------------------------------------------------------

struct BigStore {
    url: String,
    events: i64,
    /// (history size, fund id, wijk id)
    history: Vec<(u64, String, String)>,
}

fn copy_escape(field: &str, out: &mut Vec<u8>) {
    for b in field.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

struct Chain {
    previous: [u8; 32],
    position: i64,
    sequences: HashMap<String, i64>,
    rows: Vec<u8>,
    claims: Vec<u8>,
    funds: HashMap<String, Fund>,
}

impl Chain {
    fn push(
        &mut self,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: String,
        event_version: String,
        payload: Value,
    ) {
        self.position += 1;
        let sequence = self.sequences.entry(format!("{aggregate_type}/{aggregate_id}")).or_insert(0);
        *sequence += 1;
        let mut e = ChainedEvent {
            position: self.position,
            event_id: uuid::Uuid::now_v7().to_string(),
            recorded_at: Utc::now().trunc_subsecs(6),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            sequence: *sequence,
            event_type,
            event_version,
            payload,
            metadata: json!({"actor": "bench-fill", "role": "finance", "correlation_id": uuid::Uuid::new_v4().to_string()}),
            hash: String::new(),
        };
        self.previous = chain_hash(&self.previous, &e);
        e.hash = hex::encode(self.previous);
        let hash = e.hash.clone();
        for (i, field) in canonical_fields(&e).into_iter().chain([hash]).enumerate() {
            if i > 0 {
                self.rows.push(b'\t');
            }
            copy_escape(&field, &mut self.rows);
        }
        self.rows.push(b'\n');
        if let Some((kind, id)) = wijkbudget::domain::client_id_claim(&e.event_type, &e.payload) {
            for (i, field) in [kind.to_string(), id, e.aggregate_id.clone(), e.position.to_string()].iter().enumerate()
            {
                if i > 0 {
                    self.claims.push(b'\t');
                }
                copy_escape(field, &mut self.claims);
            }
            self.claims.push(b'\n');
        }
    }

    fn wijk(&mut self, id: &str) {
        let event =
            WijkEvent::WijkRegistered { wijk_id: WijkId::parse(id).expect("valid"), name: text(&format!("Wijk {id}")) };
        let payload = serde_json::to_value(&event).expect("serialises");
        self.push("wijk", id, event.event_type(), event.event_version(), payload);
    }

    fn fund(&mut self, fund_id: &str, event: FundEvent) {
        let payload = serde_json::to_value(&event).expect("serialises");
        self.push("fund", fund_id, event.event_type(), event.event_version(), payload);
        self.funds.entry(fund_id.to_string()).or_default().apply(event);
    }
}

fn text(s: &str) -> Text {
    Text::parse(s).expect("bench texts are valid")
}

fn establish(chain: &mut Chain, fund_id: &str, kind: FundKind, amount: &str, wijken: &[String], allocation: &str) {
    let adopted_on = NaiveDate::from_ymd_opt(2021, 11, 11).expect("date");
    let terms = FundTerms {
        fund_id: FundId::parse(fund_id).expect("valid"),
        year: Year::new(2022).expect("valid"),
        kind,
        name: text(&format!("Fonds {fund_id}")),
        amount: Amount::parse(amount).expect("valid"),
        decision: Decision {
            reference: text(if kind == FundKind::Amendement { AMENDMENT } else { "Begroting 2022" }),
            adopted_on,
        },
        purpose: text("Initiatieven van bewoners"),
    };
    chain.fund(fund_id, FundEvent::FundEstablished { booked_on: terms.booking_date(), terms });
    for w in wijken {
        chain.fund(
            fund_id,
            FundEvent::BudgetAllocated {
                wijk_id: WijkId::parse(w).expect("valid"),
                amount: Amount::parse(allocation).expect("valid"),
                reason: text("Raadsbesluit"),
                booked_on: NaiveDate::from_ymd_opt(2022, 1, 3).expect("date"),
            },
        );
    }
}

fn expense(chain: &mut Chain, fund_id: &str, wijk_id: &str) {
    let p = chain.position as u64 + 1;
    let cents = 100 + (p * 7919) % 9900;
    let details = ExpenseDetails {
        expense_id: ExpenseId::parse(&format!("exp-{p}")).expect("valid"),
        wijk_id: WijkId::parse(wijk_id).expect("valid"),
        amount: Amount::parse(&format!("{}.{:02}", cents / 100, cents % 100)).expect("valid"),
        initiative: text("Herinrichting Wegaplein"),
        theme: text(["groen", "spelen", "sociale cohesie", "veiligheid"][(p % 4) as usize]),
        booked_on: NaiveDate::from_ymd_opt(2022, 1, 10).expect("date") + chrono::Duration::days((p % 350) as i64),
        reference: text(&format!("factuur {p}")),
    };
    chain.fund(fund_id, FundEvent::ExpenseRecorded(details));
}

impl Bench {
    async fn fill_big_store(&mut self) -> anyhow::Result<BigStore> {
        let cfg = self.cfg.clone();
        let url = self.create_db("wb_bench_big").await?;
        let db = Db::connect(&url).await?;
        db.migrate().await?;
        db.close().await;
        let pool = PgPoolOptions::new().max_connections(2).connect(&url).await?;
        let started = Instant::now();

        let wijken: Vec<String> = names("wijk", WIJKEN).to_vec();
        let funds: Vec<String> = names("fund", FUNDS).to_vec();
        let history: Vec<(u64, String, String)> =
            cfg.history.iter().map(|&h| (h, format!("hist-{h}"), format!("wijk-h{h}"))).collect();
        let mut chain = Chain {
            previous: GENESIS,
            position: 0,
            sequences: HashMap::new(),
            rows: Vec::new(),
            claims: Vec::new(),
            funds: HashMap::new(),
        };

        let mut conn = pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY events (position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata, hash) FROM STDIN",
            )
            .await?;
        for w in wijken.iter().chain(history.iter().map(|(_, _, w)| w)) {
            chain.wijk(w);
        }
        for f in &funds {
            establish(&mut chain, f, FundKind::Begroting, "1000000000", &wijken, "100000000");
        }
        establish(&mut chain, AMENDMENT, FundKind::Amendement, "50000", &wijken, "5000");
        for (_, f, w) in &history {
            establish(&mut chain, f, FundKind::Begroting, "1000000000", std::slice::from_ref(w), "500000000");
        }

        // The expenses, interleaved so that every stream's events spread
        // over the log as they would over a year: at each position the
        // category furthest behind its share goes next.
        let setup = chain.position as u64;
        let history_total: u64 = history.iter().map(|(h, _, _)| h - 2).sum();
        let bulk = cfg.events.saturating_sub(setup + AMENDMENT_EXPENSES + history_total);
        // (total, done) per category: 0 = bulk, 1 = amendment, 2.. = history funds.
        let mut cats: Vec<(u64, u64)> = vec![(bulk, 0), (AMENDMENT_EXPENSES, 0)];
        cats.extend(history.iter().map(|(h, _, _)| (h - 2, 0)));
        let total: u64 = cats.iter().map(|c| c.0).sum();
        for _ in 0..total {
            let mut best = usize::MAX;
            for (i, &(t, d)) in cats.iter().enumerate() {
                // Furthest behind: the smallest (done + 1) / total.
                if d < t
                    && (best == usize::MAX
                        || (d as u128 + 1) * (cats[best].0 as u128) < (cats[best].1 as u128 + 1) * (t as u128))
                {
                    best = i;
                }
            }
            let n = cats[best].1;
            cats[best].1 += 1;
            match best {
                0 => expense(
                    &mut chain,
                    &funds[(n % FUNDS as u64) as usize],
                    &wijken[((n / FUNDS as u64) % WIJKEN as u64) as usize],
                ),
                1 => expense(&mut chain, AMENDMENT, &wijken[(n % WIJKEN as u64) as usize]),
                i => {
                    let (_, f, w) = &history[i - 2];
                    expense(&mut chain, f, w)
                }
            }
            if chain.rows.len() > 8 << 20 {
                copy.send(std::mem::take(&mut chain.rows)).await?;
            }
        }
        copy.send(std::mem::take(&mut chain.rows)).await?;
        copy.finish().await?;
        let mut copy = conn.copy_in_raw("COPY client_ids (kind, id, aggregate_id, position) FROM STDIN").await?;
        copy.send(std::mem::take(&mut chain.claims)).await?;
        copy.finish().await?;
        drop(conn);

        // Snapshots, as the ledger keeps them (whole fund state as JSON).
        for (fund_id, fund) in &chain.funds {
            let sequence = chain.sequences[&format!("fund/{fund_id}")];
            sqlx::query(
                "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) VALUES ('fund', $1, $2, $3, $4::json)",
            )
            .bind(fund_id)
            .bind(sequence)
            .bind(sequence / 100)
            .bind(serde_json::to_string(fund)?)
            .execute(&pool)
            .await?;
        }
        let events = chain.position;
        drop(chain);
        let fill_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for statement in
            ["VACUUM ANALYZE events", "VACUUM ANALYZE client_ids", "VACUUM ANALYZE snapshots", "CHECKPOINT"]
        {
            sqlx::raw_sql(statement).execute(&pool).await?;
        }
        let size: String =
            sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('events'))").fetch_one(&pool).await?;
        pool.close().await;
        self.progress(format!(
            "big store: {events} events written in {fill_secs:.1} s by COPY (+{:.1} s VACUUM ANALYZE, CHECKPOINT); events table {size}",
            started.elapsed().as_secs_f64()
        ));
        self.report.insert(
            "big_store".into(),
            json!({"events": events, "fill_secs": fill_secs, "events_table_size": size, "bulk_expenses_per_fund": bulk / FUNDS as u64,
                   "history_funds": history.iter().map(|(h, f, w)| json!({"events": h, "fund": f, "wijk": w})).collect::<Vec<_>>()}),
        );
        Ok(BigStore { url, events, history })
    }
}

// ---------------------------------------------------------------------------
// Scenarios 6, 3, 4, 2 and 5 over the big store
// ---------------------------------------------------------------------------

impl Bench {
    async fn scenario_verify(&mut self, big: &BigStore) -> anyhow::Result<()> {
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let (mut rates, mut peak, mut cpu, mut pg_cpu) = (Vec::new(), 0, Vec::new(), Vec::new());
        for run in 0..self.cfg.runs {
            let r = run_child(
                &["verify", "--database", &big.url],
                &self.dir.path().join("verify.log"),
                &admin,
                "wb_bench_big",
            )
            .await?;
            anyhow::ensure!(r.out.contains(&format!("ok: {} events verified", big.events)), "verify said: {}", r.out);
            rates.push(big.events as f64 / r.secs);
            peak = peak.max(r.peak_kb);
            cpu.push(r.cpu * 1e6 / big.events as f64);
            pg_cpu.push(r.pg_cpu * 1e6 / big.events as f64);
            self.progress(format!(
                "verify run {}: {:.1} s, {:.0} events/s, peak RSS {:.0} MB, CPU {:.1} s (postgres {:.1} s)",
                run + 1,
                r.secs,
                big.events as f64 / r.secs,
                mb(r.peak_kb),
                r.cpu,
                r.pg_cpu
            ));
        }
        admin.close().await;
        let s = spread(&rates);
        self.say("");
        self.say(format!(
            "6. VERIFY: `wijkbudget verify` (child process) over {} hash-chained events in PostgreSQL, 1 process, read-only; median [min-max] over {} runs",
            big.events, s.runs
        ));
        self.say(format!(
            "   events/s {}   ({} s)   peak RSS {:.0} MB   CPU per event: verify {} us, postgres {} us",
            show(s, 0),
            num(big.events as f64 / s.median, 1),
            mb(peak),
            num(spread(&cpu).median, 1),
            num(spread(&pg_cpu).median, 1)
        ));
        self.report.insert(
            "6_verify".into(),
            json!({"events": big.events, "events_per_s": s, "peak_rss_mb": mb(peak),
                   "cpu_us_per_event": {"verify": spread(&cpu), "postgres": spread(&pg_cpu)}}),
        );
        self.memory.push((format!("`wijkbudget verify` over {} events", big.events), peak, String::new()));
        Ok(())
    }

    async fn scenario_rebuild(&mut self, big: &BigStore) -> anyhow::Result<()> {
        let pool = PgPoolOptions::new().max_connections(1).connect(&big.url).await?;
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let mut stream_rates = Vec::new();
        let mut rebuild_rates = Vec::new();
        let (mut peak, mut cpu, mut pg_cpu) = (0, Vec::new(), Vec::new());
        let runs = self.cfg.runs.max(self.cfg.rebuild_runs);
        for run in 0..runs {
            if run < self.cfg.runs {
                // Raw streaming: every column of every event, in position order, decoded but not parsed.
                let started = Instant::now();
                let mut rows = sqlx::query(
                    "SELECT position, event_id, recorded_at, aggregate_type, aggregate_id, sequence, event_type, event_version, \
                     payload::text AS payload, metadata::text AS metadata, hash FROM events ORDER BY position",
                )
                .fetch(&pool);
                let (mut n, mut bytes) = (0i64, 0usize);
                while let Some(row) = rows.try_next().await? {
                    let _: i64 = row.try_get(0)?;
                    let _: chrono::DateTime<Utc> = row.try_get(2)?;
                    let _: i64 = row.try_get(5)?;
                    for i in [1usize, 3, 4, 6, 7, 8, 9, 10] {
                        bytes += row.try_get::<&str, _>(i)?.len();
                    }
                    n += 1;
                }
                drop(rows);
                anyhow::ensure!(n == big.events, "streamed {n} of {} events", big.events);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                stream_rates.push(rate);
                self.progress(format!(
                    "raw stream run {}: {rate:.0} rows/s ({:.0} MB of text)",
                    run + 1,
                    bytes as f64 / 1e6
                ));
            }
            if run < self.cfg.rebuild_runs {
                let r = run_child(
                    &["rebuild", "--database", &big.url],
                    &self.dir.path().join("rebuild.log"),
                    &admin,
                    "wb_bench_big",
                )
                .await?;
                anyhow::ensure!(r.out.contains(&format!("from {} events", big.events)), "rebuild said: {}", r.out);
                let rate = big.events as f64 / r.secs;
                rebuild_rates.push(rate);
                peak = peak.max(r.peak_kb);
                cpu.push(r.cpu * 1e6 / big.events as f64);
                pg_cpu.push(r.pg_cpu * 1e6 / big.events as f64);
                self.progress(format!(
                    "rebuild run {}: {:.1} s, {rate:.0} events/s, peak RSS {:.0} MB, CPU {:.1} s (postgres {:.1} s)",
                    run + 1,
                    r.secs,
                    mb(r.peak_kb),
                    r.cpu,
                    r.pg_cpu
                ));
            }
        }
        admin.close().await;
        for table in ["rm_wijken", "rm_funds", "rm_balances", "rm_postings", "rm_expenses"] {
            sqlx::raw_sql(&format!("VACUUM ANALYZE {table}")).execute(&pool).await?;
        }
        sqlx::raw_sql("CHECKPOINT").execute(&pool).await?;
        let postings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rm_postings").fetch_one(&pool).await?;
        pool.close().await;
        let (stream, rebuild) = (spread(&stream_rates), spread(&rebuild_rates));
        let share = rebuild.median / stream.median;
        self.say("");
        self.say(format!(
            "3. REBUILD: `wijkbudget rebuild` (child process: reset + Projector::catch_up, batches of {} events per transaction, {postings} postings written) \
             over {} events, vs streaming the same rows (SELECT all columns ORDER BY position, one sqlx stream, text decoded, JSON not parsed); \
             PostgreSQL synchronous_commit=on, 1 client; median [min-max]",
            wijkbudget::projections::REBUILD_BATCH,
            big.events
        ));
        self.say(format!("   raw streaming            {:>28} events/s  ({} runs)", show(stream, 0), stream.runs));
        self.say(format!(
            "   rebuild                  {:>28} events/s  ({} runs; {} s each)   = {:.1}% of raw streaming",
            show(rebuild, 0),
            rebuild.runs,
            num(big.events as f64 / rebuild.median, 1),
            share * 100.0
        ));
        self.say(format!(
            "   per event: {} us wall, of which CPU {} us in the projector and {} us in its PostgreSQL backends; peak RSS {:.0} MB",
            num(1e6 / rebuild.median, 0),
            num(spread(&cpu).median, 0),
            num(spread(&pg_cpu).median, 0),
            mb(peak)
        ));
        self.report.insert(
            "3_rebuild".into(),
            json!({"events": big.events, "raw_stream_events_per_s": stream, "rebuild_events_per_s": rebuild, "share_of_raw": share,
                   "rebuild_peak_rss_mb": mb(peak), "postings": postings,
                   "cpu_us_per_event": {"projector": spread(&cpu), "postgres": spread(&pg_cpu)}}),
        );
        self.memory.push((format!("`wijkbudget rebuild` over {} events", big.events), peak, String::new()));
        self.target("rebuild vs raw row streaming", ">= 50%", format!("{:.1}%", share * 100.0), Some(share >= 0.5));
        Ok(())
    }

    /// Scenarios 4 (queries, idle and under write load) and 2 (history growth), on one server over the big store.
    async fn scenario_big_server(&mut self, big: &BigStore) -> anyhow::Result<()> {
        let cfg = self.cfg.clone();
        let auth = self.finance_token(&big.url).await?;
        let server = Server::start(&big.url, self.dir.path().join("serve-big.log")).await?;
        let waited = wait_for_start_up_verification(server.addr, &auth).await?;
        self.progress(format!("server's start-up verification done after {waited:.1} s"));
        let mut http = Http::new(server.addr);
        let rss_start = server.kb("VmRSS");
        let (hmax, hfund, hwijk) = big.history.iter().max_by_key(|h| h.0).cloned().context("no history fund")?;
        let mid = big.events / 2;
        let light: Vec<(String, String)> = vec![
            ("remaining budget: GET /wijken/wijk-3/budget".into(), "/api/v1/wijken/wijk-3/budget".into()),
            (
                format!("audit trail of {hwijk} ({hmax} events), first page of 100"),
                format!("/api/v1/wijken/{hwijk}/audit-trail?limit=100"),
            ),
            (
                format!("audit trail of {hwijk}, page of 100 after position {mid}"),
                format!("/api/v1/wijken/{hwijk}/audit-trail?limit=100&after={mid}"),
            ),
            (
                format!("amendment spending: GET /funds/{AMENDMENT} ({AMENDMENT_EXPENSES} expenses)"),
                format!("/api/v1/funds/{AMENDMENT}"),
            ),
        ];
        // GET /funds/{id} pages its expenses; the largest page, deep in the fund.
        let heavy: Vec<(String, String)> = vec![(
            format!("fund spending: GET /funds/{hfund} ({} expenses), page of 1000 after position {mid}", hmax - 2),
            format!("/api/v1/funds/{hfund}?limit=1000&after={mid}"),
        )];
        for (_, path) in light.iter().chain(&heavy) {
            let (status, body) = http.get(path, &auth).await?;
            anyhow::ensure!(
                status == 200,
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }

        // Fresh funds for the write load, so it is scenario 1's workload at 8 clients.
        let live = names("live", FUNDS);
        let wijken = names("wijk", WIJKEN);
        setup_over_http(server.addr, &auth, &wijken, &live).await?;
        let load = WriteLoadSpec {
            addr: server.addr,
            auth: auth.clone(),
            funds: live.clone(),
            wijken: wijken.clone(),
            clients: 8,
        };

        server.reset_peak();
        let (light_stats, light_rate) = query_pass(&cfg, &load, &light, cfg.query_samples, "ql", None).await?;
        let light_peak = server.kb("VmHWM");
        self.progress(format!("light queries done; writers ran at {light_rate:.0} commands/s while loaded"));
        server.reset_peak();
        let (heavy_stats, heavy_rate) = query_pass(&cfg, &load, &heavy, 50, "qh", None).await?;
        let heavy_peak = server.kb("VmHWM");
        self.progress(format!("heavy query done; writers ran at {heavy_rate:.0} commands/s while loaded"));
        // The web app's main pages, as a signed-in finance officer sees them.
        let token = auth.trim_start_matches("Bearer ").to_string();
        let cookie = web_session(server.addr, &token).await?;
        let pages: Vec<(String, String)> = vec![
            ("page Mijn wijk: /wijken/wijk-3".into(), "/wijken/wijk-3".into()),
            ("page Fondsen: /fondsen".into(), "/fondsen".into()),
            (format!("page Amendement: /fondsen/{AMENDMENT}"), format!("/fondsen/{AMENDMENT}")),
            (format!("page Audittrail of {hwijk}, first page"), format!("/audittrail?wijk={hwijk}")),
            (format!("page Audittrail of {hwijk}, after position {mid}"), format!("/audittrail?wijk={hwijk}&na={mid}")),
            ("page Jaarafsluiting: /jaarafsluiting".into(), "/jaarafsluiting".into()),
            ("page Boeken: /boeken".into(), "/boeken".into()),
        ];
        let (page_stats, page_rate) = query_pass(&cfg, &load, &pages, cfg.query_samples, "qp", Some(cookie)).await?;
        self.progress(format!("pages done; writers ran at {page_rate:.0} commands/s while loaded"));

        // Scenario 2: history growth, one client, on a fresh server process so
        // the queries' memory does not linger. Memory first, in ascending
        // order: a fund's first command loads its snapshot, and the allocator
        // keeps what it got, so ascending order keeps each peak its own.
        let rss_end = server.kb("VmRSS");
        server.stop().await?;
        let server = Server::start(&big.url, self.dir.path().join("serve-big-2.log")).await?;
        wait_for_start_up_verification(server.addr, &auth).await?;
        let rss_fresh = server.kb("VmRSS");
        let mut clients: Vec<(u64, ExpenseClient)> = big
            .history
            .iter()
            .map(|(h, f, w)| {
                (
                    *h,
                    ExpenseClient::new(
                        server.addr,
                        &auth,
                        &Arc::new(vec![f.clone()]),
                        &Arc::new(vec![w.clone()]),
                        format!("g{h}"),
                    ),
                )
            })
            .collect();
        clients.sort_by_key(|c| c.0);
        let mut peaks: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (h, client) in clients.iter_mut() {
            server.reset_peak();
            for _ in 0..2 {
                client.call().await?;
            }
            peaks.insert(*h, (server.kb("VmHWM"), server.kb("VmRSS")));
        }
        let mut p50s: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut p90s: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut ratios: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for run in 0..cfg.runs {
            let mut base = f64::NAN;
            for (i, (h, client)) in clients.iter_mut().enumerate() {
                let mut lat = Vec::new();
                let started = Instant::now();
                while lat.len() < cfg.history_commands
                    && (lat.len() < 5 || started.elapsed().as_secs_f64() < cfg.history_secs)
                {
                    let s = Instant::now();
                    client.call().await?;
                    lat.push(s.elapsed().as_micros() as u64);
                }
                lat.sort_unstable();
                let p50 = pct_ms(&lat, 0.5);
                if i == 0 {
                    base = p50;
                }
                p50s.entry(*h).or_default().push(p50);
                p90s.entry(*h).or_default().push(pct_ms(&lat, 0.9));
                ratios.entry(*h).or_default().push(p50 / base);
                *counts.entry(*h).or_default() += lat.len();
            }
            self.progress(format!("history growth run {} done", run + 1));
        }
        server.stop().await?;

        // Print scenario 4.
        self.say("");
        self.say(format!(
            "4. QUERIES at {} events (read models rebuilt, VACUUM ANALYZEd), over HTTP, 1 sequential client on a keep-alive connection; \
             under load = scenario 1's write load at 8 clients on {FUNDS} fresh funds of the same store ({} commands/s during the queries); \
             per run up to {} requests or {:.1} s per query; median [min-max] over {} runs",
            big.events,
            num(light_rate, 0),
            cfg.query_samples,
            cfg.query_secs,
            cfg.runs
        ));
        self.say(format!(
            "   {:<62} {:>22} {:>24} {:>22} {:>24} {:>9}",
            "query", "idle p50 ms", "idle p99 ms", "loaded p50 ms", "loaded p99 ms", "requests"
        ));
        let mut json_rows = Vec::new();
        for q in light_stats.iter().chain(&heavy_stats).chain(&page_stats) {
            self.say(format!(
                "   {:<62} {:>22} {:>24} {:>22} {:>24} {:>9}",
                q.name,
                show(spread(&q.p50[0]), 2),
                show(spread(&q.p99[0]), 2),
                show(spread(&q.p50[1]), 2),
                show(spread(&q.p99[1]), 2),
                format!("{}/{}", q.n[0], q.n[1])
            ));
            json_rows.push(json!({"query": q.name, "path": q.path,
                                  "idle": {"p50_ms": spread(&q.p50[0]), "p99_ms": spread(&q.p99[0]), "requests": q.n[0]},
                                  "under_load": {"p50_ms": spread(&q.p50[1]), "p99_ms": spread(&q.p99[1]), "requests": q.n[1]}}));
        }
        self.say("   (p99 of a run is its 2nd-slowest request at 200 requests; the page of 1000 expenses runs up to 50 times per run)");
        let budget_p99 = spread(&light_stats[0].p99[1]);
        self.target(
            &format!("remaining-budget p99 at {} events, under write load", big.events),
            "< 5 ms",
            format!("{} ms", show(budget_p99, 2)),
            Some(budget_p99.median < 5.0),
        );
        self.report.insert(
            "4_queries".into(),
            json!({"events": big.events, "rows": json_rows,
                   "write_load_commands_per_s": {"light_queries": light_rate, "heavy_query": heavy_rate},
                   "server_peak_rss_mb": {"light_queries": mb(light_peak), "heavy_query": mb(heavy_peak)}}),
        );

        // Print scenario 2.
        self.say("");
        self.say(format!(
            "2. HISTORY GROWTH: RecordExpense over HTTP on ONE wijk in ONE fund whose stream holds N events (+ the commands of earlier runs); \
             the ledger snapshots a fund every 100 events; 1 client; PostgreSQL synchronous_commit=on; store of {} events; \
             per run up to {} commands or {:.0} s (at least 5); median [min-max] over {} interleaved runs",
            big.events, cfg.history_commands, cfg.history_secs, cfg.runs
        ));
        self.say(format!(
            "   {:<10} {:>26} {:>26} {:>26} {:>9} {:>22}",
            "history", "p50 ms", "p90 ms", "x smallest (per run)", "commands", "server peak RSS MB"
        ));
        let mut json_rows = Vec::new();
        let mut last = None;
        for (h, p50) in &p50s {
            let r = spread(&ratios[h]);
            last = Some((*h, r));
            self.say(format!(
                "   {:<10} {:>26} {:>26} {:>26} {:>9} {:>22.0}",
                h,
                show(spread(p50), 2),
                show(spread(&p90s[h]), 2),
                show(r, 2),
                counts[h],
                mb(peaks[h].0)
            ));
            json_rows.push(json!({"history_events": h, "p50_ms": spread(p50), "p90_ms": spread(&p90s[h]), "ratio_to_smallest": r,
                                  "commands": counts[h], "server_peak_rss_mb": mb(peaks[h].0), "server_rss_after_mb": mb(peaks[h].1)}));
        }
        if let (Some(first), Some((h, r))) = (p50s.keys().next(), last) {
            self.target(
                &format!("history growth {first} -> {h} events (p50 per command)"),
                "<= 1.2x",
                format!("{}x", show(r, 2)),
                Some(r.median <= 1.2),
            );
        }
        self.report.insert(
            "2_history_growth".into(),
            json!({"rows": json_rows, "max_commands_per_run": cfg.history_commands, "secs_per_run": cfg.history_secs}),
        );

        self.memory.push((
            format!("server, light queries + write load at {} events", big.events),
            light_peak,
            format!("RSS {:.0} MB after start", mb(rss_start)),
        ));
        self.memory.push((
            format!("server, pages of 1000 of GET /funds/{hfund} ({} expenses) + write load", hmax - 2),
            heavy_peak,
            String::new(),
        ));
        for (h, (peak, rss)) in &peaks {
            self.memory.push((
                format!("server, first commands on a fund of {h} events"),
                *peak,
                format!("RSS {:.0} MB after", mb(*rss)),
            ));
        }
        self.report.insert(
            "big_server_rss_mb".into(),
            json!({"after_start": mb(rss_start), "after_queries": mb(rss_end), "second_server_after_start": mb(rss_fresh)}),
        );
        Ok(())
    }
}

struct WriteLoadSpec {
    addr: SocketAddr,
    auth: Arc<String>,
    funds: Arc<Vec<String>>,
    wijken: Arc<Vec<String>>,
    clients: usize,
}

struct QueryStat {
    name: String,
    path: String,
    /// [idle, under load]
    p50: [Vec<f64>; 2],
    p99: [Vec<f64>; 2],
    n: [usize; 2],
}

/// Runs every query `cfg.runs` times idle and then as often under write
/// load; returns the statistics and the write rate during the loaded part.
async fn query_pass(
    cfg: &Config,
    load: &WriteLoadSpec,
    queries: &[(String, String)],
    max_n: usize,
    tag: &str,
    cookie: Option<String>,
) -> anyhow::Result<(Vec<QueryStat>, f64)> {
    let mut stats: Vec<QueryStat> = queries
        .iter()
        .map(|(name, path)| QueryStat {
            name: name.clone(),
            path: path.clone(),
            p50: Default::default(),
            p99: Default::default(),
            n: [0; 2],
        })
        .collect();
    let mut http = Http::new(load.addr);
    http.cookie = cookie;
    let mut rate = f64::NAN;
    for loaded in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicU64::new(0));
        let mut writers = Vec::new();
        if loaded {
            for i in 0..load.clients {
                let mut client =
                    ExpenseClient::new(load.addr, &load.auth, &load.funds, &load.wijken, format!("{tag}{i}"));
                client.completed = Some(completed.clone());
                let stop = stop.clone();
                writers.push(tokio::spawn(async move {
                    let mut errors = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if client.call().await.is_err() {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    errors
                }));
            }
            tokio::time::sleep(Duration::from_secs_f64(cfg.warmup_secs.max(1.0))).await;
        }
        let (t0, c0) = (Instant::now(), completed.load(Ordering::Relaxed));
        for _ in 0..cfg.runs {
            for (q, (_, path)) in queries.iter().enumerate() {
                let mut lat = Vec::new();
                let started = Instant::now();
                while lat.len() < max_n
                    && (lat.len() < 20.min(max_n) || started.elapsed().as_secs_f64() < cfg.query_secs)
                {
                    let s = Instant::now();
                    let (status, _) = http.get(path, &load.auth).await?;
                    anyhow::ensure!(status == 200, "GET {path} answered {status}");
                    lat.push(s.elapsed().as_micros() as u64);
                }
                lat.sort_unstable();
                let k = usize::from(loaded);
                stats[q].p50[k].push(pct_ms(&lat, 0.5));
                stats[q].p99[k].push(pct_ms(&lat, 0.99));
                stats[q].n[k] += lat.len();
            }
        }
        if loaded {
            rate = (completed.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            let mut errors = 0;
            for w in writers {
                errors += w.await?;
            }
            anyhow::ensure!(errors == 0, "{errors} background writes failed");
        }
    }
    Ok((stats, rate))
}

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
