//! A Shared Signals Framework receiver
//! (<https://openid.net/specs/openid-sharedsignals-framework-1_0.html>):
//! Security Event Tokens (RFC 8417) from one transmitter, pushed to
//! `/v1/sources/{id}` (RFC 8935) or polled from the transmitter (RFC 8936).
//!
//! - **Push** (RFC 8935 §2): `POST` with `Content-Type:
//!   application/secevent+jwt`, the compact JWS as the body and
//!   `Authorization: Bearer <push_token>` (checked in constant time; 401
//!   when missing or wrong). A verified SET is kept (published with
//!   confirms to the source's queue) and answered `202 Accepted` with an
//!   empty body; a refused one `400` with `{"err", "description"}` and the
//!   codes of RFC 8935 §2.3 (see [`set`]), and nothing is kept. A `jti`
//!   already received is refused (`invalid_request`): it is claimed in
//!   Redis (`set:{jti}`, for `dedupe_for`) when the SET is accepted, and
//!   released again if the SET could not be kept (the transmitter then
//!   gets 503 and retries).
//! - **Poll** (RFC 8936, [`poll`]): the same verification for each SET; the
//!   verified ones are kept and acknowledged in the next poll, the refused
//!   ones reported in `setErrs`; one already received is acknowledged again
//!   and not kept twice.
//! - **Processing**: a SET is a status signal, not a profile: the person is
//!   found by the subject's e-mail or login among those every source keeps
//!   (`{ns}:subjects`), and the person's attributes stay those that source
//!   keeps ([`Observed::Status`]). Event types and subjects: [`events`].
//!   The sequence is the SET's time (`event_timestamp`, else `iat`) in ms.
//! - **Order**: a termination always applies (fail closed). A suspension
//!   older than the last signal this source applied to the person is
//!   stale, and one after a termination is ignored unless the fleet made
//!   the person active since: so `account-disabled` and `session-revoked`
//!   end terminated in whatever order they arrive.
//! - **Verification** (SSF 1.0 §8.1.4): asked for at start when `stream_id`
//!   and a `verification_endpoint` exist; the event is acknowledged (202 /
//!   acked), its `state` checked (`invalid_state` when it is not the one
//!   asked for), and recorded (`verified_at` in the source's state, a log
//!   line, `scimfleet_source_deliveries_total{outcome="processed"}`); it
//!   emits no person event.

pub mod events;
pub mod poll;
pub mod set;

use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use scimfleet_runtime::Secret;
use scimfleet_runtime::config::{ConfigError, SsfSource};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{PersonId, PersonStatus};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Adapter, Context, Delivery, Failure, Hint, Observed, Receipt, Received, refuse, secret_matches};
use events::{ACCOUNT_DISABLED, ACCOUNT_PURGED, SESSION_REVOKED, VERIFICATION};
use set::{Refused, Transmitter};

/// The media type of a pushed SET (RFC 8417 §2.3, RFC 8935 §2).
pub const SECEVENT_JWT: &str = "application/secevent+jwt";
/// How long a call to the transmitter may take.
const TRANSMITTER_TIMEOUT: Duration = Duration::from_secs(10);
/// The source-state field holding the `state` of the last verification asked for.
pub const VERIFICATION_STATE: &str = "verification_state";
/// The source-state field holding when the last verification event arrived.
pub const VERIFIED_AT: &str = "verified_at";

/// A Shared Signals receiver.
#[derive(Debug)]
pub struct Ssf {
    id: String,
    push_token: Option<Secret>,
    poll: Option<poll::Poll>,
    stream_id: Option<String>,
    management_token: Option<Secret>,
    transmitter: Transmitter,
    client: reqwest::Client,
    dedupe_for: Duration,
}

/// What became of a verified SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Claimed: keep it, to be processed.
    Keep,
    /// Claimed, but it holds no event acted on: acknowledge only.
    Ignore,
    /// Its `jti` was received before.
    Duplicate,
}

impl Ssf {
    /// Loads `sources[index]`, reading its secrets.
    pub fn load(
        config: &scimfleet_runtime::Config,
        index: usize,
        source: &SsfSource,
    ) -> Result<Self, ConfigError> {
        let (origin, dir) = (config.origin.as_str(), &config.base_dir);
        let read = |secret: &scimfleet_runtime::config::SecretRef, name: &str| {
            secret.read(origin, format!("sources[{index}].{name}"), dir)
        };
        let push_token = source.push_token.as_ref().map(|t| read(t, "push_token")).transpose()?;
        let management_token =
            source.management_token.as_ref().map(|t| read(t, "management_token")).transpose()?;
        let poll = match &source.poll {
            Some(p) => Some(poll::Poll::new(p, read(&p.token, "poll.token")?)),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(TRANSMITTER_TIMEOUT)
            .build()
            .map_err(|e| ConfigError::invalid(origin, format!("sources[{index}]"), e.to_string()))?;
        let transmitter =
            Transmitter::new(&source.issuer, &source.audience, source.configuration_url(), client.clone());
        Ok(Self {
            id: source.id.clone(),
            push_token,
            poll,
            stream_id: source.stream_id.clone(),
            management_token,
            transmitter,
            client,
            dedupe_for: Duration::from_millis(source.dedupe_for),
        })
    }

    /// Verifies a SET (pushed or polled) and claims its `jti`.
    pub async fn accept(&self, context: &Context, token: &str) -> Result<(Accepted, String), Refused> {
        let verified = self.transmitter.verify(token).await?;
        let unavailable = |e: scimfleet_runtime::store::StoreError| Refused::Unavailable(error_chain(&e));
        let sources = context.store.sources();
        if let Some(Some(state)) = events::verification_state(&verified.claims) {
            let asked = sources.state(&self.id, VERIFICATION_STATE).await.map_err(unavailable)?;
            if asked.is_some_and(|asked| asked != state) {
                return Err(Refused::set(
                    "invalid_state",
                    "the verification event's state is not the one asked for",
                ));
            }
        }
        if !sources.claim(&self.id, &claim_key(&verified.jti), self.dedupe_for).await.map_err(unavailable)? {
            return Ok((Accepted::Duplicate, verified.jti));
        }
        if !events::handled(&verified.claims) {
            tracing::info!(
                "source {}: a SET of an event type scimfleet does not act on was acknowledged",
                self.id
            );
            return Ok((Accepted::Ignore, verified.jti));
        }
        Ok((Accepted::Keep, verified.jti))
    }

    /// Releases the claim of `jti` (the SET could not be kept: it must be accepted when sent again).
    pub async fn release(&self, context: &Context, jti: &str) {
        // A mark that expires at once is a released claim.
        let released =
            context.store.sources().mark_seen(&self.id, &[claim_key(jti)], Duration::from_millis(1)).await;
        if let Err(error) = released {
            tracing::warn!(error = %error_chain(&error), "source {}: a SET's claim could not be released; it expires after dedupe_for", self.id);
        }
    }

    /// The bearer token of the transmitter's management API.
    fn management_token(&self) -> Option<&Secret> {
        self.management_token.as_ref().or(self.poll.as_ref().map(poll::Poll::token))
    }

    /// Keeps the time of a verification event.
    async fn verified(&self, context: &Context) -> Result<Observed, Failure> {
        let now = chrono::Utc::now().to_rfc3339();
        let sources = context.store.sources();
        sources
            .set_state(&self.id, VERIFIED_AT, Some(&now))
            .await
            .map_err(|e| Failure::Retry(error_chain(&e)))?;
        Ok(Observed::Ignore("SSF verification event received: the stream delivers".into()))
    }

    /// Why a `status` signal at `at` (ms) for `person` is not applied, if
    /// it is not (see the module docs, "Order"); records it when it is.
    async fn out_of_order(
        &self,
        context: &Context,
        person: &PersonId,
        status: PersonStatus,
        at: u64,
    ) -> Result<Option<&'static str>, Failure> {
        let retry = |e: scimfleet_runtime::store::StoreError| Failure::Retry(error_chain(&e));
        let sources = context.store.sources();
        let field = format!("signal:{person}");
        let last = sources.state(&self.id, &field).await.map_err(retry)?.and_then(|raw| {
            let (at, status) = raw.split_once(' ')?;
            Some((at.parse::<u64>().ok()?, status == "terminated"))
        });
        if status == PersonStatus::Suspended
            && let Some((last_at, terminated)) = last
        {
            if last_at > at {
                return Ok(Some("the SET is older than the last signal applied to the person"));
            }
            if terminated {
                let registered = context.store.registry().get(person).await.map_err(retry)?;
                let active_since =
                    registered.is_some_and(|r| r.status == PersonStatus::Active && r.sequence > last_at);
                if !active_since {
                    return Ok(Some(
                        "the person was terminated by an earlier signal; a revoked session changes nothing",
                    ));
                }
            }
        }
        let kept_at = last.map_or(at, |(last_at, _)| last_at.max(at));
        let word = if status == PersonStatus::Terminated { "terminated" } else { "suspended" };
        sources.set_state(&self.id, &field, Some(&format!("{kept_at} {word}"))).await.map_err(retry)?;
        Ok(None)
    }
}

/// The Redis claim of a SET's `jti` (apart from the processing's seen mark of the same `jti`).
fn claim_key(jti: &str) -> String {
    format!("set:{jti}")
}

/// An RFC 8935 §2.3 error response.
pub fn set_error(status: StatusCode, err: &str, description: &str) -> Response {
    let body = json!({ "err": err, "description": description }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The token of an `Authorization: Bearer` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

#[async_trait]
impl Adapter for Ssf {
    fn id(&self) -> &str {
        &self.id
    }

    fn dedupe_for(&self) -> Duration {
        self.dedupe_for
    }

    async fn receive(&self, context: &Context, request: &Received<'_>) -> Receipt {
        if *request.method != Method::POST {
            return Receipt::Answer(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "SETs are pushed with POST",
            ));
        }
        let Some(token) = &self.push_token else {
            return Receipt::Answer(set_error(
                StatusCode::FORBIDDEN,
                "access_denied",
                "this source polls its transmitter; pushed SETs are not accepted",
            ));
        };
        if !secret_matches(request.header("authorization").and_then(bearer), std::slice::from_ref(token)) {
            let mut response = set_error(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "the bearer token is missing or wrong",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return Receipt::Answer(response);
        }
        let media = request.header("content-type").and_then(|c| c.split(';').next()).map(str::trim);
        if !media.is_some_and(|m| m.eq_ignore_ascii_case(SECEVENT_JWT)) {
            return Receipt::Answer(set_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/secevent+jwt",
            ));
        }
        let Ok(body) = std::str::from_utf8(request.body) else {
            return Receipt::Answer(set_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not a compact JWS",
            ));
        };
        match self.accept(context, body).await {
            Ok((Accepted::Keep, _)) => {
                Receipt::Keep { reply: StatusCode::ACCEPTED.into_response(), headers: Vec::new() }
            }
            Ok((Accepted::Ignore, _)) => Receipt::Answer(StatusCode::ACCEPTED.into_response()),
            Ok((Accepted::Duplicate, _)) => {
                tracing::info!(
                    err = "invalid_request",
                    "source {}: a SET whose jti was already received was refused",
                    self.id
                );
                Receipt::Answer(set_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "a SET with this jti was already received",
                ))
            }
            Err(Refused::Set { err, description }) => {
                tracing::info!(err, "source {}: a pushed SET was refused: {description}", self.id);
                Receipt::Answer(set_error(StatusCode::BAD_REQUEST, err, &description))
            }
            Err(Refused::Unavailable(reason)) => {
                tracing::warn!(reason = %reason, "source {}: a pushed SET cannot be verified now; the transmitter will retry", self.id);
                let problem = crate::problem::Problem::unavailable(
                    "the transmitter's keys cannot be read now",
                    Duration::from_secs(5),
                );
                Receipt::Answer(problem.into_response())
            }
        }
    }

    async fn not_kept(&self, context: &Context, delivery: &Delivery) {
        if let Some(jti) =
            set::payload(&delivery.body).ok().and_then(|c| c.get("jti")?.as_str().map(str::to_owned))
        {
            self.release(context, &jti).await;
        }
    }

    fn hints(&self, delivery: &Delivery) -> Result<Vec<Hint>, String> {
        events::hints(&set::payload(&delivery.body)?)
    }

    async fn resolve(&self, context: &Context, hint: &Hint) -> Result<Observed, Failure> {
        let status = match hint.change.as_str() {
            VERIFICATION => return self.verified(context).await,
            ACCOUNT_DISABLED | ACCOUNT_PURGED => PersonStatus::Terminated,
            SESSION_REVOKED => PersonStatus::Suspended,
            _ => return Ok(Observed::Ignore("an event type scimfleet does not act on".into())),
        };
        if hint.user.is_empty() {
            return Ok(Observed::Ignore("the SET's subject names no e-mail or login".into()));
        }
        let found =
            context.store.sources().subject(&hint.user).await.map_err(|e| Failure::Retry(error_chain(&e)))?;
        let Some((view_of, person)) = found else {
            return Ok(Observed::Ignore("no person with the SET's subject is known".into()));
        };
        let person = PersonId::parse(person)
            .map_err(|e| Failure::Invalid(format!("the subjects index holds a bad person id: {e}")))?;
        let at = hint.at.unwrap_or_else(chrono::Utc::now).timestamp_millis().max(0) as u64;
        if let Some(why) = self.out_of_order(context, &person, status, at).await? {
            return Ok(Observed::Ignore(why.into()));
        }
        Ok(Observed::Status { person, view_of, status, sequence: Some(at) })
    }

    async fn run(&self, context: Context, emit: super::process::Emitter, stop: CancellationToken) {
        poll::run(self, context, emit, stop).await;
    }
}
