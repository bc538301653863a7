//! An in-process fleet: SCIM test servers, the scheduler and a worker, on a
//! namespace of their own on the real RabbitMQ and Redis.
//!
//! The demo, the integration tests and the benchmark all drive scimfleet
//! through this one harness. The caller gives only the *policy* part of a
//! configuration (apps with scope, mapping, groups, deprovision mode); the
//! fleet starts one test server per app and fills in `base_url`, the token
//! and a unique namespace, so parallel tests never see each other's queues or
//! keys. Queues of a fleet expire when unused (`broker.queue_expires_ms`), so
//! even a crashed test leaves nothing behind for long; `stop` removes
//! everything at once.

mod inspect;
mod publish;
mod start;
mod stop;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use scimfleet_runtime::broker::Publisher;
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{Config, Store};
use scimfleet_scheduler::{SchedulerSnapshot, SchedulerStats};
use scimfleet_schemas::AppId;
use scimfleet_worker::{WorkerSnapshot, WorkerStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::scim_server::ScimServerHandle;

pub use start::{EVIDENCE_PUBLIC_KEY, EVIDENCE_SIGNING_KEY, TEST_LOG_LEVELS, test_log_dir, unique_namespace};

/// Something in the harness went wrong; tests fail on it with the message.
pub type FleetError = Box<dyn std::error::Error + Send + Sync>;

/// A running in-process fleet.
pub struct Fleet {
    /// The effective configuration (namespace, apps with their servers' URLs).
    pub config: Arc<Config>,
    servers: BTreeMap<AppId, ScimServerHandle>,
    scheduler_stats: Arc<SchedulerStats>,
    worker_stats: Arc<WorkerStats>,
    ops: Ops,
    ops_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<Result<(), String>>>,
    connection: lapin::Connection,
    publisher: Publisher,
    store: Store,
    published: u64,
    token_dir: PathBuf,
    token: String,
    stopped: bool,
}

impl Fleet {
    /// Starts servers, scheduler and worker for the apps of `policy` (TOML
    /// with `[[apps]]` entries; `base_url` and tokens are filled in).
    pub async fn start(policy: &str) -> Result<Self, FleetError> {
        let namespace = unique_namespace("t");
        Self::start_in(policy, &namespace).await
    }

    /// Like [`Fleet::start`] but without a worker, so jobs pile up in their
    /// queues until [`Fleet::spawn_worker`] (backlog scenarios).
    pub async fn start_without_worker(policy: &str) -> Result<Self, FleetError> {
        Self::launch(policy, &unique_namespace("t"), false).await
    }

    /// Like [`Fleet::start`] but without the in-process scheduler: the test
    /// runs its own (e.g. several `scimfleet scheduler` processes). The
    /// scheduler counters stay at zero, so wait on the apps' state instead
    /// of [`Fleet::wait_settled`] or [`Fleet::wait_drained`].
    pub async fn start_without_scheduler(policy: &str) -> Result<Self, FleetError> {
        let mut fleet = Self::prepare(policy, &unique_namespace("t")).await?;
        fleet.spawn_worker(None);
        Ok(fleet)
    }

    /// Servers, configuration and topology only: the test runs every role
    /// itself (real processes, other users). Wait on the apps' state.
    pub async fn start_idle(policy: &str) -> Result<Self, FleetError> {
        Self::prepare(policy, &unique_namespace("t")).await
    }

    /// Like [`Fleet::start`], with `servers` (app id and server) standing
    /// in for those apps: HTTPS, OAuth or client-certificate targets a test
    /// built. Their apps keep the credentials the policy gives them.
    pub async fn start_with_servers(
        policy: &str,
        servers: Vec<(&str, ScimServerHandle)>,
    ) -> Result<Self, FleetError> {
        let given = servers.into_iter().map(|(app, server)| (app.to_owned(), server)).collect();
        let mut fleet = Self::prepare_with(policy, &unique_namespace("t"), given).await?;
        fleet.spawn_scheduler();
        fleet.spawn_worker(None);
        Ok(fleet)
    }

    /// Like [`Fleet::start`] with a chosen namespace.
    pub async fn start_in(policy: &str, namespace: &str) -> Result<Self, FleetError> {
        Self::launch(policy, namespace, true).await
    }

    fn spawn_scheduler(&mut self) {
        let (config, stats, stop) =
            (self.config.clone(), self.scheduler_stats.clone(), self.shutdown.clone());
        let ops = self.ops.clone();
        self.tasks.push(tokio::spawn(async move {
            scimfleet_scheduler::run(config, stats, ops, stop).await.map_err(|e| error_chain(&e))
        }));
    }

    /// Starts one more worker for `apps` (all when `None`) sharing the fleet's counters.
    pub fn spawn_worker(&mut self, apps: Option<Vec<String>>) {
        let (config, stats, stop) = (self.config.clone(), self.worker_stats.clone(), self.shutdown.clone());
        let ops = self.ops.clone();
        self.tasks.push(tokio::spawn(async move {
            scimfleet_worker::run(config, apps, stats, ops, stop).await.map_err(|e| error_chain(&e))
        }));
    }

    /// Where the fleet serves `/metrics`, `/healthz` and `/readyz`.
    pub fn ops_addr(&self) -> std::net::SocketAddr {
        self.ops_addr
    }

    /// The fleet's metrics registry (what `/metrics` renders).
    pub fn metrics(&self) -> &scimfleet_runtime::metrics::Metrics {
        &self.ops.metrics
    }

    /// The test server standing in for `app`.
    ///
    /// # Panics
    /// When the fleet has no such app: a mistake in the test itself.
    pub fn server(&self, app: &str) -> &ScimServerHandle {
        let found = self.servers.iter().find(|(id, _)| id.as_str() == app);
        found.map(|(_, s)| s).unwrap_or_else(|| panic!("no app `{app}` in this fleet"))
    }

    /// Every app's test server.
    pub fn servers(&self) -> &BTreeMap<AppId, ScimServerHandle> {
        &self.servers
    }

    /// The fleet's configuration, as its scheduler and workers run it.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// A configuration file for this fleet, for `scimfleet --config`.
    pub fn config_path(&self) -> PathBuf {
        self.token_dir.join("scimfleet.toml")
    }

    /// The public key of the fleet's throw-away evidence signing key.
    pub fn evidence_public_key_path(&self) -> PathBuf {
        self.token_dir.join(EVIDENCE_PUBLIC_KEY)
    }

    /// The fleet's Redis handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Scheduler counters.
    pub fn scheduler(&self) -> SchedulerSnapshot {
        self.scheduler_stats.snapshot()
    }

    /// Worker counters (all workers of this fleet).
    pub fn worker(&self) -> WorkerSnapshot {
        self.worker_stats.snapshot()
    }
}
