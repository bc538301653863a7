//! `scimfleet evidence export|verify` and `scimfleet report leavers`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use scimfleet_runtime::evidence::{self, EvidenceKey, ExportWriter};
use scimfleet_runtime::{Store, telemetry};
use scimfleet_schemas::PersonId;

use crate::ConfigArg;

#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceCommand {
    /// Write deprovisioning evidence as signed JSON Lines.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events at or after this time (RFC 3339, or a date: 2026-10-01).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Only this person (HR id).
        #[arg(long)]
        person: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Check an export's signatures, count and order; exits non-zero on any edit.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// The export file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Per leaver and app: verified, pending or failed, and the time from the
    /// HR event to verified; then percentiles per app.
    Leavers {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events at or after this time (RFC 3339, or a date: 2026-10-01).
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
    },
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| "expected RFC 3339 (2026-10-01T00:00:00Z) or a date (2026-10-01)".to_owned())
}

pub(crate) async fn evidence(command: EvidenceCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        EvidenceCommand::Export { config, since, person, output } => {
            let config = config.load()?;
            telemetry::init_logging(config.telemetry.log_format, "warn");
            let key = EvidenceKey::from_env(&config.verification)?;
            let person = person.map(PersonId::parse).transpose().context("--person")?;
            let store = Store::connect(&config.redis.url, &config.namespace).await?;
            let out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
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
            eprintln!("{records} evidence records exported");
        }
        EvidenceCommand::Verify { config, file } => {
            let config = config.load()?;
            let key = EvidenceKey::from_env(&config.verification)?;
            let text = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            match evidence::verify_export(&text, &key) {
                Ok(records) => println!("{}: {records} records, signatures valid", file.display()),
                Err(error) => {
                    println!("{}: NOT valid: {error}", file.display());
                    return Ok(std::process::ExitCode::FAILURE);
                }
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub(crate) async fn report(command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Leavers { config, since } = command;
    let config = config.load()?;
    telemetry::init_logging(config.telemetry.log_format, "warn");
    let store = Store::connect(&config.redis.url, &config.namespace).await?;
    let mut records = Vec::new();
    store.evidence().scan(since, |record| records.push(record)).await?;
    let lines = evidence::leaver_lines(records);
    let mut out = std::io::stdout().lock();
    evidence::render_leaver_report(&lines, &mut out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_takes_a_time_or_a_date() {
        let date = super::parse_since("2026-10-01").expect("a date");
        assert_eq!(date.to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert!(super::parse_since("2026-10-01T12:00:00+02:00").is_ok());
        assert!(super::parse_since("last week").is_err());
    }
}
