//! Counters of a worker's work, shared with whoever watches it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since start, over all of the worker's apps.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Job deliveries taken.
    pub received: AtomicU64,
    /// Jobs whose SCIM state converged (including "already converged").
    pub converged: AtomicU64,
    /// Jobs that changed something in the app.
    pub changed: AtomicU64,
    /// Jobs dropped as older than the version already applied.
    pub stale: AtomicU64,
    /// Transient failures sent to a delay queue to be tried again.
    pub retried: AtomicU64,
    /// Jobs parked untried in a delay queue: their app's circuit breaker
    /// was open, or their person stayed busy (leased elsewhere) past a
    /// short wait. Neither spends an attempt.
    pub deferred: AtomicU64,
    /// Jobs that found their person busy (leased by another worker or
    /// lane) and waited, briefly, for it; those still busy were deferred.
    pub lease_waits: AtomicU64,
    /// Jobs whose lease passed to another holder before their result was
    /// recorded: back in a delay queue, their attempt not spent.
    pub superseded: AtomicU64,
    /// Jobs dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Jobs handed back to the queue after an infrastructure error.
    pub requeued: AtomicU64,
    /// Deliveries that could not be settled (channel gone); the broker redelivers them.
    pub abandoned: AtomicU64,
    /// Read-backs that found access gone (after a deprovision or in a re-check).
    pub verified: AtomicU64,
    /// Read-backs that found access still there.
    pub verification_failed: AtomicU64,
    /// Deprovisions re-applied after a failed verification (the job settles
    /// when the remediation does).
    pub remediated: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// See [`WorkerStats::received`].
    pub received: u64,
    /// See [`WorkerStats::converged`].
    pub converged: u64,
    /// See [`WorkerStats::changed`].
    pub changed: u64,
    /// See [`WorkerStats::stale`].
    pub stale: u64,
    /// See [`WorkerStats::retried`].
    pub retried: u64,
    /// See [`WorkerStats::deferred`].
    pub deferred: u64,
    /// See [`WorkerStats::lease_waits`].
    pub lease_waits: u64,
    /// See [`WorkerStats::superseded`].
    pub superseded: u64,
    /// See [`WorkerStats::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`WorkerStats::requeued`].
    pub requeued: u64,
    /// See [`WorkerStats::abandoned`].
    pub abandoned: u64,
    /// See [`WorkerStats::verified`].
    pub verified: u64,
    /// See [`WorkerStats::verification_failed`].
    pub verification_failed: u64,
    /// See [`WorkerStats::remediated`].
    pub remediated: u64,
}

impl WorkerSnapshot {
    /// Jobs settled one way or another. A delivery whose ack was lost with
    /// its connection may be redelivered and counted again, so this can
    /// exceed the jobs published; use [`Self::in_flight`] to tell idle.
    pub fn settled(&self) -> u64 {
        self.converged + self.stale + self.dead_lettered
    }

    /// Deliveries taken but not finished yet (exact, redeliveries included).
    pub fn in_flight(&self) -> u64 {
        let done = self.settled()
            + self.retried
            + self.deferred
            + self.superseded
            + self.remediated
            + self.requeued
            + self.abandoned;
        self.received.saturating_sub(done)
    }
}

impl WorkerStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        WorkerSnapshot {
            received: get(&self.received),
            converged: get(&self.converged),
            changed: get(&self.changed),
            stale: get(&self.stale),
            retried: get(&self.retried),
            deferred: get(&self.deferred),
            lease_waits: get(&self.lease_waits),
            superseded: get(&self.superseded),
            dead_lettered: get(&self.dead_lettered),
            requeued: get(&self.requeued),
            abandoned: get(&self.abandoned),
            verified: get(&self.verified),
            verification_failed: get(&self.verification_failed),
            remediated: get(&self.remediated),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::AcqRel);
    }
}
