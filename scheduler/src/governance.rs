//! The scheduler's housekeeping of held jobs: held grants past
//! `governance.hold_expiry` are rejected as expired (audited, never
//! published), and the held-job, open-wave and scheduled-event gauges are
//! sampled. Every replica runs it; a held job is claimed before it is acted
//! on, so each expiry happens once.

use std::time::Duration;

use chrono::Utc;
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_schemas::{AuditEntry, AuditKind};
use tokio_util::sync::CancellationToken;

use crate::audit;
use crate::fanout::Context;

/// How often expiries are looked for and the gauges sampled.
const EVERY: Duration = Duration::from_secs(5);
/// Expired holds handled per round.
const BATCH: isize = 100;

/// Runs until `stop` is cancelled.
pub(crate) async fn housekeep(ctx: std::sync::Arc<Context>, stop: CancellationToken) {
    loop {
        if let Err(error) = round(&ctx).await {
            tracing::warn!(error = error_chain(&error), "held-job housekeeping failed; trying again");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn round(ctx: &Context) -> Result<(), StoreError> {
    let held = ctx.store.held();
    for id in held.expired(Utc::now(), BATCH).await? {
        let Some(job) = held.get(&id).await? else { continue };
        if held.claim(&id, &job.job.app, &job.job.person, None).await?.is_none() {
            continue;
        }
        tracing::info!(held = %id, app = %job.job.app, "held {} job {id} expired unapproved: rejected", job.job.action.name());
        let entry =
            AuditEntry::new(AuditKind::Expired, "scheduler").person(&job.person).app(job.job.app.as_str());
        let entry = entry.trace(job.trace_id.clone()).detail("held", id.as_str());
        audit::record(&ctx.audit, entry.detail("action", job.job.action.name())).await?;
    }
    let count = held.count().await?;
    ctx.ops.metrics.held_jobs.set(i64::try_from(count).unwrap_or(i64::MAX));
    let open = ctx.store.waves().list().await?.iter().filter(|w| w.state == "open").count();
    ctx.ops.metrics.waves_open.set(i64::try_from(open).unwrap_or(i64::MAX));
    let scheduled = ctx.store.scheduled().count().await?;
    ctx.ops.metrics.scheduled_events.set(i64::try_from(scheduled).unwrap_or(i64::MAX));
    Ok(())
}
