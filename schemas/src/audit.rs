//! The audit trail's wire contract: what a process hands in ([`AuditEntry`])
//! and what is stored ([`AuditRecord`]).
//!
//! A record is an entry plus its place in one hash chain shared by every
//! writer process: `seq` counts from 1, `prev` is the `hash` of the record
//! before (64 zeros for the first), and `hash` is the hex SHA-256 of the
//! record's canonical JSON without `hash`, `sig` and `key_id` (computed in
//! `scimfleet-runtime`, which owns the canonical encoder). `sig` is an
//! Ed25519 signature over that hash, by the key `key_id` names.
//!
//! Records name people only by their pseudonym and carry counts and names
//! of attributes in `detail`, never values, tokens or HR ids.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A worker changed an account in an app.
    ScimWrite,
    /// A read-back after a deprovision, or a re-check, judged access gone or not.
    Verification,
    /// An upsert met an account bound to nobody and took it or left it
    /// alone, per the app's `adopt`.
    Adoption,
    /// A job was held for approval.
    Held,
    /// A held job was approved.
    Approved,
    /// A held job was rejected.
    Rejected,
    /// An approval was refused: a wrong, expired or reused code, an unknown
    /// approver, a self-approval or a second approval by the same person.
    ApprovalRefused,
    /// A held job expired (and was rejected).
    Expired,
    /// A held job was superseded by a later event.
    Superseded,
    /// A mass deprovision was held as a wave.
    WaveHeld,
    /// A held wave was released.
    WaveReleased,
    /// A held wave was cancelled.
    WaveCancelled,
    /// An event or a job was dead-lettered.
    DeadLettered,
    /// An operator replayed dead letters.
    Replayed,
    /// An operator purged dead letters.
    Purged,
    /// An operator paused an app's jobs fleet-wide (`scimfleet pause`).
    Paused,
    /// An operator resumed a paused app's jobs (`scimfleet resume`).
    Resumed,
    /// A process started with a configuration.
    ConfigLoaded,
    /// Someone signed in to the operator console.
    SignedIn,
    /// Someone signed out of the operator console.
    SignedOut,
    /// An operator started a sweep (or a sweep and fix) of an app.
    SweepStarted,
    /// Someone downloaded a person's signed evidence export.
    EvidenceExported,
}

impl AuditKind {
    /// The kind as written on the wire (`scim_write`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScimWrite => "scim_write",
            Self::Verification => "verification",
            Self::Adoption => "adoption",
            Self::Held => "held",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::ApprovalRefused => "approval_refused",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
            Self::WaveHeld => "wave_held",
            Self::WaveReleased => "wave_released",
            Self::WaveCancelled => "wave_cancelled",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
            Self::Purged => "purged",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::ConfigLoaded => "config_loaded",
            Self::SignedIn => "signed_in",
            Self::SignedOut => "signed_out",
            Self::SweepStarted => "sweep_started",
            Self::EvidenceExported => "evidence_exported",
        }
    }
}

/// What a caller hands to the audit log; the log chains it into a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// What happened.
    pub kind: AuditKind,
    /// Who caused it: the event's actor id, the operator's or approver's
    /// name, or the role (`worker`, `scheduler`, `admin`).
    pub actor: String,
    /// The person's pseudonym (never the HR id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The app concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The trace the action ran under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Small facts: counts, attribute names, reasons. Never personal data or secrets.
    #[serde(default)]
    pub detail: Map<String, Value>,
}

impl AuditEntry {
    /// An entry of `kind` caused by `actor`.
    pub fn new(kind: AuditKind, actor: impl Into<String>) -> Self {
        Self { kind, actor: actor.into(), person: None, app: None, trace_id: None, detail: Map::new() }
    }

    /// The person's pseudonym.
    #[must_use]
    pub fn person(mut self, person: impl Into<String>) -> Self {
        self.person = Some(person.into());
        self
    }

    /// The app concerned.
    #[must_use]
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The trace id, when there is one.
    #[must_use]
    pub fn trace(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// One fact of the detail.
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// An entry as stored: chained, hashed and (where a key exists) signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When the writer chained it.
    pub at: DateTime<Utc>,
    /// The process that wrote it (role and process id).
    pub writer: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// Hex SHA-256 of the previous record ([`GENESIS`] for seq 1).
    pub prev: String,
    /// Hex SHA-256 of this record's canonical JSON without `hash`, `sig` and `key_id`.
    pub hash: String,
    /// The signing key's id, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Ed25519 signature (base64) over `hash`, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_builds_and_round_trips_with_snake_case_kinds() {
        let entry = AuditEntry::new(AuditKind::ScimWrite, "hr-sync")
            .person("p-0011")
            .app("crm")
            .trace(Some("abc".into()))
            .detail("created", true);
        let json = serde_json::to_value(&entry).expect("serialises");
        assert_eq!(json["kind"], "scim_write");
        assert_eq!(AuditKind::WaveCancelled.as_str(), "wave_cancelled");
        let back: AuditEntry = serde_json::from_value(json).expect("parses");
        assert_eq!(back, entry);
    }

    #[test]
    fn every_kind_is_written_as_its_name() {
        for kind in [AuditKind::ConfigLoaded, AuditKind::DeadLettered, AuditKind::WaveHeld] {
            let json = serde_json::to_value(kind).expect("serialises");
            assert_eq!(json, kind.as_str());
        }
    }
}
