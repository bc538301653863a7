//! Logs, traces and the pseudonymous person id.
//!
//! [`init`] installs one `tracing` subscriber with two layers, each with its
//! own filter: log lines (levels from `RUST_LOG`, JSON or compact text, with
//! trace and span ids), and OpenTelemetry spans of scimfleet's own crates at
//! `info` whatever `RUST_LOG` says, so quieting logs never breaks a trace.
//! Spans are always recorded, which keeps trace ids flowing through AMQP
//! headers and `traceparent` to the apps; they are exported only when the
//! `OTEL_*` variables ask for it (see [`Traces`]). [`Telemetry::shutdown`]
//! flushes what is queued, within a deadline.
//!
//! Logs and traces never carry a person's HR id, name or e-mail: see
//! [`Pseudonymizer`].

mod logfmt;
mod otlp;
pub mod propagation;
mod pseudonym;
mod spans;

use std::path::Path;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use otlp::Traces;
pub use pseudonym::Pseudonymizer;
pub use spans::{consumer_span, producer_span};

use crate::config::LogFormat;

/// Crates whose spans make up scimfleet's traces. The SCIM test server
/// (devkit) stands in for the apps and is left out.
const TRACED_CRATES: &[&str] = &["scimfleet", "scimfleet_runtime", "scimfleet_scheduler", "scimfleet_worker"];

/// How long shutdown waits for queued spans to reach the collector.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// An `OTEL_*` variable holds something unsupported.
    #[error("{variable}: {reason}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter could not be built (e.g. an invalid endpoint).
    #[error("the OTLP trace exporter could not be built: {0}")]
    Exporter(String),
    /// Export needs a tokio runtime and none is running.
    #[error("trace export must be set up inside the tokio runtime")]
    NoRuntime,
    /// The log file could not be opened.
    #[error("cannot open the log file")]
    LogFile(#[source] std::io::Error),
}

/// What [`init`] sets up.
#[derive(Debug, Clone)]
pub struct TelemetryOptions<'a> {
    /// `service.name` of the spans unless `OTEL_SERVICE_NAME` says otherwise.
    pub service: &'a str,
    /// Log line format.
    pub format: LogFormat,
    /// Log levels when `RUST_LOG` is unset.
    pub default_levels: &'a str,
    /// Span export.
    pub traces: Traces,
    /// Append log lines to this file instead of standard error.
    pub log_file: Option<&'a Path>,
}

/// The installed telemetry; call [`Telemetry::shutdown`] before exiting.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every span ended so far (tests; a service flushes at shutdown).
    pub async fn flush(&self) {
        let Some(provider) = self.provider.clone() else { return };
        let _flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }

    /// Flushes queued spans (at most a few seconds, even when the collector
    /// is unreachable) and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        // The provider's shutdown blocks until its batch thread is done, and
        // that thread's exports run on this runtime: wait off the runtime.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_DEADLINE)).await;
        if let Ok(Err(error)) = flushed {
            tracing::debug!(%error, "spans not flushed at shutdown");
        }
    }
}

/// Installs logging and tracing for the process. A second call in the same
/// process (tests) keeps the first subscriber and returns a no-op handle.
pub fn init(options: TelemetryOptions<'_>) -> Result<Telemetry, TelemetryError> {
    let provider = match options.traces {
        Traces::Disabled => None,
        ref traces => Some(otlp::provider(options.service, traces)?),
    };
    let spans = provider.as_ref().map(|provider| {
        let traced = TRACED_CRATES.iter().fold(Targets::new(), |t, name| t.with_target(*name, Level::INFO));
        // Spans carry the attributes we give them and nothing per span the
        // layer would add by default (source location, thread, target, busy
        // and idle time), nor does entering one make its context current:
        // our propagation reads a span's context directly. Each default cost
        // CPU on every span or every poll of an instrumented future.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("scimfleet"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(traced)
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(options.default_levels));
    // Whatever RUST_LOG says: lapin logs every message the broker returns
    // (an unroutable mandatory publish) at `warn` with its body, which holds
    // personal data. The publisher reports returns itself, without the body.
    let filter = match RETURNED_MESSAGES_OFF.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let writer = match options.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(TelemetryError::LogFile)?;
            BoxMakeWriter::new(std::sync::Mutex::new(file))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let lines = tracing_subscriber::fmt::layer::<Registry>()
        .with_writer(writer)
        .fmt_fields(JsonFields::new())
        .event_format(logfmt::LineFormat { json: options.format == LogFormat::Json })
        .with_filter(filter);
    match tracing_subscriber::registry().with(lines).with(spans).try_init() {
        Ok(()) => Ok(Telemetry { provider }),
        Err(_already_set) => {
            if let Some(provider) = provider {
                let _stopped = provider.shutdown();
            }
            Ok(Telemetry { provider: None })
        }
    }
}

/// Added to every filter, `RUST_LOG` included: see [`init`].
const RETURNED_MESSAGES_OFF: &str = "lapin::returned_messages=off";

/// Directives for services: our `info`, the AMQP client's warnings only.
pub const SERVICE_LOG_LEVELS: &str = "info,lapin=warn,amq_protocol=warn";

/// Logging only, for command-line tools (no spans): the services' line
/// format on standard error; `RUST_LOG` selects levels, else
/// `default_levels`. Calling it twice is harmless (the second call does nothing).
pub fn init_logging(format: LogFormat, default_levels: &str) {
    let options = TelemetryOptions {
        service: "scimfleet",
        format,
        default_levels,
        traces: Traces::Disabled,
        log_file: None,
    };
    // Without spans or a log file nothing can fail.
    let _telemetry = init(options);
}

/// An error with its causes, `outer: cause: root cause`, for logs and
/// dead-letter details. Error types in scimfleet keep personal data and
/// secrets out of their messages, so the chain is as safe as its links.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
