//! Scenario 1: write throughput. RecordExpense commands over HTTP against
//! PostgreSQL and SQLite, beside raw single-row INSERTs and plain cqrs-es +
//! postgres-es doing the same commands, at each client count.

use super::*;
use crate::baselines::{
    raw_sqlite_pool, sample_event_json, CqrsClient, PlainCommand, PlainFund, RawClient, RawSqliteClient,
    BASELINE_POOL_MAX, POSTGRES_ES_SCHEMA,
};

pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

pub(crate) fn expense_json(id: &str, wijk: &str, fund: &str, cents: u64, n: u64) -> String {
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
pub(crate) struct ExpenseClient {
    pub(crate) http: Http,
    pub(crate) auth: Arc<String>,
    pub(crate) funds: Arc<Vec<String>>,
    pub(crate) wijken: Arc<Vec<String>>,
    pub(crate) tag: String,
    pub(crate) n: u64,
    pub(crate) rng: XorShift,
    pub(crate) completed: Option<Arc<AtomicU64>>,
}

impl ExpenseClient {
    pub(crate) fn new(
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

// ---------------------------------------------------------------------------
// Scenario 1: write throughput
// ---------------------------------------------------------------------------

/// The server's group committer during one run, from `GET /ready`'s
/// `appends` before and after it (warm-up included, as for the CPU).
/// Appends are serialised, so `busy_us` per command is the time a command
/// holds the one append path, and 1 s over it the write rate's ceiling.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct AppendUse {
    pub(crate) commands_per_group: f64,
    pub(crate) busy_us_per_command: f64,
    pub(crate) database_us_per_command: f64,
    /// The committer's busy time as a share of the run's wall time.
    pub(crate) busy_percent: f64,
}

/// `GET /ready`'s `appends`: groups, commands, busy_us, database_us; none
/// from a server too old to show them (`WIJKBUDGET_BENCH_BIN` may be one).
async fn append_counters(addr: SocketAddr) -> anyhow::Result<Option<[f64; 4]>> {
    let (status, body) = Http::new(addr).request("GET", "/api/v1/ready", &[], b"").await?;
    anyhow::ensure!(status == 200, "GET /ready answered {status}");
    let ready: Value = serde_json::from_slice(&body)?;
    let field = |name: &str| ready["appends"][name].as_f64();
    Ok((|| Some([field("groups")?, field("commands")?, field("busy_us")?, field("database_us")?]))())
}

/// Runs `load` and reads what the server's group committer did meanwhile.
async fn with_appends<F: Future<Output = anyhow::Result<Load>>>(
    addr: SocketAddr,
    load: F,
) -> anyhow::Result<(Load, Option<AppendUse>)> {
    let before = append_counters(addr).await?;
    let started = Instant::now();
    let load = load.await?;
    let wall_us = started.elapsed().as_micros() as f64;
    let (Some(before), Some(after)) = (before, append_counters(addr).await?) else { return Ok((load, None)) };
    let [groups, commands, busy, database] = std::array::from_fn(|i| after[i] - before[i]);
    let commands = commands.max(1.0);
    let appends = AppendUse {
        commands_per_group: commands / groups.max(1.0),
        busy_us_per_command: busy / commands,
        database_us_per_command: database / commands,
        busy_percent: 100.0 * busy / wall_us,
    };
    Ok((load, Some(appends)))
}

#[derive(Default)]
pub(crate) struct WriteRow {
    pub(crate) cpu: Vec<CpuUse>,
    pub(crate) appends: Vec<AppendUse>,
    pub(crate) rate: Vec<f64>,
    pub(crate) p50: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl WriteRow {
    pub(crate) fn add(&mut self, load: &Load) {
        self.rate.push(load.rate());
        self.p50.push(pct_ms(&load.lat_us, 0.50));
        self.p99.push(pct_ms(&load.lat_us, 0.99));
        self.errors += load.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&load.first_error);
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "commands_per_s": spread(&self.rate), "p50_ms": spread(&self.p50), "p99_ms": spread(&self.p99),
            "per_run_commands_per_s": self.rate, "errors": self.errors, "first_error": self.first_error,
            "cpu_per_run": self.cpu, "appends_per_run": self.appends,
        })
    }
}

impl Bench {
    pub(crate) async fn scenario_writes(&mut self) -> anyhow::Result<()> {
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
            .max_connections(cfg.clients.iter().copied().max().unwrap_or(1).min(BASELINE_POOL_MAX) as u32)
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
            let connections = c.min(BASELINE_POOL_MAX) as u32;
            let raw_pool = PgPoolOptions::new()
                .max_connections(connections)
                .min_connections(connections)
                .connect(&raw_url)
                .await?;
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
                            let (load, appends) =
                                with_appends(server.addr, async { Ok(run_load(clients, warm, window).await?.0) })
                                    .await?;
                            rows.entry((c, name)).or_default().appends.extend(appends);
                            load
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
            let raw_sqlite = raw_sqlite_pool(&self.dir.path().join("raw.db")).await?;
            for &c in &cfg.clients {
                for run in 0..cfg.runs {
                    // The raw durable SQLite transaction, on the same disk, just before.
                    let clients =
                        (0..c).map(|_| RawSqliteClient { pool: raw_sqlite.clone(), row: sample_row.clone() }).collect();
                    let probe = CpuProbe::start(&admin, "-", None).await;
                    let load = run_load(clients, warm, window).await?.0;
                    let cpu = probe.finish(&admin, load.total_ops).await;
                    self.progress(format!(
                        "{c} clients run {}: raw sqlite {:.0}/s, p50 {:.2} ms",
                        run + 1,
                        load.rate(),
                        pct_ms(&load.lat_us, 0.5)
                    ));
                    let row = rows.entry((c, "raw INSERT, SQLite FULL")).or_default();
                    row.add(&load);
                    row.cpu.push(cpu);
                    let clients = (0..c)
                        .map(|i| {
                            ExpenseClient::new(server.addr, &sqlite_auth, &funds, &wijken, format!("s{c}r{run}x{i}"))
                        })
                        .collect();
                    let probe = CpuProbe::start(&admin, "-", Some(server.pid)).await;
                    let (load, appends) =
                        with_appends(server.addr, async { Ok(run_load(clients, warm, window).await?.0) }).await?;
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
                    row.appends.extend(appends);
                }
            }
            sqlite_peak = server.kb("VmHWM");
            server.stop().await?;
            raw_sqlite.close().await;
        }
        admin.close().await;

        // Print.
        self.say("");
        self.say(format!(
            "1. WRITE THROUGHPUT: RecordExpense commands, random fund x wijk over {FUNDS} funds x {WIJKEN} wijken, each with an Idempotency-Key; \
             median [min-max] over {} runs of {:.1} s after {:.1} s warm-up",
            cfg.runs, cfg.run_secs, cfg.warmup_secs
        ));
        let setting = |name: &str| settings[name].as_str().unwrap_or("?").to_string();
        // Claimed only when the server's settings make it true: a run with
        // durability off (to measure what the flush costs) says so.
        let durable = setting("synchronous_commit") == "on" && setting("fsync") == "on";
        self.say(format!(
            "   durability: PostgreSQL synchronous_commit={} fsync={} wal_sync_method={} ({}); SQLite WAL synchronous=FULL",
            setting("synchronous_commit"),
            setting("fsync"),
            setting("wal_sync_method"),
            if durable {
                "every command committed durably before its answer"
            } else {
                "NOT durable: commits are answered before they reach the disk"
            },
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
            "raw INSERT, SQLite FULL",
            "wijkbudget HTTP, SQLite",
        ];
        let mut json_rows = Vec::new();
        for &c in &cfg.clients {
            let raw_rate = rows.get(&(c, order[0])).map(|r| spread(&r.rate).median).unwrap_or(f64::NAN);
            let cqrs_rate = rows.get(&(c, order[1])).map(|r| spread(&r.rate).median).unwrap_or(f64::NAN);
            let raw_sqlite_rate = rows.get(&(c, order[3])).map(|r| spread(&r.rate).median).unwrap_or(f64::NAN);
            for name in order {
                let Some(row) = rows.get(&(c, name)) else { continue };
                let rate = spread(&row.rate);
                let (vs_raw, vs_cqrs) = match name {
                    "wijkbudget HTTP, PostgreSQL" => {
                        (show(spread(&ratio_raw[&c]), 2), show(spread(&ratio_cqrs[&c]), 2))
                    }
                    "raw INSERT (sqlx)" => ("1.00".into(), num(raw_rate / cqrs_rate, 2)),
                    // SQLite against SQLite's own raw transaction.
                    "raw INSERT, SQLite FULL" => ("1.00 (SQLite)".into(), num(rate.median / cqrs_rate, 2)),
                    "wijkbudget HTTP, SQLite" => {
                        (format!("{} (SQLite)", num(rate.median / raw_sqlite_rate, 2)), num(rate.median / cqrs_rate, 2))
                    }
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
        self.say(
            "   The one append path (the group committer, one group at a time), in µs per command (median over runs, from GET /ready's `appends`):",
        );
        self.say(format!(
            "   {:<30} {:>7} {:>10} {:>12} {:>12} {:>12} {:>12} {:>14}",
            "system", "clients", "per group", "busy", "database", "service", "busy share", "ceiling/s"
        ));
        for &c in &cfg.clients {
            for name in order {
                let Some(row) = rows.get(&(c, name)).filter(|row| !row.appends.is_empty()) else { continue };
                let med = |f: fn(&AppendUse) -> f64| spread(&row.appends.iter().map(f).collect::<Vec<_>>()).median;
                let busy = med(|a| a.busy_us_per_command);
                let database = med(|a| a.database_us_per_command);
                self.say(format!(
                    "   {:<30} {:>7} {:>10.1} {:>12.0} {:>12.0} {:>12.0} {:>11.0}% {:>14.0}",
                    name,
                    c,
                    med(|a| a.commands_per_group),
                    busy,
                    database,
                    busy - database,
                    med(|a| a.busy_percent),
                    1e6 / busy
                ));
            }
        }
        self.say(
            "   (busy: from taking a group off the queue to answering it; database: waiting for the store's answers, its work, commit and flush; \
             service: deciding, planning the projection, writing the message and answering; ceiling: 1 s / busy, the rate with the path never idle)",
        );
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
        // Issue 11's targets: the raw INSERT at 32 clients, plain cqrs-es at
        // every level, and SQLite's own raw transaction at 32 clients.
        if let Some(r) = ratio_raw.get(&32).map(|r| spread(r)) {
            self.target(
                "HTTP writes at 32 clients vs raw INSERTs",
                ">= 1.0x",
                format!("{}x", show(r, 2)),
                Some(r.median >= 1.0),
            );
        }
        for &c in &cfg.clients {
            if let Some(r) = ratio_cqrs.get(&c).map(|r| spread(r)) {
                self.target(
                    &format!("HTTP writes at {c} clients vs plain cqrs-es + postgres-es"),
                    "> 1.0x",
                    format!("{}x", show(r, 2)),
                    Some(r.median > 1.0),
                );
            }
        }
        let median = |c: usize, name: &str| rows.get(&(c, name)).map(|r| spread(&r.rate).median);
        if let (Some(ours), Some(raw)) = (median(32, "wijkbudget HTTP, SQLite"), median(32, "raw INSERT, SQLite FULL"))
        {
            self.target(
                "HTTP writes at 32 clients on SQLite vs raw durable SQLite transactions",
                ">= 1.0x",
                format!("{}x", num(ours / raw, 2)),
                Some(ours >= raw),
            );
        }
        Ok(())
    }
}
