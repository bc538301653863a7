//! The SCIM 2.0 HTTP client of one app (RFC 7644).
//!
//! One [`ScimClient`] per app, cheap to clone: it owns one `reqwest::Client`,
//! so each app has its own keep-alive connection pool and a slow app never
//! holds connections another app needs; the app's client certificate and
//! private CAs are part of it. The bearer token comes from the app's
//! [`Auth`] (a fixed or watched token, or OAuth client credentials) as a
//! sensitive header value, never formatted. Pacing, the credential refresh
//! after a 401/403 and short retries of transient failures live in `send`.
//!
//! Each method is one request and returns the answer typed: "not found" is
//! `Ok(None)` where absence is a normal answer (look-ups, GET by id), `409` on
//! create is [`Created::Conflict`] because the converger resolves it, and every
//! other failure is a [`ScimCallError`] that classifies itself. Redirects are
//! not followed: a SCIM endpoint has no reason to redirect, and following one
//! would re-send the token and turn a POST into a GET.
//!
//! Each HTTP request is an OpenTelemetry client span (`GET /Users/{id}`,
//! see `send`) with the HTTP semantic-convention attributes, and carries
//! that span's `traceparent`, so the app's own logs can be joined to the
//! trace. Span fields and errors use path templates (`/Users/{id}`), never
//! the filter values or ids in the real URL, and bodies are never logged.

mod adapt;
mod call;
pub mod raw;
mod record;
mod send;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderValue};
use scimfleet_runtime::metrics::Metrics;
use scimfleet_schemas::AppId;
use scimfleet_schemas::scim::{
    ListResponse, PatchOperation, PatchRequest, ScimGroup, ScimUser, UserAttr, eq_filter,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use self::call::{Call, has_id, same, single};
pub use self::record::{PLANNED_ID_PREFIX, PlannedWrite, Recorder, Step, Steps};
pub use self::send::RequestRetry;

use crate::auth::Auth;
use crate::error::ScimCallError;

/// How to reach one app's SCIM API.
#[derive(Clone)]
pub struct ScimClientConfig {
    /// The app, for spans and errors.
    pub app: AppId,
    /// The SCIM base URL, e.g. `https://api.example.com/scim/v2` (a trailing slash is fine).
    pub base_url: Url,
    /// The app's credentials: bearer token source, client certificate, private CAs.
    pub auth: Auth,
    /// Limit on a whole request, answer included.
    pub timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per host (about the app's concurrency).
    pub max_idle_per_host: usize,
    /// Short retries of one request before its failure goes back to the job.
    pub retry: RequestRetry,
}

impl std::fmt::Debug for ScimClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClientConfig")
            .field("app", &self.app)
            .field("base_url", &self.base_url.as_str())
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The result of a create: the new resource, or `409 Conflict` (it already exists).
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// Created; the resource as the service provider stored it.
    New(T),
    /// A resource with the same unique attribute already exists.
    Conflict,
}

/// A SCIM client for one app. Clones share the connection pool.
#[derive(Clone)]
pub struct ScimClient {
    app: AppId,
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    retry: RequestRetry,
    pacer: Option<Arc<crate::pace::Pacer>>,
    metrics: Option<Arc<Metrics>>,
    /// Host and port of the base URL, for `server.address` / `server.port`.
    server: (String, u16),
    /// For one attempt under a lease: writes are sent only while it is held.
    held: Option<crate::lease::Held>,
    /// How users are found and memberships read (see `adapt`).
    lookups: Arc<adapt::Lookups>,
    /// Where writes go instead of the app, for plans and dry runs (see `record`).
    recorder: Option<Arc<record::Recorder>>,
    /// Where each sent request is noted, for runs that show their steps.
    steps: Option<Arc<record::Steps>>,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient").field("app", &self.app).field("base", &self.base.as_str()).finish()
    }
}

const ACCEPT: &str = "application/scim+json, application/json";

impl ScimClient {
    /// Builds the client and its connection pool.
    pub fn new(config: ScimClientConfig) -> Result<Self, ScimCallError> {
        let config_error = |reason| ScimCallError::Config { reason, source: None };
        let mut base = config.base_url;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(config_error("base_url must be an http(s) URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(config_error("base_url must not carry credentials; use the token"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(config_error("base_url must not have a query or a fragment"));
        }
        // Normalise away a trailing slash so joining segments is uniform.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
        let http = config
            .auth
            .tls(reqwest::Client::builder())
            .default_headers(headers)
            .user_agent(concat!("scimfleet/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| ScimCallError::Config {
                reason: "the HTTP client could not be built",
                source: Some(source.without_url()),
            })?;
        let server =
            (base.host_str().unwrap_or_default().to_owned(), base.port_or_known_default().unwrap_or(443));
        Ok(Self {
            app: config.app,
            base,
            http,
            auth: config.auth,
            retry: config.retry,
            pacer: None,
            metrics: None,
            server,
            held: None,
            lookups: Arc::default(),
            recorder: None,
            steps: None,
        })
    }

    /// Counts every request, retry and rate-limit wait in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Paces every request through `pacer` (rate limits and 429 pauses shared by all replicas).
    pub fn with_pacer(mut self, pacer: crate::pace::Pacer) -> Self {
        self.pacer = Some(Arc::new(pacer));
        self
    }

    /// This client for one attempt under a lease: each write (POST, PUT,
    /// PATCH, DELETE) is sent only while `held` says the lease is still
    /// held, checked right before every try (after pacing, before a
    /// resend), and fails with [`ScimCallError::LeaseLost`] otherwise.
    pub fn guarded(&self, held: crate::lease::Held) -> Self {
        Self { held: Some(held), ..self.clone() }
    }

    /// The app this client talks to.
    pub fn app(&self) -> &AppId {
        &self.app
    }

    /// The user whose `attribute` equals `value` by a filter, if any;
    /// several is an error. See `find_user` for apps that do not filter.
    async fn filter_user(&self, attribute: &str, value: &str) -> Result<Option<ScimUser>, ScimCallError> {
        let call = Call::new(Method::GET, "/Users");
        let url = self.query_url("Users", attribute, value);
        let list: ListResponse<ScimUser> = self.query(&call, url).await?;
        let attr = attribute.parse::<UserAttr>().ok();
        // A result without the attribute cannot be checked: it is not taken as a match.
        let matches =
            |u: &ScimUser| attr.as_ref().map_or(Some(true), |a| a.get(u).map(|v| same(a, &v, value)));
        let user = single(&call, "Users", attribute, list, matches)?;
        user.map(|u| has_id(&call, u, |u| &u.id)).transpose()
    }

    /// One page of every user: `count` users from 1-based `start_index`
    /// (RFC 7644 §3.4.2.4), for sweeps. The app may return fewer than asked.
    pub async fn list_users(
        &self,
        start_index: u64,
        count: u64,
    ) -> Result<ListResponse<ScimUser>, ScimCallError> {
        let call = Call::new(Method::GET, "/Users");
        let mut url = self.url(&["Users"]);
        url.query_pairs_mut()
            .append_pair("startIndex", &start_index.max(1).to_string())
            .append_pair("count", &count.to_string());
        self.query(&call, url).await
    }

    /// The user with SCIM id `id`; `None` when the app answers 404.
    pub async fn get_user(&self, id: &str) -> Result<Option<ScimUser>, ScimCallError> {
        let call = Call::new(Method::GET, "/Users/{id}");
        self.get_by_id(&call, &["Users", id], |u: &ScimUser| &u.id).await
    }

    /// Creates a user.
    pub async fn create_user(&self, user: &ScimUser) -> Result<Created<ScimUser>, ScimCallError> {
        let call = Call::new(Method::POST, "/Users");
        self.create(&call, "Users", user, |u: &ScimUser| &u.id).await
    }

    /// Applies PATCH operations to a user (200 and 204 both succeed).
    pub async fn patch_user(&self, id: &str, ops: Vec<PatchOperation>) -> Result<(), ScimCallError> {
        let call = Call::new(Method::PATCH, "/Users/{id}");
        self.patch(&call, &["Users", id], ops).await
    }

    /// Replaces a user with `user` (PUT, RFC 7644 §3.5.1), for apps that
    /// refuse PATCH. A 404 is an error, never "already gone": the account
    /// was just read, so it means the app does not take PUT there either.
    pub async fn put_user(&self, id: &str, user: &ScimUser) -> Result<(), ScimCallError> {
        let call = Call::new(Method::PUT, "/Users/{id}");
        self.put(&call, &["Users", id], user).await
    }

    /// Deletes a user; 404 counts as done (already gone).
    pub async fn delete_user(&self, id: &str) -> Result<(), ScimCallError> {
        let call = Call::new(Method::DELETE, "/Users/{id}");
        let response = self.send(&call, self.url(&["Users", id]), None).await?;
        match response.status().as_u16() {
            404 => Ok(()),
            _ if response.status().is_success() => Ok(()),
            _ => Err(call.status_error(response).await),
        }
    }

    /// The group whose `displayName` is `display_name` by a filter, if any;
    /// several is an error. See `find_group` for apps that do not filter.
    async fn filter_group(&self, display_name: &str) -> Result<Option<ScimGroup>, ScimCallError> {
        let call = Call::new(Method::GET, "/Groups");
        let url = self.query_url("Groups", "displayName", display_name);
        let list: ListResponse<ScimGroup> = self.query(&call, url).await?;
        // displayName is caseExact=false (RFC 7643 §4.2).
        let matches = |g: &ScimGroup| Some(g.display_name.eq_ignore_ascii_case(display_name));
        let group = single(&call, "Groups", "displayName", list, matches)?;
        group.map(|g| has_id(&call, g, |g| &g.id)).transpose()
    }

    /// The group with SCIM id `id`, members included; `None` when the app answers 404.
    pub async fn get_group(&self, id: &str) -> Result<Option<ScimGroup>, ScimCallError> {
        let call = Call::new(Method::GET, "/Groups/{id}");
        self.get_by_id(&call, &["Groups", id], |g: &ScimGroup| &g.id).await
    }

    /// Creates a group.
    pub async fn create_group(&self, group: &ScimGroup) -> Result<Created<ScimGroup>, ScimCallError> {
        let call = Call::new(Method::POST, "/Groups");
        self.create(&call, "Groups", group, |g: &ScimGroup| &g.id).await
    }

    /// Applies PATCH operations to a group (200 and 204 both succeed).
    pub async fn patch_group(&self, id: &str, ops: Vec<PatchOperation>) -> Result<(), ScimCallError> {
        let call = Call::new(Method::PATCH, "/Groups/{id}");
        self.patch(&call, &["Groups", id], ops).await
    }

    /// Replaces a group with `group` (PUT), for apps that refuse PATCH on groups.
    pub async fn put_group(&self, id: &str, group: &ScimGroup) -> Result<(), ScimCallError> {
        let call = Call::new(Method::PUT, "/Groups/{id}");
        self.put(&call, &["Groups", id], group).await
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused cannot-be-a-base URLs, so the path is always extendable.
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    /// `<base>/<resource>?filter=<attribute eq "value">&count=2`.
    fn query_url(&self, resource: &str, attribute: &str, value: &str) -> Url {
        let mut url = self.url(&[resource]);
        // Two results are enough to tell "one" from "ambiguous".
        url.query_pairs_mut().append_pair("filter", &eq_filter(attribute, value)).append_pair("count", "2");
        url
    }

    async fn query<T: DeserializeOwned + Default>(
        &self,
        call: &Call,
        url: Url,
    ) -> Result<ListResponse<T>, ScimCallError> {
        let response = self.send(call, url, None).await?;
        match response.status().as_u16() {
            200 => {
                let list: ListResponse<T> = call.json(response).await?;
                match list.is_list() {
                    true => Ok(list),
                    // An error body answered with 200 is no empty result:
                    // taken for one, it would create a duplicate account.
                    false => Err(call.invalid(200, "not a ListResponse".to_owned())),
                }
            }
            _ => Err(call.status_error(response).await),
        }
    }

    async fn get_by_id<T: DeserializeOwned>(
        &self,
        call: &Call,
        segments: &[&str],
        id_of: fn(&T) -> &Option<String>,
    ) -> Result<Option<T>, ScimCallError> {
        let response = self.send(call, self.url(segments), None).await?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => Ok(Some(has_id(call, call.json(response).await?, id_of)?)),
            _ => Err(call.status_error(response).await),
        }
    }

    async fn create<T: Serialize + DeserializeOwned>(
        &self,
        call: &Call,
        resource: &str,
        value: &T,
        id_of: fn(&T) -> &Option<String>,
    ) -> Result<Created<T>, ScimCallError> {
        let body = call.encode(value)?;
        let response = self.send(call, self.url(&[resource]), Some(body)).await?;
        match response.status().as_u16() {
            409 => Ok(Created::Conflict),
            200 | 201 => Ok(Created::New(has_id(call, call.json(response).await?, id_of)?)),
            _ => Err(call.status_error(response).await),
        }
    }

    async fn put<T: Serialize>(
        &self,
        call: &Call,
        segments: &[&str],
        value: &T,
    ) -> Result<(), ScimCallError> {
        let body = call.encode(value)?;
        let response = self.send(call, self.url(segments), Some(body)).await?;
        match response.status().as_u16() {
            // The resource in a 200 is not needed: the body is not read.
            200 | 204 => Ok(()),
            _ => Err(call.status_error(response).await),
        }
    }

    async fn patch(
        &self,
        call: &Call,
        segments: &[&str],
        ops: Vec<PatchOperation>,
    ) -> Result<(), ScimCallError> {
        let body = call.encode(&PatchRequest::new(ops))?;
        let response = self.send(call, self.url(segments), Some(body)).await?;
        match response.status().as_u16() {
            // 200 returns the resource, which is not needed: the body is not read.
            200 | 204 => Ok(()),
            _ => Err(call.status_error(response).await),
        }
    }
}

#[cfg(test)]
mod tests;
