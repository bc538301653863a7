//! Okta Event Hooks
//! (<https://developer.okta.com/docs/concepts/event-hooks/>).
//!
//! - **Verification**: Okta sends a one-time `GET` with
//!   `X-Okta-Verification-Challenge`; the answer is `200` with
//!   `{"verification": "<the same value>"}`.
//! - **Authentication**: Okta does not sign deliveries; it sends the
//!   configured header (`authScheme` `HEADER`, e.g. `Authorization`) with a
//!   secret value, checked here in constant time against `secrets`.
//! - **Deliveries**: `POST` of a batch, `data.events[]`, each with a `uuid`
//!   (the dedupe key), `eventType`, `published` and `target[]` (the `User`).
//!   Okta waits 3 s for a 2xx and retries once; the delivery is kept
//!   (published with confirms) and answered `200` at once.
//! - **Read back**: every event only names the user; the user is read from
//!   the Users API (`GET /api/v1/users/{id}`, `SSWS` token) and their
//!   groups from `/api/v1/users/{id}/groups`. A header secret alone can
//!   therefore never deprovision anyone: a forged "deactivate" naming an
//!   active user reads back an active user.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, PushSource};
use scimfleet_schemas::PersonStatus;
use serde_json::{Value, json};

use super::api::Api;
use super::map::Mapping;
use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received, refuse, secret_matches};

/// The event types read; any other in a batch is skipped.
pub const EVENT_TYPES: [&str; 9] = [
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.initiated",
    "user.account.update_profile",
    "group.user_membership.add",
    "group.user_membership.remove",
];

/// Person attribute ← Okta user field, unless `[sources.attributes]` says otherwise.
const DEFAULT_ATTRIBUTES: [(&str, &str); 9] = [
    ("userName", "profile.login"),
    ("email", "profile.email"),
    ("givenName", "profile.firstName"),
    ("familyName", "profile.lastName"),
    ("displayName", "profile.displayName"),
    ("department", "profile.department"),
    ("title", "profile.title"),
    ("employeeNumber", "profile.employeeNumber"),
    ("costCenter", "profile.costCenter"),
];

/// An Okta Event Hook source.
#[derive(Debug)]
pub struct Okta {
    id: String,
    secrets: Vec<Secret>,
    header: String,
    api: Api,
    mapping: Mapping,
    groups: bool,
    dedupe_for: Duration,
}

impl Okta {
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
            api: Api::load(config, index, &push.id, &push.api, "SSWS")?,
            mapping: Mapping::of(push, "id", &DEFAULT_ATTRIBUTES),
            groups: push.groups,
            dedupe_for: Duration::from_millis(push.dedupe_for),
        })
    }
}

#[async_trait]
impl Adapter for Okta {
    fn id(&self) -> &str {
        &self.id
    }

    fn dedupe_for(&self) -> Duration {
        self.dedupe_for
    }

    async fn receive(&self, _context: &Context, request: &Received<'_>) -> Receipt {
        // Okta sends the configured header on the verification request too.
        if !secret_matches(request.header(&self.header), &self.secrets) {
            return Receipt::Answer(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the hook's secret header is missing or wrong",
            ));
        }
        if *request.method == Method::GET {
            let Some(challenge) = request.header("x-okta-verification-challenge") else {
                return Receipt::Answer(refuse(
                    StatusCode::BAD_REQUEST,
                    "no-challenge",
                    "a GET is Okta's verification and carries X-Okta-Verification-Challenge",
                ));
            };
            let body = json!({ "verification": challenge }).to_string();
            return Receipt::Answer(
                (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
            );
        }
        if *request.method != Method::POST {
            return Receipt::Answer(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Okta verifies with GET and delivers with POST",
            ));
        }
        match hints_of(request.body) {
            // Okta retries a refused delivery once and then drops it; a
            // batch that can never be read is recorded instead and refused.
            Err(reason) => {
                Receipt::Record { reply: refuse(StatusCode::BAD_REQUEST, "invalid-payload", &reason), reason }
            }
            Ok(_) => Receipt::Keep { reply: StatusCode::OK.into_response(), headers: Vec::new() },
        }
    }

    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String> {
        hints_of(delivery.body.as_bytes())
    }

    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure> {
        let user_path = format!("api/v1/users/{}", encode(&hint.user));
        let Some(user) = self.api.get(context, &user_path).await? else {
            return Ok(Observed::Gone);
        };
        let status = match user.get("status").and_then(Value::as_str).unwrap_or_default() {
            "DEPROVISIONED" => PersonStatus::Terminated,
            "SUSPENDED" => PersonStatus::Suspended,
            "STAGED" => return Ok(Observed::Ignore("the Okta user is STAGED (not activated)".into())),
            "ACTIVE" | "PROVISIONED" | "RECOVERY" | "PASSWORD_EXPIRED" | "LOCKED_OUT" => PersonStatus::Active,
            _ => return Err(Failure::Invalid("the Okta user has no known status".into())),
        };
        let groups = if self.groups && status == PersonStatus::Active {
            let groups = self.api.get(context, &format!("{user_path}/groups")).await?.unwrap_or(Value::Null);
            group_names(&groups)
        } else {
            Vec::new()
        };
        self.mapping.person(&user, status, groups).map(Observed::User)
    }
}

/// The user events of a hook body (`data.events[]`); other event types and
/// events without a `User` target are skipped. A body that is not an Okta
/// event hook is refused with the reason.
pub fn hints_of(body: &[u8]) -> Result<Vec<Hint>, String> {
    let hook: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
    let events = hook.pointer("/data/events").and_then(Value::as_array).ok_or("no data.events[]")?;
    let mut hints = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let kind = event
            .get("eventType")
            .and_then(Value::as_str)
            .ok_or(format!("data.events[{i}].eventType is missing"))?;
        let uuid =
            event.get("uuid").and_then(Value::as_str).ok_or(format!("data.events[{i}].uuid is missing"))?;
        if !EVENT_TYPES.contains(&kind) {
            continue;
        }
        let targets = event.get("target").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let Some(user) = targets
            .iter()
            .find(|t| t.get("type").and_then(Value::as_str) == Some("User"))
            .and_then(|t| t.get("id").and_then(Value::as_str))
        else {
            return Err(format!("data.events[{i}] ({kind}) names no User target"));
        };
        let at = event.get("published").and_then(Value::as_str).and_then(|t| t.parse().ok());
        hints.push(Hint { event: uuid.to_owned(), user: user.to_owned(), change: kind.to_owned(), at });
    }
    Ok(hints)
}

/// The names of the Okta and app groups in a list of groups (not `BUILT_IN`'s "Everyone").
fn group_names(groups: &Value) -> Vec<String> {
    let mut names: Vec<String> = groups
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|g| g.get("type").and_then(Value::as_str) != Some("BUILT_IN"))
        .filter_map(|g| g.pointer("/profile/name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A path segment, percent-encoded.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
