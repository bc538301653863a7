//! The worker's side of target profiles: each app's converger follows the
//! app's profile (vendor profile, last probe, `[apps.target]`; see
//! `TargetProfile`) from start-up, and again whenever a new probe is saved:
//! the last probe is read from Redis every [`REFRESH`].
//!
//! What a profile turns off stays learnable: an app the profile says takes
//! PATCH still switches to PUT on its first 501; a refusal the profile
//! states is adopted before any request is wasted on it.

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::config::{AppConfig, TargetProfile};
use scimfleet_runtime::store::Store;
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
        // A login and the binding are written whatever a schema says.
        let unlisted: Vec<UserAttr> = managed
            .iter()
            .filter(|a| !a.is_user_name() && profile.lists(a) == Some(false))
            .cloned()
            .collect();
        self.support.unlisted(app, &unlisted)
    }
}

/// `app`'s profile now: its configuration with its last probe in between.
pub(crate) async fn current(store: &Store, app: &AppConfig) -> TargetProfile {
    match store.profiles().get(&app.id).await {
        Ok(probed) => app.profile_with(&probed.map(|p| p.profile).unwrap_or_default()),
        Err(error) => {
            // The configured profile still holds; the next refresh reads again.
            tracing::warn!(
                scimfleet.app = %app.id, error = scimfleet_runtime::telemetry::error_chain(&error),
                "could not read the last probe of {}; using the configured profile", app.id
            );
            app.declared_profile()
        }
    }
}

/// Adopts `app`'s profile now and reports what it found unlisted.
pub(crate) async fn adopt(store: &Store, metrics: &Metrics, app: &AppConfig, adopter: &Adopter) {
    let unlisted = adopter.adopt(&current(store, app).await, &app.mapping.attributes());
    crate::notes::unsupported_in(store, metrics, &app.id, &unlisted).await;
}

/// Adopts each app's profile again every [`REFRESH`] until `stop`.
pub(crate) async fn follow(
    store: Store,
    metrics: Arc<Metrics>,
    apps: Vec<(AppConfig, Adopter)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REFRESH) => {}
        }
        for (app, adopter) in &apps {
            adopt(&store, &metrics, app, adopter).await;
        }
    }
}
