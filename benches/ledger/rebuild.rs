//! Scenario 3: `wijkbudget rebuild` of the big store, beside streaming the
//! same rows.

use super::*;

impl Bench {
    pub(crate) async fn scenario_rebuild(&mut self, big: &BigStore) -> anyhow::Result<()> {
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
            "3. REBUILD: `wijkbudget rebuild` (child process: built beside the live read models and swapped in, batches of {} events per transaction, {postings} postings written) \
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
}
