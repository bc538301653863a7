//! The one consumer loop every process uses.
//!
//! One `tokio::select!` over the shutdown token, the set of running
//! handlers and the delivery stream. Concurrency is bounded by the AMQP
//! prefetch: the broker never hands over more unacked deliveries than
//! `prefetch`, so the handler set cannot grow past it. Each delivery runs in
//! its own task, so one slow or panicking handler never stops the loop; the
//! handler owns the delivery and must settle it exactly once (see [`settle`]).
//!
//! On shutdown the consumer is cancelled first (no new deliveries), in-flight
//! handlers get `grace` to settle on the still-open channel, and what does not
//! finish stays unacked and is redelivered by the broker to the next consumer.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Consuming stopped because of the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// A channel operation failed.
    #[error("consuming {queue} failed")]
    Channel {
        /// The queue.
        queue: String,
        /// The client error.
        #[source]
        source: lapin::Error,
    },
    /// The broker ended the consumer (queue deleted, channel closed).
    #[error("the broker closed the consumer of {queue}")]
    Closed {
        /// The queue.
        queue: String,
    },
    /// The broker did not accept the consumer in time.
    #[error("RabbitMQ did not start a consumer of {queue} within {} s", START_TIMEOUT.as_secs())]
    StartTimeout {
        /// The queue.
        queue: String,
    },
}

/// How long the broker may take to accept a consumer. Right after a broker
/// restart a quorum queue can exist before its replica runs, and a consume
/// then hangs for a minute before failing; giving up sooner lets the
/// supervisor reconnect and try again.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Consumes `queue` on `channel`, running `handle` for each delivery, until
/// `shutdown` is cancelled (`Ok`) or the broker fails (`Err`). `consuming`
/// runs once the broker accepted the consumer (readiness).
pub async fn consume<F, Fut>(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
    grace: Duration,
    shutdown: CancellationToken,
    consuming: impl FnOnce(),
    mut handle: F,
) -> Result<(), ConsumeError>
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let failed = |source| ConsumeError::Channel { queue: queue.to_owned(), source };
    let start = async {
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(failed)?;
        let options = BasicConsumeOptions::default();
        channel.basic_consume(queue.into(), "".into(), options, FieldTable::default()).await.map_err(failed)
    };
    // A stop asked for while the broker has not accepted the consumer yet
    // ends the wait: nothing was delivered, so nothing is in flight, and a
    // stop must not sit out the start timeout and then fail on it.
    let mut consumer = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        started = tokio::time::timeout(START_TIMEOUT, start) => {
            started.map_err(|_| ConsumeError::StartTimeout { queue: queue.to_owned() })??
        }
    };
    tracing::info!(messaging.system = "rabbitmq", messaging.destination.name = %queue, "consuming {queue}");
    consuming();
    let mut tasks = JoinSet::new();
    let result = loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(messaging.destination.name = %queue, %error, "a delivery handler ended abnormally");
                }
            }
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    tasks.spawn(handle(delivery));
                }
                Some(Err(source)) => break Err(failed(source)),
                None => break Err(ConsumeError::Closed { queue: queue.to_owned() }),
            },
        }
    };
    let _cancelled = super::within(
        "a consumer cancel",
        channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await;
    drain(queue, tasks, grace).await;
    result
}

async fn drain(queue: &str, mut tasks: JoinSet<()>, grace: Duration) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(messaging.destination.name = %queue, in_flight = tasks.len(), "draining in-flight deliveries");
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(
            messaging.destination.name = %queue, left = tasks.len(),
            "grace period over; unfinished deliveries will be redelivered"
        );
        tasks.abort_all();
    }
}
