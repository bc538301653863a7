//! Figures from the SCIM test servers' request logs.
//!
//! **Job latency, publish → converged.** For each (app, person), the
//! converged instant is when the app *answered* the last successful write
//! that names the person's account: its create (`POST /Users` with the
//! person's `externalId`), a `PATCH`/`PUT`/`DELETE` of the account, or a
//! group `PATCH` adding or removing it. That write is the last effect of the
//! person's last job, so nothing about the person changes in that app
//! afterwards. The latency is that instant minus the start of the confirmed
//! publish of the batch holding the person's last event (batches are small,
//! so this over-states a latency by at most one batch's publish time). It
//! includes every queue the work waited in. A pair whose last job needed no
//! write after its event was published (a leaver whose hire was overtaken by
//! the leaver lane, so no account was ever created) has no converged instant
//! and is counted apart, not guessed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use scimfleet_devkit::scim_server::{RequestRecord, Resource, ScimServerHandle};
use serde_json::{Value, json};

/// The kinds of SCIM call the fleet makes, for the request breakdown and for
/// the HTTP limit, which replays the same mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    /// `GET /Users?filter=…`.
    FindUser,
    /// `GET /Users/{id}`.
    GetUser,
    /// `POST /Users`.
    CreateUser,
    /// `PATCH /Users/{id}` (or `PUT`).
    PatchUser,
    /// `DELETE /Users/{id}`.
    DeleteUser,
    /// `GET /Groups?filter=…`.
    FindGroup,
    /// `GET /Groups/{id}`.
    GetGroup,
    /// `POST /Groups`.
    CreateGroup,
    /// `PATCH /Groups/{id}` (or `PUT`).
    PatchGroup,
    /// Anything else (discovery, group deletes).
    Other,
}

impl Call {
    /// The call a recorded request was.
    pub fn of(request: &RequestRecord) -> Self {
        let by_id = request.resource_id.is_some();
        match (request.resource, request.method.as_str(), by_id) {
            (Resource::Users, "GET", false) => Self::FindUser,
            (Resource::Users, "GET", true) => Self::GetUser,
            (Resource::Users, "POST", false) => Self::CreateUser,
            (Resource::Users, "PATCH" | "PUT", true) => Self::PatchUser,
            (Resource::Users, "DELETE", true) => Self::DeleteUser,
            (Resource::Groups, "GET", false) => Self::FindGroup,
            (Resource::Groups, "GET", true) => Self::GetGroup,
            (Resource::Groups, "POST", false) => Self::CreateGroup,
            (Resource::Groups, "PATCH" | "PUT", true) => Self::PatchGroup,
            _ => Self::Other,
        }
    }

    /// `METHOD /Resource[/id]`, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::FindUser => "GET /Users?filter",
            Self::GetUser => "GET /Users/{id}",
            Self::CreateUser => "POST /Users",
            Self::PatchUser => "PATCH /Users/{id}",
            Self::DeleteUser => "DELETE /Users/{id}",
            Self::FindGroup => "GET /Groups?filter",
            Self::GetGroup => "GET /Groups/{id}",
            Self::CreateGroup => "POST /Groups",
            Self::PatchGroup => "PATCH /Groups/{id}",
            Self::Other => "other",
        }
    }
}

/// Requests one server answered during a phase.
#[derive(Debug, Default, Clone)]
pub struct Requests {
    /// Every request (reads and writes, any status).
    pub total: usize,
    /// POST, PUT, PATCH and DELETE.
    pub writes: usize,
    /// Answered with a status of 400 or more (or hung up on).
    pub errors: usize,
    /// Answer time of the last request.
    pub last_answer: Option<Instant>,
    /// How many of each kind of call.
    pub calls: std::collections::BTreeMap<Call, usize>,
}

impl Requests {
    /// Counts `log`.
    pub fn of(log: &[RequestRecord]) -> Self {
        let mut calls = std::collections::BTreeMap::new();
        for request in log {
            *calls.entry(Call::of(request)).or_default() += 1;
        }
        Self {
            calls,
            total: log.len(),
            writes: log.iter().filter(|r| r.is_write()).count(),
            errors: log.iter().filter(|r| r.status >= 400 || r.status == 0).count(),
            last_answer: log.iter().map(|r| r.answered_at).max(),
        }
    }

    /// The sum of two counts.
    pub fn add(self, other: Self) -> Self {
        let mut calls = self.calls;
        for (call, n) in other.calls {
            *calls.entry(call).or_default() += n;
        }
        Self {
            calls,
            total: self.total + other.total,
            writes: self.writes + other.writes,
            errors: self.errors + other.errors,
            last_answer: self.last_answer.max(other.last_answer),
        }
    }
}

/// A breakdown of calls as JSON (`{"POST /Users": 600, ...}`).
pub fn calls_json(calls: &std::collections::BTreeMap<Call, usize>) -> Value {
    calls.iter().map(|(call, n)| (call.name().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>().into()
}

/// Job latencies of one app.
#[derive(Debug, Default)]
pub struct JobLatencies {
    /// One per (app, person) with a converged instant: the person and the latency.
    pub samples: Vec<(String, Duration)>,
    /// People whose last job wrote nothing after their last event's publish.
    pub without_write: Vec<String>,
}

/// Job latencies of the people in `published` (person id → publish start of
/// their last event) on `server`, whose request log is `log`.
pub fn job_latencies(
    server: &ScimServerHandle,
    log: &[RequestRecord],
    published: &HashMap<String, Instant>,
) -> JobLatencies {
    let person_of: HashMap<String, String> =
        server.users().into_iter().filter_map(|u| Some((u.id?, u.external_id?))).collect();
    let converged = last_writes(log, &person_of);
    let mut out = JobLatencies::default();
    for (person, at) in published {
        match converged.get(person).and_then(|done| done.checked_duration_since(*at)) {
            Some(latency) => out.samples.push((person.clone(), latency)),
            None => out.without_write.push(person.clone()),
        }
    }
    out
}

impl JobLatencies {
    /// The latencies alone.
    pub fn durations(&self) -> Vec<Duration> {
        self.samples.iter().map(|(_, d)| *d).collect()
    }
}

/// Per person (external id), when the last successful write naming them was answered.
pub fn last_writes(log: &[RequestRecord], person_of: &HashMap<String, String>) -> HashMap<String, Instant> {
    let mut last: HashMap<String, Instant> = HashMap::new();
    for request in log.iter().filter(|r| r.is_write() && !r.injected && r.status < 300) {
        for person in request.people(person_of) {
            let at = last.entry(person).or_insert(request.answered_at);
            *at = (*at).max(request.answered_at);
        }
    }
    last
}

/// Percentiles of a sample, nearest rank.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: usize| {
            // The smallest sample with at least p% of them at or below it.
            let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
            sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Self { count: sorted.len(), p50_ms: rank(50), p95_ms: rank(95), p99_ms: rank(99), max_ms: rank(100) }
    }

    /// As JSON.
    pub fn to_json(self) -> Value {
        json!({ "count": self.count, "p50_ms": round(self.p50_ms), "p95_ms": round(self.p95_ms),
                "p99_ms": round(self.p99_ms), "max_ms": round(self.max_ms) })
    }
}

/// `x` to one decimal, for readable JSON.
pub fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.count, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms), (100, 50.0, 95.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]).p99_ms, 0.0);
    }
}
