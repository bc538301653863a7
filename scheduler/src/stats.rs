//! Counters of the scheduler's work, shared with whoever watches it
//! (the in-process fleet of demo and tests today, `/metrics` later).

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since start.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Deliveries taken from the intake queue.
    pub received: AtomicU64,
    /// Events fanned out (jobs confirmed, registry updated).
    pub accepted: AtomicU64,
    /// Events dropped as not newer than what was already seen.
    pub stale: AtomicU64,
    /// Events dead-lettered (invalid, or not mappable).
    pub dead_lettered: AtomicU64,
    /// Jobs published and confirmed.
    pub jobs_published: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerSnapshot {
    /// See [`SchedulerStats::received`].
    pub received: u64,
    /// See [`SchedulerStats::accepted`].
    pub accepted: u64,
    /// See [`SchedulerStats::stale`].
    pub stale: u64,
    /// See [`SchedulerStats::dead_lettered`].
    pub dead_lettered: u64,
    /// See [`SchedulerStats::jobs_published`].
    pub jobs_published: u64,
}

impl SchedulerSnapshot {
    /// Events settled one way or another.
    pub fn settled(&self) -> u64 {
        self.accepted + self.stale + self.dead_lettered
    }
}

impl SchedulerStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> SchedulerSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        SchedulerSnapshot {
            received: get(&self.received),
            accepted: get(&self.accepted),
            stale: get(&self.stale),
            dead_lettered: get(&self.dead_lettered),
            jobs_published: get(&self.jobs_published),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::AcqRel);
    }
}
