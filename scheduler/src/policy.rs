//! Policy: from one person's desired state to one job per app in play.
//!
//! Pure and synchronous, so every rule is unit-tested without a broker.
//! The decision per app:
//!
//! | status      | in scope | held an account (registry) | job                         |
//! |-------------|----------|----------------------------|-----------------------------|
//! | active      | yes      | any                        | upsert                      |
//! | active      | no       | yes                        | deprovision (app's mode)    |
//! | suspended   | any      | yes, or in scope           | deactivate (never delete)   |
//! | terminated  | any      | yes, or in scope           | deprovision (app's mode)    |
//!
//! "Or in scope" for leavers covers people whose account predates the
//! registry: removing access must not depend on scimfleet having created it.
//! A deprovision carries only lookup keys and the groups to leave.

use chrono::{DateTime, Utc};
use scimfleet_runtime::config::{AppConfig, Deprovision};
use scimfleet_schemas::scim::ScimUser;
use scimfleet_schemas::{AppId, Event, GroupPlan, Job, JobAction, JobId, Lookup, PersonState, PersonStatus};

/// The jobs for an event and the apps the person holds an active account in afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One job per app in play.
    pub jobs: Vec<Job>,
    /// Apps where the person should now hold an active account.
    pub active_in: Vec<AppId>,
}

/// The event cannot be turned into jobs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The app's mapping produced no `userName` (its source attribute is missing).
    #[error("app `{app}`: the mapping gives no userName (its source attribute is missing)")]
    NoUserName {
        /// The app.
        app: AppId,
    },
}

/// Plans the jobs for `event` across `apps`, given the apps the registry
/// says the person held an active account in.
pub fn plan(event: &Event, apps: &[AppConfig], held: &[AppId]) -> Result<Plan, PlanError> {
    let person = &event.data;
    let mut jobs = Vec::new();
    let mut active_in = Vec::new();
    for app in apps {
        let in_scope = app.scope.matches(person);
        let had = held.contains(&app.id);
        let action = match person.status {
            PersonStatus::Active if in_scope => {
                active_in.push(app.id.clone());
                Some(upsert(app, person)?)
            }
            PersonStatus::Active if had => Some(deprovision(app, person, app.deprovision)?),
            PersonStatus::Active => None,
            PersonStatus::Suspended if had || in_scope => {
                Some(deprovision(app, person, Deprovision::Deactivate)?)
            }
            PersonStatus::Terminated if had || in_scope => Some(deprovision(app, person, app.deprovision)?),
            PersonStatus::Suspended | PersonStatus::Terminated => None,
        };
        if let Some(action) = action {
            jobs.push(job(event, &app.id, action, event.time));
        }
    }
    Ok(Plan { jobs, active_in })
}

fn job(event: &Event, app: &AppId, action: JobAction, event_time: DateTime<Utc>) -> Job {
    Job {
        v: scimfleet_schemas::job::JOB_SCHEMA_VERSION,
        job_id: JobId::derive(&event.id, app),
        event_id: event.id.clone(),
        app: app.clone(),
        person: event.data.person_id.clone(),
        sequence: event.data.sequence,
        event_time,
        attempt: 0,
        remediation: 0,
        action,
    }
}

/// The account as the app should see it: only mapped attributes, active.
pub fn map_user(app: &AppConfig, person: &PersonState) -> Result<ScimUser, PlanError> {
    let mut user = ScimUser::new(String::new());
    for (attr, source) in &app.mapping.0 {
        attr.set(&mut user, source.render(person));
    }
    if user.user_name.trim().is_empty() {
        return Err(PlanError::NoUserName { app: app.id.clone() });
    }
    user.active = Some(true);
    user.fix_schemas();
    Ok(user)
}

fn groups(app: &AppConfig, person: Option<&PersonState>) -> GroupPlan {
    let (member_of, not_member_of) =
        app.groups.iter().partition::<Vec<_>, _>(|rule| person.is_some_and(|p| rule.applies(p)));
    let names = |rules: Vec<&scimfleet_runtime::config::GroupRule>| {
        rules.into_iter().map(|r| r.name.clone()).collect()
    };
    GroupPlan { member_of: names(member_of), not_member_of: names(not_member_of) }
}

fn upsert(app: &AppConfig, person: &PersonState) -> Result<JobAction, PlanError> {
    Ok(JobAction::Upsert {
        user: map_user(app, person)?,
        managed: app.mapping.attributes(),
        groups: groups(app, Some(person)),
    })
}

fn deprovision(app: &AppConfig, person: &PersonState, mode: Deprovision) -> Result<JobAction, PlanError> {
    let lookup = Lookup::of(&map_user(app, person)?);
    // Leaving every managed group; the worker also leaves any other group the app reports.
    let groups = groups(app, None);
    Ok(match mode {
        Deprovision::Deactivate => JobAction::Deactivate { lookup, groups },
        Deprovision::Delete => JobAction::Delete { lookup, groups },
    })
}

#[cfg(test)]
mod tests;
