//! The log line format: JSON for log shippers, one compact line for a
//! terminal, both carrying the `trace_id` and `span_id` of the span the event
//! happened in, so a log line leads to its trace and back.
//!
//! The trace ids come from the OpenTelemetry layer's span data; a process
//! without that layer (CLI tools) simply logs without them. Span fields are
//! stored as JSON (`JsonFields`) and the current span's fields are added to
//! each line: a log inside a job's span carries its `scimfleet.app` and
//! `scimfleet.job_id` without repeating them at every call site.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as JSON objects (`json`) or compact text lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineFormat {
    pub json: bool,
}

impl<S> FormatEvent<S, JsonFields> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let mut span_fields = Map::new();
        let mut ids = None;
        if let Some(span) = ctx.lookup_current() {
            if let Some(stored) = span.extensions().get::<FormattedFields<JsonFields>>()
                && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(stored)
            {
                // `otel.*` fields steer the exporter (span name, kind); they say nothing new here.
                span_fields = map.into_iter().filter(|(key, _)| !key.starts_with("otel.")).collect();
            }
            ids = trace_ids(&span.id());
        }
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if self.json {
            let mut line = Map::new();
            line.insert("timestamp".into(), timestamp.into());
            line.insert("level".into(), metadata.level().as_str().into());
            line.insert("target".into(), metadata.target().into());
            line.extend(fields.0);
            for (key, value) in span_fields {
                line.entry(key).or_insert(value);
            }
            if let Some((trace_id, span_id)) = ids {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
            writeln!(writer, "{}", Value::Object(line))
        } else {
            let message = fields.0.remove("message");
            write!(writer, "{timestamp} {:>5} {}:", metadata.level(), metadata.target())?;
            if let Some(Value::String(message)) = message {
                write!(writer, " {message}")?;
            }
            for (key, value) in fields.0.iter().chain(span_fields.iter()) {
                match value {
                    Value::String(text) => write!(writer, " {key}={text}")?,
                    other => write!(writer, " {key}={other}")?,
                }
            }
            if let Some((trace_id, span_id)) = ids {
                write!(writer, " trace_id={trace_id} span_id={span_id}")?;
            }
            writeln!(writer)
        }
    }
}

/// The trace and span id (hex) of a span, when the OpenTelemetry layer knows it.
fn trace_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    let cx =
        tracing::dispatcher::get_default(|dispatch| tracing_opentelemetry::get_otel_context(id, dispatch))?;
    let span = cx.span();
    let context = span.span_context();
    context.is_valid().then(|| (context.trace_id().to_string(), context.span_id().to_string()))
}

/// An event's fields as JSON values.
#[derive(Default)]
struct FieldMap(Map<String, Value>);

impl Visit for FieldMap {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), super::error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}
