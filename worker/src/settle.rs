//! The one place a job delivery is settled with the broker.
//!
//! Every stage returns a [`Decision`]; [`settle`] carries it out: the
//! confirmed publish it needs (the job to a delay queue, or the delivery to
//! the app's dead-letter queue), then the ack; or, when infrastructure
//! failed (before or during that publish), a requeue after a pause
//! (`runtime::broker::settle`, shared with the scheduler). Doing it in one
//! place is what makes each delivery settled exactly once, and only after
//! its effect is durable: a publish that is not confirmed turns into a
//! requeue, never into an ack, and no stage can ack behind its back.
//!
//! The outcome is then reported once: the process's counters
//! (`WorkerStats`), and metrics and the journey step (`observe`). Notes for
//! status reports (the app's last error) are written after the publish that
//! settles the failure, as before the ack.
//!
//! The first-attempt header, which carries a job's age across delay
//! queues, is read and written here too.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::types::{AMQPValue, LongString};
use scimfleet_runtime::broker::{self, Outgoing, Topology, Verdict};
use scimfleet_runtime::metrics::AppReason;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetter, DeadLetterReason, Job, Stage};
use tracing::Span;

use crate::app::AppWorker;
use crate::decision::{Decision, Failure, Note, Retry, RetryCause, Settled, Transient};
use crate::notes;
use crate::observe;
use crate::stats::WorkerStats;

/// Carries a job's first attempt time across retries (RFC 3339).
const FIRST_ATTEMPT_HEADER: &str = "x-scimfleet-first-attempt-at";

/// When the job was first handled. The time rides in a header across
/// retries and parkings (the body's `attempt` counts attempts only); a job
/// without it is handled for the first time, `now`.
pub(crate) fn first_attempt_at(delivery: &Delivery, now: DateTime<Utc>) -> DateTime<Utc> {
    broker::header_str(&delivery.properties, FIRST_ATTEMPT_HEADER)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// Carries out `decision` for `delivery` and settles it with the broker,
/// exactly once; `job` is the delivered job and its person's pseudonym,
/// when the job was readable.
pub(crate) async fn settle(
    worker: &AppWorker,
    delivery: &Delivery,
    job: Option<(&Job, &str)>,
    decision: Decision,
    span: &Span,
    started: Instant,
) {
    let stats = &worker.stats;
    let (verdict, counter) = match carry_out(worker, delivery, job.map(|(job, _)| job), decision).await {
        Ok(settled) => {
            let counter = counter(stats, &settled);
            observe::settled(worker, span, delivery, job, &settled, started).await;
            (Verdict::Ack, counter)
        }
        Err(error) => {
            observe::requeued(worker, span, job.map(|(job, _)| job), started);
            tracing::warn!(scimfleet.app = %worker.app, error = error_chain(&error), "job requeued");
            (Verdict::Requeue, &stats.requeued)
        }
    };
    if let Err(error) = broker::settle(&delivery.acker, verdict, counter, &stats.abandoned).await {
        tracing::warn!(scimfleet.app = %worker.app, %error, "could not settle a job; it will be redelivered");
    }
}

/// The counter of a settled job; a converged job that changed the app is
/// counted as changed too.
fn counter<'a>(stats: &'a WorkerStats, settled: &Settled) -> &'a AtomicU64 {
    match settled {
        Settled::Converged { changed, .. } => {
            if *changed {
                WorkerStats::add(&stats.changed, 1);
            }
            &stats.converged
        }
        Settled::Stale => &stats.stale,
        Settled::Retried(_) => &stats.retried,
        Settled::Deferred => &stats.deferred,
        Settled::Superseded => &stats.superseded,
        Settled::Remediating(_) => &stats.remediated,
        Settled::DeadLettered(_) => &stats.dead_lettered,
    }
}

/// Makes the decision's effect durable: the publish it needs, confirmed.
async fn carry_out(
    worker: &AppWorker,
    delivery: &Delivery,
    job: Option<&Job>,
    decision: Decision,
) -> Result<Settled, Transient> {
    match decision {
        Decision::Converged { changed, verified } => Ok(Settled::Converged { changed, verified }),
        Decision::Stale => Ok(Settled::Stale),
        Decision::Retry(retry) => {
            publish_retry(worker, delivery, &retry).await?;
            Ok(match retry.cause {
                RetryCause::Failed { error, status } => {
                    notes::error(worker, "transient", status, &error).await;
                    let detail = format!("retry in {} ms: {error}", retry.tier_ms);
                    Settled::Retried(Note { detail, status })
                }
                RetryCause::Deferred => Settled::Deferred,
                RetryCause::Superseded => Settled::Superseded,
                RetryCause::Remediation(note) => Settled::Remediating(note),
            })
        }
        Decision::DeadLetter(failure) => dead_letter(worker, delivery, job, failure).await,
        Decision::Requeue(transient) => Err(transient),
    }
}

/// Publishes the retry's job to the delay queue of its tier (confirmed),
/// with the delivery's headers and routing key, so the broker returns it to
/// the same queue when the delay expires.
async fn publish_retry(worker: &AppWorker, delivery: &Delivery, retry: &Retry) -> Result<(), Transient> {
    // Serialising our own type cannot fail.
    let body = serde_json::to_vec(&retry.job).unwrap_or_default();
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    for (name, value) in Topology::retry_route(&retry.job.app, retry.tier_ms).inner() {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(first_attempt_at) = retry.first_attempt_at {
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

/// Publishes the delivery, as it came, to the app's dead-letter queue with
/// the failure's envelope (confirmed), and notes it as the app's last error.
async fn dead_letter(
    worker: &AppWorker,
    delivery: &Delivery,
    job: Option<&Job>,
    failure: Failure,
) -> Result<Settled, Transient> {
    let attempts = job.map_or(1, |j| j.attempt + 1);
    crate::audit::dead_letter(worker, job, &failure, attempts).await?;
    let envelope = DeadLetter {
        reason: failure.reason,
        detail: DeadLetter::truncate_detail(&failure.detail),
        stage: Stage::Worker,
        app: Some(worker.app.clone()),
        job_id: job.map(|j| j.job_id.clone()),
        event_id: job.map(|j| j.event_id.to_string()),
        last_status: failure.last_status,
        attempts,
        first_attempt_at: failure.first_attempt_at,
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
    if failure.reason == DeadLetterReason::IdentityConflict {
        notes::identity_conflict(worker).await;
    }
    let detail = format!("{}: {}", failure.reason.as_str(), envelope.detail);
    Ok(Settled::DeadLettered(Note { detail, status: failure.last_status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superseded_and_deferred_jobs_are_counted_apart_and_stay_in_flight_until_back() {
        let stats = WorkerStats::default();
        WorkerStats::add(&stats.received, 2);
        WorkerStats::add(counter(&stats, &Settled::Superseded), 1);
        WorkerStats::add(counter(&stats, &Settled::Deferred), 1);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.superseded, snapshot.deferred), (1, 1));
        assert_eq!(snapshot.settled(), 0, "neither is settled for good");
        assert_eq!(snapshot.in_flight(), 0, "both left this worker");
    }
}
