//! The console's own audit records: who signed in and out, who started a
//! sweep, who downloaded a person's evidence. Every other action goes
//! through an admin function that records it (pause, replay, approve...).
//!
//! A record that cannot be written stops the action: the console does
//! nothing for anyone that the audit trail would not show.

use axum::http::StatusCode;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::Store;
use scimfleet_schemas::audit::{AuditEntry, AuditKind};

use crate::{Console, Refusal};

/// Appends `entry` to the audit trail, or refuses the action with 503.
pub(crate) async fn record(console: &Console, entry: AuditEntry) -> Result<(), Refusal> {
    let config = &console.config;
    let written = async {
        let store = Store::connect(&config.redis, &config.namespace).await.map_err(|e| e.to_string())?;
        let log = AuditLog::for_operator(config, store).map_err(|e| e.to_string())?;
        log.record(entry).await.map_err(|e| e.to_string())
    };
    written.await.map_err(|error| {
        tracing::error!(%error, "the console could not write its audit record: action refused");
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the audit trail cannot be written just now, so nothing was done: try again".to_owned(),
        }
    })
}

/// `signed_in` for `name` as `role`, signed in by `method` (`static`, `oidc`, `none`).
pub(crate) fn signed_in(name: &str, role: &str, method: &str) -> AuditEntry {
    AuditEntry::new(AuditKind::SignedIn, name).detail("role", role).detail("method", method)
}
