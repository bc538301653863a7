//! The in-run limits the fleet is compared with: what the HTTP stack and
//! RabbitMQ do on their own, on the same machine, in the same run.

pub mod broker;
pub mod http;
pub mod intake;

/// Limit (c): (a) and (b) run at once, each with its whole workload, as the
/// fleet needs both on one machine. Neither gets the machine to itself, so
/// this is the ceiling of an event's I/O alone on this host: a fleet that
/// did nothing but that I/O would reach it.
#[derive(Debug)]
pub struct Combined {
    /// The HTTP loop's figures while sharing the machine.
    pub http: http::HttpLimit,
    /// The broker loop's figures while sharing the machine.
    pub broker: broker::BrokerLimit,
    /// Seconds until both had finished.
    pub seconds: f64,
}
