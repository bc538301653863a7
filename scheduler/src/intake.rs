//! Intake: consume `{ns}.events.intake` through the shared consumer loop
//! (`runtime::broker::consume`, bounded by `scheduler.prefetch`) and settle
//! each event exactly once.
//!
//! Each delivery is handled in a consumer span (`process {queue}`) that
//! continues the publisher's trace from the message's `traceparent`, and is
//! counted once in the metrics, where it is settled.
//!
//! Events about one person are serialised by a keyed lock inside `fanout`,
//! and across replicas by the person's planning lease; an event that meets
//! the lease elsewhere is republished to the queue before it is acked
//! (deferred, fenced out), so it is not settled yet.
//! A panic in one event's handling is caught, and that event is requeued
//! (the queue's delivery limit dead-letters it if it keeps failing); every
//! other event carries on. Infrastructure errors requeue after a pause
//! (`runtime::broker::settle`, the same step the worker settles jobs with).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use lapin::message::Delivery;
use scimfleet_runtime::broker::{self, Verdict};
use scimfleet_runtime::metrics::OutcomeLabel;
use scimfleet_runtime::ops::ReadyLatch;
use scimfleet_runtime::telemetry::{self, error_chain};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::SchedulerError;
use crate::fanout::{self, Context, Settled};
use crate::stats::SchedulerStats;

pub(crate) async fn consume(
    ctx: Arc<Context>,
    channel: &lapin::Channel,
    shutdown: CancellationToken,
    grace: Duration,
    ready: ReadyLatch,
) -> Result<(), SchedulerError> {
    let queue = ctx.topology.events_queue();
    let prefetch = ctx.config.scheduler.prefetch;
    broker::consume(
        channel,
        &queue,
        prefetch,
        grace,
        shutdown,
        || ready.arrive(),
        |delivery| {
            SchedulerStats::add(&ctx.stats.received, 1);
            ctx.ops.metrics.events_received.inc();
            handle(ctx.clone(), delivery)
        },
    )
    .await?;
    Ok(())
}

async fn handle(ctx: Arc<Context>, delivery: Delivery) {
    let started = Instant::now();
    let span = consumer_span(&ctx.queue, &delivery);
    let outcome = AssertUnwindSafe(fanout::process(&ctx, &delivery, started))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let stats = &ctx.stats;
    let (verdict, counter) = match outcome {
        Ok(Ok(settled)) => {
            let counter = match settled {
                Settled::Accepted => &stats.accepted,
                Settled::Stale => &stats.stale,
                Settled::DeadLettered => &stats.dead_lettered,
                Settled::Scheduled => &stats.scheduled,
                // Republished to the queue before this ack: not settled yet.
                Settled::Deferred | Settled::FencedOut => &stats.requeued,
            };
            count(&ctx, &span, settled.as_str(), started);
            (Verdict::Ack, counter)
        }
        Ok(Err(error)) => {
            count(&ctx, &span, "requeued", started);
            tracing::warn!(parent: &span, error = error_chain(&error), "event requeued");
            (Verdict::Requeue, &stats.requeued)
        }
        Err(_panic) => {
            count(&ctx, &span, "requeued", started);
            tracing::error!(
                parent: &span,
                "event handling panicked; requeued (the delivery limit dead-letters repeat offenders)"
            );
            (Verdict::RequeueNow, &stats.requeued)
        }
    };
    if let Err(error) = broker::settle(&delivery.acker, verdict, counter, &stats.abandoned).await {
        // The channel is gone: the broker redelivers the event, which is safe.
        tracing::warn!(%error, "could not settle an event; it will be redelivered");
    }
}

/// The consumer span of one delivery, continuing the publisher's trace.
fn consumer_span(queue: &str, delivery: &Delivery) -> tracing::Span {
    // The publisher's key: only an event type is recorded as it is.
    let routing_key = broker::events::routing_key_field(delivery.routing_key.as_str());
    telemetry::consumer_span(queue, delivery, routing_key)
}

/// Counts a settled event: the one place its outcome reaches metrics and span.
fn count(ctx: &Context, span: &tracing::Span, outcome: &str, started: Instant) {
    span.record("scimfleet.outcome", outcome);
    let metrics = &ctx.ops.metrics;
    metrics.events.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    metrics.event_duration.observe(started.elapsed().as_secs_f64());
}
