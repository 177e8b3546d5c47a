//! The pure domain: aggregates, commands, events, money and double entry.
//! It does no IO; the outside world reaches it through cqrs-es `Services`.

pub mod fund;
pub mod ids;
pub mod money;
pub mod postings;
pub mod wijk;

#[cfg(test)]
mod fund_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
pub(crate) mod test_support;

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

/// The upcasters that keep every stored event readable. Each one turns one
/// older `event_version` of one event type into the current shape; a stored
/// event itself is never rewritten.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(SemanticVersionEventUpcaster::new(
            "FundEstablished",
            fund::FUND_ESTABLISHED_VERSION,
            Box::new(fund_established_1_to_2),
        )),
        Box::new(SemanticVersionEventUpcaster::new(
            "CommitmentMade",
            fund::COMMITMENT_MADE_VERSION,
            Box::new(commitment_made_1_0_to_1_1),
        )),
    ]
}

/// `CommitmentMade` 1.0 did not say what kind of applicant applied; 1.1
/// does. An old grant counts as a private person's, so no name it holds is
/// ever published by mistake.
fn commitment_made_1_0_to_1_1(mut payload: Value) -> Value {
    if let Some(details) = payload.get_mut("CommitmentMade").and_then(Value::as_object_mut) {
        details.entry("applicant_kind").or_insert_with(|| Value::String("private".into()));
    }
    payload
}

/// `FundEstablished` 1.0 stored the terms directly (`{"FundEstablished": terms}`)
/// and had no booking date. 2.0 wraps them as `{terms, booked_on}`; the booking
/// date of an old event is derived exactly as new ones are: the adoption date
/// if it falls in the fund's year, else 1 January of that year.
fn fund_established_1_to_2(payload: Value) -> Value {
    let Some(terms) = payload.get("FundEstablished").cloned() else {
        return payload;
    };
    let booked_on = serde_json::from_value::<fund::FundTerms>(terms.clone()).map(|t| t.booking_date().to_string()).ok();
    serde_json::json!({ "FundEstablished": { "terms": terms, "booked_on": booked_on } })
}

/// A client-chosen id that one event introduces and that must be unique
/// across all aggregates: `(kind, id)`. The store claims it in the same
/// transaction as the event.
pub fn client_id_claim(event_type: &str, payload: &Value) -> Option<(&'static str, String)> {
    match event_type {
        "ExpenseRecorded" => {
            payload.pointer("/ExpenseRecorded/expense_id").and_then(Value::as_str).map(|id| ("expense", id.to_string()))
        }
        "CommitmentPaid" => {
            payload.pointer("/CommitmentPaid/expense_id").and_then(Value::as_str).map(|id| ("expense", id.to_string()))
        }
        "CommitmentMade" => payload
            .pointer("/CommitmentMade/commitment_id")
            .and_then(Value::as_str)
            .map(|id| ("commitment", id.to_string())),
        _ => None,
    }
}
