//! The dead neighbour (guarantee 4): the healthy
//! apps' p99 job latency with one app fully down, against the same run with
//! every app healthy.
//!
//! Both runs use the same policy: the last app has a small retry budget
//! (`max_attempts = 3`, `max_age_ms = 3000`) and the worker short retry
//! tiers (50, 200, 1000 ms) and a quick breaker (5 failures, 1 s cool-down),
//! as in `tests/it/isolation.rs`. In the second run that app's server is
//! stopped before the publish, so its address refuses connections: the
//! harshest "down". Each run publishes the hires of `people` people and
//! waits until settled (the dead app's jobs dead-lettered). The baseline
//! runs first and is stopped before the second starts, so they never share
//! the machine. Job latency is as in [`crate::measure`].

use std::collections::BTreeMap;
use std::time::Duration;

use scimfleet_devkit::fleet::{Fleet, FleetError};
use serde_json::{Value, json};

use super::{inject_latency, publish};
use crate::measure::{Percentiles, job_latencies, round};
use crate::params::Params;
use crate::workload::{self, Kind};

/// The acceptance bound: healthy p99 with a dead neighbour ≤ 2 × baseline.
pub const MAX_RATIO: f64 = 2.0;
const SETTLE_WITHIN: Duration = Duration::from_secs(1800);
const WORKER: &str = "retry_tiers_ms = [50, 200, 1000]\nbreaker_failures = 5\nbreaker_cooldown_ms = 1000";

/// Figures of the dead-neighbour scenario.
#[derive(Debug)]
pub struct Isolation {
    /// The app that was down.
    pub dead_app: String,
    /// Per healthy app: p99 (ms) with every app healthy, and with the dead one down.
    pub p99_ms: BTreeMap<String, (f64, f64)>,
    /// All healthy apps' jobs pooled, both runs.
    pub pooled: (Percentiles, Percentiles),
    /// Jobs of the dead app dead-lettered in the second run.
    pub dead_lettered: u64,
    /// Seconds each run took to settle.
    pub settle_seconds: (f64, f64),
}

impl Isolation {
    /// The worst healthy app's ratio of p99 with the dead app to p99 without.
    pub fn worst_ratio(&self) -> f64 {
        self.p99_ms.values().map(|(base, dead)| dead / base.max(0.001)).fold(0.0, f64::max)
    }

    /// Whether the worst ratio is within [`MAX_RATIO`].
    pub fn passed(&self) -> bool {
        self.worst_ratio() <= MAX_RATIO
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        let per_app: serde_json::Map<String, Value> = self
            .p99_ms
            .iter()
            .map(|(app, (base, dead))| {
                let ratio = round(dead / base.max(0.001) * 100.0) / 100.0;
                (app.clone(), json!({ "p99_ms_all_healthy": round(*base), "p99_ms_with_dead": round(*dead), "ratio": ratio }))
            })
            .collect();
        json!({
            "dead_app": self.dead_app, "healthy_apps": per_app,
            "pooled_all_healthy": self.pooled.0.to_json(), "pooled_with_dead": self.pooled.1.to_json(),
            "worst_p99_ratio": round(self.worst_ratio() * 100.0) / 100.0, "max_ratio": MAX_RATIO,
            "verdict": if self.passed() { "PASS" } else { "FAIL" },
            "dead_app_jobs_dead_lettered": self.dead_lettered,
            "settle_seconds": [round(self.settle_seconds.0 * 1000.0) / 1000.0, round(self.settle_seconds.1 * 1000.0) / 1000.0],
        })
    }
}

/// One run: per healthy app its latencies, plus dead letters and settle time.
struct Run {
    per_app: BTreeMap<String, Vec<Duration>>,
    dead_lettered: u64,
    settle_seconds: f64,
}

/// Runs the baseline, then the run with the last app down.
pub async fn run(params: &Params) -> Result<Isolation, FleetError> {
    let dead_app = workload::app_id(params.apps);
    let baseline = one_run(params, &dead_app, false).await?;
    let with_dead = one_run(params, &dead_app, true).await?;
    let p99 = |d: &[Duration]| Percentiles::of(d).p99_ms;
    let p99_ms = baseline
        .per_app
        .iter()
        .filter_map(|(app, base)| Some((app.clone(), (p99(base), p99(with_dead.per_app.get(app)?)))))
        .collect();
    let pooled = |run: &Run| Percentiles::of(&run.per_app.values().flatten().copied().collect::<Vec<_>>());
    Ok(Isolation {
        dead_app,
        p99_ms,
        pooled: (pooled(&baseline), pooled(&with_dead)),
        dead_lettered: with_dead.dead_lettered,
        settle_seconds: (baseline.settle_seconds, with_dead.settle_seconds),
    })
}

async fn one_run(params: &Params, dead_app: &str, down: bool) -> Result<Run, FleetError> {
    let worker = format!("{WORKER}\nconcurrency = {}", params.concurrency);
    let mut fleet =
        Fleet::start(&workload::policy(params.apps, params.teams, &worker, Some(dead_app))).await?;
    inject_latency(&fleet, params.latency_ms);
    if down {
        fleet.stop_server(dead_app).await?;
    }
    let hires: Vec<_> = (0..params.isolation_people)
        .map(|n| workload::event(&format!("I{n}"), Kind::Hire, "iso", params.teams))
        .collect();
    let started = std::time::Instant::now();
    let published = publish(&mut fleet, &hires).await?;
    fleet.wait_settled(SETTLE_WITHIN).await?;
    let settle_seconds = started.elapsed().as_secs_f64();
    let mut per_app = BTreeMap::new();
    for (app, server) in fleet.servers() {
        if app.as_str() == dead_app {
            continue;
        }
        let latencies = job_latencies(server, &server.requests(), &published);
        if !latencies.without_write.is_empty() {
            return Err(format!("{} of {app}'s jobs made no write", latencies.without_write.len()).into());
        }
        per_app.insert(app.to_string(), latencies.durations());
    }
    let dead_lettered = fleet.worker().dead_lettered;
    fleet.stop().await?;
    Ok(Run { per_app, dead_lettered, settle_seconds })
}
