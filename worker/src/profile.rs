//! The worker's side of target profiles: each app's converger follows the
//! app's profile (vendor profile, last probe, `[apps.target]`; see
//! `TargetProfile`) from start-up, and again whenever a new probe is saved:
//! the last probe is read from Redis every [`REFRESH`].
//!
//! With `worker.probe_every`, one replica per app probes it again once
//! its last probe is that old, or sooner when its answers suggest a
//! capability changed (filters refused again and again); the other
//! replicas pick the new profile up at their next refresh.
//!
//! What a profile turns off stays learnable: an app the profile says takes
//! PATCH still switches to PUT on its first 501; a refusal the profile
//! states is adopted before any request is wasted on it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use scimfleet_runtime::config::{AppConfig, TargetProfile};
use scimfleet_runtime::store::{ProbedProfile, Store};
use scimfleet_runtime::telemetry::error_chain;
use tokio_util::sync::CancellationToken;

use scimfleet_runtime::metrics::Metrics;
use scimfleet_schemas::scim::UserAttr;

use crate::client::ScimClient;
use crate::groups::GroupDirectory;
use crate::support::AttributeSupport;

/// How often a worker reads the apps' last probe again.
pub(crate) const REFRESH: Duration = Duration::from_secs(30);

/// What adopts a profile for one app's converger (its clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Adopter {
    pub(crate) client: ScimClient,
    pub(crate) groups: Arc<GroupDirectory>,
    pub(crate) support: Arc<AttributeSupport>,
}

impl Adopter {
    /// Makes the app's converger work as `profile` says; of `managed`, the
    /// attributes the profile's `/Schemas` does not list are not written
    /// (returned when newly found, to be reported).
    pub(crate) fn adopt(&self, profile: &TargetProfile, managed: &[UserAttr]) -> Vec<UserAttr> {
        self.client.adopt_profile(profile);
        let app = self.client.app();
        if profile.patch_users == Some(false) {
            self.groups.refusals.refuse_users(app);
        }
        if profile.patch_groups == Some(false) {
            self.groups.refusals.refuse_groups(app);
        }
        self.support.unlisted(app, &profile.unlisted(managed))
    }
}

/// `app`'s profile now: its configuration with its last probe in between.
pub(crate) async fn current(store: &Store, app: &AppConfig) -> TargetProfile {
    current_and_last(store, app).await.0
}

/// [`current`], and when the last probe ran.
async fn current_and_last(store: &Store, app: &AppConfig) -> (TargetProfile, Option<DateTime<Utc>>) {
    match store.profiles().get(&app.id).await {
        Ok(probed) => {
            let at = probed.as_ref().map(|p| p.probed_at);
            (app.profile_with(&probed.map(|p| p.profile).unwrap_or_default()), at)
        }
        Err(error) => {
            // The configured profile still holds; the next refresh reads again.
            tracing::warn!(
                scimfleet.app = %app.id, error = error_chain(&error),
                "could not read the last probe of {}; using the configured profile", app.id
            );
            (app.declared_profile(), None)
        }
    }
}

/// Adopts `app`'s profile now and reports what it found unlisted; with
/// `probe_every`, probes the app first when its last probe is that old (or
/// absent) or its answers suggest a capability changed.
pub(crate) async fn adopt(
    store: &Store,
    metrics: &Metrics,
    app: &AppConfig,
    adopter: &Adopter,
    probe_every: Option<Duration>,
) {
    let (mut profile, last) = current_and_last(store, app).await;
    if let Some(every) = probe_every {
        let stale =
            last.is_none_or(|at| Utc::now().signed_duration_since(at).to_std().is_ok_and(|age| age >= every));
        if (stale || adopter.client.capability_changed()) && reprobe(store, app, adopter, every).await {
            profile = current(store, app).await;
        }
    }
    let unlisted = adopter.adopt(&profile, &app.mapping.attributes());
    crate::notes::unsupported_in(store, metrics, &app.id, &unlisted).await;
}

/// How long one replica's claim on probing an app lasts at most: also the
/// least time between two probes of an app that keeps refusing filters.
const PROBE_CLAIM: Duration = Duration::from_secs(600);

/// Probes `app` and saves the result, unless another replica claimed it
/// (for `PROBE_CLAIM`, or `every` when shorter); true when a new profile
/// was saved.
async fn reprobe(store: &Store, app: &AppConfig, adopter: &Adopter, every: Duration) -> bool {
    match store.profiles().claim_probe(&app.id, PROBE_CLAIM.min(every)).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(error) => {
            tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "could not claim a probe of {}", app.id);
            return false;
        }
    }
    adopter.client.capability_checked();
    let probed = match crate::probe::probe(&adopter.client).await {
        Ok(probe) => {
            ProbedProfile { probed_at: Utc::now(), profile: probe.profile, findings: probe.findings }
        }
        Err(error) => {
            tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "probing {} failed; keeping its profile", app.id);
            return false;
        }
    };
    match store.profiles().save(&app.id, &probed).await {
        Ok(()) => {
            tracing::info!(scimfleet.app = %app.id, "{} probed again: its target profile is renewed", app.id);
            true
        }
        Err(error) => {
            tracing::warn!(scimfleet.app = %app.id, error = error_chain(&error), "could not save the probe of {}", app.id);
            false
        }
    }
}

/// Adopts each app's profile again every [`REFRESH`] until `stop`.
pub(crate) async fn follow(
    store: Store,
    metrics: Arc<Metrics>,
    apps: Vec<(AppConfig, Adopter)>,
    probe_every: Option<Duration>,
    stop: CancellationToken,
) {
    // A probe period shorter than the refresh is kept to.
    let period = probe_every.map_or(REFRESH, |every| REFRESH.min(every));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        for (app, adopter) in &apps {
            adopt(&store, &metrics, app, adopter, probe_every).await;
        }
    }
}
