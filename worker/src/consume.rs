//! One app's consumer: take jobs from `{ns}.jobs.{app}`, converge each,
//! and hand the outcome to `settle`, which settles each delivery exactly
//! once, after its effect is durable.
//!
//! - Concurrency per app is the app's `concurrency`, enforced by the AMQP
//!   prefetch: the broker hands over no more unacked jobs than that.
//! - Jobs for one person in one app never run at once: a keyed lock inside
//!   the process, then a lease in Redis across processes and lanes. Under
//!   the lease, a job older than the version already applied is dropped
//!   (applied version in Redis), so newer state always wins.
//! - Each stage returns a `Decision` instead of settling: converged (after
//!   the applied version is recorded), stale, a delay queue, the dead-letter
//!   queue, or a requeue after an infrastructure error. The failure path
//!   (retry, park, dead-letter) is decided in `failure`, a read-back in
//!   `verify`; `settle` publishes what the decision needs, confirmed, and
//!   only then acks. Imports run one way: consumer → stages → settle.
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
use scimfleet_runtime::broker::{self, received_at};
use scimfleet_runtime::ops::ReadyLatch;
use scimfleet_runtime::store::{DesiredAccount, Lease};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetterReason, Job, JobAction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::WorkerError;
use crate::app::AppWorker;
use crate::breaker::Gate;
use crate::converge::Outcome;
use crate::decision::{Decision, Failure, Retry, RetryCause, Transient};
use crate::failure::{self, Failed, note_success};
use crate::observe;
use crate::retry;
use crate::settle::{self, first_attempt_at};
use crate::stats::WorkerStats;
use crate::verify;

/// How much longer a lease lives than the longest attempt.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

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
    let (job, decision) = process(&worker, &delivery, &span).await;
    let read = job.as_ref().map(|(job, person)| (job, person.as_str()));
    settle::settle(&worker, &delivery, read, decision, &span, started).await;
}

/// Reads and applies one delivery, deciding what it needs; the job (when
/// readable) and its person's pseudonym (computed once per delivery) are
/// returned for the delivery's telemetry.
async fn process(
    worker: &AppWorker,
    delivery: &Delivery,
    span: &tracing::Span,
) -> (Option<(Job, String)>, Decision) {
    let now = Utc::now();
    let job = match Job::parse(&delivery.data) {
        Ok(job) if job.app == worker.app => job,
        Ok(job) => {
            let detail = format!("job for app `{}` arrived on the queue of `{}`", job.app, worker.app);
            return (None, invalid(detail, now));
        }
        Err(error) => return (None, invalid(format!("unreadable job: {error}"), now)),
    };
    let person = worker.pseudonyms.person(&job.person);
    observe::job_fields(span, &job, &person);
    let decision = apply(worker, delivery, &job, &person, now).await.into();
    (Some((job, person)), decision)
}

/// A delivery that is not a job of this app: dead-lettered, never requeued.
fn invalid(detail: String, now: DateTime<Utc>) -> Decision {
    let reason = DeadLetterReason::InvalidJob;
    Decision::DeadLetter(Failure { reason, detail, last_status: None, first_attempt_at: now })
}

/// The apply under the in-process lock and the cross-process lease.
async fn apply(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    now: DateTime<Utc>,
) -> Result<Decision, Transient> {
    // In-process first (cheap, ordered), then the cross-process lease.
    let _guard = worker.locks.lock(format!("{}/{}", job.app, job.person)).await;
    let (lease, applied) = take_lease(worker, job).await?;
    let decided = apply_leased(worker, delivery, job, person, applied, now).await;
    if let Err(error) = worker.store.leases().release(lease).await {
        // The lease expires by itself; holding it a little longer is harmless.
        tracing::warn!(scimfleet.app = %worker.app, error = error_chain(&error), "could not release a lease");
    }
    decided
}

/// Waits for the (app, person) lease. Its TTL outlives any attempt
/// (`job_timeout_ms` plus a margin), so a holder that died frees it in time
/// and the wait is bounded. Returns the lease with the person's applied
/// version in the app, read in the same round trip.
async fn take_lease(worker: &AppWorker, job: &Job) -> Result<(Lease, Option<u64>), Transient> {
    let ttl = worker.job_timeout + LEASE_MARGIN;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(taken) = worker.store.leases().try_take_applying(&job.app, &job.person, ttl).await? {
            return Ok(taken);
        }
        WorkerStats::add(&worker.stats.lease_waits, 1);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The version check and the apply, under the person's lease; `applied` is
/// the person's applied version in the app, read when the lease was taken,
/// and `now` when the delivery was taken.
async fn apply_leased(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    applied: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Decision, Transient> {
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
        return Ok(Decision::Stale);
    }
    if let Gate::Wait(remaining) = worker.breaker.gate(Instant::now()) {
        // The app is failing: park the job without calling it or spending its
        // attempts. Its age still counts from the first time it was handled,
        // so a dead app's backlog reaches the dead-letter queue after
        // `max_age_ms` instead of circling through the delay queues for ever.
        let first = first_attempt_at(delivery, now);
        if (Utc::now() - first).to_std().unwrap_or_default() >= worker.max_age {
            return Ok(failure::park_expired(worker, job, first));
        }
        let tier = retry::tier_for(remaining, worker.topology.retry_tiers_ms()).unwrap_or(1000);
        let job = Box::new(job.clone());
        let cause = RetryCause::Deferred;
        return Ok(Decision::Retry(Retry { job, first_attempt_at: Some(first), tier_ms: tier, cause }));
    }
    let started = Instant::now();
    let attempt = AssertUnwindSafe(worker.converger.apply(job)).catch_unwind();
    let applied = tokio::time::timeout(worker.job_timeout, attempt).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let failed = match &applied {
        Ok(Ok(Ok(outcome))) => return converged(worker, delivery, job, person, outcome, duration_ms).await,
        Ok(Ok(Err(error))) => Failed::Apply(error),
        Ok(Err(_panic)) => Failed::Panicked,
        Err(_elapsed) => Failed::TimedOut,
    };
    let times = (first_attempt_at(delivery, now), now);
    Ok(failure::on_failure(worker, job, failed, times, duration_ms).await)
}

/// A successful attempt: the breaker hears of it, the applied version is
/// recorded, and a read-back (deprovisions, re-checks) is judged by `verify`.
async fn converged(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    outcome: &Outcome,
    duration_ms: u64,
) -> Result<Decision, Transient> {
    note_success(worker).await;
    // The applied version, and for an upsert what the account should look
    // like now and how to map it back to the person (what a sweep compares
    // the app's accounts with): one round trip, under the lease, after the
    // apply, so it is the newest.
    let desired = match &job.action {
        JobAction::Upsert { user, managed, groups } => Some(DesiredAccount {
            sequence: job.sequence,
            user: user.clone(),
            managed: managed.clone(),
            groups: groups.clone(),
        }),
        _ => None,
    };
    if !matches!(job.action, JobAction::Verify { .. }) {
        worker
            .store
            .desired()
            .record_converged(&job.app, &job.person, job.sequence, desired.as_ref())
            .await?;
    }
    if let Some(read_back) = &outcome.read_back {
        let received = received_at(&delivery.properties);
        return verify::judge(worker, job, read_back, outcome.changed(), received).await;
    }
    tracing::debug!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.action = job.action.name(), changed = outcome.changed(), duration_ms,
        "job {} converged", job.job_id
    );
    Ok(Decision::Converged { changed: outcome.changed(), verified: false })
}
