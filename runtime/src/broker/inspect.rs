//! Which queues an app has, and how deep a queue is: the one answer that
//! status reports, the dead-letter commands, the depth sampler, the test
//! harness and the benchmarks all read.
//!
//! Depth comes from a passive `queue.declare`, which answers with the ready
//! message count and the consumer count without changing the queue
//! (<https://www.rabbitmq.com/docs/queues#declaration>), over AMQP, so no
//! management plugin is needed. A passive declare of a missing queue closes
//! the channel (404 NOT_FOUND), so callers give it a channel they can lose.

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use scimfleet_schemas::AppId;

use super::{BrokerError, Topology};

/// Every queue of one app, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppQueues {
    /// `{ns}.jobs.{app}`: upserts and everything but leavers.
    pub work: String,
    /// `{ns}.jobs.{app}.leavers`: deprovisions and re-checks, served first.
    pub leavers: String,
    /// `{ns}.jobs.{app}.dlq`.
    pub dlq: String,
    /// The retry delay queues, shortest tier first.
    pub retries: Vec<String>,
    /// The re-check delay queues, shortest delay first.
    pub rechecks: Vec<String>,
}

impl AppQueues {
    /// The queues that hold jobs waiting to run now: the work queue and the leaver lane.
    pub fn lanes(&self) -> [&str; 2] {
        [&self.work, &self.leavers]
    }

    /// Every queue of the app.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        [&self.work, &self.leavers, &self.dlq].into_iter().chain(&self.retries).chain(&self.rechecks)
    }
}

impl Topology {
    /// The queues of `app`, named once here for every reader.
    pub fn queues(&self, app: &AppId) -> AppQueues {
        AppQueues {
            work: self.job_queue(app),
            leavers: self.leaver_queue(app),
            dlq: self.app_dlq(app),
            retries: self.retry_tiers_ms().iter().map(|&tier| self.retry_queue(app, tier)).collect(),
            rechecks: self
                .recheck_delays_ms(app)
                .iter()
                .map(|&delay| self.recheck_queue(app, delay))
                .collect(),
        }
    }
}

/// What a passive declare tells of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Messages ready for delivery (not counting unacknowledged ones).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

impl std::ops::Add for Depth {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            messages: self.messages.saturating_add(other.messages),
            consumers: self.consumers.saturating_add(other.consumers),
        }
    }
}

/// The depth of `queue`. An error when it does not exist, which also
/// closes `channel`.
pub async fn depth(channel: &Channel, queue: &str) -> Result<Depth, BrokerError> {
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map_err(BrokerError::channel(format!("inspect {queue}")))?;
    Ok(Depth { messages: declared.message_count(), consumers: declared.consumer_count() })
}

/// The summed depth of `queues` (the delay tiers of one app, say).
pub async fn total_depth<S: AsRef<str>>(channel: &Channel, queues: &[S]) -> Result<Depth, BrokerError> {
    let mut total = Depth::default();
    for queue in queues {
        total = total + depth(channel, queue.as_ref()).await?;
    }
    Ok(total)
}
