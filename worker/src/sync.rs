//! One job applied now, outside the queues, for `scimfleet sync --person`:
//! under the person's lease in the app (so no worker applies it at the
//! same time), with every request noted, and what follows a converged job
//! recorded as a worker records it (applied version; for an upsert, the
//! desired state a sweep compares with).

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::store::{DesiredAccount, Fenced, Store, StoreError};
use scimfleet_schemas::{Job, JobAction};

use crate::client::{Step, Steps};
use crate::converge::{ApplyError, Converger, Outcome};
use crate::references::{self, Unresolved};

/// How long a sync holds the person's lease at most (one apply).
const LEASE: Duration = Duration::from_secs(120);

/// What syncing one job did.
#[derive(Debug)]
pub struct Synced {
    /// The requests sent, in order.
    pub steps: Vec<Step>,
    /// What the apply did, or why it failed.
    pub result: Result<Outcome, ApplyError>,
}

/// Why a job could not be synced at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A worker is applying this person in the app right now.
    #[error("a worker is applying this person in {0} now; try again in a moment")]
    Busy(String),
    /// The app already holds a newer change of the person.
    #[error("{app} already holds change {applied} of this person, newer than {sequence}")]
    Newer {
        /// The app.
        app: String,
        /// The sequence applied there.
        applied: u64,
        /// The job's sequence.
        sequence: u64,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a converged upsert leaves for sweeps to compare with; `None` for
/// other jobs.
pub(crate) fn desired_of(job: &Job) -> Option<DesiredAccount> {
    match &job.action {
        JobAction::Upsert { user, managed, groups, .. } => Some(DesiredAccount {
            sequence: job.sequence,
            user: user.clone(),
            managed: managed.clone(),
            groups: groups.clone(),
        }),
        _ => None,
    }
}

/// Applies `job` now under the person's lease and records its result.
pub async fn sync_job(converger: &Converger, store: &Store, job: &Job) -> Result<Synced, SyncError> {
    let Some((lease, applied)) = store.leases().try_take_applying(&job.app, &job.person, LEASE).await? else {
        return Err(SyncError::Busy(job.app.to_string()));
    };
    let synced = match applied {
        Some(applied) if applied > job.sequence => {
            Err(SyncError::Newer { app: job.app.to_string(), applied, sequence: job.sequence })
        }
        _ => apply(converger, store, job, &lease).await,
    };
    // The lease expires by itself if this fails.
    let _released = store.leases().release(lease).await;
    synced
}

async fn apply(
    converger: &Converger,
    store: &Store,
    job: &Job,
    lease: &scimfleet_runtime::store::Lease,
) -> Result<Synced, SyncError> {
    let steps = Arc::new(Steps::default());
    let observed = converger.observed(steps.clone());
    let job = match references::resolve(store, &observed, job).await {
        Ok(job) => job,
        Err(Unresolved::Store(error)) => return Err(error.into()),
        Err(Unresolved::Apply(error)) => return Ok(Synced { steps: steps.take(), result: Err(error) }),
    };
    let result = observed.apply(&job).await;
    if result.is_ok() {
        let desired = desired_of(&job);
        let recorded = store
            .desired()
            .record_converged(&job.app, &job.person, job.sequence, desired.as_ref(), lease.fence())
            .await?;
        if recorded == Fenced::Refused {
            tracing::warn!(scimfleet.app = %job.app, "a newer lease took over while syncing; its result stands");
        }
    }
    Ok(Synced { steps: steps.take(), result })
}
