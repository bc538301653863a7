//! The intake's link to RabbitMQ and the confirmed publish of a request's
//! events.
//!
//! One connection and one confirm-mode channel serve every request (lapin
//! pipelines concurrent publishes and matches each confirm to its
//! message). A background task keeps the link: it connects, declares the
//! topology (so a publish is never unroutable), and reconnects with capped
//! backoff when the connection or channel closes. While there is no link
//! the intake answers 503 with `Retry-After`: a request is only ever
//! answered 202 once every one of its events is confirmed (guarantee 1),
//! and the sender's retry is safe because events carry ids and sequences.
//!
//! Each event is published as `scimfleet publish` publishes it: to
//! `{ns}.events` with its `type` as routing key, persistent,
//! `application/cloudevents+json`, `message_id` = event id, `mandatory`
//! (an unroutable event is an error, not a drop), and trace context in the
//! AMQP headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use scimfleet_runtime::broker::events::CLOUDEVENTS_JSON;
use scimfleet_runtime::broker::{self, Outgoing, PublishError, Publisher, Topology, persistent};
use scimfleet_runtime::ops::ComponentHealth;
use scimfleet_runtime::telemetry::{self, error_chain, propagation};
use scimfleet_runtime::{Config, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::request::Incoming;

/// AMQP header naming the intake source an event came through.
pub const SOURCE_HEADER: &str = "scimfleet-intake-source";
/// How often the link checks that its connection is still open.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The current publisher, kept by a background task.
#[derive(Debug, Clone, Default)]
pub struct Link {
    publisher: Arc<Mutex<Option<Publisher>>>,
    broken: Arc<Notify>,
}

impl Link {
    /// The publisher, while connected.
    pub fn current(&self) -> Option<Publisher> {
        self.publisher.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, publisher: Option<Publisher>) {
        *self.publisher.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = publisher;
    }

    /// A publish failed on the channel: check the link now.
    pub fn report_broken(&self) {
        self.broken.notify_one();
    }

    /// Keeps the link until `stop`: connect, declare, serve, reconnect.
    pub async fn maintain(
        self,
        config: Arc<Config>,
        health: ComponentHealth,
        store: Store,
        stop: CancellationToken,
    ) {
        let topology = Topology::of(&config);
        let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
        let sources: Vec<&str> = config.sources.iter().filter(|s| s.is_served()).map(|s| s.id()).collect();
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            let connected = async {
                let connection = broker::connect(&config.broker, "scimfleet-intake").await?;
                let publisher = Publisher::open(&connection).await?;
                topology.ensure(publisher.channel(), &apps, config.broker.declare_topology).await?;
                if !sources.is_empty() {
                    // Kept deliveries go to these queues through the default exchange.
                    let declare = config.broker.declare_topology;
                    topology.ensure_sources(publisher.channel(), &sources, declare).await?;
                }
                Ok::<_, broker::BrokerError>((connection, publisher))
            };
            // Raced against a stop, as a stalled broker would hold it up.
            let connected = tokio::select! {
                () = stop.cancelled() => return,
                connected = connected => connected,
            };
            let (connection, publisher) = match connected {
                Ok(link) => link,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), retry_in_ms = backoff.as_millis(), "intake cannot reach RabbitMQ");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            self.set(Some(publisher.clone()));
            let _ready = health.ready_when(0, &connection, &store);
            tracing::info!(ready = true, "intake connected to RabbitMQ");
            let healthy = || connection.status().connected() && publisher.channel().status().connected();
            while healthy() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                    () = self.broken.notified() => {}
                }
            }
            self.set(None);
            health.unready();
            if stop.is_cancelled() {
                // The channel first: closing the connection under an open
                // channel makes lapin log an error for a clean stop.
                let _closed =
                    broker::within("a close", publisher.channel().close(200, "intake stopping".into())).await;
                let _closed =
                    broker::within("a close", connection.close(200, "intake stopping".into())).await;
                return;
            }
            tracing::warn!("intake lost its RabbitMQ link; reconnecting");
            let _closed = broker::within("a close", connection.close(200, "reconnecting".into())).await;
        }
    }
}

/// Trace headers of the HTTP request, used when no span context exists
/// (tracing without OpenTelemetry) so the sender's trace still carries on.
#[derive(Debug, Clone, Default)]
pub struct TraceHeaders {
    /// `traceparent`, when sent.
    pub traceparent: Option<String>,
    /// `tracestate`, when sent.
    pub tracestate: Option<String>,
}

/// Publishes every event and waits for every confirm, within `timeout`.
pub async fn publish(
    publisher: &Publisher,
    exchange: &str,
    events: &[Incoming],
    source: &str,
    trace: &TraceHeaders,
    timeout: Duration,
) -> Result<usize, PublishFailure> {
    let mut spans = Vec::with_capacity(events.len());
    let messages: Vec<Outgoing<'_>> = events
        .iter()
        .map(|incoming| {
            let routing_key = incoming.event.kind.as_str();
            let span = telemetry::producer_span(exchange, routing_key);
            span.record("scimfleet.event_id", incoming.event.id.as_str());
            let mut headers = FieldTable::default();
            propagation::inject_amqp(&span, &mut headers);
            if !headers.inner().contains_key(propagation::TRACEPARENT) {
                for (name, value) in [("traceparent", &trace.traceparent), ("tracestate", &trace.tracestate)]
                {
                    if let Some(value) = value {
                        headers.insert(name.into(), text(value));
                    }
                }
            }
            headers.insert(SOURCE_HEADER.into(), text(source));
            spans.push(span);
            let properties = persistent(CLOUDEVENTS_JSON)
                .with_message_id(incoming.event.id.as_str().into())
                .with_headers(headers);
            Outgoing { exchange, routing_key, body: &incoming.json, properties, mandatory: true }
        })
        .collect();
    let confirming = publisher.publish_all(messages).instrument(tracing::Span::current());
    match tokio::time::timeout(timeout, confirming).await {
        Ok(Ok(confirmed)) => Ok(confirmed),
        Ok(Err(error)) => Err(PublishFailure::Broker(error)),
        Err(_elapsed) => Err(PublishFailure::Timeout(timeout)),
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// A request's events were not all confirmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishFailure {
    /// No link to RabbitMQ right now.
    #[error("no connection to RabbitMQ")]
    Disconnected,
    /// The broker refused, or the channel failed.
    #[error(transparent)]
    Broker(#[from] PublishError),
    /// The confirms did not come in time.
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
}
