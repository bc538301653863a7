//! The failure path of a job: classify the failed attempt into a
//! [`Decision`] (a delay queue when transient and within budget, the
//! dead-letter queue with its reason otherwise) and keep the app's circuit
//! breaker informed.
//!
//! Nothing here publishes or touches the delivery: `settle` carries the
//! decision out (publish confirmed, then ack), so a failure is never lost
//! between the two. The choice itself ([`choose`]) is pure and unit-tested;
//! the breaker's transitions are noted here, as the attempt ends, and each
//! failure is noted as the app's last error once settled (see `notes`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{DeadLetterReason, Job};

use crate::app::AppWorker;
use crate::converge::ApplyError;
use crate::decision::{Decision, Failure, Retry, RetryCause};
use crate::error::Disposition;
use crate::notes;
use crate::retry;

/// How an attempt failed.
#[derive(Clone, Copy)]
pub(crate) enum Failed<'a> {
    /// The app or the convergence said no.
    Apply(&'a ApplyError),
    /// The handler panicked (a bug, or input it cannot handle).
    Panicked,
    /// The attempt outlived `worker.job_timeout_ms`.
    TimedOut,
}

impl Failed<'_> {
    fn disposition(self) -> Disposition {
        match self {
            Self::Apply(error) => error.disposition(),
            // Another attempt may succeed; the budget bounds how many there are.
            Self::Panicked | Self::TimedOut => Disposition::Retry { after: None },
        }
    }

    fn exhausted(self) -> DeadLetterReason {
        match self {
            Self::Apply(_) => DeadLetterReason::RetriesExhausted,
            Self::Panicked | Self::TimedOut => DeadLetterReason::Poison,
        }
    }

    /// The reason of a permanent failure: an account bound to another person,
    /// or one bound to nobody that `adopt = "fail"` will not take, has a
    /// reason of its own, for the alert and the operator it needs.
    fn permanent(self) -> DeadLetterReason {
        match self {
            Self::Apply(ApplyError::IdentityConflict | ApplyError::Unbound) => {
                DeadLetterReason::IdentityConflict
            }
            _ => DeadLetterReason::PermanentError,
        }
    }

    fn status(self) -> Option<u16> {
        match self {
            Self::Apply(error) => error.status(),
            Self::Panicked | Self::TimedOut => None,
        }
    }

    fn detail(self, timeout: Duration) -> String {
        match self {
            Self::Apply(error) => error_chain(error),
            Self::Panicked => "the job handler panicked".to_owned(),
            Self::TimedOut => format!("the job did not finish within {} ms", timeout.as_millis()),
        }
    }
}

/// A job's retry budget and the delay tiers it may wait in.
#[derive(Debug, Clone, Copy)]
struct Budget<'a> {
    max_attempts: u32,
    max_age: Duration,
    base: Duration,
    cap: Duration,
    tiers_ms: &'a [u64],
}

impl<'a> Budget<'a> {
    fn of(worker: &'a AppWorker) -> Self {
        Budget {
            max_attempts: worker.max_attempts,
            max_age: worker.max_age,
            base: worker.retry_base,
            cap: worker.retry_cap,
            tiers_ms: worker.topology.retry_tiers_ms(),
        }
    }
}

/// What a failed attempt leads to, after `failures` attempts and `age`
/// since the first: the delay tier to wait in (`Ok`), or why it is
/// dead-lettered. `exhausted` is the reason once a retryable failure ran
/// out of budget; `jitter` is a random number in `[0, 1)`.
fn choose(
    disposition: Disposition,
    exhausted: DeadLetterReason,
    failures: u32,
    age: Duration,
    budget: Budget<'_>,
    jitter: f64,
) -> Result<u64, DeadLetterReason> {
    match disposition {
        Disposition::Retry { after }
            if retry::may_retry(failures, age, budget.max_attempts, budget.max_age) =>
        {
            let delay = retry::backoff(failures, budget.base, budget.cap, after, jitter);
            Ok(retry::tier_for(delay, budget.tiers_ms).unwrap_or(1000))
        }
        Disposition::Retry { .. } => Err(exhausted),
        _ => Err(DeadLetterReason::PermanentError),
    }
}

/// A failed attempt, first handled at `first_attempt_at` and judged at
/// `now`: a transient failure within budget waits in a delay queue;
/// anything else goes to the app's dead-letter queue with its reason.
pub(crate) async fn on_failure(
    worker: &AppWorker,
    job: &Job,
    failed: Failed<'_>,
    (first_attempt_at, now): (DateTime<Utc>, DateTime<Utc>),
    duration_ms: u64,
) -> Decision {
    let failures = job.attempt + 1;
    let age = (now - first_attempt_at).to_std().unwrap_or_default();
    let person = worker.pseudonyms.person(&job.person);
    let detail = failed.detail(worker.job_timeout);
    match failed {
        // The app answered; it is up, whatever it thought of this job.
        Failed::Apply(_) if !matches!(failed.disposition(), Disposition::Retry { .. }) => {
            note_success(worker).await
        }
        // A panic is a bug here, not a sign the app is down.
        Failed::Panicked => {}
        _ => note_failure(worker).await,
    }
    let chosen =
        choose(failed.disposition(), failed.exhausted(), failures, age, Budget::of(worker), rand::random());
    let reason = match chosen {
        Ok(tier) => {
            tracing::info!(
                scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
                scimfleet.attempt = failures, http.response.status_code = failed.status(),
                retry_in_ms = tier, error = %detail, duration_ms,
                "job {} failed (attempt {failures}); retrying in {tier} ms", job.job_id
            );
            let job = Box::new(Job { attempt: failures, ..job.clone() });
            let cause = RetryCause::Failed { error: detail, status: failed.status() };
            return Decision::Retry(Retry {
                job,
                first_attempt_at: Some(first_attempt_at),
                tier_ms: tier,
                cause,
            });
        }
        Err(DeadLetterReason::PermanentError) => failed.permanent(),
        Err(reason) => reason,
    };
    tracing::warn!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.action = job.action.name(), scimfleet.attempt = failures,
        http.response.status_code = failed.status(), reason = reason.as_str(),
        error = %detail, duration_ms,
        "job {} dead-lettered ({})", job.job_id, reason.as_str()
    );
    Decision::DeadLetter(Failure { reason, detail, last_status: failed.status(), first_attempt_at })
}

/// A job parked by an open breaker until it outlived `max_age_ms`: its
/// budget is spent without a single attempt reaching the app.
pub(crate) fn park_expired(worker: &AppWorker, job: &Job, first_attempt_at: DateTime<Utc>) -> Decision {
    let reason = DeadLetterReason::RetriesExhausted;
    let detail = format!(
        "the circuit breaker of {} stayed open until the job was older than max_age_ms ({} ms)",
        worker.app,
        worker.max_age.as_millis()
    );
    tracing::warn!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %worker.pseudonyms.person(&job.person),
        scimfleet.action = job.action.name(), scimfleet.attempt = job.attempt, scimfleet.breaker = "open",
        reason = reason.as_str(), error = %detail,
        "job {} dead-lettered ({})", job.job_id, reason.as_str()
    );
    Decision::DeadLetter(Failure { reason, detail, last_status: None, first_attempt_at })
}

pub(crate) async fn note_success(worker: &AppWorker) {
    if worker.breaker.success().is_some() {
        tracing::info!(scimfleet.app = %worker.app, scimfleet.breaker = "closed", "circuit breaker of {} closed", worker.app);
        worker.ops.metrics.breaker_open.get_or_create(&Metrics::app(worker.app.as_str())).set(0);
        notes::breaker(worker, false).await;
    }
}

async fn note_failure(worker: &AppWorker) {
    if worker.breaker.failure(Instant::now()).is_some() {
        tracing::warn!(
            scimfleet.app = %worker.app, scimfleet.breaker = "open",
            "circuit breaker of {} open: its jobs wait in delay queues until a probe succeeds", worker.app
        );
        worker.ops.metrics.breaker_open.get_or_create(&Metrics::app(worker.app.as_str())).set(1);
        notes::breaker(worker, true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const TIERS: [u64; 3] = [1000, 5000, 30_000];

    fn budget() -> Budget<'static> {
        Budget { max_attempts: 3, max_age: 60 * S, base: S, cap: 30 * S, tiers_ms: &TIERS }
    }

    const RETRY: Disposition = Disposition::Retry { after: None };

    #[test]
    fn transient_failures_within_budget_wait_in_a_tier() {
        assert_eq!(choose(RETRY, DeadLetterReason::Poison, 1, S, budget(), 1.0), Ok(1000));
        assert_eq!(choose(RETRY, DeadLetterReason::Poison, 2, S, budget(), 1.0), Ok(5000));
        let after = Disposition::Retry { after: Some(20 * S) };
        assert_eq!(choose(after, DeadLetterReason::Poison, 1, S, budget(), 0.0), Ok(30_000));
    }

    #[test]
    fn spent_budgets_dead_letter_with_the_exhausted_reason() {
        let exhausted = DeadLetterReason::RetriesExhausted;
        assert_eq!(choose(RETRY, exhausted, 3, S, budget(), 1.0), Err(exhausted));
        assert_eq!(
            choose(RETRY, DeadLetterReason::Poison, 1, 60 * S, budget(), 1.0),
            Err(DeadLetterReason::Poison)
        );
    }

    #[test]
    fn permanent_failures_dead_letter_at_once() {
        let refused = Disposition::DeadLetter { reason: "refused" };
        let chosen = choose(refused, DeadLetterReason::RetriesExhausted, 1, S, budget(), 1.0);
        assert_eq!(chosen, Err(DeadLetterReason::PermanentError));
    }
}
