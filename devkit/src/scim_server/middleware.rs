//! The request path every call takes before reaching a handler: `observe`
//! (request log, and later fault injection) wrapping `authenticate`.
//!
//! `observe` is the outermost layer so that it sees every request, including
//! the ones `authenticate` or routing reject, and so that the fault switches
//! planned for the test server (status codes, latency, `Retry-After`,
//! dropped connections, a down switch) have exactly one place to go: before
//! `next.run`, where a fault can answer (or hang up) instead of the handler
//! and still be recorded. It buffers write bodies once, keeps the parsed
//! JSON for the log and hands the bytes on to the handler.
//!
//! Also here: the SCIM response helpers, since every layer answers with
//! `application/scim+json` and a SCIM Error body.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scimfleet_schemas::scim::{Meta, SCIM_MEDIA_TYPE, ScimError};
use serde::Serialize;

use super::log::{RequestRecord, classify};
use super::routes::AppState;
use super::store::bad_request;

/// Largest request body accepted; SCIM resources are small.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Records every request in the log once it has been answered.
pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let at = Instant::now();
    let seq = state.next_request_seq();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let (resource, resource_id) = classify(&path);
    // Fault injection goes here: answer, delay or drop before `next.run`.
    let (response, body) = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => {
                let json = serde_json::from_slice(&bytes).ok();
                (next.run(Request::from_parts(parts, Body::from(bytes))).await, json)
            }
            Err(_) => {
                let error = ScimError::new(413, None, "the request body is unreadable or over 1 MiB");
                (ApiError(error).into_response(), None)
            }
        }
    } else {
        (next.run(request).await, None)
    };
    let status = response.status().as_u16();
    // Ids are random, not personal; the query (a filter on userName) and
    // bodies are never logged.
    tracing::debug!(
        http.request.method = %method,
        scim.resource = ?resource,
        http.response.status_code = status,
        duration_ms = at.elapsed().as_millis() as u64,
        "SCIM test server answered {method} {resource:?} with {status}"
    );
    let record = RequestRecord { method, path, query, status, resource, resource_id, at, body };
    state.store().log.record(seq, record);
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
