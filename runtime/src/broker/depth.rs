//! Sampling queue depths into the process's metrics.
//!
//! A passive `queue.declare` answers with the ready message count and the
//! consumer count of a queue without changing it
//! (<https://www.rabbitmq.com/docs/queues#declaration>), over AMQP, so no
//! management plugin is needed. Every replica samples the queues of its
//! apps; dashboards take `max by (app, queue)`. Unacknowledged counts need
//! the management API and are left to `scimfleet status`.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
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
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    loop {
        for sampled in &queues {
            let (mut messages, mut consumers) = (0u32, 0u32);
            for name in &sampled.names {
                match channel.queue_declare(name.as_str().into(), passive, FieldTable::default()).await {
                    Ok(queue) => {
                        messages = messages.saturating_add(queue.message_count());
                        consumers = consumers.saturating_add(queue.consumer_count());
                    }
                    // A missing queue closes the channel: stop until the next connection.
                    Err(_) => return,
                }
            }
            metrics.queue(&sampled.app, sampled.queue, messages, consumers);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
    let _closed = channel.close(200, "sampling stopped".into()).await;
}

/// The queues of `apps` (work, leaver lane, dead letters, retry and re-check tiers).
pub fn app_queues(topology: &super::Topology, apps: &[scimfleet_schemas::AppId]) -> Vec<Sampled> {
    let mut queues = Vec::new();
    for app in apps {
        let one = |queue, names| Sampled { app: app.to_string(), queue, names };
        queues.push(one("work", vec![topology.job_queue(app)]));
        queues.push(one("leavers", vec![topology.leaver_queue(app)]));
        queues.push(one("dlq", vec![topology.app_dlq(app)]));
        let retries = topology.retry_tiers_ms().iter().map(|&t| topology.retry_queue(app, t)).collect();
        queues.push(one("retry", retries));
        let rechecks =
            topology.recheck_delays_ms(app).iter().map(|&d| topology.recheck_queue(app, d)).collect();
        queues.push(one("recheck", rechecks));
    }
    queues
}

/// The scheduler's queues: the events intake and its dead letters.
pub fn event_queues(topology: &super::Topology) -> Vec<Sampled> {
    let one = |queue, name| Sampled { app: "events".to_owned(), queue, names: vec![name] };
    vec![one("intake", topology.events_queue()), one("dlq", topology.events_dlq())]
}
