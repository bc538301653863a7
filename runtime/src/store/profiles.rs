//! Probed target profiles (`{ns}:profile:{app}`, JSON): what the last
//! `scimfleet probe` of an app found, read by every worker of the app.
//!
//! Consistency rule: one key per app, written whole by the probe (the
//! newest probe wins; probes of one app are rare and need no ordering), and
//! never expiring: a profile stays true until the next probe says otherwise.

use chrono::{DateTime, Utc};
use scimfleet_schemas::AppId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, command};
use crate::config::TargetProfile;

/// One probe's result, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbedProfile {
    /// When the probe ran.
    pub probed_at: DateTime<Utc>,
    /// What it established.
    pub profile: TargetProfile,
    /// What it found, one line each, for operators (`scimfleet probe`, `status`).
    #[serde(default)]
    pub findings: Vec<String>,
}

/// The probed profiles of apps; from [`Store::profiles`].
#[derive(Clone, Copy)]
pub struct Profiles<'s> {
    store: &'s Store,
}

impl<'s> Profiles<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The last probe of `app`, if any.
    pub async fn get(self, app: &AppId) -> Result<Option<ProbedProfile>, StoreError> {
        let mut conn = self.store.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.store.keys.profile(app))
            .query_async(&mut conn)
            .await
            .map_err(command("read a target profile"))?;
        raw.map(|r| serde_json::from_str(&r).map_err(|_| StoreError::Corrupt { what: "target profile" }))
            .transpose()
    }

    /// Claims the next probe of `app` for `ttl`: true for one caller
    /// (one worker replica probes an app at a time).
    pub async fn claim_probe(self, app: &AppId, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.store.keys.profile_claim(app))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut conn)
            .await
            .map_err(command("claim a probe"))?;
        Ok(claimed.is_some())
    }

    /// Keeps `probed` as `app`'s profile.
    pub async fn save(self, app: &AppId, probed: &ProbedProfile) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(probed).unwrap_or_default();
        redis::cmd("SET")
            .arg(self.store.keys.profile(app))
            .arg(json)
            .query_async::<()>(&mut conn)
            .await
            .map_err(command("save a target profile"))
    }
}
