//! One `[[apps]]` entry: where the app is, how to authenticate, who is in
//! scope, how HR attributes map to SCIM attributes, and which groups a person
//! belongs to there.
//!
//! Scope, mapping and group rules are data here; `scimfleet-policy` evaluates them.
//! They are validated at start-up so that a typo in a mapping path fails the
//! deployment, not a provisioning job at 3 a.m.

use std::collections::BTreeMap;

use scimfleet_schemas::AppId;
use serde::Deserialize;

use super::ConfigError;
use super::mapping::{Mapping, check_attribute_name};
pub(super) use crate::tls::is_loopback;

/// A target SaaS app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Stable id; part of queue names.
    pub id: AppId,
    /// SCIM base URL, e.g. `https://api.example.com/scim/v2`.
    pub base_url: url::Url,
    /// Environment variable holding the bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the bearer token (relative to the config file); watched
    /// and read again when it changes.
    #[serde(default)]
    pub token_file: Option<String>,
    /// OAuth 2.0 client credentials, in place of a static token.
    #[serde(default)]
    pub auth: Option<super::auth::OAuthConfig>,
    /// Client certificate and private CA bundle for this app's TLS connections.
    #[serde(default)]
    pub tls: Option<super::auth::TargetTls>,
    /// How leavers are removed.
    #[serde(default)]
    pub deprovision: Deprovision,
    /// Create a missing group (by displayName) instead of failing the job.
    #[serde(default = "yes")]
    pub create_groups: bool,
    /// What an upsert does with an existing account of the person's
    /// `userName` that no `externalId` binds (one made before scimfleet).
    #[serde(default)]
    pub adopt: Adopt,
    /// Permit `http://` for a loopback host (local test targets only).
    #[serde(default)]
    pub allow_insecure_loopback: bool,
    /// Jobs in flight for this app; the `[worker]` default otherwise.
    #[serde(default)]
    pub concurrency: Option<u16>,
    /// Requests per second this app accepts, shared by every worker replica.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Requests that may go at once within the rate (default 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// A `[[rate_groups]]` id whose limit this app shares with other apps.
    #[serde(default)]
    pub rate_group: Option<String>,
    /// Attempts per job; the `[worker]` default otherwise.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Job age limit; the `[worker]` default otherwise.
    #[serde(default)]
    pub max_age_ms: Option<u64>,
    /// Re-check delays; the `[verification]` default otherwise.
    #[serde(default, deserialize_with = "some_durations_ms")]
    pub recheck: Option<Vec<u64>>,
    /// Remediate failed verifications; the `[verification]` default otherwise.
    #[serde(default)]
    pub remediate: Option<bool>,
    /// Remediations before dead-lettering; the `[verification]` default otherwise.
    #[serde(default)]
    pub max_remediations: Option<u32>,
    /// Who gets an account.
    #[serde(default)]
    pub scope: ScopeRule,
    /// SCIM attribute path ← HR attribute or template.
    #[serde(default = "Mapping::standard")]
    pub mapping: Mapping,
    /// Group membership rules.
    #[serde(default)]
    pub groups: Vec<GroupRule>,
    /// What granting in this app takes step-up or approval.
    #[serde(default)]
    pub high_risk: super::HighRisk,
    /// This app's mass-deprovision limits, over the `[governance]` defaults.
    #[serde(default)]
    pub mass_deprovision: Option<super::AppMassDeprovision>,
    /// A vendor profile (`aws-iam-identity-center`, `slack`, ...): what the
    /// target's SCIM service is documented to do.
    #[serde(default)]
    pub profile: Option<String>,
    /// Target profile keys of this app, over the vendor profile and the
    /// last probe (see `TargetProfile`).
    #[serde(default)]
    pub target: super::TargetProfile,
    /// Record the writes each job would send (`scimfleet dry-run`) instead
    /// of sending them; the app is only read.
    #[serde(default)]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

/// How a leaver is removed from an app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deprovision {
    /// `PATCH active=false`: reversible, keeps the app's audit trail.
    #[default]
    Deactivate,
    /// `DELETE` the account.
    Delete,
}

/// What an upsert does with an existing account of the person's `userName`
/// that no `externalId` binds. An account bound to someone else is never
/// taken, whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adopt {
    /// Take it over: write our `externalId` and the mapped attributes.
    #[default]
    Link,
    /// Leave it alone: no write, the job succeeds (recorded in the audit trail).
    Skip,
    /// Refuse: dead-letter the job (`identity_conflict`) for an operator.
    Fail,
}

impl Adopt {
    /// The setting's name, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Skip => "skip",
            Self::Fail => "fail",
        }
    }
}

/// Attribute conditions: every named attribute must have one of the listed values.
/// `status` and `person_id` may be named too.
pub type Condition = BTreeMap<String, Vec<String>>;

/// Who is in an app's scope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// Must match; empty means everyone.
    #[serde(default)]
    pub include: Condition,
    /// Must not match, when given.
    #[serde(default)]
    pub exclude: Option<Condition>,
}

/// A group the person is a member of in the app when the rule holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// The group's `displayName` in the app.
    pub name: String,
    /// Attribute condition, when given.
    #[serde(default)]
    pub when: Option<Condition>,
    /// HR groups, any of which the person must hold, when given.
    #[serde(default)]
    pub hr_groups: Vec<String>,
}

impl AppConfig {
    /// What the configuration says of the target: the vendor profile with
    /// the app's `[apps.target]` keys over it (a probe goes in between:
    /// [`AppConfig::profile_with`]).
    pub fn declared_profile(&self) -> super::TargetProfile {
        self.profile_with(&super::TargetProfile::default())
    }

    /// The target profile with `probed` (the last probe) between the vendor
    /// profile and the app's own keys.
    pub fn profile_with(&self, probed: &super::TargetProfile) -> super::TargetProfile {
        let vendor = self.profile.as_deref().and_then(super::vendors::vendor).map(|v| (v.profile)());
        vendor.unwrap_or_default().overlay(probed).overlay(&self.target)
    }

    /// The app's re-check delays in milliseconds, ascending.
    pub fn recheck_ms<'a>(&'a self, defaults: &'a super::VerificationConfig) -> &'a [u64] {
        self.recheck.as_deref().unwrap_or(&defaults.recheck)
    }

    /// Jobs in flight for this app.
    pub fn concurrency_or(&self, default: u16) -> u16 {
        self.concurrency.unwrap_or(default)
    }

    pub(super) fn validate(&self, origin: &str, i: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("apps[{i}].{name}");
        self.validate_credentials(origin, i)?;
        self.validate_base_url(origin, &field("base_url"))?;
        if self.rate_per_second.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(ConfigError::invalid(origin, field("rate_per_second"), "must be a positive number"));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::invalid(origin, field("burst"), "must be at least 1"));
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::invalid(origin, field("max_attempts"), "must be at least 1"));
        }
        if self.concurrency == Some(0) {
            return Err(ConfigError::invalid(origin, field("concurrency"), "must be at least 1"));
        }
        if let Some(name) = &self.profile
            && super::vendors::vendor(name).is_none()
        {
            let known: Vec<&str> = super::vendors::VENDORS.iter().map(|v| v.name).collect();
            let why = format!("unknown vendor profile `{name}` (known: {})", known.join(", "));
            return Err(ConfigError::invalid(origin, field("profile"), why));
        }
        let declared = self.declared_profile();
        if let Some(attr) = self.mapping.attributes().into_iter().find(|a| declared.lists(a) == Some(false)) {
            return Err(ConfigError::invalid(
                origin,
                field(&format!("mapping.\"{attr}\"")),
                "the target does not list this attribute (target.user_attributes, from its /Schemas)",
            ));
        }
        if self.mapping.user_name().is_none() {
            return Err(ConfigError::invalid(origin, field("mapping"), "must map `userName`"));
        }
        let conditions = std::iter::once(("scope.include", &self.scope.include))
            .chain(self.scope.exclude.iter().map(|c| ("scope.exclude", c)));
        for (name, condition) in conditions {
            if let Some((key, _)) =
                condition.iter().find(|(k, v)| check_attribute_name(k).is_err() || v.is_empty())
            {
                return Err(ConfigError::invalid(
                    origin,
                    field(name),
                    format!("`{key}` needs an attribute name and at least one value"),
                ));
            }
        }
        for (g, rule) in self.groups.iter().enumerate() {
            if rule.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    origin,
                    field(&format!("groups[{g}].name")),
                    "must not be empty",
                ));
            }
            if self.groups[..g].iter().any(|other| other.name.eq_ignore_ascii_case(&rule.name)) {
                return Err(ConfigError::invalid(
                    origin,
                    field(&format!("groups[{g}].name")),
                    format!("duplicate group `{}`", rule.name),
                ));
            }
        }
        Ok(())
    }

    fn validate_base_url(&self, origin: &str, field: &str) -> Result<(), ConfigError> {
        let url = &self.base_url;
        let loopback = is_loopback(url);
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback && self.allow_insecure_loopback => Ok(()),
            "http" if loopback => {
                Err(ConfigError::invalid(origin, field, "http:// needs allow_insecure_loopback = true"))
            }
            _ => Err(ConfigError::invalid(
                origin,
                field,
                "must be https:// (http:// only for loopback test targets)",
            )),
        }?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(
                origin,
                field,
                "credentials belong in token_env, token_file or [apps.auth], not the URL",
            ));
        }
        Ok(())
    }
}

fn some_durations_ms<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u64>>, D::Error> {
    super::durations_ms(deserializer).map(Some)
}

/// `[[rate_groups]]`: one rate shared by every app that names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateGroup {
    /// Referred to by an app's `rate_group`.
    pub id: String,
    /// Requests per second across the group's apps and every replica.
    pub rate_per_second: f64,
    /// Requests that may go at once (default 1).
    #[serde(default)]
    pub burst: Option<u32>,
}
