//! Pacing the requests to one app, across every worker replica.
//!
//! Before each SCIM request the client asks Redis (one script call) whether
//! it may go: the app's own rate bucket, then its rate group's (a vendor that
//! limits all its SCIM apps together), and the app's pause. A 429 sets the
//! pause for its `Retry-After`, so no replica calls that app before then,
//! while other apps are unaffected. The schedule lives in Redis (GCRA on
//! Redis's clock), so N replicas together stay within the limit.
//!
//! A 429 also pauses this process at once, before Redis has it: under load
//! the pause can reach Redis a few hundred milliseconds later, behind this
//! process's queued pacing calls, whose "go" answers would otherwise send a
//! burst of requests to an app that has just asked us to wait. Each request
//! checks the local pause again after Redis let it go.
//!
//! An app without rate limits has only the pause to ask about, and asking
//! before every request doubled the Redis round trips of a job. So its
//! answer is kept for `SHARED_PAUSE_REFRESH`: a pause set by another
//! replica is honoured here at most that much later (this process's own
//! 429s still pause it at once). Rate buckets are asked every time, as a
//! shared schedule must be.
//!
//! If Redis cannot be asked, the request goes unpaced: the lease and version
//! checks around every job already fail while Redis is down, so this only
//! matters for a blip, and blocking every request on it would be worse.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use scimfleet_runtime::Store;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::AppId;

/// How long an app without rate limits trusts its last look at the shared
/// pause.
const SHARED_PAUSE_REFRESH: Duration = Duration::from_millis(100);

/// This process's last look at an app's shared pause.
#[derive(Debug, Clone, Copy)]
struct PauseView {
    checked_at: Instant,
    /// Until when Redis said the app is paused; `None`: not paused.
    until: Option<Instant>,
}

/// One rate bucket.
#[derive(Debug, Clone)]
struct Bucket {
    name: String,
    interval: Duration,
    burst: u32,
}

/// The pacing of one app.
#[derive(Clone)]
pub struct Pacer {
    store: Store,
    app: AppId,
    buckets: Vec<Bucket>,
    /// Until when this process holds back after a 429 it received itself.
    local_pause: Arc<Mutex<Option<Instant>>>,
    /// The shared pause as last read, for apps without buckets.
    shared_pause: Arc<Mutex<Option<PauseView>>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("app", &self.app).field("buckets", &self.buckets).finish()
    }
}

impl Pacer {
    /// A pacer for `app`: `limits` are (bucket name, requests per second, burst).
    pub fn new(store: Store, app: AppId, limits: &[(String, f64, u32)]) -> Self {
        let buckets = limits
            .iter()
            .map(|(name, rate, burst)| Bucket {
                name: name.clone(),
                interval: Duration::from_secs_f64(1.0 / rate),
                burst: (*burst).max(1),
            })
            .collect();
        Self { store, app, buckets, local_pause: Arc::default(), shared_pause: Arc::default() }
    }

    /// Waits until a request to the app may go.
    pub async fn acquire(&self) {
        loop {
            self.wait_local_pause().await;
            if self.buckets.is_empty() {
                self.wait_shared_pause().await;
            }
            for bucket in &self.buckets {
                self.wait_for(Some(&bucket.name), bucket.interval, bucket.burst).await;
            }
            // A 429 may have arrived while Redis was being asked.
            if self.local_pause_left().is_none() {
                return;
            }
        }
    }

    fn local_pause_left(&self) -> Option<Duration> {
        let until = (*self.local_pause.lock().unwrap_or_else(PoisonError::into_inner))?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }

    async fn wait_local_pause(&self) {
        while let Some(left) = self.local_pause_left() {
            tokio::time::sleep(left).await;
        }
    }

    /// Waits out the app's shared pause, reading it from Redis when the
    /// last look is older than [`SHARED_PAUSE_REFRESH`].
    async fn wait_shared_pause(&self) {
        loop {
            let now = Instant::now();
            let view = *self.shared_pause.lock().unwrap_or_else(PoisonError::into_inner);
            let until = match view {
                Some(view) if now < view.checked_at + SHARED_PAUSE_REFRESH => view.until,
                _ => match self.store.pacing().pace(&self.app, None, Duration::ZERO, 1).await {
                    Ok(wait) => {
                        let now = Instant::now();
                        let until = (!wait.is_zero()).then(|| now + wait);
                        let fresh = PauseView { checked_at: now, until };
                        *self.shared_pause.lock().unwrap_or_else(PoisonError::into_inner) = Some(fresh);
                        until
                    }
                    Err(error) => {
                        tracing::warn!(scimfleet.app = %self.app, error = error_chain(&error), "pacing unavailable; request sent unpaced");
                        return;
                    }
                },
            };
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    async fn wait_for(&self, bucket: Option<&str>, interval: Duration, burst: u32) {
        loop {
            match self.store.pacing().pace(&self.app, bucket, interval, burst).await {
                Ok(wait) if wait.is_zero() => return,
                Ok(wait) => tokio::time::sleep(wait).await,
                Err(error) => {
                    tracing::warn!(scimfleet.app = %self.app, error = error_chain(&error), "pacing unavailable; request sent unpaced");
                    return;
                }
            }
        }
    }

    /// Holds every replica's requests to the app for `duration` (after a 429).
    pub async fn pause(&self, duration: Duration) {
        {
            let until = Instant::now() + duration;
            let mut local = self.local_pause.lock().unwrap_or_else(PoisonError::into_inner);
            *local = Some(local.map_or(until, |current| current.max(until)));
        }
        tracing::info!(scimfleet.app = %self.app, pause_ms = duration.as_millis() as u64, "app {} answered 429; paused", self.app);
        if let Err(error) = self.store.pacing().pause(&self.app, duration).await {
            tracing::warn!(scimfleet.app = %self.app, error = error_chain(&error), "could not record the pause");
        }
    }
}
