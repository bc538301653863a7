//! Intake: consume `{ns}.events.intake` through the shared consumer loop
//! (`runtime::broker::consume`, bounded by `scheduler.prefetch`) and settle
//! each event exactly once.
//!
//! Events about one person are serialised by a keyed lock inside `fanout`.
//! A panic in one event's handling is caught, and that event is requeued
//! (the queue's delivery limit dead-letters it if it keeps failing); every
//! other event carries on. Infrastructure errors requeue after a pause.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use scimfleet_runtime::broker;
use scimfleet_runtime::telemetry::error_chain;
use tokio_util::sync::CancellationToken;

use crate::SchedulerError;
use crate::fanout::{self, Context, Settled};
use crate::stats::SchedulerStats;

/// Pause before requeueing an event that hit an infrastructure error, so a
/// Redis or broker outage does not become a hot redelivery loop.
const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

pub(crate) async fn consume(
    ctx: Arc<Context>,
    channel: &lapin::Channel,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<(), SchedulerError> {
    let queue = ctx.topology.events_queue();
    let prefetch = ctx.config.scheduler.prefetch;
    broker::consume(channel, &queue, prefetch, grace, shutdown, |delivery| {
        SchedulerStats::add(&ctx.stats.received, 1);
        handle(ctx.clone(), delivery)
    })
    .await?;
    Ok(())
}

async fn handle(ctx: Arc<Context>, delivery: Delivery) {
    let outcome = AssertUnwindSafe(fanout::process(&ctx, &delivery)).catch_unwind().await;
    let acker = &delivery.acker;
    let stats = &ctx.stats;
    let (settled, counter) = match outcome {
        Ok(Ok(settled)) => {
            let counter = match settled {
                Settled::Accepted => &stats.accepted,
                Settled::Stale => &stats.stale,
                Settled::DeadLettered => &stats.dead_lettered,
            };
            (acker.ack(BasicAckOptions::default()).await, counter)
        }
        Ok(Err(error)) => {
            tracing::warn!(error = error_chain(&error), "event requeued");
            tokio::time::sleep(REQUEUE_PAUSE).await;
            (
                acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
                &stats.requeued,
            )
        }
        Err(_panic) => {
            tracing::error!(
                "event handling panicked; requeued (the delivery limit dead-letters repeat offenders)"
            );
            (
                acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
                &stats.requeued,
            )
        }
    };
    match settled {
        Ok(_) => SchedulerStats::add(counter, 1),
        Err(error) => {
            SchedulerStats::add(&stats.abandoned, 1);
            // The channel is gone: the broker redelivers the event, which is safe.
            tracing::warn!(%error, "could not settle an event; it will be redelivered");
        }
    }
}
