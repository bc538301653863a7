//! The `scimfleet` command: wiring only. [`cli`] parses the arguments; each
//! subcommand calls into a library crate (`scimfleet-admin` for operator
//! commands, the scheduler and the worker through [`service`], the devkit
//! for `demo` and `dev`). This file loads configuration, sets up logging
//! and signal handling, and turns errors into exit codes.

mod approvals;
mod cli;
mod dlq;
mod pause;
mod scheduled;
mod service;
mod sources;
mod targets;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use scimfleet_admin as admin;
use scimfleet_runtime::{Config, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

use crate::cli::{
    AuditCommand, Cli, Command, ConfigArg, ConfigCommand, EvidenceCommand, ReportCommand, TopologyCommand,
    VerifyCommand,
};

/// mimalloc instead of glibc's allocator: the fleet allocates per message
/// and request, and glibc's malloc/free took a fifth of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Log levels of one-shot commands that talk to RabbitMQ: lapin's own
/// error logs would repeat the error the command reports.
const QUIET_BROKER: &str = "warn,lapin=error";
/// Log levels of the other one-shot commands.
const QUIET: &str = "warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any TLS client exists: Redis's rustls connector needs it.
    scimfleet_runtime::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    tokio::spawn(shutdown::cancel_on_signal(stop.clone()));
    let out = &mut std::io::stdout();
    match command {
        Command::Scheduler(arg) => service::scheduler(arg.load()?, stop).await?,
        Command::Worker { config, apps } => service::worker(config.load()?, apps, stop).await?,
        Command::Intake(arg) => service::intake(arg.load()?, stop).await?,
        Command::Console(arg) => service::console(arg.load()?, stop).await?,
        Command::Publish { config, file } => {
            let config = config.load()?;
            // The publisher starts each event's trace when export is on.
            let telemetry = service::start(&config, "scimfleet-publish")?;
            let published = admin::publish(&config, &file, out).await;
            telemetry.shutdown().await;
            published?;
        }
        #[cfg(feature = "dev")]
        Command::Demo { config, events } => return dev::demo(&config, &events).await,
        Command::Dlq(command) => dlq::dlq(command).await?,
        Command::Approvals(command) => approvals::run(command).await?,
        Command::Scheduled(command) => scheduled::run(command).await?,
        Command::Plan(args) => targets::plan(args).await?,
        Command::Sync(args) => targets::sync(args).await?,
        Command::DryRun(args) => targets::dry_run(args).await?,
        Command::Import(args) => sources::import(args, stop).await?,
        Command::Sources(command) => sources::sources(command).await?,
        Command::Evidence(command) => return evidence(command).await,
        Command::Audit(command) => return audit(command).await,
        Command::Report(ReportCommand::Leavers { config, since }) => {
            let config = load(&config, QUIET)?;
            admin::evidence::report_leavers(&config, since, out).await?;
        }
        Command::Verify(VerifyCommand::Sweep { config, app, remediate, json }) => {
            let config = load(&config, QUIET_BROKER)?;
            admin::sweep::run(&config, &admin::sweep::Options { app, remediate, json }, out).await?;
        }
        Command::Status(args) => {
            let config = load(&args.config, QUIET_BROKER)?;
            admin::status::run(&config, args.app.as_deref(), args.json, out).await?;
        }
        Command::Pause(args) => pause::pause(args).await?,
        Command::Resume(args) => pause::resume(args).await?,
        Command::Probe(args) => {
            let config = load(&args.config, QUIET)?;
            let format = match (args.json, args.toml) {
                (true, _) => admin::probe::Format::Json,
                (_, true) => admin::probe::Format::Toml,
                _ => admin::probe::Format::Text,
            };
            let options = admin::probe::Options { app: args.app, format, save: !args.no_save };
            admin::probe::run(&config, &options, out).await?;
        }
        Command::Trace(args) => {
            let config = load(&args.config, QUIET)?;
            if !admin::trace::run(&config, &args.event_id, args.json, out).await? {
                eprintln!(
                    "no journey recorded for event {} (unknown, or older than telemetry.journey_retention)",
                    args.event_id
                );
                return Ok(ExitCode::from(1));
            }
        }
        Command::Config(ConfigCommand::Check(arg)) => {
            let config = arg.load()?;
            admin::config_check(&config, out)?;
            admin::check_probed_mappings(&config, out).await?;
        }
        Command::Topology(TopologyCommand::Declare(arg)) => {
            admin::declare_topology(&*arg.load()?, out).await?
        }
        Command::Topology(TopologyCommand::Definitions(arg)) => admin::write_definitions(&*arg.load()?, out)?,
        #[cfg(feature = "dev")]
        Command::Dev(command) => dev::dev(command, stop).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration, then logging at `levels` for a one-shot command.
fn load(arg: &ConfigArg, levels: &str) -> anyhow::Result<Arc<Config>> {
    let config = arg.load()?;
    telemetry::init_logging(config.telemetry.log_format, levels);
    Ok(config)
}

async fn evidence(command: EvidenceCommand) -> anyhow::Result<ExitCode> {
    let out = &mut std::io::stdout();
    match command {
        EvidenceCommand::Export { config, since, person, output, signing_key } => {
            let config = load(&config, QUIET)?;
            let key = admin::evidence::export_key(&config, signing_key.as_deref())?;
            let person = person.as_deref();
            let records =
                admin::evidence::export(&config, since, person, key, output.as_deref(), out).await?;
            eprintln!("{records} evidence records exported");
        }
        EvidenceCommand::Verify { file, public_keys, hmac_key_env, config } => {
            let hmac_key_env = match (hmac_key_env, config) {
                (Some(var), _) => Some(var),
                (None, Some(path)) => Some(Config::load(&path)?.verification.evidence_key_env.clone()),
                (None, None) => None,
            };
            let keys = admin::evidence::VerifyKeys { public_keys, hmac_key_env };
            if !admin::evidence::verify(&file, &keys, out)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        EvidenceCommand::Keygen { out: dir } => {
            let (id, private, public) = admin::evidence::keygen(&dir)?;
            println!("key id: {id}");
            println!("private key: {} (mode 0600; for workers and exports only)", private.display());
            println!("public key: {} (for evidence verify --public-key)", public.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let out = &mut std::io::stdout();
    match command {
        AuditCommand::Verify { config, public_keys, file, json } => {
            let config = match &config {
                Some(path) => Some(load(&ConfigArg { config: path.clone() }, QUIET)?),
                None => None,
            };
            let options =
                admin::audit::VerifyOptions { file: file.as_deref(), public_keys: &public_keys, json };
            if !admin::audit::verify(config.as_deref(), options, out).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        AuditCommand::Export { config, since, person, out: output, dir } => {
            let config = load(&config, QUIET)?;
            let records = match dir {
                Some(dir) => admin::audit::export_dir(&config, &dir).await?,
                None => {
                    admin::audit::export(&config, since, person.as_deref(), output.as_deref(), out).await?
                }
            };
            eprintln!("{records} audit records exported");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `demo` and `dev`: only in builds with the `dev` feature (the default).
#[cfg(feature = "dev")]
mod dev {
    use std::path::Path;
    use std::process::ExitCode;

    use anyhow::Context as _;
    use scimfleet_runtime::config::LogFormat;
    use scimfleet_runtime::telemetry;
    use tokio_util::sync::CancellationToken;

    use crate::cli::DevCommand;

    pub(crate) async fn demo(config: &Path, events: &Path) -> anyhow::Result<ExitCode> {
        // The demo prints its own story; logs only when something is wrong.
        telemetry::init_logging(LogFormat::Pretty, crate::QUIET_BROKER);
        let converged = scimfleet_devkit::demo::run(config, events, &mut std::io::stdout())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(if converged { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }

    pub(crate) async fn dev(command: DevCommand, stop: CancellationToken) -> anyhow::Result<()> {
        let DevCommand::ScimServer { port, bind, token_env } = command;
        telemetry::init_logging(LogFormat::Pretty, telemetry::SERVICE_LOG_LEVELS);
        let token = std::env::var(&token_env)
            .ok()
            .filter(|t| !t.is_empty())
            .with_context(|| format!("set {token_env} to the bearer token clients must send"))?;
        let listener = tokio::net::TcpListener::bind((bind, port)).await?;
        println!("SCIM test server on http://{}/scim/v2", listener.local_addr()?);
        scimfleet_devkit::scim_server::serve(listener, token, stop).await?;
        Ok(())
    }
}
