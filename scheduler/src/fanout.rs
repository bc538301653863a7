//! One event, start to settle: validate, take the person's planning lease,
//! drop the event if stale, plan, publish the jobs with confirms, record the
//! person, release the lease, and only then ack.
//!
//! Crash windows are harmless by construction. Dying after the publish but
//! before the registry write redelivers the event, which republishes the same
//! deterministic job ids (workers converge, so nothing doubles). Dying after
//! the registry write but before the ack redelivers an event that is now
//! "not newer" and is dropped, its jobs already out.
//!
//! Replicas cannot race on one person. Events of one person are serialised
//! in process by a keyed lock, and across scheduler processes by the
//! person's planning lease (`LeaseScope::Plan`, `scheduler.lease_ttl_ms`,
//! renewed while the event is in hand): the registry read, the plan and the
//! record all happen under it, so no two replicas plan from the same "apps
//! held". When another replica holds the lease past a short wait, the event
//! goes back to the queue (`lease::requeue_behind`) without counting towards
//! the delivery limit. A replica that stalls (a long pause, SIGSTOP) past
//! its TTL loses the lease to another, and its writes carry the fence of the
//! lease, so they are refused once the other took it:
//!
//! - before publishing, the holder adds the apps it sends upserts to but the
//!   registry does not hold to the person's `pending` apps (fenced). The
//!   next holder plans with those counted as held, so an upsert a stalled
//!   replica publishes late is met by a deprovision when out of scope (an
//!   older sequence is dropped by the workers, a newer one is re-planned);
//!   a refused announcement means nothing is published at all;
//! - the record is fenced: a refused record does not ack the event as
//!   accepted but requeues it, and the re-plan, from the now-current
//!   registry, either drops it as not newer or plans it again, deprovisioning
//!   the apps the other replica added. Jobs the stale plan published are
//!   harmless duplicates: job ids are deterministic and workers drop older
//!   sequences.
//!
//! Each job is published inside a producer span of its own (`send
//! {ns}.jobs`, one per app) whose context rides in the job's headers, so a
//! trace shows one branch per app under the event. The event's journey
//! (`scimfleet trace`) gets one step per event, after the effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use scimfleet_policy as policy;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::broker::{
    Outgoing, PublishError, Publisher, RECEIVED_AT_HEADER, Topology, persistent,
};
use scimfleet_runtime::config::Config;
use scimfleet_runtime::metrics::{AppAction, ReasonLabel};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::store::{JourneyStep, Lease, PersonRecord, Recorded, StoreError};
use scimfleet_runtime::telemetry::{self, Pseudonymizer, propagation};
use scimfleet_runtime::{KeyedLocks, Store};
use scimfleet_schemas::{AppId, DeadLetter, DeadLetterReason, Event, EventError, Job, Stage};
use tracing::Span;

use crate::journey::{journey, step};
use crate::stats::SchedulerStats;
use crate::{effective, gate, lease};

/// What the scheduler needs to handle an event.
pub(crate) struct Context {
    pub config: Arc<Config>,
    pub topology: Topology,
    pub store: Store,
    pub publisher: Publisher,
    pub locks: KeyedLocks,
    pub pseudonyms: Pseudonymizer,
    pub stats: Arc<SchedulerStats>,
    pub ops: Ops,
    /// The intake queue's name (span names).
    pub queue: String,
    /// How long journey steps are kept.
    pub journey_retention: Duration,
    /// The process's audit trail: every event dead letter.
    pub audit: AuditLog,
}

/// How an event was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Jobs published, registry updated.
    Accepted,
    /// Not newer than what was seen.
    Stale,
    /// Published to the events dead-letter queue.
    DeadLettered,
    /// Another replica held the person's planning lease: back to the queue.
    Deferred,
    /// Planned, but the lease passed to another replica before the record
    /// (a stall): nothing recorded, back to the queue to be planned again.
    FencedOut,
    /// Kept until its `effective_at`; it comes back to the queue then.
    Scheduled,
}

impl Settled {
    /// The `outcome` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Stale => "stale",
            Self::DeadLettered => "dead_lettered",
            Self::Deferred => "deferred",
            Self::FencedOut => "fenced_out",
            Self::Scheduled => "scheduled",
        }
    }
}

/// The event could not be settled now; it goes back to the queue.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Transient {
    #[error("publishing failed")]
    Publish(#[from] PublishError),
    #[error("the person registry is unavailable")]
    Store(#[from] StoreError),
}

/// Content types an event may carry (CloudEvents structured mode, plain
/// JSON, or none); parameters such as `; charset=utf-8` are allowed.
const ACCEPTED_CONTENT_TYPES: &[&str] = &["application/cloudevents+json", "application/json"];

fn content_type_error(delivery: &Delivery) -> Option<String> {
    let content_type = delivery.properties.content_type().as_ref()?.as_str();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let accepted = ACCEPTED_CONTENT_TYPES.iter().any(|a| media_type.eq_ignore_ascii_case(a));
    (!accepted).then(|| {
        format!("content type `{media_type}` is not accepted; use {}", ACCEPTED_CONTENT_TYPES.join(" or "))
    })
}

/// The event of a delivery: its body parsed strictly, and its routing key
/// agreeing with its `type` when it came through an exchange. A delivery
/// through the default exchange is one this scheduler put back behind the
/// queue (`lease::requeue_behind`, keyed by the queue's name), checked when
/// it first arrived.
fn decode(delivery: &Delivery) -> Result<Event, EventError> {
    let event = Event::parse(&delivery.data)?;
    if !delivery.exchange.as_str().is_empty() {
        event.check_routing_key(delivery.routing_key.as_str())?;
    }
    Ok(event)
}

pub(crate) async fn process(
    ctx: &Context,
    delivery: &Delivery,
    started: Instant,
) -> Result<Settled, Transient> {
    if let Some(detail) = content_type_error(delivery) {
        return dead_letter(ctx, delivery, "content_type", &detail, loose_event_id(&delivery.data)).await;
    }
    let event = match decode(delivery) {
        Ok(event) => event,
        Err(error) => {
            let event_id = loose_event_id(&delivery.data);
            return dead_letter(ctx, delivery, error.kind(), &error.to_string(), event_id).await;
        }
    };
    let person = ctx.pseudonyms.person(&event.data.person_id);
    let span = Span::current();
    span.record("scimfleet.event_id", event.id.as_str());
    span.record("scimfleet.person", person.as_str());
    let _guard = ctx.locks.lock(event.data.person_id.as_str().to_owned()).await;
    let Some(lease) = lease::take(ctx, &event.data.person_id).await? else {
        tracing::debug!(event_id = %event.id, scimfleet.person = %person, "person planned elsewhere; requeued");
        lease::requeue_behind(ctx, delivery).await?;
        return Ok(Settled::Deferred);
    };
    let settled =
        lease::renewing(ctx, &lease, plan_person(ctx, delivery, &event, &person, &lease, started)).await;
    lease::release(ctx, lease).await;
    let settled = settled?;
    if settled == Settled::FencedOut {
        lease::requeue_behind(ctx, delivery).await?;
    }
    Ok(settled)
}

/// Plans, publishes and records one person under its planning `lease`.
async fn plan_person(
    ctx: &Context,
    delivery: &Delivery,
    event: &Event,
    person: &str,
    lease: &Lease,
    started: Instant,
) -> Result<Settled, Transient> {
    let planning = ctx.store.registry().planning(&event.data.person_id).await?;
    if let Some(known) = planning.known.as_ref().filter(|k| event.data.sequence <= k.sequence) {
        tracing::info!(
            event_id = %event.id, scimfleet.person = %person, sequence = event.data.sequence,
            known_sequence = known.sequence, "event {} dropped: not newer than sequence {}", event.id, known.sequence
        );
        let detail = format!("sequence {} is not newer than {}", event.data.sequence, known.sequence);
        journey(ctx, event.id.as_str(), &step(event, "stale", Some(detail), person, started)).await;
        return Ok(Settled::Stale);
    }
    let kept = planning.scheduled.is_some();
    if let Some(settled) = effective::before_plan(ctx, (delivery, event), person, kept, started).await? {
        return Ok(settled);
    }
    // Apps a stalled replica may still upsert to count as held: out of
    // scope, they get a deprovision.
    let mut held = planning.known.map(|k| k.apps).unwrap_or_default();
    for app in planning.pending {
        if !held.contains(&app) {
            held.push(app);
        }
    }
    let plan = match policy::plan(event, &ctx.config.apps, &held) {
        Ok(plan) => plan,
        Err(error) => {
            return dead_letter(ctx, delivery, "unmappable", &error.to_string(), Some(event.id.to_string()))
                .await;
        }
    };
    let joining: Vec<AppId> = plan.active_in.iter().filter(|a| !held.contains(a)).cloned().collect();
    let fence = lease.fence();
    if !joining.is_empty() && !ctx.store.registry().intend(&event.data.person_id, fence, &joining).await? {
        return Ok(fenced_out(ctx, event, person, started, "before publishing").await);
    }
    let gated = gate::gate(ctx, event, person, plan.jobs, &held).await?;
    publish_jobs(ctx, &gated.publish, started).await?;
    let record =
        PersonRecord { sequence: event.data.sequence, status: event.data.status, apps: plan.active_in };
    let recorded = ctx.store.registry().record_fenced(&event.data.person_id, &record, fence).await?;
    if recorded == Recorded::FencedOut {
        return Ok(fenced_out(ctx, event, person, started, "after publishing").await);
    }
    SchedulerStats::add(&ctx.stats.jobs_published, gated.publish.len() as u64);
    for job in &gated.publish {
        let labels = AppAction { app: job.app.to_string(), action: job.action.name().to_owned() };
        ctx.ops.metrics.jobs_published.get_or_create(&labels).inc();
    }
    let planned: Vec<String> =
        gated.publish.iter().map(|j| format!("{} {}", j.app, j.action.name())).collect();
    let mut detail = format!("{} job(s): {}", gated.publish.len(), planned.join(", "));
    if gated.held > 0 {
        Span::current().record("scimfleet.held", gated.held);
        detail.push_str(&format!("; {} held for approval (`scimfleet approvals list`)", gated.held));
    }
    journey(ctx, event.id.as_str(), &step(event, "accepted", Some(detail), person, started)).await;
    tracing::debug!(
        event_id = %event.id, event_type = event.kind.as_str(), scimfleet.person = %person,
        jobs = gated.publish.len(), held = gated.held, duration_ms = started.elapsed().as_millis() as u64,
        "event {} fanned out to {} jobs", event.id, gated.publish.len()
    );
    Ok(Settled::Accepted)
}

/// A write refused by the planning fence: the lease passed to another
/// replica while this one held the event. Logged and journaled; the caller
/// requeues the event.
async fn fenced_out(ctx: &Context, event: &Event, person: &str, started: Instant, when: &str) -> Settled {
    tracing::warn!(
        event_id = %event.id, scimfleet.person = %person, sequence = event.data.sequence,
        "event {} fenced out {when}: another replica planned the person since; requeued", event.id
    );
    let detail = format!("planning lease lost {when}; planned again from the current registry");
    journey(ctx, event.id.as_str(), &step(event, "fenced_out", Some(detail), person, started)).await;
    Settled::FencedOut
}

async fn publish_jobs(ctx: &Context, jobs: &[Job], started: Instant) -> Result<(), PublishError> {
    let exchange = ctx.topology.jobs_exchange();
    // Milliseconds since the epoch the event was taken, for end-to-end latency.
    let received_at = Utc::now().timestamp_millis() - started.elapsed().as_millis() as i64;
    // The spans stay open until the confirms are in: their duration is the publish.
    let mut spans = Vec::with_capacity(jobs.len());
    let encoded: Vec<(String, Vec<u8>, lapin::BasicProperties)> = jobs
        .iter()
        .map(|job| {
            let routing_key = Topology::route(job);
            let span = telemetry::producer_span(&exchange, &routing_key);
            span.record("messaging.message.id", job.job_id.as_str());
            span.record("scimfleet.app", job.app.as_str());
            span.record("scimfleet.action", job.action.name());
            span.record("scimfleet.job_id", job.job_id.as_str());
            let mut headers = FieldTable::default();
            propagation::inject_amqp(&span, &mut headers);
            headers.insert(RECEIVED_AT_HEADER.into(), AMQPValue::LongLongInt(received_at));
            spans.push(span);
            // Serialising our own types cannot fail; an empty body would be dead-lettered by the worker.
            let body = serde_json::to_vec(job).unwrap_or_default();
            let properties = persistent("application/json")
                .with_message_id(job.job_id.as_str().into())
                .with_type(job.action.name().into())
                .with_headers(headers);
            (routing_key, body, properties)
        })
        .collect();
    // Collected before the await: a borrowing iterator adapter held across
    // it would make this future not `Send`.
    let messages: Vec<Outgoing<'_>> = encoded
        .iter()
        .map(|(routing_key, body, properties)| Outgoing {
            exchange: &exchange,
            routing_key,
            body,
            properties: properties.clone(),
            mandatory: true,
        })
        .collect();
    let published = ctx.publisher.publish_all(messages).await.map(drop);
    if published.is_err() {
        for span in &spans {
            span.record("otel.status_code", "error");
        }
    }
    published
}

/// Publishes a refused event to `{ns}.events.dlq` with its reason (confirmed;
/// the caller acks afterwards). `kind` is the short reason label, also used
/// as routing key; `detail` never holds attribute values.
async fn dead_letter(
    ctx: &Context,
    delivery: &Delivery,
    kind: &str,
    detail: &str,
    event_id: Option<String>,
) -> Result<Settled, Transient> {
    let now = Utc::now();
    let envelope = DeadLetter {
        reason: DeadLetterReason::InvalidEvent,
        detail: DeadLetter::truncate_detail(detail),
        stage: Stage::Scheduler,
        app: None,
        job_id: None,
        event_id,
        last_status: None,
        attempts: 1,
        first_attempt_at: now,
        last_attempt_at: now,
    };
    crate::audit::dead_letter(&ctx.audit, kind, envelope.event_id.as_deref()).await?;
    let dlx = ctx.topology.events_dlx();
    ctx.publisher.dead_letter(&dlx, kind, &delivery.data, &delivery.properties, &envelope).await?;
    ctx.ops.metrics.events_rejected.get_or_create(&ReasonLabel { reason: kind.to_owned() }).inc();
    if let Some(event_id) = &envelope.event_id {
        Span::current().record("scimfleet.event_id", event_id.as_str());
        let step = JourneyStep {
            at: now,
            stage: "scheduler".to_owned(),
            app: None,
            action: "event".to_owned(),
            job_id: None,
            attempt: None,
            outcome: "dead_lettered".to_owned(),
            detail: Some(format!("{kind}: {}", envelope.detail)),
            status: None,
            duration_ms: None,
            trace_id: propagation::trace_id(&Span::current()),
            person: None,
        };
        journey(ctx, event_id, &step).await;
    }
    tracing::warn!(
        reason = kind, event_id = envelope.event_id.as_deref().unwrap_or("-"), error = %envelope.detail,
        "event dead-lettered ({kind})"
    );
    Ok(Settled::DeadLettered)
}

/// The `id` of an event that failed validation, when it can still be read,
/// so an operator can find it; bounded and printable only.
fn loose_event_id(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = value.get("id")?.as_str()?;
    (id.len() <= 256 && id.chars().all(|c| c.is_ascii_graphic())).then(|| id.to_owned())
}
