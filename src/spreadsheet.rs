//! Taking the books out: the audit trail and the close statement as CSV, or
//! as an XLSX workbook an auditor can work in. In the workbook amounts are
//! numbers in a euro format (so Excel's sums match the ledger to the cent),
//! dates are dates, the header row is frozen, each wijk (or fund) has its
//! own sheet, and a first sheet says what the file is and which head of the
//! hash chain it was made from, so it can be tied to `wijkbudget verify`.

use std::path::Path;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use rust_xlsxwriter::{Format, Workbook, Worksheet};

use crate::http::lifecycle::{close_csv_rows, CLOSE_CSV_HEADER};
use crate::http::reads::{audit_csv_rows, csv_text, AUDIT_CSV_HEADER, PAGE_MAX};
use crate::projections::queries::{self, AuditFilter, AuditRow, Period};
use crate::projections::reports::{self, CloseStatement};
use crate::store::repository::head;
use crate::store::Db;

/// The media type of an XLSX workbook.
pub const XLSX_MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    AuditTrail,
    CloseStatement,
    /// A year's grants, without a private person's name (see `projections::subsidies`).
    Subsidieregister,
    /// The whole ledger as bookings in the import file's columns, in log
    /// order: `wijkbudget import` reads it back into the same balances.
    Bookings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Xlsx,
    Csv,
}

/// A wijk's whole audit trail (of one year, if given), every page.
async fn whole_trail(db: &Db, wijk_id: &str, year: Option<i64>) -> anyhow::Result<Vec<AuditRow>> {
    let filter = AuditFilter { year, ..Default::default() };
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = queries::audit_trail(db, wijk_id, &filter, after, PAGE_MAX).await?;
        rows.extend(page.rows);
        match page.next_after {
            Some(next) if next > after => after = next,
            _ => return Ok(rows),
        }
    }
}

/// Writes the export to `to`; returns how many rows it holds.
pub async fn export(
    db: &Db,
    what: What,
    format: ExportFormat,
    year: Option<i64>,
    wijk: Option<&str>,
    to: &Path,
) -> anyhow::Result<usize> {
    let file = render(db, what, format, year, wijk, false).await?;
    std::fs::write(to, &file.bytes).with_context(|| format!("writing {}", to.display()))?;
    Ok(file.rows)
}

/// An export made in memory, for a file or a download.
pub struct ExportFile {
    pub bytes: Vec<u8>,
    /// Rows of data it holds, headers not counted.
    pub rows: usize,
    /// The name to download it as, such as `audittrail-oost-1223-2022.xlsx`.
    pub file_name: String,
    pub media_type: &'static str,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Csv => "csv",
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Xlsx => XLSX_MEDIA_TYPE,
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The name an export downloads as: what it is, its wijk and its year.
fn file_name(what: What, format: ExportFormat, year: Option<i64>, wijk: Option<&str>) -> String {
    let what = match what {
        What::AuditTrail => "audittrail",
        What::CloseStatement => "jaarafsluiting",
        What::Subsidieregister => "subsidieregister",
        What::Bookings => "grootboek-boekingen",
    };
    let wijk = wijk.map(|w| format!("-{w}")).unwrap_or_default();
    let year = year.map(|y| format!("-{y}")).unwrap_or_default();
    format!("{what}{wijk}{year}.{}", format.extension())
}

/// Makes an export. With `hide_actors`, the audit trail leaves out who
/// recorded each booking, as council members see it.
pub async fn render(
    db: &Db,
    what: What,
    format: ExportFormat,
    year: Option<i64>,
    wijk: Option<&str>,
    hide_actors: bool,
) -> anyhow::Result<ExportFile> {
    let (bytes, rows) = contents(db, what, format, year, wijk, hide_actors).await?;
    Ok(ExportFile { bytes, rows, file_name: file_name(what, format, year, wijk), media_type: format.media_type() })
}

/// The bytes of an export and its rows of data.
async fn contents(
    db: &Db,
    what: What,
    format: ExportFormat,
    year: Option<i64>,
    wijk: Option<&str>,
    hide_actors: bool,
) -> anyhow::Result<(Vec<u8>, usize)> {
    let (position, hash) = head(db).await?;
    match what {
        What::AuditTrail => {
            let wijken: Vec<(String, String)> = match wijk {
                Some(w) => {
                    let budget = queries::wijk_budget(db, w, Period::default()).await?;
                    let budget =
                        budget.with_context(|| format!("wijk {w} is not registered; see GET /api/v1/wijken"))?;
                    vec![(budget.wijk_id, budget.name)]
                }
                None => queries::wijk_summaries(db, Period::default())
                    .await?
                    .into_iter()
                    .map(|w| (w.wijk_id, w.name))
                    .collect(),
            };
            let mut trails = Vec::new();
            for (id, name) in wijken {
                let mut rows = whole_trail(db, &id, year).await?;
                // Bookings appended while exporting are after the head the first sheet names.
                rows.retain(|r| r.position <= position);
                if hide_actors {
                    rows.iter_mut().for_each(|r| r.actor = None);
                }
                trails.push((id, name, rows));
            }
            let count = trails.iter().map(|t| t.2.len()).sum();
            match format {
                ExportFormat::Csv => {
                    let header = format!("wijk_id,{AUDIT_CSV_HEADER}");
                    let rows = trails.iter().flat_map(|(id, _, rows)| {
                        let page = queries::AuditPage {
                            wijk_id: id.clone(),
                            opening_balance: queries::Euro(0),
                            rows: rows.clone(),
                            next_after: None,
                        };
                        audit_csv_rows(&page).into_iter().map(move |mut r| {
                            r.insert(0, id.clone());
                            r
                        })
                    });
                    Ok((csv_text(&header, rows).into_bytes(), count))
                }
                ExportFormat::Xlsx => {
                    let title = format!("Audittrail{}", year.map(|y| format!(" {y}")).unwrap_or_default());
                    let mut book = workbook(&title, position, &hash)?;
                    let mut names = SheetNames::default();
                    for (id, name, rows) in &trails {
                        audit_sheet(book.add_worksheet(), &names.unique(id), name, rows)?;
                    }
                    Ok((book.save_to_buffer()?, count))
                }
            }
        }
        What::Bookings => {
            anyhow::ensure!(
                year.is_none() && wijk.is_none(),
                "bookings are the whole ledger, so that an import can read them back; leave out --year and --wijk"
            );
            let rows = crate::import::rows_of::ledger_rows(db, position).await?;
            let bytes = match format {
                ExportFormat::Csv => crate::import::rows_of::csv(&rows).into_bytes(),
                ExportFormat::Xlsx => {
                    let mut book = workbook("Boekingen: het hele grootboek, als importbestand", position, &hash)?;
                    bookings_sheet(book.add_worksheet(), &rows)?;
                    book.save_to_buffer()?
                }
            };
            Ok((bytes, rows.len()))
        }
        What::Subsidieregister => {
            let year = year.context("the subsidieregister needs --year")?;
            let lines = crate::projections::subsidies::register(db, year).await?;
            let rows = crate::projections::subsidies::csv_rows(&lines);
            let bytes = match format {
                ExportFormat::Csv => csv_text(crate::projections::subsidies::CSV_HEADER, rows.into_iter()).into_bytes(),
                ExportFormat::Xlsx => {
                    let mut book = workbook(&format!("Subsidieregister {year}"), position, &hash)?;
                    register_sheet(book.add_worksheet(), &lines)?;
                    book.save_to_buffer()?
                }
            };
            Ok((bytes, lines.len()))
        }
        What::CloseStatement => {
            let year = year.context("a close statement needs --year")?;
            let statements = reports::close_statements(db, year).await?;
            anyhow::ensure!(
                !statements.is_empty(),
                "no fund of {year} is closed; close it with POST /api/v1/years/{year}/close"
            );
            let count = statements.iter().map(|s| s.lines.len()).sum();
            match format {
                ExportFormat::Csv => {
                    let text = csv_text(CLOSE_CSV_HEADER, close_csv_rows(statements).into_iter());
                    Ok((text.into_bytes(), count))
                }
                ExportFormat::Xlsx => {
                    let mut book = workbook(&format!("Jaarafsluiting {year}"), position, &hash)?;
                    let mut names = SheetNames::default();
                    for s in &statements {
                        close_sheet(book.add_worksheet(), &names.unique(&s.fund_id), s)?;
                    }
                    Ok((book.save_to_buffer()?, count))
                }
            }
        }
    }
}

fn euro_format() -> Format {
    Format::new().set_num_format("€ #,##0.00;€ -#,##0.00")
}

fn date_format() -> Format {
    Format::new().set_num_format("dd-mm-yyyy")
}

fn header(sheet: &mut Worksheet, columns: &[&str]) -> anyhow::Result<()> {
    let bold = Format::new().set_bold();
    for (c, name) in columns.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *name, &bold)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

/// Euro from whole cents. A workbook stores every number as a double, which
/// holds any amount of cents up to 2^53 exactly enough to show and sum to the cent.
fn euro(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// A workbook whose first sheet says what it is and where it comes from.
fn workbook(title: &str, position: i64, hash: &str) -> anyhow::Result<Workbook> {
    let mut book = Workbook::new();
    let about = book.add_worksheet().set_name("Over dit bestand")?;
    let bold = Format::new().set_bold();
    let lines = [
        ("Wat", title.to_string()),
        ("Gemaakt op", Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        ("Uit wijkbudget, tot en met logpositie", position.to_string()),
        ("Kop van de hashketen", format!("{position}:{hash}")),
        ("Controleren", format!("wijkbudget verify --expect-head {position}:{hash}")),
    ];
    for (r, (label, value)) in lines.iter().enumerate() {
        about.write_string_with_format(r as u32, 0, *label, &bold)?;
        about.write_string(r as u32, 1, value)?;
    }
    about.set_column_width(0, 40)?;
    about.set_column_width(1, 90)?;
    Ok(book)
}

/// Sheet names as Excel allows them: at most 31 characters, none of
/// `[]:*?/\`, and unique without regard to case. Ids may be 64 characters,
/// so two can share their first 31; the later one gets a number.
#[derive(Default)]
struct SheetNames(std::collections::HashSet<String>);

impl SheetNames {
    fn unique(&mut self, id: &str) -> String {
        let base: String = id.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
        let mut name = base.clone();
        let mut n = 2;
        while !self.0.insert(name.to_lowercase()) {
            let suffix = format!("~{n}");
            name = format!("{}{suffix}", base.chars().take(31 - suffix.len()).collect::<String>());
            n += 1;
        }
        name
    }
}

fn audit_sheet(sheet: &mut Worksheet, sheet_name: &str, name: &str, rows: &[AuditRow]) -> anyhow::Result<()> {
    sheet.set_name(sheet_name)?;
    let columns: Vec<&str> = AUDIT_CSV_HEADER.split(',').collect();
    header(sheet, &columns)?;
    let (money, day) = (euro_format(), date_format());
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_number(row, 0, r.position as f64)?;
        match NaiveDate::parse_from_str(&r.booked_on, "%Y-%m-%d") {
            Ok(d) => sheet.write_date_with_format(row, 1, &d, &day)?,
            Err(_) => sheet.write_string(row, 1, &r.booked_on)?,
        };
        sheet.write_string(row, 2, &r.recorded_at)?;
        sheet.write_boolean(row, 3, r.backdated)?;
        let texts = [&r.event_type, &r.fund_id, &r.decision_reference, &r.account, &r.counter_account];
        for (c, text) in texts.iter().enumerate() {
            sheet.write_string(row, 4 + c as u16, text.as_str())?;
        }
        sheet.write_number_with_format(row, 9, euro(r.amount.0), &money)?;
        sheet.write_number_with_format(row, 10, euro(r.balance.0), &money)?;
        let rest = [
            r.actor.as_deref(),
            Some(r.role.as_str()),
            r.reason.as_deref(),
            r.reference.as_deref(),
            r.initiative.as_deref(),
            r.theme.as_deref(),
            r.expense_id.as_deref(),
            Some(r.event_id.as_str()),
            r.correlation_id.as_deref(),
        ];
        for (c, text) in rest.iter().enumerate() {
            sheet.write_string(row, 11 + c as u16, text.unwrap_or(""))?;
        }
    }
    sheet.set_column_width(1, 12)?;
    sheet.set_column_width(9, 14)?;
    sheet.set_column_width(10, 14)?;
    // The wijk's name, beside the header row's end, for a reader who sees only the id on the tab.
    sheet.write_string(0, columns.len() as u16 + 1, name)?;
    Ok(())
}

/// A fund's close statement: a line per wijk, the money never allocated,
/// the totals, and the reconciliation (opening − everything = difference).
fn close_sheet(sheet: &mut Worksheet, sheet_name: &str, s: &CloseStatement) -> anyhow::Result<()> {
    sheet.set_name(sheet_name)?;
    let columns: Vec<&str> = CLOSE_CSV_HEADER.split(',').skip(1).collect();
    header(sheet, &columns)?;
    let money = euro_format();
    let bold = Format::new().set_bold();
    let bold_money = euro_format().set_bold();
    let mut row = 1u32;
    for l in &s.lines {
        sheet.write_string(row, 0, &l.wijk_id)?;
        let amounts = [
            l.amount_allocated,
            l.amount_transferred,
            l.amount_spent,
            l.amount_committed,
            l.amount_receivable,
            l.amount_lapsed,
            l.amount_carried_over,
        ];
        for (c, amount) in amounts.iter().enumerate() {
            sheet.write_number_with_format(row, 1 + c as u16, euro(amount.0), &money)?;
        }
        row += 1;
    }
    // The column of lapsed money sums to the statement's total only with this line.
    sheet.write_string(row, 0, "niet toegekend")?;
    sheet.write_number_with_format(row, 6, euro(s.unallocated_lapsed.0), &money)?;
    row += 1;
    sheet.write_string_with_format(row, 0, "totaal", &bold)?;
    let totals = [
        (3, s.amount_spent),
        (4, s.amount_committed),
        (5, s.amount_receivable),
        (6, s.amount_lapsed),
        (7, s.amount_carried_over),
    ];
    for (c, amount) in totals {
        sheet.write_number_with_format(row, c, euro(amount.0), &bold_money)?;
    }
    row += 2;
    sheet.write_string_with_format(row, 0, "beginbedrag", &bold)?;
    sheet.write_number_with_format(row, 1, euro(s.opening.0), &bold_money)?;
    row += 1;
    sheet.write_string_with_format(row, 0, "verschil (moet 0 zijn)", &bold)?;
    sheet.write_number_with_format(row, 1, euro(s.difference.0), &bold_money)?;
    sheet.set_column_width(0, 24)?;
    Ok(())
}

/// The import file's columns, amounts as euro numbers and dates as dates,
/// which the import reads back as the text they show.
fn bookings_sheet(sheet: &mut Worksheet, rows: &[crate::import::rows_of::Cells]) -> anyhow::Result<()> {
    use crate::import::rows::{BOOKINGS_SHEET, COLUMNS};
    sheet.set_name(BOOKINGS_SHEET)?;
    header(sheet, &COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>())?;
    let (money, day) = (euro_format(), date_format());
    for (i, cells) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        for (c, (name, ..)) in COLUMNS.iter().enumerate() {
            let Some(value) = cells.get(name) else { continue };
            let c = c as u16;
            let amount = value.parse::<rust_decimal::Decimal>().ok().filter(|_| *name == "amount");
            match (amount, NaiveDate::parse_from_str(value, "%Y-%m-%d")) {
                // Two decimals of euro fit a double exactly enough to read back as written.
                (Some(amount), _) => sheet.write_number_with_format(row, c, f64::try_from(amount)?, &money)?,
                (None, Ok(date)) => sheet.write_date_with_format(row, c, date, &day)?,
                (None, Err(_)) => sheet.write_string(row, c, value)?,
            };
        }
    }
    Ok(())
}

fn register_sheet(sheet: &mut Worksheet, lines: &[crate::projections::subsidies::SubsidyLine]) -> anyhow::Result<()> {
    sheet.set_name("Subsidieregister")?;
    let columns: Vec<&str> = crate::projections::subsidies::CSV_HEADER.split(',').collect();
    header(sheet, &columns)?;
    let (money, day) = (euro_format(), date_format());
    for (i, l) in lines.iter().enumerate() {
        let row = i as u32 + 1;
        for (c, text) in [&l.recipient, &l.applicant_kind, &l.initiative, &l.wijk_id, &l.fund_id].iter().enumerate() {
            sheet.write_string(row, c as u16, text.as_str())?;
        }
        sheet.write_number_with_format(row, 5, euro(l.amount_granted.0), &money)?;
        if let Some(settled) = l.amount_settled {
            sheet.write_number_with_format(row, 6, euro(settled.0), &money)?;
        }
        sheet.write_string(row, 7, &l.decision_reference)?;
        match NaiveDate::parse_from_str(&l.decided_on, "%Y-%m-%d") {
            Ok(d) => sheet.write_date_with_format(row, 8, &d, &day)?,
            Err(_) => sheet.write_string(row, 8, &l.decided_on)?,
        };
        sheet.write_string(row, 9, &l.grant_rule)?;
        sheet.write_string(row, 10, &l.status)?;
    }
    Ok(())
}
