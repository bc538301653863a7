#![doc = include_str!("../README.md")]

mod limits;
mod measure;
mod params;
mod report;
mod scale;
mod scenarios;
mod sys;
mod verify;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use scimfleet_runtime::config::LogFormat;
use scimfleet_runtime::telemetry;

use crate::params::Params;

/// The allocator of the `scimfleet` binary, so the bench measures what runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::report::Results;

/// What this invocation runs: `make bench` (no argument), `make
/// bench-scale` (`scale`), or the scale run's SCIM apps (`targets`, started
/// by `scale` itself).
enum Mode {
    Bench(Params),
    Scale(scale::ScaleParams),
    Targets { apps: usize, people: usize, token: String },
    Console,
}

fn mode() -> Result<Mode, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => Params::from_env().map(Mode::Bench).map_err(|e| e.to_string()),
        Some("scale") => scale::ScaleParams::from_env().map(Mode::Scale).map_err(|e| e.to_string()),
        Some("targets") => {
            let value = |flag: &str| -> Result<usize, String> {
                let at = args.iter().position(|a| a == flag).ok_or(format!("targets: {flag} is required"))?;
                let raw = args.get(at + 1).ok_or(format!("targets: {flag} needs a value"))?;
                raw.parse().map_err(|_| format!("targets: {flag} {raw:?} is not a whole number"))
            };
            let token = std::env::var(scale::TOKEN_ENV)
                .map_err(|_| format!("targets: set {} to the apps' bearer token", scale::TOKEN_ENV))?;
            Ok(Mode::Targets { apps: value("--apps")?, people: value("--people")?, token })
        }
        Some("console") => Ok(Mode::Console),
        Some(other) => {
            Err(format!("unknown argument {other:?}: expected nothing, `scale`, `targets` or `console`"))
        }
    }
}

fn main() -> ExitCode {
    let mode = match mode() {
        Ok(mode) => mode,
        Err(error) => {
            eprintln!("scimfleet-bench: {error}");
            return ExitCode::from(2);
        }
    };
    let params = match mode {
        Mode::Bench(params) => params,
        Mode::Scale(params) => return run_other(scale::run(params)),
        Mode::Targets { apps, people, token } => {
            return run_other(scale::targets::serve(apps, people, token));
        }
        Mode::Console => return run_other(console_only()),
    };
    // One runtime worker per core (tokio's default): the fleet, the test
    // servers and the bench share the machine with RabbitMQ and Redis, as a
    // single-process deployment would.
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scimfleet-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        // Telemetry as a service has it: spans recorded (and exported when
        // OTEL_EXPORTER_OTLP_ENDPOINT says so), so their cost is measured.
        // Logs: errors only, as the dead-neighbour scenario dead-letters
        // hundreds of jobs on purpose, each a warning. `RUST_LOG` overrides.
        let telemetry =
            telemetry::Traces::from_env(std::env::vars()).map_err(anyhow::Error::from).and_then(|traces| {
                let options = telemetry::TelemetryOptions {
                    service: "scimfleet-bench",
                    format: LogFormat::Pretty,
                    default_levels: "error",
                    traces,
                    log_file: None,
                };
                telemetry::init(options).map_err(anyhow::Error::from)
            });
        let telemetry = match telemetry {
            Ok(telemetry) => telemetry,
            Err(error) => return Err(error),
        };
        // On Ctrl-C or SIGTERM the run is dropped, and with it the fleet in
        // use, whose `Drop` deletes its namespace's queues and keys.
        let outcome = tokio::select! {
            outcome = run(params) => outcome,
            signal = interrupted() => Err(anyhow::anyhow!("stopped by {signal}")),
        };
        telemetry.shutdown().await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scimfleet-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `task` on a multi-threaded runtime, with warnings and errors logged.
fn run_other(task: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scimfleet-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        telemetry::init_logging(LogFormat::Pretty, "warn");
        match task.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("scimfleet-bench: {error:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM, with the signal's name.
async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// `scimfleet-bench console`: the console scenario alone, its table printed.
async fn console_only() -> anyhow::Result<()> {
    let size = scenarios::console::size()?
        .context("BENCH_CONSOLE_DEAD_LETTERS=0 skips the console scenario, which is all `console` runs")?;
    let pages = scenarios::console::run(size).await?;
    let mut table = report::Table::default();
    table.title("scimfleet bench: operator console");
    report::console_rows(&pages, &mut table);
    println!("{}", table.finish());
    Ok(())
}

/// The console scenario, unless `BENCH_CONSOLE_DEAD_LETTERS=0`.
async fn console_pages() -> anyhow::Result<Option<scenarios::console::Pages>> {
    let Some(size) = scenarios::console::size()? else { return Ok(None) };
    eprintln!("bench: console pages, {} apps, {} dead letters...", size.apps, size.dead_letters);
    Ok(Some(scenarios::console::run(size).await.context("console scenario")?))
}

/// Runs every phase, prints the table and writes the JSON.
async fn run(params: Params) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_at_start = sys::load_average();
    let fleet_err = |e: scimfleet_devkit::fleet::FleetError| anyhow::anyhow!(e);
    eprintln!("bench: mixed workload of {} events across {} apps...", params.events, params.apps);
    let mixed = scenarios::mixed::run(&params).await.map_err(fleet_err).context("mixed workload")?;
    let backlog = if params.backlog > 0 {
        eprintln!("bench: {} leavers behind {} queued hires...", params.leavers, params.backlog);
        Some(scenarios::backlog::run(&params).await.map_err(fleet_err).context("backlog scenario")?)
    } else {
        None
    };
    eprintln!("bench: dead neighbour, {} people, twice...", params.isolation_people);
    let isolation =
        scenarios::isolation::run(&params).await.map_err(fleet_err).context("dead-neighbour scenario")?;
    let ssf_leavers = scenarios::ssf::leavers(&params)?;
    let signals = if ssf_leavers > 0 {
        eprintln!("bench: {ssf_leavers} RISC account-disabled SETs against as many native leavers...");
        Some(scenarios::ssf::run(&params, ssf_leavers).await.context("SSF scenario")?)
    } else {
        None
    };
    let console = console_pages().await?;
    let (people, mix) = request_mix(&mixed, params.apps);
    eprintln!("bench: HTTP limit, {people} people per app...");
    let http = limits::http::run(
        params.apps,
        people,
        mix.clone(),
        params.concurrency,
        params.latency_ms,
        params.teams,
    )
    .await
    .context("HTTP limit")?;
    let messages = mixed.events + usize::try_from(mixed.jobs).unwrap_or(usize::MAX);
    eprintln!("bench: broker limit, {messages} messages...");
    let broker_config = limits::broker::config()?;
    let prefetch = params.concurrency.saturating_mul(u16::try_from(params.apps).unwrap_or(u16::MAX));
    let broker = limits::broker::run(&broker_config, messages, mixed.event_bytes, prefetch)
        .await
        .context("broker limit")?;
    eprintln!("bench: both limits at once...");
    let both = Instant::now();
    let (http_both, broker_both) = tokio::join!(
        limits::http::run(params.apps, people, mix, params.concurrency, params.latency_ms, params.teams),
        limits::broker::run(&broker_config, messages, mixed.event_bytes, prefetch),
    );
    let combined = limits::Combined {
        http: http_both.context("HTTP limit, combined")?,
        broker: broker_both.context("broker limit, combined")?,
        seconds: both.elapsed().as_secs_f64(),
    };
    let intake_events = if params.quick { 10_000 } else { 50_000 };
    eprintln!("bench: HTTP intake, {intake_events} signed events, singles then batches of 100...");
    let intake = limits::intake::run(broker_config.url.first().expose(), intake_events, 64, 100)
        .await
        .context("intake")?;

    let results = Results {
        params,
        mixed,
        backlog,
        isolation,
        signals,
        console,
        http,
        broker,
        combined,
        intake,
        load_at_start,
        load_at_end: sys::load_average(),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    write_results(&results)
}

/// The fleet's request mix, per person it created, replayed by as many
/// people per app as it created: (people per app, requests per person).
fn request_mix(mixed: &scenarios::mixed::Mixed, apps: usize) -> (usize, Vec<(measure::Call, f64)>) {
    let created = mixed.requests.calls.get(&measure::Call::CreateUser).copied().unwrap_or(0);
    let people = (created / apps).max(50);
    let replayed = [
        measure::Call::FindUser,
        measure::Call::GetUser,
        measure::Call::PatchUser,
        measure::Call::DeleteUser,
        measure::Call::FindGroup,
        measure::Call::GetGroup,
        measure::Call::PatchGroup,
    ];
    let mix = replayed
        .iter()
        .map(|call| {
            let count = mixed.requests.calls.get(call).copied().unwrap_or(0);
            (*call, count as f64 / (people * apps) as f64)
        })
        .collect();
    (people, mix)
}

/// Prints the table and writes the JSON results.
fn write_results(results: &Results) -> anyhow::Result<()> {
    println!("{}", results.table());
    let path = output_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&results.to_json())?;
    std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    println!("results written to {}", path.display());
    Ok(())
}

/// `BENCH_OUT`, else `bench/results/latest.json` in this crate.
fn output_path() -> PathBuf {
    std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results").join("latest.json"))
}
