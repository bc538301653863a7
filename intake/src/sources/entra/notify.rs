//! What arrives at an Entra source's path, read without any I/O: the
//! validation handshake, change notifications on users, lifecycle
//! notifications, and the delta pages the source's own delta query keeps.
//!
//! - **Validation** (<https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks#notificationurl-validation>):
//!   a `POST ?validationToken=…` is answered `200`, `text/plain`, with the
//!   URL-decoded token as the whole body.
//! - **Change notifications**: `{"value": [...]}`; each item names its
//!   subscription, `changeType` and `resource` (`Users/{id}`), and carries
//!   the subscription's `clientState` (checked by the adapter).
//! - **Lifecycle notifications**
//!   (<https://learn.microsoft.com/en-us/graph/change-notifications-lifecycle-events>):
//!   the same envelope, items with `lifecycleEvent` and no resource.
//!
//! # Event ids
//!
//! Graph gives a user notification no id of its own (the optional `id` is
//! used when present), and retries an unacknowledged delivery for up to 4
//! hours with the same body. The dedupe key must make a redelivery of the
//! same change one event and two changes of one user two events. Graph's
//! user notifications carry `resourceData.sequenceNumber` and
//! `resourceData.eventTime`
//! (<https://learn.microsoft.com/en-us/azure/event-grid/azure-active-directory-events>),
//! which name the change itself: the key is the user, the change type and
//! those two, so a redelivery (and the same change seen through a second
//! subscription) dedupes. A notification without them is keyed by its
//! subscription, user, change type and the intake's receipt time: a
//! redelivery then becomes a second event id, which is still harmless,
//! because every hint is read back and a user read back unchanged emits
//! nothing; keying such notifications by content alone would instead drop
//! a second real change of the same user for `dedupe_for` days.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::sources::Hint;

/// The kept-delivery header marking a page of the source's own delta query.
pub const DELTA_HEADER: &str = "entra-delta-page";
/// How a lifecycle hint's user starts: `lifecycle:{event}:{subscription id}`.
pub const LIFECYCLE: &str = "lifecycle:";
/// The longest validation token answered (Graph's are about 100 characters).
const MAX_TOKEN: usize = 4096;

/// The answer to Graph's validation request, or a refusal of a token Graph
/// would never send (empty, oversized, or markup: Graph documents that it
/// never sends HTML or script, and echoing markup would make the endpoint
/// a reflector).
pub fn validation(token: &str) -> Result<Response, &'static str> {
    if token.is_empty() || token.len() > MAX_TOKEN || token.contains(['<', '>']) {
        return Err("the validationToken is empty, too long or holds markup");
    }
    let headers = [(header::CONTENT_TYPE, "text/plain"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    Ok((StatusCode::OK, headers, token.to_owned()).into_response())
}

/// The items of a notification body (`value[]`), or why it is not one.
pub fn items(body: &[u8]) -> Result<Vec<Value>, String> {
    let collection: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
    match collection.get("value") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err("not a change notification collection (no value[])".into()),
    }
}

/// The `clientState` of a notification item.
pub fn client_state(item: &Value) -> Option<&str> {
    item.get("clientState").and_then(Value::as_str)
}

/// The hints of a notification body received at `received_at`: one per
/// user notification and one per lifecycle notification; notifications on
/// other resources are skipped. An item that cannot be read gives the
/// reason (by position and field, never a value).
pub fn hints(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Hint>, String> {
    let mut hints = Vec::new();
    for (i, item) in items(body)?.iter().enumerate() {
        let field = |name: &str| format!("value[{i}].{name}");
        let text = |name: &str| item.get(name).and_then(Value::as_str);
        let subscription = text("subscriptionId").ok_or_else(|| field("subscriptionId") + " is missing")?;
        if !is_graph_id(subscription) {
            return Err(field("subscriptionId") + " is not a Graph id");
        }
        if let Some(event) = text("lifecycleEvent") {
            if !matches!(event, "reauthorizationRequired" | "subscriptionRemoved" | "missed") {
                return Err(field("lifecycleEvent") + " is not a known lifecycle event");
            }
            let expires = text("subscriptionExpirationDateTime").unwrap_or_default();
            let received = received_at.to_rfc3339();
            let id = digest(&["lifecycle", subscription, event, expires, &received]);
            let user = format!("{LIFECYCLE}{event}:{subscription}");
            hints.push(Hint { event: id, user, change: event.to_owned(), at: None });
            continue;
        }
        let change = text("changeType").ok_or_else(|| field("changeType") + " is missing")?;
        if !matches!(change, "created" | "updated" | "deleted") {
            return Err(field("changeType") + " is not created, updated or deleted");
        }
        let resource = text("resource").ok_or_else(|| field("resource") + " is missing")?;
        let Some(named) =
            resource.get(..6).filter(|p| p.eq_ignore_ascii_case("users/")).map(|_| &resource[6..])
        else {
            continue;
        };
        let data = item.get("resourceData");
        let user = data.and_then(|d| d.get("id")).and_then(Value::as_str).unwrap_or(named);
        if !is_graph_id(user) {
            return Err(field("resourceData.id") + " is not a Graph user id");
        }
        let sequence = data.and_then(|d| d.get("sequenceNumber")).map(scalar).unwrap_or_default();
        let event_time = data.and_then(|d| d.get("eventTime")).and_then(Value::as_str).unwrap_or_default();
        let id = match text("id") {
            Some(own) => digest(&["id", subscription, own]),
            None if !sequence.is_empty() || !event_time.is_empty() => {
                digest(&["change", user, change, &sequence, event_time])
            }
            None => digest(&["delivery", subscription, user, change, &received_at.to_rfc3339()]),
        };
        let at = event_time.parse().ok();
        hints.push(Hint { event: id, user: user.to_owned(), change: change.to_owned(), at });
    }
    Ok(hints)
}

/// The hints of a kept delta page received at `received_at`: every user
/// it lists, removed (`@removed`) or changed. Both are read back.
pub fn delta_hints(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Hint>, String> {
    let received = received_at.to_rfc3339();
    let mut hints = Vec::new();
    for (i, item) in items(body)?.iter().enumerate() {
        let user = item.get("id").and_then(Value::as_str).filter(|u| is_graph_id(u));
        let user = user.ok_or_else(|| format!("value[{i}].id is missing or not a Graph user id"))?;
        let change = if item.get("@removed").is_some() { "delta:removed" } else { "delta:changed" };
        let id = digest(&["delta", &received, user, change]);
        hints.push(Hint { event: id, user: user.to_owned(), change: change.to_owned(), at: None });
    }
    Ok(hints)
}

/// What of a delta page is kept: each user's id and whether it was
/// removed (the profile itself is read back, never queued).
pub fn delta_page(items: &[Value]) -> Value {
    let kept: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let id = item.get("id")?.as_str()?;
            Some(match item.get("@removed") {
                Some(removed) => json!({ "id": id, "@removed": removed }),
                None => json!({ "id": id }),
            })
        })
        .collect();
    json!({ "value": kept })
}

/// Whether `id` looks like a Graph object id (a GUID, or letters, digits
/// and `-`): never a `:` or `/`, so it cannot pose as a lifecycle hint or
/// another path.
pub fn is_graph_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A scalar as text (`sequenceNumber` is documented as a string, sent as a number).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `graph-` and the first 32 hex digits of SHA-256 over `parts`.
fn digest(parts: &[&str]) -> String {
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("graph-{}", &hex::encode(hasher.finalize())[..32])
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
