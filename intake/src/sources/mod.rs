//! `[[sources]]` served at `/v1/sources/{id}`: identity providers and
//! signal transmitters that speak their own formats (Okta Event Hooks,
//! Microsoft Graph change notifications, PingOne webhooks, Google push
//! channels, Shared Signals), turned into person events by scimfleet.
//!
//! Two halves, so a sender is answered well inside its deadline (3 s for
//! Okta and Graph) whatever its payload costs to process:
//!
//! 1. **Receive** (the HTTP request): the adapter answers the vendor's
//!    handshake, checks the request's authentication (constant time) and
//!    its shape, and says what to do with it ([`Receipt`]). A delivery to
//!    keep is published with confirms to the source's queue
//!    `{ns}.sources.{id}` (quorum) and only then acknowledged; a broker
//!    that does not confirm in `intake.publish_timeout` gets 503, so the
//!    sender retries. A payload that can never be processed is dead-lettered
//!    to `{ns}.sources.dlq` with the reason and counted; it is refused (4xx)
//!    unless the adapter says the sender would re-send it forever and block
//!    its stream (PingOne), when it is acknowledged after recording.
//! 2. **Process** ([`process`]): a consumer per source reads each kept
//!    delivery, skips the source event ids already turned into events (kept
//!    for days: `dedupe_for`), reads each changed user back from the
//!    source's API (a notification is only a hint: a forged or stale
//!    "deactivate" cannot remove access on its own), maps it to a person,
//!    and publishes the person events that change something, with confirms,
//!    before it marks the source events seen and acknowledges. An API that
//!    cannot be reached leaves the delivery in the queue to be tried again.

pub mod api;
pub mod entra;
pub mod google;
pub mod map;
pub mod okta;
pub mod pingone;
pub mod process;
pub mod ssf;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use scimfleet_runtime::config::{ConfigError, SourceConfig};
use scimfleet_runtime::metrics::SourceStatus;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{PersonId, PersonStatus};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::problem::Problem;
use crate::publish::PublishFailure;
use crate::server::Shared;

/// The path sources are served under: `/v1/sources/{id}`.
pub const SOURCES_PATH: &str = "/v1/sources/{id}";
/// Longest wait for the broker's confirm of a kept delivery, inside the
/// shortest sender deadline (3 s: Okta, Microsoft Graph).
pub const RECEIVE_BUDGET: Duration = Duration::from_millis(2500);

/// One request to a source's path, as the adapter sees it.
#[derive(Debug)]
pub struct Received<'a> {
    /// The method.
    pub method: &'a Method,
    /// The query string, undecoded.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body (at most `intake.max_body_bytes`).
    pub body: &'a [u8],
}

impl Received<'_> {
    /// A header's value, when it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query?;
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Receipt {
    /// Answer this and keep nothing (a handshake, a refusal).
    Answer(Response),
    /// Keep the request (with these headers of it), then answer `reply`.
    Keep {
        /// The answer once the request is kept.
        reply: Response,
        /// Headers the processing needs (never a secret).
        headers: Vec<(&'static str, String)>,
    },
    /// The payload can never be processed: dead-letter it with `reason`, then answer `reply`.
    Record {
        /// Why (no value of the payload).
        reason: String,
        /// The answer once it is recorded.
        reply: Response,
    },
}

/// A kept request: the message on `{ns}.sources.{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The source id.
    pub source: String,
    /// When the intake received it.
    pub received_at: DateTime<Utc>,
    /// The headers the adapter kept.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as text (every source sends JSON or a compact JWS).
    pub body: String,
}

/// One source event a delivery holds, before it is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The source's event id (dedupe key; the person event's id derives from it).
    pub event: String,
    /// The source's user id (or, for a SET, the subject).
    pub user: String,
    /// The source's name for what happened (for logs).
    pub change: String,
    /// When it happened at the source.
    pub at: Option<DateTime<Utc>>,
}

/// What reading a hint back found.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The user as the source has them now.
    User(Person),
    /// The user no longer exists at the source: terminated, with the last
    /// attributes this source kept of them.
    Gone,
    /// A new status for a person another source brought in (a SET): the
    /// attributes stay those `source` kept.
    Status {
        /// The person.
        person: PersonId,
        /// The source whose view holds their attributes.
        view_of: String,
        /// The new status.
        status: PersonStatus,
        /// The source's own time of the change (ms), if it has one.
        sequence: Option<u64>,
    },
    /// Nothing to emit, and why (a user not yet activated, an unknown subject).
    Ignore(String),
}

/// A person as a source has them now.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The person id.
    pub person: PersonId,
    /// Employment status.
    pub status: PersonStatus,
    /// Person attributes.
    pub attributes: BTreeMap<String, String>,
    /// Groups.
    pub groups: Vec<String>,
}

/// Why a hint could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Try again later (the API is unreachable, throttles or fails).
    #[error("{0}")]
    Retry(String),
    /// It will never work as it is (dead-lettered with this reason).
    #[error("{0}")]
    Invalid(String),
}

/// What an adapter needs at run time.
#[derive(Clone)]
pub struct Context {
    /// Redis.
    pub store: Store,
    /// The configuration.
    pub config: Arc<Config>,
    /// Rate buckets shared by the intake's replicas (API pacing).
    pub guard: crate::guard::Guard,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("namespace", &self.config.namespace).finish_non_exhaustive()
    }
}

/// One kind of source.
#[async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The source id.
    fn id(&self) -> &str;
    /// How long its event ids are remembered.
    fn dedupe_for(&self) -> Duration;
    /// Answers one request at the source's path.
    async fn receive(&self, context: &Context, request: &Received<'_>) -> Receipt;
    /// The source events a kept delivery holds (a payload that cannot be
    /// read gives the reason, without any value of it).
    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String>;
    /// Reads back what `hint` points at.
    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure>;
    /// Creates or renews what keeps the source delivering (Graph
    /// subscriptions, Google channels), saying what it did, one line per
    /// action (`scimfleet sources renew`, and the adapter's own schedule);
    /// nothing by default.
    async fn renew(&self, _context: &Context) -> Result<Vec<String>, Failure> {
        Ok(Vec::new())
    }
    /// A delivery [`Receipt::Keep`] asked for could not be kept (the sender
    /// is answered 503 and sends it again): undo what `receive` claimed for
    /// it (a SET's `jti`), so the retry is accepted; nothing by default.
    async fn not_kept(&self, _context: &Context, _delivery: &Delivery) {}
    /// Background duties (subscription renewal, delta queries, polling)
    /// until `stop`; none by default.
    async fn run(&self, _context: Context, _emit: process::Emitter, stop: CancellationToken) {
        stop.cancelled().await;
    }
}

/// Loads an adapter for every served `[[sources]]` entry; a secret that is
/// missing stops start-up naming the field.
pub fn load(config: &Config) -> Result<Vec<Arc<dyn Adapter>>, ConfigError> {
    config
        .sources
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_served())
        .map(|(i, source)| {
            let adapter: Arc<dyn Adapter> = match source {
                SourceConfig::Okta(push) => Arc::new(okta::Okta::load(config, i, push)?),
                SourceConfig::Entra(push) => Arc::new(entra::Entra::load(config, i, push)?),
                SourceConfig::Pingone(push) => Arc::new(pingone::PingOne::load(config, i, push)?),
                SourceConfig::Google(push) => Arc::new(google::Google::load(config, i, push)?),
                SourceConfig::Ssf(ssf) => Arc::new(ssf::Ssf::load(config, i, ssf)?),
                SourceConfig::HrFile(_) => unreachable!("filtered: files are imported, not served"),
            };
            Ok(adapter)
        })
        .collect()
}

/// Any request to `/v1/sources/{id}`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Some(adapter) = shared.adapters.iter().find(|a| a.id() == id).cloned() else {
        return refuse(StatusCode::NOT_FOUND, "unknown-source", "no such source");
    };
    let span = tracing::info_span!(
        "source request",
        otel.kind = "server",
        http.route = SOURCES_PATH,
        http.request.method = %parts.method,
        scimfleet.intake.source = %id,
    );
    // The sender's deadline (3 s for Okta and Graph) bounds how long a
    // confirm may take: a stalled broker gets 503 in time, and the sender retries.
    let emitter = &process::Emitter {
        publish_timeout: shared.emitter.publish_timeout.min(RECEIVE_BUDGET),
        ..shared.emitter.clone()
    };
    let response = async {
        let body = match axum::body::to_bytes(body, shared.limits.max_body_bytes).await {
            Ok(body) => body.to_vec(),
            Err(_) => {
                let detail = format!("the body is over {} bytes", shared.limits.max_body_bytes);
                return Problem::too_large("body", detail).into_response();
            }
        };
        let received = Received {
            method: &parts.method,
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        let unavailable = |what: &str, failure: PublishFailure| {
            tracing::warn!(error = %failure, "source {id}: delivery {what}; the sender will retry");
            Problem::unavailable(format!("not {what}: {failure}"), Duration::from_secs(2)).into_response()
        };
        match adapter.receive(&emitter.context, &received).await {
            Receipt::Answer(response) => response,
            Receipt::Keep { reply, headers } => {
                let kept = delivery(&id, headers, &body);
                match emitter.keep(&kept).await {
                    Ok(()) => reply,
                    Err(failure) => {
                        adapter.not_kept(&emitter.context, &kept).await;
                        unavailable("kept", failure)
                    }
                }
            }
            Receipt::Record { reason, reply } => {
                match emitter.record(&delivery(&id, Vec::new(), &body), &reason).await {
                    Ok(()) => reply,
                    Err(failure) => unavailable("recorded", failure),
                }
            }
        }
    }
    .instrument(span)
    .await;
    let labels = SourceStatus { source: id, status: response.status().as_u16().to_string() };
    shared.metrics.intake_requests.get_or_create(&labels).inc();
    response
}

/// A delivery of `body` to `source`, received now.
pub fn delivery(source: &str, headers: Vec<(&'static str, String)>, body: &[u8]) -> Delivery {
    Delivery {
        source: source.to_owned(),
        received_at: Utc::now(),
        headers: headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// Constant-time comparison of a presented secret with each configured one.
pub fn secret_matches(presented: Option<&str>, secrets: &[scimfleet_runtime::Secret]) -> bool {
    use subtle::ConstantTimeEq as _;
    let Some(presented) = presented else { return false };
    secrets.iter().fold(false, |any, s| any | bool::from(presented.as_bytes().ct_eq(s.expose().as_bytes())))
}

/// A plain refusal: `status` with a problem body.
pub fn refuse(status: StatusCode, kind: &'static str, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    Problem::new(status, kind, title, detail.to_owned()).into_response()
}

/// Renews every served source's subscriptions (or only `only`'s): the
/// lines they report, or the first failure.
pub async fn renew_all(config: Arc<Config>, only: Option<&str>) -> Result<Vec<String>, crate::IntakeError> {
    let adapters = load(&config)?;
    if let Some(only) = only
        && !adapters.iter().any(|a| a.id() == only)
    {
        return Err(
            ConfigError::invalid(&config.origin, "sources", format!("no served source `{only}`")).into()
        );
    }
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let guard = crate::guard::Guard::new(store.clone());
    let context = Context { store, guard, config: config.clone() };
    let mut lines = Vec::new();
    for adapter in adapters.iter().filter(|a| only.is_none_or(|o| a.id() == o)) {
        match adapter.renew(&context).await {
            Ok(done) if done.is_empty() => lines.push(format!("{}: nothing to renew", adapter.id())),
            Ok(done) => lines.extend(done.into_iter().map(|l| format!("{}: {l}", adapter.id()))),
            Err(failure) => return Err(crate::IntakeError::Source(format!("{}: {failure}", adapter.id()))),
        }
    }
    Ok(lines)
}
