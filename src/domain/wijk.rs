//! The wijk register. Wijken are data, registered by event, so that another
//! municipality can bring its own areas without a code change.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::ids::{Text, WijkId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WijkCommand {
    Register { wijk_id: WijkId, name: Text },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WijkEvent {
    WijkRegistered { wijk_id: WijkId, name: Text },
}

impl DomainEvent for WijkEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WijkRegistered { .. } => "WijkRegistered".into(),
        }
    }
    fn event_version(&self) -> String {
        "1.0.0".into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WijkError {
    #[error("wijk {wijk_id} is already registered as \"{existing}\"; pick another wijk_id")]
    AlreadyRegistered { wijk_id: WijkId, existing: Text },
}

/// One wijk. Registering the same wijk twice with the same name changes
/// nothing, so a retried registration is harmless.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wijk {
    registered: Option<(WijkId, Text)>,
}

impl Wijk {
    pub fn is_registered(&self) -> bool {
        self.registered.is_some()
    }
}

impl Aggregate for Wijk {
    const TYPE: &'static str = "wijk";
    type Command = WijkCommand;
    type Event = WijkEvent;
    type Error = WijkError;
    type Services = ();

    async fn handle(&mut self, command: WijkCommand, _services: &(), sink: &EventSink<Self>) -> Result<(), WijkError> {
        match command {
            WijkCommand::Register { wijk_id, name } => match &self.registered {
                Some((_, existing)) if *existing == name => Ok(()),
                Some((_, existing)) => Err(WijkError::AlreadyRegistered { wijk_id, existing: existing.clone() }),
                None => {
                    sink.write(WijkEvent::WijkRegistered { wijk_id, name }, self).await;
                    Ok(())
                }
            },
        }
    }

    fn apply(&mut self, event: WijkEvent) {
        match event {
            WijkEvent::WijkRegistered { wijk_id, name } => self.registered = Some((wijk_id, name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn oost() -> (WijkId, Text) {
        (WijkId::parse("oost-1223").unwrap(), Text::parse("Oost 1223").unwrap())
    }

    #[test]
    fn a_new_wijk_is_registered() {
        let (wijk_id, name) = oost();
        TestFramework::<Wijk>::with(())
            .given_no_previous_events()
            .when(WijkCommand::Register { wijk_id: wijk_id.clone(), name: name.clone() })
            .then_expect_events(vec![WijkEvent::WijkRegistered { wijk_id, name }]);
    }

    #[test]
    fn registering_the_same_wijk_again_with_the_same_name_records_nothing() {
        let (wijk_id, name) = oost();
        TestFramework::<Wijk>::with(())
            .given(vec![WijkEvent::WijkRegistered { wijk_id: wijk_id.clone(), name: name.clone() }])
            .when(WijkCommand::Register { wijk_id, name })
            .then_expect_events(vec![]);
    }

    #[test]
    fn registering_a_wijk_id_again_under_another_name_is_refused() {
        let (wijk_id, name) = oost();
        TestFramework::<Wijk>::with(())
            .given(vec![WijkEvent::WijkRegistered { wijk_id: wijk_id.clone(), name }])
            .when(WijkCommand::Register { wijk_id, name: Text::parse("Oost").unwrap() })
            .then_expect_error_message("wijk oost-1223 is already registered as \"Oost 1223\"; pick another wijk_id");
    }
}
