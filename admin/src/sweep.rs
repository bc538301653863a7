//! `scimfleet verify sweep`: compare every account of each app with the
//! person registry; report, and optionally queue the fixing jobs. The
//! engine is the worker's ([`scimfleet_worker::sweep`]); this runs it on
//! demand, one app after the other.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use lapin::Connection;
use scimfleet_runtime::audit::AuditLog;
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::config::AppConfig;
use scimfleet_runtime::guard::Guard;
use scimfleet_runtime::telemetry::Pseudonymizer;
use scimfleet_runtime::{Config, Store};
use scimfleet_worker::sweep::{self, Finding, Remediate, Sweep, SweepSummary};

use crate::AdminError;
use crate::render::{self, Column, Table};

/// What to sweep and what to do with the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Only this app; every configured app when `None`.
    pub app: Option<String>,
    /// Queue the jobs that fix orphans, drift and missing accounts
    /// (unknown accounts are only reported).
    pub remediate: bool,
    /// Also write the findings here as JSON Lines, then a summary line.
    pub json: Option<PathBuf>,
}

/// Sweeps the apps `options` names, one after the other; writes the table
/// of counts per app to `out`, then the run's duration and peak memory.
pub async fn run(config: &Config, options: &Options, out: &mut impl Write) -> Result<(), AdminError> {
    let only = options.app.clone().map(|a| vec![a]);
    let apps = scimfleet_worker::select_apps(config, only.as_deref())?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let topology = Topology::of(config);
    let broker = match options.remediate {
        true => Some(open_publisher(config, &topology).await?),
        false => None,
    };
    let mut report = match &options.json {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(AdminError::file("create", path))?)),
        None => None,
    };
    let guarded = match options.remediate {
        true => Some((
            AuditLog::for_operator(config, store.clone())?,
            Pseudonymizer::new(&config.pseudonym_key()?),
        )),
        false => None,
    };
    let run_id = format!("{}-{}", chrono::Utc::now().timestamp_millis(), std::process::id());
    let started = std::time::Instant::now();
    let mut summaries: Vec<(String, SweepSummary)> = Vec::new();
    for (index, app) in apps {
        let sweep = Target { config, index, app, store: &store, run_id: &run_id };
        let remediate =
            broker.as_ref().zip(guarded.as_ref()).map(|((_, publisher), (audit, pseudonyms))| Remediate {
                publisher,
                topology: &topology,
                guard: Guard { store: &store, audit, governance: &config.governance },
                pseudonyms,
            });
        let summary = sweep.run(remediate, report.as_mut()).await?;
        summaries.push((app.id.to_string(), summary));
    }
    if let Some(report) = report {
        write_summary(&summaries, report)?;
    }
    if let Some((connection, _)) = broker {
        let _closed =
            scimfleet_runtime::broker::within("a close", connection.close(200, "sweep done".into())).await;
    }
    render(&summaries, options.remediate, out)?;
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

/// A publisher for remediation jobs, with the topology declared: a
/// mandatory publish to a queue that does not exist comes back unroutable.
async fn open_publisher(config: &Config, topology: &Topology) -> Result<(Connection, Publisher), AdminError> {
    let connection = broker::connect(&config.broker, "scimfleet-sweep").await?;
    let publisher = Publisher::open(&connection).await?;
    let ids: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    topology.ensure(publisher.channel(), &ids, config.broker.declare_topology).await?;
    Ok((connection, publisher))
}

/// One app of a run.
struct Target<'a> {
    config: &'a Config,
    index: usize,
    app: &'a AppConfig,
    store: &'a Store,
    run_id: &'a str,
}

impl Target<'_> {
    async fn run(
        &self,
        remediate: Option<Remediate<'_>>,
        mut report: Option<&mut BufWriter<File>>,
    ) -> Result<SweepSummary, AdminError> {
        let config = self.config;
        let auth = scimfleet_worker::Auth::from_config(config, self.index, self.app)?;
        let client = scimfleet_worker::app_client(config, self.app, auth, self.store)?;
        let (remediating, started_at) = (remediate.is_some(), chrono::Utc::now());
        let sweep =
            Sweep { client: &client, store: self.store, app: self.app, run_id: self.run_id, remediate };
        let mut write = |finding: &Finding| -> std::io::Result<()> {
            match report.as_mut() {
                Some(out) => render::json_line(finding, out),
                None => Ok(()),
            }
        };
        let outcome = sweep::sweep_app(&sweep, &mut write).await;
        let record = sweep::record(&self.app.id, "on demand", remediating, started_at, &outcome);
        self.store.sweeps().record(&record).await?;
        Ok(outcome?)
    }
}

/// The last line of the JSON Lines report: every app's counts.
fn write_summary(summaries: &[(String, SweepSummary)], mut out: BufWriter<File>) -> Result<(), AdminError> {
    let apps: Vec<serde_json::Value> = summaries
        .iter()
        .map(|(app, s)| {
            let mut value = serde_json::to_value(s).unwrap_or_default();
            value["app"] = app.as_str().into();
            value
        })
        .collect();
    render::json_line(&serde_json::json!({ "summary": apps }), &mut out)?;
    out.flush()?;
    Ok(())
}

fn render(
    summaries: &[(String, SweepSummary)],
    remediate: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut columns = vec![
        Column::left("app", 24).after(""),
        Column::right("seen", 8),
        Column::right("ok", 8),
        Column::right("orphan", 8),
        Column::right("unknown", 8),
        Column::right("drift", 8),
        Column::right("missing", 8),
    ];
    if remediate {
        columns.push(Column::right("queued", 8));
        columns.push(Column::right("held", 8));
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|(app, s)| {
            let mut row = vec![app.clone()];
            row.extend([s.seen, s.ok, s.orphan, s.unknown, s.drift, s.missing].map(|n| n.to_string()));
            if remediate {
                row.push(s.remediations.to_string());
                row.push(s.held.to_string());
            }
            row
        })
        .collect();
    Table::new(columns).write(&rows, out)
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
        let summary = SweepSummary {
            seen: 5,
            ok: 2,
            orphan: 1,
            unknown: 1,
            drift: 1,
            missing: 1,
            remediations: 3,
            held: 2,
        };
        let mut out = Vec::new();
        render(&[("git".to_owned(), summary)], true, &mut out).expect("rendered");
        let text = String::from_utf8(out).expect("utf-8");
        let line = text.lines().nth(1).expect("a line for git");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["git", "5", "2", "1", "1", "1", "1", "3", "2"]);
    }

    #[test]
    fn the_header_keeps_its_widths() {
        let mut out = Vec::new();
        render(&[], false, &mut out).expect("rendered");
        let header = format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
            "app", "seen", "ok", "orphan", "unknown", "drift", "missing"
        );
        assert_eq!(String::from_utf8(out).expect("utf-8"), header);
    }

    #[test]
    fn peak_rss_is_readable_here() {
        assert!(peak_rss_kb().is_some_and(|kb| kb > 0));
    }
}
