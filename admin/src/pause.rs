//! `scimfleet pause --app A` / `scimfleet resume --app A`: stop and start
//! the consumption of one app's jobs, fleet-wide, at run time.
//!
//! A pause is a durable record in Redis (who, since when, why; see
//! `store::Ops::pause`), not a message: every worker process reads the
//! pauses a few times a second and at start-up, so one that starts or
//! reconnects while the app is paused does not consume it either. While
//! paused, no worker takes the app's jobs, re-checks or retries: they wait
//! in its queues, nothing is lost; the jobs being applied when the pause
//! came finish. Periodic sweeps skip the app. Other apps carry on.
//!
//! Pausing a paused app, or resuming one that is not paused, changes
//! nothing and says so; each change is recorded in the audit trail
//! (`paused`, `resumed`) under the operator's name.

use std::io::Write;

use chrono::Utc;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::store::Paused;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AppId, AuditEntry, AuditKind};

use crate::AdminError;

/// Longest `--reason`, in characters: a line of `status`, not a report.
pub const MAX_REASON_CHARS: usize = 200;

/// Who pauses or resumes an app, and why.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The app id.
    pub app: &'a str,
    /// The operator's name, for the record and the audit trail.
    pub operator: &'a str,
    /// Why (pause only): shown by `status`, kept in the audit trail.
    pub reason: &'a str,
}

/// `scimfleet pause`: pauses the app unless it is paused already.
pub async fn pause(config: &Config, request: Request<'_>, out: &mut impl Write) -> Result<(), AdminError> {
    let app = configured(config, request.app)?;
    if request.reason.trim().is_empty() || request.reason.chars().count() > MAX_REASON_CHARS {
        return Err(AdminError::Refused(format!(
            "--reason: say why in 1 to {MAX_REASON_CHARS} characters (no personal data)"
        )));
    }
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let pause = Paused { by: request.operator.to_owned(), at: Utc::now(), reason: request.reason.to_owned() };
    if let Some(current) = store.ops().pause(&app, &pause).await? {
        writeln!(out, "app {app} is already paused ({}); nothing changed", describe(&current))?;
        return Ok(());
    }
    let entry = AuditEntry::new(AuditKind::Paused, request.operator).app(app.as_str());
    AuditLog::for_operator(config, store)?.record(entry.detail("reason", request.reason)).await?;
    writeln!(
        out,
        "app {app} paused ({}): workers stop taking its jobs within a second; they wait in its queues until `scimfleet resume --app {app}`",
        describe(&pause)
    )?;
    Ok(())
}

/// `scimfleet resume`: lifts the app's pause, if it has one.
pub async fn resume(config: &Config, request: Request<'_>, out: &mut impl Write) -> Result<(), AdminError> {
    let app = configured(config, request.app)?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let Some(lifted) = store.ops().resume(&app).await? else {
        writeln!(out, "app {app} is not paused; nothing changed")?;
        return Ok(());
    };
    let entry = AuditEntry::new(AuditKind::Resumed, request.operator)
        .app(app.as_str())
        .detail("paused_by", lifted.by.as_str())
        .detail("paused_at", lifted.at.to_rfc3339())
        .detail("reason", lifted.reason.as_str());
    AuditLog::for_operator(config, store)?.record(entry).await?;
    writeln!(
        out,
        "app {app} resumed (it was {}): workers take its jobs again within a second",
        describe(&lifted)
    )?;
    Ok(())
}

/// The configured app named `id`, or an error naming it.
fn configured(config: &Config, id: &str) -> Result<AppId, AdminError> {
    config.app(id).map(|app| app.id.clone()).ok_or_else(|| AdminError::UnknownApp(id.to_owned()))
}

fn describe(pause: &Paused) -> String {
    format!("by {} since {}: {}", pause.by, pause.at.format("%Y-%m-%dT%H:%M:%SZ"), pause.reason)
}
