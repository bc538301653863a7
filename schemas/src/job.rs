//! The job message: one (person, app) unit of work for a worker.
//!
//! A job is self-contained: the worker needs no policy and no HR data to apply
//! it, only what the scheduler mapped for that app. Data minimisation follows
//! from the shape: a deprovision carries the lookup keys and nothing else.
//! Trace context travels in AMQP headers, not here.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, EventId, JobId, PersonId};
use crate::scim::{ScimUser, UserAttr};
use crate::strict::StrictError;

/// Version of the job schema; bumped on incompatible changes.
pub const JOB_SCHEMA_VERSION: u32 = 1;

/// A provisioning job for one person in one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// Schema version, [`JOB_SCHEMA_VERSION`].
    pub v: u32,
    /// Deterministic id, derived from the event id and the app.
    pub job_id: JobId,
    /// The event this job came from.
    pub event_id: EventId,
    /// The target app.
    pub app: AppId,
    /// The person (HR id).
    pub person: PersonId,
    /// The person's `sequence` this job brings the app to; older never overwrites newer.
    pub sequence: u64,
    /// When the HR event happened.
    pub event_time: DateTime<Utc>,
    /// Delivery attempts so far (0 on first publish).
    #[serde(default)]
    pub attempt: u32,
    /// Remediations so far: a deprovision re-applied because verification
    /// found access still there (0 for the original job).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remediation: u32,
    /// The id of the event's actor (who caused the change), for the audit
    /// trail; absent on sweep and remediation jobs planned without an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What to do, with its payload.
    #[serde(flatten)]
    pub action: JobAction,
}

/// What a job does. Tagged by `action` on the wire.
#[expect(
    clippy::large_enum_variant,
    reason = "a job is built once and serialised at once; boxing the user buys nothing"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum JobAction {
    /// Create the account or bring it to the desired state, and reactivate it.
    Upsert {
        /// The mapped account; `active` is true.
        user: ScimUser,
        /// The attributes the app's mapping manages; others are left alone.
        managed: Vec<UserAttr>,
        /// Group memberships to hold and to drop.
        groups: GroupPlan,
        /// Managed paths whose value in `user` is a person id (a manager):
        /// the worker sends that person's account id in the app instead.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        references: Vec<UserAttr>,
    },
    /// Remove group memberships, then set `active=false`.
    Deactivate {
        /// How to find the account.
        lookup: Lookup,
        /// Groups to leave (all managed groups); any other group the app reports is left too.
        groups: GroupPlan,
    },
    /// Remove group memberships, then DELETE the account.
    Delete {
        /// How to find the account.
        lookup: Lookup,
        /// Groups to leave (all managed groups); any other group the app reports is left too.
        groups: GroupPlan,
    },
    /// Read back that the account is inactive or gone and holds no groups
    /// (a scheduled re-check after a deprovision).
    Verify {
        /// How to find the account.
        lookup: Lookup,
        /// What the account must look like.
        expect: Expectation,
        /// The managed groups the person must not be in (checked when the
        /// app does not report a user's groups), and to leave on remediation.
        #[serde(default)]
        groups: GroupPlan,
        /// Which re-check this is (1 for the first delay).
        #[serde(default)]
        check: u32,
    },
}

impl JobAction {
    /// The short name used in logs, metrics and queue routing.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Upsert { .. } => "upsert",
            Self::Deactivate { .. } => "deactivate",
            Self::Delete { .. } => "delete",
            Self::Verify { .. } => "verify",
        }
    }

    /// Whether the job removes access.
    pub fn is_deprovision(&self) -> bool {
        matches!(self, Self::Deactivate { .. } | Self::Delete { .. })
    }
}

/// The keys an account is found by, in order: `externalId`, then `userName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lookup {
    /// The mapped `externalId`, when the app maps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The mapped `userName`.
    pub user_name: String,
}

impl Lookup {
    /// The lookup keys of a mapped user.
    pub fn of(user: &ScimUser) -> Self {
        Self { external_id: user.external_id.clone(), user_name: user.user_name.clone() }
    }
}

/// Group memberships by display name, computed from the app's group rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GroupPlan {
    /// Groups the person must be a member of.
    #[serde(default)]
    pub member_of: Vec<String>,
    /// Managed groups the person must not be a member of.
    #[serde(default)]
    pub not_member_of: Vec<String>,
}

/// The state a verification expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The account exists with `active=false`, or does not exist.
    Inactive,
    /// The account does not exist.
    Absent,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Expectation {
    /// What a deprovision must leave behind: a deactivated account, or none.
    pub fn of(action: &JobAction) -> Option<Self> {
        match action {
            JobAction::Deactivate { .. } => Some(Self::Inactive),
            JobAction::Delete { .. } => Some(Self::Absent),
            _ => None,
        }
    }
}

impl Job {
    /// A first-delivery job (attempt 0, no remediation) of the current schema
    /// version, its id derived from `event_id` and `app` so that a redelivered
    /// event or a replayed sweep plans the same job again.
    pub fn new(
        event_id: EventId,
        app: AppId,
        person: PersonId,
        sequence: u64,
        event_time: DateTime<Utc>,
        action: JobAction,
    ) -> Self {
        Self {
            v: JOB_SCHEMA_VERSION,
            job_id: JobId::derive(&event_id, &app),
            event_id,
            app,
            person,
            sequence,
            event_time,
            attempt: 0,
            remediation: 0,
            actor: None,
            action,
        }
    }

    /// Parses a job body; an object that names a key twice is refused
    /// ([`crate::strict`]), other faults are `serde_json`'s own errors.
    pub fn parse(body: &[u8]) -> Result<Self, StrictError> {
        crate::strict::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_parse_and_round_trip() {
        for fixture in [
            include_str!("../tests/fixtures/job-upsert.json"),
            include_str!("../tests/fixtures/job-deactivate.json"),
        ] {
            let job = Job::parse(fixture.as_bytes()).expect("fixture parses");
            let again = Job::parse(&serde_json::to_vec(&job).expect("ser")).expect("parses");
            assert_eq!(job, again);
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let fixture = include_str!("../tests/fixtures/job-deactivate.json");
        let twice = fixture.replacen('{', "{\"app\":\"other\",", 1);
        let error = Job::parse(twice.as_bytes()).expect_err("duplicate app");
        assert!(matches!(&error, StrictError::DuplicateKey { path } if path == "app"), "{error}");
        assert!(matches!(Job::parse(b"{"), Err(StrictError::Syntax(_))));
    }

    #[test]
    fn action_is_tagged() {
        let job = Job::parse(include_str!("../tests/fixtures/job-deactivate.json").as_bytes()).expect("ok");
        assert_eq!(job.action.name(), "deactivate");
        assert!(job.action.is_deprovision());
        let value = serde_json::to_value(&job).expect("ser");
        assert_eq!(value["action"], "deactivate");
    }
}
