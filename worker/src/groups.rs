//! Groups by display name: resolving names to ids (with a per-app cache),
//! creating missing groups without duplicates, and joining or leaving one.
//!
//! Jobs name groups by `displayName`; SCIM writes need ids. Group ids rarely
//! change, so each name is resolved once per process, saving a GET per job.
//! A cached id that 404s is forgotten and the name resolved again once (the
//! group was deleted, perhaps recreated).
//!
//! A missing group is created only when the app allows it. Creation is
//! serialised within the process, so two jobs never create the same group
//! twice here; across processes a `409` on create means another worker won
//! the race, and the group is looked up again, never duplicated.
//!
//! Membership is read from the user's `groups` attribute when the app returns
//! it (free: the user was just read), else from the group's `members`. A
//! write is sent only when membership differs, so re-applying is read-only.
//! A user in no group at all needs no look-up to leave one: most managed
//! groups of a new hire are never resolved.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use scimfleet_schemas::scim::{GroupRef, PatchOperation, ScimGroup, eq_filter};
use serde_json::json;

use scimfleet_runtime::KeyedLocks;

use crate::client::{Created, ScimClient};
use crate::error::ApplyError;
use crate::replace::{self, Refusals};

/// Whether the person must be in a group or out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Must be a member.
    Member,
    /// Must not be a member.
    NotMember,
}

/// Name → id cache of one app's groups, and whether it takes PATCH on them.
#[derive(Debug, Default)]
pub(crate) struct GroupDirectory {
    ids: Mutex<HashMap<String, String>>,
    /// Held while finding-then-creating, so one process never creates a group twice.
    creating: tokio::sync::Mutex<()>,
    /// What the app refused (PATCH on users, on groups): see `replace`.
    pub(crate) refusals: Refusals,
    /// Held around a group's read-modify-write (PUT), so jobs of this
    /// process never overwrite each other's membership change.
    replacing: KeyedLocks,
}

/// The cache key: displayName is caseExact=false (RFC 7643 §4.2).
fn key(name: &str) -> String {
    name.to_lowercase()
}

impl GroupDirectory {
    fn ids(&self) -> MutexGuard<'_, HashMap<String, String>> {
        // The map holds no invariant a panicking holder could break.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.ids().get(&key(name)).cloned()
    }

    fn remember(&self, name: &str, id: &str) {
        self.ids().insert(key(name), id.to_owned());
    }

    /// Drops the cached id of `name` if it is still `stale_id`.
    fn forget(&self, name: &str, stale_id: &str) {
        let mut ids = self.ids();
        if ids.get(&key(name)).is_some_and(|id| id == stale_id) {
            ids.remove(&key(name));
        }
    }

    /// The id of group `name`. When it does not exist: created if `create`,
    /// else `None`.
    pub(crate) async fn resolve(
        &self,
        client: &ScimClient,
        name: &str,
        create: bool,
    ) -> Result<Option<String>, ApplyError> {
        if let Some(id) = self.cached(name) {
            return Ok(Some(id));
        }
        if let Some(id) = self.find(client, name).await? {
            return Ok(Some(id));
        }
        if !create {
            return Ok(None);
        }
        let _creating = self.creating.lock().await;
        // Another job may have created it while this one waited.
        if let Some(id) = self.cached(name) {
            return Ok(Some(id));
        }
        let id = match client.create_group(&ScimGroup::new(name)).await? {
            Created::New(group) => group.id.ok_or(ApplyError::MissingId { resource: "Group" })?,
            Created::Conflict => self
                .find(client, name)
                .await?
                .ok_or_else(|| ApplyError::GroupConflictNotFound { name: name.to_owned() })?,
        };
        self.remember(name, &id);
        Ok(Some(id))
    }

    async fn find(&self, client: &ScimClient, name: &str) -> Result<Option<String>, ApplyError> {
        let id = client.find_group(name).await?.and_then(|g| g.id);
        if let Some(id) = &id {
            self.remember(name, id);
        }
        Ok(id)
    }

    /// Brings `user_id`'s membership of group `name` to `want`; true when it
    /// wrote. `held` is the user's `groups` attribute, when the app returns it.
    pub(crate) async fn ensure(
        &self,
        client: &ScimClient,
        name: &str,
        user_id: &str,
        held: Option<&[GroupRef]>,
        want: Membership,
        create: bool,
    ) -> Result<bool, ApplyError> {
        if want == Membership::NotMember && held.is_some_and(<[GroupRef]>::is_empty) {
            // In no group at all, so not in this one: nothing to look up.
            return Ok(false);
        }
        // A second round only after a cached id turned out stale.
        for _round in 0..2 {
            let Some(group_id) = self.resolve(client, name, create && want == Membership::Member).await?
            else {
                return match want {
                    Membership::Member => Err(ApplyError::GroupMissing { name: name.to_owned() }),
                    // Not there, so nobody is in it.
                    Membership::NotMember => Ok(false),
                };
            };
            match self.set_membership(client, &group_id, user_id, held, want).await? {
                Some(wrote) => return Ok(wrote),
                None => self.forget(name, &group_id),
            }
        }
        Err(ApplyError::GroupConflictNotFound { name: name.to_owned() })
    }

    /// Ids of the groups `user_id` is in: the `groups` attribute when the app
    /// returns it, else those of the job's managed `names` that hold the user.
    pub(crate) async fn held_by(
        &self,
        client: &ScimClient,
        user_id: &str,
        held: Option<&[GroupRef]>,
        names: &[&str],
    ) -> Result<Vec<String>, ApplyError> {
        if let Some(held) = held {
            return Ok(held.iter().map(|g| g.value.clone()).collect());
        }
        let mut ids = Vec::new();
        for name in names {
            let Some(group_id) = self.resolve(client, name, false).await? else { continue };
            match client.group_has_member(&group_id, user_id).await? {
                Some(true) if !ids.contains(&group_id) => ids.push(group_id),
                Some(_) => {}
                None => self.forget(name, &group_id),
            }
        }
        Ok(ids)
    }
}

impl GroupDirectory {
    /// Adds or removes the member if needed: `Some(wrote)`, or `None` when
    /// the group id no longer exists (so the caller resolves the name again).
    async fn set_membership(
        &self,
        client: &ScimClient,
        group_id: &str,
        user_id: &str,
        held: Option<&[GroupRef]>,
        want: Membership,
    ) -> Result<Option<bool>, ApplyError> {
        let is_member = match held {
            Some(held) => held.iter().any(|g| g.value == group_id),
            None => match client.group_has_member(group_id, user_id).await? {
                Some(member) => member,
                None => return Ok(None),
            },
        };
        if is_member == (want == Membership::Member) {
            return Ok(Some(false));
        }
        self.write_membership(client, group_id, user_id, want).await
    }

    /// Removes `user_id` from group `group_id`; true when it wrote, false
    /// when the group is gone (and the membership with it).
    pub(crate) async fn leave(
        &self,
        client: &ScimClient,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, ApplyError> {
        let wrote = self.write_membership(client, group_id, user_id, Membership::NotMember).await?;
        Ok(wrote.unwrap_or(false))
    }

    /// Sends one membership change: a PATCH, or once the app refused PATCH
    /// on groups, the group as read now with the member in or out (PUT).
    /// `None` when the group is gone.
    async fn write_membership(
        &self,
        client: &ScimClient,
        group_id: &str,
        user_id: &str,
        want: Membership,
    ) -> Result<Option<bool>, ApplyError> {
        if !self.refusals.groups() {
            let ops = match want {
                Membership::Member => add_member(user_id),
                Membership::NotMember => remove_member(user_id),
            };
            match client.patch_group(group_id, ops).await {
                Ok(()) => return Ok(Some(true)),
                Err(error) if error.is_not_found() => return Ok(None),
                Err(error) if error.is_not_implemented() => self.refusals.refuse_groups(client.app()),
                Err(error) => return Err(error.into()),
            }
        }
        if !client.reads_group_members() {
            // A PUT of a group read without its members would empty it.
            let why = "neither PATCHes groups nor returns their members";
            return Err(ApplyError::Unsupported { app: client.app().to_string(), why });
        }
        let _one_at_a_time = self.replacing.lock(group_id.to_owned()).await;
        let Some(group) = client.get_group(group_id).await? else { return Ok(None) };
        if group.has_member(user_id) == (want == Membership::Member) {
            return Ok(Some(false));
        }
        client.put_group(group_id, &replace::group(group, user_id, want)).await?;
        Ok(Some(true))
    }
}

/// `add` of one member (RFC 7644 §3.5.2.1).
pub(crate) fn add_member(user_id: &str) -> Vec<PatchOperation> {
    vec![PatchOperation::add("members", json!([{ "value": user_id }]))]
}

/// `remove` of one member by a value filter (RFC 7644 §3.5.2.2), with the id
/// escaped so it cannot break out of the filter.
pub(crate) fn remove_member(user_id: &str) -> Vec<PatchOperation> {
    vec![PatchOperation::remove(format!("members[{}]", eq_filter("value", user_id)))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimfleet_schemas::scim::PatchOp;

    #[test]
    fn member_patches_have_the_rfc_shape() {
        let add = add_member("u-1");
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].op, PatchOp::Add);
        assert_eq!(add[0].path.as_deref(), Some("members"));
        assert_eq!(add[0].value, Some(json!([{ "value": "u-1" }])));
        let remove = remove_member("u-1");
        assert_eq!(remove[0].op, PatchOp::Remove);
        assert_eq!(remove[0].path.as_deref(), Some(r#"members[value eq "u-1"]"#));
        assert_eq!(remove[0].value, None);
    }

    #[test]
    fn removal_filter_escapes_the_id() {
        let ops = remove_member(r#"a"] or value pr ["b\"#);
        assert_eq!(ops[0].path.as_deref(), Some(r#"members[value eq "a\"] or value pr [\"b\\"]"#));
    }

    #[test]
    fn cache_is_case_insensitive_and_forgets_only_the_stale_id() {
        let directory = GroupDirectory::default();
        directory.remember("Engineering", "g-1");
        assert_eq!(directory.cached("engineering").as_deref(), Some("g-1"));
        directory.forget("ENGINEERING", "g-old");
        assert_eq!(directory.cached("Engineering").as_deref(), Some("g-1"));
        directory.forget("ENGINEERING", "g-1");
        assert_eq!(directory.cached("Engineering"), None);
    }
}
