//! Redis: the small, fast state shared by every process.
//!
//! Two records exist so far, each behind one typed key constructor under the
//! namespace:
//! - the **person registry** (`{ns}:person:{id}`, a hash): the last event
//!   `sequence` the scheduler fanned out, the status, and the apps the person
//!   should hold an active account in. It is what lets a mover who leaves an
//!   app's scope, or a leaver, be deprovisioned where they were.
//! - the **applied version** (`{ns}:applied:{app}:{id}`): the highest person
//!   `sequence` a worker converged in an app, so an older job never
//!   overwrites newer state (guarantee 3).
//!
//! - **rate buckets** (`{ns}:rate:{bucket}`) and **pauses**
//!   (`{ns}:pause:{app}`): the pacing every replica shares (see `pace`).
//! - the **lease** (`{ns}:lease:{app}:{id}`, `SET NX PX`): held by the one
//!   worker applying that person in that app, across processes.
//!
//! - the **desired state** (`{ns}:desired:{app}:{id}`) of the last upsert a
//!   worker converged, the **account index** (`{ns}:account:{app}:{key}`, key
//!   `ext:<externalId>` or `un:<lower-cased userName>`) mapping an account
//!   back to its person, and the **members** of each app
//!   (`{ns}:members:{app}`, a set kept with the registry): what a sweep
//!   compares an app's accounts with (see `desired`).
//! - the **ops state** (`{ns}:ops:{app}`, a hash): per worker process the
//!   app's breaker, the app's last error and its verification failures,
//!   what `scimfleet status` cannot learn from RabbitMQ (see `ops`).
//!
//! The writes are compare-and-set Lua scripts: two scheduler or worker
//! replicas racing on one person can never move a version backwards.

mod desired;
mod evidence;
mod journey;
mod ops;

pub use desired::{DesiredAccount, MissingScan, account_keys};
pub use journey::JourneyStep;
pub use ops::{AppOps, BreakerOps, LAST_ERROR_DETAIL_CHARS, LastError};

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

use crate::Secret;

/// A Redis operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Connecting failed. The URL is not shown: it may hold a password.
    #[error("cannot connect to Redis")]
    Connect(#[source] redis::RedisError),
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
}

/// Random bits for lease tokens, without a dependency: hashing a fresh
/// `RandomState` yields OS-seeded randomness, enough to tell holders apart.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

fn command(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Command { operation, source }
}

/// What the registry knows of a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRecord {
    /// The last fanned-out `sequence`.
    pub sequence: u64,
    /// The status then (stored by its wire name).
    pub status: PersonStatus,
    /// Apps in which the person should hold an active account.
    pub apps: Vec<AppId>,
}

/// A registry record from its hash fields; `None` when there is none.
fn person_record(
    seq: Option<u64>,
    status: Option<String>,
    apps: Option<String>,
) -> Result<Option<PersonRecord>, StoreError> {
    let Some(sequence) = seq else { return Ok(None) };
    let apps = apps
        .unwrap_or_default()
        .split(',')
        .filter(|a| !a.is_empty())
        .map(AppId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StoreError::Corrupt { what: "person registry apps" })?;
    let status = status
        .as_deref()
        .and_then(PersonStatus::parse)
        .ok_or(StoreError::Corrupt { what: "person registry status" })?;
    Ok(Some(PersonRecord { sequence, status, apps }))
}

/// Typed key constructors, one per key kind, always under the namespace.
#[derive(Debug, Clone)]
struct Keys {
    ns: String,
}

impl Keys {
    fn person(&self, person: &PersonId) -> String {
        format!("{}:person:{person}", self.ns)
    }

    fn applied(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:applied:{app}:{person}", self.ns)
    }

    fn lease(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:lease:{app}:{person}", self.ns)
    }

    fn rate(&self, bucket: &str) -> String {
        format!("{}:rate:{bucket}", self.ns)
    }

    fn pause(&self, app: &AppId) -> String {
        format!("{}:pause:{app}", self.ns)
    }

    fn evidence(&self, app: &AppId, person: &PersonId, sequence: u64) -> String {
        format!("{}:evidence:{app}:{person}:{sequence}", self.ns)
    }

    /// Sorted set of evidence keys by event time (ms), for exports by time.
    fn evidence_index(&self) -> String {
        format!("{}:evidence-index", self.ns)
    }

    fn desired(&self, app: &AppId, person: &PersonId) -> String {
        format!("{}:desired:{app}:{person}", self.ns)
    }

    fn account(&self, app: &AppId, key: &str) -> String {
        format!("{}:account:{app}:{key}", self.ns)
    }

    /// Prefix of `{ns}:members:{app}`, for the registry script, which
    /// derives the keys of the apps a person joins or leaves.
    fn members_prefix(&self) -> String {
        format!("{}:members:", self.ns)
    }

    fn members(&self, app: &AppId) -> String {
        format!("{}{app}", self.members_prefix())
    }

    fn sweep_seen(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}", self.ns)
    }

    fn sweep_missing(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}:missing", self.ns)
    }

    fn sweep_fixes(&self, app: &AppId, run: &str) -> String {
        format!("{}:sweep:{app}:{run}:fixes", self.ns)
    }

    fn claim(&self, what: &str) -> String {
        format!("{}:claim:{what}", self.ns)
    }

    fn ops(&self, app: &AppId) -> String {
        format!("{}:ops:{app}", self.ns)
    }

    fn pattern(&self) -> String {
        format!("{}:*", self.ns)
    }
}

// Returns 1 when stored, 0 when the stored sequence is already at least as new.
// Also keeps the per-app members sets (ARGV[4] is the `{ns}:members:` prefix,
// ARGV[5] the person) in the same script, so a sweep's "missing" never sees
// a registry and a members set that disagree. The set keys are derived here
// from the app lists rather than declared: fine on a standalone Redis, which
// is what scimfleet uses.
const RECORD_PERSON: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
if tonumber(ARGV[1]) <= current then return 0 end
local old = redis.call('HGET', KEYS[1], 'apps') or ''
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'status', ARGV[2], 'apps', ARGV[3])
local now = {}
for app in string.gmatch(ARGV[3], '[^,]+') do
  now[app] = true
  redis.call('SADD', ARGV[4] .. app, ARGV[5])
end
for app in string.gmatch(old, '[^,]+') do
  if not now[app] then redis.call('SREM', ARGV[4] .. app, ARGV[5]) end
end
return 1";

// Keeps the maximum; returns the stored value.
const RECORD_APPLIED: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end
return current";

// RECORD_APPLIED, then the desired state and account index of an upsert.
// KEYS: applied, desired, account index keys. ARGV: sequence, desired JSON,
// person id.
const RECORD_CONVERGED: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[2])
for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[3]) end
return 1";

// Deletes the lease only if it is still ours (a lease that expired and was
// taken by another worker must not be released by us).
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

// GCRA (generic cell rate algorithm) on Redis's clock, so every replica
// shares one schedule. KEYS: bucket, pause. ARGV: emission interval ms,
// tolerance ms. Returns 0 when the request may go now, else the wait in ms.
const PACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return math.ceil(paused - now) end
if tonumber(ARGV[1]) <= 0 then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1])
local allow_at = new_tat - tonumber(ARGV[2]) - tonumber(ARGV[1])
if allow_at > now then return math.ceil(allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0";

// Pauses an app until now + ARGV[1] ms, never shortening a longer pause.
const PAUSE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < until_ms then
  redis.call('SET', KEYS[1], string.format('%.3f', until_ms), 'PX', math.ceil(tonumber(ARGV[1])) + 1)
end
return 0";

/// A held lease on one person in one app; release it with [`Store::release`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    token: String,
}

/// A namespaced handle on Redis; cheap to clone (one multiplexed connection
/// that reconnects by itself).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    record_person: std::sync::Arc<Script>,
    record_applied: std::sync::Arc<Script>,
    record_converged: std::sync::Arc<Script>,
    release_lease: std::sync::Arc<Script>,
    pace: std::sync::Arc<Script>,
    pause: std::sync::Arc<Script>,
}

impl Store {
    /// Connects to Redis at `url` for `namespace`.
    pub async fn connect(url: &Secret, namespace: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.expose()).map_err(StoreError::Connect)?;
        let conn = client.get_connection_manager().await.map_err(StoreError::Connect)?;
        Ok(Self {
            conn,
            keys: Keys { ns: namespace.to_owned() },
            record_person: std::sync::Arc::new(Script::new(RECORD_PERSON)),
            record_applied: std::sync::Arc::new(Script::new(RECORD_APPLIED)),
            record_converged: std::sync::Arc::new(Script::new(RECORD_CONVERGED)),
            release_lease: std::sync::Arc::new(Script::new(RELEASE_LEASE)),
            pace: std::sync::Arc::new(Script::new(PACE)),
            pause: std::sync::Arc::new(Script::new(PAUSE)),
        })
    }

    /// Round-trips a PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop).map_err(command("PING"))
    }

    /// The registry record of `person`.
    pub async fn person(&self, person: &PersonId) -> Result<Option<PersonRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let (seq, status, apps): (Option<u64>, Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.person(person))
            .arg("seq")
            .arg("status")
            .arg("apps")
            .query_async(&mut conn)
            .await
            .map_err(command("read person"))?;
        person_record(seq, status, apps)
    }

    /// Stores `record` unless a newer or equal sequence is stored; true when stored.
    pub async fn record_person(&self, person: &PersonId, record: &PersonRecord) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let apps: Vec<&str> = record.apps.iter().map(AppId::as_str).collect();
        let stored: i64 = self
            .record_person
            .key(self.keys.person(person))
            .arg(record.sequence)
            .arg(record.status.as_str())
            .arg(apps.join(","))
            .arg(self.keys.members_prefix())
            .arg(person.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(command("record person"))?;
        Ok(stored == 1)
    }

    /// The highest sequence converged for `person` in `app`.
    pub async fn applied(&self, app: &AppId, person: &PersonId) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        conn.get(self.keys.applied(app, person)).await.map_err(command("read applied version"))
    }

    /// Raises the applied sequence to `sequence` (never lowers it).
    pub async fn record_applied(
        &self,
        app: &AppId,
        person: &PersonId,
        sequence: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.record_applied
            .key(self.keys.applied(app, person))
            .arg(sequence)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("record applied version"))
    }

    /// Claims `what` for `period` if nobody claimed it within the last one:
    /// how a periodic task (a sweep) runs once per period across replicas
    /// and restarts. A claim is never released early.
    pub async fn claim_period(&self, what: &str, period: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.keys.claim(what))
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await
            .map_err(command("claim a period"))?;
        Ok(taken.is_some())
    }

    /// Takes the lease on `person` in `app` for `ttl` if nobody holds it: the
    /// cross-process guarantee that two workers never apply one person in one
    /// app at once. The TTL frees the lease of a worker that died holding it.
    ///
    /// With the lease comes the person's applied version in the app
    /// ([`Store::applied`]), read in the same round trip: the read runs after
    /// the lease was set, and that version is only written under the lease,
    /// so it is current. `None` when someone else holds the lease.
    pub async fn try_lease(
        &self,
        app: &AppId,
        person: &PersonId,
        ttl: Duration,
    ) -> Result<Option<(Lease, Option<u64>)>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.lease(app, person);
        let token = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        let (taken, applied): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .cmd("GET")
            .arg(self.keys.applied(app, person))
            .query_async(&mut conn)
            .await
            .map_err(command("take lease"))?;
        Ok(taken.map(|_| (Lease { key, token }, applied)))
    }

    /// Releases a lease (a no-op if it expired and someone else holds it now).
    pub async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.release_lease
            .key(&lease.key)
            .arg(&lease.token)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("release lease"))
    }

    /// Asks to send one request to `app` through rate bucket `bucket` (`None`:
    /// only the app's pause applies). `Duration::ZERO` means go now; otherwise
    /// wait that long and ask again. `interval` is the time per request at the
    /// sustained rate and `burst` how many may go at once.
    pub async fn pace(
        &self,
        app: &AppId,
        bucket: Option<&str>,
        interval: Duration,
        burst: u32,
    ) -> Result<Duration, StoreError> {
        let mut conn = self.conn.clone();
        let interval_ms = interval.as_secs_f64() * 1000.0;
        let tolerance_ms = interval_ms * f64::from(burst.saturating_sub(1));
        let wait_ms: u64 = self
            .pace
            .key(self.keys.rate(bucket.unwrap_or("-")))
            .key(self.keys.pause(app))
            .arg(if bucket.is_some() { interval_ms } else { 0.0 })
            .arg(tolerance_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(command("pace"))?;
        Ok(Duration::from_millis(wait_ms))
    }

    /// Holds every request to `app`, from every replica, for `duration`.
    pub async fn pause(&self, app: &AppId, duration: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.pause
            .key(self.keys.pause(app))
            .arg(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("pause app"))
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
        self.delete_matching(&format!("{prefix}*"), stale).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_status_reads_back_typed_and_an_unknown_one_is_corrupt() {
        let read = |status: &str| person_record(Some(2), Some(status.to_owned()), Some("crm".to_owned()));
        let record = read("suspended").expect("valid").expect("present");
        assert_eq!(record.status, PersonStatus::Suspended);
        assert!(matches!(read("retired"), Err(StoreError::Corrupt { what: "person registry status" })));
        assert!(matches!(read(""), Err(StoreError::Corrupt { .. })));
    }
}
