//! Waiting on a condition, the one way tests and the [`Fleet`](crate::fleet::Fleet)
//! do it: poll an async check with a short backoff until it holds or a
//! deadline passes, and on timeout name what was awaited and for how long.
//!
//! A check answers `bool` (holds or not yet), `Option<T>` (the value once it
//! is there) or a `Result` of either; an `Err` ends the wait at once, since
//! a broken broker connection does not heal by polling it harder.

use std::time::Duration;

use tokio::time::Instant;

/// First pause between two polls; it doubles up to [`MAX_PAUSE`]. Short, so
/// a test that waits for a quick effect is not slowed by the wait itself.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause between two polls: a check may cost a broker round trip,
/// and a late condition is still seen within this much of happening.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Why [`until`] gave up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The condition did not hold within the time allowed.
    #[error("timed out after {waited:?} waiting for {what}")]
    TimedOut {
        /// What was awaited, as the caller named it.
        what: String,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// The check itself failed.
    #[error("failed while waiting for {what}")]
    Check {
        /// What was awaited, as the caller named it.
        what: String,
        /// The check's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a check answers: not yet, done (with a value), or failed.
pub trait Check {
    /// The value [`until`] returns once the condition holds.
    type Value;
    /// `Ok(None)`: not yet; `Ok(Some(_))`: holds; `Err`: stop waiting.
    fn into_outcome(self) -> Result<Option<Self::Value>, Box<dyn std::error::Error + Send + Sync>>;
}

impl Check for bool {
    type Value = ();
    fn into_outcome(self) -> Result<Option<()>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.then_some(()))
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    fn into_outcome(self) -> Result<Option<T>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self)
    }
}

impl<C: Check, E: Into<Box<dyn std::error::Error + Send + Sync>>> Check for Result<C, E> {
    type Value = C::Value;
    fn into_outcome(self) -> Result<Option<C::Value>, Box<dyn std::error::Error + Send + Sync>> {
        self.map_err(Into::into)?.into_outcome()
    }
}

/// Polls `condition` until it holds (returning its value) or `within` has
/// passed (a [`WaitError::TimedOut`] naming `what` and the time waited).
/// The condition is checked at least once, and once more at the deadline.
pub async fn until<C: Check>(
    what: &str,
    within: Duration,
    mut condition: impl AsyncFnMut() -> C,
) -> Result<C::Value, WaitError> {
    let started = Instant::now();
    let deadline = started + within;
    let mut pause = FIRST_PAUSE;
    loop {
        let outcome = condition().await.into_outcome();
        match outcome {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(source) => return Err(WaitError::Check { what: what.to_owned(), source }),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut { what: what.to_owned(), waited: now - started });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Like [`until`] for conditions that must hold on `times` polls in a row
/// (a queue seen empty once may be between a get and a publish).
pub async fn until_steady<C: Check>(
    what: &str,
    within: Duration,
    times: u32,
    mut condition: impl AsyncFnMut() -> C,
) -> Result<C::Value, WaitError> {
    let mut in_a_row = 0;
    until(what, within, async || -> Result<Option<C::Value>, Box<dyn std::error::Error + Send + Sync>> {
        match condition().await.into_outcome()? {
            Some(value) => {
                in_a_row += 1;
                Ok((in_a_row >= times).then_some(value))
            }
            None => {
                in_a_row = 0;
                Ok(None)
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut polls = 0;
        let value = until("three polls", Duration::from_secs(5), async || {
            polls += 1;
            (polls == 3).then_some(polls)
        })
        .await
        .expect("holds");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn a_timeout_names_what_was_awaited_and_for_how_long() {
        let error =
            until("the moon", Duration::from_millis(30), async || false).await.expect_err("times out");
        let WaitError::TimedOut { ref what, waited } = error else { panic!("{error:?}") };
        assert_eq!(what, "the moon");
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(error.to_string().contains("the moon"), "{error}");
    }

    #[tokio::test]
    async fn a_failing_check_ends_the_wait_at_once() {
        let started = Instant::now();
        let error = until("a broken check", Duration::from_secs(5), async || Err::<bool, _>("broken"))
            .await
            .expect_err("fails");
        assert!(matches!(error, WaitError::Check { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn steady_needs_the_condition_several_polls_in_a_row() {
        let mut polls = 0;
        until_steady("two in a row", Duration::from_secs(5), 2, async || {
            polls += 1;
            // Holds on 1, fails on 2, holds on 3 and 4.
            polls != 2
        })
        .await
        .expect("holds");
        assert_eq!(polls, 4);
    }
}
