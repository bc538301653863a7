#![doc = include_str!("../README.md")]

mod binary;
pub mod guard;
pub mod problem;
pub mod publish;
pub mod request;
pub mod server;
pub mod signature;
pub mod source;
pub mod sources;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use scimfleet_runtime::broker::Topology;
use scimfleet_runtime::config::ConfigError;
use scimfleet_runtime::ops::Ops;
use scimfleet_runtime::store::StoreError;
use scimfleet_runtime::{Config, Store};
use tokio_util::sync::CancellationToken;

pub use problem::Problem;
pub use request::{Incoming, Limits, parse_request};
pub use signature::Key;

/// The intake could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// A source, secret or limit cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis could not be reached at start-up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// A source's API refused or failed (`scimfleet sources renew`).
    #[error("{0}")]
    Source(String),
    /// The listener could not be bound or failed.
    #[error("intake.listen: cannot serve on {address}")]
    Listen {
        /// The address.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `intake.listen` and serves until `stop`.
pub async fn run(config: Arc<Config>, ops: Ops, stop: CancellationToken) -> Result<(), IntakeError> {
    let Some(address) = config.intake.listen else {
        return Err(ConfigError::Invalid {
            origin: config.origin.clone(),
            field: "intake.listen".to_owned(),
            reason: "the intake needs an address to listen on".to_owned(),
        }
        .into());
    };
    // Sources and TLS files first: a bad secret stops start-up before anything listens.
    source::load(&config)?;
    sources::load(&config)?;
    if let (Some(cert), Some(key)) = (&config.intake.tls_cert_file, &config.intake.tls_key_file) {
        tls::acceptor(&config.base_dir.join(cert), &config.base_dir.join(key)).map_err(IntakeError::Tls)?;
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| IntakeError::Listen { address: address.to_string(), source })?;
    serve(config, listener, ops, stop).await
}

/// Serves the intake on `listener` until `stop` (tests and the bench bind
/// their own listener on port 0).
pub async fn serve(
    config: Arc<Config>,
    listener: tokio::net::TcpListener,
    ops: Ops,
    stop: CancellationToken,
) -> Result<(), IntakeError> {
    let sources = source::load(&config)?;
    let adapters = sources::load(&config)?;
    let tls = match (&config.intake.tls_cert_file, &config.intake.tls_key_file) {
        (Some(cert), Some(key)) => Some(
            tls::acceptor(&config.base_dir.join(cert), &config.base_dir.join(key))
                .map_err(IntakeError::Tls)?,
        ),
        _ => None,
    };
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let link = publish::Link::default();
    let health = ops.health.component("intake");
    // The link outlives the listener: the requests still being answered
    // when the stop came publish on it (and get their confirms).
    let unlink = CancellationToken::new();
    let maintaining =
        tokio::spawn(link.clone().maintain(config.clone(), health, store.clone(), unlink.clone()));
    let intake = &config.intake;
    let emitter = sources::process::Emitter {
        context: sources::Context {
            store: store.clone(),
            config: config.clone(),
            guard: guard::Guard::new(store.clone()),
        },
        link: link.clone(),
        metrics: ops.metrics.clone(),
        publish_timeout: Duration::from_millis(intake.publish_timeout),
    };
    let mut duties = tokio::task::JoinSet::new();
    duties.spawn(sources::process::run(adapters.clone(), emitter.clone(), stop.clone()));
    for adapter in &adapters {
        let (adapter, emitter, stop) = (adapter.clone(), emitter.clone(), stop.clone());
        duties.spawn(async move { adapter.run(emitter.context.clone(), emitter, stop).await });
    }
    let shared = Arc::new(server::Shared {
        keys: sources.iter().map(|s| s.keys.clone()).collect(),
        sources,
        limits: Limits {
            max_body_bytes: intake.max_body_bytes,
            max_depth: intake.max_depth,
            max_events: intake.max_events,
        },
        tolerance: Duration::from_millis(intake.tolerance),
        publish_timeout: Duration::from_millis(intake.publish_timeout),
        exchange: Topology::of(&config).events_exchange(),
        guard: guard::Guard::new(store.clone()),
        link,
        metrics: ops.metrics.clone(),
        adapters,
        emitter,
    });
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(server.address = %address, "intake serving POST {} on {scheme}://{address}", server::EVENTS_PATH);
    let (router, stopped) = (server::router(shared), stop.clone().cancelled_owned());
    let serving = async {
        match tls {
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor);
                axum::serve(listener, router).with_graceful_shutdown(stopped).await
            }
            None => axum::serve(listener, router).with_graceful_shutdown(stopped).await,
        }
    };
    let served = drain(serving, &stop, config.shutdown_grace()).await;
    stop.cancel();
    while duties.join_next().await.is_some() {}
    unlink.cancel();
    let _stopped = maintaining.await;
    served.map_err(|source| IntakeError::Listen { address, source })
}

/// Runs `serving` (a server that stops accepting on `stop` and then waits
/// for the requests it is answering) and gives those requests `grace`
/// after `stop`: past it, the ones left are cut off. Their senders get no
/// answer and retry, which is safe: events carry ids and sequences.
async fn drain(
    serving: impl Future<Output = std::io::Result<()>>,
    stop: &CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let deadline = async {
        stop.cancelled().await;
        tracing::info!("intake stopping: no new connections; answering the requests in flight");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = serving => served,
        () = deadline => {
            let grace_ms = grace.as_millis() as u64;
            tracing::warn!(grace_ms, "grace period over; requests still open were cut off unanswered");
            Ok(())
        }
    }
}
