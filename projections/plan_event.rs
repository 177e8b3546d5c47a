//! One stored event as planning reads it ([`PlanEvent`]): its place in
//! the log, who recorded it, and its payload in the current shape of its
//! type. The projector and the group commit read it from a
//! [`ChainedEvent`], whose payload is a `serde_json::Value`; the rebuild,
//! which reads the whole log, decodes it straight from the log's JSON text,
//! which saves building and freeing that `Value` for every event.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::fund::FundEvent;
use crate::domain::wijk::WijkEvent;
use crate::store::chain::ChainedEvent;
use crate::store::repository::meta;

/// What planning reads of one event (see the module comment):
/// [`PlanEvent::of`] a stored event, [`PlanEvent::of_text`] its text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEvent {
    pub position: i64,
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    pub recorded_at: DateTime<Utc>,
    /// The metadata's actor and role, `unknown` where it has none.
    pub actor: String,
    pub role: String,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Wijk(WijkEvent),
    Fund(FundEvent),
}

impl PlanEvent {
    /// Reads a stored event for planning (through the upcasters if it is old).
    pub fn of(event: &ChainedEvent) -> anyhow::Result<Self> {
        let payload =
            Payload::read(&event.aggregate_type, event.position, || event.read_payload(), || event.read_payload())?;
        Ok(Self {
            position: event.position,
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            recorded_at: event.recorded_at,
            actor: text_or_unknown(event.metadata.get(meta::ACTOR)),
            role: text_or_unknown(event.metadata.get(meta::ROLE)),
            payload,
        })
    }

    /// [`PlanEvent::of`] for an event whose payload and metadata are given
    /// as the JSON text the log keeps: decoded straight into the event
    /// type when it is stored in the current version, through
    /// [`PlanEvent::of`] when an upcaster applies. Gives what `of` gives
    /// for the same event (a test holds it to that).
    pub fn of_text(stored: StoredText<'_>) -> anyhow::Result<Self> {
        if crate::store::chain::upcaster_applies(stored.event_type, stored.event_version) {
            return Self::of(&stored.into_chained()?);
        }
        let position = stored.position;
        let text = stored.payload;
        let payload = Payload::read(
            stored.aggregate_type,
            position,
            || serde_json::from_str(text),
            || serde_json::from_str(text),
        )?;
        let who: Who = serde_json::from_str(stored.metadata)
            .with_context(|| format!("event at position {position} has metadata that is not a JSON object"))?;
        Ok(Self {
            position,
            event_id: stored.event_id.to_string(),
            event_type: stored.event_type.to_string(),
            aggregate_id: stored.aggregate_id.to_string(),
            recorded_at: stored.recorded_at,
            actor: text_or_unknown(who.actor.as_ref()),
            role: text_or_unknown(who.role.as_ref()),
            payload,
        })
    }
}

/// One stored event's columns as the log's text, borrowed from its row.
pub struct StoredText<'a> {
    pub position: i64,
    pub event_id: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a str,
    pub metadata: &'a str,
}

impl StoredText<'_> {
    fn into_chained(self) -> anyhow::Result<ChainedEvent> {
        let json = |text: &str, what: &str| {
            serde_json::from_str::<Value>(text)
                .with_context(|| format!("event at position {} has {what} that is not JSON", self.position))
        };
        Ok(ChainedEvent {
            position: self.position,
            event_id: self.event_id.to_string(),
            recorded_at: self.recorded_at,
            aggregate_type: self.aggregate_type.to_string(),
            aggregate_id: self.aggregate_id.to_string(),
            sequence: self.sequence,
            event_type: self.event_type.to_string(),
            event_version: self.event_version.to_string(),
            payload: json(self.payload, "a payload")?,
            metadata: json(self.metadata, "metadata")?,
            hash: String::new(),
        })
    }
}

/// The metadata keys planning reads; the others are skipped unread.
#[derive(serde::Deserialize)]
struct Who {
    #[serde(default)]
    actor: Option<Value>,
    #[serde(default)]
    role: Option<Value>,
}

impl Payload {
    /// The payload of an event of `aggregate_type`, decoded by `wijk` or
    /// `fund`; any other aggregate type is refused.
    fn read(
        aggregate_type: &str,
        position: i64,
        wijk: impl FnOnce() -> Result<WijkEvent, serde_json::Error>,
        fund: impl FnOnce() -> Result<FundEvent, serde_json::Error>,
    ) -> anyhow::Result<Self> {
        let unreadable = || format!("event at position {position} is not a readable {aggregate_type} event");
        Ok(match aggregate_type {
            "wijk" => Payload::Wijk(wijk().with_context(unreadable)?),
            "fund" => Payload::Fund(fund().with_context(unreadable)?),
            other => anyhow::bail!("event at position {position} has unknown aggregate type `{other}`"),
        })
    }
}

/// A metadata value as planning records it: its text, or `unknown` when
/// it is missing or not text.
fn text_or_unknown(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or("unknown").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fund::FUND_ESTABLISHED_VERSION;
    use crate::domain::test_support::{a21_182, allocated, established, wegaplein};
    use crate::store::chain::canonical_json;
    use serde_json::json;

    fn chained(
        position: i64,
        aggregate_type: &str,
        event_type: &str,
        version: &str,
        payload: Value,
        metadata: Value,
    ) -> ChainedEvent {
        ChainedEvent {
            position,
            event_id: format!("event-{position}"),
            recorded_at: "2022-06-01T10:00:00.123456Z".parse().unwrap(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: if aggregate_type == "wijk" { "oost-1223".into() } else { "A21-182".into() },
            sequence: position,
            event_type: event_type.into(),
            event_version: version.into(),
            payload,
            metadata,
            hash: String::new(),
        }
    }

    fn as_text(event: &ChainedEvent) -> (String, String) {
        (canonical_json(&event.payload), canonical_json(&event.metadata))
    }

    /// The rebuild decodes the log's text straight into the event types;
    /// the projector reads the same events through `serde_json::Value`.
    /// Both must read the same: current and upcast versions, metadata with
    /// an actor and role, without them, or with one that is not text.
    #[test]
    fn an_event_read_from_its_text_is_the_event_read_through_a_json_value() {
        let fund = |event: FundEvent| serde_json::to_value(&event).unwrap();
        let who = json!({"actor": "financien@hilversum", "role": "finance", "correlation_id": "c-1"});
        let events = [
            chained(
                1,
                "wijk",
                "WijkRegistered",
                "1.0",
                json!({"WijkRegistered": {"wijk_id": "oost-1223", "name": "Oost 1223"}}),
                who.clone(),
            ),
            chained(2, "fund", "FundEstablished", FUND_ESTABLISHED_VERSION, fund(established()), who.clone()),
            // Version 1 had no `booked_on`: the upcaster adds it.
            chained(
                3,
                "fund",
                "FundEstablished",
                "1.0",
                json!({"FundEstablished": serde_json::to_value(a21_182()).unwrap()}),
                json!({}),
            ),
            chained(
                4,
                "fund",
                "BudgetAllocated",
                "1.0",
                fund(allocated("oost-1223", "1234.56")),
                json!({"actor": 7, "role": null}),
            ),
            chained(
                5,
                "fund",
                "ExpenseRecorded",
                "1.0",
                fund(FundEvent::ExpenseRecorded(wegaplein("W-1", "50000"))),
                who,
            ),
        ];
        for event in &events {
            let (payload, metadata) = as_text(event);
            let from_text = PlanEvent::of_text(StoredText {
                position: event.position,
                event_id: &event.event_id,
                recorded_at: event.recorded_at,
                aggregate_type: &event.aggregate_type,
                aggregate_id: &event.aggregate_id,
                sequence: event.sequence,
                event_type: &event.event_type,
                event_version: &event.event_version,
                payload: &payload,
                metadata: &metadata,
            })
            .unwrap();
            assert_eq!(from_text, PlanEvent::of(event).unwrap(), "event {}", event.position);
        }
        let upcast = PlanEvent::of(&events[2]).unwrap();
        assert!(matches!(upcast.payload, Payload::Fund(FundEvent::FundEstablished { .. })));
        assert_eq!((upcast.actor.as_str(), upcast.role.as_str()), ("unknown", "unknown"));
        assert_eq!(PlanEvent::of(&events[3]).unwrap().actor, "unknown", "an actor that is not text is unknown");
        let (payload, metadata) = as_text(&events[1]);
        let refused = PlanEvent::of_text(StoredText {
            position: 2,
            event_id: "e",
            recorded_at: events[1].recorded_at,
            aggregate_type: "gemeente",
            aggregate_id: "hilversum",
            sequence: 1,
            event_type: "FundEstablished",
            event_version: FUND_ESTABLISHED_VERSION,
            payload: &payload,
            metadata: &metadata,
        });
        assert!(refused.unwrap_err().to_string().contains("unknown aggregate type `gemeente`"));
    }
}
