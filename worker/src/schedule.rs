//! Periodic sweeps (`verification.sweep_every`): every app is swept once per
//! period by one worker replica, whichever claims the period in Redis first.
//!
//! The sweep runs in the worker because the worker holds the apps' tokens
//! (the scheduler never reads them). The claim outlives restarts, so a
//! replica that restarts mid-period does not sweep again; a replica that
//! dies mid-sweep leaves the rest of that period unswept, and the next
//! period sweeps everything.

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::broker::{Publisher, Topology};
use scimfleet_runtime::config::{AppConfig, Config};
use scimfleet_runtime::telemetry::error_chain;
use scimfleet_runtime::{Secret, Store};
use tokio_util::sync::CancellationToken;

use crate::run::app_client;
use crate::sweep::{Sweep, sweep_app};

/// Longest pause between attempts to claim the period.
const CLAIM_POLL: Duration = Duration::from_secs(60);

/// Sweeps `apps` every `period` until `stop`; errors are logged, never fatal.
pub(crate) async fn sweep_periodically(
    config: Arc<Config>,
    apps: Vec<(usize, AppConfig, Secret)>,
    store: Store,
    publisher: Publisher,
    period: Duration,
    stop: CancellationToken,
) {
    let poll = period.min(CLAIM_POLL);
    loop {
        match store.claims().claim_period("sweep", period).await {
            Ok(true) => sweep_all(&config, &apps, &store, &publisher).await,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = error_chain(&error), "could not claim the sweep period; trying later");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}

async fn sweep_all(
    config: &Config,
    apps: &[(usize, AppConfig, Secret)],
    store: &Store,
    publisher: &Publisher,
) {
    let topology = Topology::of(config);
    let run_id = format!("periodic-{}", chrono::Utc::now().timestamp_millis());
    let remediate = config.verification.sweep_remediate.then_some((publisher, &topology));
    for (index, app, token) in apps {
        let client = match app_client(config, *index, app, token.clone(), store) {
            Ok(client) => client,
            Err(error) => {
                tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "sweep skipped");
                continue;
            }
        };
        let sweep = Sweep { client: &client, store, app, run_id: &run_id, remediate };
        // Findings are counted in the summary; the log names no accounts.
        match sweep_app(&sweep, &mut |_| Ok(())).await {
            Ok(s) if s.is_clean() => tracing::info!(
                scimfleet.app = %app.id, seen = s.seen, "sweep of {}: {} accounts, all as they should be", app.id, s.seen
            ),
            Ok(s) => tracing::warn!(
                scimfleet.app = %app.id, seen = s.seen, ok = s.ok, orphan = s.orphan, unknown = s.unknown,
                drift = s.drift, missing = s.missing, remediations = s.remediations,
                "sweep of {}: {} orphan, {} unknown, {} drift, {} missing", app.id, s.orphan, s.unknown, s.drift, s.missing
            ),
            Err(error) => {
                tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "sweep of {} failed", app.id);
            }
        }
    }
}
