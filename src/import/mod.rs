//! Bringing the books in: a spreadsheet of bookings (CSV or XLSX), checked
//! row by row against every rule of the ledger before anything is stored.
//!
//! A file is all or nothing. Every row is first booked on a throwaway copy
//! of the ledger ([`crate::store::copy`]), in file order, through the real `Ledger`, so
//! a row is judged exactly as it would be when booked, after the rows before
//! it. Only if no row has a problem is the file booked on the real ledger.
//! Each row carries a stable idempotency key made from its content and its
//! row number: importing the same file again books nothing, and an import
//! that stopped halfway books only the rows it had not booked yet.

pub mod job;
pub mod plan;
pub mod rows;
pub mod rows_of;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::ledger::{Actor, CommandMeta, Idempotency, Ledger, LedgerError, Outcome};
use crate::projections::Projector;
use crate::service::Service;
use plan::{Command, Problem};
use rows::Row;

/// One row, read and ready to book.
struct Planned {
    row: usize,
    key: String,
    fingerprint: String,
    command: Command,
}

/// What an import found and did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: usize,
    /// Rows booked by this run.
    pub booked: usize,
    /// Rows already in the ledger (an earlier import of the same rows, or a
    /// booking that was already true), which this run left alone.
    pub already: usize,
    /// Every problem of every bad row, in file order. Non-empty means
    /// nothing was stored.
    pub problems: Vec<Problem>,
    pub dry_run: bool,
}

impl Report {
    pub fn stored_nothing(&self) -> bool {
        self.booked == 0
    }
}

fn hex_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads the rows; the ones that cannot be read become problems.
/// The key is made from the row's number and the command it reads as, not
/// from its text: `1.234,56` and `1234.56`, `toekenning` and `allocation`, a
/// CSV and its XLSX, and cells the row's type ignores all give one key, so
/// none of them books a row twice. A row that reads as another command is
/// another booking.
fn plan(rows: &[Row], problems: &mut Vec<Problem>) -> Vec<Planned> {
    let mut planned = Vec::new();
    for row in rows {
        match plan::command(row) {
            Ok(command) => {
                let content = serde_json::to_string(&command).expect("a command serialises");
                planned.push(Planned {
                    row: row.number,
                    key: format!("import-{}", &hex_sha256(&format!("{}\n{content}", row.number))[..40]),
                    fingerprint: hex_sha256(&content),
                    command,
                });
            }
            Err(found) => problems.extend(found),
        }
    }
    planned
}

/// Whether a row was booked before. Its key holds its content, so a key
/// found is the same booking.
async fn booked_before(ledger: &Ledger, p: &Planned) -> Result<bool, LedgerError> {
    Ok(ledger.idempotency_record(&p.key).await?.is_some())
}

/// Why a row could not be booked.
enum Refused {
    Ledger(LedgerError),
    /// It names a commitment or an expense the ledger does not have.
    Unknown {
        column: &'static str,
        reason: String,
    },
}

impl From<LedgerError> for Refused {
    fn from(err: LedgerError) -> Self {
        Self::Ledger(err)
    }
}

/// Books one row, then brings the read models up to it (the next row may
/// establish a fund, whose year is checked against them). Ok(true) if it
/// stored something.
async fn book(ledger: &Ledger, projector: &Projector, p: &Planned, actor: &Actor) -> Result<bool, Refused> {
    let mut meta = CommandMeta::new(actor.clone());
    // A close is idempotent by itself and spans several funds, so it needs no key.
    if !matches!(p.command, Command::Close { .. }) {
        meta.idempotency = Some(Idempotency { key: p.key.clone(), fingerprint: p.fingerprint.clone() });
    }
    let outcome = match &p.command {
        Command::Wijk(command) => ledger.register_wijk(command.clone(), &meta).await?,
        Command::Fund(fund_id, command) => ledger.fund(fund_id, command.clone(), &meta).await?,
        Command::OnCommitment(commitment_id, command) => {
            let fund_id = ledger.fund_of_commitment(commitment_id).await?.ok_or_else(|| Refused::Unknown {
                column: "commitment_id",
                reason: format!("no commitment has id `{commitment_id}`; make it first with a commitment row"),
            })?;
            ledger.fund(&fund_id, command.clone(), &meta).await?
        }
        Command::OnExpense(expense_id, command) => {
            let fund_id = ledger.fund_of_expense(expense_id).await?.ok_or_else(|| Refused::Unknown {
                column: "expense_id",
                reason: format!("no expense has id `{expense_id}`; record it first with an expense row"),
            })?;
            ledger.fund(&fund_id, command.clone(), &meta).await?
        }
        Command::Close { year, decision, carry_over } => {
            let closed = ledger.close_year(*year, decision.clone(), carry_over, &meta).await?;
            if closed.iter().any(|c| c.closed_at_position.is_some()) {
                Outcome::Recorded { first_position: 0, last_position: 0 }
            } else {
                Outcome::Unchanged
            }
        }
    };
    match outcome {
        Outcome::Recorded { .. } => {
            projector.catch_up(|_| {}).await.map_err(|e| LedgerError::Store(format!("{e:#}")))?;
            Ok(true)
        }
        Outcome::Unchanged => Ok(false),
    }
}

/// A refusal as a problem on the column it is about, in the API's words.
/// A failing store is no problem of the row: the import stops.
fn refusal(row: usize, refused: Refused) -> anyhow::Result<Problem> {
    match refused {
        Refused::Ledger(LedgerError::Store(cause) | LedgerError::Unavailable(cause)) => {
            Err(anyhow::anyhow!("the ledger failed: {cause}; nothing more was booked, import the file again to go on"))
        }
        Refused::Ledger(err) => {
            let api = ApiError::from(err);
            Ok(Problem { row, column: api.field_name().map(str::to_string), reason: api.detail().to_string() })
        }
        Refused::Unknown { column, reason } => Ok(Problem { row, column: Some(column.into()), reason }),
    }
}

/// Imports the file at `path` into the ledger of `service`; see [`import`].
pub async fn import_file(
    service: &Service,
    path: &Path,
    dry_run: bool,
    actor: &Actor,
    progress: impl FnMut(&str, u64, u64),
) -> anyhow::Result<Report> {
    import(service, &rows::read(path)?, dry_run, actor, progress).await
}

/// Imports `rows` into the ledger of `service`: checks every row on a copy,
/// and books the file only if no row has a problem (and `dry_run` is off).
/// `progress(stage, done, total)` reports each step.
///
/// Booking is one transaction: the copy's new log rows are appended to the
/// ledger as they are, if the ledger has not moved since the copy was made
/// (then they were decided on exactly its state). If it has moved (someone
/// booked meanwhile), the rows are booked one by one, each judged again.
pub async fn import(
    service: &Service,
    rows: &[Row],
    dry_run: bool,
    actor: &Actor,
    mut progress: impl FnMut(&str, u64, u64),
) -> anyhow::Result<Report> {
    let mut report = Report { rows: rows.len(), dry_run, ..Default::default() };
    let planned = plan(rows, &mut report.problems);
    let total = planned.len() as u64;

    // 1. Every row on a copy, in file order, as if booked.
    let dir = tempfile::tempdir()?;
    let head = crate::store::repository::head(&service.db).await?.0;
    progress("copying", 0, head as u64);
    let (copy, with_read_models) = crate::store::copy::copy(&service.db, &dir.path().join("try.db"), |p| {
        progress("copying", p as u64, head as u64)
    })
    .await?;
    let base = crate::store::repository::head(&copy).await?;
    let copy = Service::on(copy);
    if !with_read_models {
        copy.projector.catch_up(|p| progress("copying", p as u64, head as u64)).await?;
    }
    let mut new_rows = 0;
    for (i, p) in planned.iter().enumerate() {
        progress("checking", i as u64 + 1, total);
        if booked_before(&copy.ledger, p).await? {
            continue;
        }
        match book(&copy.ledger, &copy.projector, p, actor).await {
            Ok(true) => new_rows += 1,
            Ok(false) => {}
            Err(err) => report.problems.push(refusal(p.row, err)?),
        }
    }
    report.problems.sort_by_key(|p| p.row);
    if dry_run || !report.problems.is_empty() {
        copy.db.close().await;
        return Ok(report);
    }

    // 2. The whole file was good: book it.
    if new_rows == 0 {
        report.already = planned.len();
        copy.db.close().await;
        return Ok(report);
    }
    let new_events = crate::store::repository::head(&copy.db).await?.0 - base.0;
    let appended = crate::store::copy::append_from_copy(&copy.db, &service.db, &base, |p| {
        progress("booking", (p - base.0) as u64, new_events as u64)
    })
    .await?;
    copy.db.close().await;
    if appended {
        crate::failpoint::hit("import-after-append");
        report.booked = new_rows;
        report.already = planned.len() - new_rows;
        let target = crate::store::repository::head(&service.db).await?.0;
        service.projector.catch_up(|p| progress("projecting", p as u64, target as u64)).await?;
        return Ok(report);
    }
    book_one_by_one(service, &planned, actor, &mut report, &mut progress).await?;
    Ok(report)
}

/// Books the rows on the ledger itself, in file order, each judged again
/// by the ledger as it is now: for when the ledger moved after the copy.
async fn book_one_by_one(
    service: &Service,
    planned: &[Planned],
    actor: &Actor,
    report: &mut Report,
    progress: &mut impl FnMut(&str, u64, u64),
) -> anyhow::Result<()> {
    for (i, p) in planned.iter().enumerate() {
        progress("booking", i as u64 + 1, planned.len() as u64);
        if booked_before(&service.ledger, p).await? {
            report.already += 1;
            continue;
        }
        match book(&service.ledger, &service.projector, p, actor).await {
            Ok(true) => report.booked += 1,
            Ok(false) => report.already += 1,
            Err(err) => {
                // Something changed the ledger between the check and now.
                let problem = refusal(p.row, err)?;
                anyhow::bail!(
                    "{problem}; the ledger changed while importing: rows before row {} are booked, the rest not; \
                     fix the row and import the file again to book the rest",
                    p.row
                );
            }
        }
    }
    Ok(())
}
