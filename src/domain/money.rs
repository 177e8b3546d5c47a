//! Euro amounts. Money is `rust_decimal` all the way down; a float never touches it.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest single amount the ledger accepts: one billion euro. Hilversum's
/// whole yearly wijkbudget is under half a million, so anything above this is
/// a typing error, and the bound keeps every sum far inside `i64` cents.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A positive amount of euro with at most two decimals, at most [`AMOUNT_MAX`].
/// It can only be built through [`Amount::parse`] or [`Amount::try_from`], so
/// an invalid amount cannot exist past the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("`{0}` is not a number; write euro as a decimal such as \"1250.00\"")]
    NotANumber(String),
    #[error("the amount must be more than zero")]
    NotPositive,
    #[error("the amount has more than two decimals; round it to whole cents")]
    TooManyDecimals,
    #[error("the amount is larger than the limit of 1000000000.00 euro")]
    TooLarge,
}

impl Amount {
    /// Parses a decimal string exactly. Exponents, `NaN` and infinities are refused.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        Self::try_from(parse_decimal(text)?)
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Whole cents; exact because an amount never has more than two decimals.
    pub fn cents(self) -> i64 {
        let mut scaled = self.0;
        scaled.rescale(2);
        i64::try_from(scaled.mantissa()).expect("amounts are bounded far below i64::MAX cents")
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = AmountError;

    fn try_from(value: Decimal) -> Result<Self, AmountError> {
        if value <= Decimal::ZERO {
            return Err(AmountError::NotPositive);
        }
        if value.normalize().scale() > 2 {
            return Err(AmountError::TooManyDecimals);
        }
        if value > AMOUNT_MAX {
            return Err(AmountError::TooLarge);
        }
        let mut value = value;
        value.rescale(2);
        Ok(Self(value))
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, AmountError> {
        Self::parse(s)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Amount::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a plain decimal exactly, of any sign and scale; the caller
/// decides what range is valid (a settled amount may be zero, for one).
pub fn parse_decimal(text: &str) -> Result<Decimal, AmountError> {
    let trimmed = text.trim();
    let plain = !trimmed.is_empty()
        && trimmed
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+')));
    if !plain {
        return Err(AmountError::NotANumber(text.chars().take(40).collect()));
    }
    Decimal::from_str_exact(trimmed).map_err(|_| AmountError::NotANumber(text.chars().take(40).collect()))
}

/// Why a euro amount as a person writes it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotationError {
    /// Not a number in either notation.
    NotANumber,
    /// `1.250`: a dot and exactly three digits, no comma, could be 1,25 or 1250.
    Ambiguous,
}

/// An amount as people write it, in the plain notation [`parse_decimal`]
/// reads: Dutch `1.234,56` and `1234,56`, or plain `1234.56`, with or
/// without `€`. A bare `1.250` is refused rather than guessed.
pub fn plain_notation(text: &str) -> Result<String, NotationError> {
    let text = text.trim().trim_start_matches('€').trim();
    if let Some((whole, cents)) = text.split_once(',') {
        if cents.contains([',', '.']) {
            return Err(NotationError::NotANumber);
        }
        let groups: Vec<&str> = whole.split('.').collect();
        let grouped_well = groups.len() == 1
            || (!groups[0].trim_start_matches(['-', '+']).is_empty()
                && groups[0].trim_start_matches(['-', '+']).len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3));
        return if grouped_well { Ok(format!("{}.{cents}", groups.concat())) } else { Err(NotationError::NotANumber) };
    }
    if let Some((_, after)) = text.split_once('.') {
        if after.len() == 3 && after.chars().all(|c| c.is_ascii_digit()) {
            return Err(NotationError::Ambiguous);
        }
    }
    Ok(text.to_string())
}

/// A date as people write it: `2022-09-15` or the Dutch `15-09-2022`.
pub fn parse_written_date(text: &str) -> Option<chrono::NaiveDate> {
    let text = text.trim();
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(text, "%d-%m-%Y"))
        .ok()
}

/// Formats a signed balance the way the API and reports show money: two decimals.
pub fn format_euro(value: Decimal) -> String {
    format!("{value:.2}")
}

/// Converts whole cents (as stored in the read models) back to euro.
pub fn euro_from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dutch_and_plain_notation_read_the_same_and_ambiguity_is_refused() {
        for (input, expected) in [
            ("1.234,56", Ok("1234.56")),
            ("1234,56", Ok("1234.56")),
            ("1234.56", Ok("1234.56")),
            ("€ 50.000,00", Ok("50000.00")),
            ("-12,00", Ok("-12.00")),
            ("1.250", Err(NotationError::Ambiguous)),
            ("12.34.56,00", Err(NotationError::NotANumber)),
            ("1,2,3", Err(NotationError::NotANumber)),
        ] {
            assert_eq!(plain_notation(input), expected.map(str::to_string), "input {input:?}");
        }
    }

    fn check(input: &str, expected: Result<&str, AmountError>) {
        let got = Amount::parse(input).map(|a| a.to_string());
        assert_eq!(got, expected.map(str::to_string), "input {input:?}");
    }

    #[test]
    fn amounts_are_parsed_exactly_or_refused_with_a_reason() {
        check("50000", Ok("50000.00"));
        check("50000.5", Ok("50000.50"));
        check("0.01", Ok("0.01"));
        check("1000000000.00", Ok("1000000000.00"));
        check("1.230", Ok("1.23"));
        check("0", Err(AmountError::NotPositive));
        check("-5", Err(AmountError::NotPositive));
        check("0.001", Err(AmountError::TooManyDecimals));
        check("1.234", Err(AmountError::TooManyDecimals));
        check("1000000000.01", Err(AmountError::TooLarge));
        check("1e5", Err(AmountError::NotANumber("1e5".into())));
        check("NaN", Err(AmountError::NotANumber("NaN".into())));
        check("", Err(AmountError::NotANumber("".into())));
        check("12,50", Err(AmountError::NotANumber("12,50".into())));
        check(
            "99999999999999999999999999999999",
            Err(AmountError::NotANumber("99999999999999999999999999999999".into())),
        );
    }

    #[test]
    fn cents_are_exact() {
        assert_eq!(Amount::parse("50000").unwrap().cents(), 5_000_000);
        assert_eq!(Amount::parse("0.07").unwrap().cents(), 7);
    }

    #[test]
    fn amounts_serialize_as_two_decimal_strings() {
        let a = Amount::parse("12.5").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"12.50\"");
        let back: Amount = serde_json::from_str("\"12.50\"").unwrap();
        assert_eq!(back, a);
    }
}

/// Whole cents of a balance with at most two decimals (every ledger amount).
pub fn cents(value: Decimal) -> i64 {
    let mut scaled = value;
    scaled.rescale(2);
    i64::try_from(scaled.mantissa()).expect("ledger balances are bounded far below i64::MAX cents")
}
