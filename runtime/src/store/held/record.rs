//! The held-job record: what is held, why, for whom, and how it is read
//! back from its hash.

use chrono::{DateTime, Utc};
use scimfleet_schemas::Job;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Why a job is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// A high-risk grant from an actor without step-up.
    Grant,
    /// A deprovision beyond a mass-deprovision limit, held in a wave.
    Wave,
}

impl HoldKind {
    /// The wire name (metric label, listings).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Wave => "wave",
        }
    }
}

/// A job held for an approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldJob {
    /// The held job's id (its job id).
    pub id: String,
    /// Grant or wave.
    pub kind: HoldKind,
    /// What made it high-risk (`group Admins`, `create`, `delete`) or the
    /// limit a wave crossed.
    pub reasons: Vec<String>,
    /// The job, published as it is once released.
    pub job: Job,
    /// The pseudonymous person id (for logs and the audit trail).
    pub person: String,
    /// The event's actor.
    pub actor: String,
    /// High-risk groups the job grants, recorded as granted on release.
    #[serde(default)]
    pub grants: Vec<String>,
    /// When it was held.
    pub held_at: DateTime<Utc>,
    /// When a held grant is rejected as expired.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The trace of the event that was held.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The wave holding it (filled from the record's `wave` field).
    #[serde(default, skip_serializing)]
    pub wave: Option<String>,
    /// Approvers so far (filled from the record's `approvals` field).
    #[serde(default, skip_serializing)]
    pub approvals: Vec<String>,
}

impl HeldJob {
    /// `job` held now as `kind` for `reasons`, about the person with
    /// pseudonym `person`, asked for by `actor` under `trace_id`; no
    /// grants, no expiry (set them with struct update syntax).
    pub fn new(
        job: Job,
        kind: HoldKind,
        reasons: Vec<String>,
        (person, actor): (&str, &str),
        trace_id: Option<String>,
    ) -> Self {
        Self {
            id: job.job_id.to_string(),
            kind,
            reasons,
            person: person.to_owned(),
            actor: actor.to_owned(),
            grants: Vec::new(),
            held_at: Utc::now(),
            expires_at: None,
            trace_id,
            wave: None,
            approvals: Vec::new(),
            job,
        }
    }
}

/// A held job from its `json`, `wave` and `approvals` fields; `None` when absent.
pub(super) fn decode(fields: &[Option<String>]) -> Result<Option<HeldJob>, StoreError> {
    let Some(Some(json)) = fields.first() else {
        return Ok(None);
    };
    let mut job: HeldJob =
        serde_json::from_str(json).map_err(|_| StoreError::Corrupt { what: "held job" })?;
    job.wave = fields.get(1).cloned().flatten().filter(|w| !w.is_empty());
    job.approvals = fields
        .get(2)
        .cloned()
        .flatten()
        .map(|a| a.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Some(job))
}
