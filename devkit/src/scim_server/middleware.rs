//! The request path every call takes before reaching a handler: `observe`
//! (fault injection and the request log) wrapping `authenticate`.
//!
//! `observe` is the outermost layer so that it sees every request, including
//! the ones `authenticate` or routing reject, and so that the switchable
//! faults (latency, a down switch, dropped connections, error statuses with
//! `Retry-After`) have exactly one place to go: before `next.run`, where a
//! fault answers (or hangs up) instead of the handler, so the request never
//! changes state, and is still recorded, marked `injected`. It buffers write
//! bodies once, keeps the parsed JSON for the log and hands the bytes on to
//! the handler.
//!
//! Also here: the SCIM response helpers, since every layer answers with
//! `application/scim+json` and a SCIM Error body.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use scimfleet_schemas::scim::{Meta, SCIM_MEDIA_TYPE, ScimError};
use serde::Serialize;

use super::connection::Connection;
use super::faults::Fault;
use super::log::{RequestRecord, classify};
use super::routes::AppState;
use super::store::bad_request;

/// Largest request body accepted; SCIM resources are small.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Applies the active faults, then records the request in the log once it
/// has been answered (or hung up on).
pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let at = Instant::now();
    let seq = state.next_request_seq();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (resource, resource_id) = classify(&path);
    let decision = state.faults().decide(&method, resource);
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    let dropped = decision.fault == Some(Fault::Drop);
    let (response, body, injected) = match read_body(request).await {
        Err(response) => (response, None, false),
        Ok((request, body)) => match decision.fault {
            None => (next.run(request).await, body, false),
            Some(fault) => {
                let connection = request.extensions().get::<ConnectInfo<Connection>>().map(|c| c.0.clone());
                (inject(fault, connection).await, body, true)
            }
        },
    };
    let quirks = state.store().quirks.clone();
    let response = quirks.answer(&method, response);
    let status = if dropped { 0 } else { response.status().as_u16() };
    // Ids are random, not personal; the query (a filter on userName) and
    // bodies are never logged.
    tracing::debug!(
        http.request.method = %method,
        scim.resource = ?resource,
        http.response.status_code = status,
        scim.fault_injected = injected,
        duration_ms = at.elapsed().as_millis() as u64,
        "SCIM test server answered {method} {resource:?} with {status}"
    );
    let answered_at = Instant::now();
    let record = RequestRecord {
        method,
        path,
        query,
        status,
        resource,
        resource_id,
        at,
        answered_at,
        body,
        injected,
        traceparent,
    };
    state.store().log.record(seq, record);
    response
}

/// Buffers the body of a POST, PUT or PATCH, keeping its JSON for the log;
/// a body that can't be read is answered with 413.
async fn read_body(request: Request) -> Result<(Request, Option<serde_json::Value>), Response> {
    if !matches!(request.method().as_str(), "POST" | "PUT" | "PATCH") {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            let json = serde_json::from_slice(&bytes).ok();
            Ok((Request::from_parts(parts, Body::from(bytes)), json))
        }
        Err(_) => {
            let error = ScimError::new(413, None, "the request body is unreadable or over 1 MiB");
            Err(ApiError(error).into_response())
        }
    }
}

/// The answer to a request hit by `fault`, in place of the handler's. For
/// [`Fault::Drop`] the connection is closed first, so the answer never
/// reaches the client; without a socket to close (not expected on Unix or
/// Windows) the request hangs until the client gives up.
async fn inject(fault: Fault, connection: Option<Connection>) -> Response {
    let (status, retry_after, detail) = match fault {
        Fault::Down => (StatusCode::SERVICE_UNAVAILABLE, None, "the app is down (injected fault)"),
        Fault::Error { status, retry_after } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, retry_after, "injected fault")
        }
        Fault::Ignore => return StatusCode::NO_CONTENT.into_response(),
        Fault::Drop => {
            if !connection.is_some_and(|c| c.hang_up()) {
                std::future::pending::<()>().await;
            }
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let mut response = ApiError(ScimError::new(status.as_u16(), None, detail)).into_response();
    let retry_after = retry_after.map(|r| r.header_value(Utc::now()));
    if let Some(value) = retry_after.and_then(|r| HeaderValue::from_str(&r).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Refuses requests without `Authorization: Bearer <token>` (401).
pub(crate) async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.is_authorised(request.headers()) {
        return next.run(request).await;
    }
    let mut response =
        ApiError(ScimError::new(401, None, "a valid bearer token is required")).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
    response
}

/// The bearer token of an `Authorization` header value, scheme case-insensitive.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A SCIM error as a response: its status, `application/scim+json`.
#[derive(Debug)]
pub(crate) struct ApiError(pub ScimError);

impl From<ScimError> for ApiError {
    fn from(error: ScimError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .0
            .status
            .parse()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        scim_json(status, &self.0)
    }
}

/// `body` as `application/scim+json` with `status`.
pub(crate) fn scim_json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_MEDIA_TYPE))], bytes)
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A single resource: `ETag` from `meta.version`, and `Location` on 201.
pub(crate) fn resource(status: StatusCode, body: &impl Serialize, meta: Option<&Meta>) -> Response {
    let mut response = scim_json(status, body);
    let headers = response.headers_mut();
    let meta = meta.cloned().unwrap_or_default();
    if let Some(tag) = meta.version.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Some(location) = meta.location.and_then(|l| HeaderValue::from_str(&l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// The JSON document of a write body. `application/scim+json` and
/// `application/json` are accepted (RFC 7644 §3.1), and a missing type too.
pub(crate) fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Value, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = media.map(|m| m.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if let Some(essence) = essence
        && essence != SCIM_MEDIA_TYPE
        && essence != "application/json"
    {
        let detail = format!("send {SCIM_MEDIA_TYPE} or application/json, not {essence}");
        return Err(ApiError(ScimError::new(415, None, detail)));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError(bad_request("invalidSyntax", format!("malformed JSON: {e}"))))
}
