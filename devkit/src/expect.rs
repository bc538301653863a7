//! What every app should look like, given people's final desired state, and
//! what does not match.
//!
//! The expectation is computed with the fleet's own policy functions, so
//! it tests the pipeline (queues, workers, SCIM calls) and not a second copy
//! of the rules. Used by the demo's "converged" verdict and by tests that
//! assert exact convergence instead of spot values.

use std::collections::BTreeMap;

use scimfleet_policy::deprovision::deprovision_mode;
use scimfleet_policy::{groups, map_user, scope};
use scimfleet_runtime::Config;
use scimfleet_runtime::config::{AppConfig, Deprovision};
use scimfleet_schemas::scim::{ScimUser, same_value};
use scimfleet_schemas::{AppId, PersonState, PersonStatus};

use crate::scim_server::ScimServerHandle;

/// Compares every app's server state with the desired state of `people`
/// (the newest state per person). Returns one line per mismatch.
pub fn mismatches(
    config: &Config,
    people: &[PersonState],
    servers: &BTreeMap<AppId, ScimServerHandle>,
) -> Vec<String> {
    let mut found = Vec::new();
    for app in &config.apps {
        let Some(server) = servers.get(&app.id) else {
            found.push(format!("{}: no server", app.id));
            continue;
        };
        let users = server.users();
        for person in people {
            let Ok(desired) = map_user(app, person) else { continue };
            let matching: Vec<&ScimUser> = users
                .iter()
                .filter(|u| {
                    u.external_id.is_some() && u.external_id == desired.external_id
                        || u.user_name.eq_ignore_ascii_case(&desired.user_name)
                })
                .collect();
            let who = format!("{}/{}", app.id, person.person_id);
            if matching.len() > 1 {
                found.push(format!("{who}: {} accounts instead of one", matching.len()));
                continue;
            }
            let actual = matching.first().copied();
            let should_hold = person.status == PersonStatus::Active && scope::in_scope(app, person);
            if should_hold {
                check_active(app, person, &desired, actual, server, &who, &mut found);
            } else {
                check_removed(app, person.status, actual, &who, &mut found);
            }
        }
    }
    found
}

fn check_active(
    app: &AppConfig,
    person: &PersonState,
    desired: &ScimUser,
    actual: Option<&ScimUser>,
    server: &ScimServerHandle,
    who: &str,
    found: &mut Vec<String>,
) {
    let Some(actual) = actual else {
        found.push(format!("{who}: account missing"));
        return;
    };
    if actual.active != Some(true) {
        found.push(format!("{who}: account not active"));
    }
    // A reference (a manager) holds a person id here and an account id
    // there: the tests that map one check it.
    let references = scimfleet_policy::mapping::references(app);
    for attr in app.mapping.attributes().into_iter().filter(|a| !references.contains(a)) {
        let (want, have) = (attr.get(desired), attr.get(actual));
        let same = match (want, have) {
            (Some(w), Some(h)) => same_value(&attr, &w, &h),
            (None, None) => true,
            _ => false,
        };
        if !same {
            found.push(format!("{who}: `{attr}` differs"));
        }
    }
    let id = actual.id.clone().unwrap_or_default();
    for rule in &app.groups {
        let member = server.group_by_name(&rule.name).is_some_and(|g| g.has_member(&id));
        match (groups::applies(rule, person), member) {
            (true, false) => found.push(format!("{who}: not in group `{}`", rule.name)),
            (false, true) => found.push(format!("{who}: still in group `{}`", rule.name)),
            _ => {}
        }
    }
}

fn check_removed(
    app: &AppConfig,
    status: PersonStatus,
    actual: Option<&ScimUser>,
    who: &str,
    found: &mut Vec<String>,
) {
    let Some(actual) = actual else { return };
    let must_be_gone = deprovision_mode(status, app) == Deprovision::Delete;
    if must_be_gone {
        found.push(format!("{who}: account should be deleted"));
    } else if actual.is_active() {
        found.push(format!("{who}: account should be inactive"));
    }
    if actual.groups.as_ref().is_some_and(|g| !g.is_empty()) {
        found.push(format!("{who}: deprovisioned account still holds groups"));
    }
}

/// The newest state of each person in a list of event bodies (unparseable
/// bodies are skipped: they are expected to be dead-lettered).
pub fn final_states<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> Vec<PersonState> {
    let mut newest: BTreeMap<String, PersonState> = BTreeMap::new();
    for body in bodies {
        let Ok(event) = scimfleet_schemas::Event::parse(body) else { continue };
        let data = event.data;
        let key = data.person_id.to_string();
        if newest.get(&key).is_none_or(|known| known.sequence < data.sequence) {
            newest.insert(key, data);
        }
    }
    newest.into_values().collect()
}
