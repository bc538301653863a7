//! Sweeps: page through every account of an app and compare each with what
//! the fleet knows, to find what no event-driven job would ever notice.
//!
//! Per account, [`classify`] decides: `ok`, `orphan` (active, but its person
//! is gone or out of scope), `unknown` (active, no person maps to it),
//! `drift` (the person should hold it, but it is inactive or differs from
//! the last converged upsert on managed attributes or groups). After paging,
//! `missing` is every member of the app (the registry's per-app set) no
//! account mapped to.
//!
//! Memory stays bounded whatever the app's size: one page is held at a time,
//! its look-ups are batched (one MGET or pipeline each), the persons seen go
//! to a Redis set and `missing` is a set difference computed in Redis and
//! scanned in chunks. Findings are handed to the caller one by one (the CLI
//! writes them out as they come).
//!
//! Remediation jobs are kept in a Redis list until paging is over and only
//! then published: a deletion while paging would shift the pages of the
//! app and make the sweep skip accounts. Their deprovisions pass the
//! mass-deprovision guard as leavers' do. Unknown accounts are never
//! touched: nothing says whose they are.

//!
//! The stages live in their own files: [`classify`] judges one account,
//! `run` pages through the app and the missing members, `fixes` builds the
//! remediation jobs (orphans through `scimfleet_policy::remediation`, as the
//! scheduler's plan would) and `publish` sends them once paging is over.

use scimfleet_runtime::Store;
use scimfleet_runtime::broker::{PublishError, Publisher, Topology};
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::guard::Guard;
use scimfleet_runtime::store::StoreError;
pub use scimfleet_runtime::store::{SweepRecord, SweepSummary};
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_schemas::{AppId, PersonId};
use serde::Serialize;

use crate::client::ScimClient;
use crate::error::ScimCallError;

mod classify;
mod fixes;
mod publish;
mod run;

pub use classify::{Class, classify};

/// Accounts asked for per page.
pub const PAGE_SIZE: u64 = 100;

/// One non-ok account or member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The app.
    pub app: AppId,
    /// What was found.
    pub class: Class,
    /// The account's SCIM id (`None` for a missing account).
    pub account_id: Option<String>,
    /// The person it maps to (`None` for an unknown account).
    pub person: Option<PersonId>,
    /// With `--remediate`: `queued`, or why no job could be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<&'static str>,
}

/// The record of a sweep of `app` that started at `started_at` and ended
/// with `outcome`, as `Store::sweeps` keeps the latest one.
pub fn record<E: std::error::Error>(
    app: &AppId,
    trigger: &str,
    remediate: bool,
    started_at: chrono::DateTime<chrono::Utc>,
    outcome: &Result<SweepSummary, E>,
) -> SweepRecord {
    let (counts, error) = match outcome {
        Ok(summary) => (summary.clone(), None),
        Err(error) => (SweepSummary::default(), Some(scimfleet_runtime::telemetry::error_chain(error))),
    };
    SweepRecord {
        app: app.clone(),
        trigger: trigger.to_owned(),
        remediate,
        started_at,
        finished_at: chrono::Utc::now(),
        error,
        counts,
    }
}

/// Counts one account of `class` in `summary`.
fn count(summary: &mut SweepSummary, class: Class) {
    let counter = match class {
        Class::Ok => &mut summary.ok,
        Class::Orphan => &mut summary.orphan,
        Class::Unknown => &mut summary.unknown,
        Class::Drift => &mut summary.drift,
        Class::Missing => &mut summary.missing,
    };
    *counter += 1;
}

/// A sweep failed part-way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Reading the app's accounts failed.
    #[error("listing the accounts of `{app}` failed")]
    Scim {
        /// The app.
        app: AppId,
        /// The call's error.
        #[source]
        source: ScimCallError,
    },
    /// The app answered a later page with the first one again: it ignores
    /// `startIndex`, so its accounts cannot all be read.
    #[error(
        "`{app}` answered startIndex={start} with its first page again: it ignores startIndex, so the sweep stopped before judging anyone missing"
    )]
    PagesRepeat {
        /// The app.
        app: AppId,
        /// The startIndex asked for.
        start: u64,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing remediation jobs failed.
    #[error("publishing remediation jobs failed")]
    Publish(#[from] PublishError),
    /// Handing a finding to the caller failed (writing the report, say).
    #[error("writing a finding failed")]
    Report(#[from] std::io::Error),
}

/// What one app's sweep needs.
pub struct Sweep<'a> {
    /// The app's SCIM client (paced like the worker's).
    pub client: &'a ScimClient,
    /// The fleet's Redis.
    pub store: &'a Store,
    /// The app's configuration (deprovision mode and managed groups).
    pub app: &'a AppConfig,
    /// A run id, unique per sweep, naming its Redis keys and remediation jobs.
    pub run_id: &'a str,
    /// Where to publish remediation jobs; `None`: report only.
    pub remediate: Option<Remediate<'a>>,
}

/// Where remediation jobs go, and the guard their deprovisions pass.
#[derive(Debug, Clone, Copy)]
pub struct Remediate<'a> {
    /// The publisher of jobs.
    pub publisher: &'a Publisher,
    /// The fleet's exchanges.
    pub topology: &'a Topology,
    /// The mass-deprovision guard: a wrong scope filter makes orphans of
    /// thousands at once, and those wait for an approver like leavers do.
    pub guard: Guard<'a>,
    /// The pseudonyms of held persons, for the audit trail.
    pub pseudonyms: &'a Pseudonymizer,
}

impl std::fmt::Debug for Sweep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweep")
            .field("app", &self.app.id)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

/// Sweeps one app: pages through its accounts, hands every non-ok finding
/// to `on_finding` as it is found, then the missing members; with
/// `remediate`, publishes the fixing jobs at the end. Returns the counts.
pub async fn sweep_app(
    sweep: &Sweep<'_>,
    on_finding: &mut (dyn FnMut(&Finding) -> std::io::Result<()> + Send),
) -> Result<SweepSummary, SweepError> {
    let result = run::run(sweep, on_finding).await;
    // The per-run keys expire anyway; removing them now is tidiness.
    if let Err(error) = sweep.store.desired().end_sweep(&sweep.app.id, sweep.run_id).await {
        tracing::warn!(scimfleet.app = %sweep.app.id, %error, "could not remove a sweep's keys");
    }
    result
}
