//! CloudEvents HTTP binding, binary mode: the attributes travel as `ce-*`
//! headers and the body is `data`.
//!
//! The event is rebuilt in structured mode, the form the rest of the fleet
//! reads. The body is inserted verbatim (checked to be one JSON value, not
//! re-serialised), so the strict event parser still sees exactly what was
//! sent, duplicated keys included.

use http::HeaderMap;
use serde_json::value::RawValue;

use crate::problem::Problem;
use crate::request::Pointer;

/// The header whose presence selects binary mode.
pub const CE_SPECVERSION: &str = "ce-specversion";

/// Required attributes, as (header, JSON member).
const REQUIRED: [(&str, &str); 6] = [
    (CE_SPECVERSION, "specversion"),
    ("ce-id", "id"),
    ("ce-source", "source"),
    ("ce-type", "type"),
    ("ce-subject", "subject"),
    ("ce-time", "time"),
];

/// The structured-mode JSON of a binary-mode request.
pub(crate) fn event(headers: &HeaderMap, body: &[u8]) -> Result<(Vec<u8>, Pointer), Problem> {
    let data: &RawValue = serde_json::from_slice(body).map_err(|e| {
        Problem::invalid(format!("data is not JSON (line {}, column {})", e.line(), e.column()))
            .field("body")
            .index(0)
    })?;
    let mut json = String::with_capacity(body.len() + 256);
    json.push('{');
    for (header, member) in REQUIRED {
        let value = headers
            .get(header)
            .ok_or_else(|| Problem::invalid(format!("{header} is missing")).field(header).index(0))?
            .to_str()
            .map_err(|_| Problem::invalid(format!("{header} is not visible ASCII")).field(header).index(0))?;
        // A JSON string of the header (escaped by serde_json, never spliced raw).
        json.push_str(&serde_json::Value::from(member).to_string());
        json.push(':');
        json.push_str(&serde_json::Value::from(value).to_string());
        json.push(',');
    }
    json.push_str(r#""datacontenttype":"application/json","data":"#);
    json.push_str(data.get());
    json.push('}');
    Ok((json.into_bytes(), Pointer::Headers))
}
