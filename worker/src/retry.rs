//! Retry maths, pure and unit-tested: how long a transient failure waits,
//! which delay queue holds it, and when the budget is spent.
//!
//! The schedule is exponential from the first tier, with "equal jitter"
//! (half fixed, half random) so that a burst of failures does not come back
//! as a burst; an app's `Retry-After` is a floor, never shortened. The delay
//! is then rounded *up* to a configured tier (a queue with that TTL), so a
//! job never returns before its backoff or its `Retry-After`.

use std::time::Duration;

/// The longest `Retry-After` honoured; beyond it the job waits in the
/// longest tier and the app is asked again (a broken header must not park
/// work for days).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The backoff before attempt `attempt + 1`, after `attempt` failures (1-based).
///
/// `jitter` is a random number in `[0, 1)`, passed in so the function stays pure.
pub fn backoff(
    attempt: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1 << exponent).min(cap);
    let jittered = full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(floor) => jittered.max(floor.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// The smallest tier at least `delay` long, or the longest tier.
pub fn tier_for(delay: Duration, tiers_ms: &[u64]) -> Option<u64> {
    let wanted = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    tiers_ms.iter().copied().find(|&t| t >= wanted).or_else(|| tiers_ms.last().copied())
}

/// Whether a job that has failed `attempts` times, first `age` ago, may try again.
pub fn may_retry(attempts: u32, age: Duration, max_attempts: u32, max_age: Duration) -> bool {
    attempts < max_attempts && age < max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap_with_equal_jitter() {
        assert_eq!(backoff(1, S, 60 * S, None, 1.0), S);
        assert_eq!(backoff(1, S, 60 * S, None, 0.0), S / 2);
        assert_eq!(backoff(3, S, 60 * S, None, 1.0), 4 * S);
        assert_eq!(backoff(20, S, 60 * S, None, 1.0), 60 * S);
        assert_eq!(backoff(u32::MAX, S, 60 * S, None, 0.999), (60 * S).mul_f64(0.9995));
    }

    #[test]
    fn retry_after_is_a_floor_but_bounded() {
        assert_eq!(backoff(1, S, 60 * S, Some(30 * S), 0.0), 30 * S);
        assert_eq!(backoff(6, S, 60 * S, Some(S), 1.0), 32 * S);
        assert_eq!(backoff(1, S, 60 * S, Some(Duration::from_secs(10 * 86_400)), 0.0), MAX_RETRY_AFTER);
    }

    #[test]
    fn tiers_round_up_and_fall_back_to_the_longest() {
        let tiers = [1000, 5000, 30_000];
        assert_eq!(tier_for(Duration::from_millis(1), &tiers), Some(1000));
        assert_eq!(tier_for(Duration::from_millis(1000), &tiers), Some(1000));
        assert_eq!(tier_for(Duration::from_millis(1001), &tiers), Some(5000));
        assert_eq!(tier_for(Duration::from_secs(3600), &tiers), Some(30_000));
        assert_eq!(tier_for(S, &[]), None);
    }

    #[test]
    fn budget_counts_attempts_and_age() {
        assert!(may_retry(1, S, 3, 60 * S));
        assert!(!may_retry(3, S, 3, 60 * S));
        assert!(!may_retry(1, 60 * S, 3, 60 * S));
    }
}
