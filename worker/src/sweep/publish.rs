//! Publishing the kept remediation jobs, only once paging is over (a
//! deletion while paging would shift the app's pages), in confirmed batches.

use scimfleet_runtime::broker::{Outgoing, Publisher, Topology, persistent};
use scimfleet_schemas::Job;

use super::{Sweep, SweepError};

/// Remediation jobs published per batch of confirms.
const PUBLISH_BATCH: usize = 100;

/// Publishes the kept remediation jobs in batches, each confirmed.
pub(super) async fn publish_fixes(
    sweep: &Sweep<'_>,
    publisher: &Publisher,
    topology: &Topology,
) -> Result<u64, SweepError> {
    let exchange = topology.jobs_exchange();
    let mut published = 0;
    loop {
        let bodies = sweep.store.desired().pop_fixes(&sweep.app.id, sweep.run_id, PUBLISH_BATCH).await?;
        if bodies.is_empty() {
            return Ok(published);
        }
        let jobs: Vec<(String, &String, lapin::BasicProperties)> = bodies
            .iter()
            .filter_map(|body| {
                let job = Job::parse(body.as_bytes()).ok()?;
                let properties = persistent("application/json")
                    .with_message_id(job.job_id.as_str().into())
                    .with_type(job.action.name().into());
                Some((Topology::route(&job), body, properties))
            })
            .collect();
        let messages: Vec<Outgoing<'_>> = jobs
            .iter()
            .map(|(routing_key, body, properties)| Outgoing {
                exchange: &exchange,
                routing_key,
                body: body.as_bytes(),
                properties: properties.clone(),
                mandatory: true,
            })
            .collect();
        published += publisher.publish_all(messages).await? as u64;
    }
}
