//! Exchange and queue names, and their idempotent declaration.
//!
//! ```text
//! {ns}.events  (topic, public contract) ──#──▶ {ns}.events.intake (quorum)
//!                                                   │ DLX
//!                                     {ns}.events.dlx (fanout) ──▶ {ns}.events.dlq
//! {ns}.jobs    (topic) ──{app}.*──▶ {ns}.jobs.{app} (quorum)            upserts
//!                      ──{app}.*.leaver──▶ {ns}.jobs.{app}.leavers (quorum) deprovision, verify
//!                                        │ DLX (both), routing key {app}
//!                          {ns}.jobs.dlx (direct) ──{app}──▶ {ns}.jobs.{app}.dlq
//! ```
//!
//! Transient failures and scheduled re-checks wait in per-app delay queues
//! and return to `{ns}.jobs` when their TTL expires (see `delay.rs`).
//!
//! Job routing keys are `{app}.{shard}` so per-person shard queues can be
//! bound later without changing publishers; today one queue per app takes
//! every shard. All queues, delay queues included, are quorum queues:
//! replicated, durable, and they support `x-delivery-limit` (poison
//! messages), at-least-once dead-lettering and, from RabbitMQ 3.10, message
//! TTL (<https://www.rabbitmq.com/docs/quorum-queues>), so losing one node
//! of a cluster loses no message in any of them.

use lapin::Channel;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use scimfleet_schemas::AppId;

use super::BrokerError;

/// Deliveries of one message before the broker dead-letters it by itself.
/// It only bites when a process keeps dying mid-message (a poison message);
/// normal failures are dead-lettered by scimfleet with a reason long before.
const DELIVERY_LIMIT: i64 = 20;

/// The names of one namespace's exchanges and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    ns: String,
    queue_expires_ms: Option<u64>,
    retry_tiers_ms: Vec<u64>,
    /// Re-check delays per app (verification of deprovisions).
    rechecks_ms: std::collections::BTreeMap<AppId, Vec<u64>>,
}

/// Last routing-key word of leaver-lane jobs: `{app}.{shard}.leaver`.
pub(super) const LEAVER_LANE: &str = "leaver";

/// Header naming the app of a job in a retry delay queue. Headers exchanges
/// ignore headers starting with `x-` when matching
/// (<https://www.rabbitmq.com/docs/exchanges#headers>), hence no `x-` prefix.
pub const RETRY_APP_HEADER: &str = "scimfleet-retry-app";
/// Header naming the delay tier (ms) of a job in a retry delay queue.
pub const RETRY_TIER_HEADER: &str = "scimfleet-retry-tier";

impl Topology {
    /// The topology of a configuration: its namespace, retry tiers and queue
    /// expiry. The only constructor, so declaring and deleting always agree.
    pub fn of(config: &crate::Config) -> Self {
        Self {
            ns: config.namespace.clone(),
            queue_expires_ms: config.broker.queue_expires_ms,
            retry_tiers_ms: config.worker.retry_tiers_ms.clone(),
            rechecks_ms: config
                .apps
                .iter()
                .map(|app| (app.id.clone(), app.recheck_ms(&config.verification).to_vec()))
                .collect(),
        }
    }

    /// Where scheduled re-checks wait (headers exchange, like retries but
    /// apart from them, so a re-check delay equal to a retry tier never
    /// matches both bindings).
    pub fn recheck_exchange(&self) -> String {
        format!("{}.jobs.recheck", self.ns)
    }

    /// The re-check delay queue of `app` for `delay_ms`.
    pub fn recheck_queue(&self, app: &AppId, delay_ms: u64) -> String {
        format!("{}.jobs.{app}.recheck.{delay_ms}", self.ns)
    }

    /// The re-check delays of `app`, ascending (none for an unknown app).
    pub fn recheck_delays_ms(&self, app: &AppId) -> &[u64] {
        self.rechecks_ms.get(app).map_or(&[], Vec::as_slice)
    }

    /// Where transient failures are published to wait (headers exchange).
    pub fn retry_exchange(&self) -> String {
        format!("{}.jobs.retry", self.ns)
    }

    /// The delay queue of `app` for `tier_ms`.
    pub fn retry_queue(&self, app: &AppId, tier_ms: u64) -> String {
        format!("{}.jobs.{app}.retry.{tier_ms}", self.ns)
    }

    /// The configured delay tiers, ascending.
    pub fn retry_tiers_ms(&self) -> &[u64] {
        &self.retry_tiers_ms
    }

    /// The headers that route a message to the delay queue of `app` for `tier_ms`.
    pub fn retry_route(app: &AppId, tier_ms: u64) -> FieldTable {
        let mut headers = FieldTable::default();
        headers.insert(RETRY_APP_HEADER.into(), text(app.as_str()));
        headers.insert(RETRY_TIER_HEADER.into(), text(&tier_ms.to_string()));
        headers
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// After how long unused queues are deleted (`broker.queue_expires_ms`).
    pub(super) fn queue_expires_ms(&self) -> Option<u64> {
        self.queue_expires_ms
    }

    /// Where HR systems publish events (public contract).
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.ns)
    }

    /// The scheduler's intake queue.
    pub fn events_queue(&self) -> String {
        format!("{}.events.intake", self.ns)
    }

    /// Dead-letter exchange for events.
    pub fn events_dlx(&self) -> String {
        format!("{}.events.dlx", self.ns)
    }

    /// Dead-letter queue for events.
    pub fn events_dlq(&self) -> String {
        format!("{}.events.dlq", self.ns)
    }

    /// Where the scheduler publishes jobs.
    pub fn jobs_exchange(&self) -> String {
        format!("{}.jobs", self.ns)
    }

    /// The work queue of `app`.
    pub fn job_queue(&self, app: &AppId) -> String {
        format!("{}.jobs.{app}", self.ns)
    }

    /// Dead-letter exchange for jobs, routed by app id.
    pub fn jobs_dlx(&self) -> String {
        format!("{}.jobs.dlx", self.ns)
    }

    /// Dead-letter queue of `app`.
    pub fn app_dlq(&self, app: &AppId) -> String {
        format!("{}.jobs.{app}.dlq", self.ns)
    }

    /// Routing key of a job for `app` in `shard`.
    pub fn job_routing_key(app: &AppId, shard: u16) -> String {
        format!("{app}.{shard}")
    }

    /// The leaver lane of `app`: deprovision and verify jobs, consumed
    /// beside the work queue so they never wait behind an upsert backlog.
    pub fn leaver_queue(&self, app: &AppId) -> String {
        format!("{}.jobs.{app}.leavers", self.ns)
    }

    /// Where `job` is published: the one place that maps a job to its shard
    /// (one shard per app today) and lane, used by fan-out, retry and replay.
    pub fn route(job: &scimfleet_schemas::Job) -> String {
        let key = Self::job_routing_key(&job.app, 0);
        match job.action {
            scimfleet_schemas::JobAction::Upsert { .. } => key,
            _ => format!("{key}.{LEAVER_LANE}"),
        }
    }

    /// Declares everything for `apps` when `declare` (`broker.declare_topology`);
    /// otherwise checks, without configuring anything, that the queues a
    /// role consumes or routes to exist, so a least-privilege user finds a
    /// missing topology at start-up and not at its first unroutable publish.
    pub async fn ensure(&self, channel: &Channel, apps: &[AppId], declare: bool) -> Result<(), BrokerError> {
        if declare {
            return self.declare(channel, apps).await;
        }
        let mut queues = vec![self.events_queue(), self.events_dlq()];
        for app in apps {
            queues.extend([self.job_queue(app), self.leaver_queue(app), self.app_dlq(app)]);
            queues.extend(self.retry_tiers_ms.iter().map(|&tier| self.retry_queue(app, tier)));
            queues.extend(self.recheck_delays_ms(app).iter().map(|&delay| self.recheck_queue(app, delay)));
        }
        let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        for queue in queues {
            channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .map_err(|source| BrokerError::Missing { queue, source })?;
        }
        Ok(())
    }

    /// Declares everything for `apps` ([`Topology::declarations`], the list
    /// RabbitMQ definitions are made from too). Safe to call from every
    /// process, every start.
    pub async fn declare(&self, channel: &Channel, apps: &[AppId]) -> Result<(), BrokerError> {
        self.declarations(apps, &[]).declare(channel).await
    }

    /// Deletes everything for `apps` (tests and demo clean-up).
    pub async fn delete(&self, channel: &Channel, apps: &[AppId]) -> Result<(), BrokerError> {
        let mut queues = vec![self.events_queue(), self.events_dlq()];
        for app in apps {
            queues.extend(self.queues(app).all().cloned());
        }
        for queue in queues {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(BrokerError::channel(format!("delete queue {queue}")))?;
        }
        let exchanges = [
            self.events_exchange(),
            self.events_dlx(),
            self.jobs_exchange(),
            self.jobs_dlx(),
            self.retry_exchange(),
            self.recheck_exchange(),
        ];
        for exchange in exchanges {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(BrokerError::channel(format!("delete exchange {exchange}")))?;
        }
        Ok(())
    }
}

pub(super) async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), BrokerError> {
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .map(drop)
        .map_err(BrokerError::channel(format!("declare queue {name}")))
}

pub(super) fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

impl Topology {
    /// Arguments of a durable quorum queue, with a dead-letter target when given.
    pub(super) fn quorum(&self, dead_letter: Option<(&str, &str)>) -> FieldTable {
        let mut args = quorum(dead_letter);
        if let Some(ms) = self.queue_expires_ms {
            // https://www.rabbitmq.com/docs/ttl#queue-ttl: removes the queue
            // after `ms` without consumers or gets (abandoned test namespaces).
            args.insert("x-expires".into(), AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)));
        }
        args
    }
}

fn quorum(dead_letter: Option<(&str, &str)>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-queue-type"), text("quorum"));
    if let Some((exchange, routing_key)) = dead_letter {
        args.insert("x-dead-letter-exchange".into(), text(exchange));
        if !routing_key.is_empty() {
            args.insert("x-dead-letter-routing-key".into(), text(routing_key));
        }
        // Poison-message guard: see DELIVERY_LIMIT.
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
        // At-least-once dead-lettering keeps a message in the source queue
        // until the dead-letter queue confirmed it; it requires reject-publish
        // overflow (https://www.rabbitmq.com/docs/quorum-queues#dead-lettering).
        args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
        args.insert("x-overflow".into(), text("reject-publish"));
    }
    args
}
