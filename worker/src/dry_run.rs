//! Jobs of a `dry_run = true` app: converged against the app as it is,
//! with every write kept (`client::Recorder`) instead of sent, then
//! recorded in Redis (`scimfleet dry-run --app A`) and acknowledged.
//!
//! Nothing that follows a real write happens: no applied version, desired
//! state, evidence, re-check or audit record of a SCIM write, since the app
//! did not change. Turning `dry_run` off later applies the next event for
//! each person as usual.

use chrono::Utc;
use scimfleet_runtime::metrics::Metrics;
use scimfleet_schemas::Job;
use serde_json::json;

use crate::app::AppWorker;
use crate::client::PlannedWrite;
use crate::decision::{Decision, Transient};

/// Records what `job` would have sent, and settles it.
pub(crate) async fn record(
    worker: &AppWorker,
    job: &Job,
    writes: Vec<PlannedWrite>,
) -> Result<Decision, Transient> {
    let record = json!({
        "at": Utc::now(), "job_id": job.job_id, "person": job.person, "sequence": job.sequence,
        "action": job.action.name(), "writes": writes,
    });
    worker.store.dry_runs().push(&job.app, &record.to_string()).await?;
    worker
        .ops
        .metrics
        .dry_run_writes
        .get_or_create(&Metrics::app(job.app.as_str()))
        .inc_by(writes.len() as u64);
    tracing::info!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.action = job.action.name(), writes = writes.len(),
        "dry run: job {} would send {} write(s) to {}", job.job_id, writes.len(), job.app
    );
    Ok(Decision::Converged { changed: false, verified: false })
}
