//! Limit (b): RabbitMQ alone. The same number of messages the fleet moved
//! (events plus jobs) and of the events' average size are published with
//! publisher confirms to a throwaway queue, and consumed and acked one by
//! one, publisher and consumer running at once on connections of their own,
//! as the fleet's processes do. The queue is declared like the fleet's
//! (durable quorum queue, persistent messages), so the broker does the same
//! disk work per message; it is deleted afterwards, and expires on its own
//! if the run dies first.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation, Connection};
use scimfleet_runtime::config::BrokerConfig;
use serde_json::{Value, json};

use crate::measure::round;

/// Messages per pipelined publish batch (as the fleet's publishes).
const BATCH: usize = 250;
/// The throwaway queue disappears this long after the run stopped using it
/// (<https://www.rabbitmq.com/docs/ttl#queue-ttl>).
const QUEUE_EXPIRES: Duration = Duration::from_secs(15 * 60);
/// Gives up when the consumer has not finished this long after the last confirm.
const DRAIN_WITHIN: Duration = Duration::from_secs(600);

/// The broker limit.
#[derive(Debug)]
pub struct BrokerLimit {
    /// Messages published, consumed and acked.
    pub messages: usize,
    /// Body size, bytes.
    pub bytes: usize,
    /// Consumer prefetch.
    pub prefetch: u16,
    /// Seconds from the first publish to the last ack.
    pub seconds: f64,
    /// Seconds the publishing (with confirms) took.
    pub publish_seconds: f64,
}

impl BrokerLimit {
    /// Messages per second through the broker (published, consumed, acked).
    pub fn messages_per_s(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "messages": self.messages, "message_bytes": self.bytes, "prefetch": self.prefetch,
            "queue": "quorum, durable, persistent messages",
            "seconds": round(self.seconds * 1000.0) / 1000.0,
            "publish_seconds": round(self.publish_seconds * 1000.0) / 1000.0,
            "messages_per_s": round(self.messages_per_s()),
        })
    }
}

/// The broker the fleet of this run uses: the built-in default unless
/// `SCIMFLEET_BROKER__*` variables say otherwise (URL, TLS files).
pub fn config() -> anyhow::Result<BrokerConfig> {
    let env = std::env::vars().filter(|(k, _)| k.starts_with("SCIMFLEET_BROKER__"));
    let config =
        scimfleet_runtime::Config::from_toml(scimfleet_devkit::policy::STANDARD, "bench", ".".into(), env)?;
    Ok(config.broker)
}

/// Runs the loop against the broker of `broker` (TLS included, as the fleet connects).
pub async fn run(
    broker: &BrokerConfig,
    messages: usize,
    bytes: usize,
    prefetch: u16,
) -> anyhow::Result<BrokerLimit> {
    let queue = format!("bench-limit-{}-{}", chrono::Utc::now().timestamp(), std::process::id());
    let publisher = scimfleet_runtime::broker::connect(broker, "scimfleet-bench-limit").await?;
    let consumer = scimfleet_runtime::broker::connect(broker, "scimfleet-bench-limit").await?;
    let channel = publisher.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(LongString::from(b"quorum".to_vec())));
    let expires = i64::try_from(QUEUE_EXPIRES.as_millis()).unwrap_or(i64::MAX);
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(expires));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.as_str().into(), durable, arguments).await?;
    let result = measure(&publisher, &consumer, &queue, messages, bytes, prefetch).await;
    // Deleted whatever happened; a failure here only leaves a queue that expires.
    let _deleted = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    let _closed = publisher.close(200, "bench done".into()).await;
    let _closed = consumer.close(200, "bench done".into()).await;
    result
}

async fn measure(
    publisher: &Connection,
    consumer: &Connection,
    queue: &str,
    messages: usize,
    bytes: usize,
    prefetch: u16,
) -> anyhow::Result<BrokerLimit> {
    let receiving = consumer.create_channel().await?;
    receiving.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut deliveries = receiving
        .basic_consume(queue.into(), "bench".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let consuming = tokio::spawn(async move {
        let mut acked = 0;
        while acked < messages {
            let Some(delivery) = deliveries.next().await else { anyhow::bail!("the consumer was closed") };
            delivery?.acker.ack(BasicAckOptions::default()).await?;
            acked += 1;
        }
        Ok(Instant::now())
    });

    let sending = publisher.create_channel().await?;
    sending.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; bytes];
    let properties =
        BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let started = Instant::now();
    let mut left = messages;
    while left > 0 {
        let batch = left.min(BATCH);
        let mut confirms = Vec::with_capacity(batch);
        for _ in 0..batch {
            confirms.push(
                sending.basic_publish("".into(), queue.into(), options, &body, properties.clone()).await?,
            );
        }
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                other => anyhow::bail!("RabbitMQ did not accept a message: {other:?}"),
            }
        }
        left -= batch;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let done = tokio::time::timeout(DRAIN_WITHIN, consuming).await??;
    let finished = done?;
    let _closed = receiving.close(200, "bench done".into()).await;
    let seconds = finished.duration_since(started).as_secs_f64();
    Ok(BrokerLimit { messages, bytes, prefetch, seconds, publish_seconds })
}
