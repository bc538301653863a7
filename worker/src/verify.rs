//! Verification of deprovisions: what happens after an account was read back.
//!
//! Every deactivate or delete ends with a read-back of the account (see
//! `converge`), and so does every scheduled re-check (a `verify` job). Here
//! the result becomes evidence and, when access is still there, action:
//!
//! - **Verified**: the evidence record gets the check; after the deprovision
//!   itself (not after a re-check), one `verify` job per configured re-check
//!   delay is published to that delay's queue, durably in RabbitMQ.
//! - **Not verified**: an ERROR log with what was found and a counter. If
//!   the app remediates and the case has remediations left, the deprovision
//!   is published again (after the first retry tier) carrying its
//!   remediation count; its own read-back judges it. Otherwise the job goes
//!   to the app's dead-letter queue as `verification_failed`.
//!
//! The caller holds the (app, person) lease, so the evidence record's
//! read-modify-write is never raced by another worker; the write is fenced
//! by that lease, so a holder whose lease passed on records nothing and its
//! job is settled as superseded (no re-checks or remediation either).
//!
//! Every write of the record is signed with the worker's Ed25519 key
//! (`verification.evidence_signing_key_file`), so a record edited in Redis
//! afterwards no longer verifies with the worker's public key.
//!
//! The evidence is written here, and re-checks are published here (before
//! the job is acked); the job itself is not settled here: the outcome is a
//! [`Decision`] (ack, the remediation to a delay queue, or the dead-letter
//! queue) that `settle` carries out once the evidence is durable.

use chrono::{DateTime, Utc};
use scimfleet_runtime::broker::{Outgoing, Topology, persistent};
use scimfleet_runtime::metrics::Metrics;
use scimfleet_runtime::store::{Fence, Fenced};
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::{
    Check, DeadLetterReason, EvidenceRecord, Expectation, GroupPlan, Job, JobAction, Lookup,
};

use crate::app::AppWorker;
use crate::converge::ReadBack;
use crate::decision::{Decision, Failure, Note, Retry, RetryCause, Transient};
use crate::notes;
use crate::retry;
use crate::stats::WorkerStats;

/// Judges a job whose read-back is `read_back`: records the check as
/// evidence and decides what the job needs. `received_at` is when the
/// scheduler took the job's event, when known; `fence` is the lease's.
pub(crate) async fn judge(
    worker: &AppWorker,
    job: &Job,
    read_back: &ReadBack,
    changed: bool,
    received_at: Option<DateTime<Utc>>,
    fence: &Fence,
) -> Result<Decision, Transient> {
    let Some((lookup, expect, groups)) = target(job) else {
        return Ok(Decision::Converged { changed, verified: false });
    };
    let now = Utc::now();
    let is_recheck = matches!(job.action, JobAction::Verify { .. });
    let mut record = match worker.store.evidence().get(&job.app, &job.person, job.sequence).await? {
        Some(record) => record,
        None => EvidenceRecord::pending(job, expect),
    };
    if !is_recheck && job.remediation == 0 && record.applied_at.is_none() {
        record.applied_at = Some(now);
    }
    record.remediations = record.remediations.max(job.remediation);
    let check = Check { at: now, verified: read_back.verified, found: read_back.found.clone() };
    worker.ops.metrics.verification(job.app.as_str(), check_name(job), read_back.verified);
    crate::audit::verification(worker, job, check_name(job), read_back).await?;
    let verified_before = [&record.first_verification, &record.last_recheck]
        .iter()
        .any(|c| c.as_ref().is_some_and(|c| c.verified));
    if read_back.verified && !is_recheck && !verified_before {
        // Access is gone for the first time: the figure auditors and the SLO
        // ask for (a remediation after a failed re-check is not a new one).
        let since = received_at.unwrap_or(job.event_time);
        let seconds = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
        worker
            .ops
            .metrics
            .deprovision_verified
            .get_or_create(&Metrics::app(job.app.as_str()))
            .observe(seconds);
    }
    if record.first_verification.is_none() {
        record.first_verification = Some(check);
    } else {
        record.last_recheck = Some(check);
    }
    record.push_status(read_back.status);
    let target = (lookup, expect, groups);
    if read_back.verified {
        if !verified(worker, job, read_back, record, target, fence).await? {
            return Ok(Decision::superseded(job, worker.shortest_tier()));
        }
        return Ok(Decision::Converged { changed, verified: true });
    }
    not_verified(worker, job, read_back, record, target, fence).await
}

/// Signs the evidence `record` and stores it under the lease; false when
/// refused (the lease passed on).
async fn put(worker: &AppWorker, record: &mut EvidenceRecord, fence: &Fence) -> Result<bool, Transient> {
    worker.evidence_key.sign_record(record);
    let written = worker.store.evidence().put(record, worker.evidence_retention, fence).await?;
    Ok(written == Fenced::Written)
}

/// Access is gone: the check is evidence, and after the deprovision itself
/// (not after a re-check) the re-checks are scheduled. False when the
/// evidence was refused (the lease passed on): nothing was done.
async fn verified(
    worker: &AppWorker,
    job: &Job,
    read_back: &ReadBack,
    mut record: EvidenceRecord,
    (lookup, expect, groups): (&Lookup, Expectation, &GroupPlan),
    fence: &Fence,
) -> Result<bool, Transient> {
    let person = worker.pseudonyms.person(&job.person);
    let is_recheck = matches!(job.action, JobAction::Verify { .. });
    // A case dead-lettered earlier and replayed is settled now; its
    // failures and remediations keep the history.
    record.dead_lettered = false;
    if !put(worker, &mut record, fence).await? {
        return Ok(false);
    }
    WorkerStats::add(&worker.stats.verified, 1);
    tracing::info!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.check = check_name(job), found = %read_back.found,
        "access of {person} to {} verified gone ({})", job.app, read_back.found
    );
    if !is_recheck {
        schedule_rechecks(worker, job, lookup, expect, groups).await?;
    }
    Ok(true)
}

/// Access is still there: the failure is evidence, and the job is either
/// remediated (the deprovision again, after the first retry tier) or
/// dead-lettered as `verification_failed`.
async fn not_verified(
    worker: &AppWorker,
    job: &Job,
    read_back: &ReadBack,
    mut record: EvidenceRecord,
    (lookup, expect, groups): (&Lookup, Expectation, &GroupPlan),
    fence: &Fence,
) -> Result<Decision, Transient> {
    let now = Utc::now();
    let person = worker.pseudonyms.person(&job.person);
    record.failures += 1;
    WorkerStats::add(&worker.stats.verification_failed, 1);
    notes::verification_failure(worker).await;
    let remediate = worker.remediate && job.remediation < worker.max_remediations;
    tracing::error!(
        scimfleet.app = %job.app, job_id = %job.job_id, scimfleet.person = %person,
        scimfleet.check = check_name(job), found = %read_back.found, remediation = job.remediation,
        will_remediate = remediate,
        "verification failed: {person} still has access to {} ({})", job.app, read_back.found
    );
    if remediate {
        record.remediations = job.remediation + 1;
        if !put(worker, &mut record, fence).await? {
            return Ok(Decision::superseded(job, worker.shortest_tier()));
        }
        let again = Box::new(remediation(job, lookup, expect, groups));
        let tier = retry::tier_for(worker.retry_base, worker.topology.retry_tiers_ms()).unwrap_or(1000);
        let detail =
            format!("access still there ({}); remediation {} queued", read_back.found, job.remediation + 1);
        let cause = RetryCause::Remediation(Note { detail, status: Some(read_back.status) });
        return Ok(Decision::Retry(Retry { job: again, first_attempt_at: None, tier_ms: tier, cause }));
    }
    record.dead_lettered = true;
    if !put(worker, &mut record, fence).await? {
        return Ok(Decision::superseded(job, worker.shortest_tier()));
    }
    let detail = format!(
        "access still there after {} remediation(s): the account is {}",
        job.remediation, read_back.found
    );
    Ok(Decision::DeadLetter(Failure {
        reason: DeadLetterReason::VerificationFailed,
        detail,
        last_status: Some(read_back.status),
        first_attempt_at: now,
    }))
}

/// What a job deprovisioned (or re-checks): its look-up, expectation and groups.
fn target(job: &Job) -> Option<(&Lookup, Expectation, &GroupPlan)> {
    match &job.action {
        JobAction::Deactivate { lookup, groups } => Some((lookup, Expectation::Inactive, groups)),
        JobAction::Delete { lookup, groups } => Some((lookup, Expectation::Absent, groups)),
        JobAction::Verify { lookup, expect, groups, .. } => Some((lookup, *expect, groups)),
        JobAction::Upsert { .. } => None,
    }
}

fn check_name(job: &Job) -> &'static str {
    match (&job.action, job.remediation) {
        (JobAction::Verify { .. }, _) => "recheck",
        (_, 0) => "read_back",
        _ => "remediation",
    }
}

/// The deprovision again, one remediation further.
fn remediation(job: &Job, lookup: &Lookup, expect: Expectation, groups: &GroupPlan) -> Job {
    let (lookup, groups) = (lookup.clone(), groups.clone());
    let action = match expect {
        Expectation::Inactive => JobAction::Deactivate { lookup, groups },
        Expectation::Absent => JobAction::Delete { lookup, groups },
    };
    Job { attempt: 0, remediation: job.remediation + 1, action, ..job.clone() }
}

/// Routes a re-check to its delay queue and links its trace, when it runs,
/// to the deprovision's (a new trace: it runs minutes to days later).
fn recheck_headers(app: &scimfleet_schemas::AppId, delay_ms: u64) -> lapin::types::FieldTable {
    let mut headers = Topology::retry_route(app, delay_ms);
    propagation::inject_amqp_link(&tracing::Span::current(), &mut headers);
    headers
}

/// Publishes one `verify` job per re-check delay of the app, each to the
/// delay queue that returns it to the leaver lane when due.
async fn schedule_rechecks(
    worker: &AppWorker,
    job: &Job,
    lookup: &Lookup,
    expect: Expectation,
    groups: &GroupPlan,
) -> Result<(), Transient> {
    if worker.rechecks_ms.is_empty() {
        return Ok(());
    }
    let exchange = worker.topology.recheck_exchange();
    let checks: Vec<(Vec<u8>, String, u64)> = (1..)
        .zip(&worker.rechecks_ms)
        .map(|(check, &delay)| {
            let action = JobAction::Verify { lookup: lookup.clone(), expect, groups: groups.clone(), check };
            let verify = Job { attempt: 0, action, ..job.clone() };
            // Serialising our own type cannot fail.
            (serde_json::to_vec(&verify).unwrap_or_default(), Topology::route(&verify), delay)
        })
        .collect();
    let messages: Vec<Outgoing<'_>> = checks
        .iter()
        .map(|(body, key, delay)| Outgoing {
            exchange: &exchange,
            routing_key: key,
            body,
            properties: persistent("application/json").with_headers(recheck_headers(&job.app, *delay)),
            mandatory: true,
        })
        .collect();
    worker.publisher.publish_all(messages).await?;
    Ok(())
}
