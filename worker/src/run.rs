//! Worker start-up: resolve tokens, build one SCIM client per app, connect,
//! declare the topology, and run one consumer per app until shutdown.
//!
//! Each app has its own AMQP channel, prefetch and HTTP connection pool, so a
//! slow app fills only its own window (guarantee 4).

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::audit::{AuditError, AuditLog};
use scimfleet_runtime::broker::{self, BrokerError, Publisher, Topology};
use scimfleet_runtime::config::{AppConfig, Config, ConfigError};
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::ops::{ComponentHealth, Ops};
use scimfleet_runtime::supervise::{Recoverable, supervise};
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{InfraError, Store};
use scimfleet_schemas::AppId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::{AppWorker, Shared};
use crate::auth::Auth;
use crate::client::{RequestRetry, ScimClient, ScimClientConfig};
use crate::converge::Converger;
use crate::error::ScimCallError;
use crate::pace::Pacer;
use crate::stats::WorkerStats;

/// Why the worker stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The configuration is unusable (a token is missing, say).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--apps` named an app that is not configured.
    #[error("app `{0}` is not in the configuration")]
    UnknownApp(String),
    /// An app's SCIM client could not be built.
    #[error("app `{app}`: cannot build the SCIM client")]
    Client {
        /// The app.
        app: AppId,
        /// Why.
        #[source]
        source: ScimCallError,
    },
    /// RabbitMQ or Redis failed; the worker reconnects.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// The audit trail could not be set up.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

scimfleet_runtime::from_infra_errors!(WorkerError);

/// The configured apps named in `only` (all apps when `None`).
pub fn select_apps<'a>(
    config: &'a Config,
    only: Option<&[String]>,
) -> Result<Vec<(usize, &'a AppConfig)>, WorkerError> {
    let all = config.apps.iter().enumerate();
    let Some(only) = only else { return Ok(all.collect()) };
    if let Some(missing) = only.iter().find(|id| config.app(id).is_none()) {
        return Err(WorkerError::UnknownApp(missing.clone()));
    }
    Ok(all.filter(|(_, app)| only.iter().any(|id| id == app.id.as_str())).collect())
}

fn pacer(config: &Config, app: &AppConfig, store: &Store) -> Pacer {
    let mut limits = Vec::new();
    if let Some(rate) = app.rate_per_second {
        limits.push((format!("app:{}", app.id), rate, app.burst.unwrap_or(1)));
    }
    if let Some(group) =
        app.rate_group.as_ref().and_then(|id| config.rate_groups.iter().find(|g| &g.id == id))
    {
        limits.push((format!("group:{}", group.id), group.rate_per_second, group.burst.unwrap_or(1)));
    }
    Pacer::new(store.clone(), app.id.clone(), &limits)
}

/// The SCIM client of `app` with its
/// credentials `auth` (see [`Auth::from_config`]), paced through Redis like
/// every replica's. Workers and sweeps both talk to apps through it.
pub fn app_client(
    config: &Config,
    app: &AppConfig,
    auth: Auth,
    store: &Store,
) -> Result<ScimClient, ScimCallError> {
    let client = ScimClient::new(ScimClientConfig {
        app: app.id.clone(),
        base_url: app.base_url.clone(),
        auth,
        timeout: Duration::from_millis(config.worker.request_timeout_ms),
        connect_timeout: Duration::from_millis(config.worker.connect_timeout_ms),
        // Both lanes share the client, each with `concurrency` jobs in
        // flight: a pool that kept fewer idle connections closed one after
        // nearly every request and opened another (thousands a second).
        max_idle_per_host: 2 * usize::from(app.concurrency_or(config.worker.concurrency)),
        retry: RequestRetry {
            retries: config.worker.request_retries,
            max_wait: Duration::from_millis(config.worker.request_retry_max_wait_ms),
        },
    })?;
    Ok(client.with_pacer(pacer(config, app, store)))
}

/// `app`'s converger over its client ([`app_client`]), counting in
/// `metrics` when given.
pub(crate) fn converger(
    config: &Config,
    app: &AppConfig,
    auth: Auth,
    store: &Store,
    metrics: Option<&Arc<Metrics>>,
) -> Result<Converger, WorkerError> {
    let client = app_client(config, app, auth, store)
        .map_err(|source| WorkerError::Client { app: app.id.clone(), source })?;
    let client = match metrics {
        Some(metrics) => client.with_metrics(metrics.clone()),
        None => client,
    };
    Ok(Converger::new(client, app.create_groups).adopting(app.adopt))
}

impl Recoverable for WorkerError {
    fn recoverable(&self) -> bool {
        match self {
            Self::Infra(error) => error.recoverable(),
            Self::Audit(error) => error.recoverable(),
            _ => false,
        }
    }
}

/// Runs consumers for `only` (or every app) until `shutdown` is cancelled,
/// reconnecting (with backoff) when RabbitMQ or Redis goes away; only
/// configuration errors end it.
pub async fn run(
    config: Arc<Config>,
    only: Option<Vec<String>>,
    stats: Arc<WorkerStats>,
    ops: Ops,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    // One id for this run's breakers in status reports, across reconnects.
    let instance = crate::notes::instance_id();
    let health = ops.health.component("worker");
    // One audit log per process, started (and `ConfigLoaded` recorded) on
    // the first connection that gets that far.
    let audit = Arc::new(tokio::sync::OnceCell::new());
    let result = supervise("worker", shutdown.clone(), || {
        let run = Run {
            audit: audit.clone(),
            stats: stats.clone(),
            instance: instance.clone(),
            ops: ops.clone(),
            health: health.clone(),
        };
        run_once(config.clone(), only.clone(), run, shutdown.clone())
    })
    .await;
    health.unready();
    result
}

/// Keeps every app's converger on its target profile (see `profile`) until `stop`.
fn follow_profiles(
    config: &Config,
    store: &Store,
    ops: &Ops,
    convergers: &[(&AppConfig, Converger)],
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let adopters = convergers.iter().map(|(app, c)| ((*app).clone(), c.adopter())).collect();
    let probe_every = config.worker.probe_every.map(Duration::from_millis);
    let metrics = ops.metrics.clone();
    tokio::spawn(crate::profile::follow(store.clone(), metrics, adopters, probe_every, stop.clone()))
}

/// Waits for every consumer; the first error stops the others (the
/// connection is unhealthy) and is returned.
async fn join_consumers(
    consumers: &mut JoinSet<Result<(), WorkerError>>,
    stop: &CancellationToken,
) -> Result<(), WorkerError> {
    let mut result = Ok(());
    while let Some(joined) = consumers.join_next().await {
        if let Ok(Err(error)) = joined {
            stop.cancel();
            if result.is_ok() {
                result = Err(error);
            }
        }
    }
    result
}

/// What one connection's worth of work shares with the process.
struct Run {
    audit: Arc<tokio::sync::OnceCell<AuditLog>>,
    stats: Arc<WorkerStats>,
    instance: Arc<str>,
    ops: Ops,
    health: ComponentHealth,
}

/// The apps' credentials, the Redis store and one converger per selected app;
/// with them, what periodic sweeps need (when configured).
async fn prepare<'c>(
    config: &'c Config,
    only: Option<&[String]>,
    ops: &Ops,
) -> Result<(Store, Vec<(&'c AppConfig, Converger)>, Option<Vec<(usize, AppConfig, Auth)>>), WorkerError> {
    let selected = select_apps(config, only)?;
    // Credentials first: a missing token or unreadable key fails start-up
    // before any connection.
    let tokens = selected
        .iter()
        .map(|&(i, app)| Ok(((i, app), Auth::from_config(config, i, app)?)))
        .collect::<Result<Vec<_>, WorkerError>>()?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    // Periodic sweeps (when configured) need the apps and tokens the
    // convergers are about to take.
    let sweep_apps: Option<Vec<_>> = config
        .verification
        .sweep_every
        .map(|_| tokens.iter().map(|((i, app), token)| (*i, (*app).clone(), token.clone())).collect());
    let convergers = tokens
        .into_iter()
        .map(|((_, app), auth)| Ok((app, converger(config, app, auth, &store, Some(&ops.metrics))?)))
        .collect::<Result<Vec<_>, WorkerError>>()?;
    // Each app works as its target profile says from the first job on.
    // Without a probe yet, start-up does not wait for one: the first
    // refresh makes it.
    for (app, converger) in &convergers {
        crate::profile::adopt(&store, &ops.metrics, app, &converger.adopter(), None).await;
    }
    Ok((store, convergers, sweep_apps))
}

/// One connection's worth of work: resolve tokens, connect, declare, consume.
/// When one consumer fails the others are stopped and the error returned.
async fn run_once(
    config: Arc<Config>,
    only: Option<Vec<String>>,
    run: Run,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let Run { audit, stats, instance, ops, health } = run;
    health.unready();
    // Like a token, a missing or unreadable key stops start-up, before any
    // connection, naming its field.
    let evidence_key = Arc::new(scimfleet_runtime::signing::evidence_signing_key(&config)?);
    let (store, convergers, sweep_apps) = prepare(&config, only.as_deref(), &ops).await?;
    let audit = audit.get_or_try_init(|| AuditLog::for_role(&config, store.clone(), "worker")).await?.clone();
    let topology = Topology::of(&config);
    // Shared with the lanes, which open a new channel after each resume.
    let connection =
        Arc::new(broker::connect(&config.broker, &format!("scimfleet-worker {}", config.namespace)).await?);
    let setup = connection.create_channel().await.map_err(BrokerError::Connect)?;
    let all_apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    topology.ensure(&setup, &all_apps, config.broker.declare_topology).await?;
    let publisher = Publisher::open_renewable(connection.clone()).await?;
    let pseudonyms = Pseudonymizer::new(&config.pseudonym_key()?);
    let grace = config.shutdown_grace();
    let stop = shutdown.child_token();
    let selected_ids: Vec<AppId> = convergers.iter().map(|(app, _)| app.id.clone()).collect();
    // Before any lane consumes: a worker starting while an app is paused
    // never takes one of its jobs.
    let (pauses, polling) = crate::pause::follow(&store, &ops.metrics, &selected_ids, &stop).await?;
    let sampling = connection.create_channel().await.map_err(BrokerError::Connect)?;
    let queues = broker::depth::app_queues(&topology, &selected_ids);
    let sampler = tokio::spawn(broker::depth::sample(sampling, queues, ops.metrics.clone(), stop.clone()));
    // Two lanes per app; ready once every one of them is consuming.
    let ready = health.ready_when(2 * convergers.len(), &connection, &store);
    let (activity, flusher) = crate::activity::start(&store, &ops.metrics, selected_ids.clone(), &stop);
    let mut consumers = JoinSet::new();
    let follower = follow_profiles(&config, &store, &ops, &convergers, &stop);
    for (app, converger) in convergers {
        let shared = Shared {
            topology: &topology,
            store: &store,
            publisher: &publisher,
            pseudonyms: &pseudonyms,
            stats: &stats,
            instance: &instance,
            ops: &ops,
            evidence_key: &evidence_key,
            audit: &audit,
            activity: &activity,
        };
        let worker = Arc::new(AppWorker::new(&config, app, converger, &shared));
        // Two lanes, each with its own channel and prefetch: leavers never
        // queue behind upserts. They share the app's locks and version check,
        // so per-person order holds across lanes.
        for queue in [topology.leaver_queue(&app.id), topology.job_queue(&app.id)] {
            let (worker, connection, pauses) = (worker.clone(), connection.clone(), pauses.clone());
            let lane =
                crate::pause::lane(worker, queue, connection, pauses, (stop.clone(), grace), ready.clone());
            consumers.spawn(lane);
        }
    }
    // Not one of the consumers: a failing sweep is logged, never fatal; it
    // is aborted with the connection's work below.
    let sweeper = config.verification.sweep_every.zip(sweep_apps).map(|(period, sweep_apps)| {
        let fleet = crate::schedule::Fleet {
            store: store.clone(),
            publisher: publisher.clone(),
            audit: audit.clone(),
            pseudonyms: pseudonyms.clone(),
            pauses: pauses.clone(),
        };
        tokio::spawn(crate::schedule::sweep_periodically(
            config.clone(),
            sweep_apps,
            fleet,
            Duration::from_millis(period),
            stop.clone(),
        ))
    });
    tracing::info!("worker connected; consumers starting");
    let result = join_consumers(&mut consumers, &stop).await;
    health.unready();
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    for task in [sampler, follower, polling] {
        task.abort();
    }
    crate::activity::finish(flusher, &stop).await;
    // Channels are closed (and awaited) before the connection: a channel
    // dropped instead closes in the background and races the connection close.
    publisher.close("worker stopping").await;
    let _closed = broker::within("a close", setup.close(200, "worker stopping".into())).await;
    let _closed = broker::within("a close", connection.close(200, "worker stopping".into())).await;
    result
}
