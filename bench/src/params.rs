//! Benchmark parameters from the environment.
//!
//! Every knob is a `BENCH_*` variable so that `make bench` needs no
//! arguments and CI can pass a smaller run through the environment.
//! `BENCH_QUICK=1` only changes the defaults; an explicit variable always
//! wins. A value that does not parse stops the run with the variable's name
//! and the reason, before anything is started.

use std::fmt;

/// What one run does.
#[derive(Debug, Clone)]
pub struct Params {
    /// Small defaults so the whole run takes under a minute.
    pub quick: bool,
    /// Events of the mixed workload (60% hires, 20% movers, 20% leavers).
    pub events: usize,
    /// SCIM apps (test servers); everyone is in scope of every app.
    pub apps: usize,
    /// Latency injected into every SCIM request, in milliseconds (0: none).
    pub latency_ms: u64,
    /// Hires queued before the leaver probes of the backlog scenario.
    pub backlog: usize,
    /// Leavers probed one at a time, when idle and behind the backlog.
    pub leavers: usize,
    /// People hired in each run of the dead-neighbour scenario.
    pub isolation_people: usize,
    /// Team groups per app; each person is in one (1: a group of everyone).
    pub teams: usize,
    /// `worker.concurrency` (jobs in flight per app and lane); the HTTP
    /// limit uses the same number of concurrent requests per app.
    pub concurrency: u16,
    /// Worker replicas of the mixed workload (tasks of this process, each
    /// with its own connections, consumers and HTTP pools).
    pub workers: usize,
}

/// A `BENCH_*` variable with a value that cannot be used.
#[derive(Debug)]
pub struct ParamError {
    name: &'static str,
    value: String,
    reason: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.name, self.value, self.reason)
    }
}

impl std::error::Error for ParamError {}

impl Params {
    /// Reads the parameters from the process environment.
    pub fn from_env() -> Result<Self, ParamError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the parameters through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ParamError> {
        let quick = flag(&lookup, "BENCH_QUICK")?;
        let pick = |full: usize, small: usize| if quick { small } else { full };
        Ok(Self {
            quick,
            events: number(&lookup, "BENCH_EVENTS", pick(20_000, 1_000), 5, 10_000_000)?,
            apps: number(&lookup, "BENCH_APPS", 5, 2, 100)?,
            latency_ms: number(&lookup, "BENCH_LATENCY_MS", 0, 0, 10_000)? as u64,
            backlog: number(&lookup, "BENCH_BACKLOG", pick(20_000, 400), 0, 10_000_000)?,
            leavers: number(&lookup, "BENCH_LEAVERS", pick(20, 5), 1, 10_000)?,
            isolation_people: number(&lookup, "BENCH_ISOLATION_PEOPLE", pick(1_000, 150), 1, 1_000_000)?,
            teams: number(&lookup, "BENCH_TEAMS", 100, 1, 10_000)?,
            concurrency: u16::try_from(number(&lookup, "BENCH_CONCURRENCY", 16, 1, 1_000)?)
                .unwrap_or(u16::MAX),
            workers: number(&lookup, "BENCH_WORKERS", 1, 1, 16)?,
        })
    }

    /// The parameters as a JSON object for the results file.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "quick": self.quick,
            "events": self.events,
            "apps": self.apps,
            "latency_ms": self.latency_ms,
            "backlog_hires": self.backlog,
            "leaver_probes": self.leavers,
            "isolation_people": self.isolation_people,
            "team_groups_per_app": self.teams,
            "concurrency_per_app": self.concurrency,
            "worker_replicas": self.workers,
        })
    }
}

/// `1`/`true`/`yes` or `0`/`false`/`no`/empty; absent is false.
pub(crate) fn flag(lookup: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ParamError> {
    let Some(value) = lookup(name) else { return Ok(false) };
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ParamError { name, value, reason: "expected 1 or 0 (true/false, yes/no)".into() }),
    }
}

/// A whole number in `min..=max`, or `default` when absent or empty.
pub(crate) fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ParamError> {
    let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else { return Ok(default) };
    let parsed: usize = value.trim().replace('_', "").parse().map_err(|_| ParamError {
        name,
        value: value.clone(),
        reason: "expected a whole number".into(),
    })?;
    if !(min..=max).contains(&parsed) {
        return Err(ParamError { name, value, reason: format!("must be between {min} and {max}") });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Params, ParamError> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Params::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn quick_changes_defaults_and_explicit_values_win() {
        let full = with(&[]).expect("defaults");
        assert_eq!((full.events, full.apps, full.quick, full.workers), (20_000, 5, false, 1));
        assert_eq!(with(&[("BENCH_WORKERS", "3")]).expect("replicas").workers, 3);
        assert!(with(&[("BENCH_WORKERS", "0")]).is_err(), "at least one worker");
        let quick = with(&[("BENCH_QUICK", "1"), ("BENCH_APPS", "3")]).expect("quick");
        assert_eq!((quick.events, quick.apps, quick.quick), (1_000, 3, true));
        assert_eq!(with(&[("BENCH_EVENTS", "2_000")]).expect("underscores").events, 2_000);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = with(&[("BENCH_EVENTS", "lots")]).expect_err("not a number").to_string();
        assert!(error.starts_with("BENCH_EVENTS=\"lots\""), "{error}");
        assert!(with(&[("BENCH_APPS", "1")]).is_err(), "below the minimum");
        assert!(with(&[("BENCH_QUICK", "maybe")]).is_err());
    }
}
