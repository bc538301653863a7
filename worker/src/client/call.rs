//! One request's method and path template, and what the client makes of
//! its answer: typed errors that name the path template (never the real URL,
//! which may hold a filter value), and the checks every answer must pass
//! before the converger may act on it (one match, an id, valid JSON).

use reqwest::header;
use reqwest::{Method, Response};
use scimfleet_schemas::scim::{ListResponse, ScimError, UserAttr, same_value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ScimCallError, parse_retry_after, sanitize_scim_type};

/// Compares a filtered attribute as the service provider should have.
pub(super) fn same(attr: &UserAttr, have: &serde_json::Value, want: &str) -> bool {
    same_value(attr, &serde_json::Value::String(want.to_owned()), have)
}

/// The only resource of a filtered list. More than one is ambiguous; one that
/// does not match the filter means the app ignored it, which must never lead
/// to patching the wrong account; one without the attribute cannot be
/// checked and counts as no match (the caller falls back to `userName`).
pub(super) fn single<T>(
    call: &Call,
    resource: &'static str,
    attribute: &str,
    list: ListResponse<T>,
    matches: impl Fn(&T) -> Option<bool>,
) -> Result<Option<T>, ScimCallError> {
    let count = list.total_results.unwrap_or(0).max(list.resources.len() as u64);
    if count > 1 {
        return Err(ScimCallError::Ambiguous { resource, attribute: attribute.to_owned(), matches: count });
    }
    match list.resources.into_iter().next() {
        Some(found) => match matches(&found) {
            Some(true) => Ok(Some(found)),
            Some(false) => Err(call.invalid(200, "the result does not match the filter")),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

pub(super) fn has_id<T>(
    call: &Call,
    resource: T,
    id_of: fn(&T) -> &Option<String>,
) -> Result<T, ScimCallError> {
    match id_of(&resource) {
        Some(id) if !id.is_empty() => Ok(resource),
        _ => Err(call.invalid(200, "the resource has no id")),
    }
}

/// One request's method and path template, for errors.
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) name: &'static str,
    pub(super) path_template: &'static str,
}

impl Call {
    pub(super) fn new(method: Method, path_template: &'static str) -> Self {
        let name = match method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PATCH => "PATCH",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "OTHER",
        };
        Self { method, name, path_template }
    }

    pub(super) fn transport(&self, error: reqwest::Error) -> ScimCallError {
        ScimCallError::transport(self.name, self.path_template, error)
    }

    pub(super) fn invalid(&self, status: u16, reason: impl Into<String>) -> ScimCallError {
        let (method, path_template) = (self.name, self.path_template);
        ScimCallError::InvalidResponse { method, path_template, status, reason: reason.into() }
    }

    pub(super) fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, ScimCallError> {
        // Our own types always encode; this is a guard, not an expected path.
        serde_json::to_vec(value).map_err(|_| ScimCallError::Config {
            reason: "the request body could not be encoded",
            source: None,
        })
    }

    pub(super) async fn json<T: DeserializeOwned>(&self, response: Response) -> Result<T, ScimCallError> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        // A repeated key (`"active": true, "active": false`) is refused, not
        // read as whichever came last: the answer is ambiguous.
        if let Err(repeated) = scimfleet_schemas::strict::check_unique_keys(&bytes) {
            return Err(self.invalid(status, repeated.to_string()));
        }
        serde_json::from_slice(&bytes).map_err(|e| self.invalid(status, json_reason(&e)))
    }

    /// The error for an unexpected status: `scimType` and `Retry-After` kept,
    /// the body's `detail` dropped.
    pub(super) async fn status_error(&self, response: Response) -> ScimCallError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        // The body is optional evidence; a failure to read it changes nothing.
        let body = response.bytes().await.unwrap_or_default();
        let scim_type = serde_json::from_slice::<ScimError>(&body).ok().and_then(|e| e.scim_type);
        ScimCallError::Status {
            method: self.name,
            path_template: self.path_template,
            status,
            scim_type: sanitize_scim_type(scim_type),
            retry_after,
        }
    }
}

/// Why a body was not valid JSON of the expected shape, without quoting it:
/// serde_json's messages may echo values (e-mail addresses).
fn json_reason(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match error.classify() {
        Category::Io => "unreadable body",
        Category::Syntax => "body is not valid JSON",
        Category::Data => "body does not have the expected shape",
        Category::Eof => "body ends early",
    };
    format!("{kind} (line {}, column {})", error.line(), error.column())
}
