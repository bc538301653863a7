//! Keeping a process's main loop alive across broker and Redis outages.
//!
//! `supervise` runs the loop; when it fails with an error that a reconnect
//! can cure, it waits (capped exponential backoff, reset after a healthy
//! spell) and runs it again, which reconnects, redeclares the topology and
//! resumes consuming. Work that was unacknowledged when the connection broke
//! is redelivered by RabbitMQ, so nothing is lost. Errors a retry cannot cure
//! (bad configuration) end the process at once.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::telemetry::error_chain;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long was healthy: the next failure starts the backoff afresh.
const HEALTHY_SPELL: Duration = Duration::from_secs(60);

/// Whether an error is cured by reconnecting.
pub trait Recoverable {
    /// True for connection and consumer failures; false for configuration errors.
    fn recoverable(&self) -> bool;
}

/// Runs `run` until it succeeds (shutdown) or fails unrecoverably, restarting
/// it after recoverable failures. `what` names the loop in logs.
pub async fn supervise<F, Fut, E>(what: &str, shutdown: CancellationToken, mut run: F) -> Result<(), E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Recoverable,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let error = match run().await {
            Ok(()) => return Ok(()),
            Err(error) if !error.recoverable() || shutdown.is_cancelled() => return Err(error),
            Err(error) => error,
        };
        if started.elapsed() >= HEALTHY_SPELL {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(
            ready = false,
            error = error_chain(&error),
            retry_in_ms = backoff.as_millis() as u64,
            "{what} lost its connection; reconnecting in {} ms",
            backoff.as_millis()
        );
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(bool);

    impl Recoverable for Failure {
        fn recoverable(&self) -> bool {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_after_recoverable_failures_until_success() {
        let runs = AtomicU32::new(0);
        let result = supervise("test", CancellationToken::new(), || async {
            if runs.fetch_add(1, Ordering::SeqCst) < 3 { Err(Failure(true)) } else { Ok(()) }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_an_unrecoverable_failure() {
        let runs = AtomicU32::new(0);
        let result = supervise("test", CancellationToken::new(), || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Failure(false))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
