//! What the scheduler writes to the audit trail: every event it
//! dead-letters, recorded before the publish (a publish that then fails
//! requeues the event and may record it twice, never zero times), and the
//! governance decisions it takes (holds, waves, supersedes, expiries). An
//! entry names reasons and ids, never the event's content.

use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::{AuditEntry, AuditKind};
use tracing::Span;

/// Records that an event (`event_id`, when readable) is dead-lettered for `reason`.
pub(crate) async fn dead_letter(
    audit: &AuditLog,
    reason: &str,
    event_id: Option<&str>,
) -> Result<(), StoreError> {
    let mut entry = AuditEntry::new(AuditKind::DeadLettered, "scheduler")
        .trace(propagation::trace_id(&Span::current()))
        .detail("reason", reason);
    if let Some(event_id) = event_id {
        entry = entry.detail("event_id", event_id);
    }
    audit.record(entry).await.map_err(StoreError::from)
}

/// Appends a governance `entry` (a hold, a supersede, a wave, an expiry).
pub(crate) async fn record(audit: &AuditLog, entry: AuditEntry) -> Result<(), StoreError> {
    audit.record(entry).await.map_err(StoreError::from)
}
