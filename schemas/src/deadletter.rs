//! The dead-letter envelope.
//!
//! A dead-lettered message keeps its original body byte for byte, so replay
//! republishes exactly what was refused. What went wrong rides beside it in
//! AMQP headers named `x-scimfleet-<field>`; this type is their contract.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AppId, JobId};

/// Prefix of every dead-letter header.
pub const HEADER_PREFIX: &str = "x-scimfleet-";
/// Longest `detail` kept; longer text is cut at a character boundary.
pub const MAX_DETAIL: usize = 1024;

/// Why, where and when a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// The class of failure.
    pub reason: DeadLetterReason,
    /// What went wrong, readable, without secrets or personal data.
    pub detail: String,
    /// The stage that gave up.
    pub stage: Stage,
    /// The app, for jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
    /// The job id, for jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// The event id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The last HTTP status from the app, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// When the first attempt started.
    pub first_attempt_at: DateTime<Utc>,
    /// When the last attempt ended.
    pub last_attempt_at: DateTime<Utc>,
}

/// The class of a dead-lettering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The event failed validation.
    InvalidEvent,
    /// The job body could not be read.
    InvalidJob,
    /// The app refused the operation for good (4xx that retrying cannot fix).
    PermanentError,
    /// Retries were exhausted.
    RetriesExhausted,
    /// The handler crashed or hung repeatedly.
    Poison,
    /// Read-back showed access was not removed.
    VerificationFailed,
    /// The account the look-up found is bound to another person (a different
    /// `externalId`): it was left untouched.
    IdentityConflict,
}

impl DeadLetterReason {
    /// The wire name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidEvent => "invalid_event",
            Self::InvalidJob => "invalid_job",
            Self::PermanentError => "permanent_error",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Poison => "poison",
            Self::VerificationFailed => "verification_failed",
            Self::IdentityConflict => "identity_conflict",
        }
    }
}

/// The stage that dead-lettered a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Event intake.
    Scheduler,
    /// SCIM apply.
    Worker,
    /// The intake's event sources (`[[sources]]`): a delivery that cannot be read.
    Intake,
}

/// A header value: dead-letter headers are strings or unsigned integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Text.
    Text(String),
    /// A number.
    Number(u64),
}

impl DeadLetter {
    /// Cuts `detail` to [`MAX_DETAIL`] bytes at a character boundary.
    pub fn truncate_detail(detail: &str) -> String {
        if detail.len() <= MAX_DETAIL {
            return detail.to_owned();
        }
        let mut end = MAX_DETAIL;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &detail[..end])
    }

    /// The headers that carry this envelope.
    pub fn to_headers(&self) -> Vec<(String, HeaderValue)> {
        let Ok(Value::Object(fields)) = serde_json::to_value(self) else {
            return Vec::new();
        };
        fields
            .into_iter()
            .filter_map(|(name, value)| {
                let value = match value {
                    Value::String(s) => HeaderValue::Text(s),
                    Value::Number(n) => HeaderValue::Number(n.as_u64()?),
                    _ => return None,
                };
                Some((format!("{HEADER_PREFIX}{name}"), value))
            })
            .collect()
    }

    /// Reads the envelope back from headers; other headers are ignored.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, HeaderValue)>,
    ) -> Result<Self, serde_json::Error> {
        let mut fields = Map::new();
        for (name, value) in headers {
            if let Some(field) = name.strip_prefix(HEADER_PREFIX) {
                let value = match value {
                    HeaderValue::Text(s) => Value::String(s),
                    HeaderValue::Number(n) => Value::from(n),
                };
                fields.insert(field.to_owned(), value);
            }
        }
        serde_json::from_value(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeadLetter {
        serde_json::from_str(include_str!("../tests/fixtures/dead-letter.json")).expect("fixture")
    }

    #[test]
    fn headers_round_trip() {
        let dl = sample();
        let headers = dl.to_headers();
        assert!(headers.iter().all(|(n, _)| n.starts_with(HEADER_PREFIX)));
        let back =
            DeadLetter::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.clone()))).expect("parses");
        assert_eq!(back, dl);
    }

    #[test]
    fn detail_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let cut = DeadLetter::truncate_detail(&long);
        assert!(cut.len() <= MAX_DETAIL + "…".len());
        assert!(cut.ends_with('…'));
        assert_eq!(DeadLetter::truncate_detail("short"), "short");
    }
}
