//! Scenario 6: `wijkbudget verify` over the big store.

use super::*;

impl Bench {
    pub(crate) async fn scenario_verify(&mut self, big: &BigStore) -> anyhow::Result<()> {
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
}
