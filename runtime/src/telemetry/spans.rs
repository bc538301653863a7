//! The RabbitMQ spans of every process, named and attributed as the
//! OpenTelemetry messaging conventions ask (`{operation} {destination}`,
//! `messaging.system`, `messaging.operation.type`, destination, routing
//! key), in one place so the scheduler, the worker and the publisher agree.
//!
//! Each declares every scimfleet field its callers may fill in later
//! (`Span::record` only sets declared fields); those left empty are not
//! exported.

use lapin::message::Delivery;
use tracing::Span;
use tracing::field::Empty;

use super::propagation;

/// The span of publishing one message to `exchange`; callers record
/// `scimfleet.app`, `.action`, `.job_id`, `.event_id` and
/// `messaging.message.id` as they apply. Its context goes into the
/// message's headers ([`propagation::inject_amqp`]).
pub fn producer_span(exchange: &str, routing_key: &str) -> Span {
    tracing::info_span!(
        "send",
        otel.name = %format_args!("send {exchange}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = Empty,
        scimfleet.app = Empty,
        scimfleet.action = Empty,
        scimfleet.job_id = Empty,
        scimfleet.event_id = Empty,
    )
}

/// The span of handling one delivery from `queue`, continuing (or linked
/// to) the trace in its headers. `routing_key` is what may be recorded of
/// the delivery's key. Callers record the `scimfleet.*` fields they know.
pub fn consumer_span(queue: &str, delivery: &Delivery, routing_key: &str) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {queue}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.body.size = delivery.data.len(),
        messaging.message.id = Empty,
        scimfleet.app = Empty,
        scimfleet.action = Empty,
        scimfleet.attempt = Empty,
        scimfleet.event_id = Empty,
        scimfleet.job_id = Empty,
        scimfleet.person = Empty,
        scimfleet.outcome = Empty,
        scimfleet.held = Empty,
        scimfleet.effective_at = Empty,
    );
    // The publisher's id, recorded only when it looks like an id (not an address).
    if let Some(id) = delivery.properties.message_id().as_ref().map(|id| id.as_str())
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_graphic() && c != '@')
    {
        span.record("messaging.message.id", id);
    }
    propagation::adopt_amqp(&span, &delivery.properties);
    span
}
