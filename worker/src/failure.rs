//! The failure path of a job: classify the failed attempt, then either
//! park it in a delay queue (transient, within budget) or dead-letter it
//! with its reason; and keep the app's circuit breaker informed.
//!
//! Both outcomes are publishes with confirms; the caller acks the delivery
//! only after they return, so a failure is never lost between the two.
//! Each failure, once settled, is also noted as the app's last error, and
//! breaker changes as this process's breaker state (see `notes`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::types::{AMQPValue, LongString};
use scimfleet_runtime::broker::{self, Outgoing, Topology};
use scimfleet_runtime::metrics::{AppReason, Metrics};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetter, DeadLetterReason, Job, Stage};

use crate::consume::{AppWorker, Note, Settled, Transient};
use crate::converge::ApplyError;
use crate::error::Disposition;
use crate::notes;
use crate::retry;

/// Carries a job's first attempt time across retries (RFC 3339).
const FIRST_ATTEMPT_HEADER: &str = "x-scimfleet-first-attempt-at";

/// What went wrong, for the dead-letter envelope.
pub(crate) struct Failure<'a> {
    pub(crate) reason: DeadLetterReason,
    pub(crate) detail: &'a str,
    pub(crate) last_status: Option<u16>,
}

/// How an attempt failed.
#[derive(Clone, Copy)]
pub(crate) enum Failed<'a> {
    /// The app or the convergence said no.
    Apply(&'a ApplyError),
    /// The handler panicked (a bug, or input it cannot handle).
    Panicked,
    /// The attempt outlived `worker.job_timeout_ms`.
    TimedOut,
}

impl Failed<'_> {
    fn disposition(self) -> Disposition {
        match self {
            Self::Apply(error) => error.disposition(),
            // Another attempt may succeed; the budget bounds how many there are.
            Self::Panicked | Self::TimedOut => Disposition::Retry { after: None },
        }
    }

    fn exhausted(self) -> DeadLetterReason {
        match self {
            Self::Apply(_) => DeadLetterReason::RetriesExhausted,
            Self::Panicked | Self::TimedOut => DeadLetterReason::Poison,
        }
    }

    fn status(self) -> Option<u16> {
        match self {
            Self::Apply(error) => error.status(),
            Self::Panicked | Self::TimedOut => None,
        }
    }

    fn detail(self, timeout: Duration) -> String {
        match self {
            Self::Apply(error) => error_chain(error),
            Self::Panicked => "the job handler panicked".to_owned(),
            Self::TimedOut => format!("the job did not finish within {} ms", timeout.as_millis()),
        }
    }
}

/// When the job was first handled. The time rides in a header across
/// retries and parkings (the body's `attempt` counts attempts only); a job
/// without it is handled for the first time, `now`.
pub(crate) fn first_attempt_at(delivery: &Delivery, now: DateTime<Utc>) -> DateTime<Utc> {
    broker::header_str(&delivery.properties, FIRST_ATTEMPT_HEADER)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// A failed attempt: a transient failure within budget waits in a delay
/// queue; anything else goes to the app's dead-letter queue with its reason.
pub(crate) async fn on_failure(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    failed: Failed<'_>,
    now: DateTime<Utc>,
    duration_ms: u64,
) -> Result<Settled, Transient> {
    let failures = job.attempt + 1;
    let first_attempt_at = first_attempt_at(delivery, now);
    let age = (now - first_attempt_at).to_std().unwrap_or_default();
    let person = worker.pseudonyms.person(&job.person);
    let detail = failed.detail(worker.job_timeout);
    match failed {
        // The app answered; it is up, whatever it thought of this job.
        Failed::Apply(_) if !matches!(failed.disposition(), Disposition::Retry { .. }) => {
            note_success(worker).await
        }
        // A panic is a bug here, not a sign the app is down.
        Failed::Panicked => {}
        _ => note_failure(worker).await,
    }
    let reason = match failed.disposition() {
        Disposition::Retry { after }
            if retry::may_retry(failures, age, worker.max_attempts, worker.max_age) =>
        {
            let delay = retry::backoff(failures, worker.retry_base, worker.retry_cap, after, rand::random());
            let tier = retry::tier_for(delay, worker.topology.retry_tiers_ms()).unwrap_or(1000);
            tracing::info!(
                scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
                scimfleet.attempt = failures, http.response.status_code = failed.status(),
                retry_in_ms = tier, error = %detail, duration_ms,
                "job {} failed (attempt {failures}); retrying in {tier} ms", job.job_id
            );
            schedule_retry(worker, delivery, job, failures, Some(first_attempt_at), tier).await?;
            notes::error(worker, "transient", failed.status(), &detail).await;
            let detail = format!("retry in {tier} ms: {detail}");
            return Ok(Settled::Retried(Note { detail, status: failed.status() }));
        }
        Disposition::Retry { .. } => failed.exhausted(),
        _ => DeadLetterReason::PermanentError,
    };
    tracing::warn!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.action = job.action.name(), scimfleet.attempt = failures,
        http.response.status_code = failed.status(), reason = reason.as_str(),
        error = %detail, duration_ms,
        "job {} dead-lettered ({})", job.job_id, reason.as_str()
    );
    let failure = Failure { reason, detail: &detail, last_status: failed.status() };
    dead_letter(worker, delivery, Some(job), failure, first_attempt_at).await
}

/// A job parked by an open breaker until it outlived `max_age_ms`: its
/// budget is spent without a single attempt reaching the app.
pub(crate) async fn park_expired(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    first_attempt_at: DateTime<Utc>,
) -> Result<Settled, Transient> {
    let reason = DeadLetterReason::RetriesExhausted;
    let detail = format!(
        "the circuit breaker of {} stayed open until the job was older than max_age_ms ({} ms)",
        worker.app,
        worker.max_age.as_millis()
    );
    tracing::warn!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %worker.pseudonyms.person(&job.person),
        scimfleet.action = job.action.name(), scimfleet.attempt = job.attempt, scimfleet.breaker = "open",
        reason = reason.as_str(), error = %detail,
        "job {} dead-lettered ({})", job.job_id, reason.as_str()
    );
    let failure = Failure { reason, detail: &detail, last_status: None };
    dead_letter(worker, delivery, Some(job), failure, first_attempt_at).await
}

pub(crate) async fn note_success(worker: &AppWorker) {
    if worker.breaker.success().is_some() {
        tracing::info!(scimfleet.app = %worker.app, scimfleet.breaker = "closed", "circuit breaker of {} closed", worker.app);
        worker.ops.metrics.breaker_open.get_or_create(&Metrics::app(worker.app.as_str())).set(0);
        notes::breaker(worker, false).await;
    }
}

async fn note_failure(worker: &AppWorker) {
    if worker.breaker.failure(Instant::now()).is_some() {
        tracing::warn!(
            scimfleet.app = %worker.app, scimfleet.breaker = "open",
            "circuit breaker of {} open: its jobs wait in delay queues until a probe succeeds", worker.app
        );
        worker.ops.metrics.breaker_open.get_or_create(&Metrics::app(worker.app.as_str())).set(1);
        notes::breaker(worker, true).await;
    }
}

/// Publishes the job with `attempt` set to the delay queue of `tier_ms`
/// (confirmed); the caller then acks the delivery. It keeps its routing key,
/// so the broker returns it to the same queue when the delay expires.
pub(crate) async fn schedule_retry(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    attempt: u32,
    first_attempt_at: Option<DateTime<Utc>>,
    tier_ms: u64,
) -> Result<(), Transient> {
    let mut next = job.clone();
    next.attempt = attempt;
    // Serialising our own type cannot fail.
    let body = serde_json::to_vec(&next).unwrap_or_default();
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    for (name, value) in Topology::retry_route(&job.app, tier_ms).inner() {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(first_attempt_at) = first_attempt_at {
        let first = LongString::from(first_attempt_at.to_rfc3339().into_bytes());
        headers.insert(FIRST_ATTEMPT_HEADER.into(), AMQPValue::LongString(first));
    }
    let properties = delivery.properties.clone().with_headers(headers).with_delivery_mode(2);
    let exchange = worker.topology.retry_exchange();
    let message = Outgoing {
        exchange: &exchange,
        routing_key: delivery.routing_key.as_str(),
        body: &body,
        properties,
        mandatory: true,
    };
    worker.publisher.publish(message).await?;
    Ok(())
}

pub(crate) async fn dead_letter(
    worker: &AppWorker,
    delivery: &Delivery,
    job: Option<&Job>,
    failure: Failure<'_>,
    first_attempt_at: chrono::DateTime<Utc>,
) -> Result<Settled, Transient> {
    let envelope = DeadLetter {
        reason: failure.reason,
        detail: DeadLetter::truncate_detail(failure.detail),
        stage: Stage::Worker,
        app: Some(worker.app.clone()),
        job_id: job.map(|j| j.job_id.clone()),
        event_id: job.map(|j| j.event_id.to_string()),
        last_status: failure.last_status,
        attempts: job.map_or(1, |j| j.attempt + 1),
        first_attempt_at,
        last_attempt_at: Utc::now(),
    };
    worker
        .publisher
        .dead_letter(
            &worker.topology.jobs_dlx(),
            worker.app.as_str(),
            &delivery.data,
            &delivery.properties,
            &envelope,
        )
        .await?;
    // Every dead letter of the app (refused, exhausted, parked too long,
    // unreadable, verification failed) is its last error for status reports.
    notes::error(worker, failure.reason.as_str(), failure.last_status, &envelope.detail).await;
    let labels = AppReason { app: worker.app.to_string(), reason: failure.reason.as_str().to_owned() };
    worker.ops.metrics.dead_letters.get_or_create(&labels).inc();
    let detail = format!("{}: {}", failure.reason.as_str(), envelope.detail);
    Ok(Settled::DeadLettered(Note { detail, status: failure.last_status }))
}
