//! Publishing HR events to the public `{ns}.events` exchange, as an HR
//! system or IdP would: `scimfleet publish` and the demo feed events this way.
//!
//! Input is JSON Lines; blank lines and `#` comment lines are skipped. Bodies
//! are sent as they are, even unreadable ones: validation is the scheduler's
//! job, and an invalid event must end in the dead-letter queue with a reason,
//! not vanish at the edge. The routing key is the event `type` when it can be
//! read. Publishes are confirmed in pipelined batches.

use std::io::BufRead;

use super::{Outgoing, PublishError, Publisher, Topology, persistent};
use crate::telemetry::{self, propagation};

/// Content type of CloudEvents in structured mode.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
const BATCH: usize = 500;

/// What a publish run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Lines read as events.
    pub read: usize,
    /// Events the broker confirmed.
    pub confirmed: usize,
}

/// Reads events from `input` and publishes them with confirms.
pub async fn publish_jsonl(
    publisher: &Publisher,
    topology: &Topology,
    input: impl BufRead,
) -> Result<PublishReport, EventsError> {
    let exchange = topology.events_exchange();
    let mut report = PublishReport::default();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    for (number, line) in input.lines().enumerate() {
        let line = line.map_err(|source| EventsError::Read { line: number + 1, source })?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        report.read += 1;
        batch.push(line.as_bytes().to_vec());
        if batch.len() == BATCH {
            report.confirmed += publish_batch(publisher, &exchange, &batch).await?;
            batch.clear();
        }
    }
    report.confirmed += publish_batch(publisher, &exchange, &batch).await?;
    Ok(report)
}

/// Publishing events failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// The input could not be read.
    #[error("cannot read line {line}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The broker did not confirm.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

async fn publish_batch(
    publisher: &Publisher,
    exchange: &str,
    bodies: &[Vec<u8>],
) -> Result<usize, PublishError> {
    let headers: Vec<(String, Option<String>)> = bodies.iter().map(|b| routing_of(b)).collect();
    // One producer span per event, open until the batch is confirmed: the
    // root of the event's trace, carried in its `traceparent` header.
    let mut spans = Vec::with_capacity(bodies.len());
    let messages: Vec<Outgoing<'_>> = bodies
        .iter()
        .zip(&headers)
        .map(|(body, (routing_key, id))| {
            let span = telemetry::producer_span(exchange, routing_key_field(routing_key));
            if let Some(id) = id {
                span.record("scimfleet.event_id", id.as_str());
            }
            let mut trace_headers = lapin::types::FieldTable::default();
            propagation::inject_amqp(&span, &mut trace_headers);
            spans.push(span);
            let mut properties = persistent(CLOUDEVENTS_JSON).with_headers(trace_headers);
            if let Some(id) = id {
                properties = properties.with_message_id(id.as_str().into());
            }
            Outgoing { exchange, routing_key, body, properties, mandatory: true }
        })
        .collect();
    publisher.publish_all(messages).await
}

/// An event's routing key as a span or log field: the key when it is an
/// event type, else `other`. The publisher picks the key (it should be the
/// `type`), so it may hold anything, personal data included: an invalid
/// event whose `type` is an e-mail address is routed by that address.
pub fn routing_key_field(routing_key: &str) -> &str {
    let value = serde_json::Value::from(routing_key);
    if serde_json::from_value::<scimfleet_schemas::EventType>(value).is_ok() { routing_key } else { "other" }
}

/// Routing key (`type`) and message id (`id`) of an event, when readable.
pub fn routing_of(body: &[u8]) -> (String, Option<String>) {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name)?.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 200 && s.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
    };
    (field("type").unwrap_or_else(|| "unknown".to_owned()), field("id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_uses_type_and_id_when_readable() {
        let (key, id) = routing_of(br#"{"type":"person.hired","id":"evt-1"}"#);
        assert_eq!((key.as_str(), id.as_deref()), ("person.hired", Some("evt-1")));
        assert_eq!(routing_of(b"not json"), ("unknown".to_owned(), None));
        assert_eq!(routing_of(br#"{"type":"has space"}"#).0, "unknown");
    }

    #[test]
    fn only_event_types_are_routing_key_fields() {
        assert_eq!(routing_key_field("person.hired"), "person.hired");
        assert_eq!(routing_key_field("ada@example.com"), "other");
        assert_eq!(routing_key_field("unknown"), "other");
    }
}
