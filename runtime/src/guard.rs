//! The mass-deprovision guard as every path that deprovisions asks it: the
//! scheduler for leavers and movers, the sweeps for the orphans they
//! remediate. A wrong scope filter turns thousands of accounts into orphans
//! at the next sweep, as a bad HR export turns thousands of people into
//! leavers; both must stop at the same limit and join the same wave.
//!
//! Within the limits the job comes back to be published now; beyond them it
//! is held in its scope's wave ([`crate::store::Waves::admit`], one script,
//! idempotent by job id) and the hold is audited (the wave's opening too).

use scimfleet_schemas::{AuditEntry, AuditKind, Job};

use crate::audit::AuditLog;
use crate::config::{AppConfig, GovernanceConfig};
use crate::store::{Admission, HeldJob, HoldKind, Store, StoreError};

/// What the guard needs of its caller's process.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    /// The fleet's Redis.
    pub store: &'a Store,
    /// The process's audit trail.
    pub audit: &'a AuditLog,
    /// The limits (`governance.mass_deprovision` and the apps' own).
    pub governance: &'a GovernanceConfig,
}

impl std::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("audit", self.audit).finish_non_exhaustive()
    }
}

/// Who asks for one deprovision.
#[derive(Debug, Clone)]
pub struct Asker<'a> {
    /// The event's actor id, or the role (`sweep`).
    pub actor: &'a str,
    /// The person's pseudonym.
    pub person: &'a str,
    /// The trace the deprovision was planned under.
    pub trace_id: Option<String>,
}

/// What the guard made of one deprovision.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one per deprovision, published or dropped at once")]
pub enum Guarded {
    /// Within the limits: publish it now.
    Admitted(Job),
    /// Held in `wave` for an approver.
    Held {
        /// The wave holding it.
        wave: String,
        /// This deprovision opened the wave.
        opened: bool,
        /// The scope whose limit was crossed (empty when held before).
        scope: String,
    },
}

impl Guard<'_> {
    /// Whether any limit applies to `app`'s deprovisions.
    pub fn applies_to(&self, app: &AppConfig) -> bool {
        let app_limit = self.governance.app_limit(app.mass_deprovision.as_ref());
        app_limit.allowed(u64::MAX).is_some() || self.governance.fleet_limit().allowed(0).is_some()
    }

    /// Lets the deprovision `job` of `app` through or holds it in a wave.
    /// One let through ends the person's high-risk grants in the app, so a
    /// returning person's admin group is held again.
    pub async fn ask(&self, app: &AppConfig, job: Job, asker: Asker<'_>) -> Result<Guarded, StoreError> {
        if !self.applies_to(app) {
            return self.admitted(app, job).await;
        }
        let reasons = vec!["mass deprovision".to_owned()];
        let who = (asker.person, asker.actor);
        let held = HeldJob::new(job, HoldKind::Wave, reasons, who, asker.trace_id.clone());
        let candidate = format!("w{}", &held.id[..12.min(held.id.len())]);
        let app_limit = self.governance.app_limit(app.mass_deprovision.as_ref());
        let fleet_limit = self.governance.fleet_limit();
        let window = self.governance.mass_deprovision.window;
        let (wave, opened, scope) =
            match self.store.waves().admit(&held, window, app_limit, fleet_limit, &candidate).await? {
                Admission::Admitted => return self.admitted(app, held.job).await,
                Admission::Held { wave, opened, scope } => (wave, opened, scope),
            };
        if opened {
            tracing::warn!(
                wave = %wave, scope = %scope,
                "mass-deprovision guard: more deprovisions in {scope} than allowed; wave {wave} holds the rest for an approver"
            );
            let entry = AuditEntry::new(AuditKind::WaveHeld, asker.actor).trace(asker.trace_id.clone());
            self.audit.record(entry.detail("wave", wave.as_str()).detail("scope", scope.as_str())).await?;
        }
        let entry = AuditEntry::new(AuditKind::Held, asker.actor)
            .person(asker.person)
            .app(held.job.app.as_str())
            .trace(asker.trace_id)
            .detail("held", held.id.as_str())
            .detail("action", held.job.action.name())
            .detail("wave", wave.as_str());
        self.audit.record(entry.detail("reason", "mass deprovision")).await?;
        Ok(Guarded::Held { wave, opened, scope })
    }

    async fn admitted(&self, app: &AppConfig, job: Job) -> Result<Guarded, StoreError> {
        if !app.high_risk.groups.is_empty() {
            self.store.held().set_granted(&job.app, &job.person, &[]).await?;
        }
        Ok(Guarded::Admitted(job))
    }
}
