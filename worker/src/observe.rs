//! The telemetry of one job delivery, in one place: its consumer span, the
//! metrics of how it was settled, and its step in the event's journey.
//!
//! The span (`process {queue}`) continues the trace in the job's headers:
//! the scheduler's per-app `send` span, so every attempt, retry, replay and
//! remediation of a job hangs under the event that caused it. A re-check
//! carries only a link to the deprovision's trace and starts its own.
//!
//! Settling is counted here and nowhere else (`scimfleet_jobs_total` by
//! outcome, the attempt's duration, and for converged jobs the end-to-end
//! time since the scheduler took the event), next to the process's exact
//! counters in `WorkerStats` and the per-minute counts of the console's
//! sparklines (`activity`).

use std::time::Instant;

use chrono::Utc;
use lapin::message::Delivery;
use scimfleet_runtime::broker::received_at;
use scimfleet_runtime::metrics::AppAction;
use scimfleet_runtime::store::{ActivityKind, JourneyStep};
use scimfleet_runtime::telemetry::{self, error_chain, propagation};
use scimfleet_schemas::{AppId, Job};
use tracing::Span;

use crate::app::AppWorker;
use crate::decision::{Note, Settled};

/// The consumer span of one job delivery.
pub(crate) fn consumer_span(app: &AppId, queue: &str, delivery: &Delivery) -> Span {
    // Job routing keys are ours (`{app}.{shard}[.leaver]`).
    let span = telemetry::consumer_span(queue, delivery, delivery.routing_key.as_str());
    span.record("scimfleet.app", app.as_str());
    span
}

/// Fills the span fields known once the job is read.
pub(crate) fn job_fields(span: &Span, job: &Job, person: &str) {
    span.record("scimfleet.action", job.action.name());
    span.record("scimfleet.attempt", job.attempt + 1);
    span.record("scimfleet.event_id", job.event_id.as_str());
    span.record("scimfleet.job_id", job.job_id.as_str());
    span.record("scimfleet.person", person);
}

/// The `outcome` label of a settled job; `unchanged` is a converged job
/// that found the app already as wanted.
fn outcome(settled: &Settled) -> (&'static str, Option<&Note>) {
    match settled {
        Settled::Converged { verified: true, .. } => ("verified", None),
        Settled::Converged { changed: true, .. } => ("converged", None),
        Settled::Converged { .. } => ("unchanged", None),
        Settled::Retried(note) => ("retried", Some(note)),
        Settled::Deferred => ("deferred", None),
        Settled::Superseded => ("superseded", None),
        Settled::Stale => ("stale", None),
        Settled::DeadLettered(note) => ("dead_lettered", Some(note)),
        Settled::Remediating(note) => ("remediating", Some(note)),
    }
}

/// Counts a settled delivery and records its journey step.
pub(crate) async fn settled(
    worker: &AppWorker,
    span: &Span,
    delivery: &Delivery,
    job: Option<(&Job, &str)>,
    settled: &Settled,
    started: Instant,
) {
    let (label, note) = outcome(settled);
    span.record("scimfleet.outcome", label);
    if matches!(settled, Settled::DeadLettered(_) | Settled::Remediating(_)) {
        span.record("otel.status_code", "error");
    }
    let action = job.map_or("unreadable", |(j, _)| j.action.name());
    // `converged` / `unchanged` / `verified` are one metric outcome: the job's state holds.
    let metric = match label {
        "unchanged" | "verified" => "converged",
        other => other,
    };
    let activity = match label {
        "converged" | "unchanged" | "verified" => Some(ActivityKind::Done),
        "retried" => Some(ActivityKind::Retried),
        "dead_lettered" => Some(ActivityKind::DeadLettered),
        _ => None,
    };
    if let Some(kind) = activity {
        worker.activity.count(worker.app.as_str(), kind);
    }
    let metrics = &worker.ops.metrics;
    metrics.job_settled(worker.app.as_str(), action, metric, started.elapsed());
    if metric == "converged"
        && let Some(since) = received_at(&delivery.properties)
    {
        let seconds = (Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0;
        let labels = AppAction { app: worker.app.to_string(), action: action.to_owned() };
        metrics.job_end_to_end.get_or_create(&labels).observe(seconds);
    }
    let Some((job, person)) = job else { return };
    let step = JourneyStep {
        at: Utc::now() - chrono::TimeDelta::from_std(started.elapsed()).unwrap_or_default(),
        stage: "worker".to_owned(),
        app: Some(job.app.to_string()),
        action: job.action.name().to_owned(),
        job_id: Some(job.job_id.to_string()),
        attempt: Some(job.attempt + 1),
        outcome: label.to_owned(),
        detail: note.map(|n| n.detail.clone()),
        status: note.and_then(|n| n.status),
        duration_ms: Some(started.elapsed().as_millis() as u64),
        trace_id: propagation::trace_id(span),
        person: Some(person.to_owned()),
    };
    if let Err(error) =
        worker.store.journeys().step(job.event_id.as_str(), &step, worker.journey_retention).await
    {
        tracing::warn!(
            scimfleet.app = %worker.app, error = error_chain(&error),
            "journey step of job {} not recorded", job.job_id
        );
    }
}

/// Counts a delivery handed back to the queue after an infrastructure error.
pub(crate) fn requeued(worker: &AppWorker, span: &Span, job: Option<&Job>, started: Instant) {
    span.record("scimfleet.outcome", "requeued");
    let action = job.map_or("unreadable", |j| j.action.name());
    worker.ops.metrics.job_settled(worker.app.as_str(), action, "requeued", started.elapsed());
}
