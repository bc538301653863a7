//! Publishing the kept remediation jobs, only once paging is over (a
//! deletion while paging would shift the app's pages), in confirmed batches.
//! Each deprovision asks the mass-deprovision guard first; what it holds
//! joins its scope's wave instead of going out.

use scimfleet_runtime::broker::{Outgoing, Topology, persistent};
use scimfleet_runtime::guard::{Asker, Guarded};
use scimfleet_runtime::telemetry::propagation;
use scimfleet_schemas::{Job, JobAction};
use tracing::Span;

use super::{Remediate, Sweep, SweepError};

/// Remediation jobs published per batch of confirms.
const PUBLISH_BATCH: usize = 100;

/// The role named as the actor of what a sweep remediates.
const ACTOR: &str = "sweep";

/// Publishes the kept remediation jobs in batches, each confirmed; returns
/// how many were published and how many the guard held.
pub(super) async fn publish_fixes(
    sweep: &Sweep<'_>,
    remediate: Remediate<'_>,
) -> Result<(u64, u64), SweepError> {
    let exchange = remediate.topology.jobs_exchange();
    let trace_id = propagation::trace_id(&Span::current());
    let (mut published, mut held) = (0, 0);
    loop {
        let bodies = sweep.store.desired().pop_fixes(&sweep.app.id, sweep.run_id, PUBLISH_BATCH).await?;
        if bodies.is_empty() {
            return Ok((published, held));
        }
        let mut jobs: Vec<(String, &String, lapin::BasicProperties)> = Vec::with_capacity(bodies.len());
        for body in &bodies {
            let Ok(job) = Job::parse(body.as_bytes()) else { continue };
            let properties = persistent("application/json")
                .with_message_id(job.job_id.as_str().into())
                .with_type(job.action.name().into());
            let route = Topology::route(&job);
            if matches!(job.action, JobAction::Deactivate { .. } | JobAction::Delete { .. }) {
                // Already waiting in a wave (a leaver's deprovision): one
                // decision covers both.
                if sweep.store.held().of_person(&job.app, &job.person).await?.is_some() {
                    held += 1;
                    continue;
                }
                let person = remediate.pseudonyms.person(&job.person);
                let asker = Asker { actor: ACTOR, person: &person, trace_id: trace_id.clone() };
                if let Guarded::Held { .. } = remediate.guard.ask(sweep.app, job, asker).await? {
                    held += 1;
                    continue;
                }
            }
            jobs.push((route, body, properties));
        }
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
        published += remediate.publisher.publish_all(messages).await? as u64;
    }
}
