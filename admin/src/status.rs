//! `scimfleet status`: one on-call view of every app, from RabbitMQ and Redis.
//!
//! Per app it reports its two lanes (`{ns}.jobs.{app}` and
//! `{ns}.jobs.{app}.leavers`: ready, unacked, consumers), the jobs waiting
//! in its retry delay queues (the *retry backlog*, every tier summed), the
//! verification re-checks pending, its dead-letter queue, and what only the
//! workers know (kept in Redis, see [`AppOps`]): how many
//! worker processes have its breaker open, its last error, how many
//! deprovisions verification found undone, and how many jobs were refused
//! because the account found by login is bound to another person, and
//! whether an operator paused it (`scimfleet pause`: who, since when, why).
//! The events intake and its dead-letter queue come first.
//!
//! Queue figures come from one paged request to the RabbitMQ management API
//! (`broker.management_url`, logging in as the user of `broker.url`). Its
//! figures are sampled by the broker, every 5 s by default
//! (`collect_statistics_interval`), so they may be that old. When the API
//! cannot be reached, passive `queue.declare` over AMQP gives ready counts
//! and consumers, but not unacked (shown as unknown), and the report says
//! why in [`StatusReport::note`].
//!
//! The report holds counts, app ids, times, reason labels and error chains
//! (which scimfleet keeps free of personal data and secrets): never a person
//! id, a name, an e-mail address or a token. Its JSON form is versioned
//! ([`STATUS_SCHEMA_VERSION`]); see [`StatusReport`] for the fields.

mod queues;
mod render;

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use scimfleet_runtime::broker::{BrokerError, Topology, depth};
use scimfleet_runtime::store::{AppOps, LastError, Paused, StoreError};
use scimfleet_runtime::{Config, Store};
use scimfleet_schemas::AppId;
use serde::Serialize;

pub use queues::QueueFigures;
pub use render::render_table;

use crate::{AdminError, render as output};

/// Version of the JSON shape of [`StatusReport`] (its `v` field); bumped
/// when a field changes meaning or goes away, not when one is added.
pub const STATUS_SCHEMA_VERSION: u32 = 1;

/// The status could not be gathered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// `--app` named an app that is not configured.
    #[error("app `{0}` is not in the configuration")]
    UnknownApp(String),
    /// Neither the management API nor AMQP answered.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the queue figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The RabbitMQ management API: every figure, up to ~5 s old.
    Management,
    /// Passive declares over AMQP: current, but unacked counts are unknown.
    Amqp,
}

/// One queue consumers take from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lane {
    /// Messages waiting to be delivered.
    pub ready: u64,
    /// Messages delivered and not yet settled; `null` when unknown (AMQP).
    pub unacked: Option<u64>,
    /// Consumers attached.
    pub consumers: u64,
}

/// The events intake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EventsStatus {
    /// `{ns}.events.intake`, consumed by the scheduler.
    pub intake: Lane,
    /// Messages in `{ns}.events.dlq` (invalid events).
    pub dlq: u64,
}

/// Whether calls to an app flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// No worker process holds the app's calls back.
    Closed,
    /// At least one worker process parks the app's jobs.
    Open,
}

/// The circuit breakers of an app across worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerStatus {
    /// `open` when any worker process has it open now.
    pub state: BreakerState,
    /// How many worker processes have it open.
    pub open_instances: u32,
    /// The latest time until which one of them is open.
    pub open_until: Option<DateTime<Utc>>,
    /// The latest breaker change any process reported.
    pub changed_at: Option<DateTime<Utc>>,
}

/// One app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    /// The app id.
    pub app: AppId,
    /// `{ns}.jobs.{app}`: upserts.
    pub work: Lane,
    /// `{ns}.jobs.{app}.leavers`: deprovisions and re-checks due.
    pub leavers: Lane,
    /// Consumers of both lanes (a worker process consumes each lane once).
    pub consumers: u64,
    /// Jobs waiting in `{ns}.jobs.{app}.retry.{ms}`, every tier.
    pub retry_backlog: u64,
    /// Re-checks waiting in `{ns}.jobs.{app}.recheck.{ms}`, every delay.
    pub rechecks_pending: u64,
    /// Messages in `{ns}.jobs.{app}.dlq`.
    pub dlq: u64,
    /// Circuit breakers.
    pub breaker: BreakerStatus,
    /// Deprovisions verification found undone (each failed check counts).
    pub verification_failures: u64,
    /// Jobs refused because the account found by login is bound to another
    /// person (dead-lettered as `identity_conflict`).
    pub identity_conflicts: u64,
    /// Managed attributes the app drops when written, no longer written to it.
    pub unsupported_attributes: Vec<String>,
    /// The app's latest failure.
    pub last_error: Option<LastError>,
    /// The operator's pause (`scimfleet pause`), while the app is paused:
    /// no worker takes its jobs, which wait in its lanes.
    pub paused: Option<Paused>,
}

/// The whole report: `scimfleet status --json` prints it as one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// [`STATUS_SCHEMA_VERSION`].
    pub v: u32,
    /// The namespace reported on.
    pub namespace: String,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// Where the queue figures came from.
    pub source: Source,
    /// Why the figures are partial (the management API was unreachable).
    pub note: Option<String>,
    /// The events intake.
    pub events: EventsStatus,
    /// The apps, in configuration order.
    pub apps: Vec<AppStatus>,
    /// Queues of the topology that do not exist (yet): counted as empty.
    pub missing_queues: Vec<String>,
    /// What is held for an approver.
    pub approvals: ApprovalsStatus,
    /// Events waiting for their effective date.
    pub scheduled: ScheduledStatus,
}

/// Events kept until their `effective_at` (`scimfleet scheduled list` has the detail).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScheduledStatus {
    /// How many.
    pub events: u64,
    /// When the soonest takes effect.
    pub next: Option<DateTime<Utc>>,
}

/// Held grants and mass-deprovision waves (`scimfleet approvals list` has the detail).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApprovalsStatus {
    /// High-risk grants held for an approver.
    pub held_grants: u64,
    /// Deprovisions held in waves.
    pub held_in_waves: u64,
    /// Ids of the waves open now: their scope's deprovisions are paused.
    pub open_waves: Vec<String>,
}

/// Queue figures, by queue name, and where they came from.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The queues found.
    pub queues: HashMap<String, QueueFigures>,
    /// Their source.
    pub source: Source,
    /// Why they are partial, if they are.
    pub note: Option<String>,
}

/// `scimfleet status`: gathers the status of every configured app, or only
/// of `only`, and writes it to `out` as a table or, with `json`, one document.
pub async fn run(
    config: &Config,
    only: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let report = gather(config, only).await?;
    if json {
        output::json(&report, out)?;
    } else {
        write!(out, "{}", render_table(&report))?;
    }
    Ok(())
}

/// Gathers the status of every configured app, or only of `only`.
pub async fn gather(config: &Config, only: Option<&str>) -> Result<StatusReport, StatusError> {
    let apps: Vec<AppId> = match only {
        Some(id) => vec![config.app(id).ok_or_else(|| StatusError::UnknownApp(id.to_owned()))?.id.clone()],
        None => config.apps.iter().map(|a| a.id.clone()).collect(),
    };
    let topology = Topology::of(config);
    let figures = queues::read(config, &queue_names(&topology, &apps)).await?;
    let store = Store::connect(&config.redis, &config.namespace).await?;
    let ops = store.ops().get_many(&apps).await?;
    let mut report = assemble(&topology, &apps, &figures, &ops, Utc::now());
    report.approvals = approvals(&store).await?;
    let scheduled = store.scheduled().list().await?;
    report.scheduled =
        ScheduledStatus { events: scheduled.len() as u64, next: scheduled.first().map(|e| e.effective_at) };
    Ok(report)
}

async fn approvals(store: &Store) -> Result<ApprovalsStatus, StatusError> {
    let held = store.held().list().await?;
    let in_waves = held.iter().filter(|h| h.wave.is_some()).count() as u64;
    let waves = store.waves().list().await?;
    Ok(ApprovalsStatus {
        held_grants: held.len() as u64 - in_waves,
        held_in_waves: in_waves,
        open_waves: waves.into_iter().filter(|w| w.state == "open").map(|w| w.id).collect(),
    })
}

/// Every queue the report reads, for `apps`: the same queues the processes
/// sample into their metrics.
fn queue_names(topology: &Topology, apps: &[AppId]) -> Vec<String> {
    let events = depth::event_queues(topology);
    events.into_iter().chain(depth::app_queues(topology, apps)).flat_map(|sampled| sampled.names).collect()
}

/// The report from queue figures and ops state (`ops[i]` is `apps[i]`'s).
pub fn assemble(
    topology: &Topology,
    apps: &[AppId],
    figures: &Figures,
    ops: &[AppOps],
    now: DateTime<Utc>,
) -> StatusReport {
    let mut missing = Vec::new();
    let mut queue = |name: String| match figures.queues.get(&name) {
        Some(found) => *found,
        None => {
            missing.push(name);
            QueueFigures::default()
        }
    };
    let events = EventsStatus {
        intake: queue(topology.events_queue()).lane(),
        dlq: queue(topology.events_dlq()).messages(),
    };
    let mut statuses = Vec::with_capacity(apps.len());
    let unknown = AppOps::default();
    for (app, ops) in apps.iter().zip(ops.iter().chain(std::iter::repeat(&unknown))) {
        let named = topology.queues(app);
        let work = queue(named.work.clone()).lane();
        let leavers = queue(named.leavers.clone()).lane();
        let retry_backlog = named.retries.iter().map(|q| queue(q.clone()).messages()).sum();
        let rechecks_pending = named.rechecks.iter().map(|q| queue(q.clone()).messages()).sum();
        let open = ops.breaker.open_instances > 0;
        statuses.push(AppStatus {
            app: app.clone(),
            work,
            leavers,
            consumers: work.consumers + leavers.consumers,
            retry_backlog,
            rechecks_pending,
            dlq: queue(named.dlq.clone()).messages(),
            breaker: BreakerStatus {
                state: if open { BreakerState::Open } else { BreakerState::Closed },
                open_instances: ops.breaker.open_instances,
                open_until: ops.breaker.open_until,
                changed_at: ops.breaker.changed_at,
            },
            verification_failures: ops.verification_failures,
            identity_conflicts: ops.identity_conflicts,
            unsupported_attributes: ops.unsupported_attributes.clone(),
            last_error: ops.last_error.clone(),
            paused: ops.paused.clone(),
        });
    }
    StatusReport {
        v: STATUS_SCHEMA_VERSION,
        namespace: topology.namespace().to_owned(),
        generated_at: now,
        source: figures.source,
        note: figures.note.clone(),
        events,
        apps: statuses,
        missing_queues: missing,
        approvals: ApprovalsStatus::default(),
        scheduled: ScheduledStatus::default(),
    }
}

#[cfg(test)]
mod tests;
