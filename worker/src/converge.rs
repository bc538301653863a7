//! Convergent apply: bring one account in one app to a job's desired state
//! with the fewest writes, so that applying a job twice changes nothing
//! (guarantee 2) and a retried job is always safe.
//!
//! - Find by `externalId`, then `userName`: apps without externalId support
//!   (or that refuse the filter with a 400) still match on the login name,
//!   but an account found by login that is bound to another person (another
//!   `externalId`) is never touched: the job fails as an identity conflict
//!   before any write, and so does its read-back (see `identity`, which
//!   also says why unbound accounts are still adopted and deprovisioned).
//! - Upsert: create when absent (a 409 means someone else created it: find it
//!   again); otherwise PATCH only the managed attributes that differ, which
//!   also reactivates an inactive account; then join the wanted groups and
//!   leave the unwanted managed ones.
//! - Deactivate / delete: leave every group first (many apps keep dangling
//!   members after a DELETE, and an inactive account in an admin group is
//!   still a finding), then `active=false` only if active, or DELETE with 404
//!   as done. An absent account is already deprovisioned: no writes.
//! - Read-back: after a deactivate or delete, and for verify jobs (re-checks),
//!   the account is read again (by id) with its groups, and the job's outcome
//!   says whether access is gone; the worker records it as evidence.
//!
//! Every step reads before it writes, so a second apply issues only GETs.

use scimfleet_runtime::config::Adopt;
use scimfleet_schemas::scim::{GroupRef, PatchOperation, ScimUser, UserAttr, diff_user};
use scimfleet_schemas::{Expectation, GroupPlan, Job, JobAction, Lookup};
use serde_json::json;

use crate::client::{Created, ScimClient};
pub use crate::error::ApplyError;
use crate::groups::{GroupDirectory, Membership};
use crate::identity;
use crate::replace;
use crate::support::{self, AttributeSupport};

/// What an apply did; all zero when the app already matched the job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The account was created.
    pub created: bool,
    /// Attributes patched on an existing account (reactivation not counted).
    pub patched_attributes: usize,
    /// An inactive account was reactivated.
    pub reactivated: bool,
    /// The account was deactivated.
    pub deactivated: bool,
    /// The account was deleted.
    pub deleted: bool,
    /// Group memberships added.
    pub groups_added: usize,
    /// Group memberships removed.
    pub groups_removed: usize,
    /// No account matched the look-up (deprovision and verify jobs).
    pub not_found: bool,
    /// For verify jobs: whether the expectation held.
    pub verified: Option<bool>,
    /// For deprovision and verify jobs: what reading the account back found.
    pub read_back: Option<ReadBack>,
    /// An upsert found an account bound to nobody and took it (`link`) or
    /// left it alone (`skip`), per the app's `adopt`.
    pub adopted: Option<Adopt>,
    /// Managed attributes this apply found the app drops (no longer written).
    pub unsupported: Vec<UserAttr>,
}

/// What reading an account back after a deprovision found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBack {
    /// Whether access is gone: inactive (or absent) and in no group; absent
    /// when the deprovision was a delete.
    pub verified: bool,
    /// What was found, for logs and evidence: `absent`, `inactive`,
    /// `active`, `inactive, in 2 groups`, ...
    pub found: String,
    /// The status of the read: 200 (the account was read) or 404 (no account).
    pub status: u16,
}

impl ReadBack {
    fn absent() -> Self {
        Self { verified: true, found: "absent".to_owned(), status: 404 }
    }
}

impl Outcome {
    /// Whether the app was written to.
    pub fn changed(&self) -> bool {
        self.created
            || self.patched_attributes > 0
            || self.reactivated
            || self.deactivated
            || self.deleted
            || self.groups_added > 0
            || self.groups_removed > 0
    }
}

/// Applies jobs to one app.
#[derive(Debug)]
pub struct Converger {
    client: ScimClient,
    groups: std::sync::Arc<GroupDirectory>,
    create_groups: bool,
    adopt: Adopt,
    support: std::sync::Arc<AttributeSupport>,
}

impl Converger {
    /// A converger over `client`; `create_groups` allows creating missing groups.
    pub fn new(client: ScimClient, create_groups: bool) -> Self {
        let (groups, support) = (std::sync::Arc::default(), std::sync::Arc::default());
        Self { client, groups, create_groups, adopt: Adopt::default(), support }
    }

    /// This converger deciding about unbound accounts as `adopt` says.
    pub fn adopting(self, adopt: Adopt) -> Self {
        Self { adopt, ..self }
    }

    /// Converges the app to `job`. No span of its own: the worker's span of
    /// the delivery already names the job, and spans cost CPU per job.
    pub async fn apply(&self, job: &Job) -> Result<Outcome, ApplyError> {
        let outcome = match &job.action {
            JobAction::Upsert { user, managed, groups, .. } => self.upsert(user, managed, groups).await?,
            JobAction::Deactivate { lookup, groups } => {
                let mut outcome = self.deprovision(lookup, groups, false).await?;
                outcome.read_back =
                    Some(self.read_back_after(&outcome, lookup, Expectation::Inactive, groups).await?);
                outcome
            }
            JobAction::Delete { lookup, groups } => {
                let mut outcome = self.deprovision(lookup, groups, true).await?;
                outcome.read_back =
                    Some(self.read_back_after(&outcome, lookup, Expectation::Absent, groups).await?);
                outcome
            }
            JobAction::Verify { lookup, expect, groups, .. } => {
                let read_back = self.read_back(lookup, *expect, groups).await?;
                Outcome {
                    not_found: read_back.status == 404,
                    verified: Some(read_back.verified),
                    read_back: Some(read_back),
                    ..Outcome::default()
                }
            }
        };
        let o = &outcome;
        tracing::debug!(
            job_id = %job.job_id, created = o.created, patched_attributes = o.patched_attributes,
            reactivated = o.reactivated, deactivated = o.deactivated, deleted = o.deleted,
            groups_added = o.groups_added, groups_removed = o.groups_removed, not_found = o.not_found,
            verified = o.verified, changed = o.changed(),
            "job {} applied to {}", job.job_id, job.app
        );
        Ok(outcome)
    }

    /// The id of the account `lookup` finds (another person's, for a reference).
    pub(crate) async fn account_id(&self, lookup: &Lookup) -> Result<Option<String>, ApplyError> {
        Ok(self.find(lookup).await?.and_then(|u| u.id))
    }

    /// The id of the account whose `externalId` is exactly `external_id`.
    pub(crate) async fn account_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<String>, ApplyError> {
        Ok(self.client.find_user("externalId", external_id).await?.and_then(|u| u.id))
    }

    /// The account matching `lookup` that this job may touch: by
    /// `externalId`, then by `userName` unless bound to another person
    /// ([`ApplyError::IdentityConflict`]); see `identity`.
    async fn find(&self, lookup: &Lookup) -> Result<Option<ScimUser>, ApplyError> {
        identity::find(&self.client, lookup).await
    }

    async fn upsert(
        &self,
        user: &ScimUser,
        managed: &[UserAttr],
        plan: &GroupPlan,
    ) -> Result<Outcome, ApplyError> {
        let desired = desired_user(user);
        let lookup = Lookup::of(&desired);
        let managed = &self.support.effective(managed)[..];
        let mut outcome = Outcome::default();
        let actual = match self.find(&lookup).await? {
            Some(actual) => actual,
            None => match self.client.create_user(&self.support.strip(&desired)).await? {
                Created::New(created) => {
                    outcome.created = true;
                    created
                }
                Created::Conflict => self.find(&lookup).await?.ok_or(ApplyError::ConflictNotFound)?,
            },
        };
        if !outcome.created && identity::unbound(&actual, &lookup) {
            match self.adopt {
                Adopt::Link => outcome.adopted = Some(Adopt::Link),
                Adopt::Skip => return Ok(Outcome { adopted: Some(Adopt::Skip), ..Outcome::default() }),
                Adopt::Fail => return Err(ApplyError::Unbound),
            }
        }
        let id = user_id(&actual)?;
        let written = if outcome.created {
            let json = serde_json::Value::Object(desired.to_json());
            managed.iter().filter(|a| a.value_in(&json).is_some()).cloned().collect()
        } else {
            let ops = diff_user(&desired, &actual, managed);
            if ops.is_empty() {
                Vec::new()
            } else {
                outcome.reactivated = !actual.is_active();
                outcome.patched_attributes = ops.len() - usize::from(outcome.reactivated);
                let active = outcome.reactivated.then_some(true);
                self.update_user(id, ops, || replace::user(&actual, &desired, managed, active)).await?;
                // Only attributes not judged yet need naming (see `support`).
                support::differing(&desired, &actual, &self.support.unconfirmed(managed))
            }
        };
        // The first write of an attribute to this app is read back once:
        // one the app drops is not written again (see `support`).
        let unconfirmed = self.support.unconfirmed(&written);
        if !unconfirmed.is_empty()
            && let Some(after) = self.client.get_user(id).await?
        {
            outcome.unsupported = self.support.judge(self.client.app(), &desired, &after, &unconfirmed);
        }
        // A new account is in no group unless the app says otherwise (some add
        // new users to a default group, and say so in the answer): no group
        // needs reading to know it is not a member.
        let held = match (&actual.groups, outcome.created) {
            (None, true) => Some(&[][..]),
            (groups, _) => groups.as_deref(),
        };
        for name in &plan.member_of {
            let wrote = self.ensure(name, id, held, Membership::Member).await?;
            outcome.groups_added += usize::from(wrote);
        }
        for name in &plan.not_member_of {
            let wrote = self.ensure(name, id, held, Membership::NotMember).await?;
            outcome.groups_removed += usize::from(wrote);
        }
        Ok(outcome)
    }

    /// Sends `ops` to user `id` as a PATCH, or, once the app refused PATCH
    /// on users, the `replacement` as a PUT (see `replace`).
    async fn update_user(
        &self,
        id: &str,
        ops: Vec<PatchOperation>,
        replacement: impl FnOnce() -> ScimUser,
    ) -> Result<(), ApplyError> {
        let refusals = &self.groups.refusals;
        if !refusals.users() {
            match self.client.patch_user(id, ops).await {
                Err(error) if error.is_not_implemented() => refusals.refuse_users(self.client.app()),
                done => return Ok(done?),
            }
        }
        Ok(self.client.put_user(id, &replacement()).await?)
    }

    async fn ensure(
        &self,
        name: &str,
        user_id: &str,
        held: Option<&[GroupRef]>,
        want: Membership,
    ) -> Result<bool, ApplyError> {
        self.groups.ensure(&self.client, name, user_id, held, want, self.create_groups).await
    }

    /// Leaves every group, then deactivates (if active) or deletes.
    async fn deprovision(
        &self,
        lookup: &Lookup,
        plan: &GroupPlan,
        delete: bool,
    ) -> Result<Outcome, ApplyError> {
        let Some(actual) = self.find(lookup).await? else {
            return Ok(Outcome { not_found: true, ..Outcome::default() });
        };
        let id = user_id(&actual)?;
        let mut outcome = Outcome::default();
        let names: Vec<&str> = plan.member_of.iter().chain(&plan.not_member_of).map(String::as_str).collect();
        for group_id in self.groups.held_by(&self.client, id, actual.groups.as_deref(), &names).await? {
            outcome.groups_removed += usize::from(self.groups.leave(&self.client, &group_id, id).await?);
        }
        if delete {
            self.client.delete_user(id).await?;
            outcome.deleted = true;
        } else if actual.is_active() {
            let ops = vec![PatchOperation::replace("active", json!(false))];
            self.update_user(id, ops, || replace::user(&actual, &actual, &[], Some(false))).await?;
            outcome.deactivated = true;
        }
        Ok(outcome)
    }

    /// The read-back of a deprovision that gave `outcome`. One that found no
    /// account wrote nothing, and its look-up (by externalId, then userName)
    /// was the read-back: doing it again would ask the same question twice.
    async fn read_back_after(
        &self,
        outcome: &Outcome,
        lookup: &Lookup,
        expect: Expectation,
        plan: &GroupPlan,
    ) -> Result<ReadBack, ApplyError> {
        if outcome.not_found {
            return Ok(ReadBack::absent());
        }
        self.read_back(lookup, expect, plan).await
    }

    /// Reads the account back: found by look-up, then read by id (the
    /// resource itself, not a search index that may lag), and its groups:
    /// the `groups` attribute, or the job's managed groups' members when
    /// the app does not report it.
    pub async fn read_back(
        &self,
        lookup: &Lookup,
        expect: Expectation,
        plan: &GroupPlan,
    ) -> Result<ReadBack, ApplyError> {
        let Some(listed) = self.find(lookup).await? else { return Ok(ReadBack::absent()) };
        let id = user_id(&listed)?;
        let Some(actual) = self.client.get_user(id).await? else { return Ok(ReadBack::absent()) };
        let names: Vec<&str> = plan.member_of.iter().chain(&plan.not_member_of).map(String::as_str).collect();
        let held = self.groups.held_by(&self.client, id, actual.groups.as_deref(), &names).await?.len();
        let (verified, found) = judge(actual.active, held, expect);
        Ok(ReadBack { verified, found, status: 200 })
    }
}

/// What is sent on create and compared on update: the job's user, active,
/// without the read-only and server-assigned attributes.
fn desired_user(user: &ScimUser) -> ScimUser {
    let mut desired = user.clone();
    desired.active = Some(true);
    desired.id = None;
    desired.groups = None;
    desired.meta = None;
    if desired.schemas.is_empty() {
        desired.fix_schemas();
    }
    desired
}

fn user_id(user: &ScimUser) -> Result<&str, ApplyError> {
    user.id.as_deref().filter(|id| !id.is_empty()).ok_or(ApplyError::MissingId { resource: "User" })
}

/// Whether an account that exists, with `active` and in `groups` groups,
/// meets `expect`, and a short description of it. An app that does not
/// report `active` has not shown the account inactive.
fn judge(active: Option<bool>, groups: usize, expect: Expectation) -> (bool, String) {
    let state = match active {
        Some(false) => "inactive",
        Some(true) => "active",
        None => "present, active not reported",
    };
    let found = match groups {
        0 => state.to_owned(),
        1 => format!("{state}, in 1 group"),
        n => format!("{state}, in {n} groups"),
    };
    let verified = expect == Expectation::Inactive && active == Some(false) && groups == 0;
    (verified, found)
}

mod views;

#[cfg(test)]
mod tests;
