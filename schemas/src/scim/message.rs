//! Protocol messages: ListResponse, PatchOp and Error (RFC 7644 §3.4.2, §3.5.2, §3.12).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{ERROR_SCHEMA, LIST_RESPONSE_SCHEMA, PATCH_OP_SCHEMA};

/// A page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    /// Always the ListResponse URN.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Results matching the query, across all pages; some providers leave
    /// it out (RFC 7644 §3.4.2 makes it required), so it may be unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_results: Option<u64>,
    /// 1-based index of the first result in this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    /// Results in this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_per_page: Option<u64>,
    /// The results. Some providers omit the key when there are none.
    #[serde(rename = "Resources", default)]
    pub resources: Vec<T>,
}

impl<T> ListResponse<T> {
    /// Whether this reads as a list answer at all: it gives `totalResults`,
    /// names the ListResponse schema, or carries resources. Every field is
    /// optional to the parser, so any JSON object parses; an error body of
    /// another shape (`{"Errors": …}`) must not pass for an empty result.
    pub fn is_list(&self) -> bool {
        self.total_results.is_some()
            || self.schemas.iter().any(|s| s == LIST_RESPONSE_SCHEMA)
            || !self.resources.is_empty()
    }

    /// A page starting at 1-based `start_index` out of `total_results`.
    pub fn new(resources: Vec<T>, total_results: u64, start_index: u64) -> Self {
        Self {
            schemas: vec![LIST_RESPONSE_SCHEMA.to_owned()],
            total_results: Some(total_results),
            start_index: Some(start_index),
            items_per_page: Some(resources.len() as u64),
            resources,
        }
    }
}

/// A PATCH request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchRequest {
    /// Always the PatchOp URN.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations, applied in order and atomically.
    #[serde(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// A request carrying `operations`.
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        Self { schemas: vec![PATCH_OP_SCHEMA.to_owned()], operations }
    }
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOp,
    /// Where; absent means the resource itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value to add or replace with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl PatchOperation {
    /// `add` at `path`.
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        Self { op: PatchOp::Add, path: Some(path.into()), value: Some(value) }
    }

    /// `replace` at `path`.
    pub fn replace(path: impl Into<String>, value: Value) -> Self {
        Self { op: PatchOp::Replace, path: Some(path.into()), value: Some(value) }
    }

    /// `remove` at `path`.
    pub fn remove(path: impl Into<String>) -> Self {
        Self { op: PatchOp::Remove, path: Some(path.into()), value: None }
    }
}

/// The PATCH operation kind. Accepted in any case (some identity providers
/// send `Replace`), always sent in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    /// Add a value.
    Add,
    /// Remove a value.
    Remove,
    /// Replace a value.
    Replace,
}

impl<'de> Deserialize<'de> for PatchOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        match raw.to_ascii_lowercase().as_str() {
            "add" => Ok(Self::Add),
            "remove" => Ok(Self::Remove),
            "replace" => Ok(Self::Replace),
            _ => Err(serde::de::Error::unknown_variant(&raw, &["add", "remove", "replace"])),
        }
    }
}

/// A SCIM error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimError {
    /// Always the Error URN.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The HTTP status, as a string per RFC 7644 (numbers are accepted too).
    #[serde(deserialize_with = "status_string_or_number")]
    pub status: String,
    /// SCIM error keyword such as `uniqueness` or `invalidFilter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ScimError {
    /// An error with `status`, an optional keyword and a detail.
    pub fn new(status: u16, scim_type: Option<&str>, detail: impl Into<String>) -> Self {
        Self {
            schemas: vec![ERROR_SCHEMA.to_owned()],
            status: status.to_string(),
            scim_type: scim_type.map(str::to_owned),
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SCIM error {}", self.status)?;
        if let Some(kind) = &self.scim_type {
            write!(f, " ({kind})")?;
        }
        Ok(())
    }
}

fn status_string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("status must be a string, not {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_is_case_insensitive_on_input() {
        let op: PatchOperation =
            serde_json::from_str(r#"{"op":"Replace","path":"active","value":false}"#).expect("valid");
        assert_eq!(op.op, PatchOp::Replace);
        assert_eq!(serde_json::to_value(op).expect("ser")["op"], "replace");
    }

    #[test]
    fn error_status_may_be_a_number() {
        let err: ScimError =
            serde_json::from_str(r#"{"status":409,"scimType":"uniqueness"}"#).expect("valid");
        assert_eq!(err.status, "409");
        assert_eq!(err.to_string(), "SCIM error 409 (uniqueness)");
    }

    #[test]
    fn list_response_without_resources_is_empty() {
        let list: ListResponse<serde_json::Value> =
            serde_json::from_str(r#"{"schemas":[],"totalResults":0}"#).expect("valid");
        assert!(list.resources.is_empty());
    }
}
