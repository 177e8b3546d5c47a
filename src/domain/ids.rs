//! Identifiers and bounded texts, parsed once at the boundary.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("may only contain letters, digits, '-', '_' and '.'")]
    BadCharacters,
    #[error("contains control characters; remove line breaks, tabs and other invisible characters")]
    ControlCharacters,
    #[error("year {0} is outside 2000..=2100")]
    YearOutOfRange(i32),
}

/// The longest identifier, in characters.
pub const ID_MAX: usize = 64;

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, InvalidValue> {
                parse_identifier(text).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A wijk's identifier, chosen by the municipality (`oost-1223`). Wijken
    /// are data, so another municipality brings its own.
    WijkId
);
identifier!(
    /// A fund's identifier, chosen by finance (`begroting-2022`, `A21-182`).
    FundId
);
identifier!(
    /// An expense's identifier, chosen by the client (an invoice or booking number).
    ExpenseId
);

identifier!(
    /// A commitment's identifier, chosen by the client (the grant decision's number).
    CommitmentId
);

fn parse_identifier(text: &str) -> Result<String, InvalidValue> {
    if text.is_empty() {
        return Err(InvalidValue::Empty);
    }
    let len = text.chars().count();
    if len > ID_MAX {
        return Err(InvalidValue::TooLong { len, max: ID_MAX });
    }
    if !text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(InvalidValue::BadCharacters);
    }
    Ok(text.to_string())
}

/// Free text a person typed (names, reasons, references), trimmed, non-empty,
/// bounded, and free of control characters so it prints safely in CSV and logs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Text(String);

/// The longest text the ledger stores in one field.
pub const TEXT_MAX: usize = 500;

impl Text {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue::Empty);
        }
        let len = trimmed.chars().count();
        if len > TEXT_MAX {
            return Err(InvalidValue::TooLong { len, max: TEXT_MAX });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidValue::ControlCharacters);
        }
        Ok(Self(trimmed.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A budget year (begrotingsjaar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Year(i32);

impl Year {
    pub fn new(year: i32) -> Result<Self, InvalidValue> {
        if (2000..=2100).contains(&year) {
            Ok(Self(year))
        } else {
            Err(InvalidValue::YearOutOfRange(year))
        }
    }
    pub fn value(self) -> i32 {
        self.0
    }
    pub fn contains(self, date: NaiveDate) -> bool {
        date.year() == self.0
    }
    pub fn last_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0, 12, 31).expect("31 December exists in every year")
    }
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.0, 1, 1).expect("1 January exists in every year")
    }
}

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Year {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let year = i32::deserialize(d)?;
        Self::new(year).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_what_would_not_survive_a_url_or_a_csv() {
        assert!(WijkId::parse("oost-1223").is_ok());
        assert!(FundId::parse("A21-182").is_ok());
        assert_eq!(WijkId::parse(""), Err(InvalidValue::Empty));
        assert_eq!(WijkId::parse("oost 1223"), Err(InvalidValue::BadCharacters));
        assert_eq!(WijkId::parse("oost/1223"), Err(InvalidValue::BadCharacters));
        assert!(matches!(WijkId::parse(&"a".repeat(65)), Err(InvalidValue::TooLong { .. })));
    }

    #[test]
    fn texts_are_trimmed_and_bounded_and_printable() {
        assert_eq!(Text::parse("  Wegaplein  ").unwrap().as_str(), "Wegaplein");
        assert_eq!(Text::parse("   "), Err(InvalidValue::Empty));
        assert_eq!(Text::parse("a\u{0}b"), Err(InvalidValue::ControlCharacters));
        assert_eq!(Text::parse("a\nb"), Err(InvalidValue::ControlCharacters));
        assert!(matches!(Text::parse(&"x".repeat(501)), Err(InvalidValue::TooLong { .. })));
    }

    #[test]
    fn years_are_bounded() {
        assert!(Year::new(2022).is_ok());
        assert_eq!(Year::new(1999), Err(InvalidValue::YearOutOfRange(1999)));
    }
}
