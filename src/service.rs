//! `scimfleet scheduler`, `worker`, `intake` and `console`: telemetry, the operations
//! listener, the service itself, then a flush of what telemetry still holds.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use scimfleet_runtime::Config;
use scimfleet_runtime::ops::{self, Ops};
use scimfleet_runtime::telemetry::{self, Telemetry, TelemetryOptions, Traces};
use tokio_util::sync::CancellationToken;

/// Runs the scheduler until `stop`.
pub async fn scheduler(config: Arc<Config>, stop: CancellationToken) -> anyhow::Result<()> {
    let telemetry = start(&config, "scimfleet-scheduler")?;
    let ops = Ops::default();
    let listening =
        listen(config.telemetry.scheduler_listen, "telemetry.scheduler_listen", &ops, &stop).await?;
    let result = scimfleet_scheduler::run(config, Arc::default(), ops, stop.clone()).await;
    finish(listening, telemetry, &stop, "scimfleet-scheduler").await;
    Ok(result?)
}

/// Runs a worker for `apps` (all when `None`) until `stop`.
pub async fn worker(
    config: Arc<Config>,
    apps: Option<Vec<String>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // An unknown app is refused before anything starts listening.
    scimfleet_worker::select_apps(&config, apps.as_deref())?;
    let telemetry = start(&config, "scimfleet-worker")?;
    let ops = Ops::default();
    let listening = listen(config.telemetry.worker_listen, "telemetry.worker_listen", &ops, &stop).await?;
    let result = scimfleet_worker::run(config, apps, Arc::default(), ops, stop.clone()).await;
    finish(listening, telemetry, &stop, "scimfleet-worker").await;
    Ok(result?)
}

/// Runs the HTTP event intake until `stop`.
pub async fn intake(config: Arc<Config>, stop: CancellationToken) -> anyhow::Result<()> {
    let telemetry = start(&config, "scimfleet-intake")?;
    let ops = Ops::default();
    let listening = listen(config.telemetry.intake_listen, "telemetry.intake_listen", &ops, &stop).await?;
    let result = scimfleet_intake::run(config, ops, stop.clone()).await;
    finish(listening, telemetry, &stop, "scimfleet-intake").await;
    Ok(result?)
}

/// Serves the operator console until `stop`.
pub async fn console(config: Arc<Config>, stop: CancellationToken) -> anyhow::Result<()> {
    let telemetry = start(&config, "scimfleet-console")?;
    let result = scimfleet_console::run(config, stop.clone()).await;
    finish(None, telemetry, &stop, "scimfleet-console").await;
    Ok(result?)
}

/// Logging and tracing from the configuration and the `OTEL_*` variables.
pub fn start(config: &Config, service: &str) -> anyhow::Result<Telemetry> {
    let traces = Traces::from_env(std::env::vars())?;
    let exporting = matches!(traces, Traces::Otlp { .. });
    let telemetry = telemetry::init(TelemetryOptions {
        service,
        format: config.telemetry.log_format,
        default_levels: telemetry::SERVICE_LOG_LEVELS,
        traces,
        log_file: None,
    })?;
    tracing::info!(otel.exporting = exporting, "{service} starting");
    Ok(telemetry)
}

async fn listen(
    address: Option<SocketAddr>,
    field: &str,
    ops: &Ops,
    stop: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(address) = address else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("{field}: cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(server.address = %bound, "serving /metrics, /healthz and /readyz on http://{bound}");
    let (ops, stop) = (ops.clone(), stop.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(error) = ops::serve(listener, ops, stop).await {
            tracing::error!(%error, "the operations listener stopped");
        }
    })))
}

/// After the service returned: the operations listener stopped, then the
/// last log line and the spans still held flushed (the exit code follows).
async fn finish(
    listening: Option<tokio::task::JoinHandle<()>>,
    telemetry: Telemetry,
    stop: &CancellationToken,
    service: &str,
) {
    stop.cancel();
    if let Some(listening) = listening {
        let _stopped = listening.await;
    }
    tracing::info!("{service} stopped");
    telemetry.shutdown().await;
}
