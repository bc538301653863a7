//! One app's consumer: take jobs from `{ns}.jobs.{app}`, converge each, and
//! settle each delivery exactly once, after its effect is durable.
//!
//! - Concurrency per app is the app's `concurrency`, enforced by the AMQP
//!   prefetch: the broker hands over no more unacked jobs than that.
//! - Jobs for one person in one app never run at once: a keyed lock inside
//!   the process, then a lease in Redis across processes and lanes. Under
//!   the lease, a job older than the version already applied is dropped
//!   (applied version in Redis), so newer state always wins.
//! - Ack only after convergence and after the applied version is recorded.
//!   A transient failure within the app's budget (attempts, age) is
//!   republished to a delay queue (see `retry`); anything else is published
//!   to the app's dead-letter queue with its reason; both confirmed, then acked.
//! - The failure path (retry, park, dead-letter) lives in `failure`.
//! - Each app has a circuit breaker (see `breaker`): while it is open, jobs
//!   are parked in a delay queue without calling the app.
//! - An attempt that panics or outlives `job_timeout_ms` is abandoned and
//!   retried within the same budget; a job that keeps doing it is
//!   dead-lettered as `poison`. The loop and the other jobs carry on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use scimfleet_runtime::broker::{self, PublishError, Publisher, Topology};
use scimfleet_runtime::ops::{Ops, ReadyLatch};
use scimfleet_runtime::store::{DesiredAccount, Lease, StoreError};
use scimfleet_runtime::telemetry::{Pseudonymizer, error_chain};
use scimfleet_runtime::{KeyedLocks, Store};
use scimfleet_schemas::{AppId, DeadLetterReason, Job, JobAction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::WorkerError;
use crate::breaker::{Breaker, Gate};
use crate::converge::Converger;
use crate::failure::{self, Failed, Failure, dead_letter, note_success, on_failure, schedule_retry};
use crate::observe;
use crate::retry;
use crate::stats::WorkerStats;
use crate::verify;

/// Pause before requeueing after an infrastructure error (Redis, broker), so
/// an outage does not turn into a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

/// Everything one app's consumer needs.
pub(crate) struct AppWorker {
    pub app: AppId,
    pub concurrency: u16,
    pub converger: Converger,
    pub topology: Topology,
    pub store: Store,
    pub publisher: Publisher,
    pub locks: KeyedLocks,
    pub pseudonyms: Pseudonymizer,
    pub stats: Arc<WorkerStats>,
    /// Attempts per job, first included.
    pub max_attempts: u32,
    /// Age limit of a job, from its first attempt.
    pub max_age: Duration,
    /// First backoff step (the shortest delay tier).
    pub retry_base: Duration,
    /// Longest backoff (the longest delay tier).
    pub retry_cap: Duration,
    /// Longest one attempt may run.
    pub job_timeout: Duration,
    /// The app's circuit breaker.
    pub breaker: Breaker,
    /// This worker run's id in the breaker states kept for status reports.
    pub instance: Arc<str>,
    /// The process's metrics and health.
    pub ops: Ops,
    /// How long journey steps are kept.
    pub journey_retention: Duration,
    /// Re-check delays after a verified deprovision, ms.
    pub rechecks_ms: Vec<u64>,
    /// Whether a failed verification re-applies the deprovision.
    pub remediate: bool,
    /// Remediations before the case is dead-lettered.
    pub max_remediations: u32,
    /// How long evidence is kept.
    pub evidence_retention: Duration,
}

/// How much longer a lease lives than the longest attempt.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// How a job was settled.
pub(crate) enum Settled {
    Converged {
        changed: bool,
        /// A deprovision or re-check whose read-back found access gone.
        verified: bool,
    },
    Retried(Note),
    Deferred,
    Stale,
    DeadLettered(Note),
    /// Verification found access still there; a remediation was queued.
    Remediating(Note),
}

/// Why a job was retried, dead-lettered or remediated, for its journey.
pub(crate) struct Note {
    /// The error chain or finding (free of personal data).
    pub(crate) detail: String,
    /// The last HTTP status, when there was one.
    pub(crate) status: Option<u16>,
}

/// The job could not be settled now; it goes back to the queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Transient {
    #[error("dead-lettering failed")]
    Publish(#[from] PublishError),
    #[error("Redis is unavailable")]
    Store(#[from] StoreError),
}

/// Consumes one of the app's lanes: the work queue, or the leaver lane.
pub(crate) async fn consume(
    worker: Arc<AppWorker>,
    queue: String,
    channel: lapin::Channel,
    shutdown: CancellationToken,
    grace: Duration,
    ready: ReadyLatch,
) -> Result<(), WorkerError> {
    let consuming = move || ready.arrive();
    let result =
        broker::consume(&channel, &queue, worker.concurrency, grace, shutdown, consuming, |delivery| {
            WorkerStats::add(&worker.stats.received, 1);
            let span = observe::consumer_span(&worker.app, &queue, &delivery);
            handle(worker.clone(), delivery, span.clone()).instrument(span)
        })
        .await;
    let _closed = channel.close(200, "consumer stopped".into()).await;
    Ok(result?)
}

async fn handle(worker: Arc<AppWorker>, delivery: Delivery, span: tracing::Span) {
    let started = Instant::now();
    let (job, outcome) = process(&worker, &delivery, &span).await;
    let acker = &delivery.acker;
    let stats = &worker.stats;
    let (settled, counter) = match outcome {
        Ok(settled) => {
            let counter = match settled {
                Settled::Converged { changed, .. } => {
                    if changed {
                        WorkerStats::add(&stats.changed, 1);
                    }
                    &stats.converged
                }
                Settled::Stale => &stats.stale,
                Settled::Retried(_) => &stats.retried,
                Settled::Deferred => &stats.deferred,
                Settled::Remediating(_) => &stats.remediated,
                Settled::DeadLettered(_) => &stats.dead_lettered,
            };
            let read = job.as_ref().map(|(job, person)| (job, person.as_str()));
            observe::settled(&worker, &span, &delivery, read, &settled, started).await;
            (acker.ack(BasicAckOptions::default()).await, counter)
        }
        Err(error) => {
            observe::requeued(&worker, &span, job.as_ref().map(|(job, _)| job), started);
            tracing::warn!(scimfleet.app = %worker.app, error = error_chain(&error), "job requeued");
            tokio::time::sleep(REQUEUE_PAUSE).await;
            (
                acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
                &stats.requeued,
            )
        }
    };
    match settled {
        Ok(_) => WorkerStats::add(counter, 1),
        Err(error) => {
            WorkerStats::add(&stats.abandoned, 1);
            tracing::warn!(scimfleet.app = %worker.app, %error, "could not settle a job; it will be redelivered");
        }
    }
}

/// Reads and applies one delivery; the job (when readable) and its
/// person's pseudonym (computed once per delivery) are returned for the
/// delivery's telemetry.
async fn process(
    worker: &AppWorker,
    delivery: &Delivery,
    span: &tracing::Span,
) -> (Option<(Job, String)>, Result<Settled, Transient>) {
    let first_attempt_at = Utc::now();
    let job = match Job::parse(&delivery.data) {
        Ok(job) if job.app == worker.app => job,
        Ok(job) => {
            let detail = format!("job for app `{}` arrived on the queue of `{}`", job.app, worker.app);
            let failure =
                Failure { reason: DeadLetterReason::InvalidJob, detail: &detail, last_status: None };
            return (None, dead_letter(worker, delivery, None, failure, first_attempt_at).await);
        }
        Err(error) => {
            let detail = format!("unreadable job: {error}");
            let failure =
                Failure { reason: DeadLetterReason::InvalidJob, detail: &detail, last_status: None };
            return (None, dead_letter(worker, delivery, None, failure, first_attempt_at).await);
        }
    };
    let person = worker.pseudonyms.person(&job.person);
    observe::job_fields(span, &job, &person);
    let settled = apply(worker, delivery, &job, &person, first_attempt_at).await;
    (Some((job, person)), settled)
}

/// The apply under the in-process lock and the cross-process lease.
async fn apply(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    first_attempt_at: DateTime<Utc>,
) -> Result<Settled, Transient> {
    // In-process first (cheap, ordered), then the cross-process lease.
    let _guard = worker.locks.lock(format!("{}/{}", job.app, job.person)).await;
    let (lease, applied) = take_lease(worker, job).await?;
    let settled = apply_leased(worker, delivery, job, person, applied, first_attempt_at).await;
    if let Err(error) = worker.store.leases().release(lease).await {
        // The lease expires by itself; holding it a little longer is harmless.
        tracing::warn!(scimfleet.app = %worker.app, error = error_chain(&error), "could not release a lease");
    }
    settled
}

/// Waits for the (app, person) lease. Its TTL outlives any attempt
/// (`job_timeout_ms` plus a margin), so a holder that died frees it in time
/// and the wait is bounded. Returns the lease with the person's applied
/// version in the app, read in the same round trip.
async fn take_lease(worker: &AppWorker, job: &Job) -> Result<(Lease, Option<u64>), Transient> {
    let ttl = worker.job_timeout + LEASE_MARGIN;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(taken) = worker.store.leases().try_take(&job.app, &job.person, ttl).await? {
            return Ok(taken);
        }
        WorkerStats::add(&worker.stats.lease_waits, 1);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The version check and the apply, under the person's lease; `applied` is
/// the person's applied version in the app, read when the lease was taken.
async fn apply_leased(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    applied: Option<u64>,
    first_attempt_at: DateTime<Utc>,
) -> Result<Settled, Transient> {
    let is_write = !matches!(job.action, JobAction::Verify { .. });
    // A re-check of an older version is stale too: the person was rehired
    // or changed since, and an active account is then what is wanted.
    if let Some(applied) = applied
        && job.sequence < applied
    {
        tracing::info!(
            scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
            sequence = job.sequence, applied_sequence = applied,
            "job {} dropped: sequence {} is older than applied {}", job.job_id, job.sequence, applied
        );
        return Ok(Settled::Stale);
    }
    if let Gate::Wait(remaining) = worker.breaker.gate(Instant::now()) {
        // The app is failing: park the job without calling it or spending its
        // attempts. Its age still counts from the first time it was handled,
        // so a dead app's backlog reaches the dead-letter queue after
        // `max_age_ms` instead of circling through the delay queues for ever.
        let first = failure::first_attempt_at(delivery, first_attempt_at);
        if (Utc::now() - first).to_std().unwrap_or_default() >= worker.max_age {
            return failure::park_expired(worker, delivery, job, first).await;
        }
        let tier = retry::tier_for(remaining, worker.topology.retry_tiers_ms()).unwrap_or(1000);
        return schedule_retry(worker, delivery, job, job.attempt, Some(first), tier)
            .await
            .map(|()| Settled::Deferred);
    }
    let started = Instant::now();
    let attempt = AssertUnwindSafe(worker.converger.apply(job)).catch_unwind();
    let applied = tokio::time::timeout(worker.job_timeout, attempt).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match applied {
        Ok(Ok(Ok(outcome))) => {
            note_success(worker).await;
            // The applied version, and for an upsert what the account should
            // look like now and how to map it back to the person (what a
            // sweep compares the app's accounts with): one round trip, under
            // the lease, after the apply, so it is the newest.
            let desired = match &job.action {
                JobAction::Upsert { user, managed, groups } => Some(DesiredAccount {
                    sequence: job.sequence,
                    user: user.clone(),
                    managed: managed.clone(),
                    groups: groups.clone(),
                }),
                _ => None,
            };
            if is_write {
                worker
                    .store
                    .desired()
                    .record_converged(&job.app, &job.person, job.sequence, desired.as_ref())
                    .await?;
            }
            if let Some(read_back) = &outcome.read_back {
                return verify::settle(worker, delivery, job, read_back, outcome.changed()).await;
            }
            tracing::debug!(
                scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
                scimfleet.action = job.action.name(), changed = outcome.changed(), duration_ms,
                "job {} converged", job.job_id
            );
            Ok(Settled::Converged { changed: outcome.changed(), verified: false })
        }
        Ok(Ok(Err(error))) => {
            on_failure(worker, delivery, job, Failed::Apply(&error), first_attempt_at, duration_ms).await
        }
        Ok(Err(_panic)) => {
            on_failure(worker, delivery, job, Failed::Panicked, first_attempt_at, duration_ms).await
        }
        Err(_elapsed) => {
            on_failure(worker, delivery, job, Failed::TimedOut, first_attempt_at, duration_ms).await
        }
    }
}
