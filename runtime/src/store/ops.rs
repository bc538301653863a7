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
        let mut conn = self.store.conn.clone();
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(command("read ops state"))?;
        let now = Utc::now();
        hashes.iter().map(|fields| AppOps::from_fields(fields, now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
    }

    fn entry(written: i64, open_until: Option<i64>) -> String {
        serde_json::to_string(&BreakerEntry { at: at(written), open_until: open_until.map(at) })
            .expect("serialises")
    }

    fn fields(pairs: &[(&str, String)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn only_breakers_open_now_count_and_the_latest_open_until_wins() {
        let now = at(100);
        let hash = fields(&[
            ("breaker:a", entry(90, Some(130))),
            ("breaker:b", entry(95, Some(160))),
            // A replica that died with its breaker open: expired by now.
            ("breaker:dead", entry(10, Some(40))),
            ("breaker:c", entry(99, None)),
        ]);
        let ops = AppOps::from_fields(&hash, now).expect("readable");
        assert_eq!(ops.breaker.open_instances, 2);
        assert_eq!(ops.breaker.open_until, Some(at(160)));
        assert_eq!(ops.breaker.changed_at, Some(at(99)));
        assert_eq!((ops.last_error, ops.verification_failures), (None, 0));
    }

    #[test]
    fn last_error_and_counter_are_read_back() {
        let error =
            LastError { at: at(5), reason: "permanent_error".into(), status: Some(400), detail: "x".into() };
        let hash = fields(&[
            (LAST_ERROR, serde_json::to_string(&error).expect("serialises")),
            (VERIFICATION_FAILURES, "3".into()),
            (IDENTITY_CONFLICTS, "2".into()),
        ]);
        let ops = AppOps::from_fields(&hash, at(10)).expect("readable");
        assert_eq!(ops.last_error, Some(error));
        assert_eq!((ops.verification_failures, ops.identity_conflicts), (3, 2));
        assert_eq!(ops.breaker, BreakerOps::default());
    }

    #[test]
    fn a_corrupt_field_is_an_error() {
        let hash = fields(&[(VERIFICATION_FAILURES, "many".into())]);
        assert!(matches!(AppOps::from_fields(&hash, at(0)), Err(StoreError::Corrupt { .. })));
        let hash = fields(&[("breaker:a", "{".into())]);
        assert!(matches!(AppOps::from_fields(&hash, at(0)), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn stale_entries_are_closed_or_expired_and_older_than_the_retention() {
        let day = BREAKER_RETENTION.num_seconds();
        let now = at(10 * day);
        let hash = fields(&[
            ("breaker:closed-old", entry(0, None)),
            ("breaker:expired-old", entry(0, Some(60))),
            ("breaker:closed-recent", entry(10 * day - 60, None)),
            ("breaker:open", entry(0, Some(11 * day))),
            ("breaker:garbage", "nope".into()),
            (LAST_ERROR, "kept whatever it is".into()),
        ]);
        let mut stale = stale_breakers(&hash, now);
        stale.sort_unstable();
        assert_eq!(stale, ["breaker:closed-old", "breaker:expired-old", "breaker:garbage"]);
    }

    #[test]
    fn details_are_cut_on_character_boundaries() {
        assert_eq!(bounded("short", 300), "short");
        let long = "é".repeat(301);
        let cut = bounded(&long, 300);
        assert_eq!(cut.chars().count(), 301, "300 characters and the ellipsis");
        assert!(cut.ends_with('…'));
        assert_eq!(bounded(&"a".repeat(300), 300).len(), 300, "exactly the limit is kept whole");
    }
}
