//! The receiver's background duty: a verification request at start, and
//! RFC 8936 polling (<https://www.rfc-editor.org/rfc/rfc8936>).
//!
//! Each poll is `POST {endpoint}` with `Authorization: Bearer <poll token>`
//! and `{"ack": [...], "setErrs": {...}, "maxEvents": N,
//! "returnImmediately": true}`; the answer is `{"sets": {jti: SET},
//! "moreAvailable": bool}`. Every SET is verified as a pushed one is
//! ([`Ssf::accept`]). A verified SET is kept on the source's queue (with
//! confirms) and only then acknowledged, in the next poll; a refused one
//! is reported in `setErrs` with its RFC 8935 §2.3 code; one received
//! before is acknowledged again (the transmitter did not get the ack) and
//! not kept twice. A SET that could not be kept (RabbitMQ down) or
//! verified (keys unreachable) is neither acknowledged nor reported: the
//! transmitter sends it again. The next poll follows at once while the
//! transmitter says `moreAvailable` or acknowledgements wait, else after
//! `poll.every`; on stop, waiting acknowledgements are sent with
//! `maxEvents: 0` (an acknowledge-only request, RFC 8936 §2.4).
//!
//! The endpoint is `poll.endpoint`, else the `delivery.endpoint_url` of the
//! stream's configuration (SSF 1.0 §8.1.1.2, read with `stream_id`).

use std::time::Duration;

use scimfleet_runtime::Secret;
use scimfleet_runtime::config::SsfPoll;
use serde_json::{Map, Value, json};
use sha2::Digest as _;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::super::process::Emitter;
use super::super::{Context, delivery};
use super::set::Refused;
use super::{Accepted, Ssf, VERIFICATION_STATE};

/// The delivery method URI of RFC 8936 (SSF 1.0 §6.1.2).
pub const POLL_METHOD: &str = "urn:ietf:rfc:8936";
/// How long the last acknowledgements may take to go out on stop.
const FLUSH_WITHIN: Duration = Duration::from_secs(3);

/// `[sources.poll]`, its token read.
#[derive(Debug)]
pub struct Poll {
    endpoint: Option<String>,
    token: Secret,
    every: Duration,
    max_events: u32,
    discovered: Mutex<Option<String>>,
}

impl Poll {
    /// The poll settings of `config`, with its token.
    pub fn new(config: &SsfPoll, token: Secret) -> Self {
        Self {
            endpoint: config.endpoint.clone(),
            token,
            every: Duration::from_millis(config.every),
            max_events: config.max_events,
            discovered: Mutex::new(None),
        }
    }

    /// The poll token.
    pub fn token(&self) -> &Secret {
        &self.token
    }
}

/// Acknowledgements and errors waiting for the next poll.
#[derive(Debug, Default)]
struct Pending {
    ack: Vec<String>,
    errs: Map<String, Value>,
}

/// What to do after a poll.
enum Next {
    Now,
    Later,
}

/// Asks for a verification event, then polls (when configured) until `stop`.
pub async fn run(ssf: &Ssf, context: Context, emit: Emitter, stop: CancellationToken) {
    ask_verification(ssf, &context).await;
    let Some(poll) = &ssf.poll else {
        stop.cancelled().await;
        return;
    };
    let mut pending = Pending::default();
    let mut failures: u32 = 0;
    loop {
        let wait = match poll_once(ssf, poll, &context, &emit, &mut pending).await {
            Ok(Next::Now) => Duration::ZERO,
            Ok(Next::Later) => poll.every,
            Err(reason) => {
                failures = failures.saturating_add(1);
                tracing::warn!(reason = %reason, failures, "source {}: polling the SSF transmitter failed; trying again", ssf.id);
                poll.every.saturating_mul(failures.min(6))
            }
        };
        if wait.is_zero() && !stop.is_cancelled() {
            failures = 0;
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    if !pending.ack.is_empty() || !pending.errs.is_empty() {
        let flushed = tokio::time::timeout(FLUSH_WITHIN, request(ssf, poll, &mut pending, 0)).await;
        if !matches!(flushed, Ok(Ok(_))) {
            tracing::warn!(
                "source {}: the last acknowledgements could not be sent; the transmitter sends those SETs again",
                ssf.id
            );
        }
    }
}

/// One poll: acknowledges what waits, keeps what comes.
async fn poll_once(
    ssf: &Ssf,
    poll: &Poll,
    context: &Context,
    emit: &Emitter,
    pending: &mut Pending,
) -> Result<Next, String> {
    let answer = request(ssf, poll, pending, poll.max_events).await?;
    let more = answer.get("moreAvailable").and_then(Value::as_bool).unwrap_or(false);
    let sets = answer.get("sets").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut stalled = false;
    for (jti, token) in &sets {
        let Some(token) = token.as_str() else {
            pending.errs.insert(jti.clone(), set_err("invalid_request", "the SET is not a string"));
            continue;
        };
        match ssf.accept(context, token).await {
            Ok((Accepted::Keep, claimed)) => {
                match emit.keep(&delivery(&ssf.id, Vec::new(), token.as_bytes())).await {
                    Ok(()) => pending.ack.push(jti.clone()),
                    Err(failure) => {
                        tracing::warn!(error = %failure, "source {}: a polled SET could not be kept; it is not acknowledged", ssf.id);
                        ssf.release(context, &claimed).await;
                        stalled = true;
                    }
                }
            }
            Ok((Accepted::Ignore | Accepted::Duplicate, _)) => pending.ack.push(jti.clone()),
            Err(Refused::Set { err, description }) => {
                tracing::info!(err, "source {}: a polled SET was refused: {description}", ssf.id);
                pending.errs.insert(jti.clone(), set_err(err, &description));
            }
            Err(Refused::Unavailable(reason)) => {
                tracing::warn!(reason = %reason, "source {}: a polled SET cannot be verified now; it is not acknowledged", ssf.id);
                stalled = true;
            }
        }
    }
    let waiting = !pending.ack.is_empty() || !pending.errs.is_empty();
    Ok(if !stalled && (more || waiting) { Next::Now } else { Next::Later })
}

/// Sends one poll request carrying `pending` (cleared once the transmitter took it).
async fn request(ssf: &Ssf, poll: &Poll, pending: &mut Pending, max_events: u32) -> Result<Value, String> {
    let endpoint = endpoint(ssf, poll).await?;
    let mut body = json!({ "maxEvents": max_events, "returnImmediately": true });
    if !pending.ack.is_empty() {
        body["ack"] = json!(pending.ack);
    }
    if !pending.errs.is_empty() {
        body["setErrs"] = Value::Object(pending.errs.clone());
    }
    let response = ssf
        .client
        .post(&endpoint)
        .header("authorization", format!("Bearer {}", poll.token.expose()))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            format!("unreachable: {}", scimfleet_runtime::telemetry::error_chain(&e.without_url()))
        })?;
    let status = response.status();
    if !status.is_success() {
        if status.as_u16() == 401 || status.as_u16() == 403 {
            *poll.discovered.lock().await = None;
        }
        return Err(format!("the poll endpoint answered {status}"));
    }
    *pending = Pending::default();
    let answer: Value = response.json().await.map_err(|_| "the poll endpoint answered no JSON".to_owned())?;
    Ok(answer)
}

/// `poll.endpoint`, or the stream's poll URL from its configuration.
async fn endpoint(ssf: &Ssf, poll: &Poll) -> Result<String, String> {
    if let Some(endpoint) = &poll.endpoint {
        return Ok(endpoint.clone());
    }
    let mut discovered = poll.discovered.lock().await;
    if let Some(endpoint) = &*discovered {
        return Ok(endpoint.clone());
    }
    let metadata = ssf.transmitter.metadata().await.map_err(|r| match r {
        Refused::Unavailable(reason) => reason,
        Refused::Set { description, .. } => description,
    })?;
    let config = metadata
        .configuration_endpoint
        .ok_or("no poll.endpoint and no configuration_endpoint to read it from")?;
    let mut request =
        ssf.client.get(&config).header("authorization", format!("Bearer {}", poll.token.expose()));
    if let Some(stream) = &ssf.stream_id {
        request = request.query(&[("stream_id", stream)]);
    }
    let response =
        request.send().await.map_err(|e| format!("stream configuration unreachable: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("the stream configuration answered {}", response.status()));
    }
    let streams: Value =
        response.json().await.map_err(|_| "the stream configuration is not JSON".to_owned())?;
    let candidates = match &streams {
        Value::Array(all) => all.clone(),
        one => vec![one.clone()],
    };
    let found = candidates
        .iter()
        .filter(|s| {
            ssf.stream_id.is_none() || s.get("stream_id").and_then(Value::as_str) == ssf.stream_id.as_deref()
        })
        .filter_map(|s| s.get("delivery"))
        .find(|d| d.get("method").and_then(Value::as_str) == Some(POLL_METHOD))
        .and_then(|d| d.get("endpoint_url").and_then(Value::as_str))
        .ok_or("the stream configuration names no poll delivery endpoint_url")?;
    *discovered = Some(found.to_owned());
    Ok(found.to_owned())
}

/// Asks the transmitter for a verification event (SSF 1.0 §8.1.4.2), when
/// `stream_id`, a management token and a `verification_endpoint` exist.
async fn ask_verification(ssf: &Ssf, context: &Context) {
    let (Some(stream), Some(token)) = (&ssf.stream_id, ssf.management_token()) else { return };
    let endpoint = match ssf.transmitter.metadata().await {
        Ok(metadata) => metadata.verification_endpoint,
        Err(_) => {
            tracing::warn!(
                "source {}: the transmitter's configuration cannot be read; no verification asked for",
                ssf.id
            );
            return;
        }
    };
    let Some(endpoint) = endpoint else { return };
    let mut digest = sha2::Sha256::new();
    digest.update(ssf.id.as_bytes());
    digest.update(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
    let state = hex::encode(&digest.finalize()[..16]);
    // Kept first: the event may arrive before the request is answered.
    if context.store.sources().set_state(&ssf.id, VERIFICATION_STATE, Some(&state)).await.is_err() {
        tracing::warn!("source {}: Redis unreachable; no verification asked for", ssf.id);
        return;
    }
    let sent = ssf
        .client
        .post(&endpoint)
        .header("authorization", format!("Bearer {}", token.expose()))
        .json(&json!({ "stream_id": stream, "state": state }))
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            tracing::info!("source {}: asked the SSF transmitter for a verification event", ssf.id);
        }
        Ok(response) => {
            tracing::warn!(
                status = response.status().as_u16(),
                "source {}: the transmitter refused the verification request",
                ssf.id
            );
        }
        Err(error) => {
            tracing::warn!(error = %error.without_url(), "source {}: the verification endpoint is unreachable", ssf.id);
        }
    }
}

fn set_err(err: &str, description: &str) -> Value {
    json!({ "err": err, "description": description })
}
