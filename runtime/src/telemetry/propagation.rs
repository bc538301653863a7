//! W3C trace context (`traceparent` / `tracestate`) across RabbitMQ and HTTP.
//!
//! One HR event is one trace: the publisher's context rides in the event's
//! AMQP headers; the scheduler continues it and injects its per-app job
//! span into each job's headers; the worker continues that, and every SCIM
//! request carries the client span's `traceparent`. Retries, dead-letters
//! and replays copy the job's headers, so they stay in the trace.
//!
//! A re-check runs minutes to days later; keeping it in the deprovision's
//! trace would hold that trace open for a day. Re-check jobs therefore carry
//! the context under [`LINK_HEADER`] instead, and the worker starts a new
//! trace that links to it.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying the parent span.
pub const TRACEPARENT: &str = "traceparent";

/// Header of a context that a message's handling links to rather than continues.
pub const LINK_HEADER: &str = "scimfleet-link-traceparent";

struct AmqpWrite<'a>(&'a mut FieldTable);

impl Injector for AmqpWrite<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.into(), AMQPValue::LongString(LongString::from(value.into_bytes())));
    }
}

/// Reads AMQP headers; `rename` maps `traceparent` to another header.
struct AmqpRead<'a> {
    headers: &'a FieldTable,
    traceparent: &'a str,
}

impl Extractor for AmqpRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let key = if key == TRACEPARENT { self.traceparent } else { key };
        match self.headers.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.inner().keys().map(|k| k.as_str()).collect()
    }
}

struct HttpWrite<'a>(&'a mut http::HeaderMap);

impl Injector for HttpWrite<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Writes `span`'s context into AMQP `headers` (`traceparent`, `tracestate`).
pub fn inject_amqp(span: &Span, headers: &mut FieldTable) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut AmqpWrite(headers));
}

/// Writes `span`'s context into `headers` under [`LINK_HEADER`], for a
/// message whose handling should start a trace of its own that links here.
pub fn inject_amqp_link(span: &Span, headers: &mut FieldTable) {
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    if let Some(parent) = carrier.remove(TRACEPARENT) {
        AmqpWrite(headers).set(LINK_HEADER, parent);
    }
}

fn extract(properties: &BasicProperties, traceparent: &str) -> Option<Context> {
    let headers = properties.headers().as_ref()?;
    let cx = TraceContextPropagator::new().extract(&AmqpRead { headers, traceparent });
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` (not yet entered) continue the trace in a message's
/// headers, or link to the one under [`LINK_HEADER`]. Without either it
/// stays the root of a new trace. Returns whether a context was found.
pub fn adopt_amqp(span: &Span, properties: &BasicProperties) -> bool {
    if let Some(parent) = extract(properties, TRACEPARENT) {
        // Fails only when the span is disabled or already started: it then
        // stays a root, which loses the link, not the work.
        let _ignored = span.set_parent(parent);
        return true;
    }
    if let Some(linked) = extract(properties, LINK_HEADER) {
        span.add_link(linked.span().span_context().clone());
        return true;
    }
    false
}

/// Writes `span`'s context into HTTP request headers.
pub fn inject_http(span: &Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HttpWrite(headers));
}

/// The trace id (32 hex digits) of `span`, when it is part of a trace.
pub fn trace_id(span: &Span) -> Option<String> {
    let cx = span.context();
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}
