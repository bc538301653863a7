//! Classification: one account of an app against the registry and the last
//! converged upsert, without any I/O (the run loop batches the look-ups).

use scimfleet_runtime::store::{DesiredAccount, PersonRecord};
use scimfleet_schemas::scim::{ScimUser, diff_user};
use scimfleet_schemas::{AppId, GroupPlan, PersonStatus};
use serde::Serialize;

/// How an account (or a member without one) compares with the fleet's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// As it should be (an inactive account nobody needs counts as ok).
    Ok,
    /// Active, but its person is terminated, suspended or out of the app's scope.
    Orphan,
    /// Active, and no known person maps to it.
    Unknown,
    /// Its person should hold it, but it is inactive or differs from the
    /// desired state on managed attributes or groups.
    Drift,
    /// Its person should hold an account, and none was seen.
    Missing,
}

impl Class {
    /// The class as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Orphan => "orphan",
            Self::Unknown => "unknown",
            Self::Drift => "drift",
            Self::Missing => "missing",
        }
    }
}

/// Classifies one account of `app`: `owner` is the registry record of the
/// person the account maps to (`None`: no mapping, or no record), `desired`
/// that person's last converged upsert in the app.
pub fn classify(
    app: &AppId,
    account: &ScimUser,
    owner: Option<&PersonRecord>,
    desired: Option<&DesiredAccount>,
) -> Class {
    let Some(owner) = owner else {
        return if account.is_active() { Class::Unknown } else { Class::Ok };
    };
    if !should_hold(owner, app) {
        return if account.is_active() { Class::Orphan } else { Class::Ok };
    }
    if !account.is_active() {
        return Class::Drift;
    }
    // Without a desired record (provisioned before records were kept) there
    // is nothing to compare with; the next upsert writes one.
    let Some(desired) = desired else { return Class::Ok };
    if !diff_user(&desired.user, account, &desired.managed).is_empty() {
        return Class::Drift;
    }
    if groups_differ(account, &desired.groups) { Class::Drift } else { Class::Ok }
}

/// Whether the registry says `person` should hold an active account in `app`.
pub(super) fn should_hold(person: &PersonRecord, app: &AppId) -> bool {
    person.status == PersonStatus::Active && person.apps.contains(app)
}

/// Whether the account's groups (by display name, case-insensitively, as
/// `displayName` is compared) break the plan. Only checked when the app
/// reports `groups` with display names; otherwise nothing can be said.
fn groups_differ(account: &ScimUser, plan: &GroupPlan) -> bool {
    let Some(refs) = &account.groups else { return false };
    let Some(names) = refs.iter().map(|g| g.display.as_deref()).collect::<Option<Vec<&str>>>() else {
        return false;
    };
    let holds = |name: &String| names.iter().any(|n| n.eq_ignore_ascii_case(name));
    !plan.member_of.iter().all(holds) || plan.not_member_of.iter().any(holds)
}

#[cfg(test)]
mod tests {
    use scimfleet_schemas::scim::GroupRef;

    use super::*;

    fn app() -> AppId {
        AppId::parse("git").expect("app id")
    }

    fn person(status: &str, apps: &[&str]) -> PersonRecord {
        PersonRecord {
            sequence: 3,
            status: PersonStatus::parse(status).expect("status"),
            apps: apps.iter().map(|a| AppId::parse(*a).expect("app id")).collect(),
        }
    }

    fn account(title: &str, active: bool, groups: &[&str]) -> ScimUser {
        let mut user = ScimUser::new("e1@example.com");
        user.id = Some("u1".to_owned());
        user.external_id = Some("E1".to_owned());
        user.title = Some(title.to_owned());
        user.active = Some(active);
        user.groups = Some(
            groups
                .iter()
                .map(|g| GroupRef {
                    value: format!("g-{g}"),
                    reference: None,
                    display: Some((*g).to_owned()),
                })
                .collect(),
        );
        user
    }

    fn desired() -> DesiredAccount {
        let mut user = account("Clerk", true, &[]);
        user.id = None;
        user.groups = None;
        DesiredAccount {
            sequence: 3,
            user,
            managed: vec!["title".parse().expect("a path")],
            groups: GroupPlan {
                member_of: vec!["staff".to_owned()],
                not_member_of: vec!["admins".to_owned()],
            },
        }
    }

    #[test]
    fn an_account_nobody_maps_to_is_unknown_while_active() {
        assert_eq!(classify(&app(), &account("Clerk", true, &[]), None, None), Class::Unknown);
        assert_eq!(classify(&app(), &account("Clerk", false, &[]), None, None), Class::Ok);
    }

    #[test]
    fn an_active_account_of_a_leaver_or_mover_is_an_orphan() {
        let active = account("Clerk", true, &["staff"]);
        let wanted = desired();
        assert_eq!(classify(&app(), &active, Some(&person("terminated", &[])), Some(&wanted)), Class::Orphan);
        assert_eq!(classify(&app(), &active, Some(&person("active", &["chat"])), None), Class::Orphan);
        let inactive = account("Clerk", false, &[]);
        assert_eq!(classify(&app(), &inactive, Some(&person("terminated", &[])), None), Class::Ok);
    }

    #[test]
    fn attributes_activity_and_groups_are_compared_with_the_desired_state() {
        let member = person("active", &["git"]);
        let wanted = desired();
        let ok = account("Clerk", true, &["STAFF"]);
        assert_eq!(classify(&app(), &ok, Some(&member), Some(&wanted)), Class::Ok);
        let edited = account("Boss", true, &["staff"]);
        assert_eq!(classify(&app(), &edited, Some(&member), Some(&wanted)), Class::Drift);
        let inactive = account("Clerk", false, &["staff"]);
        assert_eq!(classify(&app(), &inactive, Some(&member), Some(&wanted)), Class::Drift);
        let left = account("Clerk", true, &[]);
        assert_eq!(classify(&app(), &left, Some(&member), Some(&wanted)), Class::Drift);
        let extra = account("Clerk", true, &["staff", "admins"]);
        assert_eq!(classify(&app(), &extra, Some(&member), Some(&wanted)), Class::Drift);
        // Groups the app does not report cannot be judged.
        let mut unreported = account("Clerk", true, &[]);
        unreported.groups = None;
        assert_eq!(classify(&app(), &unreported, Some(&member), Some(&wanted)), Class::Ok);
        // Nothing recorded to compare with: only activity is judged.
        assert_eq!(classify(&app(), &edited, Some(&member), None), Class::Ok);
    }
}
