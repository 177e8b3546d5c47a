//! The `wijkbudget` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::auth::{self, Role, ROLES};
use crate::demo;
use crate::projections::queries::{self, Period};
use crate::projections::{self, Projector};
use crate::service::Service;
use crate::store::{redact, Db, DEFAULT_DATABASE};

const DEMO_DATABASE: &str = "wijkbudget-demo.db";

#[derive(Debug, Parser)]
#[command(name = "wijkbudget", version, about = "Event-sourced ledger of wijkbudgetten")]
pub struct Cli {
    /// postgres://USER@HOST/DB or sqlite://PATH (default: sqlite://wijkbudget.db).
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Do not apply migrations, only check they were applied (for a
        /// service role with INSERT and SELECT on the log; see README).
        #[arg(long)]
        no_migrate: bool,
        /// The most connections served at once; more wait until one closes.
        #[arg(long, default_value_t = crate::service::MAX_CONNECTIONS)]
        max_connections: usize,
        /// Seconds a client has to send a request's headers before it is cut off.
        #[arg(long, default_value_t = crate::service::HEADER_READ_TIMEOUT.as_secs())]
        header_read_timeout: u64,
    },
    /// Apply the schema migrations and exit.
    Migrate,
    /// Recompute every read model from position zero of the log. On
    /// PostgreSQL a running service keeps serving the old read models until
    /// the new ones are swapped in; on SQLite stop the service first.
    Rebuild,
    /// Load the illustrative Hilversum 2021-2022 dataset into a fresh
    /// embedded store (wijkbudget-demo.db unless --database is given), print
    /// a token per role, and serve.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Print a report: the remaining budget per wijk (default), spending per
    /// wijk and theme, stale commitments, or a year's close statement.
    Report {
        #[arg(long)]
        year: Option<i64>,
        /// Count only money booked on or before this date (YYYY-MM-DD); for
        /// `stale`, the day to judge from (default today).
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = ReportKind::Budget)]
        kind: ReportKind,
    },
    /// Re-walk the whole log: recompute the hash chain, check positions,
    /// sequences and the trial balance. Exits non-zero naming the first bad event.
    Verify {
        /// Verify an export written by `wijkbudget export` instead of a database.
        #[arg(long)]
        file: Option<PathBuf>,
        /// A head written down earlier (POSITION:HASH) that today's log must extend unchanged.
        #[arg(long)]
        expect_head: Option<crate::verify::Head>,
    },
    /// Bring bookings in from a spreadsheet (CSV or XLSX; README, "Importing
    /// the books"). Every row is checked first; a file with any bad row
    /// stores nothing. Importing a file again books only what is not booked yet.
    Import {
        #[arg(long)]
        file: PathBuf,
        /// Check every row and report, but store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the whole log, with its hashes, as JSON Lines.
    ///
    /// With --what, a report instead, for a spreadsheet: the audit trail
    /// (one sheet per wijk) or a year's close statement (one sheet per fund).
    Export {
        #[arg(long)]
        to: PathBuf,
        #[arg(long, value_enum)]
        what: Option<crate::spreadsheet::What>,
        #[arg(long, value_enum, default_value = "xlsx")]
        format: crate::spreadsheet::ExportFormat,
        /// Only this budget year (a close statement needs one).
        #[arg(long)]
        year: Option<i64>,
        /// Only this wijk (the audit trail).
        #[arg(long)]
        wijk: Option<String>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    /// Allocated, committed, spent and remaining per wijk and fund.
    Budget,
    /// Per wijk and theme: committed, paid, settled, recovered.
    Themes,
    /// Open commitments older than 13 weeks without payment or settlement.
    Stale,
    /// The close statement of each closed fund of --year.
    Close,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone on its line. It is not shown again.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A wijk a wijkregisseur may read; repeat for more.
        #[arg(long = "wijk")]
        wijken: Vec<String>,
        /// Who uses it; recorded as the actor on every event it writes.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke tokens by id (from `token list`) or by name.
    Revoke { id_or_name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn database_url(cli: &Option<String>) -> String {
    cli.clone().unwrap_or_else(|| DEFAULT_DATABASE.to_string())
}

/// The database for a command that only reads (or rebuilds) a ledger: an
/// SQLite file must already exist, because opening it would create an empty
/// ledger that then reports zeros as if they were true.
fn existing_ledger(cli: &Option<String>) -> anyhow::Result<String> {
    let url = database_url(cli);
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if !std::path::Path::new(path).exists() {
            anyhow::bail!(
                "there is no ledger at {path} (the file does not exist; nothing was created). \
                 `wijkbudget demo` keeps its ledger in {DEMO_DATABASE}: add --database sqlite://{DEMO_DATABASE}, \
                 or name your ledger with --database or DATABASE_URL"
            );
        }
    }
    Ok(url)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen, no_migrate, max_connections, header_read_timeout } => {
            let url = database_url(&cli.database);
            let service = Service::open_with(&url, !no_migrate).await?;
            let limits = crate::service::Limits {
                max_connections,
                header_read_timeout: std::time::Duration::from_secs(header_read_timeout.max(1)),
            };
            service
                .serve_with(listen, limits, |addr| {
                    tracing::info!(store = %redact(&url), "serving on http://{addr}/api/v1");
                })
                .await
        }
        Command::Migrate => {
            let url = database_url(&cli.database);
            Db::connect(&url).await?.migrate().await?;
            println!("migrations applied to {}", redact(&url));
            Ok(())
        }
        Command::Rebuild => {
            let service = Service::open(&existing_ledger(&cli.database)?).await?;
            rebuild(&service.db, service.projector.with_batch_size(projections::REBUILD_BATCH)).await
        }
        Command::Demo { listen } => demo_command(cli.database, listen).await,
        Command::Report { year, as_of, kind } => {
            let service = Service::open(&existing_ledger(&cli.database)?).await?;
            service.projector.catch_up(|_| {}).await?;
            let text = match kind {
                ReportKind::Budget => report(&service.db, Period { year, as_of }).await?,
                ReportKind::Themes => theme_report(&service.db, Period { year, as_of }).await?,
                ReportKind::Stale => {
                    stale_report(&service.db, as_of.unwrap_or_else(|| chrono::Utc::now().date_naive())).await?
                }
                ReportKind::Close => {
                    let year = year.context("a close statement needs --year")?;
                    // A close statement is what the close froze; it has no other day.
                    anyhow::ensure!(as_of.is_none(), "a close statement is frozen at the close; leave out --as-of");
                    close_report(&service.db, year).await?
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Verify { file, expect_head } => {
            let outcome = match file {
                Some(path) => crate::verify::verify_file(&path, expect_head.as_ref(), true)?,
                None => {
                    let db = Db::connect(&existing_ledger(&cli.database)?).await?;
                    crate::verify::verify_database(&db, expect_head.as_ref(), true).await?
                }
            };
            match outcome {
                Ok(report) => {
                    println!("ok: {} events verified; head {}", report.events, report.head);
                    Ok(())
                }
                Err(failure) => {
                    eprintln!("{failure}");
                    std::process::exit(2);
                }
            }
        }
        Command::Import { file, dry_run } => {
            // A dry run only reads: into a ledger that does not exist yet, it
            // checks against an empty one and creates nothing.
            let url = database_url(&cli.database);
            let scratch = tempfile::tempdir()?;
            let url = if dry_run && existing_ledger(&cli.database).is_err() {
                format!("sqlite://{}", scratch.path().join("empty.db").display())
            } else {
                url
            };
            import_command(&url, &file, dry_run).await
        }
        Command::Export { to, what: Some(what), format, year, wijk } => {
            let service = Service::open(&existing_ledger(&cli.database)?).await?;
            service.projector.catch_up(|_| {}).await?;
            let rows = crate::spreadsheet::export(&service.db, what, format, year, wijk.as_deref(), &to).await?;
            println!("exported {rows} rows to {}", to.display());
            Ok(())
        }
        Command::Export { to, .. } => {
            let db = Db::connect(&existing_ledger(&cli.database)?).await?;
            let head = crate::verify::export(&db, &to, true).await?;
            println!("exported to {}; head {head}", to.display());
            Ok(())
        }
        Command::Token { command } => {
            let db = Db::connect(&database_url(&cli.database)).await?;
            db.migrate().await?;
            match command {
                TokenCommand::Create { role, wijken, name } => {
                    let name = name.unwrap_or_else(|| role.as_str().to_string());
                    println!("{}", auth::create_token(&db, role, &wijken, &name).await?);
                }
                TokenCommand::List => {
                    println!("{:<14} {:<20} {:<14} {:<20} {:<27} revoked", "id", "name", "role", "wijken", "created");
                    for t in auth::list_tokens(&db).await? {
                        println!(
                            "{:<14} {:<20} {:<14} {:<20} {:<27} {}",
                            t.id,
                            t.name,
                            t.role,
                            t.wijken,
                            t.created_at,
                            t.revoked_at.unwrap_or_default()
                        );
                    }
                }
                TokenCommand::Revoke { id_or_name } => {
                    let n = auth::revoke_token(&db, &id_or_name).await?;
                    if n == 0 {
                        anyhow::bail!("no active token has id or name `{id_or_name}`; see `wijkbudget token list`");
                    }
                    println!("revoked {n} token(s)");
                }
            }
            Ok(())
        }
    }
}

async fn import_command(url: &str, file: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let service = Service::open(url).await?;
    service.projector.catch_up(|_| {}).await?;
    let actor =
        crate::ledger::Actor { name: format!("import {}", file.display()), role: Role::Finance.as_str().into() };
    let bar = progress_bar(0, "reading");
    // When each step began, to say at the end where the time went.
    let mut steps: Vec<(String, std::time::Instant)> = vec![("reading".into(), std::time::Instant::now())];
    let report = crate::import::import_file(&service, file, dry_run, &actor, |stage, done, total| {
        if bar.message() != stage {
            bar.set_message(stage.to_string());
            bar.set_length(total);
            steps.push((stage.to_string(), std::time::Instant::now()));
        }
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    let ended = std::time::Instant::now();
    let took: Vec<String> = steps
        .iter()
        .zip(steps.iter().skip(1).map(|s| s.1).chain([ended]))
        .map(|((stage, began), until)| format!("{stage} {:.1} s", (until - *began).as_secs_f64()))
        .collect();
    eprintln!("took {:.1} s: {}", (ended - steps[0].1).as_secs_f64(), took.join(", "));
    let report = report?;
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    let bad_rows = report.problems.iter().map(|p| p.row).collect::<std::collections::BTreeSet<_>>().len();
    if !report.problems.is_empty() {
        anyhow::bail!(
            "{} has {} problem(s) in {bad_rows} of its {} rows, listed above; nothing was stored. Fix them and import it again",
            file.display(),
            report.problems.len(),
            report.rows
        );
    }
    if report.dry_run {
        println!("dry run: all {} rows of {} are good; nothing was stored", report.rows, file.display());
    } else if report.booked == 0 {
        println!("{}: all {} rows were already in the ledger; nothing booked", file.display(), report.rows);
    } else {
        println!("{}: {} rows booked, {} already in the ledger", file.display(), report.booked, report.already);
    }
    Ok(())
}

/// On PostgreSQL the read models are built beside the live ones, which are
/// served until the new ones are swapped in (`projections::rebuild`). On
/// SQLite, one file with one writer, they are wiped and projected again.
async fn rebuild(db: &Db, projector: Projector) -> anyhow::Result<()> {
    let (_, head) = projections::status(db).await?;
    let bar = progress_bar(head as u64, "rebuilding");
    match db {
        Db::Postgres(pool) => {
            use projections::rebuild::Progress;
            let rebuilt = projections::rebuild::rebuild_beside(pool, |step| match step {
                Progress::Loaded(position) | Progress::Swapping(position) => bar.set_position(position as u64),
                Progress::Indexing => bar.set_message("indexing"),
            })
            .await?;
            bar.finish();
            let secs = |d: std::time::Duration| d.as_secs_f64();
            println!(
                "read models rebuilt from {} events in {:.1} s (load {:.1} s, keys and indexes {:.1} s, swap {:.1} s)",
                rebuilt.position,
                secs(rebuilt.load + rebuilt.indexing + rebuilt.swap),
                secs(rebuilt.load),
                secs(rebuilt.indexing),
                secs(rebuilt.swap)
            );
        }
        Db::Sqlite(_) => {
            projections::reset(db).await.context("wiping the read models")?;
            crate::failpoint::hit("rebuild-after-reset");
            let position = projector.catch_up(|position| bar.set_position(position as u64)).await?;
            bar.finish();
            println!("read models rebuilt from {position} events");
        }
    }
    Ok(())
}

async fn demo_command(database: Option<String>, listen: SocketAddr) -> anyhow::Result<()> {
    let url = match database {
        Some(url) => url,
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let path = PathBuf::from(format!("{DEMO_DATABASE}{suffix}"));
                if path.exists() {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("removing the previous demo store {}", path.display()))?;
                }
            }
            format!("sqlite://{DEMO_DATABASE}")
        }
    };
    let service = Service::open(&url).await?;
    let (_, head) = projections::status(&service.db).await?;
    if head > 0 {
        anyhow::bail!("{} already holds {head} events; the demo needs an empty store (omit --database to use a fresh {DEMO_DATABASE})", redact(&url));
    }
    let steps = demo::steps().len() as u64;
    let bar = progress_bar(steps, "loading demo");
    demo::load(&service.ledger, |done, _| bar.set_position(done as u64)).await?;
    bar.finish();
    service.projector.catch_up(|_| {}).await?;
    print!("{}", report(&service.db, Period { year: Some(2022), as_of: None }).await?);

    let mut tokens = Vec::new();
    for role in ROLES {
        let wijken = if role == Role::Wijkregisseur { vec!["oost-1223".to_string()] } else { vec![] };
        tokens.push((role, auth::create_token(&service.db, role, &wijken, &format!("demo-{role}")).await?));
    }
    let base = format!("http://{listen}/api/v1");
    println!("\nDemo tokens (the wijkregisseur token reads Oost 1223 only). Open the address in a");
    println!("browser and sign in with the token beside it:");
    for (role, token) in &tokens {
        println!(
            "  {:<14} {token}  http://{listen}{}",
            role.as_str(),
            crate::web::start_page(*role, &["oost-1223".to_string()])
        );
    }
    let finance = &tokens[0].1;
    let regisseur = &tokens[1].1;
    println!("\nTry:");
    println!("  curl -s -H 'Authorization: Bearer {regisseur}' {base}/wijken/oost-1223/budget?year=2022");
    println!("  curl -s -H 'Authorization: Bearer {finance}' {base}/funds/A21-182");
    println!(
        "  curl -s -H 'Authorization: Bearer {finance}' -H 'Accept: text/csv' {base}/wijken/oost-1223/audit-trail"
    );
    println!("  wijkbudget report --year 2022 --database {url}");
    println!("\nThe amounts per wijk are illustrative: the source report gives only the totals.\n");
    service.serve(listen, |addr| println!("serving on http://{addr}/api/v1 (Ctrl-C stops)")).await
}

/// The remaining-budget table per wijk, with a line per fund under each wijk.
pub async fn report(db: &Db, period: Period) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let title = match (period.year, period.as_of) {
        (Some(y), Some(d)) => format!("Wijkbudget {y}, as of {d}"),
        (Some(y), None) => format!("Wijkbudget {y}"),
        (None, Some(d)) => format!("Wijkbudget, all years, as of {d}"),
        (None, None) => "Wijkbudget, all years".to_string(),
    };
    writeln!(out, "{title}")?;
    let row = |out: &mut String, label: &str, t: &queries::Totals| {
        writeln!(
            out,
            "{label:<50} {:>13} {:>13} {:>13} {:>13}",
            t.amount_allocated, t.amount_committed, t.amount_spent, t.amount_remaining
        )
    };
    writeln!(out, "{:<50} {:>13} {:>13} {:>13} {:>13}", "wijk / fund", "allocated", "committed", "spent", "remaining")?;
    let mut total = [0i64; 4];
    for wijk in queries::wijk_summaries(db, period).await? {
        row(&mut out, &wijk.name, &wijk.totals)?;
        let t = &wijk.totals;
        for (sum, value) in
            total.iter_mut().zip([t.amount_allocated, t.amount_committed, t.amount_spent, t.amount_remaining])
        {
            *sum += value.0;
        }
        if let Some(budget) = queries::wijk_budget(db, &wijk.wijk_id, period).await? {
            for line in budget.funds {
                row(&mut out, &format!("  {} ({})", line.fund_id, line.kind), &line.totals)?;
            }
        }
    }
    let [allocated, committed, spent, remaining] = total.map(queries::Euro);
    row(
        &mut out,
        "total",
        &queries::Totals {
            amount_allocated: allocated,
            amount_committed: committed,
            amount_spent: spent,
            amount_remaining: remaining,
        },
    )?;
    Ok(out)
}

/// Spending per wijk and theme (as of a day, with `--as-of`): each wijk's
/// row, then its theme rows, which sum to it in every column but allocated
/// and remaining.
pub async fn theme_report(db: &Db, period: Period) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let line =
        |out: &mut String, name: &str, allocated: String, a: &projections::reports::ThemeAmounts, remaining: String| {
            writeln!(
                out,
                "{name:<28} {allocated:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {remaining:>12}",
                a.amount_granted,
                a.amount_committed,
                a.amount_paid,
                a.amount_spent,
                a.amount_settled,
                a.amount_recovered,
                a.amount_repaid,
            )
        };
    writeln!(
        out,
        "{:<28} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "wijk / theme",
        "allocated",
        "granted",
        "committed",
        "paid",
        "spent",
        "settled",
        "recovered",
        "repaid",
        "remaining"
    )?;
    for w in projections::reports::themes_in(db, period).await? {
        line(&mut out, &w.name, w.amount_allocated.to_string(), &w.amounts, w.amount_remaining.to_string())?;
        for t in &w.themes {
            line(&mut out, &format!("  {}", t.theme), String::new(), &t.amounts, String::new())?;
        }
    }
    Ok(out)
}

/// Commitments waiting too long for a payment or settlement.
pub async fn stale_report(db: &Db, as_of: NaiveDate) -> anyhow::Result<String> {
    use std::fmt::Write;
    let stale = projections::reports::stale_commitments(db, as_of).await?;
    let mut out = format!(
        "Open commitments decided {} days or more before {as_of}, without payment or settlement: {}\n",
        projections::reports::STALE_AFTER_DAYS,
        stale.len()
    );
    for c in stale {
        let applicant = c.applicant.unwrap_or_default();
        writeln!(
            out,
            "{:<20} {:<12} {:<18} {:>12}  {} ({applicant})",
            c.commitment_id, c.decided_on, c.wijk_id, c.amount, c.initiative
        )?;
    }
    Ok(out)
}

/// The close statement of each closed fund of a year.
pub async fn close_report(db: &Db, year: i64) -> anyhow::Result<String> {
    use std::fmt::Write;
    let statements = projections::reports::close_statements(db, year).await?;
    if statements.is_empty() {
        anyhow::bail!("no fund of {year} is closed; close the year with POST /api/v1/years/{year}/close");
    }
    let mut out = String::new();
    for s in statements {
        writeln!(
            out,
            "Close statement {} ({}), closed {} by {}",
            s.fund_id, s.year, s.closed_on, s.decision_reference
        )?;
        writeln!(
            out,
            "{:<20} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
            "wijk", "allocated", "transfer", "spent", "committed", "owed", "lapsed", "carried"
        )?;
        for l in &s.lines {
            writeln!(
                out,
                "{:<20} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
                l.wijk_id,
                l.amount_allocated,
                l.amount_transferred,
                l.amount_spent,
                l.amount_committed,
                l.amount_receivable,
                l.amount_lapsed,
                l.amount_carried_over
            )?;
        }
        writeln!(out, "opening {} - spent {} - committed {} - owed {} - lapsed {} (of which unallocated {}) - carried over {} = {}",
            s.opening, s.amount_spent, s.amount_committed, s.amount_receivable, s.amount_lapsed, s.unallocated_lapsed, s.amount_carried_over, s.difference)?;
        if let Some(to) = &s.carry_over_fund {
            writeln!(out, "carried over into {to}")?;
        }
        writeln!(out)?;
    }
    Ok(out)
}
