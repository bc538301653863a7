//! The event envelope: CloudEvents 1.0 in structured JSON mode.
//!
//! An event carries the person's *full desired state*, not a delta, plus a
//! per-person `sequence`. That is what makes every later step idempotent and
//! order-tolerant: applying the newest state twice, or an older state after a
//! newer one has been recorded, can be detected and skipped.
//!
//! Parsing is the only way in (`Event::parse`): it checks JSON syntax, the
//! shape, and the rules that JSON Schema alone cannot express (subject equals
//! `data.person_id`, status agrees with type), and refuses an object that
//! names a key twice (`crate::strict`). Errors name the field and say
//! why, and never echo attribute values, which are personal data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{EventId, PersonId};
use crate::strict::StrictError;

/// The only CloudEvents version understood.
pub const SPEC_VERSION: &str = "1.0";
/// Largest event body accepted; HR payloads are small, anything larger is a bug or abuse.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 200;
const MAX_ATTRIBUTE_NAME: usize = 64;
const MAX_ATTRIBUTE_VALUE: usize = 2048;
const MAX_GROUPS: usize = 1000;
const MAX_GROUP_NAME: usize = 256;

/// A joiner / mover / leaver event as published by an HR system or IdP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// CloudEvents spec version; always `"1.0"`.
    pub specversion: String,
    /// Unique per `source`.
    pub id: EventId,
    /// The producer, e.g. `hr/workday`.
    pub source: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened at the source.
    pub time: DateTime<Utc>,
    /// The person the event is about; equals `data.person_id`.
    pub subject: PersonId,
    /// `application/json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// The person's full desired state.
    pub data: PersonState,
}

/// The CloudEvents `type` of a person event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// A joiner.
    #[serde(rename = "person.hired")]
    Hired,
    /// A mover, or any change of attributes or groups.
    #[serde(rename = "person.updated")]
    Updated,
    /// A leaver.
    #[serde(rename = "person.terminated")]
    Terminated,
    /// A returning leaver.
    #[serde(rename = "person.rehired")]
    Rehired,
    /// Access paused (leave of absence, investigation).
    #[serde(rename = "person.suspended")]
    Suspended,
}

impl EventType {
    /// Every event type.
    pub const ALL: [Self; 5] = [Self::Hired, Self::Updated, Self::Terminated, Self::Rehired, Self::Suspended];

    /// The wire name, which is also the routing key on the events exchange.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hired => "person.hired",
            Self::Updated => "person.updated",
            Self::Terminated => "person.terminated",
            Self::Rehired => "person.rehired",
            Self::Suspended => "person.suspended",
        }
    }
}

/// Employment status in the desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersonStatus {
    /// Should have access to the apps in scope.
    Active,
    /// Accounts are deactivated but kept.
    Suspended,
    /// Accounts are deprovisioned per each app's policy.
    Terminated,
}

impl PersonStatus {
    /// The wire name, also usable in scope rules as the `status` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Terminated => "terminated",
        }
    }

    /// The status named by its wire name; `None` for any other text.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Active, Self::Suspended, Self::Terminated].into_iter().find(|s| s.as_str() == name)
    }
}

/// The person's full desired state (`data` of the event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonState {
    /// The HR id of the person.
    pub person_id: PersonId,
    /// Increases with every change of this person at the source.
    pub sequence: u64,
    /// Employment status.
    pub status: PersonStatus,
    /// When the change takes effect, if not at once.
    #[serde(default)]
    pub effective_at: Option<DateTime<Utc>>,
    /// HR attributes by name; `null` values count as absent.
    #[serde(default, deserialize_with = "attributes_without_nulls")]
    #[schemars(with = "BTreeMap<String, Option<String>>")]
    pub attributes: BTreeMap<String, String>,
    /// HR groups or org units the person belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Who caused the change, and how strongly they were authenticated.
    pub actor: Actor,
}

impl PersonState {
    /// The value of an attribute, or of the pseudo-attributes `status` and `person_id`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "status" => Some(self.status.as_str()),
            "person_id" => Some(self.person_id.as_str()),
            _ => self.attributes.get(name).map(String::as_str),
        }
    }
}

fn attributes_without_nulls<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, Option<String>>::deserialize(deserializer)?;
    Ok(raw.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

/// The principal behind an event and its authentication assurance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The actor's id, e.g. `hr-sync` or an administrator's id.
    pub id: String,
    /// Authentication methods references (RFC 8176), e.g. `["pwd", "mfa"]`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Authentication context class reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

/// Why an event was refused. Messages name the field; they never contain values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body was larger than [`MAX_EVENT_BYTES`].
    #[error("event is {size} bytes, more than the {MAX_EVENT_BYTES} allowed")]
    TooLarge {
        /// The body size.
        size: usize,
    },
    /// The body was not JSON.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The JSON did not have the event's shape.
    #[error("field `{path}`: {message}")]
    Shape {
        /// Where, as a dotted path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The shape was right but a rule was broken.
    #[error("field `{field}`: {reason}")]
    Rule {
        /// Which field.
        field: &'static str,
        /// What rule.
        reason: String,
    },
    /// An object named one key twice: readers could disagree on its value.
    #[error("field `{path}`: duplicate key")]
    DuplicateKey {
        /// Where, as a dotted path; keys that are not plain names are `…`.
        path: String,
    },
    /// The AMQP routing key is not the event's `type` (see [`Event::check_routing_key`]).
    #[error("routing key `{routing_key}` disagrees with field `type` (`{}`)", .kind.as_str())]
    RoutingKey {
        /// The key when it is an event type, else `…` (a publisher's key may hold anything).
        routing_key: String,
        /// The event's `type`.
        kind: EventType,
    },
}

impl EventError {
    /// A short, bounded label for metrics and the dead-letter `reason`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Syntax { .. } => "malformed_json",
            Self::Shape { .. } => "schema_violation",
            Self::Rule { .. } => "rule_violation",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::RoutingKey { .. } => "routing_key_mismatch",
        }
    }
}

impl Event {
    /// Parses and validates an event body.
    pub fn parse(body: &[u8]) -> Result<Self, EventError> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge { size: body.len() });
        }
        let value = crate::strict::value(body).map_err(|e| match e {
            StrictError::DuplicateKey { path } => EventError::DuplicateKey { path },
            StrictError::Syntax(e) => EventError::Syntax {
                line: e.line(),
                column: e.column(),
                message: redact_serde_message(&e.to_string()),
            },
        })?;
        let event: Event = serde_path_to_error::deserialize(value).map_err(|e| EventError::Shape {
            path: crate::strict::redacted_path(e.path()),
            message: redact_serde_message(&e.inner().to_string()),
        })?;
        event.check_rules()?;
        Ok(event)
    }

    fn check_rules(&self) -> Result<(), EventError> {
        let rule = |field, reason: &str| Err(EventError::Rule { field, reason: reason.to_owned() });
        if self.specversion != SPEC_VERSION {
            return rule("specversion", "must be \"1.0\"");
        }
        if self.source.trim().is_empty() {
            return rule("source", "must not be empty");
        }
        if let Some(ct) = &self.datacontenttype
            && !ct.starts_with("application/json")
        {
            return rule("datacontenttype", "must be application/json");
        }
        if self.subject != self.data.person_id {
            return rule("subject", "must equal data.person_id");
        }
        let expected = match self.kind {
            EventType::Hired | EventType::Rehired => Some(PersonStatus::Active),
            EventType::Terminated => Some(PersonStatus::Terminated),
            EventType::Suspended => Some(PersonStatus::Suspended),
            EventType::Updated => None,
        };
        if let Some(expected) = expected
            && self.data.status != expected
        {
            return Err(EventError::Rule {
                field: "data.status",
                reason: format!("must be `{}` for type `{}`", expected.as_str(), self.kind.as_str()),
            });
        }
        if self.data.actor.id.trim().is_empty() {
            return rule("data.actor.id", "must not be empty");
        }
        self.check_attributes_and_groups()
    }

    fn check_attributes_and_groups(&self) -> Result<(), EventError> {
        let data = &self.data;
        if data.attributes.len() > MAX_ATTRIBUTES {
            return Err(EventError::Rule {
                field: "data.attributes",
                reason: format!("more than {MAX_ATTRIBUTES} attributes"),
            });
        }
        for (name, value) in &data.attributes {
            if !is_attribute_name(name) {
                return Err(EventError::Rule {
                    field: "data.attributes",
                    reason: format!("attribute names are 1-{MAX_ATTRIBUTE_NAME} letters, digits, _ or -"),
                });
            }
            if value.len() > MAX_ATTRIBUTE_VALUE {
                return Err(EventError::Rule {
                    field: "data.attributes",
                    reason: format!("attribute `{name}` is longer than {MAX_ATTRIBUTE_VALUE} bytes"),
                });
            }
        }
        if data.groups.len() > MAX_GROUPS
            || data.groups.iter().any(|g| g.trim().is_empty() || g.len() > MAX_GROUP_NAME)
        {
            return Err(EventError::Rule {
                field: "data.groups",
                reason: format!("at most {MAX_GROUPS} groups, each 1-{MAX_GROUP_NAME} bytes and not blank"),
            });
        }
        Ok(())
    }
}

/// 1-64 letters, digits, `_` or `-`: what an attribute (or any field) is called.
pub(crate) fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ATTRIBUTE_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// serde quotes offending values in some messages: strings in double quotes
/// (`invalid type: string "ada@example.com"`), other values and unknown
/// names in backquotes (``unknown variant `ada@example.com`, expected one of
/// …``, ``invalid type: integer `4711`, …``). Those values may be personal
/// data, so they are replaced by `…` before the message travels into logs or
/// dead-letter headers; what was expected, which is ours, is kept.
fn redact_serde_message(message: &str) -> String {
    let message = redact_backquoted_value(message);
    let mut out = String::with_capacity(message.len());
    let (mut in_quotes, mut escaped) = (false, false);
    for c in message.chars() {
        match (c, in_quotes) {
            ('"', false) => {
                in_quotes = true;
                out.push_str("\"…");
            }
            // serde writes the string with `{:?}`: `\"` inside does not end it.
            ('"', true) if !escaped => {
                in_quotes = false;
                out.push('"');
            }
            (c, true) => escaped = !escaped && c == '\\',
            (c, false) => out.push(c),
        }
    }
    // A message ending inside quotes (cut by serde) is still redacted.
    out.split(" at line ").next().unwrap_or(&out).to_owned()
}

/// In a message that quotes the input (``unknown variant `X`, expected …``,
/// ``invalid type: integer `7`, expected …``), everything from the first to
/// the last backquote before what was expected becomes `` `…` ``: the value
/// may hold backquotes itself, what was expected is ours and comes last.
/// `missing field` and `duplicate field` name our fields and are kept.
fn redact_backquoted_value(message: &str) -> String {
    let quotes_input = ["unknown variant `", "unknown field `", "invalid type: ", "invalid value: "];
    if !quotes_input.iter().any(|lead| message.contains(lead)) {
        return message.to_owned();
    }
    let expected = [", expected ", ", there are no "].iter().filter_map(|m| message.rfind(m)).max();
    let (head, tail) = message.split_at(expected.unwrap_or(message.len()));
    match (head.find('`'), head.rfind('`')) {
        (Some(first), Some(last)) if first < last => {
            format!("{}`…`{}{tail}", &head[..first], &head[last + 1..])
        }
        // One backquote: the value was cut short.
        (Some(first), _) => format!("{}`…{tail}", &head[..first]),
        _ => message.to_owned(),
    }
}

mod route;
#[cfg(test)]
mod tests;
