//! The `scimfleet` command: wiring only. Every subcommand calls into a library
//! crate; this file parses arguments, loads configuration, sets up logging and
//! signal handling, and turns errors into exit codes.

mod evidence;
mod service;
mod status;
mod sweep;
mod trace;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use scimfleet_runtime::broker::{self, Publisher, Topology};
use scimfleet_runtime::config::{CONFIG_ENV, LogFormat};
use scimfleet_runtime::{Config, dlq, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's allocator: the fleet allocates per message
/// and request, and glibc's malloc/free took a fifth of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Event-driven SCIM provisioning: HR events in, converged and verified accounts out.
#[derive(Debug, Parser)]
#[command(name = "scimfleet", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Publish events from a JSON Lines file (`-` for stdin) with confirms.
    Publish {
        #[command(flatten)]
        config: ConfigArg,
        /// The events, one CloudEvents JSON document per line.
        file: PathBuf,
    },
    /// Provision a sample organisation into three in-process SCIM apps.
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
    Dlq(DlqCommand),
    /// Export or check signed deprovisioning evidence.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Check the apps' accounts against the person registry.
    #[command(subcommand)]
    Verify(sweep::VerifyCommand),
    /// Per app: queue depths, consumers, retry backlog, dead letters,
    /// breaker, last error and verification failures.
    Status(status::StatusArgs),
    /// The journey of one HR event: apps, actions, attempts, outcomes, timings, trace ids.
    Trace(trace::TraceArgs),
    /// Reports for auditors.
    #[command(subcommand)]
    Report(evidence::ReportCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Development tools.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Count dead letters per queue, or list one queue's messages.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// List this queue's messages (an app id, or `events`); all counts otherwise.
        #[arg(long)]
        app: Option<String>,
        /// Most messages to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print one dead letter: its envelope and original body.
    Show {
        #[command(flatten)]
        target: DlqTarget,
        /// Job id or event id.
        #[arg(long)]
        id: String,
    },
    /// Republish dead letters (jobs keep their id and get a fresh retry budget).
    Replay {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        select: DlqSelect,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        target: DlqTarget,
        #[command(flatten)]
        select: DlqSelect,
    },
}

#[derive(Debug, Args)]
struct DlqTarget {
    #[command(flatten)]
    config: ConfigArg,
    /// An app id, or `events` for the events dead-letter queue.
    #[arg(long)]
    app: String,
    /// Most messages to read from the queue in one run.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct DlqSelect {
    /// Job ids or event ids (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Every message in the queue.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and the tokens it refers to.
    Check(ConfigArg),
}

#[derive(Debug, Subcommand)]
enum DevCommand {
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
struct ConfigArg {
    /// Configuration file.
    #[arg(long, env = CONFIG_ENV)]
    config: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<Arc<Config>> {
        Ok(Arc::new(Config::load(&self.config)?))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    let stop = CancellationToken::new();
    tokio::spawn(shutdown::cancel_on_signal(stop.clone()));
    match command {
        Command::Scheduler(arg) => service::scheduler(arg.load()?, stop).await?,
        Command::Worker { config, apps } => service::worker(config.load()?, apps, stop).await?,
        Command::Publish { config, file } => {
            let config = config.load()?;
            // The publisher starts each event's trace when export is on.
            let telemetry = service::start(&config, "scimfleet-publish")?;
            let published = publish(&config, &file).await;
            telemetry.shutdown().await;
            published?;
        }
        Command::Demo { config, events } => {
            // The demo prints its own story; logs only when something is wrong.
            telemetry::init_logging(LogFormat::Pretty, "warn,lapin=error");
            let converged = scimfleet_devkit::demo::run(&config, &events, &mut std::io::stdout())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            if !converged {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Dlq(command) => dlq(command).await?,
        Command::Evidence(command) => return evidence::evidence(command).await,
        Command::Report(command) => evidence::report(command).await?,
        Command::Verify(command) => sweep::verify(command).await?,
        Command::Status(args) => status::status(args).await?,
        Command::Trace(args) => return trace::trace(args).await,
        Command::Config(ConfigCommand::Check(arg)) => {
            let config = arg.load()?;
            for (index, app) in config.apps.iter().enumerate() {
                app.token(&config.origin, index, &config.base_dir)?;
            }
            println!("{}: valid ({} apps)", config.origin, config.apps.len());
        }
        Command::Dev(DevCommand::ScimServer { port, bind, token_env }) => {
            telemetry::init_logging(LogFormat::Pretty, telemetry::SERVICE_LOG_LEVELS);
            let token = std::env::var(&token_env)
                .ok()
                .filter(|t| !t.is_empty())
                .with_context(|| format!("set {token_env} to the bearer token clients must send"))?;
            let listener = tokio::net::TcpListener::bind((bind, port)).await?;
            println!("SCIM test server on http://{}/scim/v2", listener.local_addr()?);
            scimfleet_devkit::scim_server::serve(listener, token, stop).await?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn dlq_target(config: &Config, app: &str) -> anyhow::Result<dlq::Target> {
    if app == "events" {
        return Ok(dlq::Target::Events);
    }
    let app = config.app(app).with_context(|| format!("app `{app}` is not in the configuration"))?;
    Ok(dlq::Target::App(app.id.clone()))
}

async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    let (config_arg, app) = match &command {
        DlqCommand::List { config, app, .. } => (config, app.clone()),
        DlqCommand::Show { target, .. }
        | DlqCommand::Replay { target, .. }
        | DlqCommand::Purge { target, .. } => (&target.config, Some(target.app.clone())),
    };
    let config = config_arg.load()?;
    telemetry::init_logging(config.telemetry.log_format, "warn,lapin=error");
    let connection = broker::connect(&config.broker.url, "scimfleet-dlq").await?;
    let topology = Topology::of(&config);
    let result = dlq_run(&config, &connection, &topology, command, app).await;
    let _closed = connection.close(200, "dlq done".into()).await;
    result
}

async fn dlq_run(
    config: &Config,
    connection: &lapin::Connection,
    topology: &Topology,
    command: DlqCommand,
    app: Option<String>,
) -> anyhow::Result<()> {
    let Some(app) = app else {
        let mut targets = vec![("events".to_owned(), dlq::Target::Events)];
        targets.extend(config.apps.iter().map(|a| (a.id.to_string(), dlq::Target::App(a.id.clone()))));
        for (name, target) in targets {
            println!("{name:<24} {:>8}", dlq::count(connection, topology, &target).await?);
        }
        return Ok(());
    };
    let target = dlq_target(config, &app)?;
    match command {
        DlqCommand::List { limit, .. } => {
            let peek = dlq::peek(connection, topology, &target, limit).await?;
            print!("{}", dlq::render(&peek.messages));
            if peek.remaining > 0 {
                println!("… and {} more (raise --limit)", peek.remaining);
            }
            peek.release().await;
        }
        DlqCommand::Show { target: t, id } => {
            let peek = dlq::peek(connection, topology, &target, t.limit).await?;
            let found = peek.messages.iter().find(|m| m.matches(std::slice::from_ref(&id)));
            match found {
                Some(message) => {
                    println!("{}", serde_json::to_string_pretty(&message.envelope)?);
                    println!("{}", String::from_utf8_lossy(&message.body));
                }
                None => {
                    println!("no dead letter with id {id} among the first {} messages", peek.messages.len())
                }
            }
            peek.release().await;
        }
        DlqCommand::Replay { target: t, select } => {
            let peek = dlq::peek(connection, topology, &target, t.limit).await?;
            let publisher = Publisher::open(connection).await?;
            let settled = peek.replay(&publisher, topology, |m| select.all || m.matches(&select.ids)).await?;
            println!("{} replayed, {} kept (unreadable)", settled.done, settled.kept);
        }
        DlqCommand::Purge { target: t, select } => {
            let peek = dlq::peek(connection, topology, &target, t.limit).await?;
            let settled = peek.purge(|m| select.all || m.matches(&select.ids)).await?;
            println!("{} purged", settled.done);
        }
    }
    Ok(())
}

async fn publish(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let connection = broker::connect(&config.broker.url, "scimfleet-publish").await?;
    let publisher = Publisher::open(&connection).await?;
    let topology = Topology::of(config);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    topology.declare(publisher.channel(), &apps).await?;
    let report = if file.as_os_str() == "-" {
        broker::events::publish_jsonl(&publisher, &topology, std::io::stdin().lock()).await?
    } else {
        let input = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        broker::events::publish_jsonl(&publisher, &topology, std::io::BufReader::new(input)).await?
    };
    println!("{} events read, {} confirmed by RabbitMQ", report.read, report.confirmed);
    let _closed = connection.close(200, "publish done".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
