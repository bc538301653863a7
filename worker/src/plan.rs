//! What jobs would send, for `scimfleet plan`: each job converged against
//! its app as it is now by a recording converger (`client::Recorder`), so
//! the plan is made by the same code, with the same reads and decisions,
//! as the real apply; nothing is written.

use std::sync::Arc;

use scimfleet_runtime::Config;
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::store::Store;
use scimfleet_schemas::Job;

use crate::client::{PlannedWrite, Recorder};
use crate::converge::Converger;
use crate::references::{self, Unresolved};
use crate::run::WorkerError;

/// The converger of `app` (the `index`-th configured app) as a worker
/// builds it, following the app's target profile, for planning.
pub async fn app_converger(
    config: &Config,
    index: usize,
    app: &AppConfig,
    store: &Store,
) -> Result<Converger, WorkerError> {
    let auth = crate::auth::Auth::from_config(config, index, app)?;
    let converger = crate::run::converger(config, app, auth, store, None)?;
    converger.adopter().adopt(&crate::profile::current(store, app).await, &app.mapping.attributes());
    Ok(converger)
}

/// The writes `job` would send to its app now, in order.
pub async fn plan_job(
    converger: &Converger,
    store: &Store,
    job: &Job,
) -> Result<Vec<PlannedWrite>, Unresolved> {
    let recorder = Arc::new(Recorder::default());
    let recording = converger.recording(recorder.clone());
    let job = references::resolve(store, &recording, job).await?;
    recording.apply(&job).await.map_err(Unresolved::Apply)?;
    Ok(recorder.take())
}
