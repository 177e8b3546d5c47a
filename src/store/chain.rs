//! The hash chain over the global log, and the canonical bytes it hashes.
//! ARCHITECTURE.md specifies this encoding for auditors; change neither
//! without the other, and never in a way that changes an existing hash.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The "previous hash" of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// One stored event as the chain sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ChainedEvent {
    pub position: i64,
    pub event_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub hash: String,
}

impl ChainedEvent {
    /// Reads the payload as the current shape of its event type: in place
    /// when it is stored in the current version, through the domain's
    /// upcasters into a copy when it is older.
    pub fn read_payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        if !upcaster_applies(&self.event_type, &self.event_version) {
            return T::deserialize(&self.payload);
        }
        let stored = cqrs_es::persist::SerializedEvent::new(
            self.aggregate_id.clone(),
            self.sequence as usize,
            self.aggregate_type.clone(),
            self.event_type.clone(),
            self.event_version.clone(),
            self.payload.clone(),
            self.metadata.clone(),
        );
        let current =
            UPCASTERS
                .iter()
                .fold(stored, |e, u| if u.can_upcast(&e.event_type, &e.event_version) { u.upcast(e) } else { e });
        serde_json::from_value(current.payload)
    }
}

static UPCASTERS: std::sync::LazyLock<Vec<Box<dyn cqrs_es::persist::EventUpcaster>>> =
    std::sync::LazyLock::new(crate::domain::upcasters);

/// Whether an event of this type and version is stored in an older shape
/// than the code's, which the domain's upcasters read.
pub fn upcaster_applies(event_type: &str, event_version: &str) -> bool {
    UPCASTERS.iter().any(|u| u.can_upcast(event_type, event_version))
}

/// Timestamps are hashed (and stored) at microsecond precision, which both
/// PostgreSQL and the RFC 3339 text in SQLite keep exactly.
pub fn format_recorded_at(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The hashed fields of an event as text, in their fixed order. They are
/// also exactly the text the stores keep in those columns.
pub fn canonical_fields(e: &ChainedEvent) -> [String; 10] {
    [
        e.position.to_string(),
        e.event_id.clone(),
        format_recorded_at(&e.recorded_at),
        e.aggregate_type.clone(),
        e.aggregate_id.clone(),
        e.sequence.to_string(),
        e.event_type.clone(),
        e.event_version.clone(),
        canonical_json(&e.payload),
        canonical_json(&e.metadata),
    ]
}

/// The canonical bytes of an event: each field as a 4-byte big-endian length
/// followed by its UTF-8 bytes, in a fixed order.
pub fn canonical_bytes(e: &ChainedEvent) -> Vec<u8> {
    let fields = canonical_fields(e);
    let mut bytes = Vec::with_capacity(fields.iter().map(|f| f.len() + 4).sum());
    for field in &fields {
        let len = u32::try_from(field.len()).expect("an event field is far below 4 GiB");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}

/// `SHA-256(previous hash || canonical bytes)`.
pub fn chain_hash(previous: &[u8; 32], event: &ChainedEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(event));
    hasher.finalize().into()
}

pub fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text).ok()?;
    bytes.try_into().ok()
}

/// Compact JSON with object keys sorted by their UTF-8 bytes. Strings are
/// escaped as serde_json does; numbers are written as stored.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_has_no_whitespace() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": "x", "y": null}], "c": "é\"\n"}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":"é\"\n","d":[1,{"y":null,"z":"x"}]},"b":1}"#);
    }

    #[test]
    fn the_hash_changes_when_any_byte_of_the_payload_changes() {
        let mut e = ChainedEvent {
            position: 1,
            event_id: "e".into(),
            recorded_at: DateTime::parse_from_rfc3339("2022-01-01T00:00:00Z").unwrap().into(),
            aggregate_type: "fund".into(),
            aggregate_id: "A21-182".into(),
            sequence: 1,
            event_type: "FundEstablished".into(),
            event_version: "2.0".into(),
            payload: json!({"amount": "50000.00"}),
            metadata: json!({}),
            hash: String::new(),
        };
        let before = chain_hash(&GENESIS, &e);
        e.payload = json!({"amount": "50001.00"});
        assert_ne!(before, chain_hash(&GENESIS, &e));
    }
}
