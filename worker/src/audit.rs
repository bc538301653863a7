//! What the worker writes to the audit trail: every attempt that changed an
//! account (recorded before the delivery is acked), every verification
//! result, and every dead letter it publishes (recorded before the
//! publish, so a dead letter is never unaudited; a publish that then fails
//! requeues the job and may record it twice, never zero times).
//!
//! Entries name the person by pseudonym and carry counts and names, never
//! attribute values. The actor is the event's actor when the job carries
//! one; sweep and remediation jobs are the worker's own doing.

use std::time::Duration;

use scimfleet_runtime::config::Adopt;
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::{AuditEntry, AuditKind, Job};
use tracing::Span;

use crate::app::AppWorker;
use crate::converge::{Outcome, ReadBack};
use crate::decision::{Failure, Transient};

/// The entry of `kind` about `job`: actor, pseudonym, app, trace, job ids.
fn entry(worker: &AppWorker, kind: AuditKind, job: &Job) -> AuditEntry {
    AuditEntry::new(kind, job.actor.as_deref().unwrap_or("worker"))
        .person(worker.pseudonyms.person(&job.person))
        .app(job.app.as_str())
        .trace(propagation::trace_id(&Span::current()))
        .detail("job_id", job.job_id.to_string())
        .detail("event_id", job.event_id.to_string())
        .detail("sequence", job.sequence)
        .detail("action", job.action.name())
}

/// Records `entry`, trying again twice after a pause: the write it records
/// already happened, and a requeued job that finds the app converged
/// changes (and so records) nothing, so giving up loses the record.
async fn record(worker: &AppWorker, entry: AuditEntry) -> Result<(), Transient> {
    let mut pause = Duration::from_millis(200);
    for _ in 0..2 {
        match worker.audit.record(entry.clone()).await {
            Ok(()) => return Ok(()),
            Err(error) if error.recoverable() => tokio::time::sleep(pause).await,
            Err(error) => return Err(Transient::from(StoreError::from(error))),
        }
        pause *= 2;
    }
    worker.audit.record(entry).await.map_err(|e| Transient::from(StoreError::from(e)))
}

/// An attempt that changed the app: what it did, in counts. An account
/// bound to nobody that the upsert took or left alone is recorded first.
pub(crate) async fn scim_write(worker: &AppWorker, job: &Job, outcome: &Outcome) -> Result<(), Transient> {
    if let Some(adopt) = outcome.adopted {
        let decision = match adopt {
            Adopt::Link => "linked",
            Adopt::Skip => "left alone",
            Adopt::Fail => "refused",
        };
        let entry = entry(worker, AuditKind::Adoption, job).detail("decision", decision);
        record(worker, entry.detail("adopt", adopt.as_str())).await?;
    }
    if !outcome.changed() {
        return Ok(());
    }
    let entry = entry(worker, AuditKind::ScimWrite, job)
        .detail("attempt", job.attempt + 1)
        .detail("remediation", job.remediation)
        .detail("created", outcome.created)
        .detail("patched_attributes", outcome.patched_attributes)
        .detail("reactivated", outcome.reactivated)
        .detail("deactivated", outcome.deactivated)
        .detail("deleted", outcome.deleted)
        .detail("groups_added", outcome.groups_added)
        .detail("groups_removed", outcome.groups_removed)
        .detail("adopted", outcome.adopted == Some(Adopt::Link));
    record(worker, entry).await
}

/// A read-back judged: whether access is gone, by which check, what was found.
pub(crate) async fn verification(
    worker: &AppWorker,
    job: &Job,
    check: &str,
    read_back: &ReadBack,
) -> Result<(), Transient> {
    let entry = entry(worker, AuditKind::Verification, job)
        .detail("check", check)
        .detail("verified", read_back.verified)
        .detail("found", read_back.found.as_str())
        .detail("status", read_back.status);
    record(worker, entry).await
}

/// A dead letter about to be published: its reason and attempts. `job` is
/// `None` when the delivery could not be read as a job.
pub(crate) async fn dead_letter(
    worker: &AppWorker,
    job: Option<&Job>,
    failure: &Failure,
    attempts: u32,
) -> Result<(), Transient> {
    let entry = match job {
        Some(job) => entry(worker, AuditKind::DeadLettered, job),
        None => AuditEntry::new(AuditKind::DeadLettered, "worker")
            .app(worker.app.as_str())
            .trace(propagation::trace_id(&Span::current())),
    };
    let mut entry = entry.detail("reason", failure.reason.as_str()).detail("attempts", attempts);
    if let Some(status) = failure.last_status {
        entry = entry.detail("last_status", status);
    }
    record(worker, entry).await
}
