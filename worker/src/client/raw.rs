//! Requests whose answer is taken as it comes, for `scimfleet probe`.
//!
//! The typed methods of [`ScimClient`] refuse what does not look like SCIM;
//! a probe needs to see exactly that: the status, the `ETag` and
//! `Content-Type` headers, and the body as JSON when it is JSON (an HTML
//! error page, an empty body or broken JSON are answers too, not errors).
//! The request goes through the same machinery as every other (`send`:
//! credential, pacing, short retries, span, metrics), named by its path
//! template; only "no answer at all" is an error.
//!
//! A body may hold personal data: [`RawAnswer`]'s `Debug` shows its kind
//! and size, never its content.

use std::fmt;

use reqwest::{Method, Response, header};
use serde_json::Value;

use super::ScimClient;
use super::call::Call;
use crate::error::ScimCallError;

/// The most bytes of a body read; a longer one is [`RawBody::Other`]. A
/// page of 1,000 users is far below it; a server that streams without end
/// must not exhaust memory.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The body of an answer, as far as it could be read.
#[derive(Clone, PartialEq)]
pub enum RawBody {
    /// No body (or only white space).
    Empty,
    /// A JSON document, whatever the `Content-Type` said.
    Json(Value),
    /// Something else (HTML, broken JSON, too long), with its length in bytes.
    Other(usize),
}

/// One answer, taken as it came.
#[derive(Clone, PartialEq)]
pub struct RawAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: RawBody,
}

impl RawAnswer {
    /// The body as JSON, when it was JSON.
    pub fn json(&self) -> Option<&Value> {
        match &self.body {
            RawBody::Json(value) => Some(value),
            _ => None,
        }
    }
}

impl fmt::Debug for RawAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            RawBody::Empty => "empty".to_owned(),
            RawBody::Json(_) => "JSON".to_owned(),
            RawBody::Other(length) => format!("{length} bytes, not JSON"),
        };
        f.debug_struct("RawAnswer")
            .field("status", &self.status)
            .field("etag", &self.etag.is_some())
            .field("content_type", &self.content_type)
            .field("body", &body)
            .finish()
    }
}

impl ScimClient {
    /// `GET <base>/<segments>?<query>`, answered as it comes. `template`
    /// (e.g. `/Users/{id}`) names the request in spans, metrics and errors.
    pub async fn get_raw(
        &self,
        template: &'static str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<RawAnswer, ScimCallError> {
        let call = Call::new(Method::GET, template);
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let response = self.send(&call, url, None).await?;
        raw_answer(&call, response).await
    }

    /// `PATCH <base>/<segments>` with `body`, answered as it comes.
    pub async fn patch_raw(
        &self,
        template: &'static str,
        segments: &[&str],
        body: &Value,
    ) -> Result<RawAnswer, ScimCallError> {
        let call = Call::new(Method::PATCH, template);
        let body = call.encode(body)?;
        let response = self.send(&call, self.url(segments), Some(body)).await?;
        raw_answer(&call, response).await
    }

    /// Whether writes are recorded instead of sent (plans, dry runs).
    pub(crate) fn records_writes(&self) -> bool {
        self.recorder.is_some()
    }

    /// The path of the base URL without a trailing slash (`/scim/v2`; empty at the root).
    pub(crate) fn base_path(&self) -> &str {
        self.base.path().trim_end_matches('/')
    }
}

async fn raw_answer(call: &Call, mut response: Response) -> Result<RawAnswer, ScimCallError> {
    let header =
        |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned());
    let (etag, content_type) = (header(header::ETAG), header(header::CONTENT_TYPE));
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    let mut too_long = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| call.transport(e))? {
        if bytes.len() + chunk.len() > MAX_BODY {
            too_long = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = match too_long {
        true => RawBody::Other(bytes.len()),
        false => body_of(&bytes),
    };
    Ok(RawAnswer { status, etag, content_type, body })
}

/// What `bytes` are: empty, JSON or something else.
fn body_of(bytes: &[u8]) -> RawBody {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return RawBody::Empty;
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => RawBody::Json(value),
        Err(_) => RawBody::Other(bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_json_empty_or_something_else() {
        assert!(matches!(body_of(b""), RawBody::Empty));
        assert!(matches!(body_of(b" \n"), RawBody::Empty));
        assert!(matches!(body_of(br#"{"a":1}"#), RawBody::Json(_)));
        assert!(matches!(body_of(b"<html></html>"), RawBody::Other(13)));
        assert!(matches!(body_of(br#"{"a":"#), RawBody::Other(5)));
    }

    #[test]
    fn debug_never_shows_the_body() {
        let answer = RawAnswer {
            status: 200,
            etag: Some("W/\"1\"".into()),
            content_type: None,
            body: RawBody::Json(serde_json::json!({"userName": "ada@example.com"})),
        };
        let shown = format!("{answer:?}");
        assert!(!shown.contains("ada"), "{shown}");
        assert!(shown.contains("JSON"), "{shown}");
    }
}
