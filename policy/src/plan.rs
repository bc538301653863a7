//! Policy: from one person's desired state to one job per app in play.
//!
//! Pure and synchronous, so every rule is unit-tested without a broker.
//! The decision per app (the deactivate-or-delete choice is
//! [`deprovision_mode`]'s):
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

use scimfleet_runtime::config::AppConfig;
use scimfleet_schemas::{AppId, Event, Job, JobAction, PersonState, PersonStatus};

use crate::deprovision::{deprovision_action, deprovision_mode};
use crate::{groups, map_user, mapping, scope};

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
    /// A mapped value is not what the app's mapping says it is.
    #[error("app `{app}`: the value mapped to `{path}` {reason}")]
    Value {
        /// The app.
        app: AppId,
        /// The attribute path.
        path: String,
        /// What is wrong, without the value.
        reason: String,
    },
}

/// Plans the jobs for `event` across `apps`, given the apps the registry
/// says the person held an active account in.
pub fn plan(event: &Event, apps: &[AppConfig], held: &[AppId]) -> Result<Plan, PlanError> {
    let person = &event.data;
    let mut jobs = Vec::new();
    let mut active_in = Vec::new();
    for app in apps {
        let in_scope = scope::in_scope(app, person);
        let had = held.contains(&app.id);
        let action = match person.status {
            PersonStatus::Active if in_scope => {
                active_in.push(app.id.clone());
                Some(upsert(app, person)?)
            }
            PersonStatus::Active if had => Some(deprovision(app, person)?),
            PersonStatus::Active => None,
            PersonStatus::Suspended | PersonStatus::Terminated if had || in_scope => {
                Some(deprovision(app, person)?)
            }
            PersonStatus::Suspended | PersonStatus::Terminated => None,
        };
        if let Some(action) = action {
            let data = &event.data;
            let job = Job::new(
                event.id.clone(),
                app.id.clone(),
                data.person_id.clone(),
                data.sequence,
                event.time,
                action,
            );
            jobs.push(Job { actor: Some(data.actor.id.clone()), ..job });
        }
    }
    Ok(Plan { jobs, active_in })
}

fn upsert(app: &AppConfig, person: &PersonState) -> Result<JobAction, PlanError> {
    Ok(JobAction::Upsert {
        user: map_user(app, person)?,
        managed: app.mapping.attributes(),
        groups: groups::plan(app, person),
        references: mapping::references(app),
    })
}

/// A deprovision carries only the mapped lookup keys and the groups to leave.
fn deprovision(app: &AppConfig, person: &PersonState) -> Result<JobAction, PlanError> {
    let lookup = mapping::lookup(app, person)?;
    Ok(deprovision_action(app, lookup, deprovision_mode(person.status, app)))
}

#[cfg(test)]
mod tests;
