//! RabbitMQ: connection, topology, confirmed publishing, dead-lettering and
//! settling deliveries.
//!
//! Every process declares the whole topology at start-up (declarations are
//! idempotent), so no deployment step has to run first and a process that
//! starts against an empty broker just works.

mod consume;
pub mod depth;
pub mod events;
mod headers;
pub mod inspect;
mod publish;
mod settle;
mod sources;
mod topology;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};

use crate::config::BrokerConfig;
use crate::tls::{TlsError, TlsMaterial};

pub use consume::{ConsumeError, consume};
pub use headers::{RECEIVED_AT_HEADER, dead_letter_headers, header_str, read_dead_letter, received_at};
pub use publish::{Outgoing, PublishError, Publisher, persistent};
pub use settle::{REQUEUE_PAUSE, Verdict, settle};
pub use topology::{RETRY_APP_HEADER, RETRY_TIER_HEADER, Topology};

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

/// Connects to RabbitMQ as `[broker]` says: `amqps://` trusting its
/// `ca_file` (else the bundled web roots) and presenting its client
/// certificate when set. `name` shows in the management UI's connection list.
pub async fn connect(broker: &BrokerConfig, name: &str) -> Result<Connection, BrokerError> {
    crate::tls::install_crypto_provider();
    // Read on every connect, so a renewed certificate is used after a reconnect.
    let tls = lapin_tls(broker.tls_files().load().map_err(BrokerError::Tls)?);
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime().map_err(BrokerError::Connect)?;
    Connection::connect_with_config(broker.url.expose(), properties, tls, runtime)
        .await
        .map_err(BrokerError::Connect)
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
