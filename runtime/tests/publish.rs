//! Confirmed publishing against the real RabbitMQ: a message the broker
//! refuses (nack) is published again until it is taken, within the
//! publisher's patience, and is an error after it.
//!
//! A quorum queue with a length limit and `reject-publish` overflow nacks
//! what arrives while it is full, the same refusal a quorum queue gives
//! while it has no leader; each test has its own queue and deletes it.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties};
use scimfleet_runtime::broker::{Outgoing, PublishError, Publisher, persistent};

async fn connect() -> Connection {
    let url = std::env::var("SCIMFLEET_BROKER__URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    Connection::connect(&url, ConnectionProperties::default()).await.expect("RabbitMQ answers")
}

/// A quorum queue holding at most `limit` messages, refusing the rest.
async fn bounded_queue(channel: &Channel, test: &str, limit: i64) -> String {
    let name = format!("t-{}-{}-{test}", chrono::Utc::now().timestamp_millis(), std::process::id());
    let mut args = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(limit));
    args.insert("x-overflow".into(), text("reject-publish"));
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(name.as_str().into(), options, args).await.expect("declared");
    name
}

fn message<'a>(queue: &'a str, body: &'a [u8]) -> Outgoing<'a> {
    Outgoing { exchange: "", routing_key: queue, body, properties: persistent("text/plain"), mandatory: true }
}

/// Publishes with no patience until the broker refuses a message.
async fn fill(publisher: &Publisher, queue: &str) -> usize {
    let impatient = publisher.clone().with_patience(Duration::ZERO);
    for taken in 0..50 {
        match impatient.publish(message(queue, b"filler")).await {
            Ok(()) => {}
            Err(PublishError::Nacked { .. }) => return taken,
            Err(other) => panic!("expected a nack, got {other}"),
        }
    }
    panic!("the bounded queue took 50 messages and never refused one");
}

async fn delete(channel: &Channel, queue: &str) {
    channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.expect("deleted");
}

#[tokio::test]
async fn a_refused_message_is_published_again_until_the_queue_takes_it() {
    published_again(false).await;
}

#[tokio::test]
async fn a_renewable_publisher_publishes_refused_messages_again_on_fresh_channels() {
    published_again(true).await;
}

async fn published_again(renewable: bool) {
    let connection = Arc::new(connect().await);
    let channel = connection.create_channel().await.expect("channel");
    let queue = bounded_queue(&channel, if renewable { "renew" } else { "retry" }, 2).await;
    let publisher = if renewable {
        Publisher::open_renewable(connection.clone()).await
    } else {
        Publisher::open(&connection).await
    };
    let publisher = publisher.expect("publisher");
    let taken = fill(&publisher, &queue).await;
    assert!(taken >= 2, "the queue took its {taken} messages before refusing");

    // Room is made while the publisher is still trying.
    let purging = {
        let (channel, queue) = (channel.clone(), queue.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            channel.queue_purge(queue.as_str().into(), QueuePurgeOptions::default()).await.expect("purged")
        })
    };
    publisher.publish(message(&queue, b"kept")).await.expect("published again until taken");
    assert!(purging.await.expect("purge task") >= 2, "the purge emptied the full queue");

    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the refused message is in the queue");
    assert_eq!(got.delivery.data, b"kept");
    delete(&channel, &queue).await;
    publisher.close("done").await;
    let _closed = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_refusal_that_outlasts_the_patience_is_an_error_naming_the_exchange() {
    let connection = connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let queue = bounded_queue(&channel, "patience", 1).await;
    let publisher = Publisher::open(&connection).await.expect("publisher");
    fill(&publisher, &queue).await;

    let patient = publisher.with_patience(Duration::from_millis(400));
    match patient.publish(message(&queue, b"refused")).await {
        Err(PublishError::Nacked { exchange, patience }) => {
            assert_eq!(exchange, "", "the default exchange");
            assert_eq!(patience, Duration::from_millis(400));
        }
        other => panic!("expected a nack after the patience, got {other:?}"),
    }
    delete(&channel, &queue).await;
    let _closed = connection.close(200, "done".into()).await;
}
