//! The command line: every subcommand, flag and help text of `scimfleet`.
//! Parsing only; `main` hands the values to the library crates.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use scimfleet_admin::evidence::parse_since;
use scimfleet_runtime::Config;
use scimfleet_runtime::config::CONFIG_ENV;

/// Event-driven SCIM provisioning: HR events in, converged and verified accounts out.
#[derive(Debug, Parser)]
#[command(name = "scimfleet", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Consume HR events, plan per-app jobs and publish them.
    Scheduler(ConfigArg),
    /// Apply jobs to SCIM apps.
    Worker {
        #[command(flatten)]
        config: ConfigArg,
        /// Only these apps (comma-separated ids); all configured apps by default.
        #[arg(long, value_delimiter = ',')]
        apps: Option<Vec<String>>,
    },
    /// Serve the HTTP event intake: signed CloudEvents in, published with confirms.
    Intake(ConfigArg),
    /// Serve the operator console: the fleet, its apps and their pauses, as a web page.
    Console(ConfigArg),
    /// Publish events from a JSON Lines file (`-` for stdin) with confirms.
    Publish {
        #[command(flatten)]
        config: ConfigArg,
        /// The events, one CloudEvents JSON document per line.
        file: PathBuf,
    },
    /// Provision a sample organisation into three in-process SCIM apps.
    #[cfg(feature = "dev")]
    Demo {
        /// Policy of the demo apps (URLs and tokens are replaced).
        #[arg(long, default_value = "deploy/examples/scimfleet.toml")]
        config: PathBuf,
        /// The sample events.
        #[arg(long, default_value = "deploy/examples/events.jsonl")]
        events: PathBuf,
    },
    /// Inspect, replay or purge dead-lettered jobs and events.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Export or check signed deprovisioning evidence; make signing keys.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// Check the apps' accounts against the person registry.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Per app: queue depths, consumers, retry backlog, dead letters,
    /// breaker, pause, last error and verification failures.
    Status(StatusArgs),
    /// Stop taking an app's jobs fleet-wide; they wait in its queues.
    Pause(crate::pause::PauseArgs),
    /// Take a paused app's jobs again.
    Resume(crate::pause::ResumeArgs),
    /// The journey of one HR event: apps, actions, attempts, outcomes, timings, trace ids.
    Trace(TraceArgs),
    /// Learn what an app's SCIM service really does (read-only requests),
    /// keep it as the app's target profile and print it.
    Probe(ProbeArgs),
    /// Reports for auditors.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Held high-risk grants and mass-deprovision waves: list, approve, reject, release, cancel.
    #[command(subcommand)]
    Approvals(crate::approvals::ApprovalsCommand),
    /// Events waiting for their effective date.
    #[command(subcommand)]
    Scheduled(crate::scheduled::ScheduledCommand),
    /// What events would do in each app (creates, changes, group moves,
    /// deactivations, deletes), read from the apps as they are; writes nothing.
    Plan(crate::targets::PlanArgs),
    /// Reconcile one person now, app by app, printing each request and its result.
    Sync(crate::targets::SyncArgs),
    /// What a `dry_run = true` app's jobs would have sent.
    DryRun(crate::targets::DryRunArgs),
    /// Turn an HR extract into the person events it calls for, and publish them.
    Import(crate::sources::ImportArgs),
    /// Identity-provider sources served by the intake: renew their subscriptions.
    #[command(subcommand)]
    Sources(crate::sources::SourcesCommand),
    /// Check or export the hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// RabbitMQ exchanges and queues.
    #[command(subcommand)]
    Topology(TopologyCommand),
    /// Development tools.
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Dev(DevCommand),
}

/// Who runs an operator command, for the audit trail.
#[derive(Debug, Args)]
pub(crate) struct OperatorArg {
    /// Your name, as the audit trail records it (default: `$USER`, else `operator`).
    #[arg(long, env = "USER", default_value = "operator")]
    pub(crate) operator: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EvidenceCommand {
    /// Write deprovisioning evidence as JSON Lines signed with Ed25519 (run
    /// where the signing key is: a worker's host, or with the key mounted).
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
        /// Sign with this private key (PKCS#8 PEM) instead of
        /// `verification.evidence_signing_key_file`.
        #[arg(long)]
        signing_key: Option<PathBuf>,
    },
    /// Check an export's signatures, count and order with public keys only;
    /// exits non-zero on any edit. Legacy HMAC exports are recognised.
    Verify {
        /// The export file.
        file: PathBuf,
        /// A public key (SPKI PEM) to trust; repeat it during a key rotation.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// For a legacy HMAC export: the environment variable holding its key.
        #[arg(long)]
        hmac_key_env: Option<String>,
        /// For a legacy HMAC export: take the variable's name from
        /// `verification.evidence_key_env` of this configuration.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make a new evidence signing key pair: the private key (mode 0600) for
    /// the workers, the public key for whoever verifies exports.
    Keygen {
        /// Directory to write `evidence-signing-<id>.pem` and `evidence-public-<id>.pem` to.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the chain (seq, prev, hashes, signatures, head) of the stream
    /// or an export; exits non-zero naming the first bad seq and why.
    Verify {
        /// Configuration file (to read the stream, and its evidence key's public half).
        #[arg(long, env = CONFIG_ENV, required_unless_present = "file")]
        config: Option<PathBuf>,
        /// A public key (SPKI PEM) to trust; repeat it during a key rotation.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// Check this JSON Lines export instead of the stream.
        #[arg(long)]
        file: Option<PathBuf>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write audit records as JSON Lines, as stored; or, with `--dir`, append
    /// the records not yet exported to one file a day.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Only records at or after this time (RFC 3339, or a date: 2026-10-01).
        #[arg(long, value_parser = parse_since, conflicts_with = "dir")]
        since: Option<DateTime<Utc>>,
        /// Only records about this person (HR id; matched by pseudonym).
        #[arg(long, conflicts_with = "dir")]
        person: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, conflicts_with = "dir")]
        out: Option<PathBuf>,
        /// Rolling export: append to `DIR/audit-YYYY-MM-DD.jsonl` after the last seq there.
        #[arg(long)]
        dir: Option<PathBuf>,
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

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// Only this app; every configured app by default.
    #[arg(long)]
    pub(crate) app: Option<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// The CloudEvents `id` of the HR event.
    pub(crate) event_id: String,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArg,
    /// The app to probe.
    #[arg(long)]
    pub(crate) app: String,
    /// Print the probed profile as one JSON document instead of the table.
    #[arg(long, conflicts_with = "toml")]
    pub(crate) json: bool,
    /// Print an `[apps.target]` block to paste into the configuration.
    #[arg(long)]
    pub(crate) toml: bool,
    /// Only print: do not keep the result as the app's probed profile.
    #[arg(long)]
    pub(crate) no_save: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file and the tokens it refers to.
    Check(ConfigArg),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TopologyCommand {
    /// Declare the exchanges and queues of every configured app (needs a
    /// user that may configure them; the roles then run with
    /// `broker.declare_topology = false`).
    Declare(ConfigArg),
    /// Print the RabbitMQ definitions (JSON) of the configuration: vhost,
    /// role users without passwords and their permissions, exchanges,
    /// queues and bindings, for `rabbitmqctl import_definitions` or
    /// `load_definitions`. Connects to nothing.
    Definitions(ConfigArg),
}

#[cfg(feature = "dev")]
#[derive(Debug, Subcommand)]
pub(crate) enum DevCommand {
    /// Run the in-memory SCIM 2.0 test server.
    ScimServer {
        /// Port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Environment variable holding the bearer token clients must send.
        #[arg(long, default_value = "SCIMFLEET_DEV_TOKEN")]
        token_env: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// Configuration file.
    #[arg(long, env = CONFIG_ENV)]
    pub(crate) config: PathBuf,
}

impl ConfigArg {
    /// The configuration, validated.
    pub(crate) fn load(&self) -> anyhow::Result<Arc<Config>> {
        Ok(Arc::new(Config::load(&self.config)?))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
