//! `scimfleet sync --person P [--app A]`: reconcile one person now, app by
//! app, and print each request and its result.
//!
//! What the person should have comes from what scimfleet already knows:
//! the person registry (status, the apps they should hold an account in)
//! and the desired state of their last converged upsert in each app (the
//! mapped account and groups). So a sync puts back what drifted since (an
//! admin's hand edit, an account deactivated by mistake, a failed job) and
//! removes the access of a leaver or of someone out of an app's scope; it
//! does not read the HR system: a new change arrives as an event.
//!
//! Each app's job runs under the person's lease there (a worker applying
//! the same person meanwhile makes the sync say so, not race it), and its
//! result is recorded as a worker records it, with an audit record when it
//! changed the app.

use std::io::Write;

use chrono::Utc;
use scimfleet_policy::deprovision::{deprovision_action, deprovision_mode};
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AuditEntry, AuditKind, EventId, Job, JobAction, Lookup, PersonId, PersonStatus};
use scimfleet_worker::Synced;

use crate::AdminError;

/// Syncs the person with HR id `person` in `app` (or every app that knows
/// them) and writes each step to `out`.
pub async fn run(
    config: &Config,
    person: &str,
    app: Option<&str>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let person = PersonId::parse(person.to_owned()).map_err(AdminError::Person)?;
    let only = app.map(|a| vec![a.to_owned()]);
    let apps = scimfleet_worker::select_apps(config, only.as_deref())?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let Some(record) = store.registry().get(&person).await? else {
        writeln!(out, "no event of this person has been planned yet: nothing to sync")?;
        return Ok(());
    };
    let audit = AuditLog::for_operator(config, store.clone())?;
    let pseudonym = crate::pseudonym_of(config, Some(person.as_str()))?.unwrap_or_default();
    let mut failed = 0;
    for (index, app) in apps {
        let desired = store.desired().get_many(&app.id, std::slice::from_ref(&person)).await?.pop().flatten();
        let Some(desired) = desired else {
            writeln!(out, "{}: no account converged for this person: nothing to sync", app.id)?;
            continue;
        };
        let keep = record.status == PersonStatus::Active && record.apps.contains(&app.id);
        let action = if keep {
            JobAction::Upsert {
                user: desired.user.clone(),
                managed: desired.managed.clone(),
                groups: desired.groups.clone(),
                references: Vec::new(),
            }
        } else {
            deprovision_action(app, Lookup::of(&desired.user), deprovision_mode(record.status, app))
        };
        let event = EventId::parse(format!("sync-{}-{}", person, Utc::now().timestamp_millis()))
            .map_err(|e| AdminError::Refused(format!("sync: {e}")))?;
        let sequence = record.sequence.max(desired.sequence);
        let job = Job::new(event, app.id.clone(), person.clone(), sequence, Utc::now(), action);
        let converger = scimfleet_worker::app_converger(config, index, app, &store).await?;
        let synced = match scimfleet_worker::sync_job(&converger, &store, &job).await {
            Ok(synced) => synced,
            Err(error) => {
                writeln!(out, "{}: {} not synced: {error}", app.id, job.action.name())?;
                failed += 1;
                continue;
            }
        };
        failed += usize::from(synced.result.is_err());
        report(out, app.id.as_str(), &job, &synced)?;
        if synced.result.as_ref().is_ok_and(scimfleet_worker::Outcome::changed) {
            let entry = AuditEntry::new(AuditKind::ScimWrite, "scimfleet sync")
                .person(pseudonym.clone())
                .app(app.id.as_str())
                .detail("job_id", job.job_id.to_string())
                .detail("action", job.action.name())
                .detail("via", "sync");
            audit.record(entry).await?;
        }
    }
    if failed > 0 {
        return Err(AdminError::Refused(format!("{failed} app(s) not synced")));
    }
    Ok(())
}

fn report(out: &mut impl Write, app: &str, job: &Job, synced: &Synced) -> std::io::Result<()> {
    writeln!(out, "{app}: {}", job.action.name())?;
    for step in &synced.steps {
        let status = step.status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        writeln!(out, "  {:<6} {:<14} {status}", step.method, step.path)?;
    }
    match &synced.result {
        Ok(outcome) if !outcome.changed() => writeln!(out, "  in step already: nothing written"),
        Ok(outcome) => writeln!(out, "  converged: {}", summary(outcome)),
        Err(error) => writeln!(out, "  failed: {}", scimfleet_runtime::telemetry::error_chain(error)),
    }
}

fn summary(o: &scimfleet_worker::Outcome) -> String {
    let mut parts = Vec::new();
    let flags = [
        (o.created, "created"),
        (o.reactivated, "reactivated"),
        (o.deactivated, "deactivated"),
        (o.deleted, "deleted"),
    ];
    parts.extend(flags.iter().filter(|(set, _)| *set).map(|(_, word)| (*word).to_owned()));
    if o.patched_attributes > 0 {
        parts.push(format!("{} attribute(s) changed", o.patched_attributes));
    }
    if o.groups_added + o.groups_removed > 0 {
        parts.push(format!("{} group(s) joined, {} left", o.groups_added, o.groups_removed));
    }
    if let Some(read_back) = &o.read_back {
        parts.push(format!("read back: {}", read_back.found));
    }
    parts.join(", ")
}
