//! `scimfleet probe --app A`: learn what an app's SCIM service really does
//! ([`scimfleet_worker::probe`]: read-only requests, discovery documents
//! read as hints), keep it as the app's probed profile in Redis (unless
//! `--no-save`; workers read it within 30 s) and print it: a table of the
//! profile's keys and the findings, the kept JSON (`--json`), or an
//! `[apps.target]` block to paste into the configuration (`--toml`).
//!
//! Also printed: the app's mapped attributes the service's `/Schemas` does
//! not list (as [`TargetProfile::lists`] decides, which the workers use
//! to leave them unwritten). Everything printed is configuration, counts
//! and verdicts: the probe reads real accounts, but no value of one is
//! ever printed.

use std::io::Write;

use chrono::Utc;
use scimfleet_runtime::config::{AppConfig, TargetProfile};
use scimfleet_runtime::store::ProbedProfile;
use scimfleet_runtime::{Config, Store};
use serde::Serialize;

use crate::AdminError;
use crate::render::{self, Column, Table};

/// How to print the result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// The profile's keys as a table, then the findings.
    #[default]
    Text,
    /// The probed profile as one JSON document.
    Json,
    /// An `[apps.target]` block, preceded by a comment naming the app and time.
    Toml,
}

/// What to probe and what to do with the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The app.
    pub app: String,
    /// How to print the result.
    pub format: Format,
    /// Keep the result as the app's probed profile.
    pub save: bool,
}

/// The `--json` document: the probed profile as kept, and what the
/// command adds (the app, whether it was kept, unsupported attributes).
#[derive(Debug, Serialize)]
struct Printed<'a> {
    app: &'a str,
    #[serde(flatten)]
    probed: &'a ProbedProfile,
    saved: bool,
    unsupported: &'a [String],
}

/// Probes the app `options` names, keeps the result unless told not to,
/// and prints it to `out`; returns what was found.
pub async fn run(
    config: &Config,
    options: &Options,
    out: &mut impl Write,
) -> Result<ProbedProfile, AdminError> {
    let only = [options.app.clone()];
    let apps = scimfleet_worker::select_apps(config, Some(&only))?;
    let Some(&(index, app)) = apps.first() else {
        return Err(AdminError::UnknownApp(options.app.clone()));
    };
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let auth = scimfleet_worker::Auth::from_config(config, index, app)?;
    let client = scimfleet_worker::app_client(config, app, auth, &store)?;
    let probe = scimfleet_worker::probe::probe(&client).await?;
    let probed = ProbedProfile { probed_at: Utc::now(), profile: probe.profile, findings: probe.findings };
    if options.save {
        store.profiles().save(&app.id, &probed).await?;
    }
    let unsupported = unsupported(app, &probed.profile);
    match options.format {
        Format::Json => {
            let printed = Printed {
                app: app.id.as_str(),
                probed: &probed,
                saved: options.save,
                unsupported: &unsupported,
            };
            render::json(&printed, out)?;
        }
        Format::Toml => write_toml(app, &probed, &unsupported, out)?,
        Format::Text => write_text(app, &probed, options.save, &unsupported, out)?,
    }
    out.flush()?;
    Ok(probed)
}

/// The paths of `app`'s mapped attributes `profile`'s `/Schemas` does not
/// list (none when it lists nothing). The login is left out: it is
/// written whatever a schema says.
pub fn unsupported(app: &AppConfig, profile: &TargetProfile) -> Vec<String> {
    profile.unlisted(&app.mapping.attributes()).iter().map(|a| a.path().to_owned()).collect()
}

fn write_toml(
    app: &AppConfig,
    probed: &ProbedProfile,
    unsupported: &[String],
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "# scimfleet probe of {} at {}", app.id, probed.probed_at.to_rfc3339())?;
    for path in unsupported {
        writeln!(out, "# unsupported: {path} (not in the app's /Schemas)")?;
    }
    writeln!(out, "[apps.target]")?;
    write!(out, "{}", probed.profile.to_toml())
}

fn write_text(
    app: &AppConfig,
    probed: &ProbedProfile,
    saved: bool,
    unsupported: &[String],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let kept = if saved { "saved" } else { "not saved (--no-save)" };
    writeln!(out, "probe of {} at {}: {kept}", app.id, probed.probed_at.to_rfc3339())?;
    let table = Table::new([Column::left("key", 20).after(""), Column::left("value", 8).after("  ")]).fit();
    table.write(&rows(&probed.profile), out)?;
    if !probed.findings.is_empty() {
        writeln!(out, "findings:")?;
        for finding in &probed.findings {
            writeln!(out, "  {finding}")?;
        }
    }
    for path in unsupported {
        writeln!(out, "unsupported: {path} (mapped, not in the app's /Schemas: not written)")?;
    }
    Ok(())
}

/// One row per profile key: its value, or `unknown` (the RFC is assumed).
fn rows(profile: &TargetProfile) -> Vec<Vec<String>> {
    let flag = |v: Option<bool>| v.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    let attributes = match profile.user_attributes.len() {
        0 => "unknown".to_owned(),
        n => format!("{n} listed"),
    };
    [
        ("patch_users", flag(profile.patch_users)),
        ("patch_groups", flag(profile.patch_groups)),
        ("filter_users", flag(profile.filter_users)),
        ("filter_external_id", flag(profile.filter_external_id)),
        ("user_name_case_exact", flag(profile.user_name_case_exact)),
        ("group_members", flag(profile.group_members)),
        ("paging", flag(profile.paging)),
        ("etag", flag(profile.etag)),
        ("max_page_size", profile.max_page_size.map_or_else(|| "unknown".to_owned(), |n| n.to_string())),
        ("user_attributes", attributes),
    ]
    .into_iter()
    .map(|(key, value)| vec![key.to_owned(), value])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_row_and_unknown_is_said() {
        let profile =
            TargetProfile { patch_users: Some(false), max_page_size: Some(100), ..Default::default() };
        let rows = rows(&profile);
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0], ["patch_users", "false"]);
        assert_eq!(rows[1], ["patch_groups", "unknown"]);
        assert_eq!(rows[8], ["max_page_size", "100"]);
    }
}
