//! `scimfleet demo`: a sample organisation provisioned into three in-process
//! SCIM apps through the real pipeline (RabbitMQ, Redis, scheduler, worker).
//!
//! Events are read from a JSON Lines file in which `# title` lines start a
//! phase; each phase is published and allowed to settle before the next, so
//! the output tells the story (joiners, then a mover, then leavers). The demo
//! ends with a per-app summary, taken from what the apps actually received,
//! and a verdict comparing every app with the desired state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use scimfleet_schemas::scim::PatchRequest;

use crate::expect;
use crate::fleet::{Fleet, FleetError, unique_namespace};
use crate::scim_server::{RequestRecord, Resource};

/// A titled group of event bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// The `# title` line, without the `#`.
    pub title: String,
    /// The event bodies (one JSON document per line).
    pub events: Vec<Vec<u8>>,
}

/// Splits JSON Lines into phases at `# title` lines; blank lines are skipped.
pub fn read_phases(text: &str) -> Vec<Phase> {
    let mut phases: Vec<Phase> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(title) = line.strip_prefix('#') {
            phases.push(Phase { title: title.trim().to_owned(), events: Vec::new() });
        } else {
            if phases.is_empty() {
                phases.push(Phase { title: "events".into(), events: Vec::new() });
            }
            if let Some(phase) = phases.last_mut() {
                phase.events.push(line.as_bytes().to_vec());
            }
        }
    }
    phases
}

/// Per-app counts of what the app received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppSummary {
    /// Accounts created.
    pub created: usize,
    /// Accounts whose attributes were patched.
    pub changed: usize,
    /// Accounts deactivated.
    pub deactivated: usize,
    /// Accounts deleted.
    pub deleted: usize,
    /// Group memberships added.
    pub joined_groups: usize,
    /// Group memberships removed.
    pub left_groups: usize,
    /// SCIM requests of any kind.
    pub requests: usize,
}

/// Classifies an app's request log.
pub fn summarise(requests: &[RequestRecord]) -> AppSummary {
    let mut s = AppSummary { requests: requests.len(), ..AppSummary::default() };
    for r in requests.iter().filter(|r| r.status < 300) {
        let patch = || r.body.clone().and_then(|b| serde_json::from_value::<PatchRequest>(b).ok());
        match (r.method.as_str(), r.resource) {
            ("POST", Resource::Users) => s.created += 1,
            ("DELETE", Resource::Users) => s.deleted += 1,
            ("PATCH", Resource::Users) => {
                let deactivates = patch().is_some_and(|p| {
                    p.operations.iter().any(|op| {
                        op.path.as_deref() == Some("active")
                            && op.value == Some(serde_json::Value::Bool(false))
                    })
                });
                if deactivates { s.deactivated += 1 } else { s.changed += 1 }
            }
            ("PATCH", Resource::Groups) => {
                for op in patch().map(|p| p.operations).unwrap_or_default() {
                    match op.op {
                        scimfleet_schemas::scim::PatchOp::Remove => s.left_groups += 1,
                        _ => s.joined_groups += 1,
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// Runs the demo with `policy` (a scimfleet config; its apps' URLs and tokens
/// are replaced by in-process test servers) and `events`. Returns whether
/// every app converged to the desired state.
pub async fn run(policy: &Path, events: &Path, out: &mut impl Write) -> Result<bool, FleetError> {
    let policy_text = std::fs::read_to_string(policy).map_err(|e| format!("{}: {e}", policy.display()))?;
    let events_text = std::fs::read_to_string(events).map_err(|e| format!("{}: {e}", events.display()))?;
    let phases = read_phases(&events_text);
    let started = Instant::now();
    let mut fleet = Fleet::start_in(&policy_text, &unique_namespace("demo")).await?;
    writeln!(out, "scimfleet demo — namespace {}, apps: {}", fleet.config.namespace, app_list(&fleet))?;
    let result = drive(&mut fleet, &phases, out).await;
    let converged = match result {
        Ok(()) => verdict(&fleet, &phases, out)?,
        Err(e) => {
            writeln!(out, "demo failed: {e}")?;
            false
        }
    };
    writeln!(out, "finished in {} ms", started.elapsed().as_millis())?;
    fleet.stop().await?;
    Ok(converged)
}

fn app_list(fleet: &Fleet) -> String {
    fleet.config.apps.iter().map(|a| a.id.to_string()).collect::<Vec<_>>().join(", ")
}

async fn drive(fleet: &mut Fleet, phases: &[Phase], out: &mut impl Write) -> Result<(), FleetError> {
    for phase in phases {
        let before = fleet.worker();
        let t = Instant::now();
        fleet.publish(&phase.events).await?;
        fleet.wait_settled(Duration::from_secs(60)).await?;
        let after = fleet.worker();
        writeln!(
            out,
            "▶ {:<28} {:>3} events → {:>3} jobs ({} changed an app) in {} ms",
            phase.title,
            phase.events.len(),
            after.settled() - before.settled(),
            after.changed - before.changed,
            t.elapsed().as_millis()
        )?;
    }
    Ok(())
}

fn verdict(fleet: &Fleet, phases: &[Phase], out: &mut impl Write) -> Result<bool, FleetError> {
    writeln!(out)?;
    writeln!(
        out,
        "{:<12} {:>7} {:>7} {:>11} {:>7} {:>12} {:>11} {:>8}",
        "app", "created", "changed", "deactivated", "deleted", "joined-group", "left-group", "requests"
    )?;
    let mut totals: BTreeMap<&str, AppSummary> = BTreeMap::new();
    for (app, server) in fleet.servers() {
        let s = summarise(&server.requests());
        totals.insert(app.as_str(), s);
        writeln!(
            out,
            "{:<12} {:>7} {:>7} {:>11} {:>7} {:>12} {:>11} {:>8}",
            app.as_str(),
            s.created,
            s.changed,
            s.deactivated,
            s.deleted,
            s.joined_groups,
            s.left_groups,
            s.requests
        )?;
    }
    let people = expect::final_states(phases.iter().flat_map(|p| p.events.iter().map(Vec::as_slice)));
    let mismatches = expect::mismatches(&fleet.config, &people, fleet.servers());
    let s = fleet.scheduler();
    writeln!(out)?;
    writeln!(
        out,
        "events: {} accepted, {} stale, {} dead-lettered; jobs: {} published, {} dead-lettered",
        s.accepted,
        s.stale,
        s.dead_lettered,
        s.jobs_published,
        fleet.worker().dead_lettered
    )?;
    if mismatches.is_empty() {
        writeln!(out, "✔ every app converged to the desired state of {} people", people.len())?;
    } else {
        writeln!(out, "✘ {} mismatches:", mismatches.len())?;
        for m in &mismatches {
            writeln!(out, "  - {m}")?;
        }
    }
    Ok(mismatches.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_split_at_titles_and_skip_blanks() {
        let phases = read_phases("# joiners\n{\"a\":1}\n\n{\"a\":2}\n# leavers\n{\"a\":3}\n");
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0].title, "joiners");
        assert_eq!(phases[0].events.len(), 2);
        assert_eq!(phases[1].events, vec![b"{\"a\":3}".to_vec()]);
    }

    #[test]
    fn untitled_events_form_one_phase() {
        assert_eq!(read_phases("{}\n{}\n")[0].events.len(), 2);
    }
}
