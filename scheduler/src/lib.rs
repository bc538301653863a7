#![doc = include_str!("../README.md")]

mod audit;
mod effective;
mod fanout;
mod gate;
mod governance;
mod intake;
mod journey;
mod lease;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::audit::{AuditError, AuditLog};
use scimfleet_runtime::broker::{self, BrokerError, Publisher, Topology};
use scimfleet_runtime::config::Config;
use scimfleet_runtime::ops::{ComponentHealth, Ops};
use scimfleet_runtime::supervise::{Recoverable, supervise};
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{InfraError, KeyedLocks, Store};
use tokio_util::sync::CancellationToken;

pub use stats::{SchedulerSnapshot, SchedulerStats};

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// RabbitMQ or Redis failed; the scheduler reconnects.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// The pseudonym key is misconfigured.
    #[error(transparent)]
    Config(#[from] scimfleet_runtime::config::ConfigError),
    /// The audit trail could not be set up.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

scimfleet_runtime::from_infra_errors!(SchedulerError);

impl Recoverable for SchedulerError {
    fn recoverable(&self) -> bool {
        match self {
            Self::Infra(error) => error.recoverable(),
            Self::Config(_) => false,
            Self::Audit(error) => error.recoverable(),
        }
    }
}

/// Runs the scheduler until `shutdown` is cancelled, reconnecting (with
/// backoff) when RabbitMQ or Redis goes away; only configuration errors end it.
pub async fn run(
    config: Arc<Config>,
    stats: Arc<SchedulerStats>,
    ops: Ops,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    let health = ops.health.component("scheduler");
    // One audit log per process, started (and `ConfigLoaded` recorded) on
    // the first connection that gets that far.
    let audit = tokio::sync::OnceCell::new();
    let result = supervise("scheduler", shutdown.clone(), || {
        let process = (stats.clone(), ops.clone(), &audit);
        run_once(config.clone(), process, &health, shutdown.clone())
    })
    .await;
    health.unready();
    result
}

/// One connection's worth of scheduling: connect, declare, consume.
async fn run_once(
    config: Arc<Config>,
    (stats, ops, audit): (Arc<SchedulerStats>, Ops, &tokio::sync::OnceCell<AuditLog>),
    health: &ComponentHealth,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    health.unready();
    let topology = Topology::of(&config);
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let audit =
        audit.get_or_try_init(|| AuditLog::for_role(&config, store.clone(), "scheduler")).await?.clone();
    let connection = Arc::new(
        broker::connect(&config.broker, &format!("scimfleet-scheduler {}", config.namespace)).await?,
    );
    let channel = connection.create_channel().await.map_err(BrokerError::Connect)?;
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    topology.ensure(&channel, &apps, config.broker.declare_topology).await?;
    let publisher = Publisher::open_renewable(connection.clone()).await?;
    let closing = publisher.clone();
    let pseudonyms = Pseudonymizer::new(&config.pseudonym_key()?);
    let grace = config.shutdown_grace();
    let stop_sampling = shutdown.child_token();
    let sampling = connection.create_channel().await.map_err(BrokerError::Connect)?;
    let queues = broker::depth::event_queues(&topology);
    let sampler =
        tokio::spawn(broker::depth::sample(sampling, queues, ops.metrics.clone(), stop_sampling.clone()));
    let ready = health.ready_when(1, &connection, &store);
    let ctx = Arc::new(fanout::Context {
        queue: topology.events_queue(),
        journey_retention: Duration::from_millis(config.telemetry.journey_retention),
        config,
        topology,
        store,
        publisher,
        locks: KeyedLocks::new(),
        pseudonyms,
        stats,
        ops,
        audit,
    });
    let housekeeping = tokio::spawn(governance::housekeep(ctx.clone(), stop_sampling.clone()));
    let releasing = tokio::spawn(effective::release_due(ctx.clone(), stop_sampling.clone()));
    let result = intake::consume(ctx, &channel, shutdown, grace, ready).await;
    health.unready();
    stop_sampling.cancel();
    let _sampled = sampler.await;
    let _housekept = housekeeping.await;
    let _released = releasing.await;
    // Channels are closed (and awaited) before the connection: a channel
    // dropped instead closes in the background and races the connection close.
    closing.close("scheduler stopping").await;
    let _closed =
        scimfleet_runtime::broker::within("a close", channel.close(200, "scheduler stopping".into())).await;
    // Closing tells the broker at once that unacked events are to be redelivered.
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "scheduler stopping".into()))
            .await;
    result
}
