//! Google Workspace Directory push notifications
//! (<https://developers.google.com/admin-sdk/directory/v1/guides/push>).
//!
//! - **Channels**: scimfleet opens one watch channel per user event it
//!   follows (`add`, `update`, `delete`, `undelete`) with
//!   `users.watch` and keeps them open ([`channels`]): the intake renews
//!   them on schedule, and `scimfleet sources renew` does it at once.
//! - **Authentication**: Google does not sign notifications; each carries
//!   the channel's token (`X-Goog-Channel-Token`), the first of `secrets`
//!   when the channel was opened. It is checked in constant time against
//!   every configured secret: a missing or unknown token is refused `401`
//!   and nothing is kept.
//! - **Sync**: a new channel's first message (`X-Goog-Resource-State:
//!   sync`) only says the channel works: it is answered `200`, noted on
//!   the channel, and emits nothing.
//! - **Deliveries**: a notification names one user (`X-Goog-Resource-State`
//!   `add`, `update`, `delete`, `undelete`, `makeAdmin`; the body is
//!   `{kind: admin#directory#user, id, primaryEmail}`), is kept (published
//!   with confirms) and answered `200`. Its event id is the channel id and
//!   `X-Goog-Message-Number`, so a retried notification is processed once.
//! - **Read back**: `GET /admin/directory/v1/users/{id}?projection=full`;
//!   `archived` is terminated (an archived user keeps no access and holds a
//!   licence only to keep the data), `suspended` is suspended, `404` (the
//!   user was deleted) is gone, i.e. terminated. Groups, when read, are the
//!   e-mail addresses of `GET /admin/directory/v1/groups?userKey={id}`
//!   (unique, unlike group names).
//! - **API credentials**: `api.base_url` is `https://admin.googleapis.com`.
//!   Google's token endpoint grants service accounts with a signed JWT
//!   (RFC 7523), not client credentials: give `api.token` from a
//!   token-minting sidecar, or point `api.oauth.token_url` at a sidecar
//!   that answers the client-credentials grant with a Google access token
//!   (scopes `admin.directory.user.readonly`, and
//!   `admin.directory.group.readonly` when groups are read).

pub mod channels;

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, PushSource};
use scimfleet_schemas::PersonStatus;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::api::Api;
use super::map::{Mapping, text_at};
use super::okta::encode;
use super::process::Emitter;
use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received, refuse, secret_matches};
use channels::Channels;

/// Person attribute ← Directory user field, unless `[sources.attributes]` says otherwise.
const DEFAULT_ATTRIBUTES: [(&str, &str); 8] = [
    ("userName", "primaryEmail"),
    ("email", "primaryEmail"),
    ("givenName", "name.givenName"),
    ("familyName", "name.familyName"),
    ("displayName", "name.fullName"),
    ("department", "organizations.0.department"),
    ("title", "organizations.0.title"),
    ("employeeNumber", "externalIds.0.value"),
];

/// The headers a kept notification carries to processing.
const KEPT_HEADERS: [&str; 3] = ["x-goog-channel-id", "x-goog-message-number", "x-goog-resource-state"];
/// Most pages of groups read for one user (200 groups a page).
const MAX_GROUP_PAGES: usize = 20;

/// A Google Workspace Directory source.
#[derive(Debug)]
pub struct Google {
    id: String,
    secrets: Vec<Secret>,
    api: Api,
    mapping: Mapping,
    groups: bool,
    dedupe_for: Duration,
    channels: Option<Channels>,
}

impl Google {
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
        let channels = match (&push.subscription, secrets.first()) {
            (Some(subscription), Some(token)) => {
                Some(Channels::new(&push.id, api.clone(), Secret::new(token.expose()), subscription))
            }
            _ => None,
        };
        Ok(Self {
            id: push.id.clone(),
            secrets,
            api,
            mapping: Mapping::of(push, "id", &DEFAULT_ATTRIBUTES),
            groups: push.groups,
            dedupe_for: Duration::from_millis(push.dedupe_for),
            channels,
        })
    }

    async fn group_emails(&self, context: &Context, user: &str) -> Result<Vec<String>, Failure> {
        let mut emails = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_GROUP_PAGES {
            let mut path = format!("admin/directory/v1/groups?userKey={}&maxResults=200", encode(user));
            if let Some(token) = &page {
                path.push_str(&format!("&pageToken={}", encode(token)));
            }
            let Some(listed) = self.api.get(context, &path).await? else { break };
            let groups =
                listed.get("groups").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            emails.extend(groups.iter().filter_map(|g| text_at(g, "email")).map(|e| e.to_lowercase()));
            page = text_at(&listed, "nextPageToken").filter(|t| !t.is_empty());
            if page.is_none() {
                break;
            }
        }
        emails.sort();
        emails.dedup();
        Ok(emails)
    }
}

#[async_trait]
impl Adapter for Google {
    fn id(&self) -> &str {
        &self.id
    }

    fn dedupe_for(&self) -> Duration {
        self.dedupe_for
    }

    async fn receive(&self, context: &Context, request: &Received<'_>) -> Receipt {
        if !secret_matches(request.header("x-goog-channel-token"), &self.secrets) {
            let detail = "the channel token is missing or unknown";
            return Receipt::Answer(refuse(StatusCode::UNAUTHORIZED, "unauthorized", detail));
        }
        if *request.method != Method::POST {
            let detail = "Google delivers with POST";
            return Receipt::Answer(refuse(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail));
        }
        let channel = request.header("x-goog-channel-id").filter(|c| !c.is_empty());
        let state = request.header("x-goog-resource-state").filter(|s| !s.is_empty());
        let number = request.header("x-goog-message-number").and_then(|n| n.parse::<u64>().ok());
        let (Some(channel), Some(state), Some(number)) = (channel, state, number) else {
            let detail = "a push notification carries X-Goog-Channel-ID, X-Goog-Resource-State \
                          and X-Goog-Message-Number";
            return Receipt::Answer(refuse(StatusCode::BAD_REQUEST, "not-a-notification", detail));
        };
        if state == "sync" {
            channels::confirm(context, &self.id, channel).await;
            return Receipt::Answer(StatusCode::OK.into_response());
        }
        match hint_of(channel, number, state, request.body) {
            // Google does not retry a 4xx: the notification is recorded and refused.
            Err(reason) => {
                Receipt::Record { reply: refuse(StatusCode::BAD_REQUEST, "invalid-payload", &reason), reason }
            }
            Ok(_) => {
                let headers = vec![
                    (KEPT_HEADERS[0], channel.to_owned()),
                    (KEPT_HEADERS[1], number.to_string()),
                    (KEPT_HEADERS[2], state.to_owned()),
                ];
                Receipt::Keep { reply: StatusCode::OK.into_response(), headers }
            }
        }
    }

    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String> {
        let header = |name: &str| delivery.headers.get(name).map(String::as_str).unwrap_or_default();
        let number = header(KEPT_HEADERS[1]).parse::<u64>().map_err(|_| "no X-Goog-Message-Number kept")?;
        let hint =
            hint_of(header(KEPT_HEADERS[0]), number, header(KEPT_HEADERS[2]), delivery.body.as_bytes())?;
        Ok(vec![hint])
    }

    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure> {
        let path = format!("admin/directory/v1/users/{}?projection=full", encode(&hint.user));
        let Some(user) = self.api.get(context, &path).await? else {
            return Ok(Observed::Gone);
        };
        let flag = |name: &str| user.get(name).and_then(Value::as_bool).unwrap_or(false);
        let status = if flag("archived") {
            PersonStatus::Terminated
        } else if flag("suspended") {
            PersonStatus::Suspended
        } else {
            PersonStatus::Active
        };
        let groups = if self.groups && status == PersonStatus::Active {
            let key = text_at(&user, "id").unwrap_or_else(|| hint.user.clone());
            self.group_emails(context, &key).await?
        } else {
            Vec::new()
        };
        self.mapping.person(&user, status, groups).map(Observed::User)
    }

    async fn renew(&self, context: &Context) -> Result<Vec<String>, Failure> {
        match &self.channels {
            Some(channels) => channels.renew(context).await.map(|(lines, _)| lines),
            None => Ok(Vec::new()),
        }
    }

    async fn run(&self, context: Context, _emit: Emitter, stop: CancellationToken) {
        match &self.channels {
            Some(channels) => channels.keep_open(&context, &stop).await,
            None => stop.cancelled().await,
        }
    }
}

/// The source event of one notification: channel `channel`'s message
/// `number` about the user in `body` (`admin#directory#user`, its `id`).
pub fn hint_of(channel: &str, number: u64, state: &str, body: &[u8]) -> Result<Hint, String> {
    if channel.is_empty() || state.is_empty() {
        return Err("no channel id or resource state".into());
    }
    let user: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
    if user.get("kind").and_then(Value::as_str).is_some_and(|k| k != "admin#directory#user") {
        return Err("the body's kind is not admin#directory#user".into());
    }
    let id = text_at(&user, "id").filter(|id| !id.is_empty()).ok_or("the body has no user id")?;
    Ok(Hint { event: format!("{channel}:{number}"), user: id, change: state.to_owned(), at: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_its_user_and_its_event_is_the_channel_and_message_number() {
        let body = concat!(
            r#"{"kind":"admin#directory#user","id":"118041235623466217856","#,
            r#""etag":"\"x\"","primaryEmail":"a@example.com"}"#
        )
        .as_bytes();
        let hint = hint_of("scimfleet-abc", 7, "update", body).expect("readable");
        assert_eq!(hint.event, "scimfleet-abc:7");
        assert_eq!(hint.user, "118041235623466217856");
        assert_eq!(hint.change, "update");
        let numeric =
            hint_of("c", 2, "delete", br#"{"kind":"admin#directory#user","id":118041}"#).expect("readable");
        assert_eq!(numeric.user, "118041");
    }

    #[test]
    fn a_notification_without_a_user_is_unreadable() {
        assert!(hint_of("c", 2, "add", b"").is_err());
        assert!(hint_of("c", 2, "add", br#"{"kind":"admin#directory#user"}"#).is_err());
        assert!(hint_of("c", 2, "add", br#"{"kind":"admin#directory#group","id":"1"}"#).is_err());
        assert!(hint_of("", 2, "add", br#"{"id":"1"}"#).is_err());
    }
}
