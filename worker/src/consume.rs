//! One app's consumer: take jobs from `{ns}.jobs.{app}`, converge each,
//! and hand the outcome to `settle`, which settles each delivery exactly
//! once, after its effect is durable.
//!
//! - Concurrency per app is the app's `concurrency`, enforced by the AMQP
//!   prefetch: the broker hands over no more unacked jobs than that.
//! - Jobs for one person in one app never run at once: a keyed lock inside
//!   the process, then a lease in Redis across processes and lanes, renewed
//!   by a heartbeat while the attempt runs (see `lease`). A person busy past
//!   a short wait is not waited for: the job is deferred untried, so a wait
//!   never holds a consumer slot. Under the lease, a job older than the
//!   version already applied is dropped (applied version in Redis), so
//!   newer state always wins.
//! - Results are recorded under the lease's fence. An attempt whose lease
//!   was lost (its writes stop at once), or whose record a newer lease
//!   refused, is settled as superseded: back untried through the shortest
//!   delay queue, never acked as converged.
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
use scimfleet_runtime::config::Adopt;
use scimfleet_runtime::store::{Fence, Fenced};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetterReason, Job, JobAction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::WorkerError;
use crate::app::AppWorker;
use crate::breaker::Gate;
use crate::client::Recorder;
use crate::converge::{ApplyError, Outcome};
use crate::decision::{Decision, Failure, Retry, RetryCause, Transient};
use crate::dry_run;
use crate::failure::{self, Failed, note_success};
use crate::lease::{self, Heartbeat, Held};
use crate::observe;
use crate::references::{self, Unresolved};
use crate::retry;
use crate::settle::{self, first_attempt_at};
use crate::stats::WorkerStats;
use crate::verify;

/// Consumes one of the app's lanes (the work queue, or the leaver lane)
/// until `shutdown` (the process stops, or the app is paused): the consumer
/// is cancelled first, the jobs being applied get `grace` to finish, and
/// closing `channel` returns the deliveries prefetched but not started to
/// the queue. `consuming` runs once the broker accepted the consumer.
pub(crate) async fn consume(
    worker: Arc<AppWorker>,
    queue: String,
    channel: lapin::Channel,
    shutdown: CancellationToken,
    grace: Duration,
    consuming: impl FnOnce(),
) -> Result<(), WorkerError> {
    let result =
        broker::consume(&channel, &queue, worker.concurrency, grace, shutdown, consuming, |delivery| {
            WorkerStats::add(&worker.stats.received, 1);
            let span = observe::consumer_span(&worker.app, &queue, &delivery);
            handle(worker.clone(), delivery, span.clone()).instrument(span)
        })
        .await;
    let _closed =
        scimfleet_runtime::broker::within("a close", channel.close(200, "consumer stopped".into())).await;
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

/// The apply under the in-process lock and the cross-process lease, kept
/// alive by a heartbeat while the attempt runs. A person busy past a short
/// wait is not waited for: the job is deferred, untried.
async fn apply(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    now: DateTime<Utc>,
) -> Result<Decision, Transient> {
    let Some(taken) = lease::take(worker, job).await? else {
        tracing::debug!(
            scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
            "job {} deferred: its person is busy elsewhere", job.job_id
        );
        return Ok(Decision::again(job, worker.shortest_tier(), RetryCause::Deferred));
    };
    let heartbeat = Heartbeat::start(&worker.store, &taken.lease, worker.lease_ttl, &taken.held);
    let leased = Leased { applied: taken.applied, held: &taken.held, fence: taken.lease.fence() };
    let decided = apply_leased(worker, delivery, job, person, &leased, now).await;
    drop(heartbeat);
    if let Err(error) = worker.store.leases().release(taken.lease).await {
        // The lease expires by itself; holding it a little longer is harmless.
        tracing::warn!(scimfleet.app = %worker.app, error = error_chain(&error), "could not release a lease");
    }
    decided
}

/// What the apply holds while it runs.
struct Leased<'a> {
    /// The person's applied version in the app, read when the lease was taken.
    applied: Option<u64>,
    /// Whether the lease is still held.
    held: &'a Held,
    /// The lease's fence, for every result recorded under it.
    fence: &'a Fence,
}

/// The version check and the apply, under the person's lease; `now` is
/// when the delivery was taken.
async fn apply_leased(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    person: &str,
    leased: &Leased<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, Transient> {
    // A re-check of an older version is stale too: the person was rehired
    // or changed since, and an active account is then what is wanted.
    if let Some(applied) = leased.applied
        && job.sequence < applied
    {
        tracing::info!(
            scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
            sequence = job.sequence, applied_sequence = applied,
            "job {} dropped: sequence {} is older than applied {}", job.job_id, job.sequence, applied
        );
        return Ok(Decision::Stale);
    }
    if let Some(parked) = parked(worker, delivery, job, now) {
        return Ok(parked);
    }
    let started = Instant::now();
    let converger = worker.converger.under(leased.held.clone());
    let job = match references::resolve(&worker.store, &converger, job).await {
        Ok(resolved) => resolved,
        Err(Unresolved::Store(error)) => return Err(error.into()),
        Err(Unresolved::Apply(error)) => {
            let times = (first_attempt_at(delivery, now), now);
            let duration_ms = started.elapsed().as_millis() as u64;
            return Ok(failure::on_failure(worker, job, Failed::Apply(&error), times, duration_ms).await);
        }
    };
    let job = &*job;
    let recorder = worker.dry_run.then(|| Arc::new(Recorder::default()));
    let converger = match &recorder {
        Some(recorder) => converger.recording(recorder.clone()),
        None => converger,
    };
    let attempt = AssertUnwindSafe(converger.apply(job)).catch_unwind();
    // A lost lease stops the attempt at once (a write already sent may
    // still land; the client sends no further one).
    let watched = async {
        tokio::select! {
            done = attempt => Some(done),
            () = leased.held.lost() => None,
        }
    };
    let applied = tokio::time::timeout(worker.job_timeout, watched).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let failed = match &applied {
        Ok(None) | Ok(Some(Ok(Err(ApplyError::LeaseLost { .. })))) => {
            return Ok(superseded(worker, job, person, "its lease was lost mid-attempt"));
        }
        Ok(Some(Ok(Ok(_)))) if !leased.held.is_held() => {
            return Ok(superseded(worker, job, person, "its lease was lost mid-attempt"));
        }
        Ok(Some(Ok(Ok(_)))) if let Some(recorder) = &recorder => {
            return dry_run::record(worker, job, recorder.take()).await;
        }
        Ok(Some(Ok(Ok(outcome)))) => {
            return converged(worker, delivery, job, (person, leased.fence), outcome, duration_ms).await;
        }
        Ok(Some(Ok(Err(error)))) => Failed::Apply(error),
        Ok(Some(Err(_panic))) => Failed::Panicked,
        Err(_elapsed) => Failed::TimedOut,
    };
    let times = (first_attempt_at(delivery, now), now);
    Ok(failure::on_failure(worker, job, failed, times, duration_ms).await)
}

/// While the app's circuit breaker is open: the job parked without calling
/// the app or spending its attempts. Its age still counts from the first
/// time it was handled, so a dead app's backlog reaches the dead-letter
/// queue after `max_age_ms` instead of circling through the delay queues
/// for ever.
fn parked(worker: &AppWorker, delivery: &Delivery, job: &Job, now: DateTime<Utc>) -> Option<Decision> {
    let Gate::Wait(remaining) = worker.breaker.gate(Instant::now()) else { return None };
    let first = first_attempt_at(delivery, now);
    if (Utc::now() - first).to_std().unwrap_or_default() >= worker.max_age {
        return Some(failure::park_expired(worker, job, first));
    }
    let tier = retry::tier_for(remaining, worker.topology.retry_tiers_ms()).unwrap_or(1000);
    let job = Box::new(job.clone());
    let cause = RetryCause::Deferred;
    Some(Decision::Retry(Retry { job, first_attempt_at: Some(first), tier_ms: tier, cause }))
}

/// The attempt's lease passed on before its result was recorded (`why`):
/// the job comes back without spending an attempt.
fn superseded(worker: &AppWorker, job: &Job, person: &str, why: &str) -> Decision {
    tracing::warn!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        "job {} superseded: {why}; it comes back untried", job.job_id
    );
    Decision::superseded(job, worker.shortest_tier())
}

/// A successful attempt: the breaker hears of it, the applied version is
/// recorded, and a read-back (deprovisions, re-checks) is judged by `verify`.
async fn converged(
    worker: &AppWorker,
    delivery: &Delivery,
    job: &Job,
    (person, fence): (&str, &Fence),
    outcome: &Outcome,
    duration_ms: u64,
) -> Result<Decision, Transient> {
    note_success(worker).await;
    // The applied version, and for an upsert what the account should look
    // like now and how to map it back to the person (what a sweep compares
    // the app's accounts with): one round trip, under the lease, after the
    // apply, so it is the newest; refused when the lease passed on.
    // An account left alone (`adopt = "skip"`) is not ours: nothing maps
    // it back to the person, so a sweep reports it as unknown.
    let desired = match &job.action {
        JobAction::Upsert { .. } if outcome.adopted == Some(Adopt::Skip) => None,
        _ => crate::sync::desired_of(job),
    };
    if !matches!(job.action, JobAction::Verify { .. }) {
        let desired = desired.as_ref();
        let recorded = worker
            .store
            .desired()
            .record_converged(&job.app, &job.person, job.sequence, desired, fence)
            .await?;
        if recorded == Fenced::Refused {
            return Ok(superseded(worker, job, person, "a newer lease refused its result"));
        }
    }
    if !outcome.unsupported.is_empty() {
        crate::notes::unsupported(worker, &outcome.unsupported).await;
    }
    // Before the ack: every change to an app is in the audit trail.
    crate::audit::scim_write(worker, job, outcome).await?;
    if let Some(read_back) = &outcome.read_back {
        let received = received_at(&delivery.properties);
        return verify::judge(worker, job, read_back, outcome.changed(), received, fence).await;
    }
    tracing::debug!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.action = job.action.name(), changed = outcome.changed(), duration_ms,
        "job {} converged", job.job_id
    );
    Ok(Decision::Converged { changed: outcome.changed(), verified: false })
}
