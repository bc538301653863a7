//! Operational state for on-call (`scimfleet status`): what the workers know
//! about each app that RabbitMQ cannot tell.
//!
//! One hash per app, `{ns}:ops:{app}`, with three kinds of field:
//! - `breaker:{instance}`: the circuit breaker of one worker process (each
//!   process has its own breaker per app), as JSON `{at, open_until}`:
//!   when it was written and until when it is open (`null`: closed).
//!   Readers count an entry whose `open_until` has passed as not open, so
//!   the entry of a replica that died with an open breaker expires by
//!   itself. Entries that are neither open nor recent are pruned when a
//!   breaker changes, so the hash stays as small as the fleet.
//! - `last_error`: the app's latest failure, as JSON [`LastError`] with a
//!   bounded reason label and a detail cut to [`LAST_ERROR_DETAIL_CHARS`].
//! - `verification_failures`: a counter of deprovisions that verification
//!   found undone.
//! - `identity_conflicts`: a counter of jobs refused because the account
//!   found by login is bound to another person.
//!
//! Workers write here on failure paths and breaker changes only, never per
//! successful job, each write in one round trip. A write that fails is the
//! caller's to log: the job it describes is settled regardless.
//!
//! Operator pauses (`scimfleet pause`, [`Paused`]) live beside, in one hash
//! for the namespace, `{ns}:operator-pauses` (field: app id): every worker
//! process polls it a few times a second, one read for all its apps.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use scimfleet_schemas::AppId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, command};

/// Longest `detail` of a [`LastError`] kept, in characters.
pub const LAST_ERROR_DETAIL_CHARS: usize = 300;

const BREAKER_PREFIX: &str = "breaker:";
const LAST_ERROR: &str = "last_error";
const VERIFICATION_FAILURES: &str = "verification_failures";
const IDENTITY_CONFLICTS: &str = "identity_conflicts";
const UNSUPPORTED_PREFIX: &str = "unsupported:";

/// How long a breaker entry that is not open outlives its last write (or
/// its `open_until`) before the next breaker change prunes it.
const BREAKER_RETENTION: TimeDelta = TimeDelta::hours(24);

/// The latest failure of an app, as kept for `scimfleet status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// A bounded label: a dead-letter reason (`retries_exhausted`,
    /// `permanent_error`, ...) or `transient` for a failure that is retried.
    pub reason: String,
    /// The app's last HTTP status, when it answered.
    pub status: Option<u16>,
    /// The error chain, free of personal data and secrets, at most
    /// [`LAST_ERROR_DETAIL_CHARS`] characters.
    pub detail: String,
}

/// What the breakers of an app's worker processes report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerOps {
    /// Worker processes whose breaker for the app is open now.
    pub open_instances: u32,
    /// The latest time until which one of them is open.
    pub open_until: Option<DateTime<Utc>>,
    /// The latest breaker change reported by any process.
    pub changed_at: Option<DateTime<Utc>>,
}

/// The operational state of one app, read back by [`Ops::get`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppOps {
    /// Circuit breakers.
    pub breaker: BreakerOps,
    /// The latest failure, if any was noted.
    pub last_error: Option<LastError>,
    /// Deprovisions verification found undone, since the namespace began.
    pub verification_failures: u64,
    /// Jobs refused because the account found by login is bound to another
    /// person, since the namespace began.
    pub identity_conflicts: u64,
    /// Managed attributes the app dropped when written (so no longer
    /// written), by SCIM path, sorted.
    pub unsupported_attributes: Vec<String>,
    /// The operator's pause of the app, while it is paused.
    pub paused: Option<Paused>,
}

/// An operator's pause of an app: no worker takes its jobs, which wait in
/// its queues, until it is resumed. Not the rate pause of a `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    /// Who paused it (the operator's name).
    pub by: String,
    /// Since when.
    pub at: DateTime<Utc>,
    /// Why, in the operator's words (no personal data, by convention).
    pub reason: String,
}

/// One worker process's breaker entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct BreakerEntry {
    at: DateTime<Utc>,
    open_until: Option<DateTime<Utc>>,
}

impl BreakerEntry {
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.open_until.is_some_and(|until| until > now)
    }

    /// Not open, and nothing happened within the retention.
    fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let last = self.open_until.map_or(self.at, |until| until.max(self.at));
        !self.is_open(now) && now - last > BREAKER_RETENTION
    }
}

/// `detail` cut to `max` characters (an ellipsis marks a cut).
fn bounded(detail: &str, max: usize) -> String {
    match detail.char_indices().nth(max) {
        None => detail.to_owned(),
        Some((end, _)) => format!("{}…", &detail[..end]),
    }
}

fn corrupt(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |_| StoreError::Corrupt { what }
}

impl AppOps {
    /// The state from the fields of an app's ops hash, judged at `now`.
    fn from_fields(fields: &HashMap<String, String>, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let mut ops = Self::default();
        for (field, value) in fields {
            if field.starts_with(BREAKER_PREFIX) {
                let entry: BreakerEntry = serde_json::from_str(value).map_err(corrupt("breaker entry"))?;
                ops.breaker.changed_at = ops.breaker.changed_at.max(Some(entry.at));
                if entry.is_open(now) {
                    ops.breaker.open_instances += 1;
                    ops.breaker.open_until = ops.breaker.open_until.max(entry.open_until);
                }
            } else if field == LAST_ERROR {
                ops.last_error = Some(serde_json::from_str(value).map_err(corrupt("last error"))?);
            } else if field == VERIFICATION_FAILURES {
                ops.verification_failures =
                    value.parse().map_err(|_| StoreError::Corrupt { what: "verification failure count" })?;
            } else if field == IDENTITY_CONFLICTS {
                ops.identity_conflicts =
                    value.parse().map_err(|_| StoreError::Corrupt { what: "identity conflict count" })?;
            } else if let Some(path) = field.strip_prefix(UNSUPPORTED_PREFIX) {
                ops.unsupported_attributes.push(path.to_owned());
            }
        }
        ops.unsupported_attributes.sort();
        Ok(ops)
    }
}

/// Breaker fields to prune at `now`: stale entries, and unreadable ones
/// (which only a bug or an older version could have written).
fn stale_breakers(fields: &HashMap<String, String>, now: DateTime<Utc>) -> Vec<&str> {
    fields
        .iter()
        .filter(|(field, _)| field.starts_with(BREAKER_PREFIX))
        .filter(|(_, value)| {
            serde_json::from_str::<BreakerEntry>(value).map_or(true, |entry| entry.is_stale(now))
        })
        .map(|(field, _)| field.as_str())
        .collect()
}

/// The per-app operational state; from [`Store::ops`].
#[derive(Clone, Copy)]
pub struct Ops<'s> {
    store: &'s Store,
}

impl<'s> Ops<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Records the breaker of `app` in worker process `instance`: open until
    /// `open_until`, or closed (`None`). One round trip (write, then read
    /// the hash back to find stale entries); a second one only when some
    /// are pruned.
    pub async fn note_breaker(
        self,
        app: &AppId,
        instance: &str,
        open_until: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let key = self.store.keys.ops(app);
        // Serialising our own type cannot fail.
        let entry = serde_json::to_string(&BreakerEntry { at: now, open_until }).unwrap_or_default();
        let mut conn = self.store.conn.clone();
        let (fields,): (HashMap<String, String>,) = redis::pipe()
            .cmd("HSET")
            .arg(&key)
            .arg(format!("{BREAKER_PREFIX}{instance}"))
            .arg(entry)
            .ignore()
            .cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(command("note breaker"))?;
        let stale = stale_breakers(&fields, now);
        if stale.is_empty() {
            return Ok(());
        }
        redis::cmd("HDEL")
            .arg(&key)
            .arg(&stale)
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("prune breaker entries"))
    }

    /// Records `error` as the latest failure of `app` (its detail cut to
    /// [`LAST_ERROR_DETAIL_CHARS`]).
    pub async fn note_error(self, app: &AppId, error: &LastError) -> Result<(), StoreError> {
        let kept = LastError { detail: bounded(&error.detail, LAST_ERROR_DETAIL_CHARS), ..error.clone() };
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(&kept).unwrap_or_default();
        let mut conn = self.store.conn.clone();
        redis::cmd("HSET")
            .arg(self.store.keys.ops(app))
            .arg(LAST_ERROR)
            .arg(json)
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("note last error"))
    }

    /// Counts one deprovision of `app` that verification found undone.
    pub async fn count_verification_failure(self, app: &AppId) -> Result<(), StoreError> {
        self.count(app, VERIFICATION_FAILURES, "count verification failure").await
    }

    /// Counts one job of `app` refused because the account found by login
    /// is bound to another person.
    pub async fn count_identity_conflict(self, app: &AppId) -> Result<(), StoreError> {
        self.count(app, IDENTITY_CONFLICTS, "count identity conflict").await
    }

    /// Records that `app` drops the managed attribute at `path` when written.
    pub async fn note_unsupported(self, app: &AppId, path: &str) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HSET")
            .arg(self.store.keys.ops(app))
            .arg(format!("{UNSUPPORTED_PREFIX}{path}"))
            .arg(Utc::now().to_rfc3339())
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("note unsupported attribute"))
    }

    async fn count(self, app: &AppId, field: &str, what: &'static str) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HINCRBY")
            .arg(self.store.keys.ops(app))
            .arg(field)
            .arg(1)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command(what))
    }

    /// Pauses `app` unless it is paused already: `None` when this call
    /// paused it, else the pause in place (kept as it is). One atomic step.
    pub async fn pause(self, app: &AppId, pause: &Paused) -> Result<Option<Paused>, StoreError> {
        let key = self.store.keys.operator_pauses();
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(pause).unwrap_or_default();
        let mut conn = self.store.conn.clone();
        let (set, current): (bool, Option<String>) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(&key)
            .arg(app.as_str())
            .arg(json)
            .cmd("HGET")
            .arg(&key)
            .arg(app.as_str())
            .query_async(&mut conn)
            .await
            .map_err(command("pause app"))?;
        if set { Ok(None) } else { parse_pause(current) }
    }

    /// Lifts the pause of `app`: the pause lifted, `None` when there was none.
    pub async fn resume(self, app: &AppId) -> Result<Option<Paused>, StoreError> {
        let key = self.store.keys.operator_pauses();
        let mut conn = self.store.conn.clone();
        let (current, _): (Option<String>, u64) = redis::pipe()
            .atomic()
            .cmd("HGET")
            .arg(&key)
            .arg(app.as_str())
            .cmd("HDEL")
            .arg(&key)
            .arg(app.as_str())
            .query_async(&mut conn)
            .await
            .map_err(command("resume app"))?;
        parse_pause(current)
    }

    /// The ids of the apps paused now (one read, whatever the number of apps).
    pub async fn paused_apps(self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HKEYS")
            .arg(self.store.keys.operator_pauses())
            .query_async(&mut conn)
            .await
            .map_err(command("read app pauses"))
    }

    /// The operational state of `app`.
    pub async fn get(self, app: &AppId) -> Result<AppOps, StoreError> {
        let mut all = self.get_many(std::slice::from_ref(app)).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// The operational state of each of `apps`, in order (one pipeline).
    pub async fn get_many(self, apps: &[AppId]) -> Result<Vec<AppOps>, StoreError> {
        if apps.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for app in apps {
            pipe.cmd("HGETALL").arg(self.store.keys.ops(app));
        }
        pipe.cmd("HGETALL").arg(self.store.keys.operator_pauses());
        let mut conn = self.store.conn.clone();
        let mut hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(command("read ops state"))?;
        let mut pauses = hashes.pop().unwrap_or_default();
        let now = Utc::now();
        let read = |(app, fields): (&AppId, &HashMap<String, String>)| {
            let paused = parse_pause(pauses.remove(app.as_str()))?;
            Ok(AppOps { paused, ..AppOps::from_fields(fields, now)? })
        };
        apps.iter().zip(&hashes).map(read).collect()
    }
}

fn parse_pause(json: Option<String>) -> Result<Option<Paused>, StoreError> {
    json.map(|json| serde_json::from_str(&json)).transpose().map_err(corrupt("app pause"))
}

#[cfg(test)]
mod tests;
