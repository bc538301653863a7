//! What the scale run found: the verdicts, the table and the JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::ScaleParams;
use super::drive::Run;
use super::procs;
use crate::measure::round;

/// Everything the run found.
pub struct Results {
    /// What the run was asked to do.
    pub params: ScaleParams,
    /// What the drive measured.
    pub run: Run,
    /// Peak RSS and CPU per process.
    pub cost: procs::Cost,
    /// The apps' final report (accounts, active ones, requests).
    pub report: Value,
    /// Messages in the dead-letter queues at the end.
    pub dead: u64,
    /// How long seeding the accounts took.
    pub seed_seconds: f64,
    /// The whole run, seeding and clean-up included.
    pub total_seconds: f64,
}

impl Results {
    fn apps(&self) -> Vec<&Value> {
        self.report["apps"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
    }

    fn active_accounts(&self) -> u64 {
        self.apps().iter().filter_map(|a| a["active"].as_u64()).sum()
    }

    fn accounts(&self) -> u64 {
        self.apps().iter().filter_map(|a| a["users"].as_u64()).sum()
    }

    /// Requests the apps answered, by `METHOD Resource status`, all apps together.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for app in self.apps() {
            if let Some(requests) = app["requests"].as_object() {
                for (key, count) in requests {
                    *total.entry(key.clone()).or_default() += count.as_u64().unwrap_or(0);
                }
            }
        }
        total
    }

    fn scim_requests(&self) -> u64 {
        self.requests().values().sum()
    }

    /// Why the run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.run.finished {
            failures.push(format!("not finished within {} s", self.params.timeout_s));
        }
        if self.apps().len() != self.params.apps {
            failures.push("the targets' report is incomplete".into());
        }
        let expected = self.params.jobs();
        if self.accounts() != expected {
            failures.push(format!("{} accounts, expected {expected}", self.accounts()));
        }
        if self.active_accounts() != 0 {
            failures.push(format!("{} accounts still active", self.active_accounts()));
        }
        if self.run.jobs_converged != expected {
            failures.push(format!("{} jobs converged, expected {expected}", self.run.jobs_converged));
        }
        if self.dead != 0 || self.run.jobs_dead_lettered != 0 {
            failures.push(format!("{} dead letters", self.dead.max(self.run.jobs_dead_lettered)));
        }
        failures
    }

    fn jobs_per_s(&self) -> f64 {
        self.run.jobs_converged as f64 / self.run.seconds.max(f64::EPSILON)
    }

    fn ops_per_s(&self) -> f64 {
        self.scim_requests() as f64 / self.run.seconds.max(f64::EPSILON)
    }

    /// The human-readable summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let verdict = if self.failures().is_empty() { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "\nscale run: {} people offboarded across {} apps ({} deactivations)\n",
            self.params.people,
            self.params.apps,
            self.params.jobs()
        ));
        out.push_str(&format!(
            "  published in {:.1} s; every job settled {:.1} s after the first publish\n",
            self.run.publish_seconds, self.run.seconds
        ));
        out.push_str(&format!(
            "  {:.0} deactivations/s, {:.0} SCIM requests/s ({} requests)\n",
            self.jobs_per_s(),
            self.ops_per_s(),
            self.scim_requests()
        ));
        out.push_str(&format!("  most jobs queued in RabbitMQ at once: {}\n", self.run.peak_queued_jobs));
        out.push_str(&format!(
            "  accounts active at the end: {} of {}; dead letters: {}\n",
            self.active_accounts(),
            self.accounts(),
            self.dead
        ));
        out.push_str("  process        peak RSS MB   CPU s\n");
        for p in &self.cost.processes {
            out.push_str(&format!(
                "  {:<14} {:>11}   {:>5}\n",
                p.name,
                p.peak_rss_mb.map_or("-".into(), |m| format!("{m:.1}")),
                p.cpu_s.map_or("-".into(), |c| format!("{c:.1}"))
            ));
        }
        out.push_str(&format!("  target 4 (every account in its desired state, nothing lost): {verdict}\n"));
        let fleet_peak = self.fleet_peak_mb();
        let rss_verdict = match fleet_peak {
            Some(mb) if mb <= 150.0 => "PASS",
            Some(_) => "FAIL",
            None => "n/a",
        };
        out.push_str(&format!(
            "  target 3 (peak RSS <= 150 MB per fleet process): {} MB, {rss_verdict}\n",
            fleet_peak.map_or("-".into(), |m| format!("{m:.1}"))
        ));
        out
    }

    /// The larger peak RSS of the scheduler and the worker.
    fn fleet_peak_mb(&self) -> Option<f64> {
        self.cost
            .processes
            .iter()
            .filter(|p| p.name == "scheduler" || p.name == "worker")
            .filter_map(|p| p.peak_rss_mb)
            .reduce(f64::max)
    }

    /// Everything, as the JSON of `bench/results/scale.json`.
    pub fn to_json(&self) -> Value {
        let processes: serde_json::Map<String, Value> = self
            .cost
            .processes
            .iter()
            .map(|p| {
                (
                    p.name.to_owned(),
                    json!({ "peak_rss_mb": p.peak_rss_mb.map(round), "cpu_s": p.cpu_s.map(round) }),
                )
            })
            .collect();
        json!({
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "git_commit": crate::report::git(&["rev-parse", "HEAD"]),
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "params": {
                "people": self.params.people, "apps": self.params.apps,
                "concurrency_per_app": self.params.concurrency, "timeout_s": self.params.timeout_s,
                "deferred_rechecks": false,
            },
            "seed_seconds": round(self.seed_seconds),
            "publish_seconds": round(self.run.publish_seconds),
            "seconds": round(self.run.seconds),
            "events_accepted": self.run.events_accepted,
            "jobs_expected": self.params.jobs(),
            "jobs_converged": self.run.jobs_converged,
            "jobs_dead_lettered": self.run.jobs_dead_lettered,
            "dead_letters_in_queues": self.dead,
            "deactivations_per_s": round(self.jobs_per_s()),
            "scim_requests": self.scim_requests(),
            "scim_requests_per_s": round(self.ops_per_s()),
            "scim_calls": self.requests(),
            "peak_queued_jobs": self.run.peak_queued_jobs,
            "accounts": self.accounts(),
            "accounts_active_at_end": self.active_accounts(),
            "processes": processes,
            "fleet_peak_rss_mb": self.fleet_peak_mb().map(round),
            "failures": self.failures(),
            "total_seconds": round(self.total_seconds),
        })
    }
}
