//! A circuit breaker per app and worker process.
//!
//! After `threshold` consecutive transient failures the breaker opens: jobs
//! of that app are parked in a delay queue without calling the app (and
//! without spending their retry budget) until the cool-down has passed. Then
//! it is half-open: one job probes; success closes the breaker, failure opens
//! it for another cool-down. A dead app thus costs one probe per cool-down,
//! not a request per job, and recovers by itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker allows for the next job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Call the app.
    Pass,
    /// Call the app: this job is the probe of a half-open breaker.
    Probe,
    /// Do not call the app; try again after this long.
    Wait(Duration),
}

/// The breaker's state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls flow.
    Closed,
    /// Calls are held back.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// One app's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            inner: Mutex::new(Inner { failures: 0, open_until: None, probing: false }),
        }
    }

    /// How long the breaker stays open once it opens (or re-opens).
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the next job may call the app, at `now`.
    pub fn gate(&self, now: Instant) -> Gate {
        let mut inner = self.inner();
        match inner.open_until {
            None => Gate::Pass,
            Some(until) if now < until => Gate::Wait(until - now),
            // Cool-down over: one probe at a time; the others wait a little.
            Some(_) if inner.probing => Gate::Wait(self.cooldown / 4),
            Some(_) => {
                inner.probing = true;
                Gate::Probe
            }
        }
    }

    /// Records a successful call (or an answer that is not the app's fault).
    pub fn success(&self) -> Option<State> {
        let mut inner = self.inner();
        let was_open = inner.open_until.is_some();
        *inner = Inner { failures: 0, open_until: None, probing: false };
        was_open.then_some(State::Closed)
    }

    /// Records a transient failure at `now`; returns `Some(Open)` when this
    /// failure opened (or re-opened) the breaker.
    pub fn failure(&self, now: Instant) -> Option<State> {
        let mut inner = self.inner();
        inner.failures = inner.failures.saturating_add(1);
        let reopen = inner.probing || (inner.open_until.is_none() && inner.failures >= self.threshold);
        if reopen {
            inner.open_until = Some(now + self.cooldown);
            inner.probing = false;
            return Some(State::Open);
        }
        None
    }

    /// The current state.
    pub fn state(&self, now: Instant) -> State {
        let inner = self.inner();
        match inner.open_until {
            None => State::Closed,
            Some(until) if now < until => State::Open,
            Some(_) => State::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(10);

    #[test]
    fn opens_after_the_threshold_and_holds_calls_back() {
        let b = Breaker::new(3, COOL);
        let t = Instant::now();
        assert_eq!(b.failure(t), None);
        assert_eq!(b.failure(t), None);
        assert_eq!(b.gate(t), Gate::Pass);
        assert_eq!(b.failure(t), Some(State::Open));
        assert_eq!(b.gate(t + Duration::from_secs(4)), Gate::Wait(Duration::from_secs(6)));
        assert_eq!(b.state(t), State::Open);
    }

    #[test]
    fn one_probe_after_the_cooldown_closes_or_reopens() {
        let b = Breaker::new(1, COOL);
        let t = Instant::now();
        assert_eq!(b.failure(t), Some(State::Open));
        let later = t + COOL;
        assert_eq!(b.gate(later), Gate::Probe);
        assert_eq!(b.gate(later), Gate::Wait(COOL / 4), "only one probe at a time");
        assert_eq!(b.failure(later), Some(State::Open), "a failed probe re-opens");
        assert!(matches!(b.gate(later), Gate::Wait(_)));
        assert_eq!(b.gate(later + COOL), Gate::Probe);
        assert_eq!(b.success(), Some(State::Closed));
        assert_eq!(b.gate(later + COOL), Gate::Pass);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, COOL);
        let t = Instant::now();
        b.failure(t);
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(t), None, "the count started again");
    }
}
