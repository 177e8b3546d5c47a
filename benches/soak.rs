//! The soak run (issue 12): a `serve` process driven with mixed reads and
//! writes for a while, 10 minutes unless told otherwise, reporting
//! throughput, p99, errors, and the server's memory and open file
//! descriptors at the start and the end, which must stay flat.
//!
//! ```sh
//! cargo bench --bench soak                                  # 10 minutes, SQLite
//! WIJKBUDGET_SOAK_SECS=180 WIJKBUDGET_SOAK_CLIENTS=8 cargo bench --bench soak
//! ```
//!
//! It is not a test: nothing here asserts on time. It prints its figures.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_wijkbudget");

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One request on its own connection: (status, body).
async fn request(addr: &str, method: &str, path: &str, token: &str, body: &str, key: Option<&str>) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return (0, String::new()) };
    let key = key.map(|k| format!("Idempotency-Key: {k}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
         Content-Type: application/json\r\n{key}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_num("WIJKBUDGET_SOAK_SECS", 600);
    let clients = env_num("WIJKBUDGET_SOAK_CLIENTS", 8) as usize;
    let dir = tempfile::tempdir()?;
    let url = std::env::var("WIJKBUDGET_SOAK_DATABASE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("soak.db").display()));
    let token = String::from_utf8(
        Command::new(BIN).args(["token", "create", "--role", "finance", "--database", &url]).output()?.stdout,
    )?
    .trim()
    .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--database", &url])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = server.id();
    while TcpStream::connect(&addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wijken = ["oost-1223", "centrum", "zuid"];
    for w in wijken {
        request(&addr, "POST", "/wijken", &token, &format!(r#"{{"wijk_id":"{w}","name":"{w}"}}"#), None).await;
    }
    let fund = r#"{"fund_id":"soak","year":2022,"kind":"begroting","name":"Soak","amount":"900000000.00",
        "decision":{"reference":"Soak","adopted_on":"2021-11-11"},"purpose":"Soak"}"#;
    request(&addr, "POST", "/funds", &token, fund, None).await;
    for w in wijken {
        let body = format!(r#"{{"wijk_id":"{w}","amount":"300000000.00","reason":"soak","booked_on":"2022-01-02"}}"#);
        request(&addr, "POST", "/funds/soak/allocations", &token, &body, Some(&format!("soak-{w}"))).await;
    }
    let (rss_start, fds_start) = (rss_kb(pid), open_fds(pid));
    println!("soak: {secs} s, {clients} clients (a write, then two reads, in turn), store {url}");
    println!("start: server RSS {} MB, open file descriptors {fds_start}", rss_start / 1024);

    let stop = Arc::new(AtomicBool::new(false));
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (addr, token, stop, done, errors, latencies) =
            (addr.clone(), token.clone(), stop.clone(), done.clone(), errors.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let wijk = wijken[(n as usize + c) % 3];
                let t = Instant::now();
                let (status, _) = match n % 3 {
                    0 => {
                        let body = format!(
                            r#"{{"expense_id":"s-{c}-{n}","wijk_id":"{wijk}","fund_id":"soak","amount":"1.00",
                            "initiative":"Soak","theme":"soak","booked_on":"2022-06-01","reference":"soak"}}"#
                        );
                        request(&addr, "POST", "/expenses", &token, &body, None).await
                    }
                    1 => request(&addr, "GET", &format!("/wijken/{wijk}/budget"), &token, "", None).await,
                    _ => request(&addr, "GET", &format!("/wijken/{wijk}/audit-trail?limit=50"), &token, "", None).await,
                };
                mine.push(t.elapsed().as_micros() as u32);
                if !(200..300).contains(&status) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    let mut minute = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if started.elapsed().as_secs() / 60 > minute {
            minute = started.elapsed().as_secs() / 60;
            println!(
                "  {minute} min: {} requests, {} errors, RSS {} MB, {} fds",
                done.load(Ordering::Relaxed),
                errors.load(Ordering::Relaxed),
                rss_kb(pid) / 1024,
                open_fds(pid)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_end, fds_end) = (rss_kb(pid), open_fds(pid));
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct =
        |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0);
    let total = done.load(Ordering::Relaxed);
    println!(
        "end: {total} requests in {elapsed:.0} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms; errors {}",
        total as f64 / elapsed,
        pct(0.5) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        errors.load(Ordering::Relaxed)
    );
    println!(
        "end: server RSS {} MB (start {} MB), open file descriptors {fds_end} (start {fds_start})",
        rss_end / 1024,
        rss_start / 1024
    );
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}
