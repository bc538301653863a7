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
use scimfleet_schemas::scim::{ScimUser, UserAttr, diff_user};

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
        managed.iter().copied().filter(|a| !state.unsupported.contains(a)).collect()
    }

    /// `user` without the attributes the app is known to drop (a create).
    pub(crate) fn strip(&self, user: &ScimUser) -> ScimUser {
        let mut user = user.clone();
        for &attr in &self.state().unsupported {
            attr.set(&mut user, None);
        }
        user
    }

    /// Of `written`, those not judged yet.
    pub(crate) fn unconfirmed(&self, written: &[UserAttr]) -> Vec<UserAttr> {
        let state = self.state();
        written
            .iter()
            .copied()
            .filter(|a| !state.confirmed.contains(a) && !state.unsupported.contains(a))
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
        for &attr in written.iter().filter(|a| **a != UserAttr::UserName) {
            if attr.get(desired).is_none() || attr.get(after).is_some() {
                state.confirmed.insert(attr);
            } else if state.unsupported.insert(attr) {
                tracing::warn!(
                    scimfleet.app = %app, attribute = attr.path(),
                    "{app} drops {} when written: not written there any more", attr.path()
                );
                dropped.push(attr);
            }
        }
        dropped
    }
}

/// The managed attributes whose value in `desired` differs from `actual`.
pub(crate) fn differing(desired: &ScimUser, actual: &ScimUser, managed: &[UserAttr]) -> Vec<UserAttr> {
    managed.iter().copied().filter(|&a| !diff_user(desired, actual, &[a]).is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_is_judged_once_and_a_dropped_one_leaves_the_diff() {
        let support = AttributeSupport::default();
        let app = AppId::parse("crm").expect("app id");
        let mut desired = ScimUser::new("ada");
        desired.title = Some("Clerk".into());
        UserAttr::Department.set(&mut desired, Some("Ops".into()));
        let mut after = ScimUser::new("ada");
        after.title = Some("Clerk".into());
        let written = [UserAttr::Title, UserAttr::Department];
        assert_eq!(support.unconfirmed(&written), written);
        assert_eq!(support.judge(&app, &desired, &after, &written), [UserAttr::Department]);
        assert!(support.unconfirmed(&written).is_empty(), "each judged once");
        assert_eq!(support.effective(&written), [UserAttr::Title]);
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
        assert!(support.judge(&app, &desired, &after, &[UserAttr::Title]).is_empty());
        assert_eq!(support.effective(&[UserAttr::Title]), [UserAttr::Title]);
    }
}
