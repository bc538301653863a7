//! `scimfleet verify sweep`: compare every account of each app with the
//! person registry; report, and optionally queue the fixing jobs.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::{Store, telemetry};
use scimfleet_worker::sweep::{self, Finding, Sweep, SweepSummary};

use crate::ConfigArg;

#[derive(Debug, Subcommand)]
pub(crate) enum VerifyCommand {
    /// Page through every account of each app and classify it against the
    /// person registry: orphan, unknown, drift; then members with no account
    /// (missing).
    Sweep {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this app; every configured app by default.
        #[arg(long)]
        app: Option<String>,
        /// Queue the jobs that fix orphans, drift and missing accounts
        /// (unknown accounts are only reported).
        #[arg(long)]
        remediate: bool,
        /// Also write the findings as JSON Lines, one per line, then a summary line.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

pub(crate) async fn verify(command: VerifyCommand) -> anyhow::Result<()> {
    let VerifyCommand::Sweep { config, app, remediate, json } = command;
    let config = config.load()?;
    telemetry::init_logging(config.telemetry.log_format, "warn,lapin=error");
    let only = app.map(|a| vec![a]);
    let apps = scimfleet_worker::select_apps(&config, only.as_deref())?;
    let store = Store::connect(&config.redis.url, &config.namespace).await?;
    let topology = Topology::of(&config);
    let broker = if remediate {
        let connection = broker::connect(&config.broker.url, "scimfleet-sweep").await?;
        let publisher = Publisher::open(&connection).await?;
        let ids: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
        // The queues must exist, or a mandatory publish comes back unroutable.
        topology.declare(publisher.channel(), &ids).await?;
        Some((connection, publisher))
    } else {
        None
    };
    let mut report: Option<Box<dyn std::io::Write + Send>> = match &json {
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ))),
        None => None,
    };
    let run_id = format!("{}-{}", chrono::Utc::now().timestamp_millis(), std::process::id());
    let started = std::time::Instant::now();
    let mut summaries: Vec<(String, SweepSummary)> = Vec::new();
    for (index, app) in apps {
        let token = app.token(&config.origin, index, &config.base_dir)?;
        let client = scimfleet_worker::app_client(&config, index, app, token, &store)?;
        let sweep = Sweep {
            client: &client,
            store: &store,
            app,
            run_id: &run_id,
            remediate: broker.as_ref().map(|(_, publisher)| (publisher, &topology)),
        };
        let mut write = |finding: &Finding| -> std::io::Result<()> {
            if let Some(out) = report.as_mut() {
                serde_json::to_writer(&mut *out, finding)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        };
        let summary = sweep::sweep_app(&sweep, &mut write).await?;
        summaries.push((app.id.to_string(), summary));
    }
    if let Some(mut out) = report {
        let apps: Vec<serde_json::Value> = summaries
            .iter()
            .map(|(app, s)| {
                let mut value = serde_json::to_value(s).unwrap_or_default();
                value["app"] = app.as_str().into();
                value
            })
            .collect();
        serde_json::to_writer(&mut out, &serde_json::json!({ "summary": apps }))?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    if let Some((connection, _)) = broker {
        let _closed = connection.close(200, "sweep done".into()).await;
    }
    let mut out = std::io::stdout().lock();
    render(&summaries, remediate, &mut out)?;
    // Peak memory of the whole run, so bounded memory can be checked from outside.
    writeln!(
        out,
        "swept in {:.1} s, peak RSS {}",
        started.elapsed().as_secs_f64(),
        peak_rss_kb().map_or_else(|| "unknown".to_owned(), |kb| format!("{kb} kB"))
    )?;
    out.flush()?;
    Ok(())
}

fn render(
    summaries: &[(String, SweepSummary)],
    remediate: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write!(
        out,
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "app", "seen", "ok", "orphan", "unknown", "drift", "missing"
    )?;
    if remediate {
        write!(out, " {:>8}", "queued")?;
    }
    writeln!(out)?;
    for (app, s) in summaries {
        write!(
            out,
            "{app:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            s.seen, s.ok, s.orphan, s.unknown, s.drift, s.missing
        )?;
        if remediate {
            write!(out, " {:>8}", s.remediations)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// This process's peak resident set size (`VmHWM`), on Linux.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_line_per_app() {
        let summary =
            SweepSummary { seen: 5, ok: 2, orphan: 1, unknown: 1, drift: 1, missing: 1, remediations: 3 };
        let mut out = Vec::new();
        render(&[("git".to_owned(), summary)], true, &mut out).expect("rendered");
        let text = String::from_utf8(out).expect("utf-8");
        let line = text.lines().nth(1).expect("a line for git");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["git", "5", "2", "1", "1", "1", "1", "3"]);
    }

    #[test]
    fn peak_rss_is_readable_here() {
        assert!(peak_rss_kb().is_some_and(|kb| kb > 0));
    }
}
