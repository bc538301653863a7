//! One app's worker: what its consumer, its stages (`failure`, `verify`)
//! and the settlement step share. It lives apart from all of them so that
//! imports run one way: the consumer calls the stages, then `settle`; no
//! stage reaches back into the consumer.

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::broker::{Publisher, Topology};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{KeyedLocks, Store};
use scimfleet_schemas::AppId;

use crate::breaker::Breaker;
use crate::converge::Converger;
use crate::stats::WorkerStats;

/// Everything one app's consumer needs.
pub(crate) struct AppWorker {
    pub app: AppId,
    pub concurrency: u16,
    pub converger: Converger,
    pub topology: Topology,
    pub store: Store,
    pub publisher: Publisher,
    pub locks: KeyedLocks,
    pub pseudonyms: Pseudonymizer,
    pub stats: Arc<WorkerStats>,
    /// Attempts per job, first included.
    pub max_attempts: u32,
    /// Age limit of a job, from its first attempt.
    pub max_age: Duration,
    /// First backoff step (the shortest delay tier).
    pub retry_base: Duration,
    /// Longest backoff (the longest delay tier).
    pub retry_cap: Duration,
    /// Longest one attempt may run.
    pub job_timeout: Duration,
    /// The app's circuit breaker.
    pub breaker: Breaker,
    /// This worker run's id in the breaker states kept for status reports.
    pub instance: Arc<str>,
    /// The process's metrics and health.
    pub ops: Ops,
    /// How long journey steps are kept.
    pub journey_retention: Duration,
    /// Re-check delays after a verified deprovision, ms.
    pub rechecks_ms: Vec<u64>,
    /// Whether a failed verification re-applies the deprovision.
    pub remediate: bool,
    /// Remediations before the case is dead-lettered.
    pub max_remediations: u32,
    /// How long evidence is kept.
    pub evidence_retention: Duration,
}
