//! `scimfleet approvals release-wave|cancel-wave WAVE`: the decision on a
//! held mass deprovision, taken as a whole. Both take an approver's code.
//! Releasing publishes every deprovision the wave holds and restarts its
//! scope's window; cancelling leaves them unapplied (each audited, and
//! marked so that sweeps leave the accounts alone too) until a newer event
//! for the person says otherwise. A release cut short (the
//! broker went away) is finished by running it again.

use std::io::Write;

use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::{Approval, HeldJob, Wave};
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AuditEntry, AuditKind};

use super::decide::Decision;
use super::note::{self, Target, refused};
use super::release::{approvers_of, publish, spend_code};
use crate::AdminError;

/// Jobs published per batch of confirms.
const BATCH: usize = 200;

/// Releases wave `id` as `approver` with their TOTP `code` once enough approvers have.
pub async fn release_wave(
    config: &Config,
    id: &str,
    approver: &str,
    code: &str,
    out: &mut impl Write,
) -> Result<Decision, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let wave = find_wave(&store, id).await?;
    if wave.state == "cancelled" {
        return Err(AdminError::Refused(format!("wave {id} was cancelled")));
    }
    let approvers = approvers_of(config)?;
    let who = spend_code((config, &store), &approvers, (approver, code), Target::Wave(id)).await?;
    let audit = AuditLog::for_operator(config, store.clone())?;
    let required = u32::from(config.governance.approvals_required);
    if wave.state == "open" {
        let count = match store.waves().approve(id, &who.name).await? {
            Approval::Gone => return Err(AdminError::Refused(format!("no wave {id}"))),
            Approval::Again => {
                let reason = format!("approver `{approver}` approved wave {id} already");
                return Err(refused(config, &store, approver, Target::Wave(id), reason).await);
            }
            Approval::Counted(n) => n,
        };
        if count < required {
            let entry = AuditEntry::new(AuditKind::Approved, &who.name)
                .detail("wave", id)
                .detail("scope", wave.scope.as_str())
                .detail("approvals", count)
                .detail("required", required)
                .detail("released", false);
            audit.record(entry).await?;
            writeln!(
                out,
                "wave {id}: approved by {approver} ({count} of {required}); waiting for another approver"
            )?;
            return Ok(Decision::Pending { approvals: count, required });
        }
        store.waves().close(&wave, true).await?;
    }
    let held = members(&store, id).await?;
    let entry = AuditEntry::new(AuditKind::WaveReleased, &who.name)
        .detail("wave", id)
        .detail("scope", wave.scope.as_str())
        .detail("count", held.len());
    audit.record(entry).await?;
    let mut released = 0;
    for chunk in held.chunks(BATCH) {
        let claimed = claim_all(&store, chunk).await?;
        if let Err(error) = publish(config, &claimed.iter().map(|h| h.job.clone()).collect::<Vec<_>>()).await
        {
            for job in &claimed {
                store.held().put_back(job).await?;
            }
            writeln!(out, "wave {id}: {released} released before the broker failed; run release-wave again")?;
            return Err(error);
        }
        for job in &claimed {
            audit.record(note::about(AuditKind::WaveReleased, &who.name, job).detail("wave", id)).await?;
        }
        released += claimed.len();
    }
    writeln!(out, "wave {id}: released by {approver}; {released} deprovision(s) published")?;
    Ok(Decision::Released)
}

/// Cancels wave `id` as `approver` with their TOTP `code`: what it holds is
/// never published; `reason` goes to the audit trail.
pub async fn cancel_wave(
    config: &Config,
    id: &str,
    approver: &str,
    code: &str,
    reason: &str,
    out: &mut impl Write,
) -> Result<Decision, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let wave = find_wave(&store, id).await?;
    if wave.state == "released" {
        return Err(AdminError::Refused(format!("wave {id} was released")));
    }
    let approvers = approvers_of(config)?;
    let who = spend_code((config, &store), &approvers, (approver, code), Target::Wave(id)).await?;
    let audit = AuditLog::for_operator(config, store.clone())?;
    store.waves().close(&wave, false).await?;
    let held = members(&store, id).await?;
    let claimed = claim_all(&store, &held).await?;
    for job in &claimed {
        store.held().mark_cancelled(&job.job.app, &job.job.person, job.job.sequence).await?;
        let entry = note::about(AuditKind::WaveCancelled, &who.name, job).detail("wave", id);
        audit.record(entry.detail("reason", reason)).await?;
    }
    let entry = AuditEntry::new(AuditKind::WaveCancelled, &who.name)
        .detail("wave", id)
        .detail("scope", wave.scope.as_str())
        .detail("count", claimed.len());
    audit.record(entry.detail("reason", reason)).await?;
    writeln!(out, "wave {id}: cancelled by {approver}; {} deprovision(s) not applied", claimed.len())?;
    Ok(Decision::Rejected)
}

async fn find_wave(store: &Store, id: &str) -> Result<Wave, AdminError> {
    store.waves().get(id).await?.ok_or_else(|| AdminError::Refused(format!("no wave {id}")))
}

/// The jobs wave `id` holds.
async fn members(store: &Store, id: &str) -> Result<Vec<HeldJob>, AdminError> {
    let held = store.held().list().await?;
    Ok(held.into_iter().filter(|h| h.wave.as_deref() == Some(id)).collect())
}

/// Claims each of `held`; those another process took meanwhile are skipped.
async fn claim_all(store: &Store, held: &[HeldJob]) -> Result<Vec<HeldJob>, AdminError> {
    let mut claimed = Vec::with_capacity(held.len());
    for job in held {
        if let Some(job) = store.held().claim(&job.id, &job.job.app, &job.job.person, None).await? {
            claimed.push(job);
        }
    }
    Ok(claimed)
}
