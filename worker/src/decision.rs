//! What a stage decided about a job delivery, and how it ended.
//!
//! Stages (the consumer's apply, `failure`, `verify`) never see the AMQP
//! delivery: each returns a [`Decision`] saying what the job needs (ack,
//! a delay queue, the dead-letter queue, or a requeue), and `settle` alone
//! carries it out, so each delivery is settled exactly once, after its
//! effect is durable. What `settle` reports back is a [`Settled`], the
//! outcome that stats, metrics and the journey record.

use chrono::{DateTime, Utc};
use scimfleet_runtime::InfraError;
use scimfleet_runtime::broker::PublishError;
use scimfleet_runtime::store::StoreError;
use scimfleet_schemas::{DeadLetterReason, Job};

/// What a job delivery needs, as decided by the stage that handled it.
pub(crate) enum Decision {
    /// The job's state holds (applied version recorded): ack.
    Converged {
        changed: bool,
        /// A deprovision or re-check whose read-back found access gone.
        verified: bool,
    },
    /// Older than the version already applied: ack without applying it.
    Stale,
    /// Publish a job to a delay queue (confirmed), then ack.
    Retry(Retry),
    /// Publish the delivery to the app's dead-letter queue (confirmed), then ack.
    DeadLetter(Failure),
    /// Infrastructure failed before the effect was durable: requeue after a pause.
    Requeue(Transient),
}

impl From<Result<Decision, Transient>> for Decision {
    fn from(result: Result<Decision, Transient>) -> Self {
        result.unwrap_or_else(Decision::Requeue)
    }
}

/// A job to publish to a delay queue; the broker returns it to the job's
/// own queue (same routing key) when the delay expires.
pub(crate) struct Retry {
    /// The job as it is to come back (attempt count set).
    pub job: Box<Job>,
    /// Written to the first-attempt header when set; when not, the
    /// delivery's header (if any) rides along unchanged.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The delay queue's TTL.
    pub tier_ms: u64,
    /// Why, for the outcome.
    pub cause: RetryCause,
}

/// Why a job goes to a delay queue.
pub(crate) enum RetryCause {
    /// A transient failure within the job's budget.
    Failed {
        /// The error chain (free of personal data), the app's last error.
        error: String,
        /// The last HTTP status, when there was one.
        status: Option<u16>,
    },
    /// The app's circuit breaker is open, or the person stayed busy
    /// (leased elsewhere): parked untried.
    Deferred,
    /// Verification found access still there: the deprovision again.
    Remediation(Note),
    /// The attempt's lease passed to another holder before its result was
    /// recorded (lost mid-attempt, or a fenced write refused): the job comes
    /// back unchanged, its attempt not spent, to be dropped as stale or to
    /// converge again (idempotently) under a lease of its own.
    Superseded,
}

impl Decision {
    /// The job back through the delay queue of `tier_ms`, its attempt count
    /// and first-attempt time unchanged: for a job that did not get to try
    /// (its person busy elsewhere, `Deferred`) or whose try does not count
    /// (`Superseded`).
    pub(crate) fn again(job: &Job, tier_ms: u64, cause: RetryCause) -> Self {
        Decision::Retry(Retry { job: Box::new(job.clone()), first_attempt_at: None, tier_ms, cause })
    }

    /// The lease passed on before the job's result was recorded: the job
    /// again, through the delay queue of `tier_ms` (the shortest).
    pub(crate) fn superseded(job: &Job, tier_ms: u64) -> Self {
        Self::again(job, tier_ms, RetryCause::Superseded)
    }
}

/// Why a job is dead-lettered, for its envelope.
pub(crate) struct Failure {
    pub reason: DeadLetterReason,
    pub detail: String,
    pub last_status: Option<u16>,
    /// When the job was first handled.
    pub first_attempt_at: DateTime<Utc>,
}

/// How a job was settled.
pub(crate) enum Settled {
    Converged {
        changed: bool,
        /// A deprovision or re-check whose read-back found access gone.
        verified: bool,
    },
    Retried(Note),
    Deferred,
    /// The lease passed on before the result was recorded; the job is back in a delay queue.
    Superseded,
    Stale,
    DeadLettered(Note),
    /// Verification found access still there; a remediation was queued.
    Remediating(Note),
}

/// Why a job was retried, dead-lettered or remediated, for its journey.
pub(crate) struct Note {
    /// The error chain or finding (free of personal data).
    pub(crate) detail: String,
    /// The last HTTP status, when there was one.
    pub(crate) status: Option<u16>,
}

/// The job could not be settled now; it goes back to the queue.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub(crate) struct Transient(#[source] InfraError);

fn describe(error: &InfraError) -> &'static str {
    match error {
        InfraError::Store(_) => "Redis is unavailable",
        InfraError::Publish(_) => "dead-lettering failed",
        _ => "RabbitMQ is unavailable",
    }
}

impl From<StoreError> for Transient {
    fn from(error: StoreError) -> Self {
        Self(error.into())
    }
}

impl From<PublishError> for Transient {
    fn from(error: PublishError) -> Self {
        Self(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let text = include_str!("../../schemas/tests/fixtures/job-deactivate.json");
        Job { attempt: 3, ..Job::parse(text.as_bytes()).expect("a valid job") }
    }

    #[test]
    fn a_superseded_job_comes_back_unchanged_through_the_given_tier() {
        let Decision::Retry(retry) = Decision::superseded(&job(), 1000) else { panic!("a retry") };
        assert_eq!(retry.job.attempt, 3, "no attempt spent");
        assert_eq!(retry.job.job_id, job().job_id);
        assert_eq!(retry.tier_ms, 1000);
        assert!(retry.first_attempt_at.is_none(), "its age header rides along unchanged");
        assert!(matches!(retry.cause, RetryCause::Superseded));
    }
}
