//! Redis: the small, fast state shared by every process.
//!
//! [`Store`] holds one multiplexed connection (to one server, or to a Redis
//! Cluster: `connection.rs`) and the namespace; each record is reached
//! through a small typed handle that borrows it, and every key is built by
//! one constructor in `keys.rs`, always under the namespace. In the layouts
//! below, `{ns}` is literal: the namespace between braces, a Redis Cluster
//! [hash tag], so `acme`'s registry entry of `p1` is `{acme}:person:p1` and
//! every key of one namespace lives in one slot. That is what keeps every
//! multi-key script and `MULTI` below atomic on a cluster; the other
//! `{…}` are placeholders.
//!
//! [hash tag]: https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags
//!
//! | record | key layout | handle |
//! |---|---|---|
//! | person registry: last fanned-out `sequence`, status, apps, apps a planner announced upserts to (`pending`) | `{ns}:person:{person}` (hash `seq`, `status`, `apps`, `pending`) | [`Store::registry`] |
//! | members of an app, kept with the registry | `{ns}:members:{app}` (set of person ids) | [`Store::registry`] (written), [`Store::desired`] (swept) |
//! | applied version: highest sequence converged | `{ns}:applied:{app}:{person}` | [`Store::applied`] |
//! | fenced lease on a person in an app (worker) or a person (scheduler) | `{ns}:lease:{app}:{person}`, `{ns}:plan-lease:{person}` (`PX`, the holder's token); fences `{ns}:fence:{app}:{person}`, `{ns}:plan-fence:{person}` (highest token issued) | [`Store::leases`] |
//! | GCRA rate bucket | `{ns}:rate:{bucket}` (theoretical arrival time, ms) | [`Store::pacing`] |
//! | app pause | `{ns}:pause:{app}` (until, ms on Redis's clock) | [`Store::pacing`] |
//! | sweep claim of an app, and the last period it was swept in | `{ns}:claim:sweep:{app}` (`PX`, the sweeping replica's id, renewed while it sweeps); `{ns}:claim:sweep:{app}:done` (period index, kept until the period is over) | [`Store::claims`] |
//! | deprovision evidence | `{ns}:evidence:{app}:{person}:{sequence}` (JSON) and `{ns}:evidence-index` (zset by event time) | [`Store::evidence`] |
//! | event journey | `{ns}:journey:{event_id}` (list of JSON steps) | [`Store::journeys`] |
//! | desired state of a converged upsert | `{ns}:desired:{app}:{person}` (JSON) | [`Store::desired`] |
//! | account index | `{ns}:account:{app}:ext:<externalId>` / `…:un:<lower-cased userName>` → person | [`Store::desired`] |
//! | sweep run sets | `{ns}:sweep:{app}:{run}`, `…:missing` (sets), `…:fixes` (list) | [`Store::desired`] |
//! | per-app ops state | `{ns}:ops:{app}` (hash) | [`Store::ops`] |
//! | operator pauses of apps (`scimfleet pause`) | `{ns}:operator-pauses` (hash: app id → JSON `{by, at, reason}`) | [`Store::ops`] |
//! | newest time step of an approver's TOTP codes spent on an approval | `{ns}:totp-used:{approver}` | [`Store::totp`] |
//! | jobs held for an approver | `{ns}:held:{id}` (hash `json`, `seq`, `wave`, `approvals`), `{ns}:held-index`, `{ns}:held-expiry` (zsets), `{ns}:held-person:{app}:{person}` (id) | [`Store::held`] |
//! | high-risk groups let through | `{ns}:granted:{app}:{person}` (set) | [`Store::held`] |
//! | events effective later | `{ns}:scheduled` (zset by effective ms), `{ns}:scheduled:{id}` (record JSON), `{ns}:scheduled-person:{person}` (id) | [`Store::scheduled`] |
//! | deprovisions an approver cancelled | `{ns}:cancelled:{app}:{person}` (sequence) | [`Store::held`] |
//! | mass-deprovision guard | `{ns}:deprovision-window:{scope}` (zset by ms: job ids of an app, person ids fleet-wide), `{ns}:wave-open:{scope}` (id), `{ns}:wave:{id}` (hash), `{ns}:waves` (zset) | [`Store::waves`] |
//! | what sources last said of each person; source event ids seen, user links, state; the subjects index | `{ns}:import:{source}` (hash); `{ns}:source-seen:{source}:{sha256(event)}` (`PX`), `{ns}:source-users:{source}`, `{ns}:source-state:{source}` (hashes); `{ns}:subjects` (hash) | [`Store::imports`], [`Store::sources`] |
//! | dry-run apps' would-be requests; probed target profiles | `{ns}:dry-run:{app}` (capped list); `{ns}:profile:{app}` (JSON), `{ns}:profile-claim:{app}` (`PX`) | [`Store::dry_runs`], [`Store::profiles`] |
//! | intake replay marks and rate buckets | `{ns}:intake:seen:{source}:{sha256(id)}` (`PX`), `{ns}:intake:rate:{bucket}` | [`Store::intake`] |
//! | audit trail (one hash chain, every writer) | `{ns}:audit` (stream, field `r`: record JSON); `{ns}:audit:head` (`"{seq} {hash}"` of the last record, compare-and-set by every append) | [`Store::audit`] |
//!
//! The registry lets a mover who leaves an app's scope, or a leaver, be
//! deprovisioned where they were; the applied version keeps an older job
//! from overwriting newer state (guarantee 3). Writes that must never move
//! a version backwards are compare-and-set Lua scripts, each beside its
//! record with every key it touches passed in `KEYS` (never built inside
//! the script, which Redis Cluster forbids: a key named by a value read is
//! read first and checked again in the script): two scheduler or worker
//! replicas racing on one person can never move a version backwards.
//! Writes that record a result under a lease (applied version, desired
//! state, evidence) are fenced too: refused when a newer lease exists.

mod activity;
mod applied;
mod audit;
mod claims;
mod connection;
mod desired;
mod dry_runs;
mod evidence;
mod held;
mod imports;
mod intake;
mod journeys;
mod keys;
mod leases;
mod ops;
mod pacing;
mod profiles;
mod registry;
mod scheduled;
mod sources;
mod sweeps;
mod totp;
mod waves;

pub use activity::{ACTIVITY_RETENTION_MINUTES, Activity, ActivityKind, MinuteCounts};
pub use applied::Applied;
pub use audit::{Appended, AuditPage, AuditStore};
pub use claims::{Claims, Slot, SweepClaim, SweepTake};
pub use desired::{Desired, DesiredAccount, MissingScan};
pub use dry_runs::DryRuns;
pub use evidence::Evidence;
pub use held::{Approval, Held, HeldJob, HoldKind};
pub use imports::Imports;
pub use intake::IntakeMarks;
pub use journeys::{JourneyStep, Journeys};
pub use keys::{account_keys, namespace_tag};
pub use leases::{FENCE_CHECK, FENCED_OUT, Fence, Fenced, Lease, LeaseScope, Leases};
pub use ops::{AppOps, BreakerOps, LAST_ERROR_DETAIL_CHARS, LastError, Ops, Paused};
pub use pacing::Pacing;
pub use profiles::{ProbedProfile, Profiles};
pub use registry::{PersonRecord, Planning, Recorded, Registry};
pub use scheduled::{CLAIM_MS, Scheduled, ScheduledEvent, Scheduling};
pub use sources::{Kept, Sources};
pub use sweeps::{SweepRecord, SweepSummary, Sweeps};
pub use totp::Totp;
pub use waves::{Admission, FLEET_SCOPE, Wave, Waves, app_scope};

use std::time::Duration;

use crate::config::RedisConfig;
use crate::tls::TlsError;
use connection::Connection;
use keys::Keys;

/// A Redis operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Connecting failed. The URL is not shown: it may hold a password.
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
    /// A TLS file of `[redis]` could not be used.
    #[error("cannot set up TLS to Redis")]
    Tls(#[source] TlsError),
    /// A command failed.
    #[error("Redis {operation} failed")]
    Command {
        /// What was being done.
        operation: &'static str,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },
    /// A stored record could not be read.
    #[error("stored {what} is corrupt")]
    Corrupt {
        /// Which record.
        what: &'static str,
    },
    /// The audit trail could not be appended to.
    #[error("cannot append to the audit trail")]
    Audit(#[source] std::sync::Arc<crate::audit::AuditError>),
    /// A compare-and-set kept losing to concurrent writers.
    #[error("stored {what} kept changing under concurrent writes")]
    Contended {
        /// Which record.
        what: &'static str,
    },
}

fn command(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Command { operation, source }
}

/// `duration` in whole milliseconds, at least 1 (a `PX` of 0 is an error).
fn px(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A namespaced handle on Redis; cheap to clone (one multiplexed connection
/// that reconnects by itself, to one server or to a Redis Cluster).
#[derive(Clone)]
pub struct Store {
    conn: Connection,
    keys: Keys,
}

impl Store {
    /// Connects to Redis as `[redis]` says (`rediss://` trusting its
    /// `ca_file` and presenting its client certificate when set; a Redis
    /// Cluster when `cluster = true`), for `namespace`.
    pub async fn connect(redis: &RedisConfig, namespace: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(redis).await?;
        Ok(Self { conn, keys: Keys::new(namespace) })
    }

    /// The person registry and the members sets it keeps.
    pub fn registry(&self) -> Registry<'_> {
        Registry::new(self)
    }

    /// The applied versions.
    pub fn applied(&self) -> Applied<'_> {
        Applied::new(self)
    }

    /// The fenced leases (worker and scheduler).
    pub fn leases(&self) -> Leases<'_> {
        Leases::new(self)
    }

    /// The shared rate buckets and app pauses.
    pub fn pacing(&self) -> Pacing<'_> {
        Pacing::new(self)
    }

    /// The per-app sweep claims of periodic sweeps.
    pub fn claims(&self) -> Claims<'_> {
        Claims::new(self)
    }

    /// The deprovision evidence.
    pub fn evidence(&self) -> Evidence<'_> {
        Evidence::new(self)
    }

    /// The event journeys.
    pub fn journeys(&self) -> Journeys<'_> {
        Journeys::new(self)
    }

    /// The desired state, account index and sweep run sets.
    pub fn desired(&self) -> Desired<'_> {
        Desired::new(self)
    }

    /// The audit stream and its head.
    pub fn audit(&self) -> AuditStore<'_> {
        AuditStore::new(self)
    }

    /// The per-app operational state.
    pub fn ops(&self) -> Ops<'_> {
        Ops::new(self)
    }

    /// The TOTP codes approvers spent, so none approves twice.
    pub fn totp(&self) -> Totp<'_> {
        Totp::new(self)
    }

    /// The jobs held for an approver, and the high-risk groups let through.
    pub fn held(&self) -> Held<'_> {
        Held::new(self)
    }

    /// The mass-deprovision guard's windows and waves.
    pub fn waves(&self) -> Waves<'_> {
        Waves::new(self)
    }

    /// Events kept until their `effective_at`.
    pub fn scheduled(&self) -> Scheduled<'_> {
        Scheduled::new(self)
    }

    /// Per-minute job counts of each app.
    pub fn activity(&self) -> Activity<'_> {
        Activity::new(self)
    }

    /// The latest sweep of each app.
    pub fn sweeps(&self) -> Sweeps<'_> {
        Sweeps::new(self)
    }

    /// The intake's replay marks and rate buckets.
    pub fn intake(&self) -> IntakeMarks<'_> {
        IntakeMarks::new(self)
    }

    /// The last rows of HR file sources.
    pub fn imports(&self) -> Imports<'_> {
        Imports::new(self)
    }

    /// What event sources keep: seen event ids, user links, subjects, state.
    pub fn sources(&self) -> Sources<'_> {
        Sources::new(self)
    }

    /// What dry-run apps would have been sent.
    pub fn dry_runs(&self) -> DryRuns<'_> {
        DryRuns::new(self)
    }

    /// The probed target profiles.
    pub fn profiles(&self) -> Profiles<'_> {
        Profiles::new(self)
    }

    /// Round-trips a PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(command("PING"))
    }

    /// Deletes every key of the namespace; returns how many. For tests and the demo.
    pub async fn delete_namespace(&self) -> Result<u64, StoreError> {
        // One namespace is one slot: on a cluster, its node holds every key.
        self.delete_matching(&self.keys.pattern(), Some(self.keys.tag()), |_| true).await
    }

    /// Deletes keys of throw-away namespaces `{prefix}{unix seconds}-…` created
    /// before `cutoff` (left by crashed test runs); returns how many.
    pub async fn sweep_namespaces(&self, prefix: &str, cutoff: i64) -> Result<u64, StoreError> {
        let stale = |key: &str| {
            let created = keys::namespace_of(key)
                .and_then(|ns| ns.strip_prefix(prefix))
                .and_then(|rest| rest.split('-').next());
            created.and_then(|t| t.parse::<i64>().ok()).is_some_and(|t| t < cutoff)
        };
        // Many namespaces, many slots: on a cluster, every primary is walked.
        self.delete_matching(&keys::prefix_pattern(prefix), None, stale).await
    }

    /// Deletes the keys matching `pattern` that `keep` accepts, walking the
    /// node owning the slot of `tag` (every node when `None`).
    async fn delete_matching(
        &self,
        pattern: &str,
        tag: Option<&str>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut deleted = 0;
        for node in conn.scan_nodes(tag).await? {
            let mut cursor: u64 = 0;
            loop {
                let (next, mut keys) = conn.scan(&node, cursor, pattern).await?;
                keys.retain(|k| keep(k));
                // One UNLINK per namespace: its keys share a slot, so the
                // command is routed to one node even on a cluster.
                keys.sort_by(|a, b| keys::namespace_of(a).cmp(&keys::namespace_of(b)));
                for group in keys.chunk_by(|a, b| keys::namespace_of(a) == keys::namespace_of(b)) {
                    deleted += redis::cmd("UNLINK")
                        .arg(group)
                        .query_async::<u64>(&mut conn)
                        .await
                        .map_err(command("delete namespace"))?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }
}
