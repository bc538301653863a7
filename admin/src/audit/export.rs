//! `scimfleet audit export`: records as stored, one per line, for an
//! auditor (filtered by time and person), or rolled into one file a day
//! (`--dir`), resuming after the last `seq` already exported there.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use scimfleet_runtime::{Config, Store};
use serde_json::Value;

use crate::AdminError;

/// Writes the records chained at or after `since` about `person` (an HR id,
/// pseudonymised with the configured key to match) to `output`, or `out`.
/// Returns how many.
pub async fn export(
    config: &Config,
    since: Option<DateTime<Utc>>,
    person: Option<&str>,
    output: Option<&Path>,
    out: &mut impl Write,
) -> Result<u64, AdminError> {
    let pseudonym = crate::pseudonym_of(config, person)?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let mut file = match output {
        Some(path) => Some(std::fs::File::create(path).map_err(AdminError::file("create", path))?),
        None => None,
    };
    let (mut written, mut failed) = (0, None);
    super::scan(&store, |raw| {
        let Ok(record) = serde_json::from_str::<Value>(raw) else { return };
        let after = since.is_none_or(|since| at(&record).is_some_and(|at| at >= since));
        let about =
            pseudonym.as_deref().is_none_or(|p| record.get("person").and_then(Value::as_str) == Some(p));
        if failed.is_some() || !after || !about {
            return;
        }
        let line = match &mut file {
            Some(file) => writeln!(file, "{raw}"),
            None => writeln!(out, "{raw}"),
        };
        match line {
            Ok(()) => written += 1,
            Err(error) => failed = Some(error),
        }
    })
    .await?;
    failed.map_or(Ok(written), |error| Err(error.into()))
}

/// Appends the records not yet in `dir` to `dir/audit-YYYY-MM-DD.jsonl`
/// (by the day each was chained), after the highest `seq` the files hold.
/// Returns how many were appended.
pub async fn export_dir(config: &Config, dir: &Path) -> Result<u64, AdminError> {
    std::fs::create_dir_all(dir).map_err(AdminError::file("create", dir))?;
    let done = last_exported(dir)?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let mut days: BTreeMap<String, Vec<String>> = BTreeMap::new();
    super::scan(&store, |raw| {
        let Ok(record) = serde_json::from_str::<Value>(raw) else { return };
        let seq = record.get("seq").and_then(Value::as_u64).unwrap_or_default();
        if seq > done {
            let day = at(&record).map_or_else(|| "unknown".to_owned(), |t| t.format("%Y-%m-%d").to_string());
            days.entry(day).or_default().push(raw.to_owned());
        }
    })
    .await?;
    let mut written = 0;
    for (day, lines) in days {
        let path = dir.join(format!("audit-{day}.jsonl"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(AdminError::file("open", &path))?;
        for line in &lines {
            writeln!(file, "{line}")?;
        }
        file.sync_all()?;
        written += lines.len() as u64;
    }
    Ok(written)
}

/// The highest `seq` in the `audit-*.jsonl` files of `dir` (0 when none).
fn last_exported(dir: &Path) -> Result<u64, AdminError> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(AdminError::file("read", dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    let mut last = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(AdminError::file("read", &file))?;
        let seqs = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()?.get("seq")?.as_u64());
        last = last.max(seqs.max().unwrap_or_default());
    }
    Ok(last)
}

/// When a record was chained.
fn at(record: &Value) -> Option<DateTime<Utc>> {
    let at = record.get("at")?.as_str()?;
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}
