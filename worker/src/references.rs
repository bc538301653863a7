//! Attributes whose mapped value is another person (the enterprise
//! `manager.value`): the job carries that person's id, the app wants the
//! id of that person's account there.
//!
//! Before an upsert is applied, each reference is resolved in the same app:
//! the referenced person's desired state (recorded when their own upsert
//! converged, `Store::desired`) gives the keys their account is found by;
//! when none is recorded and the job binds accounts by person id (its
//! `externalId` is its person's id), the account with that `externalId` is
//! taken. The account must be found in the app itself: an id never goes
//! out unchecked.
//!
//! A reference that finds no account (the manager is not provisioned in
//! this app yet) is left out of the apply: the app's value is not touched
//! rather than cleared or set to a person id. The desired state recorded
//! for a sweep is the resolved one, so a sweep compares account ids.

use std::borrow::Cow;

use scimfleet_runtime::store::{Store, StoreError};
use scimfleet_schemas::scim::UserAttr;
use scimfleet_schemas::{Job, JobAction, Lookup, PersonId};
use serde_json::Value;

use crate::converge::Converger;
use crate::error::ApplyError;

/// Why references could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Unresolved {
    /// Redis could not be read: the delivery is requeued.
    #[error(transparent)]
    Store(StoreError),
    /// The app could not be asked: the job is retried as any apply.
    #[error(transparent)]
    Apply(ApplyError),
}

/// `job` with its references resolved to account ids (or left out).
pub(crate) async fn resolve<'a>(
    store: &Store,
    converger: &Converger,
    job: &'a Job,
) -> Result<Cow<'a, Job>, Unresolved> {
    let JobAction::Upsert { user, managed, references, .. } = &job.action else {
        return Ok(Cow::Borrowed(job));
    };
    if references.is_empty() {
        return Ok(Cow::Borrowed(job));
    }
    let mut user = user.clone();
    let mut managed = managed.clone();
    for path in references {
        let Some(Value::String(person)) = path.get(&user) else { continue };
        let account = match PersonId::parse(person.clone()) {
            Ok(person) => account_of(store, converger, job, &person).await?,
            Err(_) => None,
        };
        let set = account.is_some_and(|id| path.set(&mut user, Some(Value::String(id))).is_ok());
        if !set {
            tracing::debug!(
                    scimfleet.app = %job.app, job_id = %job.job_id, attribute = path.path(),
                "{}: the referenced person has no account in {} yet: left as it is", path.path(), job.app
            );
            leave_out(&mut user, &mut managed, path);
        }
    }
    let mut resolved = job.clone();
    if let JobAction::Upsert { user: u, managed: m, references: r, .. } = &mut resolved.action {
        (*u, *m) = (user, managed);
        r.clear();
    }
    Ok(Cow::Owned(resolved))
}

fn leave_out(user: &mut scimfleet_schemas::scim::ScimUser, managed: &mut Vec<UserAttr>, path: &UserAttr) {
    // Clearing a path of a string value cannot fail.
    let _ = path.set(user, None);
    managed.retain(|m| m != path);
}

/// The id of `person`'s account in the job's app, if it has one.
async fn account_of(
    store: &Store,
    converger: &Converger,
    job: &Job,
    person: &PersonId,
) -> Result<Option<String>, Unresolved> {
    let recorded = store.desired().get_many(&job.app, std::slice::from_ref(person)).await;
    let recorded = recorded.map_err(Unresolved::Store)?.into_iter().next().flatten();
    let lookup = match recorded {
        Some(desired) => Lookup::of(&desired.user),
        None => match &job.action {
            // Bound by person id here: the referenced person's externalId is their id.
            JobAction::Upsert { user, .. } if user.external_id.as_deref() == Some(job.person.as_str()) => {
                return converger.account_by_external_id(person.as_str()).await.map_err(Unresolved::Apply);
            }
            _ => return Ok(None),
        },
    };
    converger.account_id(&lookup).await.map_err(Unresolved::Apply)
}
