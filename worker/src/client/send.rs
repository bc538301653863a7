//! Sending one SCIM request: pacing, the bearer credential, and the short
//! retries made before a failure is handed back to the job.
//!
//! Two kinds of second try happen here, inside one attempt of a job:
//!
//! - **Credential refresh.** A `401` or `403` may mean the token was rotated
//!   or revoked under us. The app's `Auth` is asked once for another token
//!   (the token file read again, an OAuth token fetched anew); when there is
//!   one, the request is sent again with it. When there is none, or the
//!   second answer is `401`/`403` too, the job fails permanently ("401/403
//!   after one credential refresh" is the contract). A token endpoint that
//!   fails fails the request with its own error (see `auth::oauth`).
//! - **Short retries.** A transport error, `408`, `429` or `5xx` (not `501`) is tried
//!   again up to `retries` times after a jittered backoff (or the
//!   `Retry-After` asked for), as long as the wait is at most `max_wait`.
//!   Longer waits, and failures that outlast the retries, go back to the job,
//!   which then waits in a RabbitMQ delay queue: nothing sleeps here for
//!   longer than `max_wait`. Every SCIM write the converger makes is safe to
//!   repeat (a replayed create meets `409` and is resolved by look-up; PATCH
//!   and DELETE are idempotent), so a retried request whose first try did
//!   reach the app changes nothing.

use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderValue};
use reqwest::{Response, StatusCode};
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::scim::SCIM_MEDIA_TYPE;
use tracing::{Instrument, Span};
use url::Url;

use super::{Call, ScimClient};
use crate::error::{ScimCallError, parse_retry_after};

/// App-wide pause after a 429 that carries no `Retry-After`.
const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);

/// First backoff step of a short retry; doubled per try, with jitter.
const RETRY_BASE: Duration = Duration::from_millis(100);

/// The short retries of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRetry {
    /// Further tries after a transient failure (0: none).
    pub retries: u32,
    /// The longest wait before a try; a longer `Retry-After` is left to the
    /// job's delay queues.
    pub max_wait: Duration,
}

impl RequestRetry {
    /// No second tries: every failure goes straight back to the job.
    pub const NONE: Self = Self { retries: 0, max_wait: Duration::ZERO };
}

/// An `Authorization` header and the generation of its credential.
type Authorization = (u64, HeaderValue);

/// What one try came to.
enum Next {
    Done,
    /// Send again after `wait` (already waited for when paced).
    Retry {
        wait: Duration,
        paced: bool,
    },
    Refreshed,
    /// Give up with this error (the token endpoint failed).
    Fail(ScimCallError),
}

impl ScimClient {
    /// Sends a request and returns the final answer (any status); an error
    /// only when no answer came.
    pub(super) async fn send(
        &self,
        call: &Call,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ScimCallError> {
        if let Some(answer) = self.recorded(call, &url, body.as_deref()) {
            return Ok(answer);
        }
        let answer = self.send_tries(call, url, body).await;
        if let Some(steps) = &self.steps {
            steps.push(call, answer.as_ref().ok().map(|r| r.status().as_u16()));
        }
        answer
    }

    /// [`ScimClient::send`]'s tries, until an answer or an error.
    async fn send_tries(
        &self,
        call: &Call,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ScimCallError> {
        let mut tries = 0;
        let mut refreshed = false;
        let mut resends = 0;
        loop {
            if let Some(pacer) = &self.pacer {
                let waiting = Instant::now();
                pacer.acquire().await;
                self.count_wait(waiting.elapsed());
            }
            if call.method != reqwest::Method::GET && self.held.as_ref().is_some_and(|h| !h.is_held()) {
                return Err(ScimCallError::LeaseLost {
                    method: call.name,
                    path_template: call.path_template,
                });
            }
            let auth = self.auth.header(&self.http).await.map_err(|source| ScimCallError::Credential {
                method: call.name,
                path_template: call.path_template,
                source,
            })?;
            let (outcome, next) =
                self.try_once(call, (&url, body.as_ref(), auth), (tries, resends), &mut refreshed).await;
            resends += 1;
            let (wait, paced) = match next {
                Next::Done => return outcome.map_err(|e| call.transport(e)),
                Next::Fail(error) => return Err(error),
                Next::Refreshed => {
                    tracing::warn!(scimfleet.app = %self.app, http.request.method = call.name,
                        url.path = call.path_template,
                        "{} refused the credential; sending again with the token read anew", self.app);
                    continue;
                }
                Next::Retry { wait, paced } => (wait, paced),
            };
            if tries >= self.retry.retries || wait > self.retry.max_wait {
                return outcome.map_err(|e| call.transport(e));
            }
            tries += 1;
            if let Some(metrics) = &self.metrics {
                metrics.scim_request_retries.get_or_create(&Metrics::app(self.app.as_str())).inc();
            }
            let status = outcome.as_ref().ok().map(|r| r.status().as_u16());
            let reason = match &outcome {
                Ok(_) => "error status",
                Err(error) if error.is_timeout() => "timed out",
                Err(error) if error.is_connect() => "could not connect",
                Err(_) => "request failed",
            };
            tracing::info!(scimfleet.app = %self.app, http.request.method = call.name,
                url.path = call.path_template, http.response.status_code = status, retry_in_ms = wait.as_millis() as u64,
                try_number = tries + 1, "{} {} {reason}; trying again", call.name, call.path_template);
            // Drop the failed answer first: its connection goes back to the pool or is closed.
            drop(outcome);
            if !paced {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// One HTTP request in a client span of its own (a resend is a span of
    /// its own too, as the HTTP conventions ask), with that span's
    /// `traceparent`; then what to do next.
    async fn try_once(
        &self,
        call: &Call,
        (url, body, auth): (&Url, Option<&Vec<u8>>, Option<Authorization>),
        (tries, resends): (u32, u32),
        refreshed: &mut bool,
    ) -> (Result<Response, reqwest::Error>, Next) {
        let span = tracing::info_span!(
            "scim_request",
            otel.name = %format_args!("{} {}", call.name, call.path_template),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            scimfleet.app = %self.app,
            http.request.method = call.name,
            url.template = call.path_template,
            server.address = %self.server.0,
            server.port = self.server.1,
            http.request.resend_count = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        if resends > 0 {
            span.record("http.request.resend_count", resends);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let generation = auth.map(|(generation, value)| {
            headers.insert(header::AUTHORIZATION, value);
            generation
        });
        propagation::inject_http(&span, &mut headers);
        let mut request = self.http.request(call.method.clone(), url.clone()).headers(headers);
        if let Some(body) = body {
            request = request.header(header::CONTENT_TYPE, SCIM_MEDIA_TYPE).body(body.clone());
        }
        async {
            let sent = Instant::now();
            let outcome = request.send().await;
            self.count_request(call, &outcome, sent.elapsed());
            let next = match &outcome {
                Err(error) if error.is_builder() || error.is_redirect() => Next::Done,
                Err(_) => Next::Retry { wait: self.backoff(tries), paced: false },
                Ok(response) => {
                    Span::current().record("http.response.status_code", response.status().as_u16());
                    self.judge(call, response, (tries, generation), refreshed).await
                }
            };
            (outcome, next)
        }
        .instrument(span)
        .await
    }

    /// Counts one request's answer, and marks the span when none came or it was an error.
    fn count_request(&self, call: &Call, outcome: &Result<Response, reqwest::Error>, took: Duration) {
        let status = outcome.as_ref().ok().map(|r| r.status().as_u16());
        if let Some(metrics) = &self.metrics {
            metrics.scim_request(self.app.as_str(), call.name, status, took);
        }
        let error_type = match (&outcome, status) {
            (Err(error), _) if error.is_timeout() => Some("timeout".to_owned()),
            (Err(_), _) => Some("transport".to_owned()),
            (Ok(_), Some(status)) if status >= 400 => Some(status.to_string()),
            _ => None,
        };
        if let Some(error_type) = error_type {
            let span = Span::current();
            span.record("error.type", error_type.as_str());
            span.record("otel.status_code", "error");
        }
    }

    /// Counts a wait for the shared rate limit or a pause (waits under a millisecond are none).
    fn count_wait(&self, waited: Duration) {
        if let Some(metrics) = &self.metrics
            && waited >= Duration::from_millis(1)
        {
            let app = Metrics::app(self.app.as_str());
            metrics.rate_limit_waits.get_or_create(&app).inc();
            metrics.rate_limit_wait_seconds.get_or_create(&app).inc_by(waited.as_secs_f64());
        }
    }

    /// Decides on an answer: done, send again after a wait, or send again
    /// with a refreshed token.
    async fn judge(
        &self,
        call: &Call,
        response: &Response,
        (tries, generation): (u32, Option<u64>),
        refreshed: &mut bool,
    ) -> Next {
        let status = response.status();
        let retry_after = || {
            let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
            parse_retry_after(value, chrono::Utc::now())
        };
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if !*refreshed => {
                *refreshed = true;
                let Some(generation) = generation else { return Next::Done };
                match self.auth.refresh(&self.http, generation).await {
                    Ok(true) => Next::Refreshed,
                    Ok(false) => Next::Done,
                    Err(source) => Next::Fail(ScimCallError::Credential {
                        method: call.name,
                        path_template: call.path_template,
                        source,
                    }),
                }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let pause = retry_after().unwrap_or(DEFAULT_429_PAUSE);
                match &self.pacer {
                    // Every replica now holds back until the pause ends, and
                    // so does the next try: `acquire` waits it out.
                    Some(pacer) => {
                        pacer.pause(pause).await;
                        Next::Retry { wait: pause, paced: true }
                    }
                    None => Next::Retry { wait: pause, paced: false },
                }
            }
            StatusCode::REQUEST_TIMEOUT => Next::Retry { wait: self.backoff(tries), paced: false },
            // What the app does not implement it will not do on the next try.
            _ if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED => {
                let wait = self.backoff(tries).max(retry_after().unwrap_or_default());
                Next::Retry { wait, paced: false }
            }
            _ => Next::Done,
        }
    }

    /// `RETRY_BASE · 2^tries`, jittered to between half and all of it, so
    /// concurrent jobs that failed together do not come back together.
    fn backoff(&self, tries: u32) -> Duration {
        let full = RETRY_BASE.saturating_mul(1 << tries.min(10));
        full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}
