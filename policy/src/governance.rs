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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use chrono::Utc;
    use scimfleet_runtime::Config;
    use scimfleet_schemas::{AppId, EventId, GroupPlan, Lookup, PersonId};

    use super::*;

    const CONFIG: &str = r#"
[[apps]]
id = "git"
base_url = "https://git.example.com/scim/v2"
token_env = "T"
deprovision = "delete"
high_risk = { groups = ["admins"], create = true, delete = true }
[[apps.groups]]
name = "admins"
[[apps.groups]]
name = "staff"
"#;

    fn app() -> AppConfig {
        Config::from_toml(CONFIG, "t.toml", PathBuf::new(), Vec::new()).expect("valid").apps.remove(0)
    }

    fn job(action: JobAction) -> Job {
        let event = EventId::parse("e-1").expect("event id");
        Job::new(
            event,
            AppId::parse("git").expect("app"),
            PersonId::parse("E1").expect("p"),
            1,
            Utc::now(),
            action,
        )
    }

    fn lookup() -> Lookup {
        Lookup { external_id: None, user_name: "e1@example.com".to_owned() }
    }

    fn upsert(member_of: &[&str]) -> Job {
        let user = scimfleet_schemas::scim::ScimUser {
            user_name: "e1@example.com".to_owned(),
            ..Default::default()
        };
        let groups = GroupPlan {
            member_of: member_of.iter().map(|g| (*g).to_owned()).collect(),
            not_member_of: vec![],
        };
        job(JobAction::Upsert { user, managed: Vec::new(), groups, references: Vec::new() })
    }

    #[test]
    fn a_new_admin_group_and_a_new_account_are_high_risk_an_already_granted_group_is_not() {
        let app = app();
        let risk = grant_risk(&app, &upsert(&["admins", "staff"]), false, &[]);
        assert_eq!(risk.reasons, ["create", "group admins"]);
        assert_eq!(risk.new_groups, ["admins"]);
        let again = grant_risk(&app, &upsert(&["admins", "staff"]), true, &["ADMINS".to_owned()]);
        assert!(again.is_none(), "{again:?}");
        assert!(grant_risk(&app, &upsert(&["staff"]), true, &[]).is_none());
        assert_eq!(high_risk_groups(&app, &upsert(&["admins", "staff"])), ["admins"]);
    }

    #[test]
    fn removing_access_is_never_a_grant_but_a_delete_can_wait_behind_a_deactivation() {
        let app = app();
        let deactivate = job(JobAction::Deactivate { lookup: lookup(), groups: GroupPlan::default() });
        assert!(grant_risk(&app, &deactivate, true, &[]).is_none());
        assert!(deactivate_instead(&deactivate).is_none());
        let delete = job(JobAction::Delete { lookup: lookup(), groups: GroupPlan::default() });
        assert_eq!(grant_risk(&app, &delete, true, &[]).reasons, ["delete"]);
        let now = deactivate_instead(&delete).expect("a deactivation in its place");
        assert_eq!(now.action.name(), "deactivate");
        assert_eq!((&now.job_id, now.sequence), (&delete.job_id, delete.sequence));
        assert!(high_risk_groups(&app, &delete).is_empty());
    }
}
