//! Reading a booking form by the API's own rules, and saying what is wrong
//! in Dutch, next to the field at fault. The parsers are the domain's; only
//! the notation of amounts and dates is the one Dutch people type.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::domain::fund::FundError;
use crate::domain::ids::InvalidValue;
use crate::domain::money::{parse_written_date, plain_notation, Amount, AmountError, NotationError};
use crate::ledger::LedgerError;
use crate::store::repository::AppendRefused;
use crate::web::components::FieldError;
use crate::web::format::{date, euro};

/// The error for the form as a whole, shown in the summary and linked to the form's title.
pub const FORM: &str = "formulier";

/// Collects every field's error, so a person sees all mistakes at once.
#[derive(Debug, Default)]
pub struct Check {
    pub errors: Vec<FieldError>,
}

impl Check {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
    }

    /// A value the domain parses (an id or a text), with the reason in Dutch.
    pub fn value<T>(
        &mut self,
        field: &str,
        label: &str,
        text: &str,
        parse: fn(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        match parse(text.trim()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(field, invalid_value(label, &e));
                None
            }
        }
    }

    pub fn amount(&mut self, field: &str, text: &str) -> Option<Amount> {
        match parse_dutch_amount(text) {
            Ok(a) => Some(a),
            Err(message) => {
                self.fail(field, message);
                None
            }
        }
    }

    pub fn date(&mut self, field: &str, label: &str, text: &str) -> Option<NaiveDate> {
        let text = text.trim();
        if text.is_empty() {
            self.fail(field, format!("Vul de {label} in."));
            return None;
        }
        match parse_written_date(text) {
            Some(d) => Some(d),
            None => {
                self.fail(field, format!("‘{text}’ is geen datum; vul de {label} in als 15-09-2022."));
                None
            }
        }
    }
}

fn invalid_value(label: &str, e: &InvalidValue) -> String {
    match e {
        InvalidValue::Empty => format!("Vul {label} in."),
        InvalidValue::TooLong { len, max } => {
            format!("{} is {len} tekens lang; het maximum is {max}.", capitalised(label))
        }
        InvalidValue::BadCharacters => {
            format!("{} mag alleen letters, cijfers, ‘-’, ‘_’ en ‘.’ bevatten.", capitalised(label))
        }
        InvalidValue::ControlCharacters => {
            format!("{} bevat onzichtbare tekens, zoals een regeleinde; haal die weg.", capitalised(label))
        }
        InvalidValue::YearOutOfRange(y) => format!("Het jaar {y} ligt niet tussen 2000 en 2100."),
    }
}

fn capitalised(label: &str) -> String {
    let label = label.strip_prefix("de ").or_else(|| label.strip_prefix("het ")).unwrap_or(label);
    let mut chars = label.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// An amount as a Dutch person types it: `1.234,56`, `1234,56` or `1234.56`,
/// with or without `€` (see [`plain_notation`]). The result obeys the API's
/// rules: more than zero, whole cents, at most a billion.
pub fn parse_dutch_amount(text: &str) -> Result<Amount, String> {
    let text = text.trim();
    if text.trim_start_matches('€').trim().is_empty() {
        return Err("Vul het bedrag in.".into());
    }
    let not_a_number = || format!("‘{text}’ is geen bedrag; schrijf het als 1.250,00 of 1250,00.");
    let plain = plain_notation(text).map_err(|e| match e {
        NotationError::NotANumber => not_a_number(),
        NotationError::Ambiguous => {
            format!("‘{text}’ is niet eenduidig; schrijf {text},00 voor duizenden of gebruik een komma voor centen.")
        }
    })?;
    Amount::parse(&plain).map_err(|e| match e {
        AmountError::NotANumber(_) => not_a_number(),
        AmountError::NotPositive => "Het bedrag moet meer dan € 0,00 zijn.".into(),
        AmountError::TooManyDecimals => "Het bedrag heeft meer dan twee decimalen; rond af op hele centen.".into(),
        AmountError::TooLarge => "Het bedrag is groter dan het maximum van € 1.000.000.000,00.".into(),
    })
}

/// Euro text from a domain message ("50000.00") in Dutch notation.
fn money_text(decimal_text: &str) -> String {
    decimal_text
        .parse::<Decimal>()
        .ok()
        .and_then(|d| (d * Decimal::ONE_HUNDRED).trunc().to_string().parse::<i64>().ok())
        .map_or_else(|| decimal_text.to_string(), euro)
}

/// A ledger refusal as the field it is about and a Dutch sentence that
/// says what to do. None for a failure of the store, which is no one's
/// mistake in the form.
pub fn refusal(err: &LedgerError) -> Option<FieldError> {
    let e = |field: &str, message: String| Some(FieldError { field: field.into(), message });
    match err {
        LedgerError::Fund(f) => match f {
            FundError::UnknownFund => e("fonds", "Dit fonds bestaat niet; kies een fonds uit de lijst.".into()),
            FundError::UnknownWijk(w) => e("wijk", format!("Wijk {w} is niet geregistreerd; kies een wijk uit de lijst.")),
            FundError::Overspend { wijk_id, fund_id, requested, remaining, on, .. } => e(
                "bedrag",
                format!(
                    "Wijk {wijk_id} heeft nog {} over uit fonds {fund_id}{}; een uitgave van {} past daar niet in.{}",
                    money_text(remaining),
                    on_the_day(on),
                    money_text(requested),
                    date_advice(on)
                ),
            ),
            FundError::NotAvailable { wijk_id, fund_id, requested, available, on, .. } => e(
                "bedrag",
                format!(
                    "Wijk {wijk_id} heeft {} beschikbaar in fonds {fund_id}{}; dat is niet genoeg voor {}.{}",
                    money_text(available),
                    on_the_day(on),
                    money_text(requested),
                    date_advice(on)
                ),
            ),
            FundError::OutsideFundYear { fund_id, year, booked_on } => e(
                "boekdatum",
                format!(
                    "De boekdatum {} valt buiten het jaar {year} van fonds {fund_id}; boek binnen {year} of kies een fonds van dat jaar.",
                    date(*booked_on)
                ),
            ),
            FundError::YearClosed { fund_id, year, booked_on } => e(
                "boekdatum",
                format!(
                    "Het jaar {year} van fonds {fund_id} is afgesloten; op {} kan niets meer worden geboekt. Kies een fonds van een open jaar.",
                    date(*booked_on)
                ),
            ),
            FundError::BookedTooEarly { booked_on, earlier, .. } => e(
                "boekdatum",
                format!("De boekdatum {} ligt vóór een eerdere boeking op {}; boek op of na die dag.", date(*booked_on), date(*earlier)),
            ),
            FundError::ExpenseIdTaken(_)
            | FundError::ExpenseIdUsedElsewhere { .. }
            | FundError::CommitmentIdTaken(_) => e(
                FORM,
                "Dit formulier is al eens met andere gegevens geboekt. Open een nieuw formulier voor een nieuwe boeking.".into(),
            ),
            FundError::UnknownCommitment { commitment_id, .. } => {
                e("verplichting", format!("Verplichting {commitment_id} bestaat niet."))
            }
            FundError::CommitmentNotOpen { commitment_id, status, .. } => e(
                "verplichting",
                format!("Verplichting {commitment_id} is {}; er kan niet meer op worden betaald.", status_name(status)),
            ),
            FundError::OverPayment { commitment_id, requested, left } => e(
                "bedrag",
                format!(
                    "Op verplichting {commitment_id} staat nog {} open; een betaling van {} is te veel.",
                    money_text(left),
                    money_text(requested)
                ),
            ),
            FundError::DirectoryUnavailable(_) | FundError::ExpenseRegisterUnavailable(_) => None,
            other => e(FORM, format!("Het grootboek weigert deze boeking: {other}.")),
        },
        LedgerError::Refused(AppendRefused::ClientIdTaken { .. }) => e(
            FORM,
            "Dit formulier is al eens met andere gegevens geboekt. Open een nieuw formulier voor een nieuwe boeking.".into(),
        ),
        LedgerError::Conflict(_) => {
            e(FORM, "Er werd tegelijk op dit fonds geboekt. Er is niets opgeslagen; verstuur het formulier opnieuw.".into())
        }
        LedgerError::Store(_) | LedgerError::Unavailable(_) => None,
        other => e(FORM, format!("Het grootboek weigert deze boeking: {other}.")),
    }
}

/// The domain's " on 2022-09-15" or " from 2022-09-15 on" (the day a
/// refusal for lack of money judged) in Dutch; empty when the day did not matter.
fn on_the_day(on: &str) -> String {
    let day = |text: &str| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok().map(date);
    if let Some(d) = on.trim().strip_prefix("from ").and_then(|rest| rest.strip_suffix(" on")).and_then(day) {
        format!(" vanaf {d}")
    } else if let Some(d) = on.trim().strip_prefix("on ").and_then(day) {
        format!(" op {d}")
    } else {
        String::new()
    }
}

/// Where the booking date decides a refusal, the place to see why.
fn date_advice(on: &str) -> &'static str {
    if on.is_empty() {
        ""
    } else {
        " Het hangt af van de boekdatum: de audittrail van de wijk toont welke boekingen per dag het geld vastleggen."
    }
}

fn status_name(status: &str) -> &str {
    match status {
        "settled" => "vastgesteld",
        "withdrawn" => "ingetrokken",
        "cancelled" => "geannuleerd",
        "open" => "open",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = parse_dutch_amount(input).map(|a| a.to_string());
        match expected {
            Ok(value) => assert_eq!(got.as_deref(), Ok(value), "input {input:?}"),
            Err(fragment) => {
                let message = got.expect_err(input);
                assert!(message.contains(fragment), "input {input:?}: {message}");
            }
        }
    }

    #[test]
    fn amounts_are_read_in_dutch_and_plain_notation_by_the_apis_rules() {
        check("1.234,56", Ok("1234.56"));
        check("1234,56", Ok("1234.56"));
        check("1234.56", Ok("1234.56"));
        check("€ 50.000,00", Ok("50000.00"));
        check("50000", Ok("50000.00"));
        check("0,05", Ok("0.05"));
        check("1.250", Err("niet eenduidig"));
        check("12.34.56,00", Err("geen bedrag"));
        check("1,2,3", Err("geen bedrag"));
        check("abc", Err("geen bedrag"));
        check("", Err("Vul het bedrag in"));
        check("0,00", Err("meer dan € 0,00"));
        check("-5,00", Err("meer dan € 0,00"));
        check("1,234", Err("twee decimalen"));
        check("2.000.000.000,00", Err("maximum"));
    }

    #[test]
    fn domain_amounts_read_in_dutch() {
        assert_eq!(money_text("50000.00"), "€ 50.000,00");
        assert_eq!(money_text("0.00"), "€ 0,00");
    }

    #[test]
    fn every_mistake_in_a_form_is_reported() {
        let mut check = Check::default();
        assert!(check.value("wijk", "de wijk", "", crate::domain::ids::WijkId::parse).is_none());
        assert!(check.amount("bedrag", "abc").is_none());
        assert!(check.date("boekdatum", "boekdatum", "32-13-2022").is_none());
        assert_eq!(check.date("d", "boekdatum", "15-09-2022"), NaiveDate::from_ymd_opt(2022, 9, 15));
        let fields: Vec<&str> = check.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["wijk", "bedrag", "boekdatum"]);
    }
}
