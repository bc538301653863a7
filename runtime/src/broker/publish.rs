//! Publishing with publisher confirms.
//!
//! A publish counts only once the broker confirmed it; a Nack or a returned
//! (unroutable, `mandatory`) message is an error, never a silent drop.
//! Batches are pipelined: every message is written first, then the confirms
//! are awaited together, so a fan-out of N jobs costs one round trip, not N.
//!
//! A Nack is first taken for what RabbitMQ documents it as, a refusal the
//! publisher should retry: a quorum queue refuses messages while it elects a
//! new leader after a node loss. The refused messages (only those) are
//! published again with backoff for up to [`NACK_PATIENCE`]; what consumes
//! the message being published keeps its own delivery unacked meanwhile, so
//! a failover does not count against that delivery's redelivery limit
//! (see [`Publisher`] for why the retry takes a fresh channel). A
//! message RabbitMQ nacked may still have been enqueued, so the retry may
//! duplicate it: every consumer here is idempotent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::BrokerError;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// How long nacked messages are published again before the Nack is an
/// error: longer than a quorum queue's leader election after a node loss.
pub const NACK_PATIENCE: Duration = Duration::from_secs(30);
/// The first pause before publishing nacked messages again; it doubles up
/// to [`MAX_NACK_PAUSE`].
const FIRST_NACK_PAUSE: Duration = Duration::from_millis(100);
const MAX_NACK_PAUSE: Duration = Duration::from_secs(2);

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Target exchange.
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// Body.
    pub body: &'a [u8],
    /// Properties (use [`persistent`] as a base).
    pub properties: BasicProperties,
    /// Return the message as an error when no queue is bound for it.
    pub mandatory: bool,
}

/// Properties of a durable message with `content_type`.
pub fn persistent(content_type: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(content_type.into())
        .with_timestamp(chrono::Utc::now().timestamp().max(0).cast_unsigned())
}

/// A publish was not confirmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The channel failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The broker refused the message, every time it was published again
    /// for the publisher's patience.
    #[error("RabbitMQ refused (nack) a message to {exchange} for {patience:?}")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// How long it was published again.
        patience: Duration,
    },
    /// No queue was bound for the routing key.
    #[error("no queue is bound on {exchange} for routing key {routing_key}")]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
}

/// A channel in confirm mode.
///
/// A publisher opened with [`Publisher::open_renewable`] publishes refused
/// messages again on a fresh channel. RabbitMQ 3.10 needs that: a channel
/// whose first publish to a quorum queue comes while the queue's record
/// still names a leader on a lost node keeps refusing every message to that
/// queue (the queue client asks the lost node for its version, gets
/// `nodedown` and keeps no state), while a new channel reads the record
/// again and reaches the new leader.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The channel opened first: topology calls and closing use it.
    channel: Channel,
    /// Where fresh channels come from, for a renewable publisher.
    connection: Option<Arc<Connection>>,
    /// The channel that replaced `channel` for publishing after a refusal,
    /// shared by every clone.
    renewed: Arc<Mutex<Option<Channel>>>,
    patience: Duration,
}

impl Publisher {
    /// Opens a confirm-mode channel on `connection`; refused messages are
    /// published again on the same channel (one-shot commands, the intake, tests).
    pub async fn open(connection: &Connection) -> Result<Self, BrokerError> {
        let channel = confirm_channel(connection).await?;
        Ok(Self { channel, connection: None, renewed: Arc::default(), patience: NACK_PATIENCE })
    }

    /// Opens a confirm-mode channel on `connection` that is replaced by a
    /// fresh one when the broker refuses messages (long-running roles).
    pub async fn open_renewable(connection: Arc<Connection>) -> Result<Self, BrokerError> {
        let channel = confirm_channel(&connection).await?;
        let renewed = Arc::default();
        Ok(Self { channel, connection: Some(connection), renewed, patience: NACK_PATIENCE })
    }

    /// The same channel, publishing nacked messages again for `patience`
    /// instead of [`NACK_PATIENCE`] (zero: a Nack is an error at once).
    #[must_use]
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The channel opened first (topology calls, closing).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Closes the publishing channels (before their connection: a channel
    /// left open makes lapin log an error when the connection closes).
    pub async fn close(&self, reason: &str) {
        let renewed = self.renewed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(channel) = renewed {
            let _closed = super::within("a close", channel.close(200, reason.into())).await;
        }
        let _closed = super::within("a close", self.channel.close(200, reason.into())).await;
    }

    /// The channel publishes go to.
    fn current(&self) -> Channel {
        let renewed = self.renewed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        renewed.as_ref().unwrap_or(&self.channel).clone()
    }

    /// Replaces the publishing channel with a fresh one, when renewable.
    /// The replaced channel closes once the publishes still waiting on it
    /// have their confirms (lapin closes a channel when its last handle goes).
    async fn renew(&self) {
        let Some(connection) = &self.connection else { return };
        match confirm_channel(connection).await {
            Ok(fresh) => {
                *self.renewed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh);
            }
            Err(error) => {
                tracing::warn!(%error, "could not open a fresh publisher channel; keeping the current one")
            }
        }
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        self.publish_all(std::iter::once(message)).await.map(drop)
    }

    /// Publishes every message, then waits for all confirms; messages the
    /// broker nacked are published again (see the module). Returns how many
    /// were confirmed; the first failure is returned as the error.
    pub async fn publish_all<'a>(
        &self,
        messages: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> Result<usize, PublishError> {
        let mut waiting: Vec<Outgoing<'a>> = messages.into_iter().collect();
        let count = waiting.len();
        let started = Instant::now();
        let mut pause = FIRST_NACK_PAUSE;
        loop {
            let nacked = self.send(&waiting).await?;
            let Some(first) = nacked.first() else { return Ok(count) };
            if started.elapsed() + pause > self.patience {
                let exchange = waiting[*first].exchange.to_owned();
                return Err(PublishError::Nacked { exchange, patience: self.patience });
            }
            tracing::warn!(
                refused = nacked.len(),
                exchange = waiting[*first].exchange,
                "RabbitMQ refused {} message(s) (a queue without a leader?); publishing them again in {pause:?}",
                nacked.len()
            );
            tokio::time::sleep(pause).await;
            self.renew().await;
            pause = (pause * 2).min(MAX_NACK_PAUSE);
            waiting = nacked.into_iter().map(|i| waiting[i].clone()).collect();
        }
    }

    /// Publishes `messages` once and waits for every confirm. Returns the
    /// positions of the nacked ones, or the first other failure.
    async fn send(&self, messages: &[Outgoing<'_>]) -> Result<Vec<usize>, PublishError> {
        let channel = self.current();
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let options =
                BasicPublishOptions { mandatory: message.mandatory, ..BasicPublishOptions::default() };
            let confirm = channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.body,
                    message.properties.clone(),
                )
                .await
                .map_err(BrokerError::channel(format!("publish to {}", message.exchange)))?;
            pending.push(confirm);
        }
        let mut nacked = Vec::new();
        let mut first_error = None;
        for (position, (message, confirm)) in messages.iter().zip(pending).enumerate() {
            let (exchange, routing_key) = (message.exchange, message.routing_key);
            let outcome = match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
                Ok(Confirmation::Ack(Some(_))) => Err(PublishError::Unroutable {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                }),
                Ok(Confirmation::Nack(_)) => {
                    nacked.push(position);
                    Ok(())
                }
                Err(e) => Err(BrokerError::channel(format!("confirm on {exchange}"))(e).into()),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        // Every confirm is awaited before an error returns, so none is left
        // pending on the channel; an unroutable message is not worth a retry.
        match first_error {
            Some(e) => Err(e),
            None => Ok(nacked),
        }
    }
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    let channel =
        connection.create_channel().await.map_err(BrokerError::channel("open publisher channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(BrokerError::channel("enable publisher confirms"))?;
    Ok(channel)
}

impl Publisher {
    /// Publishes a refused message to a dead-letter exchange: the original
    /// body and properties, plus the envelope headers, confirmed. The caller
    /// acks the original only after this returns `Ok`.
    pub async fn dead_letter(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: &BasicProperties,
        envelope: &scimfleet_schemas::DeadLetter,
    ) -> Result<(), PublishError> {
        let properties = super::dead_letter_headers(properties, envelope).with_delivery_mode(PERSISTENT);
        self.publish(Outgoing { exchange, routing_key, body, properties, mandatory: true }).await
    }
}
