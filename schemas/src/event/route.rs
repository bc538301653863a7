//! The routing key of an event published to the events exchange must be its
//! `type`. Bindings, queue policies and operators read the key; the
//! scheduler reads the body. An event routed as `person.updated` whose
//! `type` says `person.terminated` means different things to each, so it is
//! refused (dead-lettered) rather than processed under either reading.

use super::{Event, EventError, EventType};

impl Event {
    /// Refuses the event when `routing_key` is not its `type`. The error
    /// repeats the key only when it is an event type: a publisher picks the
    /// key, and it may hold anything, personal data included.
    pub fn check_routing_key(&self, routing_key: &str) -> Result<(), EventError> {
        if routing_key == self.kind.as_str() {
            return Ok(());
        }
        let known = EventType::ALL.iter().any(|t| t.as_str() == routing_key);
        let routing_key = if known { routing_key.to_owned() } else { "…".to_owned() };
        Err(EventError::RoutingKey { routing_key, kind: self.kind })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Event, EventError, EventType};

    fn sample() -> Event {
        Event::parse(include_bytes!("../../tests/fixtures/event.json")).expect("fixture")
    }

    #[test]
    fn the_type_as_routing_key_is_accepted() {
        assert!(sample().check_routing_key("person.terminated").is_ok());
    }

    #[test]
    fn another_type_is_refused_naming_both() {
        let error = sample().check_routing_key("person.updated").expect_err("mismatch");
        assert_eq!(error.kind(), "routing_key_mismatch");
        assert_eq!(
            error.to_string(),
            "routing key `person.updated` disagrees with field `type` (`person.terminated`)"
        );
        assert!(matches!(error, EventError::RoutingKey { kind: EventType::Terminated, .. }));
    }

    #[test]
    fn a_key_that_is_no_event_type_is_not_repeated() {
        for key in ["ada@example.com", "", "#", "person.terminated.x", "PERSON.TERMINATED"] {
            let error = sample().check_routing_key(key).expect_err("mismatch");
            assert_eq!(
                error.to_string(),
                "routing key `…` disagrees with field `type` (`person.terminated`)",
                "{key}"
            );
        }
    }
}
