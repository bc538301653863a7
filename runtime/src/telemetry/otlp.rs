//! Trace export: OTLP over HTTP (protobuf), configured by the standard
//! `OTEL_*` environment variables.
//!
//! - Export is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless `OTEL_TRACES_EXPORTER=none`;
//!   `OTEL_SDK_DISABLED=true` records no spans at all. Headers, timeout, sampler
//!   (`OTEL_TRACES_SAMPLER`), batch limits (`OTEL_BSP_*`), service name and
//!   resource attributes are read by the OpenTelemetry SDK and exporter.
//! - Spans are batched by the SDK's batch processor on a thread of its own,
//!   with a bounded queue: a slow or unreachable collector drops spans, it
//!   never blocks or slows the pipeline.
//! - The HTTP client is the workspace's reqwest, driven on the process's
//!   tokio runtime (the batch thread awaits a spawned task), so no second
//!   HTTP stack is linked in.
//! - gRPC is not built in: a collector listens on 4318 for OTLP/HTTP as
//!   well, and asking for `grpc` fails at start-up naming the variable.

use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::TelemetryError;

/// Whether and where spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traces {
    /// No spans at all (`OTEL_SDK_DISABLED=true`): no trace ids in logs, no
    /// `traceparent` continued or sent. For the last per cent of throughput.
    Disabled,
    /// Spans are recorded (trace ids propagate, logs carry them) but not exported.
    Off,
    /// Export over OTLP/HTTP to `endpoint` (the full URL, `/v1/traces`
    /// included), or to where the `OTEL_*` variables say when `None`.
    Otlp {
        /// The traces URL; `None`: from the environment.
        endpoint: Option<String>,
    },
}

impl Traces {
    /// Reads the standard variables from `env` (pairs of name and value).
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, TelemetryError> {
        let vars: std::collections::HashMap<String, String> =
            env.into_iter().filter(|(name, _)| name.starts_with("OTEL_")).collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Self::Disabled);
        }
        match get("OTEL_TRACES_EXPORTER") {
            None | Some("otlp") => {}
            Some("none") => return Ok(Self::Off),
            Some(other) => {
                return Err(TelemetryError::Env {
                    variable: "OTEL_TRACES_EXPORTER",
                    reason: format!("`{other}` is not supported; use `otlp` or `none`"),
                });
            }
        }
        for variable in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            match get(variable) {
                None | Some("http/protobuf") => {}
                Some(other) => {
                    return Err(TelemetryError::Env {
                        variable,
                        reason: format!(
                            "`{other}` is not supported; use `http/protobuf` (collectors take it on port 4318)"
                        ),
                    });
                }
            }
        }
        let configured = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];
        if configured.iter().any(|v| get(v).is_some()) {
            Ok(Self::Otlp { endpoint: None })
        } else {
            Ok(Self::Off)
        }
    }
}

/// The tracer provider: exporting through a batch processor when `traces`
/// says so, recording only otherwise. Needs a tokio runtime.
pub(crate) fn provider(service: &str, traces: &Traces) -> Result<SdkTracerProvider, TelemetryError> {
    let mut resource = Resource::builder();
    // OTEL_SERVICE_NAME, when set, wins over the process's own name.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let Traces::Otlp { endpoint } = traces else { return Ok(builder.build()) };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let client = reqwest::Client::builder()
        // The exporter bounds each export (OTEL_EXPORTER_OTLP_TIMEOUT); this
        // is the floor under it should a connection hang.
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioHttp { client, runtime })
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint.clone());
    }
    let exporter = exporter.build().map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// reqwest on the process's runtime, for the exporter's batch thread.
#[derive(Debug)]
struct TokioHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for TokioHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        // The batch thread polls this future outside tokio; the request itself
        // runs as a task on the runtime and the thread waits for its result.
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut answer = Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok::<_, reqwest::Error>(answer)
        });
        Ok(task.await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn export_follows_the_standard_variables() {
        assert_eq!(Traces::from_env(env(&[])).ok(), Some(Traces::Off));
        let on = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert_eq!(Traces::from_env(on).ok(), Some(Traces::Otlp { endpoint: None }));
        let none = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_TRACES_EXPORTER", "none")]);
        assert_eq!(Traces::from_env(none).ok(), Some(Traces::Off));
        let disabled =
            env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(Traces::from_env(disabled).ok(), Some(Traces::Disabled));
    }

    #[test]
    fn unsupported_protocols_fail_naming_the_variable() {
        let grpc =
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let error = Traces::from_env(grpc).expect_err("grpc is refused").to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && error.contains("grpc"), "{error}");
        let zipkin = env(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(Traces::from_env(zipkin).expect_err("refused").to_string().contains("OTEL_TRACES_EXPORTER"));
    }
}
