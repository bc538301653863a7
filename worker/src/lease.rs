//! The (app, person) lease a job is applied under, from the worker's side:
//! taken within a short, bounded wait, kept alive by a heartbeat while the
//! attempt runs, and watched so that an attempt whose lease was lost stops
//! before its next SCIM write.
//!
//! - **Taking** ([`take`]): the in-process lock of the (app, person), then
//!   the lease in Redis, tried a few times over at most [`WAIT`]. A person
//!   busy for longer (leased by another replica, or by a holder that died
//!   and whose lease has not expired yet) is not waited for: the caller
//!   defers the job to the shortest delay queue, so a consumer slot is never
//!   held by a wait and the other people of the app keep moving.
//! - **Heartbeat** ([`Heartbeat`]): renews the lease every third of its TTL.
//!   A renewal refused (someone else holds it) loses the lease at once;
//!   renewals that fail (Redis unreachable) lose it once a whole TTL passed
//!   since the last one that succeeded, when Redis may have expired it.
//! - **Still held** ([`Held`]): the cheap check the SCIM client consults
//!   before every write. It compares the clock with the local deadline
//!   (the last successful renewal's send time plus the TTL), so a process
//!   that was stalled past its lease (paused, swapped, SIGSTOPped) sees the
//!   loss on its next check, before its heartbeat has even run again.
//!
//! What a lost lease cannot stop is a write already on the wire; the
//! results recorded in Redis are fenced for that reason (see
//! `runtime::store::leases`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scimfleet_runtime::store::Lease;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{KeyGuard, Store};
use scimfleet_schemas::Job;
use tokio_util::sync::CancellationToken;

use crate::app::AppWorker;
use crate::decision::Transient;
use crate::stats::WorkerStats;

/// The longest a job waits for its person before it is deferred.
pub(crate) const WAIT: Duration = Duration::from_millis(250);

/// The first pause between two tries; doubled per try.
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// Whether an attempt still holds its lease; cheap to clone and to check.
#[derive(Debug, Clone)]
pub struct Held {
    inner: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// What deadlines are counted from.
    base: Instant,
    /// Milliseconds after `base` at which the lease may have expired.
    deadline_ms: AtomicU64,
    /// Cancelled once the lease is lost; never un-cancelled.
    lost: CancellationToken,
}

impl Held {
    /// A lease taken at `taken` (when the take was sent) for `ttl`.
    pub(crate) fn new(taken: Instant, ttl: Duration) -> Self {
        let deadline_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Self {
            inner: Arc::new(State {
                base: taken,
                deadline_ms: AtomicU64::new(deadline_ms),
                lost: CancellationToken::new(),
            }),
        }
    }

    /// Never lost: for a converger used outside the worker (tests, tools).
    pub fn always() -> Self {
        Self::new(Instant::now(), Duration::MAX)
    }

    /// Whether the lease is still held: not lost, and its deadline not passed.
    pub fn is_held(&self) -> bool {
        !self.inner.lost.is_cancelled() && self.left() > Duration::ZERO
    }

    /// Time left before the lease may have expired.
    fn left(&self) -> Duration {
        let deadline = Duration::from_millis(self.inner.deadline_ms.load(Ordering::Acquire));
        deadline.saturating_sub(self.inner.base.elapsed())
    }

    /// Waits until the lease is lost.
    pub(crate) async fn lost(&self) {
        self.inner.lost.cancelled().await;
    }

    /// Marks the lease lost, for good.
    pub(crate) fn lose(&self) {
        self.inner.lost.cancel();
    }

    /// A renewal sent at `sent` for `ttl` succeeded: the deadline moves on,
    /// unless the lease was already lost (a loss is final). Returns whether held.
    fn renewed(&self, sent: Instant, ttl: Duration) -> bool {
        if !self.is_held() {
            self.lose();
            return false;
        }
        let deadline = sent.saturating_duration_since(self.inner.base).saturating_add(ttl);
        let deadline_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        self.inner.deadline_ms.fetch_max(deadline_ms, Ordering::AcqRel);
        true
    }
}

/// A lease taken, with what came with it.
pub(crate) struct Taken {
    pub lease: Lease,
    /// The person's applied version in the app, read with the take.
    pub applied: Option<u64>,
    /// Whether the lease is still held, from the moment the take was sent.
    pub held: Held,
    /// The in-process lock of the (app, person), held with the lease.
    _lock: KeyGuard,
}

/// Takes the in-process lock and the lease of the job's (app, person),
/// trying for at most [`WAIT`]; `None` when the person stayed busy.
pub(crate) async fn take(worker: &AppWorker, job: &Job) -> Result<Option<Taken>, Transient> {
    let started = Instant::now();
    let key = format!("{}/{}", job.app, job.person);
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(lock) = worker.locks.try_lock(key.clone()) {
            let sent = Instant::now();
            let leases = worker.store.leases();
            if let Some((lease, applied)) =
                leases.try_take_applying(&job.app, &job.person, worker.lease_ttl).await?
            {
                let held = Held::new(sent, worker.lease_ttl);
                return Ok(Some(Taken { lease, applied, held, _lock: lock }));
            }
        }
        if pause == FIRST_PAUSE {
            WorkerStats::add(&worker.stats.lease_waits, 1);
        }
        if started.elapsed() + pause > WAIT {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// Renews a lease every third of its TTL until stopped (or dropped), and
/// marks it lost in its [`Held`] when it is.
pub(crate) struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts renewing `lease` (taken for `ttl`), reporting to `held`.
    pub(crate) fn start(store: &Store, lease: &Lease, ttl: Duration, held: &Held) -> Self {
        let task = tokio::spawn(beat(store.clone(), lease.clone(), ttl, held.clone()));
        Self { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn beat(store: Store, lease: Lease, ttl: Duration, held: Held) {
    let every = ttl / 3;
    loop {
        // Wake at the deadline at the latest, so the loss is reported then.
        tokio::time::sleep(every.min(held.left())).await;
        let left = held.left();
        if left.is_zero() {
            tracing::warn!("lease lost: not renewed for a whole TTL ({} ms)", ttl.as_millis());
            held.lose();
            return;
        }
        let sent = Instant::now();
        match tokio::time::timeout(left, store.leases().renew(&lease, ttl)).await {
            Ok(Ok(true)) => {
                if !held.renewed(sent, ttl) {
                    return;
                }
            }
            Ok(Ok(false)) => {
                tracing::warn!("lease lost: another holder took it");
                held.lose();
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(error = error_chain(&error), "could not renew a lease; trying again");
            }
            Err(_elapsed) => tracing::warn!("renewing a lease took too long; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_until_the_deadline_and_lost_for_good() {
        let held = Held::new(Instant::now(), Duration::from_secs(60));
        assert!(held.is_held());
        held.lose();
        assert!(!held.is_held());
        assert!(!held.renewed(Instant::now(), Duration::from_secs(60)), "a loss is final");
        assert!(!held.is_held());
        assert!(Held::always().is_held());
    }

    #[test]
    fn a_stall_past_the_ttl_is_seen_before_any_renewal() {
        // Taken 80 ms ago for 50 ms, not renewed since: as after a SIGSTOP.
        let held = Held::new(Instant::now() - Duration::from_millis(80), Duration::from_millis(50));
        assert!(!held.is_held(), "the deadline passed");
        assert!(!held.renewed(Instant::now(), Duration::from_secs(60)), "a late renewal does not revive it");
    }

    #[test]
    fn a_renewal_moves_the_deadline_from_its_send_time() {
        let held = Held::new(Instant::now() - Duration::from_millis(20), Duration::from_millis(30));
        assert!(held.left() <= Duration::from_millis(10));
        assert!(held.renewed(Instant::now(), Duration::from_secs(60)));
        assert!(held.left() > Duration::from_secs(59), "a TTL from the renewal");
    }

    async fn store() -> Store {
        let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let ns = format!("t-{}-heartbeat-{}", chrono::Utc::now().timestamp(), std::process::id());
        Store::connect(
            &scimfleet_runtime::config::RedisConfig::plain(scimfleet_runtime::Secret::new(url)),
            &ns,
        )
        .await
        .expect("redis")
    }

    #[tokio::test]
    async fn the_heartbeat_keeps_the_lease_and_reports_its_loss() {
        let store = store().await;
        let (app, person) = (
            scimfleet_schemas::AppId::parse("crm").expect("app"),
            scimfleet_schemas::PersonId::parse("E1").expect("person"),
        );
        let ttl = Duration::from_millis(300);
        let sent = Instant::now();
        let (lease, _) =
            store.leases().try_take_applying(&app, &person, ttl).await.expect("redis").expect("free");
        let held = Held::new(sent, ttl);
        let heartbeat = Heartbeat::start(&store, &lease, ttl, &held);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(held.is_held(), "renewed for three TTLs");
        let taken = store.leases().try_take_applying(&app, &person, ttl).await.expect("redis");
        assert!(taken.is_none(), "nobody else can take it");
        // The lease disappears (as when it expired and was taken over).
        store.delete_namespace().await.expect("redis");
        tokio::time::timeout(Duration::from_secs(2), held.lost()).await.expect("the loss is reported");
        assert!(!held.is_held());
        drop(heartbeat);
        store.delete_namespace().await.expect("cleanup");
    }
}
