//! The fleet scenarios: the mixed workload (throughput, job latency, then
//! leavers on the idle fleet), leavers behind an upsert backlog, the
//! dead neighbour, RISC SETs against native leavers (`ssf`), and the
//! operator console's pages at size (`console`).
//!
//! Each scenario starts a fleet of its own (`scimfleet_devkit::fleet::Fleet`:
//! one in-process SCIM test server per app, the scheduler and one worker on
//! a fresh namespace) and stops it, deleting its queues and keys, before the
//! next starts, so scenarios never share the machine.

pub mod backlog;
pub mod console;
pub mod isolation;
pub mod mixed;
pub mod ssf;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scimfleet_devkit::fleet::{Fleet, FleetError};
use scimfleet_devkit::scim_server::Faults;

use crate::workload::Planned;

/// Events per confirmed publish batch: small enough that a batch's publish
/// time (which job latencies may over-state by) stays a few milliseconds,
/// large enough that confirms are pipelined.
pub const PUBLISH_BATCH: usize = 250;

/// Adds `latency_ms` to every request of every server of `fleet` (none when 0).
pub fn inject_latency(fleet: &Fleet, latency_ms: u64) {
    if latency_ms == 0 {
        return;
    }
    let latency = Duration::from_millis(latency_ms);
    for server in fleet.servers().values() {
        server.set_faults(Faults { latency: Some((latency, latency)), ..Faults::default() });
    }
}

/// Publishes `planned` in confirmed batches; returns, per person, when the
/// publish of the batch holding their last event started.
pub async fn publish(fleet: &mut Fleet, planned: &[Planned]) -> Result<HashMap<String, Instant>, FleetError> {
    let mut published = HashMap::with_capacity(planned.len());
    for batch in planned.chunks(PUBLISH_BATCH) {
        let events: Vec<serde_json::Value> = batch.iter().map(|p| p.event.clone()).collect();
        let started = Instant::now();
        fleet.publish_json(&events).await?;
        for p in batch {
            published.insert(p.person.clone(), started);
        }
    }
    Ok(published)
}

/// Forgets every server's request log, so memory stays bounded between phases.
pub fn clear_logs(fleet: &Fleet) {
    for server in fleet.servers().values() {
        server.clear_requests();
    }
}
