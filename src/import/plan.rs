//! A row of the import file as a ledger command, read by the API's rules:
//! the same parsers for ids, texts, amounts and dates, the same commands.
//! What cannot be read is reported per column; nothing is guessed.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::rows::Row;
use crate::domain::fund::{
    ApplicantKind, CommitmentDetails, Decision, ExpenseDetails, FundCommand, FundKind, FundTerms,
};
use crate::domain::ids::{CommitmentId, ExpenseId, FundId, InvalidValue, Text, WijkId, Year};
use crate::domain::money::{parse_decimal, parse_written_date, plain_notation, Amount, NotationError};
use crate::domain::wijk::WijkCommand;

/// The kinds of row, with their Dutch names.
pub const ROW_TYPES: &[(&str, &str)] = &[
    ("wijk", "wijk"),
    ("fund", "fonds"),
    ("allocation", "toekenning"),
    ("commitment", "verplichting"),
    ("payment", "betaling"),
    ("settlement", "vaststelling"),
    ("repayment", "terugbetaling"),
    ("withdrawal", "intrekking"),
    ("expense", "uitgave"),
    ("reversal", "correctie"),
    ("transfer", "overboeking"),
    ("close", "jaarafsluiting"),
];

/// Which aggregate a row's command goes to. Rows on a commitment or an
/// expense name no fund: the ledger finds it from the commitment or expense.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Command {
    Wijk(WijkCommand),
    Fund(FundId, FundCommand),
    OnCommitment(CommitmentId, FundCommand),
    OnExpense(ExpenseId, FundCommand),
    Close { year: Year, decision: Decision, carry_over: Vec<WijkId> },
}

/// What is wrong with one cell (or, with `column` None, the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub row: usize,
    pub column: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "row {}, {column}: {}", self.row, self.reason),
            None => write!(f, "row {}: {}", self.row, self.reason),
        }
    }
}

/// Reads one row's cells, collecting every problem rather than the first.
struct Cells<'a> {
    row: &'a Row,
    problems: Vec<Problem>,
}

impl Cells<'_> {
    fn fail(&mut self, column: &str, reason: impl Into<String>) {
        self.problems.push(Problem { row: self.row.number, column: Some(column.into()), reason: reason.into() });
    }

    fn required(&mut self, column: &str) -> Option<&str> {
        let value = self.row.get(column);
        if value.is_none() {
            self.fail(column, "is empty; this kind of row needs it");
        }
        value
    }

    fn parsed<T>(&mut self, column: &str, parse: fn(&str) -> Result<T, InvalidValue>) -> Option<T> {
        let text = self.required(column)?.to_string();
        parse(&text).map_err(|e| self.fail(column, format!("`{text}` {e}"))).ok()
    }

    fn text(&mut self, column: &str) -> Option<Text> {
        self.parsed(column, Text::parse)
    }

    fn decimal(&mut self, column: &str) -> Option<Decimal> {
        let text = self.required(column)?.to_string();
        let plain = match plain_notation(&text) {
            Ok(plain) => plain,
            Err(NotationError::NotANumber) => {
                self.fail(column, format!("`{text}` is not an amount; write 1.234,56 or 1234.56"));
                return None;
            }
            Err(NotationError::Ambiguous) => {
                self.fail(
                    column,
                    format!("`{text}` could be thousands or cents; write {text},00 or use a comma for cents"),
                );
                return None;
            }
        };
        // `50000` and `50000.00` are one amount, and must read as one booking.
        let mut value = parse_decimal(&plain).map_err(|e| self.fail(column, e.to_string())).ok()?;
        if value.scale() < 2 {
            value.rescale(2);
        }
        Some(value)
    }

    fn amount(&mut self, column: &str) -> Option<Amount> {
        let decimal = self.decimal(column)?;
        Amount::try_from(decimal).map_err(|e| self.fail(column, e.to_string())).ok()
    }

    fn date(&mut self, column: &str) -> Option<NaiveDate> {
        let text = self.required(column)?.to_string();
        let parsed = parse_written_date(&text);
        if parsed.is_none() {
            self.fail(column, format!("`{text}` is not a date; write 2022-09-15 or 15-09-2022"));
        }
        parsed
    }

    fn year(&mut self, column: &str) -> Option<Year> {
        let text = self.required(column)?.to_string();
        match text.parse::<i32>() {
            Ok(y) => Year::new(y).map_err(|e| self.fail(column, e.to_string())).ok(),
            Err(_) => {
                self.fail(column, format!("`{text}` is not a year"));
                None
            }
        }
    }

    fn applicant_kind(&mut self, column: &str) -> Option<ApplicantKind> {
        match self.row.get(column).map(str::to_lowercase).as_deref() {
            None | Some("private" | "particulier") => Some(ApplicantKind::Private),
            Some("organisation" | "organisatie") => Some(ApplicantKind::Organisation),
            Some(other) => {
                self.fail(column, format!("`{other}` is neither organisation nor private"));
                None
            }
        }
    }

    fn yes_no(&mut self, column: &str) -> Option<bool> {
        match self.row.get(column).map(str::to_lowercase).as_deref() {
            None | Some("no" | "nee" | "false" | "0") => Some(false),
            Some("yes" | "ja" | "true" | "1") => Some(true),
            Some(other) => {
                self.fail(column, format!("`{other}` is neither yes nor no"));
                None
            }
        }
    }
}

/// The row as a command, or every problem it has.
pub fn command(row: &Row) -> Result<Command, Vec<Problem>> {
    let mut c = Cells { row, problems: Vec::new() };
    let kind = row.get("type").unwrap_or("").to_lowercase();
    let Some((kind, _)) = ROW_TYPES.iter().find(|(en, nl)| *en == kind || *nl == kind) else {
        let known = ROW_TYPES.iter().map(|(en, nl)| format!("{en} ({nl})")).collect::<Vec<_>>().join(", ");
        c.fail("type", format!("`{kind}` is no kind of booking; use one of {known}"));
        return Err(c.problems);
    };
    let command = read(*kind, &mut c);
    match command {
        Some(command) if c.problems.is_empty() => Ok(command),
        _ => Err(c.problems),
    }
}

fn read(kind: &str, c: &mut Cells<'_>) -> Option<Command> {
    // Every cell is read before any is unwrapped, so all problems are found.
    Some(match kind {
        "wijk" => {
            let (wijk_id, name) = (c.parsed("wijk_id", WijkId::parse), c.text("wijk_name"));
            Command::Wijk(WijkCommand::Register { wijk_id: wijk_id?, name: name? })
        }
        "fund" => {
            let fund_id = c.parsed("fund_id", FundId::parse);
            let year = c.year("year");
            let kind_text = c.required("kind").map(str::to_lowercase);
            let fund_kind = kind_text.and_then(|k| match serde_json::from_value::<FundKind>(serde_json::json!(k)) {
                Ok(kind) => Some(kind),
                Err(_) => {
                    c.fail("kind", format!("`{k}` is no fund kind; use begroting, amendement or begrotingswijziging"));
                    None
                }
            });
            let (name, amount, reference, adopted_on, purpose) =
                (c.text("name"), c.amount("amount"), c.text("decision"), c.date("decided_on"), c.text("purpose"));
            let fund_id = fund_id?;
            Command::Fund(
                fund_id.clone(),
                FundCommand::Establish(FundTerms {
                    fund_id,
                    year: year?,
                    kind: fund_kind?,
                    name: name?,
                    amount: amount?,
                    decision: Decision { reference: reference?, adopted_on: adopted_on? },
                    purpose: purpose?,
                }),
            )
        }
        "allocation" => {
            let (fund_id, wijk_id, amount, reason, booked_on) = (
                c.parsed("fund_id", FundId::parse),
                c.parsed("wijk_id", WijkId::parse),
                c.amount("amount"),
                c.text("reason"),
                c.date("booked_on"),
            );
            Command::Fund(
                fund_id?,
                FundCommand::Allocate { wijk_id: wijk_id?, amount: amount?, reason: reason?, booked_on: booked_on? },
            )
        }
        "commitment" => {
            let fund_id = c.parsed("fund_id", FundId::parse);
            let commitment_id = c.parsed("commitment_id", CommitmentId::parse);
            let wijk_id = c.parsed("wijk_id", WijkId::parse);
            let amount = c.amount("amount");
            let (initiative, applicant, theme) = (c.text("initiative"), c.text("applicant"), c.text("theme"));
            let applicant_kind = c.applicant_kind("applicant_kind");
            let (reference, decided_on, grant_rule) = (c.text("decision"), c.date("decided_on"), c.text("grant_rule"));
            let booked_on = c.date("booked_on");
            Command::Fund(
                fund_id?,
                FundCommand::Commit(CommitmentDetails {
                    commitment_id: commitment_id?,
                    wijk_id: wijk_id?,
                    amount: amount?,
                    initiative: initiative?,
                    applicant: applicant?,
                    applicant_kind: applicant_kind?,
                    theme: theme?,
                    decision: Decision { reference: reference?, adopted_on: decided_on? },
                    grant_rule: grant_rule?,
                    booked_on: booked_on?,
                }),
            )
        }
        "payment" => {
            let commitment_id = c.parsed("commitment_id", CommitmentId::parse);
            let (expense_id, amount) = (c.parsed("expense_id", ExpenseId::parse), c.amount("amount"));
            let (booked_on, reference) = (c.date("booked_on"), c.text("reference"));
            let commitment_id = commitment_id?;
            Command::OnCommitment(
                commitment_id.clone(),
                FundCommand::Pay {
                    commitment_id,
                    expense_id: expense_id?,
                    amount: amount?,
                    booked_on: booked_on?,
                    reference: reference?,
                },
            )
        }
        "settlement" => {
            let commitment_id = c.parsed("commitment_id", CommitmentId::parse);
            let (settled_amount, reference, booked_on) = (c.decimal("amount"), c.text("decision"), c.date("booked_on"));
            let commitment_id = commitment_id?;
            Command::OnCommitment(
                commitment_id.clone(),
                FundCommand::Settle {
                    commitment_id,
                    settled_amount: settled_amount?,
                    decision_reference: reference?,
                    booked_on: booked_on?,
                },
            )
        }
        "repayment" => {
            let commitment_id = c.parsed("commitment_id", CommitmentId::parse);
            let (amount, booked_on, reference) = (c.amount("amount"), c.date("booked_on"), c.text("reference"));
            let commitment_id = commitment_id?;
            Command::OnCommitment(
                commitment_id.clone(),
                FundCommand::Repay { commitment_id, amount: amount?, booked_on: booked_on?, reference: reference? },
            )
        }
        "withdrawal" => {
            let commitment_id = c.parsed("commitment_id", CommitmentId::parse);
            let (reason, cancelled, booked_on) = (c.text("reason"), c.yes_no("cancelled"), c.date("booked_on"));
            let commitment_id = commitment_id?;
            Command::OnCommitment(
                commitment_id.clone(),
                FundCommand::Withdraw { commitment_id, reason: reason?, cancelled: cancelled?, booked_on: booked_on? },
            )
        }
        "expense" => {
            let fund_id = c.parsed("fund_id", FundId::parse);
            let (expense_id, wijk_id) = (c.parsed("expense_id", ExpenseId::parse), c.parsed("wijk_id", WijkId::parse));
            let amount = c.amount("amount");
            let (initiative, theme, reference) = (c.text("initiative"), c.text("theme"), c.text("reference"));
            let booked_on = c.date("booked_on");
            Command::Fund(
                fund_id?,
                FundCommand::RecordExpense(ExpenseDetails {
                    expense_id: expense_id?,
                    wijk_id: wijk_id?,
                    amount: amount?,
                    initiative: initiative?,
                    theme: theme?,
                    booked_on: booked_on?,
                    reference: reference?,
                }),
            )
        }
        "reversal" => {
            let expense_id = c.parsed("expense_id", ExpenseId::parse);
            let (reason, booked_on, post_closing) = (c.text("reason"), c.date("booked_on"), c.yes_no("post_closing"));
            let (expense_id, booked_on) = (expense_id?, booked_on?);
            Command::OnExpense(
                expense_id.clone(),
                FundCommand::ReverseExpense {
                    expense_id,
                    reason: reason?,
                    booked_on: Some(booked_on),
                    requested_on: booked_on,
                    post_closing: post_closing?,
                },
            )
        }
        "transfer" => {
            let fund_id = c.parsed("fund_id", FundId::parse);
            let (from_wijk, to_wijk) = (c.parsed("wijk_id", WijkId::parse), c.parsed("to_wijk", WijkId::parse));
            let (amount, reference, reason) = (c.amount("amount"), c.text("decision"), c.text("reason"));
            let booked_on = c.date("booked_on");
            Command::Fund(
                fund_id?,
                FundCommand::Transfer {
                    from_wijk: from_wijk?,
                    to_wijk: to_wijk?,
                    amount: amount?,
                    decision_reference: reference?,
                    reason: reason?,
                    booked_on: booked_on?,
                },
            )
        }
        "close" => {
            let (year, reference, decided_on) = (c.year("year"), c.text("decision"), c.date("decided_on"));
            let mut carry_over = Vec::new();
            for id in c.row.get("carry_over").unwrap_or("").split([' ', ';', ',']).filter(|s| !s.is_empty()) {
                match WijkId::parse(id) {
                    Ok(w) => carry_over.push(w),
                    Err(e) => c.fail("carry_over", format!("`{id}` {e}")),
                }
            }
            Command::Close {
                year: year?,
                decision: Decision { reference: reference?, adopted_on: decided_on? },
                carry_over,
            }
        }
        _ => unreachable!("ROW_TYPES lists every kind read here"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn row(cells: &[(&'static str, &str)]) -> Row {
        Row { number: 7, cells: cells.iter().map(|(k, v)| (*k, v.to_string())).collect::<BTreeMap<_, _>>() }
    }

    #[test]
    fn a_dutch_expense_row_reads_as_the_apis_command() {
        let r = row(&[
            ("type", "uitgave"),
            ("fund_id", "A21-182"),
            ("expense_id", "wegaplein-1"),
            ("wijk_id", "oost-1223"),
            ("amount", "50.000,00"),
            ("initiative", "Herinrichting Wegaplein"),
            ("theme", "spelen"),
            ("booked_on", "15-09-2022"),
            ("reference", "factuur 42"),
        ]);
        let Ok(Command::Fund(fund, FundCommand::RecordExpense(d))) = command(&r) else { panic!("{:?}", command(&r)) };
        assert_eq!(fund.as_str(), "A21-182");
        assert_eq!(d.amount.to_string(), "50000.00");
        assert_eq!(d.booked_on, NaiveDate::from_ymd_opt(2022, 9, 15).unwrap());
    }

    #[test]
    fn every_problem_of_a_row_is_reported_with_its_column() {
        let r = row(&[("type", "expense"), ("fund_id", "A21 182"), ("amount", "1.250"), ("booked_on", "31-02-2022")]);
        let problems = command(&r).unwrap_err();
        let columns: Vec<&str> = problems.iter().filter_map(|p| p.column.as_deref()).collect();
        for column in ["fund_id", "expense_id", "wijk_id", "amount", "initiative", "theme", "reference", "booked_on"] {
            assert!(columns.contains(&column), "no problem for {column}: {problems:?}");
        }
        assert!(problems.iter().all(|p| p.row == 7));
        assert!(problems.iter().any(|p| p.to_string().starts_with("row 7, amount: `1.250` could be thousands")));
        let unknown = command(&row(&[("type", "gift")])).unwrap_err();
        assert!(unknown[0].reason.contains("no kind of booking"), "{unknown:?}");
    }
}
