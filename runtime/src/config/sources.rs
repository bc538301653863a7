//! `[[sources]]`: systems that feed people into the fleet in their own
//! format, turned into scimfleet's person events by scimfleet itself.
//!
//! ```toml
//! [[sources]]
//! id = "workday"
//! kind = "hr-file"                     # `scimfleet import --source workday FILE`
//! format = "csv"                       # or "jsonl"
//! person_id = "Employee_ID"            # the column holding the HR id
//! status = { column = "Worker_Status", terminated = ["Terminated"], suspended = ["On Leave"] }
//! effective_at = "Effective_Date"      # optional: when a change takes effect
//! time_zone = "America/Los_Angeles"    # for dates and times written without an offset
//! groups = { column = "Org_Units", separator = ";" }
//! [sources.attributes]                 # person attribute <- column
//! userName = "Work_Email"
//! givenName = "Legal_First_Name"
//! familyName = "Legal_Last_Name"
//! department = "Department"
//! ```
//!
//! A column a source names and a file lacks stops the import naming the
//! column; a value is never echoed (it is HR data).

mod push;
mod ssf;

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

pub use push::{GRAPH_MAX_LIFETIME_MS, PushSource, SourceApi, SourceOAuth, Subscription};
pub use ssf::{SsfPoll, SsfSource};

/// One configured source.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// HR extracts (Workday-style worker files) imported with `scimfleet import`.
    HrFile(HrFileSource),
    /// Okta Event Hooks.
    Okta(PushSource),
    /// Microsoft Entra ID through Microsoft Graph change notifications and delta queries.
    Entra(PushSource),
    /// PingOne webhooks (`ACTIVITY` format).
    Pingone(PushSource),
    /// Google Workspace Directory push notifications (`users.watch`).
    Google(PushSource),
    /// A Shared Signals Framework receiver (RISC, CAEP).
    Ssf(SsfSource),
}

impl SourceConfig {
    /// The source's id.
    pub fn id(&self) -> &str {
        match self {
            Self::HrFile(source) => &source.id,
            Self::Okta(source) | Self::Entra(source) | Self::Pingone(source) | Self::Google(source) => {
                &source.id
            }
            Self::Ssf(source) => &source.id,
        }
    }

    /// The kind, as written in `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HrFile(_) => "hr-file",
            Self::Okta(_) => "okta",
            Self::Entra(_) => "entra",
            Self::Pingone(_) => "pingone",
            Self::Google(_) => "google",
            Self::Ssf(_) => "ssf",
        }
    }

    /// Whether the intake serves this source at `/v1/sources/{id}`.
    pub fn is_served(&self) -> bool {
        !matches!(self, Self::HrFile(_))
    }
}

/// 1-64 letters, digits, `-` and `_`: a source id, safe in a URL path and a key.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The layout of a file format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    #[default]
    Csv,
    /// One JSON object per line, keys as columns.
    Jsonl,
}

/// An HR file source: which columns hold what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrFileSource {
    /// Names the source in events (`source`), keys and logs.
    pub id: String,
    /// The file's format.
    #[serde(default)]
    pub format: FileFormat,
    /// The CSV field separator (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// The column holding the person's HR id.
    pub person_id: String,
    /// Person attribute ← column.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The column saying whether the person still works here; everyone in
    /// the file is active when absent.
    #[serde(default)]
    pub status: Option<StatusColumn>,
    /// The column holding when a change takes effect (RFC 3339, or a date
    /// or date-time without offset, read in `time_zone`).
    #[serde(default)]
    pub effective_at: Option<String>,
    /// IANA time zone of dates and times written without an offset (default UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The column listing the person's HR groups.
    #[serde(default)]
    pub groups: Option<ListColumn>,
}

/// A status column and the values that mean terminated or suspended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusColumn {
    /// The column.
    pub column: String,
    /// Values meaning the person left (compared ignoring case).
    #[serde(default)]
    pub terminated: Vec<String>,
    /// Values meaning the person's access is suspended (compared ignoring case).
    #[serde(default)]
    pub suspended: Vec<String>,
}

/// A column holding a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListColumn {
    /// The column.
    pub column: String,
    /// What separates the items (default `;`).
    #[serde(default)]
    pub separator: Option<String>,
}

impl HrFileSource {
    pub(super) fn validate(&self, origin: &str, i: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("sources[{i}].{name}");
        if !valid_id(&self.id) {
            return Err(ConfigError::invalid(origin, field("id"), "letters, digits, `-` and `_` only"));
        }
        if self.person_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                origin,
                field("person_id"),
                "must name the column of the HR id",
            ));
        }
        if let Some(zone) = &self.time_zone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(ConfigError::invalid(
                origin,
                field("time_zone"),
                format!("`{zone}` is not an IANA time zone"),
            ));
        }
        if let Some(status) = &self.status
            && status.terminated.is_empty()
            && status.suspended.is_empty()
        {
            return Err(ConfigError::invalid(
                origin,
                field("status"),
                "list the `terminated` or `suspended` values",
            ));
        }
        for name in self.attributes.keys() {
            let ok = super::mapping::check_attribute_name(name).is_ok();
            if !ok || ["status", "person_id"].contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    origin,
                    field(&format!("attributes.{name}")),
                    "not an attribute name",
                ));
            }
        }
        Ok(())
    }

    /// The time zone of offset-less dates and times.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
    }
}

/// Checks every source; ids must be unique.
pub(super) fn validate(sources: &[SourceConfig], origin: &str) -> Result<(), ConfigError> {
    for (i, source) in sources.iter().enumerate() {
        match source {
            SourceConfig::HrFile(file) => file.validate(origin, i)?,
            SourceConfig::Okta(push)
            | SourceConfig::Entra(push)
            | SourceConfig::Pingone(push)
            | SourceConfig::Google(push) => push.validate(origin, i, source.kind())?,
            SourceConfig::Ssf(ssf) => ssf.validate(origin, i)?,
        }
        if sources[..i].iter().any(|other| other.id() == source.id()) {
            return Err(ConfigError::invalid(
                origin,
                format!("sources[{i}].id"),
                format!("duplicate source `{}`", source.id()),
            ));
        }
    }
    Ok(())
}
