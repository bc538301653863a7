//! Sampling queue depths into the process's metrics.
//!
//! Depths are read by [`super::inspect`] (passive declares over AMQP, no
//! management plugin). Every replica samples the queues of its apps;
//! dashboards take `max by (app, queue)`. Unacknowledged counts need the
//! management API and are left to `scimfleet status`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often every process samples its queues (the README and dashboards
/// say "every 5 s").
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// One gauge pair: an app (or `events`), a queue kind, and the queues summed into it.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The `app` label.
    pub app: String,
    /// The `queue` label (`work`, `leavers`, `dlq`, `retry`, `recheck`, `intake`).
    pub queue: &'static str,
    /// The queues whose counts are added up (the delay tiers of one app, say).
    pub names: Vec<String>,
}

/// Samples `queues` on `channel` (its own: a failed passive declare closes
/// it) every [`SAMPLE_EVERY`] until `shutdown` or a channel failure (the process's
/// supervisor reconnects; sampling resumes with it).
pub async fn sample(
    channel: lapin::Channel,
    queues: Vec<Sampled>,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        for sampled in &queues {
            // A missing queue closes the channel: stop until the next connection.
            let Ok(depth) = super::inspect::total_depth(&channel, &sampled.names).await else { return };
            metrics.queue(&sampled.app, sampled.queue, depth.messages, depth.consumers);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
    let _closed = super::within("a close", channel.close(200, "sampling stopped".into())).await;
}

/// The queues of `apps` (work, leaver lane, dead letters, retry and re-check tiers).
pub fn app_queues(topology: &super::Topology, apps: &[scimfleet_schemas::AppId]) -> Vec<Sampled> {
    let mut queues = Vec::new();
    for app in apps {
        let one = |queue, names| Sampled { app: app.to_string(), queue, names };
        let named = topology.queues(app);
        queues.push(one("work", vec![named.work]));
        queues.push(one("leavers", vec![named.leavers]));
        queues.push(one("dlq", vec![named.dlq]));
        queues.push(one("retry", named.retries));
        queues.push(one("recheck", named.rechecks));
    }
    queues
}

/// The scheduler's queues: the events intake and its dead letters.
pub fn event_queues(topology: &super::Topology) -> Vec<Sampled> {
    let one = |queue, name| Sampled { app: "events".to_owned(), queue, names: vec![name] };
    vec![one("intake", topology.events_queue()), one("dlq", topology.events_dlq())]
}
