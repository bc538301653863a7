//! Dead-letter queue operations for operators: list, show, replay, purge.
//!
//! Messages are read through a consumer (see [`peek`]) and held
//! unacknowledged on a channel of their own, so reading never loses
//! anything: what is not replayed or purged goes back to the queue when that
//! channel closes. (A dead-letter queue has
//! no delivery limit, so reading it any number of times is harmless.)
//!
//! Replay republishes a job with its job id and a fresh attempt budget, with
//! confirms, and only then acks the dead letter; the worker's convergent
//! apply makes a replayed job that already took effect a no-op, so replaying
//! twice changes nothing. A replayed event goes back to the events exchange.
//!
//! The commands ([`list`], [`show`], [`replay`], [`purge`]) each open one
//! connection, do their work on it and close it.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use scimfleet_schemas::deadletter::HEADER_PREFIX;
use scimfleet_schemas::{AppId, DeadLetter, Job, Stage};

use scimfleet_runtime::broker::events::routing_of;
use scimfleet_runtime::broker::{
    BrokerError, Outgoing, PublishError, Publisher, RETRY_APP_HEADER, RETRY_TIER_HEADER, Topology,
    header_str, persistent, read_dead_letter,
};
use scimfleet_runtime::telemetry::propagation::TRACEPARENT;

use crate::render::{Column, Table};

mod commands;

pub use commands::{Batch, Listed, Listing, Selection, browse, list, purge, replay, show};

/// Which dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `{ns}.events.dlq`: events refused by the scheduler.
    Events,
    /// `{ns}.jobs.{app}.dlq`: jobs an app refused.
    App(AppId),
    /// `{ns}.sources.dlq`: deliveries of `[[sources]]` that could not be processed.
    Sources,
}

impl Target {
    /// The queue's name.
    pub fn queue(&self, topology: &Topology) -> String {
        match self {
            Self::Events => topology.events_dlq(),
            Self::App(app) => topology.app_dlq(app),
            Self::Sources => topology.sources_dlq(),
        }
    }
}

/// A dead-lettered message, held unacknowledged.
#[derive(Debug)]
pub struct DeadMessage {
    /// Why it was dead-lettered (`None` when the headers are missing, e.g. a
    /// message the broker dead-lettered itself after its delivery limit).
    pub envelope: Option<DeadLetter>,
    /// The original body.
    pub body: Vec<u8>,
    properties: BasicProperties,
    acker: lapin::Acker,
}

impl DeadMessage {
    fn of(delivery: lapin::message::Delivery) -> Self {
        Self {
            envelope: read_dead_letter(&delivery.properties).ok(),
            body: delivery.data,
            properties: delivery.properties,
            acker: delivery.acker,
        }
    }

    /// The job id, or else the event id: what `--id` matches.
    pub fn id(&self) -> String {
        let envelope = self.envelope.as_ref();
        envelope
            .and_then(|e| e.job_id.as_ref().map(ToString::to_string).or_else(|| e.event_id.clone()))
            .unwrap_or_else(|| "-".to_owned())
    }

    /// The trace id of the message's `traceparent` (W3C), when it has one:
    /// the trace of the event or job that ended here.
    pub fn trace_id(&self) -> Option<String> {
        let traceparent = header_str(&self.properties, TRACEPARENT)?;
        let trace_id = traceparent.split('-').nth(1)?;
        let valid = trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit());
        (valid && trace_id.bytes().any(|b| b != b'0')).then(|| trace_id.to_ascii_lowercase())
    }

    /// Whether `ids` names this message (by job id or event id).
    pub fn matches(&self, ids: &[String]) -> bool {
        let envelope = self.envelope.as_ref();
        ids.iter().any(|id| {
            envelope.is_some_and(|e| {
                e.job_id.as_ref().is_some_and(|j| j.as_str() == id) || e.event_id.as_deref() == Some(id)
            })
        })
    }
}

/// Messages read from a dead-letter queue and held until settled or released.
#[derive(Debug)]
pub struct Peek {
    channel: Channel,
    /// The messages, oldest first.
    pub messages: Vec<DeadMessage>,
    /// Messages still in the queue beyond those read.
    pub remaining: u32,
}

/// What `replay` or `purge` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Messages republished (replay) or dropped (purge).
    pub done: usize,
    /// Selected messages that could not be replayed (unreadable jobs); kept.
    pub kept: usize,
}

/// Ready messages in `target`'s queue.
pub async fn count(
    connection: &Connection,
    topology: &Topology,
    target: &Target,
) -> Result<u32, BrokerError> {
    let queue = target.queue(topology);
    let channel = connection.create_channel().await.map_err(BrokerError::channel("open channel"))?;
    let depth = scimfleet_runtime::broker::inspect::depth(&channel, &queue).await?;
    let _closed = scimfleet_runtime::broker::within("a close", channel.close(200, "counted".into())).await;
    Ok(depth.messages)
}

/// Reads up to `limit` messages of `target`, oldest first, without removing
/// them.
///
/// The messages stream in on a consumer whose prefetch is the number wanted
/// (one round trip for the lot, where `basic.get` took one per message: a
/// deep page of 10,000 dead letters is read in a fraction of a second), and
/// `basic.get` takes any beyond the largest prefetch (65,535). The consumer
/// stops at the queue's depth, or when nothing more comes for a while:
/// messages another reader holds are not ready.
pub async fn peek(
    connection: &Connection,
    topology: &Topology,
    target: &Target,
    limit: usize,
) -> Result<Peek, BrokerError> {
    let queue = target.queue(topology);
    let channel = connection.create_channel().await.map_err(BrokerError::channel("open channel"))?;
    let depth = scimfleet_runtime::broker::inspect::depth(&channel, &queue).await?.messages;
    let wanted = limit.min(usize::try_from(depth).unwrap_or(usize::MAX));
    let mut messages = Vec::with_capacity(wanted);
    let streamed = u16::try_from(wanted).unwrap_or(u16::MAX);
    if streamed > 0 {
        stream(&channel, &queue, streamed, &mut messages).await?;
    }
    while messages.len() < wanted {
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .map_err(BrokerError::channel(format!("read {queue}")))?;
        let Some(got) = got else { break };
        messages.push(DeadMessage::of(got.delivery));
    }
    let remaining = depth.saturating_sub(u32::try_from(messages.len()).unwrap_or(u32::MAX));
    Ok(Peek { channel, messages, remaining })
}

/// How long a peek waits for the next message before taking what it has.
const PEEK_IDLE: Duration = Duration::from_millis(500);

/// Up to `count` messages of `queue` through a consumer with that prefetch,
/// cancelled before returning: what it received stays unacknowledged.
async fn stream(
    channel: &Channel,
    queue: &str,
    count: u16,
    messages: &mut Vec<DeadMessage>,
) -> Result<(), BrokerError> {
    let failed = || BrokerError::channel(format!("read {queue}"));
    channel.basic_qos(count, BasicQosOptions::default()).await.map_err(failed())?;
    let options = BasicConsumeOptions::default();
    let mut consumer = channel
        .basic_consume(queue.into(), "".into(), options, FieldTable::default())
        .await
        .map_err(failed())?;
    let mut result = Ok(());
    while messages.len() < usize::from(count) {
        match tokio::time::timeout(PEEK_IDLE, consumer.next()).await {
            Ok(Some(Ok(delivery))) => messages.push(DeadMessage::of(delivery)),
            Ok(Some(Err(source))) => {
                result = Err(failed()(source));
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _cancelled = scimfleet_runtime::broker::within(
        "a consumer cancel",
        channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await;
    result
}

impl Peek {
    /// Puts every message back in the queue.
    pub async fn release(self) {
        let _closed =
            scimfleet_runtime::broker::within("a close", self.channel.close(200, "released".into())).await;
    }

    /// Drops the selected messages for good; the rest go back.
    pub async fn purge(self, selected: impl Fn(&DeadMessage) -> bool) -> Result<Settled, BrokerError> {
        let mut settled = Settled::default();
        for message in self.messages.iter().filter(|m| selected(m)) {
            message.acker.ack(BasicAckOptions::default()).await.map_err(BrokerError::channel("purge"))?;
            settled.done += 1;
        }
        let _closed =
            scimfleet_runtime::broker::within("a close", self.channel.close(200, "purged".into())).await;
        Ok(settled)
    }

    /// Republishes the selected messages (confirmed), then removes them; the
    /// rest go back.
    pub async fn replay(
        self,
        publisher: &Publisher,
        topology: &Topology,
        selected: impl Fn(&DeadMessage) -> bool,
    ) -> Result<Settled, PublishError> {
        let mut settled = Settled::default();
        for message in self.messages.iter().filter(|m| selected(m)) {
            let Some((exchange, routing_key, body)) = replay_target(topology, message) else {
                settled.kept += 1;
                continue;
            };
            let properties = clean_properties(&message.properties);
            let outgoing = Outgoing {
                exchange: &exchange,
                routing_key: &routing_key,
                body: &body,
                properties,
                mandatory: true,
            };
            publisher.publish(outgoing).await?;
            message
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(BrokerError::channel("ack replayed"))?;
            settled.done += 1;
        }
        let _closed =
            scimfleet_runtime::broker::within("a close", self.channel.close(200, "replayed".into())).await;
        Ok(settled)
    }
}

/// Where a dead letter goes back to: a job to its app's work queue with a
/// fresh attempt count; a source's delivery to that source's queue (the
/// source events it processed before are skipped there); anything else (an
/// event) to the events exchange.
fn replay_target(topology: &Topology, message: &DeadMessage) -> Option<(String, String, Vec<u8>)> {
    if message.envelope.as_ref().is_some_and(|e| e.stage == Stage::Intake) {
        let delivery: serde_json::Value = serde_json::from_slice(&message.body).ok()?;
        let source = delivery.get("source")?.as_str()?;
        return Some((String::new(), topology.source_queue(source), message.body.clone()));
    }
    let from_worker = message.envelope.as_ref().is_some_and(|e| e.app.is_some());
    if !from_worker {
        let (routing_key, _) = routing_of(&message.body);
        return Some((topology.events_exchange(), routing_key, message.body.clone()));
    }
    let mut job = Job::parse(&message.body).ok()?;
    job.attempt = 0;
    let body = serde_json::to_vec(&job).ok()?;
    Some((topology.jobs_exchange(), Topology::route(&job), body))
}

/// The original properties without dead-letter, retry and broker `x-death`
/// headers, so the replayed message starts clean.
fn clean_properties(properties: &BasicProperties) -> BasicProperties {
    let mut kept = FieldTable::default();
    if let Some(headers) = properties.headers() {
        for (name, value) in headers.inner() {
            let name_str = name.as_str();
            let drop = name_str.starts_with(HEADER_PREFIX)
                || name_str == RETRY_APP_HEADER
                || name_str == RETRY_TIER_HEADER
                || name_str.starts_with("x-death")
                || name_str.starts_with("x-first-death")
                || name_str.starts_with("x-last-death");
            if !drop {
                kept.insert(name.clone(), value.clone());
            }
        }
    }
    let content_type =
        properties.content_type().as_ref().map_or("application/json", |c| c.as_str()).to_owned();
    let mut clean = persistent(&content_type).with_headers(kept);
    if let Some(id) = properties.message_id() {
        clean = clean.with_message_id(id.clone());
    }
    if let Some(kind) = properties.kind() {
        clean = clean.with_type(kind.clone());
    }
    clean
}

/// One line per message: id, reason, status, attempts, last attempt, detail.
pub fn render(messages: &[DeadMessage]) -> String {
    let table = Table::new([
        Column::left("id", 34).after(""),
        Column::left("reason", 20),
        Column::right("status", 6),
        Column::right("attempts", 8),
        Column::left("last attempt", 20).after("  "),
        Column::left("detail", 0).after("  "),
    ]);
    let rows: Vec<Vec<String>> = messages.iter().map(row).collect();
    table.render(&rows)
}

fn row(m: &DeadMessage) -> Vec<String> {
    let (reason, status, attempts, at, detail) = match &m.envelope {
        Some(e) => (
            e.reason.as_str().to_owned(),
            e.last_status.map_or("-".to_owned(), |s| s.to_string()),
            e.attempts.to_string(),
            e.last_attempt_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.detail.chars().take(80).collect::<String>(),
        ),
        None => ("(no envelope)".into(), "-".into(), "-".into(), "-".into(), String::new()),
    };
    vec![m.id(), reason, status, attempts, at, detail]
}
