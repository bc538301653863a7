#![doc = include_str!("../README.md")]

pub mod audit;
pub mod deadletter;
pub mod event;
pub mod evidence;
pub mod ids;
pub mod job;
pub mod scim;
pub mod strict;

pub use audit::{AuditEntry, AuditKind, AuditRecord};
pub use deadletter::{DeadLetter, DeadLetterReason, Stage};
pub use event::{Actor, Event, EventError, EventType, PersonState, PersonStatus};
pub use evidence::{Check, EvidenceRecord, EvidenceStatus};
pub use ids::{AppId, EventId, IdError, JobId, PersonId};
pub use job::{Expectation, GroupPlan, Job, JobAction, Lookup};
pub use strict::StrictError;

/// The JSON Schemas of every wire type, by file stem, for `schemas/json/`.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    use schemars::schema_for;
    let schemas = [
        ("event", schema_for!(Event)),
        ("job", schema_for!(Job)),
        ("dead-letter", schema_for!(DeadLetter)),
        ("evidence", schema_for!(EvidenceRecord)),
        ("audit-record", schema_for!(AuditRecord)),
        ("scim-user", schema_for!(scim::ScimUser)),
        ("scim-group", schema_for!(scim::ScimGroup)),
        ("scim-patch-request", schema_for!(scim::PatchRequest)),
        ("scim-list-response", schema_for!(scim::ListResponse<serde_json::Value>)),
        ("scim-error", schema_for!(scim::ScimError)),
    ];
    schemas.into_iter().map(|(name, schema)| (name, schema.to_value())).collect()
}
