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
mod topology;

use lapin::{Connection, ConnectionProperties};

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

/// Connects to RabbitMQ; `name` shows in the management UI's connection list.
pub async fn connect(url: &crate::Secret, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.expose(), properties).await.map_err(BrokerError::Connect)
}
