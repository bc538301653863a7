//! A person's planning lease, as the fan-out holds it: taken with a short
//! bounded wait, renewed while the event is in hand, released after; and the
//! way an event goes back to the queue when the lease is elsewhere or was
//! lost (see the module doc of `fanout` for why this is safe).
//!
//! Going back to the queue is a republish to the intake queue (through the
//! default exchange, so only the intake queue sees it; confirmed) followed
//! by an ack, not a `nack` with requeue: a quorum queue counts every
//! requeue towards its delivery limit, and an event that merely met a busy
//! person must never be dead-lettered as a poison message. Dying between
//! the republish and the ack leaves the event twice in the queue, which is
//! harmless: the second copy is "not newer" and dropped.

use std::future::Future;
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use scimfleet_runtime::broker::{Outgoing, PublishError};
use scimfleet_runtime::store::{Lease, LeaseScope, StoreError};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::PersonId;

use crate::fanout::Context;

/// How long an event waits in process for a person's lease held by another
/// replica before it goes back to the queue. Holders keep it for one plan
/// (milliseconds); a longer hold means a stalled or dead holder, whose lease
/// frees only after the TTL: the consumer slot is not blocked that long.
const LEASE_WAIT: Duration = Duration::from_secs(1);

/// Between two tries of a held lease.
const LEASE_POLL: Duration = Duration::from_millis(15);

/// The configured planning lease TTL.
pub(crate) fn ttl(ctx: &Context) -> Duration {
    Duration::from_millis(ctx.config.scheduler.lease_ttl_ms)
}

/// Takes the planning lease of `person`, waiting at most [`LEASE_WAIT`];
/// `None` when another replica still holds it.
pub(crate) async fn take(ctx: &Context, person: &PersonId) -> Result<Option<Lease>, StoreError> {
    let deadline = Instant::now() + LEASE_WAIT.min(ttl(ctx));
    loop {
        if let Some(lease) = ctx.store.leases().try_take(LeaseScope::Plan { person }, ttl(ctx)).await? {
            return Ok(Some(lease));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// Runs `work` while renewing `lease` every third of its TTL. A lost lease
/// is only logged: the fenced record refuses whatever the work then writes.
pub(crate) async fn renewing<T>(ctx: &Context, lease: &Lease, work: impl Future<Output = T>) -> T {
    let ttl = ttl(ctx);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ttl / 3, ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => match ctx.store.leases().renew(lease, ttl).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!("planning lease lost mid-event; its record will be refused"),
                Err(error) => tracing::warn!(error = error_chain(&error), "planning lease not renewed"),
            },
        }
    }
}

/// Releases `lease`; a failure only leaves it to expire.
pub(crate) async fn release(ctx: &Context, lease: Lease) {
    if let Err(error) = ctx.store.leases().release(lease).await {
        tracing::warn!(error = error_chain(&error), "planning lease not released; it expires by itself");
    }
}

/// Puts the event back at the tail of the intake queue, body and properties
/// unchanged (confirmed); the caller then acks the delivery.
pub(crate) async fn requeue_behind(ctx: &Context, delivery: &Delivery) -> Result<(), PublishError> {
    to_intake(ctx, &delivery.data, delivery.properties.clone()).await
}

/// Publishes `body` to the tail of the intake queue through the default
/// exchange (confirmed): how the scheduler hands an event back to itself.
pub(crate) async fn to_intake(
    ctx: &Context,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> Result<(), PublishError> {
    let queue = ctx.topology.events_queue();
    let message = Outgoing { exchange: "", routing_key: &queue, body, properties, mandatory: true };
    ctx.publisher.publish(message).await
}
