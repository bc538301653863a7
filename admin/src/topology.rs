//! `scimfleet topology declare`: the exchanges and queues of every app,
//! declared once by an operator whose user may configure them, for
//! deployments whose roles run with `broker.declare_topology = false` and
//! users that may not.

use std::io::Write;

use scimfleet_runtime::Config;
use scimfleet_runtime::broker::{self, Topology};

use crate::AdminError;

/// Declares the topology of every configured app; writes what it did to `out`.
pub async fn declare_topology(config: &Config, out: &mut impl Write) -> Result<(), AdminError> {
    let connection = broker::connect(&config.broker, "scimfleet-topology").await?;
    let channel = connection.create_channel().await.map_err(broker::BrokerError::Connect)?;
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    Topology::of(config).declare(&channel, &apps).await?;
    writeln!(out, "topology of namespace {} declared for {} apps", config.namespace, apps.len())?;
    let _closed = connection.close(200, "topology declared".into()).await;
    Ok(())
}
