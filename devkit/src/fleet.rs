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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent, read_dead_letter};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{Config, Store};
use scimfleet_scheduler::{SchedulerSnapshot, SchedulerStats};
use scimfleet_schemas::{AppId, DeadLetter};
use scimfleet_worker::{WorkerSnapshot, WorkerStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::scim_server::{ScimServer, ScimServerHandle};

/// Something in the harness went wrong; tests fail on it with the message.
pub type FleetError = Box<dyn std::error::Error + Send + Sync>;

/// Queues of a test namespace disappear after this long unused.
const TEST_QUEUE_EXPIRY_MS: u64 = 15 * 60 * 1000;

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

    /// Like [`Fleet::start`] with a chosen namespace.
    pub async fn start_in(policy: &str, namespace: &str) -> Result<Self, FleetError> {
        Self::launch(policy, namespace, true).await
    }

    async fn launch(policy: &str, namespace: &str, with_worker: bool) -> Result<Self, FleetError> {
        capture_logs(namespace);
        let token = format!("tok-{}", rand::random::<u64>());
        let token_dir = std::env::temp_dir().join(format!("scimfleet-{namespace}"));
        std::fs::create_dir_all(&token_dir)?;
        std::fs::write(token_dir.join("token"), &token)?;
        let (text, app_ids) = complete_policy(policy, namespace)?;
        let mut servers = BTreeMap::new();
        let mut text = text;
        for app in &app_ids {
            let server = ScimServer::start(token.clone()).await?;
            text = text.replace(&placeholder(app), &server.base_url());
            servers.insert(AppId::parse(app.as_str())?, server);
        }
        // Written out so command-line tools can be pointed at this fleet.
        std::fs::write(token_dir.join("scimfleet.toml"), &text)?;
        let config = Arc::new(Config::from_toml(&text, "fleet", token_dir.clone(), service_env())?);
        let store = Store::connect(&config.redis.url, &config.namespace).await?;
        sweep_stale_namespaces(&store).await;
        let connection = broker::connect(&config.broker.url, "scimfleet-fleet").await?;
        let publisher = Publisher::open(&connection).await?;
        let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
        Topology::of(&config).declare(publisher.channel(), &apps).await?;
        // One operations listener for the fleet's scheduler and workers, as a
        // process running both would have.
        let ops = Ops::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let ops_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let (ops, stop) = (ops.clone(), shutdown.clone());
            async move { scimfleet_runtime::ops::serve(listener, ops, stop).await.map_err(|e| e.to_string()) }
        });
        let mut fleet = Self {
            config,
            servers,
            scheduler_stats: Arc::default(),
            worker_stats: Arc::default(),
            ops,
            ops_addr,
            shutdown,
            tasks: vec![serving],
            connection,
            publisher,
            store,
            published: 0,
            token_dir,
            token,
            stopped: false,
        };
        fleet.spawn_scheduler();
        if with_worker {
            fleet.spawn_worker(None);
        }
        Ok(fleet)
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

    /// Takes `app`'s server down: its address refuses connections until
    /// [`Fleet::restart_server`]. Returns that address.
    pub async fn stop_server(&mut self, app: &str) -> Result<std::net::SocketAddr, FleetError> {
        let id = AppId::parse(app)?;
        // A clone is shut down; the handle kept in the map still reads the
        // stopped server's state and request log.
        let server = self.servers.get(&id).ok_or_else(|| format!("no app `{app}`"))?.clone();
        let addr = server.addr();
        server.shutdown().await;
        Ok(addr)
    }

    /// Brings `app` back on the address it had, as a new, empty server.
    pub async fn restart_server(&mut self, app: &str, addr: std::net::SocketAddr) -> Result<(), FleetError> {
        let server = ScimServer::start_on(addr, self.token.clone()).await?;
        self.servers.insert(AppId::parse(app)?, server);
        Ok(())
    }

    /// Every app's test server.
    pub fn servers(&self) -> &BTreeMap<AppId, ScimServerHandle> {
        &self.servers
    }

    /// A configuration file for this fleet, for `scimfleet --config`.
    pub fn config_path(&self) -> PathBuf {
        self.token_dir.join("scimfleet.toml")
    }

    /// The fleet's Redis handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Publishes raw event bodies to `{ns}.events` with confirms, routing key
    /// = the event's `type` when readable. Counts them for [`Fleet::wait_settled`].
    pub async fn publish(&mut self, bodies: &[Vec<u8>]) -> Result<(), FleetError> {
        self.publish_as(bodies, Some(broker::events::CLOUDEVENTS_JSON)).await
    }

    /// Like [`Fleet::publish`], with a chosen content type (or none).
    pub async fn publish_as(
        &mut self,
        bodies: &[Vec<u8>],
        content_type: Option<&str>,
    ) -> Result<(), FleetError> {
        let properties = match content_type {
            Some(content_type) => persistent(content_type),
            // Persistent, but with no content type at all.
            None => lapin::BasicProperties::default().with_delivery_mode(2),
        };
        let exchange = Topology::of(&self.config).events_exchange();
        let keys: Vec<String> = bodies.iter().map(|b| broker::events::routing_of(b).0).collect();
        let messages: Vec<Outgoing<'_>> = bodies
            .iter()
            .zip(&keys)
            .map(|(body, key)| Outgoing {
                exchange: &exchange,
                routing_key: key,
                body,
                properties: properties.clone(),
                mandatory: true,
            })
            .collect();
        self.publisher.publish_all(messages).await?;
        self.published += bodies.len() as u64;
        Ok(())
    }

    /// Publishes JSON events.
    pub async fn publish_json(&mut self, events: &[serde_json::Value]) -> Result<(), FleetError> {
        let bodies: Vec<Vec<u8>> = events.iter().map(serde_json::to_vec).collect::<Result<_, _>>()?;
        self.publish(&bodies).await
    }

    /// Scheduler counters.
    pub fn scheduler(&self) -> SchedulerSnapshot {
        self.scheduler_stats.snapshot()
    }

    /// Worker counters (all workers of this fleet).
    pub fn worker(&self) -> WorkerSnapshot {
        self.worker_stats.snapshot()
    }

    /// Waits until the scheduler has settled every published event (its jobs
    /// are queued; workers may not have run them).
    pub async fn wait_scheduled(&self, within: Duration) -> Result<(), FleetError> {
        let deadline = tokio::time::Instant::now() + within;
        while self.scheduler().settled() < self.published {
            if tokio::time::Instant::now() >= deadline {
                return Err(
                    format!("scheduler did not settle within {within:?}: {:?}", self.scheduler()).into()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until the fleet is drained: every published event settled, every
    /// queue of the namespace empty (work, leaver and retry queues included)
    /// and no delivery in flight, twice in a row. Counters alone cannot say
    /// this: a delivery whose ack was lost with a broken connection is
    /// redelivered and counted again.
    pub async fn wait_settled(&self, within: Duration) -> Result<(), FleetError> {
        let deadline = tokio::time::Instant::now() + within;
        let channel = self.connection.create_channel().await?;
        let mut quiet_polls = 0;
        while quiet_polls < 2 {
            if self.tasks.iter().any(JoinHandle::is_finished) {
                return Err("a fleet process stopped unexpectedly; see the logs".into());
            }
            let (s, w) = (self.scheduler(), self.worker());
            // Counters are necessary conditions (they may over-count, never under-count).
            let counted = s.settled() >= self.published && w.settled() >= s.jobs_published;
            let idle = counted && s.in_flight() == 0 && w.in_flight() == 0;
            quiet_polls = if idle && self.queued(&channel).await? == 0 { quiet_polls + 1 } else { 0 };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "not settled within {within:?}: published {}, scheduler {s:?}, worker {w:?}",
                    self.published
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _closed = channel.close(200, "settled".into()).await;
        Ok(())
    }

    /// Like [`Fleet::wait_settled`], for a fleet whose workers run out of
    /// process (`scimfleet worker` children), so the fleet's worker counters
    /// say nothing: waits until every published event is settled, every
    /// queue of the namespace is empty and `done` (the caller's view of the
    /// apps, e.g. every account present) holds, three polls in a row. Empty
    /// queues alone do not mean drained: a worker may hold unacked jobs.
    pub async fn wait_drained(&self, within: Duration, done: impl Fn() -> bool) -> Result<(), FleetError> {
        let deadline = tokio::time::Instant::now() + within;
        let channel = self.connection.create_channel().await?;
        let mut quiet_polls = 0;
        while quiet_polls < 3 {
            if self.tasks.iter().any(JoinHandle::is_finished) {
                return Err("a fleet process stopped unexpectedly; see the logs".into());
            }
            let s = self.scheduler();
            let scheduled = s.settled() >= self.published && s.in_flight() == 0;
            let quiet = scheduled && self.queued(&channel).await? == 0 && done();
            quiet_polls = if quiet { quiet_polls + 1 } else { 0 };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "not drained within {within:?}: published {}, scheduler {s:?}, queued {}, done {}",
                    self.published,
                    self.queued(&channel).await?,
                    done()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _closed = channel.close(200, "drained".into()).await;
        Ok(())
    }

    /// Opens the harness's own broker connection afresh. A broker restart
    /// breaks it (the scheduler and worker reconnect by themselves), and
    /// [`Fleet::wait_settled`], [`Fleet::take_dead_letters`] and
    /// [`Fleet::stop`] need it.
    pub async fn reconnect(&mut self) -> Result<(), FleetError> {
        let connection = broker::connect(&self.config.broker.url, "scimfleet-fleet").await?;
        self.publisher = Publisher::open(&connection).await?;
        self.connection = connection;
        Ok(())
    }

    /// Messages ready in the namespace's work queues (not dead-letter queues).
    async fn queued(&self, channel: &lapin::Channel) -> Result<u64, FleetError> {
        let topology = Topology::of(&self.config);
        let mut queues = vec![topology.events_queue()];
        for app in &self.config.apps {
            queues.push(topology.job_queue(&app.id));
            queues.push(topology.leaver_queue(&app.id));
            queues.extend(topology.retry_tiers_ms().iter().map(|&t| topology.retry_queue(&app.id, t)));
        }
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let mut total = 0;
        for queue in queues {
            let declared = channel
                .queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default())
                .await?;
            total += u64::from(declared.message_count());
        }
        Ok(total)
    }

    /// Takes every message from a dead-letter queue (`events` or an app id).
    pub async fn take_dead_letters(&self, which: &str) -> Result<Vec<(DeadLetter, Vec<u8>)>, FleetError> {
        let topology = Topology::of(&self.config);
        let queue = match which {
            "events" => topology.events_dlq(),
            app => topology.app_dlq(&AppId::parse(app)?),
        };
        let channel = self.connection.create_channel().await?;
        let mut taken = Vec::new();
        while let Some(message) = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await?
        {
            let delivery = message.delivery;
            taken.push((read_dead_letter(&delivery.properties)?, delivery.data.clone()));
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Ok(taken)
    }

    /// Stops the processes and the servers, and deletes the namespace's
    /// queues, exchanges and Redis keys.
    pub async fn stop(mut self) -> Result<(), FleetError> {
        self.stopped = true;
        self.shutdown.cancel();
        let mut failures = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let apps: Vec<_> = self.config.apps.iter().map(|a| a.id.clone()).collect();
        Topology::of(&self.config).delete(self.publisher.channel(), &apps).await?;
        // A Redis connection broken since the last command (a test that
        // restarted Redis) fails once, then reconnects: one retry.
        if self.store.delete_namespace().await.is_err() {
            self.store.delete_namespace().await?;
        }
        let _closed = self.publisher.channel().close(200, "fleet stopped".into()).await;
        let _closed = self.connection.close(200, "fleet stopped".into()).await;
        for server in std::mem::take(&mut self.servers).into_values() {
            server.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.token_dir);
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ").into()) }
    }
}

impl Drop for Fleet {
    /// A fleet dropped without `stop` (a failed assertion, say) still removes
    /// its namespace. `Drop` cannot await, so the clean-up runs on a thread
    /// with a runtime of its own, and the drop waits for it.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.shutdown.cancel();
        let config = self.config.clone();
        let token_dir = self.token_dir.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
                if let Ok(connection) = broker::connect(&config.broker.url, "scimfleet-fleet-cleanup").await {
                    if let Ok(channel) = connection.create_channel().await {
                        let _ = Topology::of(&config).delete(&channel, &apps).await;
                    }
                    let _ = connection.close(200, "fleet dropped".into()).await;
                }
                if let Ok(store) = Store::connect(&config.redis.url, &config.namespace).await {
                    let _ = store.delete_namespace().await;
                }
            });
            let _ = std::fs::remove_dir_all(&token_dir);
        });
        let _ = cleanup.join();
    }
}

/// A fresh namespace `{prefix}-{unix seconds}-{random}`; the time lets later
/// runs recognise and sweep what a crashed run left.
pub fn unique_namespace(prefix: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    format!("{prefix}-{now}-{:08x}", rand::random::<u32>())
}

fn placeholder(app: &str) -> String {
    format!("http://127.0.0.1:1/placeholder/{app}")
}

/// Fills the namespace, base URLs (placeholders until servers exist), tokens
/// and the queue expiry into the policy; returns the text and the app ids.
fn complete_policy(policy: &str, namespace: &str) -> Result<(String, Vec<String>), FleetError> {
    let mut table: toml::Table = policy.parse()?;
    table.insert("namespace".into(), namespace.into());
    let broker = table.entry("broker").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(broker) = broker {
        broker.insert("queue_expires_ms".into(), toml::Value::Integer(TEST_QUEUE_EXPIRY_MS as i64));
    }
    // Free ports: several fleets and worker processes share one machine.
    let telemetry = table.entry("telemetry").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(telemetry) = telemetry {
        for key in ["scheduler_listen", "worker_listen"] {
            telemetry.entry(key).or_insert_with(|| "127.0.0.1:0".into());
        }
    }
    let mut ids = Vec::new();
    let apps = table.get_mut("apps").and_then(toml::Value::as_array_mut).ok_or("policy has no [[apps]]")?;
    for app in apps.iter_mut().filter_map(toml::Value::as_table_mut) {
        let id = app.get("id").and_then(toml::Value::as_str).ok_or("an app has no id")?.to_owned();
        app.insert("base_url".into(), placeholder(&id).into());
        app.insert("allow_insecure_loopback".into(), true.into());
        app.remove("token_env");
        app.insert("token_file".into(), "token".into());
        ids.push(id);
    }
    Ok((toml::to_string(&table)?, ids))
}

/// Where tests write their logs: `SCIMFLEET_TEST_LOG_DIR`, or
/// `scimfleet-test-logs` in the temporary directory. `make test` empties it
/// first and checks afterwards that no log holds a token or an e-mail address.
pub fn test_log_dir() -> PathBuf {
    std::env::var_os("SCIMFLEET_TEST_LOG_DIR")
        .map_or_else(|| std::env::temp_dir().join("scimfleet-test-logs"), PathBuf::from)
}

/// Sends this test process's logs, at debug level unless `RUST_LOG` says
/// otherwise, to a file in [`test_log_dir`] (once per process; a test that
/// installed telemetry of its own keeps it).
fn capture_logs(namespace: &str) {
    let dir = test_log_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let file = dir.join(format!("{namespace}.jsonl"));
    let _installed = scimfleet_runtime::telemetry::init(scimfleet_runtime::telemetry::TelemetryOptions {
        service: "scimfleet-test",
        format: scimfleet_runtime::config::LogFormat::Json,
        default_levels: TEST_LOG_LEVELS,
        traces: scimfleet_runtime::telemetry::Traces::Off,
        log_file: Some(&file),
    });
}

/// Everything of ours, and what the libraries say at info and above.
pub const TEST_LOG_LEVELS: &str = "info,scimfleet=debug,scimfleet_runtime=debug,scimfleet_scheduler=debug,\
scimfleet_worker=debug,scimfleet_devkit=debug";

/// Only the service locations are taken from the environment, so a developer's
/// other `SCIMFLEET_*` settings cannot change what a test means.
fn service_env() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| k == "SCIMFLEET_BROKER__URL" || k == "SCIMFLEET_REDIS__URL").collect()
}

/// Deletes Redis keys of test namespaces older than an hour (crashed runs).
async fn sweep_stale_namespaces(store: &Store) {
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    if let Err(error) = store.sweep_namespaces("t-", cutoff).await {
        tracing::warn!(%error, "could not sweep stale test namespaces");
    }
}
