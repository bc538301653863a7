//! Microsoft Entra ID through Microsoft Graph: change notifications on
//! `users` (push), lifecycle notifications, and the users delta query
//! (reconciliation).
//!
//! - **Handshake**: Graph validates `notificationUrl` and
//!   `lifecycleNotificationUrl` with `POST ?validationToken=…`, answered
//!   `200 text/plain` with the decoded token ([`notify::validation`]).
//! - **Authentication**: every item of a delivery carries the
//!   subscription's `clientState`, compared in constant time with
//!   `secrets`; one item without a match refuses the whole request (401,
//!   nothing kept): it did not come from our subscription
//!   (<https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks#processing-the-change-notification>).
//! - **Deliveries**: kept (published with confirms) and answered
//!   `202 Accepted` inside Graph's 3 s window. Each user notification is a
//!   hint ([`notify`] explains its event id); lifecycle notifications (at
//!   the same path, or `subscription.lifecycle_url`, normally the same
//!   path) are processed from the queue too, so a renewal that fails is
//!   tried again: `reauthorizationRequired` renews the subscription,
//!   `subscriptionRemoved` creates it again and `missed` runs the delta
//!   query ([`subscription`]).
//! - **Read back**: `GET /users/{id}?$select=…` (404: the user is gone,
//!   deleted or soft-deleted) and, when `groups`, the names of the groups
//!   in `/users/{id}/memberOf/microsoft.graph.group` (the cast leaves out
//!   directory roles and administrative units, which `memberOf` also
//!   lists). `accountEnabled = false` is **terminated**: disabling the
//!   account is how most enterprises mark a leaver in Entra, and it removes
//!   the person's access everywhere (re-enabling reads back as a rehire).
//! - **Delta query** ([`delta`]): `GET /users/delta` from the kept
//!   `@odata.deltaLink`, every `delta_every` and on `missed`; its pages go
//!   through the same queue, so a change the push channel lost is caught.
//!
//! The API is reached with OAuth 2.0 client credentials (`api.oauth`,
//! token URL `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`,
//! scope `https://graph.microsoft.com/.default`; application permission
//! `User.Read.All`, and `GroupMember.Read.All` for groups).

pub mod delta;
pub mod notify;
pub mod subscription;

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, PushSource};
use scimfleet_schemas::PersonStatus;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::api::Api;
use super::map::Mapping;
use super::process::Emitter;
use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received, refuse, secret_matches};
use subscription::Subscriptions;

/// Person attribute ← Graph user property, unless `[sources.attributes]` says otherwise.
const DEFAULT_ATTRIBUTES: [(&str, &str); 8] = [
    ("userName", "userPrincipalName"),
    ("email", "mail"),
    ("givenName", "givenName"),
    ("familyName", "surname"),
    ("displayName", "displayName"),
    ("department", "department"),
    ("title", "jobTitle"),
    ("employeeNumber", "employeeId"),
];
/// The user properties always read (`$select`): the status and the default mapping.
const SELECT: [&str; 10] = [
    "id",
    "accountEnabled",
    "userPrincipalName",
    "mail",
    "givenName",
    "surname",
    "displayName",
    "department",
    "jobTitle",
    "employeeId",
];
/// Most pages of a user's groups followed (a runaway `nextLink` stops here).
const MAX_PAGES: usize = 1000;

/// A Microsoft Entra ID source.
#[derive(Debug)]
pub struct Entra {
    id: String,
    secrets: Vec<Secret>,
    api: Api,
    mapping: Mapping,
    /// `$select` of every user read: [`SELECT`] and the top-level
    /// properties a configured mapping names.
    select: String,
    groups: bool,
    dedupe_for: Duration,
    subscriptions: Option<Subscriptions>,
    delta_every: Option<Duration>,
    /// Wakes the background duties when a delta query became due.
    wake: Notify,
}

impl Entra {
    /// Loads `sources[index]`, reading its secrets.
    pub fn load(
        config: &scimfleet_runtime::Config,
        index: usize,
        push: &PushSource,
    ) -> Result<Self, ConfigError> {
        let secrets: Vec<Secret> = push
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| s.read(&config.origin, format!("sources[{index}].secrets[{i}]"), &config.base_dir))
            .collect::<Result<_, _>>()?;
        let api = Api::load(config, index, &push.id, &push.api, "Bearer")?;
        let mapping = Mapping::of(push, "id", &DEFAULT_ATTRIBUTES);
        let subscriptions = match (&push.subscription, secrets.first()) {
            (Some(wanted), Some(client_state)) => {
                // Graph's limit for clientState (changeNotification resource type).
                if client_state.expose().len() > 255 {
                    let field = format!("sources[{index}].secrets[0]");
                    return Err(ConfigError::invalid(
                        &config.origin,
                        field,
                        "Graph takes a clientState of 255 characters at most",
                    ));
                }
                Some(Subscriptions::new(&push.id, api.clone(), wanted.clone(), client_state.clone()))
            }
            _ => None,
        };
        Ok(Self {
            id: push.id.clone(),
            secrets,
            select: select(&mapping),
            api,
            mapping,
            groups: push.groups,
            dedupe_for: Duration::from_millis(push.dedupe_for),
            subscriptions,
            delta_every: push.delta_every.map(Duration::from_millis),
            wake: Notify::new(),
        })
    }

    /// The user properties the delta query tracks and every read selects.
    pub fn select(&self) -> &str {
        &self.select
    }

    /// `link` (a `@odata.nextLink` or `@odata.deltaLink`) when it points
    /// under the API's base URL: the API's token is never sent elsewhere.
    fn follow(&self, link: &str) -> Result<String, Failure> {
        if link.starts_with(&self.api.url("")) {
            Ok(link.to_owned())
        } else {
            Err(Failure::Invalid(format!("{}: Graph answered a link off api.base_url", self.id)))
        }
    }

    /// The names of the groups `user` is a direct member of.
    async fn group_names(&self, context: &Context, user: &str) -> Result<Vec<String>, Failure> {
        let mut url = format!("users/{}/memberOf/microsoft.graph.group?$select=displayName", encode(user));
        let mut names = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(page) = self.api.get(context, &url).await? else { break };
            let groups = page.get("value").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            names.extend(groups.iter().filter_map(|g| g.get("displayName")?.as_str().map(str::to_owned)));
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = self.follow(next)?,
                None => break,
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Marks a delta query due (kept in Redis, so any replica runs it) and
    /// wakes this replica's duties.
    async fn delta_due(&self, context: &Context) -> Result<(), Failure> {
        let now = Utc::now().to_rfc3339();
        context.store.sources().set_state(&self.id, delta::DUE, Some(&now)).await.map_err(|e| {
            Failure::Retry(format!(
                "mark a delta query due: {}",
                scimfleet_runtime::telemetry::error_chain(&e)
            ))
        })?;
        self.wake.notify_one();
        Ok(())
    }
}

#[async_trait]
impl Adapter for Entra {
    fn id(&self) -> &str {
        &self.id
    }

    fn dedupe_for(&self) -> Duration {
        self.dedupe_for
    }

    async fn receive(&self, _context: &Context, request: &Received<'_>) -> Receipt {
        if *request.method != Method::POST {
            return Receipt::Answer(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Graph validates and delivers with POST",
            ));
        }
        if let Some(token) = request.query_param("validationToken") {
            return Receipt::Answer(
                notify::validation(&token)
                    .unwrap_or_else(|why| refuse(StatusCode::BAD_REQUEST, "invalid-validation", why)),
            );
        }
        // Unauthenticated until every clientState is checked: a body that
        // is not even a notification collection is refused, not recorded.
        let items = match notify::items(request.body) {
            Ok(items) => items,
            Err(reason) => {
                return Receipt::Answer(refuse(StatusCode::BAD_REQUEST, "invalid-payload", &reason));
            }
        };
        if !items.iter().all(|item| secret_matches(notify::client_state(item), &self.secrets)) {
            return Receipt::Answer(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a notification's clientState is missing or wrong",
            ));
        }
        match notify::hints(request.body, Utc::now()) {
            Ok(hints) if hints.is_empty() => Receipt::Answer(StatusCode::ACCEPTED.into_response()),
            Ok(_) => Receipt::Keep { reply: StatusCode::ACCEPTED.into_response(), headers: Vec::new() },
            Err(reason) => {
                Receipt::Record { reply: refuse(StatusCode::BAD_REQUEST, "invalid-payload", &reason), reason }
            }
        }
    }

    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String> {
        if delivery.headers.contains_key(notify::DELTA_HEADER) {
            notify::delta_hints(delivery.body.as_bytes(), delivery.received_at)
        } else {
            notify::hints(delivery.body.as_bytes(), delivery.received_at)
        }
    }

    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure> {
        if let Some(lifecycle) = hint.user.strip_prefix(notify::LIFECYCLE) {
            let (event, subscription) = lifecycle.split_once(':').unwrap_or((lifecycle, ""));
            return subscription::lifecycle(self, context, event, subscription).await.map(Observed::Ignore);
        }
        let path = format!("users/{}?$select={}", encode(&hint.user), self.select);
        let Some(user) = self.api.get(context, &path).await? else {
            return Ok(Observed::Gone);
        };
        let status = match user.get("accountEnabled").and_then(Value::as_bool) {
            Some(true) => PersonStatus::Active,
            Some(false) => PersonStatus::Terminated,
            None => {
                return Err(Failure::Invalid(
                    "the Graph user has no accountEnabled (is User.Read.All granted?)".into(),
                ));
            }
        };
        let groups = if self.groups && status == PersonStatus::Active {
            self.group_names(context, &hint.user).await?
        } else {
            Vec::new()
        };
        self.mapping.person(&user, status, groups).map(Observed::User)
    }

    async fn renew(&self, context: &Context) -> Result<Vec<String>, Failure> {
        match &self.subscriptions {
            Some(subscriptions) => Ok(vec![subscriptions.ensure(context).await?.to_string()]),
            None => Ok(Vec::new()),
        }
    }

    async fn run(&self, context: Context, emit: Emitter, stop: CancellationToken) {
        delta::duties(self, &context, &emit, &stop).await;
    }
}

/// The `$select` of user reads: [`SELECT`], then the top-level property of
/// every configured path not already in it.
fn select(mapping: &Mapping) -> String {
    let mut properties: Vec<&str> = SELECT.to_vec();
    let paths = std::iter::once(&mapping.person_id).chain(mapping.attributes.values());
    for top in paths.filter_map(|p| p.split('.').next()) {
        let plain = !top.is_empty() && top.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain && !properties.contains(&top) {
            properties.push(top);
        }
    }
    properties.join(",")
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
