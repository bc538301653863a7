//! `scimfleet import --source ID FILE`: an HR extract (a full list of the
//! workers an HR system of record knows, Workday-style) turned into person
//! events, and only those that change something.
//!
//! Each row is compared with what the same source said of the person last
//! time (`Store::imports`): an unchanged row emits nothing, so importing
//! the same file again changes nothing; a new person is hired, a changed
//! one updated (rehired after a termination), suspended or terminated as
//! the row's status says; a person the source brought in whom the file no
//! longer lists is terminated. Sequences are the import's time in
//! milliseconds (above the person's registered sequence), so a later file
//! always wins; event ids derive from the person and the row's content, so
//! a redelivered event is the same event.
//!
//! Every event is checked before any is published, then all are published
//! with confirms, and only then is the source's view kept: a bad file
//! publishes nothing, and a crash after publishing emits the same events
//! again. A file terminating more of the source's people than
//! `governance.mass_deprovision` allows (`fleet_max` people, or over
//! `app_percent` of them once `percent_floor` are counted) is held whole:
//! nothing is published until an approver's TOTP code releases it (both
//! recorded in the audit trail); the scheduler's guard still applies to
//! what is published.

pub mod parse;
mod watch;

pub use watch::watch;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::config::{HrFileSource, SourceConfig};
use scimfleet_runtime::people::{self, View};
use scimfleet_runtime::store::Kept;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{AuditEntry, AuditKind, EventType, PersonId, PersonStatus};
use serde::Serialize;

use crate::AdminError;

/// What one import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Rows read.
    pub rows: usize,
    /// Events emitted, by type.
    pub hired: usize,
    /// Updated or rehired.
    pub updated: usize,
    /// Suspended.
    pub suspended: usize,
    /// Terminated (by status, or no longer listed).
    pub terminated: usize,
    /// Rows that changed nothing.
    pub unchanged: usize,
}

/// The HR file source `id`.
fn hr_source<'c>(config: &'c Config, id: &str) -> Result<&'c HrFileSource, AdminError> {
    match config.sources.iter().find(|s| s.id() == id) {
        Some(SourceConfig::HrFile(hr)) => Ok(hr),
        Some(other) => Err(AdminError::Refused(format!(
            "source `{id}` is of kind {}: its events come through the intake, not a file",
            other.kind()
        ))),
        None => Err(AdminError::Refused(format!("no [[sources]] entry with id `{id}`"))),
    }
}

/// An approver's go-ahead for an import the mass-deprovision limits hold:
/// their name and current TOTP code.
#[derive(Debug, Clone, Copy)]
pub struct Approval<'a> {
    /// The approver (`governance.approvers_file`).
    pub approver: &'a str,
    /// Their current code.
    pub code: &'a str,
}

/// Imports `file` as source `source` says; with `check`, reports what it
/// would emit and publishes nothing. A file terminating more people than
/// `governance.mass_deprovision` allows is held (nothing published, an
/// error saying so) unless `approval` releases it.
pub async fn run(
    config: &Config,
    source: &str,
    file: &Path,
    check: bool,
    approval: Option<Approval<'_>>,
    out: &mut impl Write,
) -> Result<ImportReport, AdminError> {
    let hr = hr_source(config, source)?;
    let input = std::fs::File::open(file).map_err(AdminError::file("open", file))?;
    let rows = parse::parse(hr, std::io::BufReader::new(input))
        .map_err(|e| AdminError::Refused(format!("{}: {e}", file.display())))?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let (events, keep, report, population) = diff(hr, &store, rows).await?;
    if let Some(limit) = over_limit(config, report.terminated, population) {
        let held = format!(
            "{} terminations of {population} people exceed governance.mass_deprovision ({limit})",
            report.terminated
        );
        if check {
            writeln!(out, "{}: held for approval: {held}", hr.id)?;
        } else {
            let Some(approval) = approval else {
                let entry = AuditEntry::new(AuditKind::WaveHeld, "scimfleet import")
                    .detail("import", hr.id.as_str())
                    .detail("terminations", report.terminated)
                    .detail("people", population);
                AuditLog::for_operator(config, store.clone())?.record(entry).await?;
                return Err(AdminError::Refused(format!(
                    "{}: held for approval, nothing published: {held}; an approver releases it with --approver NAME --code TOTP",
                    hr.id
                )));
            };
            let approvers = crate::approvals::approvers_of(config)?;
            let target = crate::approvals::Target::Import(&hr.id);
            let who = crate::approvals::spend_code(
                (config, &store),
                &approvers,
                (approval.approver, approval.code),
                target,
            )
            .await?;
            let entry = AuditEntry::new(AuditKind::WaveReleased, who.name.as_str())
                .detail("import", hr.id.as_str())
                .detail("terminations", report.terminated)
                .detail("people", population);
            AuditLog::for_operator(config, store.clone())?.record(entry).await?;
        }
    }
    if !check && !events.is_empty() {
        publish(config, &events).await?;
        store.sources().keep(&hr.id, &keep).await?;
    }
    let verb = if check { "would emit" } else { "emitted" };
    let r = report;
    writeln!(
        out,
        "{}: {} rows; {verb} {} hired, {} updated, {} suspended, {} terminated; {} unchanged",
        hr.id, r.rows, r.hired, r.updated, r.suspended, r.terminated, r.unchanged
    )?;
    Ok(report)
}

/// What a file calls for: its events, the rows to keep once they are
/// published, the counts, and how many people the source knew active
/// (the population its terminations are a share of).
type Diff = (Vec<String>, Vec<Kept>, ImportReport, usize);

/// What to keep of `person`: the view, and the logins a Security Event
/// Token may name them by.
fn kept_row(person: &PersonId, view: &View) -> Result<Kept, AdminError> {
    Ok(Kept {
        person: person.to_string(),
        user: None,
        view: serde_json::to_string(view)?,
        subjects: people::subjects(&view.attributes),
    })
}

/// The limit `terminated` of `population` people breaks, if any.
fn over_limit(config: &Config, terminated: usize, population: usize) -> Option<String> {
    let limits = &config.governance.mass_deprovision;
    if limits.fleet_max > 0 && terminated > limits.fleet_max as usize {
        return Some(format!("fleet_max {}", limits.fleet_max));
    }
    let share = terminated as f64 * 100.0 / population.max(1) as f64;
    let counts = terminated >= limits.percent_floor as usize;
    (limits.app_percent > 0.0 && counts && share > limits.app_percent)
        .then(|| format!("{share:.0} % of them, over app_percent {}", limits.app_percent))
}

/// What `rows` call for (see [`Diff`]).
async fn diff(hr: &HrFileSource, store: &Store, rows: Vec<parse::Row>) -> Result<Diff, AdminError> {
    let mut report = ImportReport { rows: rows.len(), ..ImportReport::default() };
    let before: HashMap<String, View> = store
        .imports()
        .all(&hr.id)
        .await?
        .into_iter()
        .filter_map(|(person, raw)| Some((person, serde_json::from_str(&raw).ok()?)))
        .collect();
    let listed: Vec<PersonId> = rows.iter().map(|r| r.person.clone()).collect();
    let gone: Vec<PersonId> = before
        .iter()
        .filter(|(person, kept)| {
            kept.status != PersonStatus::Terminated && !listed.iter().any(|p| p.as_str() == *person)
        })
        .filter_map(|(person, _)| PersonId::parse(person.clone()).ok())
        .collect();
    let everyone: Vec<PersonId> = listed.iter().chain(&gone).cloned().collect();
    let registered = store.registry().get_many(&everyone).await?;
    let sequence_of =
        |i: usize| people::sequence_now(registered.get(i).cloned().flatten().map(|r| r.sequence));
    let (mut events, mut keep) = (Vec::new(), Vec::new());
    for (i, row) in rows.into_iter().enumerate() {
        let kept = View::new(row.status, row.attributes, row.groups, row.effective_at);
        let last = before.get(row.person.as_str());
        if kept.same_as(last) {
            report.unchanged += 1;
            continue;
        }
        let known = registered.get(i).is_some_and(Option::is_some);
        let Some(kind) = people::event_type(&kept, last, known) else {
            // Someone who left before this source was used: nothing of
            // theirs came from scimfleet (a sweep finds older accounts).
            keep.push(kept_row(&row.person, &kept)?);
            report.unchanged += 1;
            continue;
        };
        count(&mut report, kind);
        events.push(event(hr, &row.person, kind, sequence_of(i), &kept)?);
        keep.push(kept_row(&row.person, &kept)?);
    }
    for (j, person) in gone.iter().enumerate() {
        let Some(last) = before.get(person.as_str()) else { continue };
        let kept = last.with_status(PersonStatus::Terminated);
        count(&mut report, EventType::Terminated);
        events.push(event(hr, person, EventType::Terminated, sequence_of(listed.len() + j), &kept)?);
        keep.push(kept_row(person, &kept)?);
    }
    let active_before = before.values().filter(|k| k.status != PersonStatus::Terminated).count();
    Ok((events, keep, report, active_before.max(report.rows)))
}

fn count(report: &mut ImportReport, kind: EventType) {
    match kind {
        EventType::Hired => report.hired += 1,
        EventType::Suspended => report.suspended += 1,
        EventType::Terminated => report.terminated += 1,
        EventType::Updated | EventType::Rehired => report.updated += 1,
    }
}

/// The CloudEvent of `kind` for `person`, checked as the scheduler will.
fn event(
    hr: &HrFileSource,
    person: &PersonId,
    kind: EventType,
    sequence: u64,
    kept: &View,
) -> Result<String, AdminError> {
    let id = format!("{}-{}-{}", hr.id, person, &kept.fingerprint[..16]);
    let (source, actor) = (format!("hr-file/{}", hr.id), format!("hr-file:{}", hr.id));
    let origin = people::Origin { source: &source, id: &id, actor: &actor };
    // The reason names the field, never a value.
    people::event_json(origin, person, kind, sequence, kept)
        .map_err(|e| AdminError::Refused(format!("person {person}: {e}")))
}

/// Publishes `events` with confirms (all or, on a failure, an error).
async fn publish(config: &Config, events: &[String]) -> Result<(), AdminError> {
    let lines = events.join("\n");
    let report =
        crate::publish::publish_lines(config, "scimfleet-import", std::io::Cursor::new(lines)).await?;
    if report.confirmed != events.len() {
        return Err(AdminError::Refused(format!(
            "{} of {} events confirmed",
            report.confirmed,
            events.len()
        )));
    }
    Ok(())
}
