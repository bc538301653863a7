//! The intake loop: consume events, handle each in its own task, settle each
//! delivery exactly once.
//!
//! Concurrency is bounded by the AMQP prefetch: the broker never hands over
//! more unacked events than `scheduler.prefetch`, so the task set cannot grow
//! past it. Events about one person are serialised by a keyed lock inside
//! `fanout`. A panic in one event's handling is caught, and that event is
//! requeued (the queue's delivery limit dead-letters it if it keeps failing);
//! the loop and every other event carry on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
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
    channel
        .basic_qos(ctx.config.scheduler.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| SchedulerError::Consume { queue: queue.clone(), source: e })?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| SchedulerError::Consume { queue: queue.clone(), source: e })?;
    tracing::info!(messaging.destination.name = %queue, "scheduler consuming {queue}");
    let mut tasks = JoinSet::new();
    let result = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "event task ended abnormally");
                }
            }
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    SchedulerStats::add(&ctx.stats.received, 1);
                    tasks.spawn(handle(ctx.clone(), delivery));
                }
                Some(Err(source)) => break Err(SchedulerError::Consume { queue: queue.clone(), source }),
                None => break Err(SchedulerError::ConsumerClosed { queue: queue.clone() }),
            },
        }
    };
    // Stop deliveries, let in-flight work settle on this channel, then close
    // it (the broker requeues whatever prefetched delivery was never handed over).
    let _cancelled = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
    drain(tasks, grace).await;
    let _closed = channel.close(200, "consumer stopped".into()).await;
    result
}

/// Lets in-flight events finish within `grace`; what does not finish stays
/// unacked and is redelivered to the next scheduler.
async fn drain(mut tasks: JoinSet<()>, grace: Duration) {
    let in_flight = tasks.len();
    if in_flight == 0 {
        return;
    }
    tracing::info!(in_flight, "draining in-flight events");
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = tasks.len(), "grace period over; unfinished events will be redelivered");
        tasks.abort_all();
    }
}

async fn handle(ctx: Arc<Context>, delivery: Delivery) {
    let outcome = AssertUnwindSafe(fanout::process(&ctx, &delivery)).catch_unwind().await;
    let acker = &delivery.acker;
    let settled = match outcome {
        Ok(Ok(settled)) => {
            let counter = match settled {
                Settled::Accepted => &ctx.stats.accepted,
                Settled::Stale => &ctx.stats.stale,
                Settled::DeadLettered => &ctx.stats.dead_lettered,
            };
            let acked = acker.ack(BasicAckOptions::default()).await;
            if acked.is_ok() {
                SchedulerStats::add(counter, 1);
            }
            acked
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "event requeued");
            tokio::time::sleep(REQUEUE_PAUSE).await;
            acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await
        }
        Err(_panic) => {
            tracing::error!(
                "event handling panicked; requeued (the delivery limit dead-letters repeat offenders)"
            );
            acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await
        }
    };
    if let Err(error) = settled {
        // The channel is gone: the broker redelivers the event, which is safe.
        tracing::warn!(%error, "could not settle an event; it will be redelivered");
    }
}
