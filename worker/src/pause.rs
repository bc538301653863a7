//! Operator pauses (`scimfleet pause --app A`): while an app is paused, no
//! worker process consumes its lanes, and its jobs wait in its queues.
//!
//! Each worker process reads the namespace's pauses (one small Redis hash,
//! see `store::Ops`) at start-up, before any lane consumes, then every
//! [`POLL_EVERY`], and hands each app's state to its lanes on a watch
//! channel. A lane that sees its app paused cancels its consumer
//! (`basic.cancel`: no new deliveries), lets the jobs it is applying finish
//! within the shutdown grace, and closes its channel, which returns the
//! deliveries it had prefetched but not started to the queue, in order. On
//! resume it consumes again on a new channel. Re-checks and retries of a
//! paused app are jobs on its queues too, so they wait as well; periodic
//! sweeps skip the app until it is resumed (`schedule`).
//!
//! Why a poll rather than a broadcast: the pause must be durable (a worker
//! that starts or reconnects while an app is paused must not consume it),
//! so Redis is read in any case. Reading one hash four times a second per
//! process, whatever the number of apps, costs Redis next to nothing, needs
//! no broker topology of its own and cannot miss a message. A failed read
//! keeps the last state seen (a Redis outage neither pauses nor resumes an
//! app) and is logged once per outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scimfleet_runtime::Store;
use scimfleet_runtime::broker::BrokerError;
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::ops::ReadyLatch;
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::AppId;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::WorkerError;
use crate::app::AppWorker;
use crate::consume;

/// How often a worker process reads the pauses: how soon a pause or a
/// resume takes effect, at most.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);

/// Whether each app this process serves is paused now.
#[derive(Clone)]
pub(crate) struct Pauses {
    apps: Arc<HashMap<AppId, watch::Receiver<bool>>>,
}

impl Pauses {
    /// Whether `app` is paused (false for an app this process does not serve).
    pub(crate) fn is_paused(&self, app: &AppId) -> bool {
        self.apps.get(app).is_some_and(|paused| *paused.borrow())
    }

    fn of(&self, app: &AppId) -> watch::Receiver<bool> {
        match self.apps.get(app) {
            Some(paused) => paused.clone(),
            // Not served here: never paused, its sender long gone.
            None => watch::channel(false).1,
        }
    }
}

/// Reads the pauses of `apps` now, then keeps them current until `stop`.
pub(crate) async fn follow(
    store: &Store,
    metrics: &Arc<Metrics>,
    apps: &[AppId],
    stop: &CancellationToken,
) -> Result<(Pauses, tokio::task::JoinHandle<()>), StoreError> {
    let paused = store.ops().paused_apps().await?;
    let mut senders = Vec::with_capacity(apps.len());
    let mut receivers = HashMap::with_capacity(apps.len());
    for app in apps {
        let is = paused.iter().any(|p| p == app.as_str());
        let (sender, receiver) = watch::channel(is);
        set_gauge(metrics, app, is);
        if is {
            tracing::info!(scimfleet.app = %app, "app {app} is paused by an operator; its jobs wait in its queues");
        }
        senders.push((app.clone(), sender));
        receivers.insert(app.clone(), receiver);
    }
    let polling = tokio::spawn(poll(store.clone(), metrics.clone(), senders, stop.clone()));
    Ok((Pauses { apps: Arc::new(receivers) }, polling))
}

async fn poll(
    store: Store,
    metrics: Arc<Metrics>,
    senders: Vec<(AppId, watch::Sender<bool>)>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        let paused = match store.ops().paused_apps().await {
            Ok(paused) => paused,
            Err(error) => {
                if !failing {
                    tracing::warn!(
                        error = error_chain(&error),
                        "cannot read the app pauses; keeping the last seen"
                    );
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        for (app, sender) in &senders {
            let is = paused.iter().any(|p| p == app.as_str());
            set_gauge(&metrics, app, is);
            if sender.send_if_modified(|was| std::mem::replace(was, is) != is) {
                let (now, then) =
                    if is { ("paused", "stop consuming") } else { ("resumed", "consume again") };
                tracing::info!(scimfleet.app = %app, "app {app} {now} by an operator; its lanes {then}");
            }
        }
    }
}

fn set_gauge(metrics: &Metrics, app: &AppId, paused: bool) {
    metrics.app_paused.get_or_create(&Metrics::app(app.as_str())).set(i64::from(paused));
}

/// Counts a lane in for readiness once, whether it first consumes or
/// first waits out a pause (a paused app is what the operator asked for,
/// not a process that is not ready).
#[derive(Clone)]
struct Arrival {
    latch: ReadyLatch,
    arrived: Arc<AtomicBool>,
}

impl Arrival {
    fn arrive(&self) {
        if !self.arrived.swap(true, Ordering::AcqRel) {
            self.latch.arrive();
        }
    }
}

/// One of an app's lanes, following the app's pause until `stop`: consumes
/// `queue` while the app is not paused, each time on a channel of its own.
pub(crate) async fn lane(
    worker: Arc<AppWorker>,
    queue: String,
    connection: Arc<lapin::Connection>,
    pauses: Pauses,
    (stop, grace): (CancellationToken, Duration),
    ready: ReadyLatch,
) -> Result<(), WorkerError> {
    let mut paused = pauses.of(&worker.app);
    let arrival = Arrival { latch: ready, arrived: Arc::default() };
    loop {
        if *paused.borrow_and_update() {
            arrival.arrive();
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                // The sender is gone only when the process stops.
                resumed = paused.wait_for(|p| !*p) => if resumed.is_err() { return Ok(()) },
            }
        }
        let consuming = stop.child_token();
        let watcher = tokio::spawn(cancel_on_pause(paused.clone(), consuming.clone()));
        let channel = connection.create_channel().await.map_err(BrokerError::Connect)?;
        let arrived = arrival.clone();
        let consumed =
            consume::consume(worker.clone(), queue.clone(), channel, consuming, grace, move || {
                arrived.arrive()
            })
            .await;
        watcher.abort();
        consumed?;
        if stop.is_cancelled() {
            return Ok(());
        }
        tracing::info!(scimfleet.app = %worker.app, messaging.destination.name = %queue, "stopped consuming {queue}: the app is paused");
    }
}

async fn cancel_on_pause(mut paused: watch::Receiver<bool>, consuming: CancellationToken) {
    if paused.wait_for(|p| *p).await.is_ok() {
        consuming.cancel();
    }
}
