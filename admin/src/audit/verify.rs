//! `scimfleet audit verify`: the chain check over the stream (with its
//! head) or an export file, with the public keys given or the public half
//! of the configured evidence key. Prints what it checked and the first bad
//! record, naming its `seq` and the case. The whole trail is read into
//! memory first (a re-ordered record is told from a removed one by looking
//! ahead); at a few hundred bytes a record, ten million records need a few GB.

use std::io::Write;
use std::path::{Path, PathBuf};

use scimfleet_runtime::audit::{ChainReport, check_chain};
use scimfleet_runtime::signing::{self, PublicKeys};
use scimfleet_runtime::{Config, Store};
use serde_json::Value;

use crate::AdminError;
use crate::evidence::EvidenceError;
use crate::render::{self, Column, Table};

/// What `audit verify` checks, and how it prints.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// A JSON Lines export to check instead of the stream.
    pub file: Option<&'a Path>,
    /// SPKI PEM public keys to trust; when none, the configured evidence key's.
    pub public_keys: &'a [PathBuf],
    /// One JSON document instead of text.
    pub json: bool,
}

/// Checks the trail; true when it holds. `config` is needed for the
/// stream, and lends its evidence key when no `--public-key` is given.
pub async fn verify(
    config: Option<&Config>,
    options: VerifyOptions<'_>,
    out: &mut impl Write,
) -> Result<bool, AdminError> {
    let keys = keys(config, options.public_keys)?;
    let (records, head) = match (options.file, config) {
        (Some(file), _) => (read_file(file)?, None),
        (None, Some(config)) => {
            let store = Store::connect(&config.redis, &config.namespace).await?;
            let mut records = Vec::new();
            super::scan(&store, |raw| records.push(serde_json::from_str(raw).unwrap_or(Value::Null))).await?;
            (records, Some(store.audit().head().await?.unwrap_or_default()))
        }
        (None, None) => return Err(EvidenceError::Key("--config or --file is needed".into()).into()),
    };
    let report = check_chain(&records, &keys, head.as_deref());
    if options.json {
        render::json(&report, out)?;
    } else {
        write_text(&report, out)?;
    }
    Ok(report.ok())
}

fn keys(config: Option<&Config>, files: &[PathBuf]) -> Result<PublicKeys, AdminError> {
    if !files.is_empty() {
        return Ok(PublicKeys::load(files).map_err(EvidenceError::from)?);
    }
    match config {
        Some(config) if config.verification.evidence_signing_key_file.is_some() => {
            Ok(PublicKeys::new(vec![signing::evidence_signing_key(config)?.public_key()]))
        }
        _ => Ok(PublicKeys::default()),
    }
}

/// The lines of an export; a line that is not JSON reads as `null` and is
/// reported as malformed at its place.
fn read_file(file: &Path) -> Result<Vec<Value>, AdminError> {
    let text = std::fs::read_to_string(file).map_err(AdminError::file("read", file))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect())
}

fn write_text(report: &ChainReport, out: &mut impl Write) -> std::io::Result<()> {
    let table = Table::new([
        Column::right("records", 8).after(""),
        Column::right("signed", 8),
        Column::right("unsigned", 8),
        Column::right("last good seq", 13),
    ]);
    let row = [report.records, report.signed, report.unsigned, report.last_seq].map(|n| n.to_string());
    table.write(&[row.to_vec()], out)?;
    if !report.signatures_checked {
        writeln!(out, "signatures not checked: no public key given and no evidence key configured")?;
    }
    match &report.broken {
        None => writeln!(out, "audit trail intact"),
        Some(broken) => {
            writeln!(
                out,
                "audit trail broken at seq {}: {} ({})",
                broken.seq,
                broken.case.as_str(),
                broken.reason
            )
        }
    }
}
