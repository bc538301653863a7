//! Remediation jobs for a sweep's findings, numbered within the run.
//!
//! An orphan is deprovisioned by `scimfleet_policy::remediation::orphan_job`,
//! the scheduler's own deprovision rule; drift and missing accounts replay
//! the last converged upsert. Unknown accounts get nothing: nothing says
//! whose they are.

use chrono::Utc;
use scimfleet_policy::remediation::orphan_job;
use scimfleet_runtime::store::{DesiredAccount, PersonRecord};
use scimfleet_schemas::scim::ScimUser;
use scimfleet_schemas::{EventId, Job, JobAction, PersonId};

use super::{Class, Sweep};

/// Builds remediation jobs, numbering them within the run.
pub(super) struct Fixes<'s, 'a> {
    sweep: &'s Sweep<'a>,
    issued: u64,
}

/// What fixes one finding.
#[expect(clippy::large_enum_variant, reason = "one per finding, moved into its job at once")]
enum Fix<'u> {
    /// Deprovision the account found.
    Orphan(&'u ScimUser),
    /// Apply this (the recorded desired state) again.
    Replay(JobAction),
}

impl<'s, 'a> Fixes<'s, 'a> {
    pub(super) fn new(sweep: &'s Sweep<'a>) -> Self {
        Self { sweep, issued: 0 }
    }

    /// Appends the job that fixes `class` to `bodies`; returns `queued`, or
    /// why there is none.
    pub(super) fn build(
        &mut self,
        class: Class,
        person: &PersonId,
        record: &PersonRecord,
        account: Option<&ScimUser>,
        desired: Option<&DesiredAccount>,
        bodies: &mut Vec<String>,
    ) -> &'static str {
        let app = self.sweep.app;
        let fix = match (class, account) {
            (Class::Orphan, Some(account)) => Fix::Orphan(account),
            (Class::Drift | Class::Missing, _) => match replay(record, desired) {
                Ok(action) => Fix::Replay(action),
                Err(why) => return why,
            },
            _ => return "not remediated",
        };
        self.issued += 1;
        let Ok(event_id) = EventId::parse(format!("sweep:{}:{}", self.sweep.run_id, self.issued)) else {
            return "not remediated: bad run id";
        };
        let job = match fix {
            Fix::Orphan(account) => orphan_job(app, person, record, account, event_id, Utc::now()),
            // The registry's sequence: the worker drops only older jobs.
            Fix::Replay(action) => {
                Job::new(event_id, app.id.clone(), person.clone(), record.sequence, Utc::now(), action)
            }
        };
        // Serialising our own type cannot fail.
        bodies.push(serde_json::to_string(&job).unwrap_or_default());
        "queued"
    }
}

/// The recorded desired state as an upsert, or why it cannot be replayed.
fn replay(record: &PersonRecord, desired: Option<&DesiredAccount>) -> Result<JobAction, &'static str> {
    let Some(desired) = desired else { return Err("not remediated: no desired state recorded") };
    // An upsert newer than the record is pending (or failed): replaying
    // the older state under the newer sequence could undo it.
    if desired.sequence < record.sequence {
        return Err("not remediated: a newer change is pending");
    }
    Ok(JobAction::Upsert {
        user: desired.user.clone(),
        managed: desired.managed.clone(),
        groups: desired.groups.clone(),
        // Recorded resolved (see `references`): account ids already.
        references: Vec::new(),
    })
}
