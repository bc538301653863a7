//! Remediation jobs for what a sweep finds, built by the same rules as the
//! scheduler's plan.
//!
//! An orphan (an active account whose person is gone or out of scope) is
//! deprovisioned exactly as the scheduler would have: [`deprovision_mode`]
//! for the registry's status, [`deprovision_action`] with the account's own
//! lookup keys (the account found, not a re-mapping: the person's HR data may
//! be gone).

use chrono::{DateTime, Utc};
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::store::PersonRecord;
use scimfleet_schemas::scim::ScimUser;
use scimfleet_schemas::{EventId, Job, Lookup, PersonId};

use crate::deprovision::{deprovision_action, deprovision_mode};

/// The job removing `account` of `person` from `app`; `record` is the
/// registry's record of the person, whose sequence the job carries (the
/// worker drops only older jobs).
pub fn orphan_job(
    app: &AppConfig,
    person: &PersonId,
    record: &PersonRecord,
    account: &ScimUser,
    event_id: EventId,
    event_time: DateTime<Utc>,
) -> Job {
    let action = deprovision_action(app, Lookup::of(account), deprovision_mode(record.status, app));
    Job::new(event_id, app.id.clone(), person.clone(), record.sequence, event_time, action)
}
