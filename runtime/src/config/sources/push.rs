//! `[[sources]]` of the identity providers that push changes to the intake
//! (`/v1/sources/{id}`): Okta Event Hooks, Microsoft Graph change
//! notifications, PingOne webhooks and Google Workspace push channels.
//!
//! ```toml
//! [[sources]]
//! id = "okta"
//! kind = "okta"
//! secrets = [{ env = "OKTA_HOOK_SECRET" }]    # the value of `header`
//! header = "Authorization"                   # where Okta sends it
//! person_id = "profile.employeeNumber"       # default: the IdP's user id
//! [sources.api]                              # where a changed user is read back
//! base_url = "https://acme.okta.com"
//! token = { env = "OKTA_API_TOKEN" }
//! rate_per_second = 10.0
//! [sources.attributes]                       # person attribute <- field of the user read
//! userName = "profile.login"
//! ```
//!
//! Every delivery is a hint: the changed user is read back from the
//! source's API before anything is emitted, so a forged or stale
//! notification cannot remove access on its own.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::ConfigError;
use super::super::de::{duration_ms, some_duration_ms};
use super::super::intake::SecretRef;

/// A source that pushes notifications and is read back through its API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSource {
    /// Names the source in its path (`/v1/sources/{id}`), events, keys and logs.
    pub id: String,
    /// The shared secret(s) a delivery must carry (Okta and PingOne: the
    /// value of `header`; Graph: `clientState`; Google: the channel token).
    /// Several are listed during a rotation.
    pub secrets: Vec<SecretRef>,
    /// The request header carrying the secret (Okta, PingOne; default `Authorization`).
    #[serde(default)]
    pub header: Option<String>,
    /// Where changed users are read back.
    pub api: SourceApi,
    /// The field of the user read holding the person's HR id (dotted
    /// path, e.g. `profile.employeeNumber`); the IdP's user id when unset.
    #[serde(default)]
    pub person_id: Option<String>,
    /// Person attribute ← field of the user read (dotted path); each kind
    /// has a default mapping used when this is empty.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Whether the user's group memberships are read and sent as groups.
    #[serde(default = "yes")]
    pub groups: bool,
    /// How long a source event id is remembered against redelivery
    /// (default 7 days, longer than any provider's redelivery window).
    #[serde(default = "week", deserialize_with = "duration_ms")]
    pub dedupe_for: u64,
    /// Subscriptions or channels scimfleet creates and renews (Graph, Google).
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// How often the Graph delta query runs (reconciliation; off when unset).
    #[serde(default, deserialize_with = "some_duration_ms")]
    pub delta_every: Option<u64>,
}

/// A source's read API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceApi {
    /// The API's base URL (e.g. `https://acme.okta.com`, `https://graph.microsoft.com/v1.0`).
    pub base_url: String,
    /// A static API token (Okta `SSWS`, or a bearer token).
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// OAuth 2.0 client credentials instead of a static token (Graph, PingOne, Google).
    #[serde(default)]
    pub oauth: Option<SourceOAuth>,
    /// Requests per second scimfleet sends the API, across the intake's replicas.
    #[serde(default = "ten")]
    pub rate_per_second: f64,
    /// How long one API call may take (default 10 s).
    #[serde(default = "ten_seconds", deserialize_with = "duration_ms")]
    pub timeout: u64,
}

/// OAuth 2.0 client credentials (RFC 6749 §4.4) for a source's API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOAuth {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretRef,
    /// The scope asked for (Graph: `https://graph.microsoft.com/.default`).
    #[serde(default)]
    pub scope: Option<String>,
}

/// A push subscription (Graph) or watch channel (Google) kept alive by the intake.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The public URL of this source's endpoint, as the provider must call it.
    pub notification_url: String,
    /// Graph: where lifecycle notifications go (default: `notification_url`).
    #[serde(default)]
    pub lifecycle_url: Option<String>,
    /// How long a subscription or channel is asked to live (Graph caps user
    /// subscriptions at 41,760 minutes; default 2 days).
    #[serde(default = "two_days", deserialize_with = "duration_ms")]
    pub lifetime: u64,
    /// Renew when less than this is left (default 12 hours).
    #[serde(default = "twelve_hours", deserialize_with = "duration_ms")]
    pub renew_before: u64,
}

fn yes() -> bool {
    true
}
fn week() -> u64 {
    7 * 86_400_000
}
fn ten() -> f64 {
    10.0
}
fn ten_seconds() -> u64 {
    10_000
}
fn two_days() -> u64 {
    2 * 86_400_000
}
fn twelve_hours() -> u64 {
    12 * 3_600_000
}

/// Graph's longest user subscription (41,760 minutes).
pub const GRAPH_MAX_LIFETIME_MS: u64 = 41_760 * 60_000;

impl PushSource {
    /// Checks the fields every kind shares; `kind` names the variant in errors.
    pub(in super::super) fn validate(&self, origin: &str, i: usize, kind: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("sources[{i}].{name}");
        let invalid = |name: &str, why: &str| Err(ConfigError::invalid(origin, field(name), why));
        if !super::valid_id(&self.id) {
            return invalid("id", "1-64 letters, digits, `-` and `_`");
        }
        if self.secrets.is_empty() {
            return invalid("secrets", "at least one secret is needed");
        }
        if self.secrets.iter().any(|s| s.source().is_none()) {
            return invalid("secrets", "each secret sets exactly one of env and file");
        }
        if self.header.as_deref().is_some_and(|h| http::HeaderName::from_bytes(h.as_bytes()).is_err()) {
            return invalid("header", "not an HTTP header name");
        }
        let api = &self.api;
        if !(api.base_url.starts_with("https://") || api.base_url.starts_with("http://")) {
            return invalid("api.base_url", "an http(s) URL");
        }
        if api.token.is_some() == api.oauth.is_some() {
            return invalid("api.token", "set exactly one of api.token and api.oauth");
        }
        if api.token.as_ref().is_some_and(|t| t.source().is_none())
            || api.oauth.as_ref().is_some_and(|o| o.client_secret.source().is_none())
        {
            return invalid("api.token", "a secret sets exactly one of env and file");
        }
        if !(api.rate_per_second > 0.0 && api.rate_per_second.is_finite()) {
            return invalid("api.rate_per_second", "must be above 0");
        }
        for name in self.attributes.keys() {
            if super::super::mapping::check_attribute_name(name).is_err() {
                return invalid(&format!("attributes.{name}"), "not an attribute name");
            }
        }
        if self.dedupe_for < 86_400_000 {
            return invalid("dedupe_for", "at least 1d: providers redeliver for days");
        }
        if let Some(subscription) = &self.subscription {
            if !subscription.notification_url.starts_with("https://")
                && !subscription.notification_url.starts_with("http://")
            {
                return invalid("subscription.notification_url", "an http(s) URL");
            }
            if kind == "entra" && subscription.lifetime > GRAPH_MAX_LIFETIME_MS {
                return invalid("subscription.lifetime", "Graph keeps user subscriptions 41760m at most");
            }
            if subscription.renew_before >= subscription.lifetime {
                return invalid("subscription.renew_before", "must be shorter than lifetime");
            }
        }
        if self.subscription.is_some() && !["entra", "google"].contains(&kind) {
            return invalid("subscription", "only entra and google sources keep subscriptions");
        }
        if self.delta_every.is_some() && kind != "entra" {
            return invalid("delta_every", "only entra sources run the delta query");
        }
        Ok(())
    }

    /// The header carrying the shared secret.
    pub fn secret_header(&self) -> &str {
        self.header.as_deref().unwrap_or("authorization")
    }
}
