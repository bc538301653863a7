//! What a worker records for `scimfleet status` beyond what RabbitMQ shows:
//! its breaker state per app, each app's last error, verification failures
//! and identity conflicts (kept in Redis, see `scimfleet_runtime::store::AppOps`).
//!
//! These writes happen on failure paths and breaker changes only, never per
//! successful job. They describe a job; they are not part of settling it: a
//! write that fails is logged at WARN and the job goes on as if it had
//! succeeded.
//!
//! Each worker process has its own breaker per app, so breaker states are
//! kept per *instance*: an id made once per worker run from the host name,
//! the process id and random bits (two runs in one process, as in the
//! in-process test fleet, are two instances).

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use scimfleet_runtime::metrics::{AppAttribute, Metrics};
use scimfleet_runtime::store::{LastError, Store, StoreError};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::AppId;
use scimfleet_schemas::scim::UserAttr;

use crate::app::AppWorker;

/// Longest host name part of an instance id.
const HOST_CHARS: usize = 48;

/// A fresh instance id, `{host}-{pid}-{random}`.
pub(crate) fn instance_id() -> Arc<str> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(HOST_CHARS)
        .collect();
    let host = if host.is_empty() { "worker".to_owned() } else { host };
    format!("{host}-{}-{:08x}", std::process::id(), rand::random::<u32>()).into()
}

/// Records that `worker`'s breaker for its app opened now (for its
/// cool-down) or closed.
pub(crate) async fn breaker(worker: &AppWorker, open: bool) {
    let open_until = open.then(|| {
        let cooldown = TimeDelta::from_std(worker.breaker.cooldown()).unwrap_or(TimeDelta::MAX);
        Utc::now().checked_add_signed(cooldown).unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
    });
    if let Err(error) = worker.store.ops().note_breaker(&worker.app, &worker.instance, open_until).await {
        write_failed(worker, "breaker state", &error);
    }
}

/// Records a failure of `worker`'s app: `reason` is a bounded label (a
/// dead-letter reason, or `transient`), `detail` an error chain free of
/// personal data.
pub(crate) async fn error(worker: &AppWorker, reason: &str, status: Option<u16>, detail: &str) {
    let last = LastError { at: Utc::now(), reason: reason.to_owned(), status, detail: detail.to_owned() };
    if let Err(error) = worker.store.ops().note_error(&worker.app, &last).await {
        write_failed(worker, "last error", &error);
    }
}

/// Counts one deprovision that verification found undone.
pub(crate) async fn verification_failure(worker: &AppWorker) {
    if let Err(error) = worker.store.ops().count_verification_failure(&worker.app).await {
        write_failed(worker, "verification failure count", &error);
    }
}

/// Counts one job refused because the account found by login is bound to
/// another person: the metric (for the alert) and the app's count (for
/// `scimfleet status`).
pub(crate) async fn identity_conflict(worker: &AppWorker) {
    let labels = Metrics::app(worker.app.as_str());
    worker.ops.metrics.identity_conflicts.get_or_create(&labels).inc();
    if let Err(error) = worker.store.ops().count_identity_conflict(&worker.app).await {
        write_failed(worker, "identity conflict count", &error);
    }
}

/// Records managed attributes the app drops when written: the metric and
/// the app's list (for `scimfleet status`).
pub(crate) async fn unsupported(worker: &AppWorker, attributes: &[UserAttr]) {
    unsupported_in(&worker.store, &worker.ops.metrics, &worker.app, attributes).await;
}

/// [`unsupported`] for `app`, with the store and metrics given.
pub(crate) async fn unsupported_in(store: &Store, metrics: &Metrics, app: &AppId, attributes: &[UserAttr]) {
    for attr in attributes {
        let labels = AppAttribute { app: app.to_string(), attribute: attr.path().to_owned() };
        metrics.unsupported_attributes.get_or_create(&labels).set(1);
        if let Err(error) = store.ops().note_unsupported(app, attr.path()).await {
            tracing::warn!(
                scimfleet.app = %app, error = error_chain(&error),
                "could not record the unsupported attribute of {app} for status reports"
            );
        }
    }
}

fn write_failed(worker: &AppWorker, what: &str, error: &StoreError) {
    tracing::warn!(
        scimfleet.app = %worker.app, error = error_chain(error),
        "could not record the {what} of {} for status reports", worker.app
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_unique_and_tame() {
        let (a, b) = (instance_id(), instance_id());
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')), "{a}");
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
