//! `scimfleet evidence export|verify|keygen` and `scimfleet report leavers`:
//! what auditors get from the evidence records the workers keep in Redis.
//!
//! Exports are signed so that an edited, cut or reordered file is caught by
//! [`verify`]; the leaver report ([`render_leaver_report`]) is for reading,
//! not for proof.
//!
//! An export is JSON Lines. One line per [`EvidenceRecord`], oldest event
//! first: `{"record":{...},"chain":"<hex>"}`. The record is as the worker
//! wrote it, with the worker's `key_id` and Ed25519 `signature` (over the
//! canonical JSON of the record without the signature; see
//! `scimfleet_runtime::signing`); a record written before workers signed is
//! marked `"unsigned":true` and is never reported as signed. `chain` is the
//! SHA-256 of the previous line's chain and this record's JSON, so a removed,
//! added, duplicated or moved line breaks it. Then one trailer line,
//! `{"trailer":{"format":..,"records":N,"chain":"<hex>","key_id":..,"exported_at":..},"signature":".."}`,
//! signed with the export key. Checking needs only public keys (several, for a
//! rotation), so whoever can verify an export cannot forge one; making one
//! needs a private key, so `evidence export` runs where a worker's key is.
//!
//! Exports made before this format carry an HMAC-SHA256 per line instead
//! (`{"record":..,"hmac":..}`); [`verify`] recognises them and checks them
//! with the old key during their retention ([`verify_hmac_export`]).

mod export;
mod hmac;
mod leavers;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use scimfleet_runtime::signing::{self, KeyId, PublicKeys, SigningError, SigningKey};
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::{EvidenceRecord, PersonId};

pub use export::{ExportWriter, FORMAT, Verified, verify_export};
pub use hmac::{EvidenceKey, verify_hmac_export};
pub use leavers::{LeaverLine, leaver_lines, render_leaver_report};

use crate::AdminError;

/// Why an export could not be made or does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// A key is missing, unreadable or not usable.
    #[error("the evidence key: {0}")]
    Key(String),
    /// A key file is not a usable key.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// Reading or writing failed.
    #[error("cannot read or write the export")]
    Io(#[from] std::io::Error),
    /// A line does not verify; `line` counts from 1.
    #[error("line {line}: {reason}")]
    Invalid {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

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
/// when given) as an export signed with `key` to `output`, or to `stdout`
/// without one. Returns how many records were written.
pub async fn export(
    config: &Config,
    since: Option<DateTime<Utc>>,
    person: Option<&str>,
    key: SigningKey,
    output: Option<&Path>,
    stdout: &mut (impl Write + Send),
) -> Result<u64, AdminError> {
    let person = person.map(PersonId::parse).transpose().map_err(AdminError::Person)?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    // Send, so that a server (the console) can await the export.
    let out: Box<dyn Write + Send + '_> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(AdminError::file("create", path))?,
        )),
        None => Box::new(stdout),
    };
    let mut writer = ExportWriter::new(out, key);
    let mut failed = None;
    // Written as stored (not through this version's type), so a record
    // with fields a newer worker added keeps a valid signature.
    store
        .evidence()
        .scan_json(since, |raw| {
            if failed.is_some() {
                return;
            }
            let record = serde_json::from_str::<serde_json::Value>(raw)
                .ok()
                .filter(|r| serde_json::from_value::<EvidenceRecord>(r.clone()).is_ok());
            let Some(record) = record else {
                failed = Some(AdminError::Store(StoreError::Corrupt { what: "evidence record" }));
                return;
            };
            let of_person = person
                .as_ref()
                .is_none_or(|p| record.get("person").and_then(|v| v.as_str()) == Some(p.as_str()));
            if of_person {
                failed = writer.write_value(&record).err().map(AdminError::from);
            }
        })
        .await?;
    if let Some(error) = failed {
        return Err(error);
    }
    let (_out, records) = writer.finish(Utc::now())?;
    Ok(records)
}

/// The key `evidence export` signs with: `file` when given, else the
/// configured `verification.evidence_signing_key_file`.
pub fn export_key(config: &Config, file: Option<&Path>) -> Result<SigningKey, AdminError> {
    match file {
        Some(file) => Ok(SigningKey::load(file).map_err(EvidenceError::from)?),
        None => Ok(signing::evidence_signing_key(config)?),
    }
}

/// The keys `evidence verify` may use: public keys for Ed25519 exports, and
/// the environment variable holding the HMAC key of legacy exports.
#[derive(Debug, Clone, Default)]
pub struct VerifyKeys {
    /// SPKI PEM files of the public keys to trust.
    pub public_keys: Vec<PathBuf>,
    /// The variable holding the legacy HMAC key, when one was named.
    pub hmac_key_env: Option<String>,
}

/// Checks the export in `file`, whichever its format (Ed25519, or a legacy
/// HMAC export); writes the verdict, naming the format, to `out` and
/// returns whether every signature, the count and the order hold. A key
/// that is missing or unusable for the file's format is an error.
pub fn verify(file: &Path, keys: &VerifyKeys, out: &mut impl Write) -> Result<bool, AdminError> {
    let text = std::fs::read(file).map_err(AdminError::file("read", file))?;
    let name = file.display();
    if is_legacy(&text) {
        let Some(var) = &keys.hmac_key_env else {
            let reason =
                "a legacy HMAC export: name the variable holding its key with --hmac-key-env (or --config)";
            return Err(EvidenceError::Key(reason.into()).into());
        };
        let key = EvidenceKey::from_env(var)?;
        let verdict = verify_hmac_export(&text, &key);
        return report(
            out,
            &name,
            "legacy HMAC-SHA256 export",
            verdict.map(|n| format!("{n} records, signatures valid (key from {var})")),
        );
    }
    if keys.public_keys.is_empty() {
        let reason = "an Ed25519 export: give the public key(s) to trust with --public-key";
        return Err(EvidenceError::Key(reason.into()).into());
    }
    let public = PublicKeys::load(&keys.public_keys).map_err(EvidenceError::from)?;
    let verdict = verify_export(&text, &public).map(|v| describe(&v));
    report(out, &name, "Ed25519 export", verdict)
}

fn report(
    out: &mut impl Write,
    name: &impl std::fmt::Display,
    format: &str,
    verdict: Result<String, EvidenceError>,
) -> Result<bool, AdminError> {
    match verdict {
        Ok(summary) => {
            writeln!(out, "{name}: {format}: {summary}")?;
            Ok(true)
        }
        Err(error) => {
            writeln!(out, "{name}: {format}: NOT valid: {error}")?;
            Ok(false)
        }
    }
}

fn describe(verified: &Verified) -> String {
    let signed: u64 = verified.signed.values().sum();
    let mut text = format!(
        "{} records, signatures valid; signed by key {} at {}; {signed} records signed by workers",
        verified.records,
        verified.key,
        verified.exported_at.to_rfc3339(),
    );
    if signed > 0 {
        let ids: Vec<_> = verified.signed.keys().map(KeyId::as_str).collect();
        text.push_str(&format!(" (keys {})", ids.join(", ")));
    }
    if verified.unsigned > 0 {
        text.push_str(&format!(", {} unsigned (written before workers signed)", verified.unsigned));
    }
    text
}

/// Whether `text` is a legacy export: its first line carries an `hmac`.
fn is_legacy(text: &[u8]) -> bool {
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(first).is_ok_and(|line| line.get("hmac").is_some())
}

/// `evidence keygen`: writes a new key pair into `dir` (created when
/// missing), the private key with mode 0600; never overwrites a file.
/// Returns the key id and the two paths.
pub fn keygen(dir: &Path) -> Result<(KeyId, PathBuf, PathBuf), AdminError> {
    std::fs::create_dir_all(dir).map_err(AdminError::file("create", dir))?;
    let key = SigningKey::generate();
    let private = dir.join(format!("evidence-signing-{}.pem", key.id()));
    let public = dir.join(format!("evidence-public-{}.pem", key.id()));
    write_new(&private, key.to_pem().expose(), 0o600)?;
    write_new(&public, &key.public_key().to_pem(), 0o644)?;
    Ok((key.id().clone(), private, public))
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), AdminError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(AdminError::file("create", path))?;
    file.write_all(text.as_bytes())?;
    Ok(file.sync_all()?)
}

/// Writes the leaver report of events at or after `since` to `out`.
pub async fn report_leavers(
    config: &Config,
    since: Option<DateTime<Utc>>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    render_leaver_report(&leavers(config, since).await?, out)?;
    out.flush()?;
    Ok(())
}

/// The leaver report's lines: per person who left since `since`, where
/// each app's deprovision stands (oldest event first).
pub async fn leavers(config: &Config, since: Option<DateTime<Utc>>) -> Result<Vec<LeaverLine>, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let mut records = Vec::new();
    store.evidence().scan(since, |record| records.push(record)).await?;
    Ok(leaver_lines(records))
}

/// The person whose pseudonym (under `pseudonyms`) is `pseudonym`, and
/// every evidence record of theirs, oldest first, from one scan of the
/// evidence; `None` when no record is theirs.
pub async fn records_by_pseudonym(
    config: &Config,
    pseudonyms: &Pseudonymizer,
    pseudonym: &str,
) -> Result<Option<(PersonId, Vec<EvidenceRecord>)>, AdminError> {
    let store = Store::connect(&config.redis, &config.namespace).await?;
    // One pseudonym per person, not per record: a leaver has a record per app.
    let mut theirs: std::collections::HashMap<PersonId, bool> = std::collections::HashMap::new();
    let mut found: Option<(PersonId, Vec<EvidenceRecord>)> = None;
    store
        .evidence()
        .scan(None, |record| {
            let is_theirs = *theirs
                .entry(record.person.clone())
                .or_insert_with(|| pseudonyms.person(&record.person) == pseudonym);
            if is_theirs {
                found.get_or_insert_with(|| (record.person.clone(), Vec::new())).1.push(record);
            }
        })
        .await?;
    Ok(found)
}

#[cfg(test)]
mod tests;
