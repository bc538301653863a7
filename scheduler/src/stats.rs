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
    /// Events kept until their `effective_at` (received again when released).
    pub scheduled: AtomicU64,
    /// Jobs published and confirmed.
    pub jobs_published: AtomicU64,
    /// Events handed back to the queue after an infrastructure error.
    pub requeued: AtomicU64,
    /// Deliveries that could not be settled (channel gone); the broker redelivers them.
    pub abandoned: AtomicU64,
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
    /// See [`SchedulerStats::scheduled`].
    pub scheduled: u64,
    /// See [`SchedulerStats::jobs_published`].
    pub jobs_published: u64,
    /// See [`SchedulerStats::requeued`].
    pub requeued: u64,
    /// See [`SchedulerStats::abandoned`].
    pub abandoned: u64,
}

impl SchedulerSnapshot {
    /// Events settled one way or another. A delivery whose ack was lost with
    /// its connection may be redelivered and counted again, so this can
    /// exceed the events published; use [`Self::in_flight`] to tell idle.
    pub fn settled(&self) -> u64 {
        self.accepted + self.stale + self.dead_lettered + self.scheduled
    }

    /// Deliveries taken but not finished yet (exact, redeliveries included).
    pub fn in_flight(&self) -> u64 {
        self.received.saturating_sub(self.settled() + self.requeued + self.abandoned)
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
            scheduled: get(&self.scheduled),
            jobs_published: get(&self.jobs_published),
            requeued: get(&self.requeued),
            abandoned: get(&self.abandoned),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::AcqRel);
    }
}
