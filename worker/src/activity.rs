//! Settled jobs counted per app and minute, for the console's sparklines
//! (`runtime::store::Activity`): counted in memory as jobs settle, added to
//! Redis every [`FLUSH_EVERY`] and once more when the worker stops, so the
//! count costs a job no round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scimfleet_runtime::Store;
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::store::{ActivityKind, MinuteCounts};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::AppId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the counts go to Redis.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Counts not yet added to Redis, by minute.
#[derive(Debug, Default)]
pub(crate) struct ActivityCounts {
    pending: Mutex<HashMap<i64, MinuteCounts>>,
}

impl ActivityCounts {
    /// One job of `app` settled as `kind` (or one request waited), now.
    pub(crate) fn count(&self, app: &str, kind: ActivityKind) {
        self.add(app, kind, 1);
    }

    fn add(&self, app: &str, kind: ActivityKind, count: u64) {
        let minute = chrono::Utc::now().timestamp().div_euclid(60);
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.entry(minute).or_default().entry((app.to_owned(), kind)).or_insert(0) += count;
    }

    /// Adds what is pending to Redis. On failure the counts are kept for the
    /// next flush (a minute's figure is late, not lost), unless they have
    /// outlived what Redis would keep anyway.
    async fn flush(&self, store: &Store) {
        let taken =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if taken.is_empty() {
            return;
        }
        if let Err(error) = store.activity().add(&taken).await {
            tracing::warn!(error = error_chain(&error), "job activity not recorded; kept for the next try");
            let oldest = chrono::Utc::now().timestamp().div_euclid(60)
                - scimfleet_runtime::store::ACTIVITY_RETENTION_MINUTES;
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (minute, counts) in taken.into_iter().filter(|(minute, _)| *minute > oldest) {
                let into = pending.entry(minute).or_default();
                for (key, count) in counts {
                    *into.entry(key).or_insert(0) += count;
                }
            }
        }
    }
}

/// New counts, and the task that flushes them every [`FLUSH_EVERY`] until
/// `stop`, adding each time the rate-limit waits `metrics` counted for
/// `apps` since the last flush (the SCIM client counts those there).
pub(crate) fn start(
    store: &Store,
    metrics: &Arc<Metrics>,
    apps: Vec<AppId>,
    stop: &CancellationToken,
) -> (Arc<ActivityCounts>, JoinHandle<()>) {
    let counts = Arc::new(ActivityCounts::default());
    // From what is counted now: the process's counters outlive a run (a
    // reconnect starts another), whose waits are in Redis already.
    let total = |app: &AppId| metrics.rate_limit_waits.get_or_create(&Metrics::app(app.as_str())).get();
    let seen = apps.iter().map(|app| (app.clone(), total(app))).collect();
    let waits = Waits { metrics: metrics.clone(), apps, seen };
    (counts.clone(), tokio::spawn(flush_periodically(counts, waits, store.clone(), stop.clone())))
}

/// The rate-limit waits of `metrics` already counted, per app.
struct Waits {
    metrics: Arc<Metrics>,
    apps: Vec<AppId>,
    seen: HashMap<AppId, u64>,
}

impl Waits {
    /// Counts the waits since the last call into `counts`.
    fn count_into(&mut self, counts: &ActivityCounts) {
        for app in &self.apps {
            let total = self.metrics.rate_limit_waits.get_or_create(&Metrics::app(app.as_str())).get();
            let seen = self.seen.insert(app.clone(), total).unwrap_or(0);
            if total > seen {
                counts.add(app.as_str(), ActivityKind::RateLimitWait, total - seen);
            }
        }
    }
}

/// Stops the flushing task (`stop` is the run's own token) after its last
/// flush: the counts of the jobs just settled.
pub(crate) async fn finish(flusher: JoinHandle<()>, stop: &CancellationToken) {
    stop.cancel();
    if tokio::time::timeout(Duration::from_secs(2), flusher).await.is_err() {
        tracing::warn!("job activity of the last seconds not recorded: Redis did not answer");
    }
}

async fn flush_periodically(
    counts: Arc<ActivityCounts>,
    mut waits: Waits,
    store: Store,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        waits.count_into(&counts);
        counts.flush(&store).await;
    }
    waits.count_into(&counts);
    counts.flush(&store).await;
}
