//! Dutch formatting of money and dates: the one place the web app turns
//! cents into `€ 1.234,56` and a date into `15 september 2022`.

use chrono::{Datelike, NaiveDate};

const MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];

/// Whole cents as Dutch euro: `€ 1.234,56`, `€ -12,00`. Exact: no float.
pub fn euro(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    format!("€ {sign}{grouped},{:02}", cents % 100)
}

/// A date as Dutch prose: `15 september 2022`.
pub fn date(day: NaiveDate) -> String {
    format!("{} {} {}", day.day(), MONTHS[day.month0() as usize], day.year())
}

/// A stored ISO date (`2022-09-15`) as Dutch prose; anything else as it is.
pub fn iso_date(text: &str) -> String {
    text.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()).map_or_else(|| text.to_string(), date)
}

/// A stored RFC 3339 instant (`2022-09-15T10:11:12.000001Z`) as a Dutch
/// date with the time of day in UTC, to the minute.
pub fn instant(text: &str) -> String {
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(time)) if NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => {
            format!("{} {time} UTC", iso_date(day))
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_euro(cents: i64, expected: &str) {
        assert_eq!(euro(cents), expected, "cents {cents}");
    }

    #[test]
    fn euro_amounts_read_the_dutch_way() {
        check_euro(0, "€ 0,00");
        check_euro(5, "€ 0,05");
        check_euro(100, "€ 1,00");
        check_euro(123_456, "€ 1.234,56");
        check_euro(5_000_000, "€ 50.000,00");
        check_euro(45_000_000, "€ 450.000,00");
        check_euro(100_000_000_000, "€ 1.000.000.000,00");
        check_euro(-1_200, "€ -12,00");
        check_euro(-123_456_789, "€ -1.234.567,89");
    }

    #[test]
    fn dates_read_as_dutch_prose() {
        let day = NaiveDate::from_ymd_opt(2022, 9, 15).unwrap();
        assert_eq!(date(day), "15 september 2022");
        assert_eq!(iso_date("2022-01-01"), "1 januari 2022");
        assert_eq!(iso_date("not a date"), "not a date");
        assert_eq!(instant("2022-12-31T23:59:01.000001Z"), "31 december 2022 23:59 UTC");
    }

    proptest::proptest! {
        /// Reading the Dutch text back gives the same cents, for any amount.
        #[test]
        fn euro_text_reads_back_to_the_same_cents(cents in -100_000_000_000i64..100_000_000_000) {
            let text = euro(cents);
            let digits: String = text.trim_start_matches("€ ").replace('.', "").replace(',', "");
            proptest::prop_assert_eq!(digits.parse::<i64>().unwrap(), cents);
        }
    }
}
