//! The audit entries of approval decisions. Each is recorded as the
//! approver (or the operator who rejected) and under the held job's trace,
//! so a decision reads next to the event that caused the hold.

use scimfleet_runtime::Config;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::{HeldJob, Store};
use scimfleet_schemas::{AuditEntry, AuditKind};

use crate::AdminError;

/// An entry of `kind` by `who` about one held job.
pub(crate) fn about(kind: AuditKind, who: &str, held: &HeldJob) -> AuditEntry {
    AuditEntry::new(kind, who)
        .person(held.person.as_str())
        .app(held.job.app.as_str())
        .trace(held.trace_id.clone())
        .detail("held", held.id.as_str())
        .detail("action", held.job.action.name())
}

/// Records that `approver`'s decision on `target` (a held job or a wave)
/// was refused, and returns the refusal: failed attempts are what an
/// auditor looks for first.
pub(crate) async fn refused(
    config: &Config,
    store: &Store,
    approver: &str,
    target: Target<'_>,
    reason: String,
) -> AdminError {
    let entry = match target {
        Target::Held(held) => about(AuditKind::ApprovalRefused, approver, held),
        Target::Wave(wave) => AuditEntry::new(AuditKind::ApprovalRefused, approver).detail("wave", wave),
        Target::Import(source) => {
            AuditEntry::new(AuditKind::ApprovalRefused, approver).detail("import", source)
        }
    };
    let recorded = match AuditLog::for_operator(config, store.clone()) {
        Ok(audit) => audit.record(entry.detail("reason", reason.as_str())).await.map_err(AdminError::from),
        Err(error) => Err(AdminError::from(error)),
    };
    match recorded {
        Ok(()) => AdminError::Refused(reason),
        Err(error) => AdminError::Refused(format!("{reason} (and not recorded in the audit trail: {error})")),
    }
}

/// What a refused decision was about.
pub(crate) enum Target<'a> {
    /// A held grant.
    Held(&'a HeldJob),
    /// A wave, by id.
    Wave(&'a str),
    /// An HR file import held by the mass-deprovision limits, by source id.
    Import(&'a str),
}
