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
impl FundId {
    /// The id of the fund a year's close carries this fund's money into:
    /// `{id}-overheveling`. An id too long for that suffix keeps as much of
    /// itself as fits plus eight hex digits of a hash of the whole id, so two
    /// long ids that share a beginning still get different carry-over funds,
    /// and the same fund always gets the same one.
    pub fn carry_over(&self) -> FundId {
        const SUFFIX: &str = "-overheveling";
        let plain = format!("{}{SUFFIX}", self.0);
        if plain.len() <= ID_MAX {
            return FundId(plain);
        }
        // FNV-1a: stable across versions and platforms, unlike std's hasher.
        let hash = self.0.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        let keep = ID_MAX - SUFFIX.len() - 9;
        // Identifiers are ASCII, so a byte index is a character index.
        FundId(format!("{}-{hash:08x}{SUFFIX}", &self.0[..keep]))
    }
}

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
    fn every_fund_id_has_a_valid_carry_over_id_and_long_ones_stay_apart() {
        assert_eq!(FundId::parse("A21-182").unwrap().carry_over().as_str(), "A21-182-overheveling");
        let fits = "f".repeat(ID_MAX - "-overheveling".len());
        assert_eq!(FundId::parse(&fits).unwrap().carry_over().as_str(), format!("{fits}-overheveling"));
        let long_a = format!("{}a", "x".repeat(ID_MAX - 1));
        let long_b = format!("{}b", "x".repeat(ID_MAX - 1));
        let (a, b) = (FundId::parse(&long_a).unwrap().carry_over(), FundId::parse(&long_b).unwrap().carry_over());
        for id in [&a, &b] {
            assert_eq!(FundId::parse(id.as_str()).as_ref(), Ok(id), "a valid id");
            assert!(id.as_str().ends_with("-overheveling") && id.as_str().len() == ID_MAX, "{id}");
        }
        assert_ne!(a, b, "long ids sharing a beginning get different carry-over funds");
        assert_eq!(FundId::parse(&long_a).unwrap().carry_over(), a, "and always the same one");
    }

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
