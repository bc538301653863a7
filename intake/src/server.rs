//! The HTTP side: `POST /v1/events` and the CloudEvents webhook handshake
//! (`OPTIONS /v1/events`).
//!
//! One request runs these steps, cheapest and most telling first, and stops
//! at the first refusal (every refusal a problem+json body):
//!
//! 1. body size (413) — before reading more than the limit;
//! 2. signature and timestamp (401) — nothing unauthenticated is parsed;
//! 3. the source's rate (429 with `Retry-After`);
//! 4. content type, depth, count, each event's schema (415, 400, 413);
//! 5. event types the source may send (403, field `type`);
//! 6. replay mark in Redis (409) — claimed only now, so a refused request
//!    never burns its `webhook-id`;
//! 7. publish every event and wait for every confirm (503 on any failure,
//!    after removing the replay mark so the retry is accepted); then 202.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use scimfleet_runtime::metrics::{Metrics, SourceLabel, SourceStatus};
use tracing::{Instrument as _, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::guard::Guard;
use crate::problem::Problem;
use crate::publish::{self, Link, PublishFailure, TraceHeaders};
use crate::request::{Limits, parse_request};
use crate::signature::{self, WEBHOOK_ID};
use crate::source::Source;

/// The path events are posted to.
pub const EVENTS_PATH: &str = "/v1/events";
/// When a sender should try again after a 503.
const RETRY_AFTER_UNAVAILABLE: Duration = Duration::from_secs(2);

/// What every request handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The senders.
    pub sources: Vec<Source>,
    /// Each source's keys, in the order of `sources` (what [`signature::verify`] takes).
    pub keys: Vec<Vec<signature::Key>>,
    /// Request limits.
    pub limits: Limits,
    /// `intake.tolerance`.
    pub tolerance: Duration,
    /// `intake.publish_timeout`.
    pub publish_timeout: Duration,
    /// `{ns}.events`.
    pub exchange: String,
    /// Replay marks and rate buckets.
    pub guard: Guard,
    /// The broker link.
    pub link: Link,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The `[[sources]]` served at `/v1/sources/{id}`.
    pub adapters: Vec<Arc<dyn crate::sources::Adapter>>,
    /// Keeps and records their deliveries.
    pub emitter: crate::sources::process::Emitter,
}

/// The router of the intake listener.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(EVENTS_PATH, post(post_events).options(handshake))
        .route(crate::sources::SOURCES_PATH, any(crate::sources::handle))
        .with_state(shared)
}

async fn post_events(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let span = request_span(&parts.headers);
    async move {
        let (source, response) = match accept(&shared, &parts.headers, body).await {
            Ok((source, accepted)) => {
                shared
                    .metrics
                    .intake_events
                    .get_or_create(&SourceLabel { source: source.clone() })
                    .inc_by(accepted as u64);
                tracing::Span::current().record("scimfleet.events", accepted);
                let body = serde_json::json!({ "accepted": accepted }).to_string();
                (
                    source,
                    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body)
                        .into_response(),
                )
            }
            Err((source, problem)) => {
                tracing::info!(
                    http.response.status_code = problem.status.as_u16(),
                    problem = problem.kind,
                    field = problem.field.as_deref().unwrap_or(""),
                    "intake refused a request from source {source}: {}",
                    problem.kind
                );
                (source, problem.into_response())
            }
        };
        let status = response.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        let labels = SourceStatus { source, status: status.as_u16().to_string() };
        shared.metrics.intake_requests.get_or_create(&labels).inc();
        response
    }
    .instrument(span)
    .await
}

/// The request's outcome: (source, events accepted) or (source, problem);
/// the source is `unknown` until a signature verified.
async fn accept(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, usize), (String, Problem)> {
    let unknown = |problem| ("unknown".to_owned(), problem);
    let body = read_body(headers, body, shared.limits.max_body_bytes).await.map_err(unknown)?;
    let tolerance_s = i64::try_from(shared.tolerance.as_secs()).unwrap_or(i64::MAX);
    let verified =
        signature::verify(headers, &body, &shared.keys, chrono::Utc::now().timestamp(), tolerance_s)
            .map_err(unknown)?;
    let source = &shared.sources[verified.source];
    tracing::Span::current().record("scimfleet.intake.source", source.id.as_str());
    let refuse = |problem| (source.id.clone(), problem);
    match shared.guard.pace(&source.id, source.rate_per_second, source.burst).await {
        Ok(wait) if wait.is_zero() => {}
        Ok(wait) => {
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("over the rate of source {}", source.id),
            );
            return Err(refuse(problem.retry_after(wait)));
        }
        Err(_) => {
            return Err(refuse(Problem::unavailable(
                "the intake cannot reach Redis",
                RETRY_AFTER_UNAVAILABLE,
            )));
        }
    }
    let events = parse_request(headers, &body, &shared.limits).map_err(refuse)?;
    if let Some(index) = events.iter().position(|e| !source.allows(e.event.kind)) {
        let detail = format!("source {} may not send events of this type", source.id);
        let problem =
            Problem::new(StatusCode::FORBIDDEN, "type-not-allowed", "Event type not allowed", detail);
        return Err(refuse(problem.field("type").index(index)));
    }
    let publisher =
        shared.link.current().ok_or_else(|| refuse(unavailable(&PublishFailure::Disconnected)))?;
    match shared.guard.claim(&source.id, &verified.id, shared.tolerance * 2).await {
        Ok(true) => {}
        Ok(false) => {
            let problem = Problem::new(
                StatusCode::CONFLICT,
                "replayed",
                "Message already received",
                "this webhook-id was already received inside the tolerance window",
            );
            return Err(refuse(problem.field(WEBHOOK_ID)));
        }
        Err(_) => {
            return Err(refuse(Problem::unavailable(
                "the intake cannot reach Redis",
                RETRY_AFTER_UNAVAILABLE,
            )));
        }
    }
    let trace = trace_headers(headers);
    match publish::publish(&publisher, &shared.exchange, &events, &source.id, &trace, shared.publish_timeout)
        .await
    {
        Ok(confirmed) => Ok((source.id.clone(), confirmed)),
        Err(failure) => {
            if matches!(failure, PublishFailure::Broker(_)) {
                shared.link.report_broken();
            }
            // Best effort: if Redis is gone too, the mark expires with the window.
            let _released = shared.guard.release(&source.id, &verified.id).await;
            Err(refuse(unavailable(&failure)))
        }
    }
}

fn unavailable(failure: &PublishFailure) -> Problem {
    tracing::warn!(error = %scimfleet_runtime::telemetry::error_chain(failure), "intake could not publish a request's events");
    Problem::unavailable(
        format!("events not queued: {failure}; nothing of this request was accepted"),
        RETRY_AFTER_UNAVAILABLE,
    )
}

/// Reads at most `limit` bytes of body; a declared or actual larger body is 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let too_large = || Problem::too_large("body", format!("the body is over {limit} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map(|b| b.to_vec()).map_err(|_| too_large())
}

/// The CloudEvents webhook validation handshake (HTTP webhook spec, section 4).
async fn handshake(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    const REQUEST_ORIGIN: &str = "webhook-request-origin";
    let origin = headers.get(REQUEST_ORIGIN).and_then(|v| v.to_str().ok()).map(str::trim);
    let source = origin
        .and_then(|o| shared.sources.iter().find(|s| s.origins.iter().any(|a| a.eq_ignore_ascii_case(o))));
    let (Some(origin), Some(source)) = (origin, source) else {
        let problem = Problem::new(
            StatusCode::FORBIDDEN,
            "origin-not-allowed",
            "Origin not allowed",
            "WebHook-Request-Origin is missing or not configured",
        );
        return problem.field("WebHook-Request-Origin").into_response();
    };
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(origin) {
        out.insert("webhook-allowed-origin", origin);
    }
    // The spec counts the allowed rate in requests per minute.
    let per_minute = (source.rate_per_second * 60.0).floor().max(1.0) as u64;
    out.insert("webhook-allowed-rate", HeaderValue::from(per_minute));
    out.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    response
}

struct HttpRead<'a>(&'a HeaderMap);

impl Extractor for HttpRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The server span of one request, continuing the sender's trace.
fn request_span(headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "intake request",
        otel.name = "POST /v1/events",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = EVENTS_PATH,
        http.response.status_code = Empty,
        scimfleet.intake.source = Empty,
        scimfleet.events = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HttpRead(headers));
    // Fails only when the span is disabled: it then stays a root.
    let _ignored = span.set_parent(parent);
    span
}

fn trace_headers(headers: &HeaderMap) -> TraceHeaders {
    let text = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| v.len() <= 512).map(str::to_owned)
    };
    TraceHeaders { traceparent: text("traceparent"), tracestate: text("tracestate") }
}
