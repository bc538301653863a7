//! The operations listener of each process: `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/healthz` answers 200 while the process runs (liveness: restart it
//!   only when this stops answering).
//! - `/readyz` answers 200 only while every component of the process (the
//!   scheduler, the worker, or both in the in-process fleet) reports itself
//!   connected with its topology declared, *and* its RabbitMQ connection is
//!   still open *and* Redis answers a `PING` now. Checked at request time,
//!   so a broker that just died turns it 503 at once, without waiting for a
//!   consumer loop to notice.
//! - `/metrics` renders [`Metrics`] (OpenMetrics text); `scimfleet_ready`
//!   is refreshed from the same check on every scrape.
//!
//! The listener is small and separate from any data path: it holds no lock
//! the pipeline needs, and a slow scrape never delays a job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::Store;
use crate::metrics::{CONTENT_TYPE, Metrics};

/// How long `/readyz` waits for Redis to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A process's metrics and health, handed to every component it runs.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    /// The process's metric families.
    pub metrics: Arc<Metrics>,
    /// The process's readiness.
    pub health: Health,
}

/// Readiness of every component of a process.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<Vec<Component>>>,
}

struct Component {
    name: &'static str,
    connected: Option<(lapin::ConnectionStatus, Store)>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("ready", &self.connected.is_some())
            .finish()
    }
}

/// One component's handle on its readiness.
#[derive(Debug, Clone)]
pub struct ComponentHealth {
    health: Health,
    index: usize,
    name: &'static str,
}

impl Health {
    /// Registers a component, not ready until it says so.
    pub fn component(&self, name: &'static str) -> ComponentHealth {
        let mut components = self.lock();
        components.push(Component { name, connected: None });
        ComponentHealth { health: self.clone(), index: components.len() - 1, name }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Component>> {
        self.components.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Ok` when every component is ready now; otherwise why not.
    pub async fn check(&self) -> Result<(), String> {
        let snapshot: Vec<(&'static str, Option<(bool, Store)>)> = self
            .lock()
            .iter()
            .map(|c| {
                (c.name, c.connected.as_ref().map(|(status, store)| (status.connected(), store.clone())))
            })
            .collect();
        if snapshot.is_empty() {
            return Err("starting".to_owned());
        }
        for (name, state) in snapshot {
            match state {
                None => return Err(format!("{name}: not connected")),
                Some((false, _)) => return Err(format!("{name}: RabbitMQ connection lost")),
                Some((true, store)) => match tokio::time::timeout(PING_TIMEOUT, store.ping()).await {
                    Ok(Ok(())) => {}
                    _ => return Err(format!("{name}: Redis does not answer")),
                },
            }
        }
        Ok(())
    }
}

impl ComponentHealth {
    fn set(&self, status: lapin::ConnectionStatus, store: Store) {
        if let Some(c) = self.health.lock().get_mut(self.index) {
            c.connected = Some((status, store));
        }
    }

    /// Ready once `consumers` consumers all report (through the returned
    /// latch) that the broker accepted them: declaring the topology is not
    /// yet consuming, and a queue the broker cannot serve fails later.
    pub fn ready_when(&self, consumers: usize, connection: &lapin::Connection, store: &Store) -> ReadyLatch {
        let latch = ReadyLatch {
            inner: Arc::new(Latch {
                left: AtomicUsize::new(consumers),
                health: self.clone(),
                status: connection.status().clone(),
                store: store.clone(),
            }),
        };
        if consumers == 0 {
            self.set(connection.status().clone(), store.clone());
        }
        latch
    }

    /// Lost a connection (or stopping).
    pub fn unready(&self) {
        if let Some(c) = self.health.lock().get_mut(self.index) {
            c.connected = None;
        }
    }
}

/// Counts consumers in; the last one makes its component ready.
#[derive(Clone)]
pub struct ReadyLatch {
    inner: Arc<Latch>,
}

struct Latch {
    left: AtomicUsize,
    health: ComponentHealth,
    status: lapin::ConnectionStatus,
    store: Store,
}

impl std::fmt::Debug for ReadyLatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyLatch").field("left", &self.inner.left.load(Ordering::Acquire)).finish()
    }
}

impl ReadyLatch {
    /// One consumer is consuming.
    pub fn arrive(&self) {
        let before = self.inner.left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.inner.health.set(self.inner.status.clone(), self.inner.store.clone());
            tracing::info!(ready = true, "{} connected and consuming", self.inner.health.name);
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ops: Ops,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ops);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let ready = ops.health.check().await.is_ok();
    ops.metrics.ready.set(i64::from(ready));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], ops.metrics.render())
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    match ops.health.check().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}
