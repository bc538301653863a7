//! Which account a job may touch: an account bound to one person is never
//! changed for another (guarantee 8).
//!
//! Logins and e-mail addresses are reused: a new hire may get the login of a
//! former employee whose account still exists. A look-up that fell back to
//! `userName` and took whatever it found would let the new hire's upsert
//! relink and reactivate the former employee's account, and let a leaver's
//! deprovision deactivate the new holder's. So the look-up is:
//!
//! 1. By `externalId` (the person's stable id) when the job maps one: an
//!    account found so is ours.
//! 2. Otherwise (no match, or the app refuses the filter with a 400) by
//!    `userName`, and the account found is taken only when it carries no
//!    `externalId` or exactly ours (`externalId` is case-exact, RFC 7643
//!    §3.1). One carrying a different non-empty `externalId` belongs to
//!    someone else: the job fails with [`ApplyError::IdentityConflict`],
//!    which is dead-lettered as `identity_conflict` (counted, alerted, and
//!    shown by `scimfleet status`) before any write.
//!
//! The same look-up serves every job, so:
//! - an upsert adopts an unbound account (and writes our `externalId` on
//!   it) as the app's `adopt` says: `link` (the default) takes it, `skip`
//!   leaves it alone, `fail` dead-letters the job; never one bound to
//!   someone else;
//! - a deprovision touches only accounts bound to the leaver, or unbound
//!   accounts with the leaver's login: those are taken to be the leaver's
//!   own accounts from before scimfleet managed the app, and are still
//!   deprovisioned, as before. A leaver must not keep access because the
//!   app never stored an `externalId`;
//! - a read-back (after a deprovision, or a re-check) never judges another
//!   person's account: it fails with the same conflict instead of claiming
//!   the leaver's access is gone, or still there, on the strength of it.
//!
//! Limitation: when the app has no `externalId` mapped (the job's look-up
//! has none), there is nothing in the app to bind to, and the account found
//! by `userName` is taken whatever it is, as it always was. The account
//! index in Redis (`{ns}:account:{app}:un:…` → person, written when an
//! upsert converges) could tell whose login it was, but it records what
//! our upserts did, not what the app holds, and the converger has no store;
//! it is not consulted here: such apps should map an `externalId`.

use scimfleet_schemas::Lookup;
use scimfleet_schemas::scim::ScimUser;

use crate::client::ScimClient;
use crate::error::{ApplyError, ScimCallError};

/// The account matching `lookup` that the job may touch: by `externalId`
/// first, then by `userName` if not bound to another person.
pub(crate) async fn find(client: &ScimClient, lookup: &Lookup) -> Result<Option<ScimUser>, ApplyError> {
    if let Some(external_id) = &lookup.external_id {
        match client.find_user("externalId", external_id).await {
            Ok(Some(user)) => return Ok(Some(user)),
            Ok(None) => {}
            // Some apps refuse to filter on externalId; userName still finds the account.
            Err(ScimCallError::Status { status: 400, .. }) => {
                tracing::debug!(scimfleet.app = %client.app(), "externalId filter refused; using userName");
            }
            Err(error) => return Err(error.into()),
        }
    }
    match client.find_user("userName", &lookup.user_name).await? {
        Some(user) if !adoptable(&user, lookup) => Err(ApplyError::IdentityConflict),
        found => Ok(found),
    }
}

/// Whether `user`, found for `lookup`, is bound to nobody while the job
/// maps an `externalId`: an account made before scimfleet managed the app
/// (or by hand), which the app's `adopt` setting decides about.
pub(crate) fn unbound(user: &ScimUser, lookup: &Lookup) -> bool {
    lookup.external_id.is_some() && user.external_id.as_deref().is_none_or(str::is_empty)
}

/// Whether an account found by `userName` may be taken for `lookup`: it is
/// bound to nobody, or to the same person (compared exactly). A look-up
/// without an `externalId` has nothing to compare: see the module's
/// limitation.
fn adoptable(user: &ScimUser, lookup: &Lookup) -> bool {
    let (Some(ours), Some(theirs)) = (&lookup.external_id, &user.external_id) else { return true };
    theirs.is_empty() || theirs == ours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(external_id: Option<&str>) -> ScimUser {
        let mut user = ScimUser::new("ada");
        user.external_id = external_id.map(str::to_owned);
        user
    }

    fn lookup(external_id: Option<&str>) -> Lookup {
        Lookup { external_id: external_id.map(str::to_owned), user_name: "ada".into() }
    }

    #[test]
    fn only_unbound_or_our_accounts_are_adoptable() {
        assert!(adoptable(&account(None), &lookup(Some("e-1"))), "unbound");
        assert!(adoptable(&account(Some("")), &lookup(Some("e-1"))), "an empty externalId binds nobody");
        assert!(adoptable(&account(Some("e-1")), &lookup(Some("e-1"))), "ours");
        assert!(!adoptable(&account(Some("e-2")), &lookup(Some("e-1"))), "someone else's");
        assert!(!adoptable(&account(Some("E-1")), &lookup(Some("e-1"))), "externalId is case-exact");
        assert!(adoptable(&account(Some("e-2")), &lookup(None)), "no externalId mapped: as before");
    }

    #[test]
    fn unbound_means_no_external_id_where_we_map_one() {
        assert!(unbound(&account(None), &lookup(Some("e-1"))));
        assert!(unbound(&account(Some("")), &lookup(Some("e-1"))));
        assert!(!unbound(&account(Some("e-1")), &lookup(Some("e-1"))), "ours");
        assert!(!unbound(&account(None), &lookup(None)), "nothing to bind to: not told apart");
    }
}
