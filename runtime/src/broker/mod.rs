//! RabbitMQ: connection, topology, confirmed publishing, dead-lettering and
//! settling deliveries.
//!
//! Every process declares the whole topology at start-up (declarations are
//! idempotent), so no deployment step has to run first and a process that
//! starts against an empty broker just works.

mod consume;
mod definitions;
mod delay;
pub mod depth;
pub mod events;
mod headers;
pub mod inspect;
mod publish;
mod settle;
mod sources;
mod topology;
mod urls;
mod within;

use std::time::Duration;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};

use crate::config::BrokerConfig;
use crate::tls::{TlsError, TlsMaterial};

pub use consume::{ConsumeError, consume};
pub use definitions::{
    BindingDeclaration, Declarations, ExchangeDeclaration, QueueDeclaration, RoleUser, definitions,
    role_users, table, vhost_of,
};
pub use headers::{RECEIVED_AT_HEADER, dead_letter_headers, header_str, read_dead_letter, received_at};
pub use publish::{NACK_PATIENCE, Outgoing, PublishError, Publisher, persistent};
pub use settle::{REQUEUE_PAUSE, Verdict, settle};
pub use topology::{RETRY_APP_HEADER, RETRY_TIER_HEADER, Topology};
pub use urls::BrokerUrls;
pub use within::{STOP_WAIT, within};

/// A broker operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A queue of the topology is missing (or this user may not see it)
    /// while `broker.declare_topology` is off.
    #[error(
        "queue {queue} is missing or not accessible: with broker.declare_topology = false the topology is \
         declared by an operator with `scimfleet topology declare`"
    )]
    Missing {
        /// The queue.
        queue: String,
        /// The client error.
        #[source]
        source: lapin::Error,
    },
    /// Connecting failed. The URL is not shown: it may hold a password.
    #[error("cannot connect to RabbitMQ")]
    Connect(#[source] lapin::Error),
    /// A TLS file of `[broker]` could not be used.
    #[error("cannot set up TLS to RabbitMQ")]
    Tls(#[source] TlsError),
    /// A channel operation failed.
    #[error("RabbitMQ {operation} failed")]
    Channel {
        /// What was being done, e.g. `declare queue acme.jobs.github`.
        operation: String,
        /// The client error.
        #[source]
        source: lapin::Error,
    },
}

impl BrokerError {
    /// Maps a client error of `operation` to [`BrokerError::Channel`], for
    /// `map_err` (crates that drive their own channels use it too).
    pub fn channel(operation: impl Into<String>) -> impl FnOnce(lapin::Error) -> Self {
        let operation = operation.into();
        move |source| Self::Channel { operation, source }
    }
}

/// How long one node may take to accept a connection before the next is
/// tried: a node that is unreachable (not refusing) must not hold up the
/// others for the operating system's TCP timeout of minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects to RabbitMQ as `[broker]` says: `amqps://` trusting its
/// `ca_file` (else the bundled web roots) and presenting its client
/// certificate when set. With several URLs (the nodes of a cluster) it
/// starts at a random one and returns the first that connects, so a node
/// that is down is skipped (see `urls.rs`). `name` shows in the management
/// UI's connection list.
pub async fn connect(broker: &BrokerConfig, name: &str) -> Result<Connection, BrokerError> {
    crate::tls::install_crypto_provider();
    // Read on every connect, so a renewed certificate is used after a reconnect.
    let tls = lapin_tls(broker.tls_files().load().map_err(BrokerError::Tls)?);
    let nodes = broker.url.len();
    let mut last = None;
    for (index, url) in broker.url.attempt_order(rand::random::<u32>() as usize) {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let runtime = lapin::runtime::default_runtime().map_err(BrokerError::Connect)?;
        let attempt = Connection::connect_with_config(url.expose(), properties, tls.clone(), runtime);
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(error)) => error,
            Err(_elapsed) => lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        if nodes > 1 {
            // Handled here (the next node is tried), so logged here; by
            // position in `broker.url`, never the URL (it may hold a password).
            tracing::warn!(
                messaging.system = "rabbitmq",
                broker.node = index + 1,
                broker.nodes = nodes,
                error = %crate::telemetry::error_chain(&error),
                "cannot connect to RabbitMQ node {} of {nodes}; trying the next", index + 1
            );
        }
        last = Some(error);
    }
    // A validated configuration names at least one URL, so `last` is set.
    Err(BrokerError::Connect(last.unwrap_or_else(|| {
        lapin::Error::from(std::io::Error::new(std::io::ErrorKind::NotFound, "broker.url names no URL"))
    })))
}

/// The client's TLS settings; unused for `amqp://`.
fn lapin_tls(material: TlsMaterial) -> OwnedTLSConfig {
    OwnedTLSConfig {
        cert_chain: material.ca_pem,
        identity: material.identity.map(|identity| OwnedIdentity::PKCS8 {
            pem: identity.cert_pem,
            // The client wants the key as PEM bytes despite the variant's name.
            key: identity.key_pem.expose().as_bytes().to_vec(),
        }),
    }
}
