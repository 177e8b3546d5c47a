//! The shared harness of the ledger benchmarks: configuration from the
//! environment, statistics, a minimal HTTP/1.1 client, child processes and
//! their CPU and memory, load generation, and the PostgreSQL databases.

use super::*;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Config {
    pub(crate) smoke: bool,
    pub(crate) postgres: String,
    pub(crate) events: u64,
    pub(crate) history: Vec<u64>,
    pub(crate) runs: usize,
    pub(crate) rebuild_runs: usize,
    pub(crate) run_secs: f64,
    pub(crate) warmup_secs: f64,
    pub(crate) clients: Vec<usize>,
    pub(crate) history_commands: usize,
    pub(crate) history_secs: f64,
    pub(crate) query_samples: usize,
    pub(crate) query_secs: f64,
    /// Rows of the import file of scenario 7.
    pub(crate) import_rows: usize,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) systems: Vec<String>,
    pub(crate) keep: bool,
    /// Connect to PostgreSQL over TLS (`WIJKBUDGET_BENCH_TLS=1`); off by default.
    pub(crate) tls: bool,
}

pub(crate) fn env_list(name: &str, default: &str) -> anyhow::Result<Vec<u64>> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .map(|s| s.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{name}=`{text}` is not a comma list of whole numbers"))
}

pub(crate) fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
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
    pub(crate) fn url_options(&self) -> &'static str {
        if self.tls {
            ""
        } else {
            "?sslmode=disable"
        }
    }

    pub(crate) fn from_env() -> anyhow::Result<Self> {
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
            clients: env_list("WIJKBUDGET_BENCH_CLIENTS", if smoke { "1,8,32" } else { "1,8,32,128,512" })?
                .into_iter()
                .map(|c| c as usize)
                .collect(),
            history_commands: env_num("WIJKBUDGET_BENCH_HISTORY_COMMANDS", if smoke { 3 } else { 20 })?,
            history_secs: env_num("WIJKBUDGET_BENCH_HISTORY_SECS", if smoke { 0.5 } else { 5.0 })?,
            query_samples: if smoke { 10 } else { 200 },
            query_secs: if smoke { 0.2 } else { 1.0 },
            import_rows: env_num("WIJKBUDGET_BENCH_IMPORT_ROWS", if smoke { 300 } else { 100_000 })?,
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

    pub(crate) fn wants(&self, part: &str) -> bool {
        self.only.as_ref().map_or(true, |only| only.iter().any(|p| p == part))
    }
}

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

/// Median and range over runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) runs: usize,
}

pub(crate) fn spread(values: &[f64]) -> Spread {
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
pub(crate) fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

pub(crate) fn num(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x.abs() >= 10_000.0 {
        format!("{:.0}", x)
    } else {
        format!("{:.*}", decimals, x)
    }
}

pub(crate) fn show(s: Spread, decimals: usize) -> String {
    if s.runs <= 1 {
        return num(s.median, decimals);
    }
    format!("{} [{}-{}]", num(s.median, decimals), num(s.min, decimals), num(s.max, decimals))
}

// ---------------------------------------------------------------------------
// Child processes: the server, rebuild and verify
// ---------------------------------------------------------------------------

/// A value from /proc/PID/status in kB (VmHWM, VmRSS).
pub(crate) fn proc_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub(crate) fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

pub(crate) struct Server {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) async fn start(db_url: &str, log: PathBuf) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let file = std::fs::File::create(&log)?;
        let mut child = tokio::process::Command::new(bin())
            // Room for scenario 1's 512 keep-alive clients.
            .args(["serve", "--database", db_url, "--listen", &addr.to_string(), "--max-connections", "1024"])
            .env_remove("RUST_LOG")
            .env_remove("DATABASE_URL")
            .env_remove("WIJKBUDGET_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} serve", bin()))?;
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

    pub(crate) fn kb(&self, key: &str) -> u64 {
        proc_kb(self.pid, key).unwrap_or(0)
    }

    /// Resets VmHWM to the current RSS (Linux `clear_refs` 5), so a peak
    /// belongs to the phase that follows.
    pub(crate) fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
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
pub(crate) async fn wait_for_start_up_verification(addr: SocketAddr, auth: &str) -> anyhow::Result<f64> {
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

pub(crate) struct ChildRun {
    pub(crate) secs: f64,
    pub(crate) peak_kb: u64,
    /// CPU seconds of the child itself (last sample before it exited).
    pub(crate) cpu: f64,
    /// CPU seconds of the PostgreSQL backends serving it (sampled every 100 ms).
    pub(crate) pg_cpu: f64,
    pub(crate) out: String,
}

/// Runs `wijkbudget ARGS` to completion, sampling its peak RSS, its CPU and
/// that of the PostgreSQL backends connected to `database`.
pub(crate) async fn run_child(args: &[&str], log: &Path, admin: &PgPool, database: &str) -> anyhow::Result<ChildRun> {
    let file = std::fs::File::create(log)?;
    let before = backends_of(admin, database).await;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", bin(), args.join(" ")))?;
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
pub(crate) fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based), in clock ticks of 1/100 s.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// (busy, total) clock ticks of the whole machine.
pub(crate) fn machine_ticks() -> (u64, u64) {
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
pub(crate) struct CpuProbe {
    pub(crate) database: String,
    pub(crate) server: Option<u32>,
    pub(crate) bench: f64,
    pub(crate) server_cpu: f64,
    pub(crate) backends: HashMap<u32, f64>,
    pub(crate) machine: (u64, u64),
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CpuUse {
    pub(crate) bench_ms_per_command: f64,
    pub(crate) server_ms_per_command: f64,
    pub(crate) postgres_ms_per_command: f64,
    pub(crate) machine_busy_percent: f64,
}

pub(crate) async fn backends_of(admin: &PgPool, database: &str) -> HashMap<u32, f64> {
    let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_all(admin)
        .await
        .unwrap_or_default();
    pids.into_iter().filter_map(|p| Some((p as u32, proc_cpu_secs(p as u32)?))).collect()
}

impl CpuProbe {
    pub(crate) async fn start(admin: &PgPool, database: &str, server: Option<u32>) -> Self {
        Self {
            database: database.to_string(),
            server,
            bench: proc_cpu_secs(std::process::id()).unwrap_or(0.0),
            server_cpu: server.and_then(proc_cpu_secs).unwrap_or(0.0),
            backends: backends_of(admin, database).await,
            machine: machine_ticks(),
        }
    }

    pub(crate) async fn finish(self, admin: &PgPool, commands: u64) -> CpuUse {
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

pub(crate) trait Client: Send + 'static {
    fn call(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[derive(Debug, Default)]
pub(crate) struct Load {
    pub(crate) ops: u64,
    pub(crate) secs: f64,
    /// Sorted latencies in microseconds of the commands completed in the window.
    pub(crate) lat_us: Vec<u64>,
    /// Successful calls including warm-up and the tail after the window, for CPU per command.
    pub(crate) total_ops: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Load {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

/// Every client calls in a loop; only calls that complete inside the
/// measured window (after the warm-up) count.
pub(crate) async fn run_load<C: Client>(
    clients: Vec<C>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(Load, Vec<C>)> {
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

// ---------------------------------------------------------------------------
// PostgreSQL databases
// ---------------------------------------------------------------------------

pub(crate) struct Bench {
    pub(crate) cfg: Config,
    pub(crate) dbs: Vec<String>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) report: serde_json::Map<String, Value>,
    pub(crate) out: String,
    pub(crate) targets: Vec<[String; 4]>,
    /// (what, peak RSS in kB, note) for scenario 5.
    pub(crate) memory: Vec<(String, u64, String)>,
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Bench {
    pub(crate) fn admin(&self) -> String {
        format!("{}/postgres{}", self.cfg.postgres, self.cfg.url_options())
    }

    pub(crate) async fn create_db(&mut self, name: &str) -> anyhow::Result<String> {
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

    pub(crate) async fn drop_dbs(&mut self) -> anyhow::Result<()> {
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

    pub(crate) fn say(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.out.push_str(line.as_ref());
        self.out.push('\n');
    }

    pub(crate) fn progress(&self, line: impl AsRef<str>) {
        eprintln!("  .. {}  (load {})", line.as_ref(), loadavg());
    }

    pub(crate) fn target(&mut self, what: &str, wanted: &str, measured: String, met: Option<bool>) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "n/a",
        };
        self.targets.push([what.to_string(), wanted.to_string(), measured, met.to_string()]);
    }

    /// A token for a finance user, written straight into the store.
    pub(crate) async fn finance_token(&self, url: &str) -> anyhow::Result<Arc<String>> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        let token = create_token(&db, Role::Finance, &[], "bench").await?;
        db.close().await;
        Ok(Arc::new(format!("Bearer {token}")))
    }
}

pub(crate) fn names(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}-{i}")).collect())
}

/// Registers the wijken, establishes the funds and allocates each fund to each wijk, over HTTP.
pub(crate) async fn setup_over_http(
    addr: SocketAddr,
    auth: &str,
    wijken: &[String],
    funds: &[String],
) -> anyhow::Result<()> {
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

pub(crate) async fn pg_setting(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar::<_, String>(&format!("SHOW {name}")).fetch_one(pool).await.unwrap_or_else(|_| "?".into())
}
