//! Publishing with publisher confirms.
//!
//! A publish counts only once the broker confirmed it; a Nack or a returned
//! (unroutable, `mandatory`) message is an error, never a silent drop.
//! Batches are pipelined: every message is written first, then the confirms
//! are awaited together, so a fan-out of N jobs costs one round trip, not N.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::BrokerError;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

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
    /// The broker refused the message.
    #[error("RabbitMQ refused (nack) a message to {exchange}")]
    Nacked {
        /// Target exchange.
        exchange: String,
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
#[derive(Debug, Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Opens a confirm-mode channel on `connection`.
    pub async fn open(connection: &Connection) -> Result<Self, BrokerError> {
        let channel =
            connection.create_channel().await.map_err(BrokerError::channel("open publisher channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BrokerError::channel("enable publisher confirms"))?;
        Ok(Self { channel })
    }

    /// The underlying channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), PublishError> {
        self.publish_all(std::iter::once(message)).await.map(drop)
    }

    /// Publishes every message, then waits for all confirms. Returns how many
    /// were confirmed; the first failure is returned as the error.
    pub async fn publish_all<'a>(
        &self,
        messages: impl IntoIterator<Item = Outgoing<'a>>,
    ) -> Result<usize, PublishError> {
        let mut pending = Vec::new();
        for message in messages {
            let options =
                BasicPublishOptions { mandatory: message.mandatory, ..BasicPublishOptions::default() };
            let confirm = self
                .channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    options,
                    message.body,
                    message.properties,
                )
                .await
                .map_err(BrokerError::channel(format!("publish to {}", message.exchange)))?;
            pending.push((message.exchange, message.routing_key, confirm));
        }
        let count = pending.len();
        let mut first_error = None;
        for (exchange, routing_key, confirm) in pending {
            let outcome = match confirm.await {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
                Ok(Confirmation::Ack(Some(_))) => Err(PublishError::Unroutable {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                }),
                Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked { exchange: exchange.to_owned() }),
                Err(e) => Err(BrokerError::channel(format!("confirm on {exchange}"))(e).into()),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }
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
