//! Prometheus metrics of every scimfleet process, served on `/metrics`.
//!
//! One [`Metrics`] registry per process holds every family the scheduler
//! and the worker record, so dashboards and alert rules can rely on the same
//! names everywhere (a labelled family appears once it has a sample). Names follow `scimfleet_<noun>_<unit>`; labels are
//! bounded: `app`, `action`, `outcome`, `reason`, `method`, `status`,
//! `check`, `queue`, never a person or job id, so the series count grows with
//! the number of apps, not with traffic.
//!
//! Recording is a hash look-up and an atomic add; the text is only encoded
//! when scraped. The exposition is OpenMetrics text (which Prometheus reads
//! natively), so counters appear with their `_total` suffix.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod labels;

use labels::VersionLabel;
pub use labels::{
    AppAction, AppAttribute, AppLabel, AppMethod, AppReason, JobOutcome, OutcomeLabel, QueueLabel,
    ReasonLabel, ScimRequest, SourceLabel, SourceOutcome, SourceStatus, Verification,
};

/// Content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, 1 ms to about 4.6 min: SCIM calls, jobs, and a leaver's way to verified.
fn latency() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        300.0,
    ])
}

/// End-to-end times include retries and re-check delays: up to a day.
fn end_to_end() -> Histogram {
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
        86400.0,
    ])
}

/// Every metric family of a scimfleet process.
#[derive(Debug)]
#[non_exhaustive]
pub struct Metrics {
    registry: Registry,
    /// Deliveries taken from the events intake queue.
    pub events_received: Counter,
    /// Events settled, by `outcome`: `accepted`, `stale`, `dead_lettered`, `requeued`.
    pub events: Family<OutcomeLabel, Counter>,
    /// Events dead-lettered, by `reason` (the validation error kind, `content_type`, `unmappable`).
    pub events_rejected: Family<ReasonLabel, Counter>,
    /// Scheduler time per event, intake to ack.
    pub event_duration: Histogram,
    /// Jobs published and confirmed, by `app` and `action`.
    pub jobs_published: Family<AppAction, Counter>,
    /// Job deliveries settled, by `app`, `action`, `outcome`: `converged`,
    /// `stale`, `retried`, `deferred`, `superseded`, `remediating`, `dead_lettered`, `requeued`.
    pub jobs: Family<JobOutcome, Counter>,
    /// One attempt of a job, lease to settle.
    pub job_duration: Histograms<AppAction>,
    /// From the event reaching the scheduler to the job converged in its app (retries included).
    pub job_end_to_end: Histograms<AppAction>,
    /// SCIM requests by `app`, `method` and `status`.
    pub scim_requests: Family<ScimRequest, Counter>,
    /// SCIM request latency by `app` and `method`.
    pub scim_request_duration: Histograms<AppMethod>,
    /// Further tries of one SCIM request inside an attempt.
    pub scim_request_retries: Family<AppLabel, Counter>,
    /// Jobs dead-lettered, by `app` and `reason`.
    pub dead_letters: Family<AppReason, Counter>,
    /// Requests that waited for the shared rate limit or an app-wide pause.
    pub rate_limit_waits: Family<AppLabel, Counter>,
    /// Total time those requests waited, in seconds.
    pub rate_limit_wait_seconds: Family<AppLabel, Counter<f64>>,
    /// 1 while this process's circuit breaker of the app is open.
    pub breaker_open: Family<AppLabel, Gauge>,
    /// 1 while an operator has the app paused (`scimfleet pause`), as this process last saw it.
    pub app_paused: Family<AppLabel, Gauge>,
    /// Jobs refused because the account found by login is bound to another
    /// person (a different `externalId`), by `app`.
    pub identity_conflicts: Family<AppLabel, Counter>,
    /// Read-backs of deprovisions, by `app`, `check` and `outcome`.
    pub verifications: Family<Verification, Counter>,
    /// From the event reaching the scheduler to the first verified read-back, per app.
    pub deprovision_verified: Histograms<AppLabel>,
    /// Messages ready in a queue (sampled), by `app` and `queue`.
    pub queue_messages: Family<QueueLabel, Gauge>,
    /// Consumers of a queue (sampled), by `app` and `queue`.
    pub queue_consumers: Family<QueueLabel, Gauge>,
    /// 1 while connected to RabbitMQ and Redis with the topology declared.
    pub ready: Gauge,
    /// HTTP intake requests answered, by `source` (`unknown` before a
    /// signature verified) and `status`.
    pub intake_requests: Family<SourceStatus, Counter>,
    /// Events the HTTP intake published and had confirmed, by `source`.
    pub intake_events: Family<SourceLabel, Counter>,
    /// Stored deliveries of `[[sources]]` processed, by `source` and `outcome`.
    pub source_deliveries: Family<SourceOutcome, Counter>,
    /// Jobs the scheduler held for an approver, by `app` and `reason`
    /// (`grant`: high-risk without step-up; `wave`: mass-deprovision guard).
    pub jobs_held: Family<AppReason, Counter>,
    /// Jobs held now, grants and waves (sampled by the scheduler).
    pub held_jobs: Gauge,
    /// Mass-deprovision waves open now, awaiting release or cancel (sampled by the scheduler).
    pub waves_open: Gauge,
    /// Events kept until their `effective_at` now (sampled by the scheduler).
    pub scheduled_events: Gauge,
    /// Managed attributes an app dropped when written, by `app` and
    /// `attribute`: 1 once this process found it (no longer written).
    pub unsupported_attributes: Family<AppAttribute, Gauge>,
    /// Writes a `dry_run` app's jobs would have sent (recorded, not sent), by `app`.
    pub dry_run_writes: Family<AppLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            events_received: Counter::default(),
            events: Family::default(),
            events_rejected: Family::default(),
            event_duration: latency(),
            jobs_published: Family::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(latency),
            job_end_to_end: Family::new_with_constructor(end_to_end),
            scim_requests: Family::default(),
            scim_request_duration: Family::new_with_constructor(latency),
            scim_request_retries: Family::default(),
            dead_letters: Family::default(),
            rate_limit_waits: Family::default(),
            rate_limit_wait_seconds: Family::default(),
            breaker_open: Family::default(),
            app_paused: Family::default(),
            identity_conflicts: Family::default(),
            verifications: Family::default(),
            deprovision_verified: Family::new_with_constructor(end_to_end),
            queue_messages: Family::default(),
            queue_consumers: Family::default(),
            ready: Gauge::default(),
            intake_requests: Family::default(),
            intake_events: Family::default(),
            source_deliveries: Family::default(),
            jobs_held: Family::default(),
            held_jobs: Gauge::default(),
            waves_open: Gauge::default(),
            scheduled_events: Gauge::default(),
            unsupported_attributes: Family::default(),
            dry_run_writes: Family::default(),
        };
        m.register_all();
        m
    }

    /// Registers every family; counters get `_total` appended by the encoder.
    fn register_all(&mut self) {
        let r = &mut self.registry;
        // One line per family: name, help, field.
        macro_rules! register {
            ($($name:literal, $help:literal => $field:ident;)*) => {
                $(r.register($name, $help, self.$field.clone());)*
            };
        }
        register! {
            "scimfleet_events_received", "Deliveries taken from the events intake queue" => events_received;
            "scimfleet_events", "Events settled, by outcome" => events;
            "scimfleet_events_rejected", "Events dead-lettered, by reason" => events_rejected;
            "scimfleet_event_duration_seconds", "Scheduler time per event, intake to ack" => event_duration;
            "scimfleet_jobs_published", "Jobs published and confirmed, by app and action" => jobs_published;
            "scimfleet_jobs", "Job deliveries settled, by app, action and outcome" => jobs;
            "scimfleet_job_duration_seconds", "One attempt of a job, lease to settle" => job_duration;
            "scimfleet_job_end_to_end_seconds", "From the event reaching the scheduler to the job converged in its app" => job_end_to_end;
            "scimfleet_scim_requests", "SCIM requests, by app, method and status" => scim_requests;
            "scimfleet_scim_request_duration_seconds", "SCIM request latency, by app and method" => scim_request_duration;
            "scimfleet_scim_request_retries", "Further tries of one SCIM request inside a job attempt" => scim_request_retries;
            "scimfleet_dead_letters", "Jobs dead-lettered, by app and reason" => dead_letters;
            "scimfleet_rate_limit_waits", "SCIM requests that waited for the shared rate limit or a pause" => rate_limit_waits;
            "scimfleet_rate_limit_wait_seconds", "Seconds SCIM requests waited for the shared rate limit or a pause" => rate_limit_wait_seconds;
            "scimfleet_breaker_open", "1 while this process's circuit breaker of the app is open" => breaker_open;
            "scimfleet_app_paused", "1 while an operator has the app paused (scimfleet pause)" => app_paused;
            "scimfleet_identity_conflicts", "Jobs refused because the account found by login is bound to another person, by app" => identity_conflicts;
            "scimfleet_verifications", "Read-backs of deprovisions, by app, check and outcome" => verifications;
            "scimfleet_deprovision_verified_seconds", "From the event reaching the scheduler to the first verified read-back" => deprovision_verified;
            "scimfleet_queue_messages", "Messages ready in a queue (sampled)" => queue_messages;
            "scimfleet_queue_consumers", "Consumers of a queue (sampled)" => queue_consumers;
            "scimfleet_ready", "1 while connected to RabbitMQ and Redis with the topology declared" => ready;
            "scimfleet_intake_requests", "HTTP intake requests answered, by source and status" => intake_requests;
            "scimfleet_intake_events", "Events the HTTP intake published with confirms, by source" => intake_events;
            "scimfleet_source_deliveries", "Stored source deliveries processed, by source and outcome (processed, duplicate, dead_lettered, retried)" => source_deliveries;
            "scimfleet_jobs_held", "Jobs held for an approver, by app and reason (grant, wave)" => jobs_held;
            "scimfleet_held_jobs", "Jobs held for an approver now (sampled)" => held_jobs;
            "scimfleet_deprovision_waves_open", "Mass-deprovision waves awaiting release or cancel (sampled)" => waves_open;
            "scimfleet_scheduled_events", "Events kept until their effective_at (sampled)" => scheduled_events;
            "scimfleet_unsupported_attributes", "Managed attributes an app drops when written (no longer written), by app and attribute" => unsupported_attributes;
            "scimfleet_dry_run_writes", "Writes a dry-run app's jobs would have sent, recorded instead, by app" => dry_run_writes;
        }
        let build = Family::<VersionLabel, Gauge>::default();
        build.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION").to_owned() }).set(1);
        r.register("scimfleet_build_info", "The running scimfleet version", build);
    }

    /// The exposition text ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _infallible = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts a settled job delivery and, for a converged one, its latency.
    pub fn job_settled(&self, app: &str, action: &str, outcome: &str, attempt: Duration) {
        let labels = AppAction { app: app.to_owned(), action: action.to_owned() };
        self.job_duration.get_or_create(&labels).observe(attempt.as_secs_f64());
        let outcome = JobOutcome { app: labels.app, action: labels.action, outcome: outcome.to_owned() };
        self.jobs.get_or_create(&outcome).inc();
    }

    /// Counts one SCIM request's answer (`status` `None`: no answer) and latency.
    pub fn scim_request(&self, app: &str, method: &str, status: Option<u16>, took: Duration) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        let labels = ScimRequest { app: app.to_owned(), method: method.to_owned(), status };
        self.scim_requests.get_or_create(&labels).inc();
        let labels = AppMethod { app: labels.app, method: labels.method };
        self.scim_request_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Counts a read-back.
    pub fn verification(&self, app: &str, check: &str, verified: bool) {
        let outcome = if verified { "verified" } else { "failed" }.to_owned();
        let labels = Verification { app: app.to_owned(), check: check.to_owned(), outcome };
        self.verifications.get_or_create(&labels).inc();
    }

    /// Sets a sampled queue's ready messages and consumers.
    pub fn queue(&self, app: &str, queue: &str, messages: u32, consumers: u32) {
        let labels = QueueLabel { app: app.to_owned(), queue: queue.to_owned() };
        self.queue_messages.get_or_create(&labels).set(i64::from(messages));
        self.queue_consumers.get_or_create(&labels).set(i64::from(consumers));
    }

    /// The label of one app.
    pub fn app(app: &str) -> AppLabel {
        AppLabel { app: app.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_counts() {
        let m = Metrics::new();
        m.events_received.inc();
        m.job_settled("git", "upsert", "converged", Duration::from_millis(12));
        m.scim_request("git", "GET", Some(200), Duration::from_millis(3));
        m.scim_request("git", "GET", None, Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("scimfleet_events_received_total 1"), "{text}");
        assert!(
            text.contains(r#"scimfleet_jobs_total{app="git",action="upsert",outcome="converged"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"scimfleet_scim_requests_total{app="git",method="GET",status="error"} 1"#));
        assert!(text.contains(r#"scimfleet_job_duration_seconds_count{app="git",action="upsert"} 1"#));
        assert!(
            !text.contains("scimfleet_deprovision_verified_seconds"),
            "a family without samples is not shown"
        );
        m.deprovision_verified.get_or_create(&Metrics::app("git")).observe(0.2);
        assert!(m.render().contains("# TYPE scimfleet_deprovision_verified_seconds histogram"));
        assert!(text.contains(r#"scimfleet_build_info{version="#));
    }
}
