//! Redis: the small, fast state shared by every process.
//!
//! [`Store`] holds one multiplexed connection and the namespace; each record
//! is reached through a small typed handle that borrows it, and every key is
//! built by one constructor in `keys.rs`, always under the namespace `{ns}`:
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
//! | newest time step of an approver's TOTP codes spent on an approval | `{ns}:totp-used:{approver}` | [`Store::totp`] |
//! | jobs held for an approver | `{ns}:held:{id}` (hash `json`, `seq`, `wave`, `approvals`), `{ns}:held-index`, `{ns}:held-expiry` (zsets), `{ns}:held-person:{app}:{person}` (id) | [`Store::held`] |
//! | high-risk groups let through | `{ns}:granted:{app}:{person}` (set) | [`Store::held`] |
//! | events effective later | `{ns}:scheduled` (zset by effective ms), `{ns}:scheduled:{id}` (record JSON), `{ns}:scheduled-person:{person}` (id) | [`Store::scheduled`] |
//! | deprovisions an approver cancelled | `{ns}:cancelled:{app}:{person}` (sequence) | [`Store::held`] |
//! | mass-deprovision guard | `{ns}:deprovision-window:{scope}` (zset by ms: job ids of an app, person ids fleet-wide), `{ns}:wave-open:{scope}` (id), `{ns}:wave:{id}` (hash), `{ns}:waves` (zset) | [`Store::waves`] |
//! | audit trail (one hash chain, every writer) | `{ns}:audit` (stream, field `r`: record JSON); `{ns}:audit:head` (`"{seq} {hash}"` of the last record, compare-and-set by every append) | [`Store::audit`] |
//!
//! The registry lets a mover who leaves an app's scope, or a leaver, be
//! deprovisioned where they were; the applied version keeps an older job
//! from overwriting newer state (guarantee 3). Writes that must never move
//! a version backwards are compare-and-set Lua scripts, each beside its
//! record with every key it touches passed in `KEYS`: two scheduler or
//! worker replicas racing on one person can never move a version backwards.
//! Writes that record a result under a lease (applied version, desired
//! state, evidence) are fenced too: refused when a newer lease exists.

mod applied;
mod audit;
mod claims;
mod desired;
mod dry_runs;
mod evidence;
mod held;
mod imports;
mod journeys;
mod keys;
mod leases;
mod ops;
mod pacing;
mod profiles;
mod registry;
mod scheduled;
mod sources;
mod totp;
mod waves;

pub use applied::Applied;
pub use audit::{Appended, AuditPage, AuditStore};
pub use claims::{Claims, Slot, SweepClaim, SweepTake};
pub use desired::{Desired, DesiredAccount, MissingScan};
pub use dry_runs::DryRuns;
pub use evidence::Evidence;
pub use held::{Approval, Held, HeldJob, HoldKind};
pub use imports::Imports;
pub use journeys::{JourneyStep, Journeys};
pub use keys::account_keys;
pub use leases::{FENCE_CHECK, FENCED_OUT, Fence, Fenced, Lease, LeaseScope, Leases};
pub use ops::{AppOps, BreakerOps, LAST_ERROR_DETAIL_CHARS, LastError, Ops};
pub use pacing::Pacing;
pub use profiles::{ProbedProfile, Profiles};
pub use registry::{PersonRecord, Planning, Recorded, Registry};
pub use scheduled::{CLAIM_MS, Scheduled, ScheduledEvent, Scheduling};
pub use sources::{Kept, Sources};
pub use totp::Totp;
pub use waves::{Admission, FLEET_SCOPE, Wave, Waves, app_scope};

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::RedisConfig;
use crate::tls::TlsError;
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

/// A client for `[redis]`; the TLS files are read here, on every connect.
fn client(redis: &RedisConfig) -> Result<redis::Client, StoreError> {
    // The Redis client's rustls connector uses the process-wide provider.
    crate::tls::install_crypto_provider();
    let material = redis.tls_files().load().map_err(StoreError::Tls)?;
    if material.is_empty() {
        return redis::Client::open(redis.url.expose()).map_err(StoreError::Connect);
    }
    let certificates = redis::TlsCertificates {
        client_tls: material.identity.map(|identity| redis::ClientTlsConfig {
            client_cert: identity.cert_pem,
            client_key: identity.key_pem.expose().as_bytes().to_vec(),
        }),
        root_cert: material.ca_pem.map(String::into_bytes),
    };
    redis::Client::build_with_tls(redis.url.expose(), certificates).map_err(StoreError::Connect)
}

/// A namespaced handle on Redis; cheap to clone (one multiplexed connection
/// that reconnects by itself).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
}

impl Store {
    /// Connects to Redis as `[redis]` says (`rediss://` trusting its
    /// `ca_file` and presenting its client certificate when set), for `namespace`.
    pub async fn connect(redis: &RedisConfig, namespace: &str) -> Result<Self, StoreError> {
        let client = client(redis)?;
        let conn = client.get_connection_manager().await.map_err(StoreError::Connect)?;
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
        self.delete_matching(&self.keys.pattern(), |_| true).await
    }

    /// Deletes keys of throw-away namespaces `{prefix}{unix seconds}-…` created
    /// before `cutoff` (left by crashed test runs); returns how many.
    pub async fn sweep_namespaces(&self, prefix: &str, cutoff: i64) -> Result<u64, StoreError> {
        let stale = |key: &str| {
            let created = key.strip_prefix(prefix).and_then(|rest| rest.split('-').next());
            created.and_then(|t| t.parse::<i64>().ok()).is_some_and(|t| t < cutoff)
        };
        self.delete_matching(&keys::prefix_pattern(prefix), stale).await
    }

    async fn delete_matching(&self, pattern: &str, keep: impl Fn(&str) -> bool) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(command("scan namespace"))?;
            keys.retain(|k| keep(k));
            if !keys.is_empty() {
                deleted += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<u64>(&mut conn)
                    .await
                    .map_err(command("delete namespace"))?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
