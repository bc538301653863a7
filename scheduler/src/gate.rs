//! The high-risk gate, between the plan and the publish (guarantee 6):
//! grants fail closed, removals never wait for a grant's approval.
//!
//! Per planned job, under the person's planning lease:
//!
//! - a job still held for this person and app from an older event is
//!   superseded: taken out and audited, the new plan replaces it;
//! - an upsert that grants a high-risk group not granted before, or
//!   creates an account in an app marked `high_risk.create`, is held for an
//!   approver unless the event's actor stepped up (`governance.step_up_amr`
//!   / `step_up_acr`); the high-risk groups a published upsert leaves the
//!   person in are recorded, so the next change of the same admin is not
//!   held again;
//! - a DELETE in an app marked `high_risk.delete` is held the same way, and
//!   a deactivation goes out at once in its place;
//! - every deprovision asks the mass-deprovision guard: within the limits
//!   it goes at once, beyond them it joins its scope's wave.
//!
//! Holds are written before the event is acked, and each is idempotent by
//! job id, so an event redelivered after a crash holds or admits exactly
//! what it did the first time.

use chrono::TimeDelta;
use scimfleet_policy::governance::{deactivate_instead, grant_risk, high_risk_groups};
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::guard::{Asker, Guard, Guarded};
use scimfleet_runtime::metrics::AppReason;
use scimfleet_runtime::store::{HeldJob, HoldKind, StoreError};
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::{AppId, AuditEntry, AuditKind, Event, Job, JobAction};
use tracing::Span;

use crate::audit;
use crate::fanout::Context;

/// What the gate lets out now, of one event's jobs.
pub(crate) struct Gated {
    /// Jobs to publish.
    pub publish: Vec<Job>,
    /// Jobs held (grants and wave members).
    pub held: usize,
}

/// One event's view, shared by every job's decision.
struct Ask<'a> {
    ctx: &'a Context,
    event: &'a Event,
    person: &'a str,
    stepped_up: bool,
    trace_id: Option<String>,
}

/// Gates the planned `jobs` of `event`; `had` are the apps the registry
/// says the person held an account in.
pub(crate) async fn gate(
    ctx: &Context,
    event: &Event,
    person: &str,
    jobs: Vec<Job>,
    had: &[AppId],
) -> Result<Gated, StoreError> {
    let actor = &event.data.actor;
    let ask = Ask {
        ctx,
        event,
        person,
        stepped_up: ctx.config.governance.stepped_up(&actor.amr, actor.acr.as_deref()),
        trace_id: propagation::trace_id(&Span::current()),
    };
    supersede(&ask, &jobs, had).await?;
    let mut gated = Gated { publish: Vec::with_capacity(jobs.len()), held: 0 };
    for job in jobs {
        let Some(app) = ctx.config.app(job.app.as_str()) else {
            gated.publish.push(job);
            continue;
        };
        match &job.action {
            JobAction::Upsert { .. } => upsert(&ask, app, job, had, &mut gated).await?,
            JobAction::Deactivate { .. } | JobAction::Delete { .. } => {
                deprovision(&ask, app, job, &mut gated).await?;
            }
            JobAction::Verify { .. } => gated.publish.push(job),
        }
    }
    Ok(gated)
}

/// Takes out what is held for this person from an older event, in the apps
/// now planned or held before.
async fn supersede(ask: &Ask<'_>, jobs: &[Job], had: &[AppId]) -> Result<(), StoreError> {
    let person = &ask.event.data.person_id;
    let mut apps: Vec<&AppId> = jobs.iter().map(|j| &j.app).collect();
    apps.extend(had.iter().filter(|a| !jobs.iter().any(|j| &j.app == *a)));
    let held = ask.ctx.store.held().of_person_many(&apps, person).await?;
    for (app, id) in apps.into_iter().zip(held) {
        let Some(id) = id else { continue };
        let claimed = ask.ctx.store.held().claim(&id, app, person, Some(ask.event.data.sequence)).await?;
        if let Some(old) = claimed {
            tracing::info!(
                held = %id, app = %app, scimfleet.person = %ask.person,
                "held {} job {id} superseded by event {}", old.kind.as_str(), ask.event.id
            );
            let entry =
                AuditEntry::new(AuditKind::Superseded, ask.actor()).person(ask.person).app(app.as_str());
            let entry = entry.trace(ask.trace_id.clone()).detail("held", id.as_str());
            audit::record(&ask.ctx.audit, entry.detail("by_event", ask.event.id.as_str())).await?;
        }
    }
    Ok(())
}

async fn upsert(
    ask: &Ask<'_>,
    app: &AppConfig,
    job: Job,
    had: &[AppId],
    gated: &mut Gated,
) -> Result<(), StoreError> {
    let store = ask.ctx.store.held();
    let tracks_groups = !app.high_risk.groups.is_empty();
    let granted = if tracks_groups { store.granted(&job.app, &job.person).await? } else { Vec::new() };
    let risk = grant_risk(app, &job, had.contains(&job.app), &granted);
    if risk.is_none() || ask.stepped_up {
        let holds = high_risk_groups(app, &job);
        if tracks_groups && !same_groups(&holds, &granted) {
            store.set_granted(&job.app, &job.person, &holds).await?;
        }
        gated.publish.push(job);
        return Ok(());
    }
    let grants = high_risk_groups(app, &job);
    hold_grant(ask, job, risk.reasons, grants, gated).await
}

async fn deprovision(ask: &Ask<'_>, app: &AppConfig, job: Job, gated: &mut Gated) -> Result<(), StoreError> {
    let now = if app.high_risk.delete
        && !ask.stepped_up
        && let Some(deactivate) = deactivate_instead(&job)
    {
        hold_grant(ask, job, vec!["delete".to_owned()], Vec::new(), gated).await?;
        deactivate
    } else {
        job
    };
    let guard =
        Guard { store: &ask.ctx.store, audit: &ask.ctx.audit, governance: &ask.ctx.config.governance };
    let asker = Asker { actor: ask.actor(), person: ask.person, trace_id: ask.trace_id.clone() };
    let app_id = now.app.clone();
    match guard.ask(app, now, asker).await? {
        Guarded::Admitted(job) => {
            gated.publish.push(job);
            Ok(())
        }
        Guarded::Held { .. } => {
            gated.held += 1;
            let labels = AppReason { app: app_id.to_string(), reason: "wave".to_owned() };
            ask.ctx.ops.metrics.jobs_held.get_or_create(&labels).inc();
            Ok(())
        }
    }
}

async fn hold_grant(
    ask: &Ask<'_>,
    job: Job,
    reasons: Vec<String>,
    grants: Vec<String>,
    gated: &mut Gated,
) -> Result<(), StoreError> {
    let expiry =
        TimeDelta::milliseconds(i64::try_from(ask.ctx.config.governance.hold_expiry).unwrap_or(i64::MAX));
    let who = (ask.person, ask.actor());
    let held = HeldJob::new(job, HoldKind::Grant, reasons, who, ask.trace_id.clone());
    let held = HeldJob { grants, expires_at: Some(held.held_at + expiry), ..held };
    gated.held += 1;
    // Recorded before the hold, so a crash in between records it twice on
    // redelivery rather than never.
    if ask.ctx.store.held().get(&held.id).await?.is_none() {
        let entry =
            AuditEntry::new(AuditKind::Held, ask.actor()).person(ask.person).app(held.job.app.as_str());
        let entry = entry
            .trace(ask.trace_id.clone())
            .detail("held", held.id.as_str())
            .detail("action", held.job.action.name());
        audit::record(&ask.ctx.audit, entry.detail("reason", held.reasons.join(", "))).await?;
    }
    if ask.ctx.store.held().hold(&held).await? {
        let labels = AppReason { app: held.job.app.to_string(), reason: "grant".to_owned() };
        ask.ctx.ops.metrics.jobs_held.get_or_create(&labels).inc();
        tracing::info!(
            held = %held.id, app = %held.job.app, scimfleet.person = %ask.person, reasons = %held.reasons.join(", "),
            "{} job {} held for approval: no step-up", held.job.action.name(), held.id
        );
    }
    Ok(())
}

impl Ask<'_> {
    fn actor(&self) -> &str {
        &self.event.data.actor.id
    }
}

fn same_groups(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|g| b.iter().any(|h| h.eq_ignore_ascii_case(g)))
}
