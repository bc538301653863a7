//! Leavers behind an upsert backlog (the leaver-first lane).
//!
//! The fleet starts without a worker; `backlog` hires are published and
//! scheduled, so `backlog × apps` upsert jobs sit in the apps' work queues.
//! Then the worker starts and leavers are probed one at a time: people whose
//! accounts already exist in every app (inserted into the test servers, as
//! accounts that predate scimfleet), terminated while the backlog drains.
//! Each probe's latency is publish → the last app's answer to the
//! deactivation. The upserts still queued at each probe are counted from the
//! creates the apps have seen, to show the backlog was really there; it is
//! not drained: stopping the fleet deletes it.

use std::time::{Duration, Instant};

use scimfleet_devkit::fleet::{Fleet, FleetError};
use scimfleet_devkit::scim_server::Resource;
use scimfleet_schemas::scim::ScimUser;
use serde_json::{Value, json};

use super::mixed::probe_leaver;
use super::{inject_latency, publish};
use crate::measure::{Percentiles, round};
use crate::params::Params;
use crate::sys::{Cost, Meter};
use crate::workload::{self, Kind};

/// How long scheduling the backlog may take before the run fails.
const SCHEDULE_WITHIN: Duration = Duration::from_secs(1800);

/// Figures of the backlog scenario.
#[derive(Debug)]
pub struct Backlog {
    /// Hire events queued.
    pub hires: usize,
    /// Upsert jobs queued (hires × apps).
    pub upserts: usize,
    /// Seconds to publish and schedule the backlog (no worker running).
    pub schedule_seconds: f64,
    /// Leaver probes: publish → deactivated and verified in every app.
    pub leavers: Percentiles,
    /// Upserts not yet applied when the first and the last probe finished.
    pub queued_at_first: usize,
    /// See `queued_at_first`.
    pub queued_at_last: usize,
    /// What the phase cost (scheduling and probes).
    pub cost: Cost,
}

impl Backlog {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "backlog_hires": self.hires, "backlog_upsert_jobs": self.upserts,
            "schedule_seconds": round(self.schedule_seconds * 1000.0) / 1000.0,
            "scheduler_events_per_s": round(self.hires as f64 / self.schedule_seconds),
            "leaver_publish_to_verified_all_apps": self.leavers.to_json(),
            "upserts_still_queued_at_first_probe": self.queued_at_first,
            "upserts_still_queued_at_last_probe": self.queued_at_last,
            "cost": self.cost.to_json(),
        })
    }
}

/// Runs the backlog scenario.
pub async fn run(params: &Params) -> Result<Backlog, FleetError> {
    let policy =
        workload::policy(params.apps, params.teams, &format!("concurrency = {}", params.concurrency), None);
    let mut fleet = Fleet::start_without_worker(&policy).await?;
    inject_latency(&fleet, params.latency_ms);
    let probes: Vec<_> = (0..params.leavers)
        .map(|n| workload::event(&format!("L{n}"), Kind::Leaver, "backlog", params.teams))
        .collect();
    for probe in &probes {
        for server in fleet.servers().values() {
            let mut account = ScimUser::new(format!("{}@example.com", probe.person.to_lowercase()));
            account.external_id = Some(probe.person.clone());
            account.active = Some(true);
            server.insert_user(account);
        }
    }
    let meter = Meter::start();
    let started = Instant::now();
    let hires: Vec<_> = (0..params.backlog)
        .map(|n| workload::event(&format!("Q{n}"), Kind::Hire, "backlog", params.teams))
        .collect();
    publish(&mut fleet, &hires).await?;
    fleet.wait_scheduled(SCHEDULE_WITHIN).await?;
    let schedule_seconds = started.elapsed().as_secs_f64();

    fleet.spawn_worker(None);
    let upserts = params.backlog * params.apps;
    let queued = |fleet: &Fleet| {
        let created: usize = fleet.servers().values().map(|s| s.count("POST", Resource::Users)).sum();
        upserts.saturating_sub(created)
    };
    let (mut samples, mut queued_at_first, mut queued_at_last) = (Vec::new(), 0, 0);
    for probe in &probes {
        samples.push(probe_leaver(&mut fleet, probe).await?);
        queued_at_last = queued(&fleet);
        if samples.len() == 1 {
            queued_at_first = queued_at_last;
        }
    }
    let cost = meter.finish().await;
    fleet.stop().await?;
    Ok(Backlog {
        hires: params.backlog,
        upserts,
        schedule_seconds,
        leavers: Percentiles::of(&samples),
        queued_at_first,
        queued_at_last,
        cost,
    })
}
