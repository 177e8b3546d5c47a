//! Reading a spreadsheet of bookings: CSV (UTF-8, with or without BOM,
//! comma or semicolon) or XLSX, into rows of named cells. Headers may be
//! English (the API's field names) or Dutch; both name the same column.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use calamine::{Data, Reader};

/// A column: its canonical (English, the API's) name, its Dutch name, and what it holds.
pub const COLUMNS: &[(&str, &str, &str)] = &[
    ("type", "soort", "the kind of booking (see ROW_TYPES)"),
    ("wijk_id", "wijk", "the wijk's id"),
    ("wijk_name", "wijknaam", "a new wijk's name"),
    ("fund_id", "fonds", "the fund's id"),
    ("year", "jaar", "a new fund's year, or the year to close"),
    ("kind", "fondssoort", "a new fund's kind: begroting, amendement or begrotingswijziging"),
    ("name", "naam", "a new fund's name"),
    ("amount", "bedrag", "euro: 1.234,56 or 1234.56"),
    ("booked_on", "boekdatum", "the booking date: 2022-09-15 or 15-09-2022"),
    ("decision", "besluit", "the decision's reference"),
    ("decided_on", "besluitdatum", "the decision's date"),
    ("purpose", "doel", "a new fund's doelbinding"),
    ("reason", "reden", "why (allocation, transfer, withdrawal, reversal)"),
    ("expense_id", "uitgave", "the expense's or payment's own id"),
    ("commitment_id", "verplichting", "the commitment's id"),
    ("initiative", "initiatief", "the initiative"),
    ("theme", "thema", "the initiative's theme"),
    ("applicant", "aanvrager", "who applied for the grant"),
    (
        "applicant_kind",
        "soort_aanvrager",
        "organisation or private (organisatie, particulier); empty counts as private",
    ),
    ("grant_rule", "regeling", "the grant rule"),
    ("reference", "referentie", "the document behind it, such as an invoice number"),
    ("to_wijk", "naar_wijk", "a transfer's receiving wijk"),
    ("carry_over", "overheveling", "a close: the wijken whose money carries over, separated by spaces or semicolons"),
    ("cancelled", "geannuleerd", "a withdrawal: yes for annulering, no for intrekking"),
    ("post_closing", "na_afsluiting", "a reversal in a closed year: yes"),
];

/// The sheet an import reads when a workbook has it, and the first one otherwise.
pub const BOOKINGS_SHEET: &str = "Boekingen";

/// One data row: its number as a spreadsheet shows it (the header is row 1)
/// and its non-empty cells by canonical column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub number: usize,
    pub cells: BTreeMap<&'static str, String>,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).map(String::as_str).filter(|v| !v.is_empty())
    }
}

fn canonical_column(header: &str) -> Option<&'static str> {
    let header = header.trim().trim_start_matches('\u{feff}').to_lowercase().replace([' ', '-'], "_");
    COLUMNS.iter().find(|(en, nl, _)| *en == header || *nl == header).map(|(en, _, _)| *en)
}

/// The rows of a CSV or XLSX file (by its extension), in file order.
pub fn read(path: &Path) -> anyhow::Result<Vec<Row>> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
    let table = match extension.as_str() {
        "csv" | "txt" => read_csv(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)?,
        "xlsx" | "xlsm" | "xls" | "ods" => read_workbook(path)?,
        other => bail!("{} is a .{other} file; import reads .csv and .xlsx", path.display()),
    };
    rows_of(table)
}

/// Raw cells of each line, with the line's number as a spreadsheet counts
/// it (blank lines too), the first being the header.
pub fn read_csv(bytes: &[u8]) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).context("the file is not UTF-8; save it as \"CSV UTF-8\"")?;
    // Dutch Excel writes semicolons: the header line tells which.
    let header = text.lines().next().unwrap_or("");
    let delimiter = if header.matches(';').count() > header.matches(',').count() { b';' } else { b',' };
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(bytes);
    let mut table = Vec::new();
    // Line breaks counted so far, up to byte `counted`: records come in
    // file order, so each break is counted once.
    let (mut counted, mut breaks) = (0, 0);
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("row {} cannot be read as CSV", i + 1))?;
        // csv skips blank lines, and its line count with them: count the
        // line breaks before the record's first byte instead (its position
        // is where reading began, before the blank lines it skipped).
        let line = record.position().map_or(i + 1, |p| {
            let mut start = (p.byte() as usize).min(bytes.len());
            while start < bytes.len() && matches!(bytes[start], b'\n' | b'\r') {
                start += 1;
            }
            breaks += bytes[counted.min(start)..start].iter().filter(|b| **b == b'\n').count();
            counted = counted.max(start);
            1 + breaks
        });
        table.push((line, record.iter().map(str::to_string).collect()));
    }
    Ok(table)
}

/// The rows of an uploaded file, told apart by content rather than by a
/// name: an XLSX workbook is a zip archive (`PK\x03\x04`), anything else is
/// read as CSV.
pub fn read_bytes(bytes: &[u8]) -> anyhow::Result<Vec<Row>> {
    let table = if bytes.starts_with(b"PK\x03\x04") {
        let workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes))
            .context("the file looks like a workbook but cannot be opened as XLSX; save it as .xlsx or as CSV UTF-8")?;
        sheet_cells(calamine::Sheets::Xlsx(workbook))?
    } else {
        read_csv(bytes)?
    };
    rows_of(table)
}

fn read_workbook(path: &Path) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    sheet_cells(calamine::open_workbook_auto(path).with_context(|| format!("opening {}", path.display()))?)
}

/// The first sheet's cells, each row with its number as the sheet shows it.
fn sheet_cells<RS: std::io::Read + std::io::Seek>(
    mut workbook: calamine::Sheets<RS>,
) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    // An exported ledger (`export --what bookings`) has its bookings after a
    // sheet about the file; any other workbook, on its first sheet.
    let names = workbook.sheet_names();
    let sheet =
        names.iter().find(|n| *n == BOOKINGS_SHEET).or(names.first()).cloned().context("the workbook has no sheet")?;
    let range = workbook.worksheet_range(&sheet).with_context(|| format!("reading sheet {sheet}"))?;
    // The range starts at the first used cell; rows above it still count.
    let first = range.start().map_or(0, |(row, _)| row as usize);
    Ok(range.rows().enumerate().map(|(i, row)| (first + i + 1, row.iter().map(cell_text).collect())).collect())
}

/// A cell as the text a person typed: numbers exactly as written (an amount
/// stored as a number is read back through its shortest decimal form), and
/// dates as ISO dates.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        // The shortest text that reads back as the same float is what the
        // spreadsheet shows; it is parsed exactly from there, never summed as a float.
        Data::Float(f) => format!("{f}"),
        Data::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Data::DateTime(d) => d.as_datetime().map(|dt| dt.date().to_string()).unwrap_or_default(),
        Data::DateTimeIso(s) => s.get(..10).unwrap_or(s).to_string(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn rows_of(table: Vec<(usize, Vec<String>)>) -> anyhow::Result<Vec<Row>> {
    let mut lines = table.into_iter();
    let (_, header) = lines.next().context("the file is empty; it needs a header row")?;
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for name in &header {
        match canonical_column(name) {
            Some(c) => columns.push(Some(c)),
            None if name.trim().is_empty() => columns.push(None),
            None => {
                unknown.push(name.trim().to_string());
                columns.push(None);
            }
        }
    }
    if !unknown.is_empty() {
        bail!(
            "unknown column(s) {}; the columns are {} (or in Dutch: {})",
            unknown.join(", "),
            COLUMNS.iter().map(|c| c.0).collect::<Vec<_>>().join(", "),
            COLUMNS.iter().map(|c| c.1).collect::<Vec<_>>().join(", ")
        );
    }
    if !columns.contains(&Some("type")) {
        bail!("the header has no `type` (or `soort`) column; every row says what kind of booking it is");
    }
    let mut rows = Vec::new();
    for (number, line) in lines {
        let mut cells = BTreeMap::new();
        for (column, value) in columns.iter().zip(line) {
            if let Some(column) = column {
                let value = value.trim().to_string();
                if !value.is_empty() {
                    cells.insert(*column, value);
                }
            }
        }
        if !cells.is_empty() {
            rows.push(Row { number, cells });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_a_bom_semicolons_and_dutch_headers_reads_as_english_columns() {
        let text = "\u{feff}Soort;Wijk;Bedrag;Boekdatum\n\nuitgave;oost-1223;\"1.234,56\";15-09-2022\n;;;\n";
        let rows = rows_of(read_csv(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(rows.len(), 1, "an empty line is no row");
        assert_eq!(rows[0].number, 3, "a blank line still counts, as in a spreadsheet");
        assert_eq!(rows[0].get("type"), Some("uitgave"));
        assert_eq!(rows[0].get("amount"), Some("1.234,56"));
        assert_eq!(rows[0].get("booked_on"), Some("15-09-2022"));
    }

    #[test]
    fn commas_work_too_and_unknown_columns_are_named() {
        let rows = rows_of(read_csv(b"type,fund_id,amount\nfund,A21-182,50000.00\n").unwrap()).unwrap();
        assert_eq!(rows[0].get("fund_id"), Some("A21-182"));
        let err = rows_of(read_csv(b"type,bedrag,kleur\nx,1,rood\n").unwrap()).unwrap_err().to_string();
        assert!(err.contains("unknown column(s) kleur"), "{err}");
        let err = rows_of(read_csv(b"wijk,bedrag\nx,1\n").unwrap()).unwrap_err().to_string();
        assert!(err.contains("no `type`"), "{err}");
    }
}
