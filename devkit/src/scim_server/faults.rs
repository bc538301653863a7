//! Switchable faults: the test server can be told at run time to be down,
//! slow, to fail some routes with a status (and `Retry-After`) or to hang up
//! without answering, so resilience tests see what a flaky SaaS app does.
//!
//! [`Faults`] is plain configuration; `FaultSwitch` holds the active
//! configuration and its dice behind one mutex and turns it into a
//! `Decision` per request, which the `observe` middleware carries out before
//! the handler runs (so an injected answer never changes state). The dice
//! are one [`StdRng`]: seeded from [`Faults::seed`] when given, so that a
//! test can replay the same sequence of faults for the same sequence of
//! requests, and from the OS otherwise.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::log::Resource;

/// Faults applied to matching requests. Default: none.
///
/// Faults apply to every request, before authentication, in this order:
/// latency, then `down`, then `drop_connection`, then the first hitting
/// rule of `errors`, then `ignore`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer every request with 503 (SCIM error body): the app is "down".
    pub down: bool,
    /// Per-route probabilistic errors, checked in order; the first rule whose
    /// route matches and whose dice roll hits applies.
    pub errors: Vec<ErrorRule>,
    /// Extra latency added to every request: uniformly random in `[min, max]`
    /// (`min` when `max <= min`).
    pub latency: Option<(Duration, Duration)>,
    /// Probability (0.0..=1.0) of closing the TCP connection after the
    /// request was read, without any response.
    pub drop_connection: f64,
    /// Seed for the dice, for a reproducible sequence of faults; `None`
    /// seeds from the OS.
    pub seed: Option<u64>,
    /// Requests on these routes are answered `204 No Content` and change
    /// nothing: an app that acknowledges a write it does not apply (the
    /// deactivation that "succeeds" but leaves the account active).
    pub ignore: Vec<Route>,
}

/// Fail requests on `route` with `status`, with probability `rate`.
#[derive(Debug, Clone)]
pub struct ErrorRule {
    /// Which requests the rule applies to.
    pub route: Route,
    /// Probability (0.0..=1.0) that a matching request fails.
    pub rate: f64,
    /// The status answered; one outside 100..=999 is answered as 500.
    pub status: u16,
    /// A `Retry-After` header to send with the error.
    pub retry_after: Option<RetryAfter>,
}

impl ErrorRule {
    /// Fails `route` with `status` at `rate`, without `Retry-After`.
    pub fn new(route: Route, rate: f64, status: u16) -> Self {
        Self { route, rate, status, retry_after: None }
    }

    /// The same rule, answering with `Retry-After`.
    pub fn with_retry_after(self, retry_after: RetryAfter) -> Self {
        Self { retry_after: Some(retry_after), ..self }
    }
}

/// The requests an [`ErrorRule`] applies to. Methods compare
/// case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Every request.
    Any,
    /// Requests with this method (e.g. `"PATCH"`), on any endpoint.
    Method(&'static str),
    /// Requests to this endpoint, whatever the method.
    Resource(Resource),
    /// Requests with this method to this endpoint.
    MethodOn(&'static str, Resource),
}

impl Route {
    /// Whether a `method` request to `resource` is on this route.
    pub fn matches(&self, method: &str, resource: Resource) -> bool {
        match *self {
            Self::Any => true,
            Self::Method(m) => m.eq_ignore_ascii_case(method),
            Self::Resource(r) => r == resource,
            Self::MethodOn(m, r) => r == resource && m.eq_ignore_ascii_case(method),
        }
    }
}

/// The `Retry-After` header of an injected error (RFC 9110 §10.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 30`.
    Seconds(u64),
    /// `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`: this long after the
    /// answer, rendered as an IMF-fixdate.
    Date(Duration),
}

impl RetryAfter {
    /// The header value, a date being computed from `now`.
    pub(crate) fn header_value(&self, now: DateTime<Utc>) -> String {
        match self {
            Self::Seconds(seconds) => seconds.to_string(),
            Self::Date(after) => {
                let at = TimeDelta::from_std(*after)
                    .ok()
                    .and_then(|after| now.checked_add_signed(after))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
            }
        }
    }
}

/// What to do with one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// Wait this long first.
    pub(crate) delay: Option<Duration>,
    /// Then answer (or hang up) instead of the handler.
    pub(crate) fault: Option<Fault>,
}

/// An answer that replaces the handler's.
#[derive(Debug, PartialEq)]
pub(crate) enum Fault {
    /// 503: the app is down.
    Down,
    /// Close the connection without answering.
    Drop,
    /// An error status, maybe with `Retry-After`.
    Error { status: u16, retry_after: Option<RetryAfter> },
    /// Success without effect.
    Ignore,
}

/// The active faults and their dice.
#[derive(Debug)]
pub(crate) struct FaultSwitch(Mutex<Active>);

#[derive(Debug)]
struct Active {
    faults: Faults,
    rng: StdRng,
}

impl Active {
    fn new(faults: Faults) -> Self {
        let rng = faults.seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
        Self { faults, rng }
    }
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self(Mutex::new(Active::new(Faults::default())))
    }
}

impl FaultSwitch {
    /// The active faults, locked; every change is a single assignment, so
    /// poisoning is ignored.
    fn active(&self) -> MutexGuard<'_, Active> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the active faults (and reseeds the dice).
    pub(crate) fn set(&self, faults: Faults) {
        *self.active() = Active::new(faults);
    }

    /// The active faults.
    pub(crate) fn get(&self) -> Faults {
        self.active().faults.clone()
    }

    /// Rolls the dice for a `method` request to `resource`.
    pub(crate) fn decide(&self, method: &str, resource: Resource) -> Decision {
        let mut active = self.active();
        let Active { faults, rng } = &mut *active;
        let delay =
            faults.latency.map(|(min, max)| if max > min { rng.random_range(min..=max) } else { min });
        let fault = if faults.down {
            Some(Fault::Down)
        } else if hits(rng, faults.drop_connection) {
            Some(Fault::Drop)
        } else {
            let error = faults
                .errors
                .iter()
                .filter(|rule| rule.route.matches(method, resource))
                .find(|rule| hits(rng, rule.rate))
                .map(|rule| Fault::Error { status: rule.status, retry_after: rule.retry_after.clone() });
            let ignored = faults.ignore.iter().any(|route| route.matches(method, resource));
            error.or(ignored.then_some(Fault::Ignore))
        };
        Decision { delay, fault }
    }
}

/// One roll: true with probability `rate` (never for 0 or NaN, always from 1).
fn hits(rng: &mut StdRng, rate: f64) -> bool {
    rate > 0.0 && rng.random::<f64>() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_method_and_resource() {
        assert!(Route::Any.matches("GET", Resource::Other));
        assert!(Route::Method("PATCH").matches("patch", Resource::Groups));
        assert!(!Route::Method("PATCH").matches("PUT", Resource::Users));
        assert!(Route::Resource(Resource::Users).matches("DELETE", Resource::Users));
        assert!(!Route::Resource(Resource::Users).matches("DELETE", Resource::Groups));
        assert!(Route::MethodOn("POST", Resource::Groups).matches("POST", Resource::Groups));
        assert!(!Route::MethodOn("POST", Resource::Groups).matches("POST", Resource::Users));
    }

    #[test]
    fn retry_after_renders_seconds_and_imf_fixdate() {
        let now = DateTime::parse_from_rfc3339("1994-11-06T08:49:07Z").expect("valid date").to_utc();
        assert_eq!(RetryAfter::Seconds(30).header_value(now), "30");
        let date = RetryAfter::Date(Duration::from_secs(30)).header_value(now);
        assert_eq!(date, "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(!RetryAfter::Date(Duration::MAX).header_value(now).is_empty(), "no overflow panic");
    }

    #[test]
    fn the_first_matching_rule_that_hits_applies() {
        let switch = FaultSwitch::default();
        assert!(switch.decide("GET", Resource::Users).fault.is_none(), "no faults by default");
        switch.set(Faults {
            errors: vec![
                ErrorRule::new(Route::Method("GET"), 0.0, 500),
                ErrorRule::new(Route::Any, 1.0, 429).with_retry_after(RetryAfter::Seconds(1)),
                ErrorRule::new(Route::Any, 1.0, 503),
            ],
            latency: Some((Duration::from_millis(9), Duration::from_millis(3))),
            ..Faults::default()
        });
        let decision = switch.decide("GET", Resource::Users);
        assert_eq!(decision.delay, Some(Duration::from_millis(9)), "min when max <= min");
        let retry_after = Some(RetryAfter::Seconds(1));
        assert_eq!(decision.fault, Some(Fault::Error { status: 429, retry_after }));
        switch.set(Faults { down: true, drop_connection: 1.0, ..switch.get() });
        assert_eq!(switch.decide("GET", Resource::Users).fault, Some(Fault::Down), "down wins");
    }

    #[test]
    fn a_seed_replays_the_same_faults() {
        let rolls = |seed| {
            let switch = FaultSwitch::default();
            let latency = Some((Duration::ZERO, Duration::from_millis(100)));
            let errors = vec![ErrorRule::new(Route::Any, 0.5, 503)];
            switch.set(Faults { errors, latency, seed: Some(seed), ..Faults::default() });
            (0..64)
                .map(|_| switch.decide("GET", Resource::Users))
                .map(|d| (d.delay, d.fault))
                .collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        assert_ne!(rolls(7), rolls(8));
    }
}
