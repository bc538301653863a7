//! Publishing the leavers and following the fleet until every job settled.

use std::time::{Duration, Instant};

use anyhow::bail;
use scimfleet_admin::dlq;
use scimfleet_runtime::Config;
use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent};

use super::{PROGRESS_EVERY, PUBLISH_BATCH, READY_WITHIN, ScaleParams, targets};
use crate::workload::{self, Kind};

/// What the drive of the run measured.
#[derive(Debug, Default)]
pub struct Run {
    /// Seconds publishing every leaver took.
    pub publish_seconds: f64,
    /// From the first publish until every job settled.
    pub seconds: f64,
    /// Events the scheduler accepted.
    pub events_accepted: u64,
    /// Jobs the worker settled as converged.
    pub jobs_converged: u64,
    /// Jobs the worker dead-lettered.
    pub jobs_dead_lettered: u64,
    /// Most job messages queued in RabbitMQ at once (sampled).
    pub peak_queued_jobs: u64,
    /// Whether every job settled before the timeout.
    pub finished: bool,
}

/// Publishes the leavers and waits until every job settled (or the timeout).
pub async fn drive(
    params: &ScaleParams,
    config: &Config,
    publisher: &Publisher,
    queues: &lapin::Channel,
    worker_ops: u16,
    scheduler_ops: u16,
) -> anyhow::Result<Run> {
    let topology = Topology::of(config);
    let apps: Vec<_> = config.apps.iter().map(|a| a.id.clone()).collect();
    let exchange = topology.events_exchange();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(params.timeout_s as u64);
    let mut run = Run::default();
    let mut next_progress = Instant::now();
    eprintln!("scale: publishing {} leavers...", params.people);
    let properties = persistent(broker::events::CLOUDEVENTS_JSON);
    for first in (0..params.people).step_by(PUBLISH_BATCH) {
        let last = (first + PUBLISH_BATCH).min(params.people);
        let bodies: Vec<Vec<u8>> = (first..last)
            .map(|n| {
                serde_json::to_vec(&workload::event(&targets::person(n), Kind::Leaver, "scale", 1).event)
            })
            .collect::<Result<_, _>>()?;
        let key = "person.terminated";
        let messages = bodies.iter().map(|body| Outgoing {
            exchange: &exchange,
            routing_key: key,
            body,
            properties: properties.clone(),
            mandatory: true,
        });
        publisher.publish_all(messages).await?;
        if Instant::now() >= next_progress {
            run.peak_queued_jobs = run.peak_queued_jobs.max(queued_jobs(queues, &topology, &apps).await?);
            next_progress = Instant::now() + PROGRESS_EVERY;
        }
    }
    run.publish_seconds = started.elapsed().as_secs_f64();
    eprintln!("scale: published in {:.1} s; draining...", run.publish_seconds);
    let total = params.jobs();
    loop {
        let queued = queued_jobs(queues, &topology, &apps).await?;
        run.peak_queued_jobs = run.peak_queued_jobs.max(queued);
        let worker = scrape(&http, worker_ops).await.unwrap_or_default();
        run.jobs_converged = sum(&worker, "scimfleet_jobs_total", "outcome=\"converged\"");
        run.jobs_dead_lettered = sum(&worker, "scimfleet_jobs_total", "outcome=\"dead_lettered\"");
        let scheduler = scrape(&http, scheduler_ops).await.unwrap_or_default();
        run.events_accepted = sum(&scheduler, "scimfleet_events_total", "outcome=\"accepted\"");
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "scale: {elapsed:>6.0} s  events accepted {:>8}  jobs converged {:>9}/{total}  queued {queued:>8}  dead-lettered {}",
            run.events_accepted, run.jobs_converged, run.jobs_dead_lettered
        );
        if run.jobs_converged + run.jobs_dead_lettered >= total && queued == 0 {
            run.finished = true;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// Job messages waiting in the apps' work and leaver queues.
async fn queued_jobs(
    channel: &lapin::Channel,
    topology: &Topology,
    apps: &[scimfleet_schemas::AppId],
) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for app in apps {
        let depth = broker::inspect::total_depth(channel, &topology.queues(app).lanes()).await?;
        total += u64::from(depth.messages);
    }
    Ok(total)
}

/// Messages in every dead-letter queue of the namespace.
pub async fn dead_letters(
    connection: &lapin::Connection,
    topology: &Topology,
    apps: &[scimfleet_schemas::AppId],
) -> anyhow::Result<u64> {
    let mut total = u64::from(dlq::count(connection, topology, &dlq::Target::Events).await?);
    for app in apps {
        total += u64::from(dlq::count(connection, topology, &dlq::Target::App(app.clone())).await?);
    }
    Ok(total)
}

/// The `/metrics` text of the process listening on `port`.
async fn scrape(http: &reqwest::Client, port: u16) -> anyhow::Result<String> {
    Ok(http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.error_for_status()?.text().await?)
}

/// The sum of the samples of `family` whose labels contain `label`.
fn sum(text: &str, family: &str, label: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.starts_with(family) && line[family.len()..].starts_with('{') && line.contains(label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits for `/readyz` on `port` to answer 200.
pub async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let answer = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("/readyz on port {port} not 200 within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_add_the_matching_labelled_samples_only() {
        let text = "\
# TYPE scimfleet_jobs counter
scimfleet_jobs_total{app=\"app1\",action=\"deactivate\",outcome=\"converged\"} 7
scimfleet_jobs_total{app=\"app2\",action=\"deactivate\",outcome=\"converged\"} 5
scimfleet_jobs_total{app=\"app2\",action=\"deactivate\",outcome=\"retried\"} 2
scimfleet_jobs_totally_else{outcome=\"converged\"} 100
";
        assert_eq!(sum(text, "scimfleet_jobs_total", "outcome=\"converged\""), 12);
        assert_eq!(sum(text, "scimfleet_jobs_total", "outcome=\"dead_lettered\""), 0);
    }
}
