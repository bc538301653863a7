//! The mixed workload: E events (60% hires, 20% movers, 20% leavers) across
//! A apps, published as fast as confirms allow, then waited on until the
//! fleet has settled. Throughput is measured from the first publish to the
//! last SCIM answer; every account is then checked against its person's
//! last event (nothing lost; see `crate::verify`). Afterwards, on the now idle fleet, leavers are
//! probed one at a time: publish → deactivated and verified in every app.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scimfleet_devkit::fleet::{Fleet, FleetError};
use scimfleet_schemas::{AppId, PersonId};
use serde_json::{Value, json};

use super::{clear_logs, inject_latency, publish};
use crate::measure::{JobLatencies, Percentiles, Requests, calls_json, job_latencies, round};
use crate::params::Params;
use crate::sys::{Cost, Meter};
use crate::workload::{self, Kind, Planned};

/// How long the whole workload may take to settle before the run fails.
const SETTLE_WITHIN: Duration = Duration::from_secs(3600);
/// How often a leaver probe looks whether every app has verified the deprovision.
const PROBE_POLL: Duration = Duration::from_millis(20);
/// How long one leaver probe may take before the run fails.
const PROBE_WITHIN: Duration = Duration::from_secs(60);

/// Figures of the mixed workload.
#[derive(Debug)]
pub struct Mixed {
    /// Events published.
    pub events: usize,
    /// Jobs the scheduler published.
    pub jobs: u64,
    /// Requests the apps answered.
    pub requests: Requests,
    /// Seconds from the first publish to the last SCIM answer.
    pub seconds: f64,
    /// Seconds the publishing took.
    pub publish_seconds: f64,
    /// Job latency over every (app, person).
    pub latency: Percentiles,
    /// The same, per kind of the person's last event.
    pub latency_by_kind: Vec<(&'static str, Percentiles)>,
    /// (app, person) pairs with no write after their last event, by kind of that event.
    pub without_write: Vec<(&'static str, usize)>,
    /// Accounts not in their desired state after settling.
    pub mismatches: Vec<String>,
    /// What the phase cost.
    pub cost: Cost,
    /// Average event body, bytes (the broker limit sends messages of this size).
    pub event_bytes: usize,
    /// Leaver probes on the idle fleet: publish → deactivated and verified in every app.
    pub idle_leavers: Percentiles,
}

impl Mixed {
    /// SCIM requests per second.
    pub fn ops_per_s(&self) -> f64 {
        self.requests.total as f64 / self.seconds
    }

    /// Events per second, end to end.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    /// RabbitMQ messages (events and jobs) moved per second.
    pub fn broker_messages_per_s(&self) -> f64 {
        (self.events as f64 + self.jobs as f64) / self.seconds
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let by_kind: serde_json::Map<String, Value> =
            self.latency_by_kind.iter().map(|(k, p)| ((*k).to_owned(), p.to_json())).collect();
        json!({
            "events": self.events, "jobs": self.jobs,
            "scim_requests": self.requests.total, "scim_writes": self.requests.writes,
            "scim_reads": self.requests.total - self.requests.writes,
            "scim_error_answers": self.requests.errors,
            "scim_calls": calls_json(&self.requests.calls),
            "seconds": round(self.seconds * 1000.0) / 1000.0,
            "publish_seconds": round(self.publish_seconds * 1000.0) / 1000.0,
            "scim_ops_per_s": round(self.ops_per_s()), "events_per_s": round(self.events_per_s()),
            "broker_messages_per_s": round(self.broker_messages_per_s()),
            "job_latency": self.latency.to_json(), "job_latency_by_last_event": by_kind,
            "pairs_without_write_after_last_event": self.without_write.iter().map(|(k, n)| ((*k).to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "mismatched_accounts": self.mismatches.len(),
            "mismatch_examples": self.mismatches.iter().take(5).collect::<Vec<_>>(),
            "event_bytes_avg": self.event_bytes,
            "idle_leaver_publish_to_verified_all_apps": self.idle_leavers.to_json(),
            "cost": self.cost.to_json(),
        })
    }
}

/// Runs the mixed workload and the idle leaver probes.
pub async fn run(params: &Params) -> Result<Mixed, FleetError> {
    let policy =
        workload::policy(params.apps, params.teams, &format!("concurrency = {}", params.concurrency), None);
    let mut fleet = Fleet::start(&policy).await?;
    // Further replicas compete for the same queues, as extra worker
    // processes would; leases keep each person's jobs one at a time.
    for _ in 1..params.workers {
        fleet.spawn_worker(None);
    }
    inject_latency(&fleet, params.latency_ms);
    let planned = workload::mixed(params.events, "B", params.teams);
    let bodies: Vec<Vec<u8>> =
        planned.iter().map(|p| serde_json::to_vec(&p.event)).collect::<Result<_, _>>()?;
    let event_bytes = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len().max(1);

    let meter = Meter::start();
    let started = Instant::now();
    let published = publish(&mut fleet, &planned).await?;
    let publish_seconds = started.elapsed().as_secs_f64();
    fleet.wait_settled(SETTLE_WITHIN).await?;
    let cost = meter.finish().await;

    let mut requests = Requests::default();
    let mut pairs = JobLatencies::default();
    let mut by_kind: HashMap<Kind, Vec<Duration>> = HashMap::new();
    let mut missing: HashMap<Kind, usize> = HashMap::new();
    let kind_of: HashMap<&str, Kind> = planned.iter().map(|p| (p.person.as_str(), p.kind)).collect();
    for server in fleet.servers().values() {
        let log = server.requests();
        requests = requests.add(Requests::of(&log));
        let app = job_latencies(server, &log, &published);
        for person in app.without_write {
            if let Some(kind) = kind_of.get(person.as_str()) {
                *missing.entry(*kind).or_default() += 1;
            }
        }
        for (person, latency) in app.samples {
            if let Some(kind) = kind_of.get(person.as_str()) {
                by_kind.entry(*kind).or_default().push(latency);
            }
            pairs.samples.push((person, latency));
        }
    }
    let last = requests.last_answer.ok_or("the apps answered no request")?;
    let servers = fleet.servers().iter().map(|(app, server)| (app.to_string(), server));
    let mismatches = crate::verify::mismatches(servers, &planned);
    clear_logs(&fleet);

    let idle_leavers = probe_idle_leavers(params.teams, &mut fleet, &planned, params.leavers).await?;
    let jobs = fleet.scheduler().jobs_published;
    fleet.stop().await?;
    let kinds = [(Kind::Hire, "hire"), (Kind::Mover, "mover"), (Kind::Leaver, "leaver")];
    let without_write = kinds.iter().map(|(k, name)| (*name, missing.get(k).copied().unwrap_or(0))).collect();
    let latency_by_kind = kinds
        .iter()
        .map(|(k, name)| (*name, Percentiles::of(by_kind.get(k).map_or(&[][..], Vec::as_slice))))
        .collect();
    Ok(Mixed {
        events: planned.len(),
        jobs,
        requests,
        seconds: last.duration_since(started).as_secs_f64(),
        publish_seconds,
        latency: Percentiles::of(&pairs.durations()),
        latency_by_kind,
        without_write,
        mismatches,
        cost,
        event_bytes,
        idle_leavers,
    })
}

/// Terminates `count` people who stayed through the workload, one at a time
/// on the idle fleet; each latency is from the publish to the answer of the
/// last write (the deactivation) in the slowest app.
async fn probe_idle_leavers(
    teams: usize,
    fleet: &mut Fleet,
    planned: &[Planned],
    count: usize,
) -> Result<Percentiles, FleetError> {
    let stayers = workload::stayers(planned);
    let mut samples = Vec::new();
    for person in stayers.iter().rev().take(count) {
        let probe = workload::event(person, Kind::Leaver, "idle", teams);
        samples.push(probe_leaver(fleet, &probe).await?);
        clear_logs(fleet);
    }
    Ok(Percentiles::of(&samples))
}

/// Publishes one leaver and waits until every app has deactivated the
/// account *and* read it back as gone (verification); returns
/// publish → the last app's verified read-back, from the evidence records.
pub async fn probe_leaver(fleet: &mut Fleet, probe: &Planned) -> Result<Duration, FleetError> {
    let started = Instant::now();
    let published_at = chrono::Utc::now();
    fleet.publish_json(std::slice::from_ref(&probe.event)).await?;
    let person = PersonId::parse(&probe.person)?;
    let sequence = probe.event["data"]["sequence"].as_u64().ok_or("the probe has no sequence")?;
    until_verified(fleet, &person, sequence, published_at, started).await
}

/// Waits (from `started`, at most [`PROBE_WITHIN`]) until every app has
/// verified `person`'s deprovision at `sequence`; returns `since` → the
/// last app's verified read-back, from the evidence records.
pub async fn until_verified(
    fleet: &Fleet,
    person: &PersonId,
    sequence: u64,
    since: chrono::DateTime<chrono::Utc>,
    started: Instant,
) -> Result<Duration, FleetError> {
    let deadline = started + PROBE_WITHIN;
    let apps: Vec<AppId> = fleet.servers().keys().cloned().collect();
    let mut verified_at = Vec::with_capacity(apps.len());
    for app in &apps {
        // One Redis read per app and poll: the poll only notices completion,
        // the figure is the time the worker recorded in the evidence.
        loop {
            let record = fleet.store().evidence().get(app, person, sequence).await?;
            if let Some(check) = record.and_then(|r| r.first_verification).filter(|c| c.verified) {
                verified_at.push(check.at);
                break;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("leaver {person} not verified gone from {app} within {PROBE_WITHIN:?}").into()
                );
            }
            tokio::time::sleep(PROBE_POLL).await;
        }
    }
    let last = verified_at.into_iter().max().unwrap_or(since);
    Ok((last - since).to_std().unwrap_or_default())
}
