//! RFC 9457 problem details: every refusal of the intake is one
//! `application/problem+json` body naming what was wrong.
//!
//! A problem names the *field* (a JSON pointer into the request body, or a
//! header name) and, in a batch, the event's *index*; its `detail` comes
//! from messages that never hold values (the schemas crate's errors name
//! fields, not contents), so no secret or personal data is echoed back.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Content type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One refusal, ready to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Short stable slug, the last part of the problem `type` (`bad-signature`).
    pub kind: &'static str,
    /// Human summary of the kind.
    pub title: &'static str,
    /// What exactly was wrong (never a value from the request).
    pub detail: String,
    /// The field: a JSON pointer (`/0/data/sequence`) or a header name.
    pub field: Option<String>,
    /// The event's 0-based index in the request.
    pub index: Option<usize>,
    /// When the sender may try again (429, 503).
    pub retry_after: Option<Duration>,
}

impl Problem {
    /// A problem without field, index or retry hint.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self { status, kind, title, detail: detail.into(), field: None, index: None, retry_after: None }
    }

    /// Names the field.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Names the event's index.
    #[must_use]
    pub fn index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// Adds a `Retry-After` hint (whole seconds, at least 1).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// 401: the signature headers are missing, malformed or do not verify.
    pub fn unauthorized(field: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "bad-signature", "Signature not verified", detail).field(field)
    }

    /// 400: the body or an event is invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-event", "Invalid event", detail)
    }

    /// 413: the body, or the number of events, is over a limit.
    pub fn too_large(field: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request too large", detail).field(field)
    }

    /// 415: a content type the intake does not read.
    pub fn unsupported(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported content type",
            detail,
        )
        .field("content-type")
    }

    /// 503: the broker did not confirm; nothing of the request is claimed.
    pub fn unavailable(detail: impl Into<String>, after: Duration) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Events not accepted, try again", detail)
            .retry_after(after)
    }

    /// The problem `type` URI.
    pub fn type_uri(&self) -> String {
        format!("urn:scimfleet:intake:{}", self.kind)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(self.type_uri()));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        if let Some(field) = &self.field {
            body.insert("field".into(), json!(field));
        }
        if let Some(index) = self.index {
            body.insert("index".into(), json!(index));
        }
        Value::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs().max(1) + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_9457_members_and_the_field() {
        let problem = Problem::invalid("field `data.sequence`: missing").field("/0/data/sequence").index(0);
        let body = problem.body();
        assert_eq!(body["status"], 400);
        assert_eq!(body["type"], "urn:scimfleet:intake:invalid-event");
        assert_eq!(body["field"], "/0/data/sequence");
        assert_eq!(body["index"], 0);
        assert!(body["title"].is_string() && body["detail"].is_string());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let response = Problem::unavailable("down", Duration::from_millis(1500)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
