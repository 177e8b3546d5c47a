//! Scenario 7: `wijkbudget import` of a spreadsheet of bookings (issue 13:
//! 100,000 rows within a few minutes), into an empty SQLite store and an
//! empty PostgreSQL database, then the same file again, which books
//! nothing. The import prints where its time went; that is what bounds it.

use super::*;

/// The file: nine wijken, one fund with an allocation to each, and
/// expenses spread over the wijken, as a year's books brought in at once.
fn write_import_file(path: &Path, rows: usize) -> anyhow::Result<()> {
    let columns: Vec<&str> = wijkbudget::import::rows::COLUMNS.iter().map(|c| c.0).collect();
    let mut out = csv::Writer::from_path(path)?;
    out.write_record(&columns)?;
    let written = std::cell::Cell::new(0);
    let mut row = |cells: &[(&str, String)]| -> anyhow::Result<()> {
        out.write_record(columns.iter().map(|c| cells.iter().find(|(k, _)| k == c).map_or("", |(_, v)| v.as_str())))?;
        written.set(written.get() + 1);
        Ok(())
    };
    let wijken: Vec<String> = (0..WIJKEN).map(|w| format!("wijk-{w}")).collect();
    for w in &wijken {
        row(&[("type", "wijk".into()), ("wijk_id", w.clone()), ("wijk_name", w.to_uppercase())])?;
    }
    let fund = || ("fund_id", "import-2022".to_string());
    row(&[
        ("type", "fund".into()),
        fund(),
        ("year", "2022".into()),
        ("kind", "begroting".into()),
        ("name", "Wijkbudgetten 2022".into()),
        ("amount", format!("{}.00", WIJKEN * 10_000_000)),
        ("decision", "Begroting 2022".into()),
        ("decided_on", "2021-11-12".into()),
        ("purpose", "Initiatieven van inwoners".into()),
    ])?;
    for w in &wijken {
        row(&[
            ("type", "allocation".into()),
            fund(),
            ("wijk_id", w.clone()),
            ("amount", "10000000.00".into()),
            ("booked_on", "2022-01-04".into()),
            ("reason", "Verdeling".into()),
        ])?;
    }
    let mut i = 0;
    while written.get() < rows {
        row(&[
            ("type", "expense".into()),
            fund(),
            ("expense_id", format!("imp-{i}")),
            ("wijk_id", wijken[i % WIJKEN].clone()),
            ("amount", format!("{}.{:02}", 10 + i % 90, i % 100)),
            ("initiative", format!("Initiatief {}", i % 50)),
            ("theme", "groen".into()),
            ("booked_on", format!("2022-{:02}-15", 1 + i % 12)),
            ("reference", format!("factuur {i}")),
        ])?;
        i += 1;
    }
    out.flush()?;
    Ok(())
}

/// The import's own account of where its time went (its last line on stderr).
fn steps(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("took ").map(str::to_string))
        .unwrap_or_default()
}

impl Bench {
    pub(crate) async fn scenario_import(&mut self) -> anyhow::Result<()> {
        let rows = self.cfg.import_rows;
        let file = self.dir.path().join("import.csv");
        write_import_file(&file, rows)?;
        let file = file.display().to_string();
        self.say("");
        self.say(format!(
            "7. IMPORT: `wijkbudget import` of {rows} rows (9 wijken, a fund, 9 allocations, expenses) into an empty store; \
             every row is checked on a scratch copy, then the copy's events are appended in one transaction"
        ));
        let admin = PgPoolOptions::new().max_connections(1).connect(&self.admin()).await?;
        let sqlite = format!("sqlite://{}", self.dir.path().join("import.db").display());
        let postgres = self.create_db("wb_bench_import").await?;
        let mut slowest: f64 = 0.0;
        let mut figures = Vec::new();
        for (store, url) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
            let log = self.dir.path().join("import.log");
            let first =
                run_child(&["import", "--file", &file, "--database", &url], &log, &admin, "wb_bench_import").await?;
            anyhow::ensure!(first.out.contains(&format!("{rows} rows booked")), "the import said: {}", first.out);
            let first_steps = steps(&log);
            let again =
                run_child(&["import", "--file", &file, "--database", &url], &log, &admin, "wb_bench_import").await?;
            anyhow::ensure!(again.out.contains("nothing booked"), "the second import said: {}", again.out);
            slowest = slowest.max(first.secs);
            self.say(format!(
                "   {store:<10} {:>7.1} s ({:>6.0} rows/s), peak RSS {:.0} MB, CPU {:.1} s (postgres {:.1} s); {}",
                first.secs,
                rows as f64 / first.secs,
                mb(first.peak_kb),
                first.cpu,
                first.pg_cpu,
                first_steps
            ));
            self.say(format!("   {store:<10} again: {:.1} s, nothing booked; {}", again.secs, steps(&log)));
            figures.push(json!({
                "store": store, "rows": rows, "secs": first.secs, "rows_per_sec": rows as f64 / first.secs,
                "peak_rss_mb": mb(first.peak_kb), "cpu_secs": first.cpu, "postgres_cpu_secs": first.pg_cpu,
                "steps": first_steps, "again_secs": again.secs,
            }));
            self.memory.push((
                format!("`wijkbudget import` of {rows} rows into {store}"),
                first.peak_kb,
                String::new(),
            ));
        }
        admin.close().await;
        self.report.insert("7_import".into(), Value::Array(figures));
        self.target(
            &format!("import of {rows} rows, slowest store (issue 13)"),
            "a few minutes (<= 300 s)",
            format!("{slowest:.0} s"),
            Some(slowest <= 300.0),
        );
        Ok(())
    }
}
