//! The deprovision decision: how a person's access to an app is removed.
//!
//! A suspension is reversible, so it only ever deactivates, whatever the
//! app's mode; a termination, or an active person who left the app's scope,
//! gets the app's configured mode. Everything that removes access (the
//! scheduler's plan, the sweep's orphan remediation) asks these two functions,
//! so the rule is written once.

use scimfleet_runtime::config::{AppConfig, Deprovision};
use scimfleet_schemas::{JobAction, Lookup, PersonStatus};

use crate::groups;

/// Deactivate or delete, for a person of `status` who must lose `app`.
pub fn deprovision_mode(status: PersonStatus, app: &AppConfig) -> Deprovision {
    match status {
        PersonStatus::Suspended => Deprovision::Deactivate,
        PersonStatus::Active | PersonStatus::Terminated => app.deprovision,
    }
}

/// The action removing the account found by `lookup` from `app` per `mode`,
/// leaving every managed group (the worker also leaves any other group the
/// app reports).
pub fn deprovision_action(app: &AppConfig, lookup: Lookup, mode: Deprovision) -> JobAction {
    let groups = groups::leave_all(app);
    match mode {
        Deprovision::Deactivate => JobAction::Deactivate { lookup, groups },
        Deprovision::Delete => JobAction::Delete { lookup, groups },
    }
}
