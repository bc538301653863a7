//! `[governance]` and each app's `high_risk` and `mass_deprovision`: what
//! the scheduler holds for an approver, and who may approve it.
//!
//! Two gates, both in the scheduler, both failing closed for grants and
//! never for removals (guarantee 6):
//!
//! - **step-up**: a job that grants a high-risk group, creates an account
//!   in an app marked `create = true`, or deletes where `delete = true`
//!   (the account is deactivated at once; only the irreversible DELETE
//!   waits) is held unless the event's actor carries one of `step_up_amr`
//!   or `step_up_acr`;
//! - **mass deprovision**: more deprovisions than a scope's limit within
//!   `window` hold the rest of that scope's deprovisions as one wave until
//!   an approver releases or cancels it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::de::duration_ms;

/// `[governance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceConfig {
    /// Authentication methods (RFC 8176 `amr`) that count as step-up.
    pub step_up_amr: Vec<String>,
    /// Authentication context classes (`acr`) that count as step-up.
    #[serde(default)]
    pub step_up_acr: Vec<String>,
    /// The approvers and their TOTP secrets (relative to the config file);
    /// without it nothing held can be approved, only rejected or left to expire.
    #[serde(default)]
    pub approvers_file: Option<PathBuf>,
    /// Distinct approvers a held grant or wave needs (1 or 2).
    pub approvals_required: u8,
    /// How long a held grant waits before it is rejected as expired.
    #[serde(deserialize_with = "duration_ms")]
    pub hold_expiry: u64,
    /// The fleet-wide and per-app default limits of the mass-deprovision guard.
    pub mass_deprovision: MassDeprovision,
}

/// `[governance.mass_deprovision]`: the guard's sliding window and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassDeprovision {
    /// The sliding window deprovisions are counted over.
    #[serde(deserialize_with = "duration_ms")]
    pub window: u64,
    /// People deprovisioned (in any number of apps) within the window
    /// before the rest are held as a fleet-wide wave (0: no fleet-wide limit).
    pub fleet_max: u32,
    /// Deprovisions in one app within the window before the rest are held
    /// as that app's wave, unless the app sets its own (0: no limit).
    pub app_max: u32,
    /// Share of an app's known accounts (percent) whose deprovision within
    /// the window holds the rest, unless the app sets its own (0: off).
    pub app_percent: f64,
    /// The percent limit only counts once this many went in the window, so
    /// a small app's single leaver is never held.
    pub percent_floor: u32,
}

/// An app's `high_risk` table: what granting takes step-up or approval.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighRisk {
    /// Managed groups (display names) whose grant is high-risk.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Creating an account in this app is high-risk.
    #[serde(default)]
    pub create: bool,
    /// Deleting an account is held for approval (it is deactivated at once).
    #[serde(default)]
    pub delete: bool,
}

/// An app's `mass_deprovision` table, overriding the `[governance]` defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppMassDeprovision {
    /// Deprovisions in this app within the window before the rest are held (0: no limit).
    #[serde(default)]
    pub max: Option<u32>,
    /// Share of the app's known accounts (percent), 0 for none.
    #[serde(default)]
    pub percent: Option<f64>,
}

/// The limits in force for one app's scope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScopeLimit {
    /// Count limit (0: none).
    pub max: u32,
    /// Percent of known accounts (0: none).
    pub percent: f64,
    /// Count below which the percent limit does not apply.
    pub percent_floor: u32,
}

impl ScopeLimit {
    /// How many deprovisions the window may hold for a scope with `known`
    /// accounts before the next one is held; `None` when unlimited.
    pub fn allowed(&self, known: u64) -> Option<u64> {
        let by_count = (self.max > 0).then_some(u64::from(self.max));
        let by_share = (self.percent > 0.0).then(|| {
            let share = (known as f64 * self.percent / 100.0).floor() as u64;
            share.max(u64::from(self.percent_floor))
        });
        match (by_count, by_share) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl GovernanceConfig {
    /// The approvers file, resolved against the configuration's directory.
    pub fn approvers_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.approvers_file.as_ref().map(|p| base_dir.join(p))
    }

    /// Whether an actor with `amr` and `acr` has stepped up.
    pub fn stepped_up(&self, amr: &[String], acr: Option<&str>) -> bool {
        amr.iter().any(|m| self.step_up_amr.contains(m))
            || acr.is_some_and(|a| self.step_up_acr.iter().any(|x| x == a))
    }

    /// The fleet-wide limit.
    pub fn fleet_limit(&self) -> ScopeLimit {
        ScopeLimit { max: self.mass_deprovision.fleet_max, percent: 0.0, percent_floor: 0 }
    }

    /// The limit of an app with its own overrides.
    pub fn app_limit(&self, own: Option<&AppMassDeprovision>) -> ScopeLimit {
        let defaults = &self.mass_deprovision;
        ScopeLimit {
            max: own.and_then(|o| o.max).unwrap_or(defaults.app_max),
            percent: own.and_then(|o| o.percent).unwrap_or(defaults.app_percent),
            percent_floor: defaults.percent_floor,
        }
    }

    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if !(1..=2).contains(&self.approvals_required) {
            return Err(ConfigError::invalid(origin, "governance.approvals_required", "must be 1 or 2"));
        }
        if self.hold_expiry < 1000 {
            return Err(ConfigError::invalid(origin, "governance.hold_expiry", "must be at least 1s"));
        }
        let mass = &self.mass_deprovision;
        if mass.window < 1000 {
            return Err(ConfigError::invalid(
                origin,
                "governance.mass_deprovision.window",
                "must be at least 1s",
            ));
        }
        check_percent(origin, "governance.mass_deprovision.app_percent", mass.app_percent)
    }
}

/// `field` must be a share between 0 and 100.
pub(super) fn check_percent(origin: &str, field: &str, percent: f64) -> Result<(), ConfigError> {
    if (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(ConfigError::invalid(origin, field, "must be a percentage from 0 to 100"))
    }
}

impl super::AppConfig {
    /// `high_risk.groups` must name groups the app manages (a typo would
    /// silently leave an admin group ungated); shares are percentages.
    pub(super) fn validate_governance(&self, origin: &str, i: usize) -> Result<(), ConfigError> {
        for (g, name) in self.high_risk.groups.iter().enumerate() {
            if !self.groups.iter().any(|rule| rule.name.eq_ignore_ascii_case(name)) {
                return Err(ConfigError::invalid(
                    origin,
                    format!("apps[{i}].high_risk.groups[{g}]"),
                    format!("`{name}` is not one of the app's [[apps.groups]]"),
                ));
            }
        }
        if let Some(percent) = self.mass_deprovision.as_ref().and_then(|m| m.percent) {
            check_percent(origin, &format!("apps[{i}].mass_deprovision.percent"), percent)?;
        }
        Ok(())
    }

    /// Whether granting `group` in this app is high-risk.
    pub fn is_high_risk_group(&self, group: &str) -> bool {
        self.high_risk.groups.iter().any(|g| g.eq_ignore_ascii_case(group))
    }
}
