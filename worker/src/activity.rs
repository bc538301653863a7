//! Settled jobs counted per app and minute, for the console's sparklines
//! (`runtime::store::Activity`): counted in memory as jobs settle, added to
//! Redis every [`FLUSH_EVERY`] and once more when the worker stops, so the
//! count costs a job no round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scimfleet_runtime::Store;
use scimfleet_runtime::store::{ActivityKind, MinuteCounts};
use scimfleet_runtime::telemetry::error_chain;
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
    /// One job of `app` settled as `kind`, now.
    pub(crate) fn count(&self, app: &str, kind: ActivityKind) {
        let minute = chrono::Utc::now().timestamp().div_euclid(60);
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.entry(minute).or_default().entry((app.to_owned(), kind)).or_insert(0) += 1;
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

/// New counts, and the task that flushes them every [`FLUSH_EVERY`] until `stop`.
pub(crate) fn start(store: &Store, stop: &CancellationToken) -> (Arc<ActivityCounts>, JoinHandle<()>) {
    let counts = Arc::new(ActivityCounts::default());
    (counts.clone(), tokio::spawn(flush_periodically(counts, store.clone(), stop.clone())))
}

/// Stops the flushing task (`stop` is the run's own token) after its last
/// flush: the counts of the jobs just settled.
pub(crate) async fn finish(flusher: JoinHandle<()>, stop: &CancellationToken) {
    stop.cancel();
    if tokio::time::timeout(Duration::from_secs(2), flusher).await.is_err() {
        tracing::warn!("job activity of the last seconds not recorded: Redis did not answer");
    }
}

async fn flush_periodically(counts: Arc<ActivityCounts>, store: Store, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(FLUSH_EVERY) => counts.flush(&store).await,
        }
    }
    counts.flush(&store).await;
}
