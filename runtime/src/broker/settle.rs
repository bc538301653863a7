//! Telling the broker how a delivery ended: the one ack / requeue step that
//! every consumer (scheduler intake, worker lanes) finishes a delivery with.
//!
//! A handler decides *what* happened (its effect is durable, or an
//! infrastructure error stopped it) and makes the effect durable first;
//! this step only tells RabbitMQ, so each delivery is settled exactly once,
//! after its effect. A requeue after an infrastructure error waits
//! [`REQUEUE_PAUSE`] first, so a Redis or broker outage does not turn into a
//! hot redelivery loop.
//!
//! Settling itself can fail when the channel is gone; the broker then
//! redelivers the message to the next consumer, which is safe because every
//! handler is idempotent. Such a delivery is counted as abandoned instead
//! of under its outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicNackOptions};

/// Pause before requeueing after an infrastructure error (Redis, broker), so
/// an outage does not turn into a hot redelivery loop.
pub const REQUEUE_PAUSE: Duration = Duration::from_millis(500);

/// What to tell the broker about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The delivery's effect is durable: remove it from the queue.
    Ack,
    /// An infrastructure error stopped it: hand it back after [`REQUEUE_PAUSE`].
    Requeue,
    /// Hand it back at once (a handler that panicked: the queue's delivery
    /// limit, not a pause, bounds the repeats).
    RequeueNow,
}

/// Settles one delivery as `verdict` says, then counts it: under `counter`
/// when the broker took the settlement, under `abandoned` when it could not
/// (the channel is gone and the broker will redeliver). The error is
/// returned for the caller to log with its own fields.
pub async fn settle(
    acker: &Acker,
    verdict: Verdict,
    counter: &AtomicU64,
    abandoned: &AtomicU64,
) -> Result<(), lapin::Error> {
    let requeue = BasicNackOptions { requeue: true, ..BasicNackOptions::default() };
    let settled = match verdict {
        Verdict::Ack => acker.ack(BasicAckOptions::default()).await,
        Verdict::Requeue => {
            tokio::time::sleep(REQUEUE_PAUSE).await;
            acker.nack(requeue).await
        }
        Verdict::RequeueNow => acker.nack(requeue).await,
    };
    let (counted, result) = match settled {
        Ok(_) => (counter, Ok(())),
        Err(error) => (abandoned, Err(error)),
    };
    counted.fetch_add(1, Ordering::AcqRel);
    result
}
