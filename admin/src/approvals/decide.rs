//! `scimfleet approvals approve|reject ID`: the decision on one held grant.

use std::io::Write;

use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::{Approval, HeldJob, HoldKind};
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::AuditKind;

use super::note::{self, Target, refused};
use super::release::{approvers_of, publish, spend_code};
use crate::AdminError;

/// What an approval did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Counted; more approvers are needed.
    Pending {
        /// Approvals so far.
        approvals: u32,
        /// Approvals needed.
        required: u32,
    },
    /// Published: the grant goes ahead.
    Released,
    /// Rejected: never published.
    Rejected,
}

/// Approves the held grant `id` (or a unique prefix of it, 8 characters at
/// least) as `approver` with their current TOTP `code`; publishes it once
/// `governance.approvals_required` distinct approvers have.
pub async fn approve(
    config: &Config,
    id: &str,
    approver: &str,
    code: &str,
    out: &mut impl Write,
) -> Result<Decision, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let approvers = approvers_of(config)?;
    let held = find(&store, id).await?;
    if held.kind == HoldKind::Wave {
        let wave = held.wave.unwrap_or_default();
        return Err(AdminError::Refused(format!(
            "{} is held in wave {wave}: use `approvals release-wave {wave}`",
            held.id
        )));
    }
    let target = || Target::Held(&held);
    let Some(who) = approvers.get(approver) else {
        let reason = format!("unknown approver `{approver}`");
        return Err(refused(config, &store, approver, target(), reason).await);
    };
    let own = !who.may_approve_for(&held.job.person)
        || who.person_id.as_ref().is_some_and(|p| p.as_str() == held.actor);
    if own || who.name == held.actor {
        let reason =
            format!("approver `{approver}` cannot approve a grant to themselves or one they requested");
        return Err(refused(config, &store, approver, target(), reason).await);
    }
    let who = spend_code((config, &store), &approvers, (approver, code), target()).await?;
    let required = u32::from(config.governance.approvals_required);
    let count = match store.held().approve(&held.id, &who.name).await? {
        Approval::Gone => return Err(gone(&held.id)),
        Approval::Again => {
            let reason = format!("approver `{approver}` approved {} already", held.id);
            return Err(refused(config, &store, approver, target(), reason).await);
        }
        Approval::Counted(n) => n,
    };
    let released = count >= required;
    let entry = note::about(AuditKind::Approved, &who.name, &held)
        .detail("approvals", count)
        .detail("required", required)
        .detail("released", released);
    AuditLog::for_operator(config, store.clone())?.record(entry).await?;
    if !released {
        writeln!(
            out,
            "{}: approved by {approver} ({count} of {required}); waiting for another approver",
            held.id
        )?;
        return Ok(Decision::Pending { approvals: count, required });
    }
    release(config, &store, &held.id, &held).await?;
    writeln!(
        out,
        "{}: approved by {approver}; {} published to {}",
        held.id,
        held.job.action.name(),
        held.job.app
    )?;
    Ok(Decision::Released)
}

/// Claims and publishes one approved grant; put back when the publish fails.
async fn release(config: &Config, store: &Store, id: &str, held: &HeldJob) -> Result<(), AdminError> {
    let Some(claimed) = store.held().claim(id, &held.job.app, &held.job.person, None).await? else {
        return Err(gone(id));
    };
    if let Err(error) = publish(config, std::slice::from_ref(&claimed.job)).await {
        store.held().put_back(&claimed).await?;
        return Err(error);
    }
    if !claimed.grants.is_empty() {
        store.held().add_granted(&claimed.job.app, &claimed.job.person, &claimed.grants).await?;
    }
    Ok(())
}

/// Rejects the held grant `id`: it is never published. `operator` and
/// `reason` go to the audit trail.
pub async fn reject(
    config: &Config,
    id: &str,
    operator: &str,
    reason: &str,
    out: &mut impl Write,
) -> Result<Decision, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let held = find(&store, id).await?;
    if held.kind == HoldKind::Wave {
        return Err(AdminError::Refused(format!(
            "{} is held in a wave: use `approvals cancel-wave`",
            held.id
        )));
    }
    let audit = AuditLog::for_operator(config, store.clone())?;
    if store.held().claim(&held.id, &held.job.app, &held.job.person, None).await?.is_none() {
        return Err(gone(&held.id));
    }
    audit.record(note::about(AuditKind::Rejected, operator, &held).detail("reason", reason)).await?;
    writeln!(out, "{}: rejected by {operator}; not published", held.id)?;
    Ok(Decision::Rejected)
}

/// The held job `id` names: itself, or the one held id it begins.
pub(crate) async fn find(store: &Store, id: &str) -> Result<HeldJob, AdminError> {
    if let Some(held) = store.held().get(id).await? {
        return Ok(held);
    }
    let all = store.held().list().await?;
    let mut matching = all.into_iter().filter(|h| id.len() >= 8 && h.id.starts_with(id));
    match (matching.next(), matching.next()) {
        (Some(held), None) => Ok(held),
        (Some(_), Some(_)) => Err(AdminError::Refused(format!("`{id}` names more than one held job"))),
        (None, _) => Err(gone(id)),
    }
}

fn gone(id: &str) -> AdminError {
    AdminError::Refused(format!(
        "nothing is held as `{id}` (approved, rejected, expired or superseded meanwhile?)"
    ))
}
