//! `scimfleet evidence export|verify` and `scimfleet report leavers`: what
//! auditors get from the evidence records the workers keep in Redis.
//!
//! Exports are signed so that an edited, cut or reordered file is caught by
//! [`verify`]; the leaver report ([`render_leaver_report`]) is for reading,
//! not for proof.
//!
//! An export is JSON Lines: one line per [`EvidenceRecord`](scimfleet_schemas::EvidenceRecord),
//! `{"record":{...},"hmac":"<hex>"}`, where the HMAC-SHA256 covers the exact
//! bytes of the `record` value as written; then one trailer line,
//! `{"trailer":{"records":N,"sha256":"<hex>"},"hmac":"<hex>"}`, whose digest
//! covers every record line in order. A changed byte breaks a line's HMAC;
//! a removed, added or reordered line breaks the trailer; a forged trailer
//! needs the key. The key comes from the environment variable named by
//! `verification.evidence_key_env` and never appears in output or errors.

mod leavers;
mod signing;

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::PersonId;

pub use leavers::{LeaverLine, leaver_lines, render_leaver_report};
pub use signing::{EvidenceError, EvidenceKey, ExportWriter, verify_export};

use crate::AdminError;

/// A `--since` value: RFC 3339, or a date (midnight UTC).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| "expected RFC 3339 (2026-10-01T00:00:00Z) or a date (2026-10-01)".to_owned())
}

/// Writes the evidence of events at or after `since` (of `person` only,
/// when given) as a signed export to `output`, or to `stdout` without one.
/// Returns how many records were written.
pub async fn export(
    config: &Config,
    since: Option<DateTime<Utc>>,
    person: Option<&str>,
    output: Option<&Path>,
    stdout: &mut impl Write,
) -> Result<u64, AdminError> {
    let key = EvidenceKey::from_env(&config.verification)?;
    let person = person.map(PersonId::parse).transpose().map_err(AdminError::Person)?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let out: Box<dyn Write + '_> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(AdminError::file("create", path))?,
        )),
        None => Box::new(stdout),
    };
    let mut writer = ExportWriter::new(out, key);
    let mut failed = None;
    store
        .evidence()
        .scan(since, |record| {
            if failed.is_none() && person.as_ref().is_none_or(|p| *p == record.person) {
                failed = writer.write(&record).err();
            }
        })
        .await?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    let (_out, records) = writer.finish()?;
    Ok(records)
}

/// Checks the export in `file`; writes the verdict to `out` and returns
/// whether every signature, the count and the order hold.
pub fn verify(config: &Config, file: &Path, out: &mut impl Write) -> Result<bool, AdminError> {
    let key = EvidenceKey::from_env(&config.verification)?;
    let text = std::fs::read(file).map_err(AdminError::file("read", file))?;
    match verify_export(&text, &key) {
        Ok(records) => {
            writeln!(out, "{}: {records} records, signatures valid", file.display())?;
            Ok(true)
        }
        Err(error) => {
            writeln!(out, "{}: NOT valid: {error}", file.display())?;
            Ok(false)
        }
    }
}

/// Writes the leaver report of events at or after `since` to `out`.
pub async fn report_leavers(
    config: &Config,
    since: Option<DateTime<Utc>>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let mut records = Vec::new();
    store.evidence().scan(since, |record| records.push(record)).await?;
    render_leaver_report(&leaver_lines(records), out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
