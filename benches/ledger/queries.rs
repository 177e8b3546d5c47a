//! Scenario 4: queries and web pages over the big store, idle and under
//! write load; and scenario 2, history growth, which runs on the same
//! server.

use super::*;

impl Bench {
    /// Scenarios 4 (queries, idle and under write load) and 2 (history growth), on one server over the big store.
    pub(crate) async fn scenario_big_server(&mut self, big: &BigStore) -> anyhow::Result<()> {
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

pub(crate) struct WriteLoadSpec {
    pub(crate) addr: SocketAddr,
    pub(crate) auth: Arc<String>,
    pub(crate) funds: Arc<Vec<String>>,
    pub(crate) wijken: Arc<Vec<String>>,
    pub(crate) clients: usize,
}

pub(crate) struct QueryStat {
    pub(crate) name: String,
    pub(crate) path: String,
    /// [idle, under load]
    pub(crate) p50: [Vec<f64>; 2],
    pub(crate) p99: [Vec<f64>; 2],
    pub(crate) n: [usize; 2],
}

/// Runs every query `cfg.runs` times idle and then as often under write
/// load; returns the statistics and the write rate during the loaded part.
pub(crate) async fn query_pass(
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
