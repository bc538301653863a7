//! The label sets of the metric families: each a small struct, so a label
//! name is spelled once and its values stay bounded (apps, actions,
//! outcomes, reasons; never a person or job id).

use prometheus_client::encoding::EncodeLabelSet;

/// `app`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    /// The app id.
    pub app: String,
}

/// `app`, `action`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppAction {
    /// The app id.
    pub app: String,
    /// `upsert`, `deactivate`, `delete` or `verify`.
    pub action: String,
}

/// `app`, `action`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcome {
    /// The app id.
    pub app: String,
    /// The job's action.
    pub action: String,
    /// How the delivery was settled (see [`Metrics::jobs`](super::Metrics::jobs)).
    pub outcome: String,
}

/// `app`, `method`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScimRequest {
    /// The app id.
    pub app: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status code, or `error` when no answer came.
    pub status: String,
}

/// `app`, `method`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppMethod {
    /// The app id.
    pub app: String,
    /// HTTP method.
    pub method: String,
}

/// `app`, `attribute`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppAttribute {
    /// The app id.
    pub app: String,
    /// A SCIM attribute path.
    pub attribute: String,
}

/// `app`, `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppReason {
    /// The app id.
    pub app: String,
    /// The dead-letter reason.
    pub reason: String,
}

/// `app`, `check`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Verification {
    /// The app id.
    pub app: String,
    /// `read_back`, `recheck` or `remediation`.
    pub check: String,
    /// `verified` or `failed`.
    pub outcome: String,
}

/// `app`, `queue`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// The app id, or `events` for the scheduler's queues.
    pub app: String,
    /// `work`, `leavers`, `dlq`, `retry`, `recheck` (per app) or `intake`, `dlq` (events).
    pub queue: String,
}

/// `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// How it ended.
    pub outcome: String,
}

/// `version`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VersionLabel {
    pub(super) version: String,
}

/// `source` (an HTTP intake source id, or `unknown`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source id.
    pub source: String,
}

/// `source`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceOutcome {
    /// The `[[sources]]` id.
    pub source: String,
    /// What became of a stored delivery: `processed`, `duplicate`,
    /// `dead_lettered`, `retried`.
    pub outcome: &'static str,
}

/// `source`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceStatus {
    /// The source id, or `unknown` before a signature verified.
    pub source: String,
    /// The HTTP status answered.
    pub status: String,
}
