//! A bound on what a stopping process waits for from RabbitMQ.
//!
//! Closing a channel or a connection, and cancelling a consumer, wait for
//! the broker's answer (`close-ok`, `cancel-ok`). A broker that stalls (a
//! paused VM, a node under a memory alarm, a half-open socket) would then
//! keep a process from ever exiting, and a console page or CLI command from
//! ever answering. Every such wait goes through [`within`]: past
//! [`STOP_WAIT`] the process goes on without the answer, which loses
//! nothing (unacked deliveries go back to their queue when the connection
//! drops, as after a crash).

use std::time::Duration;

/// How long a close or cancel waits for RabbitMQ's answer.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// `operation` (a close or a cancel), given up after [`STOP_WAIT`]:
/// `None` then, with a warning naming `what`.
pub async fn within<T>(what: &str, operation: impl Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(STOP_WAIT, operation).await {
        Ok(done) => Some(done),
        Err(_) => {
            let waited_ms = STOP_WAIT.as_millis() as u64;
            tracing::warn!(waited_ms, "RabbitMQ did not answer {what} in time; going on without its answer");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_returned_and_a_silent_broker_is_given_up_on() {
        assert_eq!(within("close", async { 7 }).await, Some(7));
        let never = std::future::pending::<()>();
        assert_eq!(within("close", never).await, None, "given up after STOP_WAIT, not waited for");
    }
}
