//! PingOne webhooks in the `ACTIVITY` format
//! (<https://developer.pingidentity.com/pingone-api/platform/subscriptions-webhooks.html>,
//! <https://docs.pingidentity.com/pingone/integrations/p1_create_webhook.html>).
//!
//! - **Deliveries**: PingOne `POST`s one JSON document per request holding
//!   a batch of up to 500 audit activities (the same shape as the Audit
//!   Activities API: `id`, `recordedAt`, `action.type`, `resources[]` with
//!   `type` and `id`, `result.status`). A top-level array is read, and so
//!   is a single activity object.
//! - **Authentication**: PingOne does not sign deliveries; the subscription
//!   sends the custom headers it is configured with (`httpEndpoint.headers`).
//!   The one named by `header` is checked in constant time against
//!   `secrets`; a wrong or missing one is refused `401`. Mutual TLS
//!   (`tlsClientAuthKeyPair`) is for the listener in front (the intake's TLS
//!   listener does not ask for client certificates: terminate mTLS at a
//!   fronting proxy when it is required).
//! - **Acknowledgement**: PingOne retries the first undelivered event until
//!   it gets a `200` and sends nothing after it meanwhile (for up to 7
//!   days), so a batch that can never be read is dead-lettered whole, with
//!   the reason, and answered `200`: refusing it would stall the
//!   environment's whole stream. Nothing of such a batch is published.
//! - **Read back**: every activity naming a `USER` resource is a hint (the
//!   action type only decides the log line; subscribe to the user events
//!   wanted with `includedActionTypes`); failed activities
//!   (`result.status` `FAILURE`) changed nothing and are skipped. The user is
//!   read from `GET {api.base_url}/users/{id}` (`api.base_url` is
//!   `https://api.pingone.com/v1/environments/{envId}`), with
//!   `include=memberOfGroupNames` when groups are read, using OAuth client
//!   credentials of a worker application
//!   (`https://auth.pingone.com/{envId}/as/token`). `enabled: false`
//!   (PingOne's switch of the user's ability to authenticate, reversible)
//!   is `suspended`; a user the API no longer has (`404`) is gone, i.e.
//!   terminated.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, PushSource};
use scimfleet_schemas::PersonStatus;
use serde_json::Value;

use super::api::Api;
use super::map::Mapping;
use super::okta::encode;
use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received, refuse, secret_matches};

/// Person attribute ← PingOne user field, unless `[sources.attributes]` says
/// otherwise. PingOne has no department attribute of its own: map a custom
/// one when the environment has it.
const DEFAULT_ATTRIBUTES: [(&str, &str); 7] = [
    ("userName", "username"),
    ("email", "email"),
    ("givenName", "name.given"),
    ("familyName", "name.family"),
    ("displayName", "name.formatted"),
    ("title", "title"),
    ("employeeNumber", "externalId"),
];

/// The most activities one delivery may hold (PingOne batches up to 500).
const MAX_ACTIVITIES: usize = 500;

/// A PingOne webhook source.
#[derive(Debug)]
pub struct PingOne {
    id: String,
    secrets: Vec<Secret>,
    header: String,
    api: Api,
    mapping: Mapping,
    groups: bool,
    dedupe_for: Duration,
}

impl PingOne {
    /// Loads `sources[index]`, reading its secrets.
    pub fn load(
        config: &scimfleet_runtime::Config,
        index: usize,
        push: &PushSource,
    ) -> Result<Self, ConfigError> {
        let secrets = push
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| s.read(&config.origin, format!("sources[{index}].secrets[{i}]"), &config.base_dir))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: push.id.clone(),
            secrets,
            header: push.secret_header().to_owned(),
            api: Api::load(config, index, &push.id, &push.api, "Bearer")?,
            mapping: Mapping::of(push, "id", &DEFAULT_ATTRIBUTES),
            groups: push.groups,
            dedupe_for: Duration::from_millis(push.dedupe_for),
        })
    }
}

#[async_trait]
impl Adapter for PingOne {
    fn id(&self) -> &str {
        &self.id
    }

    fn dedupe_for(&self) -> Duration {
        self.dedupe_for
    }

    async fn receive(&self, _context: &Context, request: &Received<'_>) -> Receipt {
        if !secret_matches(request.header(&self.header), &self.secrets) {
            let detail = "the webhook's secret header is missing or wrong";
            return Receipt::Answer(refuse(StatusCode::UNAUTHORIZED, "unauthorized", detail));
        }
        if *request.method != Method::POST {
            let detail = "PingOne delivers with POST";
            return Receipt::Answer(refuse(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail));
        }
        match hints_of(request.body) {
            // Refusing would make PingOne retry this batch forever and hold
            // back every event after it: record it, then acknowledge.
            Err(reason) => Receipt::Record { reason, reply: StatusCode::OK.into_response() },
            Ok(_) => Receipt::Keep { reply: StatusCode::OK.into_response(), headers: Vec::new() },
        }
    }

    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String> {
        hints_of(delivery.body.as_bytes())
    }

    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure> {
        let mut path = format!("users/{}", encode(&hint.user));
        if self.groups {
            path.push_str("?include=memberOfGroupNames");
        }
        let Some(user) = self.api.get(context, &path).await? else {
            return Ok(Observed::Gone);
        };
        let status = match user.get("enabled").and_then(Value::as_bool) {
            Some(true) => PersonStatus::Active,
            Some(false) => PersonStatus::Suspended,
            None => return Err(Failure::Invalid("the PingOne user has no `enabled`".into())),
        };
        let groups =
            if self.groups && status == PersonStatus::Active { group_names(&user) } else { Vec::new() };
        self.mapping.person(&user, status, groups).map(Observed::User)
    }
}

/// The user activities of a webhook body: each activity naming a `USER`
/// resource, unless it failed. A body that is not an activity batch, or
/// an activity without an id or action type, makes the whole batch
/// unreadable (the reason names the field, never a value).
pub fn hints_of(body: &[u8]) -> Result<Vec<Hint>, String> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
    let activities = match &body {
        Value::Array(activities) => activities.as_slice(),
        Value::Object(_) => std::slice::from_ref(&body),
        _ => return Err("neither an activity nor an array of activities".into()),
    };
    if activities.len() > MAX_ACTIVITIES {
        return Err(format!("{} activities; PingOne sends at most {MAX_ACTIVITIES}", activities.len()));
    }
    let mut hints = Vec::new();
    for (i, activity) in activities.iter().enumerate() {
        let text =
            |pointer: &str| activity.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
        let id = text("/id").ok_or(format!("activities[{i}].id is missing"))?;
        let kind = text("/action/type").ok_or(format!("activities[{i}].action.type is missing"))?;
        if text("/result/status").is_some_and(|s| s.eq_ignore_ascii_case("FAILURE")) {
            continue;
        }
        let resources = match activity.get("resources") {
            None => &[][..],
            Some(Value::Array(resources)) => resources.as_slice(),
            Some(_) => return Err(format!("activities[{i}].resources is not a list")),
        };
        let users = resources.iter().filter(|r| r.get("type").and_then(Value::as_str) == Some("USER"));
        let at = text("/recordedAt").and_then(|t| t.parse().ok());
        for (n, resource) in users.enumerate() {
            let user = resource
                .get("id")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .ok_or(format!("activities[{i}] ({kind}) names a USER resource without an id"))?;
            // One activity naming two users (rare) gives one hint per user.
            let event = if n == 0 { id.to_owned() } else { format!("{id}#{n}") };
            hints.push(Hint { event, user: user.to_owned(), change: kind.to_owned(), at });
        }
    }
    Ok(hints)
}

/// The user's group names (`memberOfGroupNames`), sorted.
fn group_names(user: &Value) -> Vec<String> {
    let mut names: Vec<String> = user
        .get("memberOfGroupNames")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activity(id: &str, kind: &str, user: &str) -> Value {
        json!({
            "id": id, "recordedAt": "2026-12-05T09:00:00.000Z",
            "action": { "type": kind, "description": "User Updated" },
            "resources": [{ "type": "USER", "id": user, "name": "someone" }],
            "result": { "status": "SUCCESS", "description": "Passed role access control" }
        })
    }

    #[test]
    fn a_batch_gives_one_hint_per_user_activity() {
        let mut failed = activity("a3", "USER.UPDATED", "u3");
        failed["result"]["status"] = "FAILURE".into();
        let app = json!({ "id": "a4", "action": { "type": "APPLICATION.UPDATED" },
            "resources": [{ "type": "APPLICATION", "id": "app1" }] });
        let batch =
            json!([activity("a1", "USER.CREATED", "u1"), activity("a2", "USER.DELETED", "u2"), failed, app]);
        let hints = hints_of(batch.to_string().as_bytes()).expect("readable");
        let users: Vec<(&str, &str)> = hints.iter().map(|h| (h.event.as_str(), h.user.as_str())).collect();
        assert_eq!(users, [("a1", "u1"), ("a2", "u2")]);
        assert_eq!(hints[0].at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-05T09:00:00+00:00"));
        let one = hints_of(activity("a5", "USER.UPDATED", "u5").to_string().as_bytes()).expect("readable");
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn one_unreadable_activity_makes_the_batch_unreadable_without_echoing_values() {
        let mut broken = activity("a2", "USER.UPDATED", "u2");
        broken["action"] = json!({});
        let batch = json!([activity("a1", "USER.CREATED", "u1"), broken]);
        let reason = hints_of(batch.to_string().as_bytes()).expect_err("unreadable");
        assert_eq!(reason, "activities[1].action.type is missing");
        assert!(hints_of(b"not json").is_err());
        assert!(hints_of(b"42").is_err());
        let nameless =
            json!([{ "id": "a1", "action": { "type": "USER.CREATED" }, "resources": [{ "type": "USER" }] }]);
        assert!(hints_of(nameless.to_string().as_bytes()).expect_err("no user id").contains("activities[0]"));
    }
}
