//! Managed attributes an app drops: accepted on write, gone on read.
//!
//! A server that stores only the core schema answers 200 to a PATCH or PUT
//! of an extension attribute and keeps nothing of it, so every later apply
//! would find it different and write it again, forever. The first time a
//! managed attribute is written to an app (per process), the account is
//! read back once by id: an attribute read back with a value (in whatever
//! form the app keeps it) is trusted from then on; one written with a value
//! and read back without any is unsupported there. Unsupported attributes are left
//! out of every later diff and create, logged once, and returned so the
//! worker can count and report them (metric, `status`). Judged right after
//! the write, so an admin's hand edit is not mistaken for a drop.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use scimfleet_schemas::AppId;
use scimfleet_schemas::scim::{ScimUser, UserAttr};
use serde_json::Value;

/// What one app keeps of the managed attributes.
#[derive(Debug, Default)]
pub(crate) struct AttributeSupport {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Written and read back as written.
    confirmed: HashSet<UserAttr>,
    /// Written and read back without it.
    unsupported: HashSet<UserAttr>,
}

impl AttributeSupport {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is one insert: a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `managed` without what the app is known to drop.
    pub(crate) fn effective(&self, managed: &[UserAttr]) -> Vec<UserAttr> {
        let state = self.state();
        managed.iter().filter(|a| !state.unsupported.contains(*a)).cloned().collect()
    }

    /// `user` without the attributes the app is known to drop (a create).
    pub(crate) fn strip(&self, user: &ScimUser) -> ScimUser {
        let unsupported = &self.state().unsupported;
        if unsupported.is_empty() {
            return user.clone();
        }
        let mut json = user.to_json();
        for attr in unsupported {
            attr.set_in(&mut json, None);
        }
        // Removing attributes from a valid user leaves a valid user.
        let mut stripped = ScimUser::from_json(json).unwrap_or_else(|_| user.clone());
        stripped.fix_schemas();
        stripped
    }

    /// Of `written`, those not judged yet.
    pub(crate) fn unconfirmed(&self, written: &[UserAttr]) -> Vec<UserAttr> {
        let state = self.state();
        written
            .iter()
            .filter(|a| !state.confirmed.contains(*a) && !state.unsupported.contains(*a))
            .cloned()
            .collect()
    }

    /// Judges `written` on the account as read back (`after`): returns the
    /// attributes found unsupported now.
    pub(crate) fn judge(
        &self,
        app: &AppId,
        desired: &ScimUser,
        after: &ScimUser,
        written: &[UserAttr],
    ) -> Vec<UserAttr> {
        let mut state = self.state();
        let mut dropped = Vec::new();
        // Only an attribute written with a value and read back with none is
        // dropped: one read back in another form (a lower-cased address, a
        // formatted number) took, in the app's form, and stays managed; a
        // login is the app's business.
        let (desired, after) = (Value::Object(desired.to_json()), Value::Object(after.to_json()));
        for attr in written.iter().filter(|a| !a.is_user_name()) {
            if attr.value_in(&desired).is_none() || attr.value_in(&after).is_some() {
                state.confirmed.insert(attr.clone());
            } else if state.unsupported.insert(attr.clone()) {
                tracing::warn!(
                    scimfleet.app = %app, attribute = attr.path(),
                    "{app} drops {} when written: not written there any more", attr.path()
                );
                dropped.push(attr.clone());
            }
        }
        dropped
    }
}

impl AttributeSupport {
    /// Marks `unlisted` (managed attributes the app's `/Schemas` does not
    /// list, per its target profile) unsupported before any is written:
    /// returns those not known unsupported before.
    pub(crate) fn unlisted(&self, app: &AppId, unlisted: &[UserAttr]) -> Vec<UserAttr> {
        let mut state = self.state();
        let fresh: Vec<UserAttr> =
            unlisted.iter().filter(|a| state.unsupported.insert((*a).clone())).cloned().collect();
        for attr in &fresh {
            tracing::warn!(
                scimfleet.app = %app, attribute = attr.path(),
                "{app} does not list {} in its schemas: not written there", attr.path()
            );
        }
        fresh
    }
}

/// The managed attributes whose value in `desired` differs from `actual`.
pub(crate) fn differing(desired: &ScimUser, actual: &ScimUser, managed: &[UserAttr]) -> Vec<UserAttr> {
    scimfleet_schemas::scim::differing(desired, actual, managed).into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(path: &str) -> UserAttr {
        path.parse().expect("a valid path")
    }

    #[test]
    fn an_attribute_is_judged_once_and_a_dropped_one_leaves_the_diff() {
        let support = AttributeSupport::default();
        let app = AppId::parse("crm").expect("app id");
        let mut desired = ScimUser::new("ada");
        desired.title = Some("Clerk".into());
        let department = attr("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department");
        department.set(&mut desired, Some("Ops".into())).expect("fits");
        let mut after = ScimUser::new("ada");
        after.title = Some("Clerk".into());
        let written = [attr("title"), department.clone()];
        assert_eq!(support.unconfirmed(&written), written);
        assert_eq!(support.judge(&app, &desired, &after, &written), [department]);
        assert!(support.unconfirmed(&written).is_empty(), "each judged once");
        assert_eq!(support.effective(&written), [attr("title")]);
        assert!(support.judge(&app, &desired, &after, &written).is_empty(), "reported once");
    }

    #[test]
    fn a_value_kept_in_the_apps_own_form_took() {
        let support = AttributeSupport::default();
        let app = AppId::parse("crm").expect("app id");
        let mut desired = ScimUser::new("ada");
        desired.title = Some("Clerk".into());
        let mut after = ScimUser::new("ada");
        after.title = Some("CLERK".into());
        assert!(support.judge(&app, &desired, &after, &[attr("title")]).is_empty());
        assert_eq!(support.effective(&[attr("title")]), [attr("title")]);
    }
}
