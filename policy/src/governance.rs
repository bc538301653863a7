//! What in a planned job takes step-up authentication or an approver
//! (guarantee 6: only granting does; removing access never waits for it).
//!
//! Pure, like the rest of the policy: the scheduler asks [`grant_risk`]
//! about each job with what Redis knows (whether the person had an account
//! in the app, the high-risk groups already let through) and acts on the
//! answer. A deprovision is never a grant, except the irreversible DELETE
//! of an app marked `high_risk.delete`: the account is deactivated at once
//! ([`deactivate_instead`]) and only the DELETE waits.

use scimfleet_runtime::config::AppConfig;
use scimfleet_schemas::{Job, JobAction};

/// What makes a job a high-risk grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantRisk {
    /// Why it is high-risk, for the approver: `group Admins`, `create`, `delete`.
    pub reasons: Vec<String>,
    /// High-risk groups it grants that were not granted before.
    pub new_groups: Vec<String>,
}

impl GrantRisk {
    /// Whether the job grants nothing high-risk.
    pub fn is_none(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// The high-risk grants of `job` in `app`, given whether the person held an
/// account there (`had_account`, per the registry) and the high-risk groups
/// already let through (`granted`).
pub fn grant_risk(app: &AppConfig, job: &Job, had_account: bool, granted: &[String]) -> GrantRisk {
    let mut risk = GrantRisk::default();
    match &job.action {
        JobAction::Upsert { groups, .. } => {
            if app.high_risk.create && !had_account {
                risk.reasons.push("create".to_owned());
            }
            for group in groups.member_of.iter().filter(|g| app.is_high_risk_group(g)) {
                if !granted.iter().any(|had| had.eq_ignore_ascii_case(group)) {
                    risk.reasons.push(format!("group {group}"));
                    risk.new_groups.push(group.clone());
                }
            }
        }
        JobAction::Delete { .. } if app.high_risk.delete => risk.reasons.push("delete".to_owned()),
        JobAction::Delete { .. } | JobAction::Deactivate { .. } | JobAction::Verify { .. } => {}
    }
    risk
}

/// The high-risk groups `job` leaves the person in (recorded as granted
/// once it goes out); none for a deprovision.
pub fn high_risk_groups(app: &AppConfig, job: &Job) -> Vec<String> {
    match &job.action {
        JobAction::Upsert { groups, .. } => {
            groups.member_of.iter().filter(|g| app.is_high_risk_group(g)).cloned().collect()
        }
        _ => Vec::new(),
    }
}

/// The deactivation that goes out at once while a DELETE waits for an approver.
pub fn deactivate_instead(job: &Job) -> Option<Job> {
    let JobAction::Delete { lookup, groups } = &job.action else {
        return None;
    };
    let mut now = job.clone();
    now.action = JobAction::Deactivate { lookup: lookup.clone(), groups: groups.clone() };
    Some(now)
}
