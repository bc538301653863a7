//! Deprovisioning evidence: for each leaver and app, what was done and what
//! reading the account back showed, when.
//!
//! One record per (app, person, sequence) deprovision. Workers keep it in
//! Redis as the job and its verifications happen; `scimfleet evidence export`
//! writes the records as signed JSON lines for an auditor. The record names
//! the HR person id (the auditor must know whose access went) but never the
//! account's attributes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, EventId, JobId, PersonId};
use crate::job::{Expectation, Job};

/// Version of the evidence record schema.
pub const EVIDENCE_SCHEMA_VERSION: u32 = 1;

/// The evidence of one deprovision of one person in one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EvidenceRecord {
    /// Schema version, [`EVIDENCE_SCHEMA_VERSION`].
    pub v: u32,
    /// The person (HR id).
    pub person: PersonId,
    /// The app.
    pub app: AppId,
    /// The person's `sequence` the deprovision brought the app to.
    pub sequence: u64,
    /// The deprovisioning job (the original, not a remediation).
    pub job_id: JobId,
    /// The HR event behind it.
    pub event_id: EventId,
    /// `inactive` (deactivated) or `absent` (deleted).
    pub expect: Expectation,
    /// When the HR event happened.
    pub event_time: DateTime<Utc>,
    /// When access had to be gone (the event's effective time; the event
    /// time when it had none).
    pub effective_at: DateTime<Utc>,
    /// When the deprovision was first applied to the app.
    pub applied_at: Option<DateTime<Utc>>,
    /// The read-back right after the deprovision.
    pub first_verification: Option<Check>,
    /// The latest scheduled re-check (or remediation read-back).
    pub last_recheck: Option<Check>,
    /// Verifications that found access still there.
    pub failures: u32,
    /// Deprovisions re-applied because of them.
    pub remediations: u32,
    /// Whether the case is dead-lettered (given up on; cleared when a replay verifies it).
    pub dead_lettered: bool,
    /// Every HTTP status the read-backs were answered with, in order (capped).
    pub statuses: Vec<u16>,
    /// Id of the worker key that signed the record (hex of the first 8
    /// bytes of the SHA-256 of its Ed25519 public key); absent on records
    /// written before workers signed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Ed25519 signature (base64) over the canonical JSON of the record
    /// without this field; absent on records written before workers signed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// One read-back of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Whether access was gone.
    pub verified: bool,
    /// What was found, e.g. `absent`, `inactive`, `active`, `in 2 groups`.
    pub found: String,
}

/// Most statuses kept per record: a flapping app must not grow it forever.
pub const MAX_STATUSES: usize = 32;

impl EvidenceRecord {
    /// The record of `job`'s deprovision before anything was applied or read
    /// back: the original job's ids, what the account must look like.
    pub fn pending(job: &Job, expect: Expectation) -> Self {
        Self {
            v: EVIDENCE_SCHEMA_VERSION,
            person: job.person.clone(),
            app: job.app.clone(),
            sequence: job.sequence,
            job_id: job.job_id.clone(),
            event_id: job.event_id.clone(),
            expect,
            event_time: job.event_time,
            // Jobs carry no effective time yet (future-dated events are applied
            // at once), so access was due to be gone at the event.
            effective_at: job.event_time,
            applied_at: None,
            first_verification: None,
            last_recheck: None,
            failures: 0,
            remediations: 0,
            dead_lettered: false,
            statuses: Vec::new(),
            key_id: None,
            signature: None,
        }
    }

    /// Where the case stands.
    pub fn status(&self) -> EvidenceStatus {
        let latest = self.last_recheck.as_ref().or(self.first_verification.as_ref());
        match latest {
            _ if self.dead_lettered => EvidenceStatus::Failed,
            Some(check) if check.verified => EvidenceStatus::Verified,
            Some(_) => EvidenceStatus::Failed,
            None => EvidenceStatus::Pending,
        }
    }

    /// The first time access was seen gone: the first verification when it
    /// passed, else the latest check when that passed.
    pub fn verified_at(&self) -> Option<DateTime<Utc>> {
        let first = self.first_verification.as_ref().filter(|c| c.verified);
        first.or(self.last_recheck.as_ref().filter(|c| c.verified)).map(|c| c.at)
    }

    /// Records a status, keeping at most [`MAX_STATUSES`].
    pub fn push_status(&mut self, status: u16) {
        if self.statuses.len() < MAX_STATUSES {
            self.statuses.push(status);
        }
    }
}

/// Where a deprovision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceStatus {
    /// The latest read-back found access gone.
    Verified,
    /// Not read back yet.
    Pending,
    /// The latest read-back found access still there, or the case was dead-lettered.
    Failed,
}

impl EvidenceStatus {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EvidenceRecord {
        let t = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z").expect("time").with_timezone(&Utc);
        let lookup = crate::Lookup { external_id: Some("E1".into()), user_name: "e1@example.com".into() };
        let job = Job::new(
            EventId::parse("evt-1").expect("id"),
            AppId::parse("crm").expect("id"),
            PersonId::parse("E1").expect("id"),
            2,
            t,
            crate::JobAction::Deactivate { lookup, groups: crate::GroupPlan::default() },
        );
        EvidenceRecord::pending(&job, Expectation::Inactive)
    }

    #[test]
    fn a_pending_record_carries_the_original_job() {
        let r = record();
        let event_id = EventId::parse("evt-1").expect("id");
        assert_eq!(r.job_id, JobId::derive(&event_id, &AppId::parse("crm").expect("id")));
        assert_eq!((r.event_id, r.sequence, r.v), (event_id, 2, EVIDENCE_SCHEMA_VERSION));
        assert_eq!(r.effective_at, r.event_time);
        assert_eq!((r.applied_at, r.failures, r.remediations, r.dead_lettered), (None, 0, 0, false));
    }

    #[test]
    fn status_follows_the_latest_check() {
        let mut r = record();
        assert_eq!(r.status(), EvidenceStatus::Pending);
        let t = r.event_time;
        r.first_verification = Some(Check { at: t, verified: true, found: "inactive".into() });
        assert_eq!((r.status(), r.verified_at()), (EvidenceStatus::Verified, Some(t)));
        r.last_recheck = Some(Check { at: t, verified: false, found: "active".into() });
        assert_eq!(r.status(), EvidenceStatus::Failed);
        assert_eq!(r.verified_at(), Some(t), "it was verified once, at the first check");
        r.last_recheck = Some(Check { at: t, verified: true, found: "inactive".into() });
        r.dead_lettered = true;
        assert_eq!(r.status(), EvidenceStatus::Failed);
        for _ in 0..100 {
            r.push_status(200);
        }
        assert_eq!(r.statuses.len(), MAX_STATUSES);
    }
}
