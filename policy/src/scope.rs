//! Scope: whether a person's attributes put them in an app's audience.
//!
//! Status is judged by the plan, not here: a terminated engineer is still
//! "in scope" of the engineering app, which is what makes the app's
//! account theirs to remove even when the registry never recorded it.

use scimfleet_runtime::config::{AppConfig, Condition};
use scimfleet_schemas::PersonState;

/// Whether every attribute named by `condition` has one of its listed values.
pub fn condition_matches(condition: &Condition, person: &PersonState) -> bool {
    condition
        .iter()
        .all(|(name, values)| person.attribute(name).is_some_and(|v| values.iter().any(|w| w == v)))
}

/// Whether `person`'s attributes put them in `app`'s scope: the include
/// condition holds (empty means everyone) and the exclude condition does not.
pub fn in_scope(app: &AppConfig, person: &PersonState) -> bool {
    let scope = &app.scope;
    condition_matches(&scope.include, person)
        && !scope.exclude.as_ref().is_some_and(|ex| condition_matches(ex, person))
}
