//! Group membership: which of an app's managed groups a person belongs in.
//!
//! Only groups named by the app's rules are managed; the plan lists every one
//! of them, as held or not held, so the worker knows what to leave too.

use scimfleet_runtime::config::{AppConfig, GroupRule};
use scimfleet_schemas::{GroupPlan, PersonState};

use crate::scope::condition_matches;

/// Whether `person` belongs in the rule's group: its condition holds (when
/// given) and they hold one of its HR groups (when given).
pub fn applies(rule: &GroupRule, person: &PersonState) -> bool {
    rule.when.as_ref().is_none_or(|c| condition_matches(c, person))
        && (rule.hr_groups.is_empty() || rule.hr_groups.iter().any(|g| person.groups.contains(g)))
}

/// The managed groups `person` is to hold in `app`, and the ones to leave.
pub fn plan(app: &AppConfig, person: &PersonState) -> GroupPlan {
    split(app, |rule| applies(rule, person))
}

/// Leaving every managed group: the plan of a deprovision.
pub fn leave_all(app: &AppConfig) -> GroupPlan {
    split(app, |_| false)
}

fn split(app: &AppConfig, member: impl Fn(&GroupRule) -> bool) -> GroupPlan {
    let (member_of, not_member_of) = app.groups.iter().partition::<Vec<_>, _>(|rule| member(rule));
    let names = |rules: Vec<&GroupRule>| rules.into_iter().map(|r| r.name.clone()).collect();
    GroupPlan { member_of: names(member_of), not_member_of: names(not_member_of) }
}
