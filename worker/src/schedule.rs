//! Periodic sweeps (`verification.sweep_every`): every app is swept once per
//! period by one of the worker replicas that serve it (`--apps`).
//!
//! The sweep runs in the worker because the worker holds the apps' tokens
//! (the scheduler never reads them). Each app is claimed on its own
//! ([`Claims`](scimfleet_runtime::store::Claims)): a replica claims only the
//! apps it serves, so workers split by app sweep every app between them,
//! and replicas serving the same app sweep it once per period between them.
//! Periods are slots of Redis's clock (a `24h` period starts at 00:00 UTC),
//! so every replica agrees on what "this period" is.
//!
//! A claim has a short TTL, renewed while the sweep runs: a replica that
//! dies mid-sweep stops renewing, and another replica serving the app takes
//! the app over within seconds, in the same period, sweeping it from the
//! start. A replica that loses its claim (stalled past the TTL) stops
//! sweeping. A sweep that ran to its end, clean or failed, marks the app
//! done for the period: a failed one is logged and tried again next period,
//! so an app that is down is not polled harder.
//!
//! Every app has a loop of its own, so a slow app holds no other app's
//! sweep back.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use scimfleet_runtime::Store;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::broker::{Publisher, Topology};
use scimfleet_runtime::config::{AppConfig, Config};
use scimfleet_runtime::guard::Guard;
use scimfleet_runtime::store::{Slot, StoreError, SweepClaim, SweepTake};
use scimfleet_runtime::telemetry::{Pseudonymizer, error_chain};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::pause::Pauses;
use crate::run::app_client;
use crate::sweep::{Remediate, Sweep, sweep_app};

/// Longest TTL of a sweep claim: at most this long after its holder died,
/// an app can be taken over.
const LONGEST_TTL: Duration = Duration::from_secs(5);
/// Shortest TTL: renewed every third of it, it must survive a loaded host.
const SHORTEST_TTL: Duration = Duration::from_secs(1);

/// An app the worker serves: its index in the configuration, its
/// configuration and its token.
type ServedApp = (usize, AppConfig, Auth);

/// How long claims live and how often they are renewed and polled, scaled
/// to the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    period: Duration,
    ttl: Duration,
    renew: Duration,
    poll: Duration,
}

impl Timing {
    fn of(period: Duration) -> Self {
        // A quarter of the period at most, so a dead holder's app is taken
        // over with most of the period left; polling at half the TTL takes
        // a freed claim within 1.5 TTL of the holder's death.
        let ttl = (period / 4).clamp(SHORTEST_TTL, LONGEST_TTL);
        Self { period, ttl, renew: ttl / 3, poll: ttl / 2 }
    }
}

/// What every app's loop shares.
struct Sweeper<'a> {
    config: &'a Config,
    store: &'a Store,
    publisher: &'a Publisher,
    audit: &'a AuditLog,
    pseudonyms: &'a Pseudonymizer,
    pauses: &'a Pauses,
    topology: Topology,
    /// This replica's id in the claims (host, process id, random bits).
    holder: Arc<str>,
    timing: Timing,
}

/// What the periodic sweeps share with the rest of the worker process.
pub(crate) struct Fleet {
    /// The fleet's Redis.
    pub store: Store,
    /// The publisher of remediation jobs.
    pub publisher: Publisher,
    /// The process's audit trail (held remediations).
    pub audit: AuditLog,
    /// Pseudonyms for the audit trail.
    pub pseudonyms: Pseudonymizer,
    /// Which apps an operator paused: not swept until resumed.
    pub pauses: Pauses,
}

/// Sweeps each of `apps` once per `period` (whenever no other replica did)
/// until `stop`; errors are logged, never fatal.
pub(crate) async fn sweep_periodically(
    config: Arc<Config>,
    apps: Vec<ServedApp>,
    fleet: Fleet,
    period: Duration,
    stop: CancellationToken,
) {
    let sweeper = Sweeper {
        config: &config,
        store: &fleet.store,
        publisher: &fleet.publisher,
        audit: &fleet.audit,
        pseudonyms: &fleet.pseudonyms,
        pauses: &fleet.pauses,
        topology: Topology::of(&config),
        holder: crate::notes::instance_id(),
        timing: Timing::of(period),
    };
    tokio::select! {
        () = stop.cancelled() => {}
        _ = join_all(apps.iter().map(|app| keep_swept(&sweeper, app))) => {}
    }
}

/// One app's loop: claim the current period unless it is done, sweep while
/// holding the claim, then wait for the next period.
async fn keep_swept(sweeper: &Sweeper<'_>, app: &ServedApp) {
    let claims = sweeper.store.claims();
    let poll = sweeper.timing.poll;
    let mut done = None;
    let mut failing = false;
    loop {
        // A paused app is not called at all, sweeps included: this
        // period's sweep runs once it is resumed (or the next period's).
        if sweeper.pauses.is_paused(&app.1.id) {
            tokio::time::sleep(poll).await;
            continue;
        }
        let attempt = async {
            let slot = claims.slot(sweeper.timing.period).await?;
            if done == Some(slot.index) {
                return Ok(slot.ends_in);
            }
            let taken =
                claims.try_claim_sweep(&app.1.id, slot.index, &sweeper.holder, sweeper.timing.ttl).await?;
            Ok::<_, StoreError>(match taken {
                SweepTake::Taken(claim) => {
                    if sweep_holding(sweeper, app, claim, slot).await {
                        done = Some(slot.index);
                    }
                    // Straight on: the next round sees the period done.
                    Duration::ZERO
                }
                SweepTake::Done => {
                    done = Some(slot.index);
                    slot.ends_in
                }
                _ => poll,
            })
        };
        let pause = match attempt.await {
            Ok(pause) => {
                failing = false;
                pause
            }
            Err(error) => {
                // Once per outage, not once per poll.
                if !failing {
                    tracing::warn!(scimfleet.app = %app.1.id, error = error_chain(&error), "could not claim the sweep; trying again");
                }
                failing = true;
                poll
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Sweeps `app` while renewing `claim`; true when the sweep ran to its end
/// and the period was marked done, false when the claim was lost first.
async fn sweep_holding(sweeper: &Sweeper<'_>, app: &ServedApp, claim: SweepClaim, slot: Slot) -> bool {
    let id = &app.1.id;
    tracing::debug!(scimfleet.app = %id, period = slot.index, "sweep of {id} claimed");
    let finished = tokio::select! {
        () = sweep_once(sweeper, app) => true,
        () = hold(sweeper, &claim) => false,
    };
    if !finished {
        tracing::warn!(scimfleet.app = %id, "sweep of {id} stopped: its claim was lost (this replica stalled past the claim's TTL)");
        return false;
    }
    // Kept past the period's end: an early mark only costs a little memory.
    let keep = slot.ends_in + sweeper.timing.period;
    if let Err(error) = sweeper.store.claims().finish(claim, keep).await {
        // The claim expires by itself; another replica may sweep again.
        tracing::warn!(scimfleet.app = %id, error = error_chain(&error), "could not mark the sweep of {id} done");
    }
    true
}

/// Renews `claim` every third of its TTL; returns once it is lost, or once
/// no renewal succeeded for a whole TTL (it has expired by then).
async fn hold(sweeper: &Sweeper<'_>, claim: &SweepClaim) {
    let Timing { ttl, renew, .. } = sweeper.timing;
    let mut held_at = Instant::now();
    loop {
        tokio::time::sleep(renew).await;
        let asked_at = Instant::now();
        match sweeper.store.claims().renew(claim, ttl).await {
            Ok(true) => held_at = asked_at,
            Ok(false) => return,
            Err(_) if held_at.elapsed() >= ttl => return,
            Err(error) => {
                tracing::debug!(error = error_chain(&error), "could not renew a sweep claim; retrying")
            }
        }
    }
}

/// One sweep of one app; findings are counted in the log, never named.
async fn sweep_once(sweeper: &Sweeper<'_>, (_, app, auth): &ServedApp) {
    let config = sweeper.config;
    let client = match app_client(config, app, auth.clone(), sweeper.store) {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "sweep skipped");
            return;
        }
    };
    let run_id = format!("periodic-{}", chrono::Utc::now().timestamp_millis());
    let remediate = config.verification.sweep_remediate.then_some(Remediate {
        publisher: sweeper.publisher,
        topology: &sweeper.topology,
        guard: Guard { store: sweeper.store, audit: sweeper.audit, governance: &config.governance },
        pseudonyms: sweeper.pseudonyms,
    });
    let (remediating, started_at) = (remediate.is_some(), chrono::Utc::now());
    let sweep = Sweep { client: &client, store: sweeper.store, app, run_id: &run_id, remediate };
    let outcome = sweep_app(&sweep, &mut |_| Ok(())).await;
    let record = crate::sweep::record(&app.id, "periodic", remediating, started_at, &outcome);
    if let Err(error) = sweeper.store.sweeps().record(&record).await {
        tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "the sweep's record was not kept");
    }
    match outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_scale_with_the_period() {
        let day = Timing::of(Duration::from_secs(86_400));
        assert_eq!(
            (day.ttl, day.poll),
            (LONGEST_TTL, LONGEST_TTL / 2),
            "a long period: seconds, not minutes"
        );
        let short = Timing::of(Duration::from_secs(8));
        assert_eq!(short.ttl, Duration::from_secs(2), "a dead holder is taken over within the period");
        assert!(short.renew < short.ttl && short.poll < short.ttl);
        assert_eq!(Timing::of(Duration::from_millis(100)).ttl, SHORTEST_TTL);
    }
}
