//! `scimfleet publish`: events from a JSON Lines file (or standard input)
//! onto the events exchange, with publisher confirms, after declaring the
//! topology so that nothing published is unroutable.

use std::io::{BufRead, Write};
use std::path::Path;

use scimfleet_runtime::Config;
use scimfleet_runtime::broker::events::PublishReport;
use scimfleet_runtime::broker::{self, Publisher, Topology};

use crate::AdminError;

/// Publishes the events of `file` (`-`: standard input); writes how many
/// were read and confirmed to `out`.
pub async fn publish(config: &Config, file: &Path, out: &mut impl Write) -> Result<(), AdminError> {
    let report = if file.as_os_str() == "-" {
        publish_lines(config, "scimfleet-publish", std::io::stdin().lock()).await?
    } else {
        let input = std::fs::File::open(file).map_err(AdminError::file("open", file))?;
        publish_lines(config, "scimfleet-publish", std::io::BufReader::new(input)).await?
    };
    writeln!(out, "{} events read, {} confirmed by RabbitMQ", report.read, report.confirmed)?;
    Ok(())
}

/// Publishes the events of `input` (JSON Lines) with confirms, on a
/// connection named `name`, after making sure the topology is there.
pub(crate) async fn publish_lines(
    config: &Config,
    name: &str,
    input: impl BufRead,
) -> Result<PublishReport, AdminError> {
    let connection = broker::connect(&config.broker, name).await?;
    let publisher = Publisher::open(&connection).await?;
    let topology = Topology::of(config);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    topology.ensure(publisher.channel(), &apps, config.broker.declare_topology).await?;
    let report = broker::events::publish_jsonl(&publisher, &topology, input).await;
    let _closed =
        scimfleet_runtime::broker::within("a close", connection.close(200, "publish done".into())).await;
    Ok(report?)
}
