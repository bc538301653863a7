//! One app's worker: what its consumer, its stages (`failure`, `verify`)
//! and the settlement step share. It lives apart from all of them so that
//! imports run one way: the consumer calls the stages, then `settle`; no
//! stage reaches back into the consumer.

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::broker::{Publisher, Topology};
use scimfleet_runtime::config::{AppConfig, Config};
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::signing::SigningKey;
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{KeyedLocks, Store};
use scimfleet_schemas::AppId;

use crate::activity::ActivityCounts;
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
    /// TTL of the (app, person) lease, renewed every third of it.
    pub lease_ttl: Duration,
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
    /// Writes are recorded, not sent (see `dry_run`).
    pub dry_run: bool,
    /// Remediations before the case is dead-lettered.
    pub max_remediations: u32,
    /// How long evidence is kept.
    pub evidence_retention: Duration,
    /// The key every evidence record is signed with.
    pub evidence_key: Arc<SigningKey>,
    /// The process's audit trail.
    pub audit: AuditLog,
    /// Settled jobs per minute, for the console.
    pub activity: Arc<ActivityCounts>,
}

/// What every app's worker of one connection shares.
pub(crate) struct Shared<'a> {
    pub topology: &'a Topology,
    pub store: &'a Store,
    pub publisher: &'a Publisher,
    pub pseudonyms: &'a Pseudonymizer,
    pub stats: &'a Arc<WorkerStats>,
    pub instance: &'a Arc<str>,
    pub ops: &'a Ops,
    pub evidence_key: &'a Arc<SigningKey>,
    pub audit: &'a AuditLog,
    pub activity: &'a Arc<ActivityCounts>,
}

impl AppWorker {
    /// The shortest delay tier, ms: where jobs that did not get to try
    /// (or whose try does not count) wait before they come back.
    pub(crate) fn shortest_tier(&self) -> u64 {
        self.topology.retry_tiers_ms().first().copied().unwrap_or(1000)
    }

    /// The worker of `app`, its budgets and verification settings resolved
    /// from the app's own settings over the fleet's defaults.
    pub(crate) fn new(config: &Config, app: &AppConfig, converger: Converger, shared: &Shared<'_>) -> Self {
        let (worker, verification) = (&config.worker, &config.verification);
        let tier = |tier: Option<&u64>| Duration::from_millis(tier.copied().unwrap_or(1000));
        Self {
            app: app.id.clone(),
            concurrency: app.concurrency_or(worker.concurrency),
            converger,
            topology: shared.topology.clone(),
            store: shared.store.clone(),
            publisher: shared.publisher.clone(),
            locks: KeyedLocks::new(),
            pseudonyms: shared.pseudonyms.clone(),
            stats: shared.stats.clone(),
            max_attempts: app.max_attempts.unwrap_or(worker.max_attempts),
            max_age: Duration::from_millis(app.max_age_ms.unwrap_or(worker.max_age_ms)),
            retry_base: tier(worker.retry_tiers_ms.first()),
            retry_cap: tier(worker.retry_tiers_ms.last()),
            job_timeout: Duration::from_millis(worker.job_timeout_ms),
            lease_ttl: Duration::from_millis(worker.lease_ttl_ms),
            breaker: Breaker::new(worker.breaker_failures, Duration::from_millis(worker.breaker_cooldown_ms)),
            instance: shared.instance.clone(),
            ops: shared.ops.clone(),
            journey_retention: Duration::from_millis(config.telemetry.journey_retention),
            rechecks_ms: shared.topology.recheck_delays_ms(&app.id).to_vec(),
            remediate: app.remediate.unwrap_or(verification.remediate),
            dry_run: app.dry_run,
            max_remediations: app.max_remediations.unwrap_or(verification.max_remediations),
            evidence_retention: Duration::from_secs(u64::from(verification.evidence_retention_days) * 86_400),
            evidence_key: shared.evidence_key.clone(),
            audit: shared.audit.clone(),
            activity: shared.activity.clone(),
        }
    }
}
