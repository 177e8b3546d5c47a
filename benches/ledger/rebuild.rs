//! Scenario 3: `wijkbudget rebuild` of the big store, beside streaming the
//! same rows, and beside the floor under what it writes: the rows of the two
//! tables that grow with the log copied in and indexed by PostgreSQL alone.

use sqlx::{Connection, Executor, PgConnection};
use wijkbudget::projections::rebuild::COPIED;

use super::*;

impl Bench {
    pub(crate) async fn scenario_rebuild(&mut self, big: &BigStore) -> anyhow::Result<()> {
        let pool = PgPoolOptions::new().max_connections(1).connect(&big.url).await?;
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let mut stream_rates = Vec::new();
        let mut rebuild_rates = Vec::new();
        let (mut peak, mut cpu, mut pg_cpu) = (0, Vec::new(), Vec::new());
        let mut steps: [Vec<f64>; 3] = Default::default();
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
                // An older binary (WIJKBUDGET_BENCH_BIN) may not say its steps' times.
                let said = ["(load ", "keys and indexes ", "swap "].map(|step| seconds_after(&r.out, step));
                for (times, said) in steps.iter_mut().zip(said) {
                    times.extend(said);
                }
                self.progress(format!(
                    "rebuild run {}: {:.1} s, {rate:.0} events/s, peak RSS {:.0} MB, CPU {:.1} s (postgres {:.1} s); {}",
                    run + 1,
                    r.secs,
                    mb(r.peak_kb),
                    r.cpu,
                    r.pg_cpu,
                    r.out.trim()
                ));
            }
        }
        admin.close().await;
        let floor = floor(&big.url).await?;
        self.progress(format!(
            "floor: {} rows ({:.0} MB of COPY text) copied in {:.1} s, keyed and indexed in {:.1} s",
            floor.rows, floor.megabytes, floor.copy, floor.indexing
        ));
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
        let [load, indexing, swap] = steps.each_ref().map(|times| spread(times));
        if load.runs > 0 {
            self.say(format!(
                "   rebuild's steps: load {} s, keys and indexes {} s, swap {} s",
                show(load, 1),
                show(indexing, 1),
                show(swap, 1)
            ));
        }
        // The least a rebuild must do on this machine: stream the log, and
        // have PostgreSQL take in and index the rows it writes.
        let floor_secs = big.events as f64 / stream.median + floor.copy + floor.indexing;
        self.say(format!(
            "   floor: streaming the log {} s + copying in the {} rows of {} ({:.0} MB of COPY text, two connections at once) {} s \
             + their keys and indexes {} s = {} s = {} events/s = {:.1}% of raw streaming; the rebuild takes {:.1}x the floor",
            num(big.events as f64 / stream.median, 1),
            floor.rows,
            COPIED.join(" and "),
            floor.megabytes,
            num(floor.copy, 1),
            num(floor.indexing, 1),
            num(floor_secs, 1),
            num(big.events as f64 / floor_secs, 0),
            100.0 * big.events as f64 / floor_secs / stream.median,
            (big.events as f64 / rebuild.median) / floor_secs
        ));
        self.report.insert(
            "3_rebuild".into(),
            json!({"events": big.events, "raw_stream_events_per_s": stream, "rebuild_events_per_s": rebuild, "share_of_raw": share,
                   "rebuild_peak_rss_mb": mb(peak), "postings": postings,
                   "steps_s": {"load": load, "indexing": indexing, "swap": swap},
                   "floor_s": {"stream": big.events as f64 / stream.median, "copy": floor.copy, "indexing": floor.indexing,
                               "rows": floor.rows, "copy_text_mb": floor.megabytes},
                   "cpu_us_per_event": {"projector": spread(&cpu), "postgres": spread(&pg_cpu)}}),
        );
        self.memory.push((format!("`wijkbudget rebuild` over {} events", big.events), peak, String::new()));
        self.target("rebuild vs raw row streaming", ">= 50%", format!("{:.1}%", share * 100.0), Some(share >= 0.5));
        Ok(())
    }
}

/// The seconds a rebuild's output gives after `step`, as in `load 12.3 s`.
fn seconds_after(out: &str, step: &str) -> Option<f64> {
    let rest = &out[out.find(step)? + step.len()..];
    rest.split(' ').next()?.parse().ok()
}

/// What PostgreSQL alone takes to store and index the rows a rebuild copies.
struct Floor {
    rows: i64,
    megabytes: f64,
    copy: f64,
    indexing: f64,
}

/// Copies the rebuilt rows of [`COPIED`] out as COPY text into memory, then
/// times copying them into fresh tables without indexes (on two connections
/// at once, `synchronous_commit` off, as the rebuild does) and building the
/// live tables' keys and indexes on them, one after the other as the
/// rebuild does. Leaves nothing behind.
async fn floor(url: &str) -> anyhow::Result<Floor> {
    let mut conn = PgConnection::connect(url).await?;
    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut conn).await?;
    let mut texts = Vec::new();
    let mut rows = 0;
    for table in COPIED {
        let mut out = conn.copy_out_raw(&format!("COPY {table} TO STDOUT")).await?;
        let mut text = Vec::new();
        while let Some(chunk) = out.try_next().await? {
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as i64;
            text.extend_from_slice(&chunk);
        }
        texts.push(text);
    }
    let mut indexes = Vec::new();
    conn.execute("DROP SCHEMA IF EXISTS wb_floor CASCADE; CREATE SCHEMA wb_floor").await?;
    for table in COPIED {
        conn.execute(&*format!("CREATE TABLE wb_floor.{table} (LIKE {schema}.{table} INCLUDING DEFAULTS)")).await?;
        let definitions: Vec<String> =
            sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2")
                .bind(&schema)
                .bind(table)
                .fetch_all(&mut conn)
                .await?;
        let on = format!(" ON {schema}.{table} ");
        for definition in definitions {
            anyhow::ensure!(definition.contains(&on), "unexpected index definition `{definition}`");
            indexes.push(definition.replace(&on, &format!(" ON wb_floor.{table} ")));
        }
    }
    let megabytes = texts.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    let started = Instant::now();
    let copies = COPIED.iter().zip(texts).map(|(table, text)| async move {
        let mut conn = PgConnection::connect(url).await?;
        conn.execute("SET synchronous_commit = off").await?;
        let mut copy = conn.copy_in_raw(&format!("COPY wb_floor.{table} FROM STDIN")).await?;
        for chunk in text.chunks(1 << 20) {
            copy.send(chunk).await?;
        }
        copy.finish().await?;
        conn.close().await?;
        anyhow::Ok(())
    });
    futures::future::try_join_all(copies).await?;
    let copy = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for definition in &indexes {
        conn.execute(&**definition).await?;
    }
    let indexing = started.elapsed().as_secs_f64();
    conn.execute("DROP SCHEMA wb_floor CASCADE").await?;
    conn.close().await?;
    Ok(Floor { rows, megabytes, copy, indexing })
}
