//! `scimfleet topology declare`: the exchanges and queues of every app
//! (and of every `[[sources]]` entry the intake serves),
//! declared once by an operator whose user may configure them, for
//! deployments whose roles run with `broker.declare_topology = false` and
//! users that may not.
//!
//! `scimfleet topology definitions`: the same topology, the vhost and the
//! role users as RabbitMQ definitions (JSON) to import instead
//! (`deploy/rabbitmq/definitions.json` is the example configuration's).

use std::io::Write;

use scimfleet_runtime::Config;
use scimfleet_runtime::broker::{self, Topology};

use crate::AdminError;

/// Declares the topology of every configured app; writes what it did to `out`.
pub async fn declare_topology(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let connection = broker::connect(&config.broker, "scimfleet-topology").await?;
    let channel = connection.create_channel().await.map_err(broker::BrokerError::Connect)?;
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    let topology = Topology::of(config);
    topology.declare(&channel, &apps).await?;
    let sources: Vec<&str> = config.sources.iter().filter(|s| s.is_served()).map(|s| s.id()).collect();
    if !sources.is_empty() {
        topology.declare_sources(&channel, &sources).await?;
    }
    writeln!(
        out,
        "topology of namespace {} declared for {} apps and {} sources",
        config.namespace,
        apps.len(),
        sources.len()
    )?;
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "topology declared".into())).await;
    Ok(())
}

/// Writes the RabbitMQ definitions of the configuration (vhost, role users
/// without passwords and their permissions, exchanges, queues, bindings) to
/// `out` as pretty JSON; connects to nothing.
pub fn write_definitions(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let definitions = broker::definitions(config);
    serde_json::to_writer_pretty(&mut *out, &definitions)?;
    writeln!(out)?;
    Ok(())
}
