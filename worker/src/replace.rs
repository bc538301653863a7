//! Apps without PATCH: the same change as a full replacement (PUT, RFC 7644
//! §3.5.1).
//!
//! Some service providers answer PATCH with `501 Not Implemented` or `405
//! Method Not Allowed`, on users or on groups only. That answer is a
//! capability, not a failure: the first one switches the app's converger
//! (this process, every later job) to PUT for that resource type, and the
//! change that met it is sent again as a PUT at once. The switch is logged
//! once per app and resource type.
//!
//! A PUT replaces the whole resource, so its body is the resource as just
//! read, attributes scimfleet does not map included (`ScimUser::extra`), with
//! only the managed attributes and `active` changed; read-only attributes
//! (`meta`, a user's `groups`) are left out. A group's PUT is its members as
//! read plus or minus the one member: a read-modify-write, serialised per
//! group within the process; two replicas changing the same group at the
//! same instant can still lose one membership (no `If-Match` yet), which
//! the next apply of that person or a sweep (drift) puts back. Sub-attributes
//! scimfleet does not model inside modelled complex attributes (an e-mail's
//! `display`, say) are not kept by a PUT.

use std::sync::atomic::{AtomicBool, Ordering};

use scimfleet_schemas::AppId;
use scimfleet_schemas::scim::{GroupMember, ScimGroup, ScimUser, UserAttr};

use crate::groups::Membership;

/// What an app refused: PATCH on users, PATCH on groups. Learned from its
/// answers, kept for the life of the process.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    users: AtomicBool,
    groups: AtomicBool,
}

impl Refusals {
    /// Whether users are updated with PUT.
    pub(crate) fn users(&self) -> bool {
        self.users.load(Ordering::Relaxed)
    }

    /// Whether group members are changed with PUT.
    pub(crate) fn groups(&self) -> bool {
        self.groups.load(Ordering::Relaxed)
    }

    /// Records that `app` refused PATCH on users.
    pub(crate) fn refuse_users(&self, app: &AppId) {
        if !self.users.swap(true, Ordering::Relaxed) {
            tracing::warn!(scimfleet.app = %app, "{app} does not implement PATCH on users: updating them with PUT");
        }
    }

    /// Records that `app` refused PATCH on groups.
    pub(crate) fn refuse_groups(&self, app: &AppId) {
        if !self.groups.swap(true, Ordering::Relaxed) {
            tracing::warn!(scimfleet.app = %app, "{app} does not implement PATCH on groups: changing members with PUT");
        }
    }
}

/// The user a PUT sends: `actual` with the `managed` attributes of `desired`
/// and `active` when given.
pub(crate) fn user(
    actual: &ScimUser,
    desired: &ScimUser,
    managed: &[UserAttr],
    active: Option<bool>,
) -> ScimUser {
    let mut json = actual.to_json();
    let want = serde_json::Value::Object(desired.to_json());
    for attr in managed {
        attr.set_in(&mut json, attr.value_in(&want).cloned());
    }
    // What was read parsed as a user, and a mapped value fits its path
    // (the plan checked it): the fallback is never taken.
    let mut user = ScimUser::from_json(json).unwrap_or_else(|_| actual.clone());
    user.tidy();
    if let Some(active) = active {
        user.active = Some(active);
    }
    user.meta = None;
    user.groups = None;
    let mut schemas = std::mem::take(&mut user.schemas);
    user.fix_schemas();
    // Extension URNs of attributes kept in `extra` stay declared.
    schemas.retain(|s| !user.schemas.contains(s) && user.extra.contains_key(s));
    user.schemas.extend(schemas);
    user
}

/// The group a PUT sends: `group` as read with `user_id` in or out.
pub(crate) fn group(mut group: ScimGroup, user_id: &str, want: Membership) -> ScimGroup {
    group.members.retain(|m| m.value != user_id);
    if want == Membership::Member {
        group.members.push(GroupMember::user(user_id));
    }
    group.meta = None;
    group
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_replacement_changes_only_managed_attributes_and_keeps_the_rest() {
        let mut actual: ScimUser = serde_json::from_value(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom:2.0:User"],
            "id": "u-1", "userName": "ada", "title": "Clerk", "displayName": "Ada L",
            "urn:example:custom:2.0:User": { "costCenter": "42" },
            "groups": [{ "value": "g-1" }], "meta": { "resourceType": "User" }
        }))
        .expect("a user");
        actual.active = Some(true);
        let mut desired = ScimUser::new("ada");
        desired.title = Some("Lead".into());
        desired.display_name = Some("Ignored".into());
        let put = user(&actual, &desired, &["title".parse::<UserAttr>().expect("a path")], Some(false));
        let body = serde_json::to_value(&put).expect("json");
        assert_eq!(body["title"], "Lead");
        assert_eq!(body["displayName"], "Ada L", "not managed: as read");
        assert_eq!(body["active"], false);
        assert_eq!(
            body["urn:example:custom:2.0:User"]["costCenter"], "42",
            "unmapped attributes are sent back"
        );
        assert!(
            body["schemas"].as_array().is_some_and(|s| s.contains(&json!("urn:example:custom:2.0:User")))
        );
        assert!(body.get("meta").is_none() && body.get("groups").is_none(), "read-only left out");
        assert_eq!(body["id"], "u-1");
    }

    #[test]
    fn a_group_replacement_adds_or_removes_one_member() {
        let mut g = ScimGroup::new("staff");
        g.members.push(GroupMember::user("u-2"));
        let added = group(g.clone(), "u-1", Membership::Member);
        let ids: Vec<&str> = added.members.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(ids, ["u-2", "u-1"]);
        let removed = group(added, "u-1", Membership::NotMember);
        assert_eq!(removed.members.len(), 1);
        assert_eq!(group(removed, "u-1", Membership::Member).members.len(), 2, "never twice");
    }
}
