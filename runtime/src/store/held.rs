//! Jobs the scheduler held for an approver (`{ns}:held:{id}`, a hash of
//! the record's JSON, its `seq`, its `wave` and the `approvals` so far),
//! listed by `{ns}:held-index` (by when held), expired by
//! `{ns}:held-expiry` (grants only: a wave never expires, because what it
//! holds is removal of access), and found per person and app by
//! `{ns}:held-person:{app}:{person}` so a newer event supersedes it.
//!
//! A held job leaves the store exactly once, through [`Held::claim`]: the
//! approver who releases it, the expiry, a cancel and a supersede all
//! claim first and act after, so two of them can never both act on it.
//! An approver whose publish then fails puts it back ([`Held::put_back`]).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};
use scimfleet_schemas::{AppId, PersonId};

use super::{Store, StoreError, command};

mod record;

use record::decode;
pub use record::{HeldJob, HoldKind};

/// Stores a held job unless one with its id is held already (a redelivered
/// event). KEYS: held, index, expiry, person pointer. ARGV: id, json, seq,
/// wave, approvals, held ms, expiry ms (0: none). Returns 1 when stored.
const PUT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'seq', ARGV[3], 'wave', ARGV[4], 'approvals', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
if tonumber(ARGV[7]) > 0 then redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1]) end
redis.call('SET', KEYS[4], ARGV[1])
return 1";

/// Takes a held job out, when present and (ARGV[2] not empty) its sequence
/// is below ARGV[2]. KEYS: held, index, expiry, person pointer. ARGV: id,
/// sequence bound. Returns {json, wave, approvals} or nil.
const CLAIM: &str = r"
local fields = redis.call('HMGET', KEYS[1], 'json', 'seq', 'wave', 'approvals')
if not fields[1] then return false end
if ARGV[2] ~= '' and tonumber(fields[2]) >= tonumber(ARGV[2]) then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return {fields[1], fields[3], fields[4]}";

/// Adds an approver to a held job or a wave. KEYS: the hash. ARGV: the
/// approver. Returns -1 when absent, -2 when they approved already, else
/// the number of distinct approvers.
pub(super) const APPROVE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local list = redis.call('HGET', KEYS[1], 'approvals') or ''
local n = 0
for name in string.gmatch(list, '[^,]+') do
  if name == ARGV[1] then return -2 end
  n = n + 1
end
if list == '' then list = ARGV[1] else list = list .. ',' .. ARGV[1] end
redis.call('HSET', KEYS[1], 'approvals', list)
return n + 1";

static PUT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PUT));
static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));
pub(super) static APPROVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPROVE));

/// What adding an approval found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Nothing held under that id (released, rejected or expired since).
    Gone,
    /// This approver approved it already.
    Again,
    /// Counted: this many distinct approvers so far.
    Counted(u32),
}

impl Approval {
    pub(super) fn from_script(n: i64) -> Self {
        match n {
            -1 => Self::Gone,
            -2 => Self::Again,
            n => Self::Counted(u32::try_from(n).unwrap_or(0)),
        }
    }
}

/// The held jobs; from [`Store::held`].
#[derive(Clone, Copy)]
pub struct Held<'s> {
    store: &'s Store,
}

impl<'s> Held<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Holds `job` for an approver; false when it was held already.
    pub async fn hold(self, job: &HeldJob) -> Result<bool, StoreError> {
        self.put(job, "").await
    }

    /// Puts back a job claimed for release whose publish failed, with its approvals.
    pub async fn put_back(self, job: &HeldJob) -> Result<bool, StoreError> {
        let approvals = job.approvals.join(",");
        self.put(job, &approvals).await
    }

    async fn put(self, job: &HeldJob, approvals: &str) -> Result<bool, StoreError> {
        let keys = &self.store.keys;
        let json = serde_json::to_string(job).map_err(|_| StoreError::Corrupt { what: "held job" })?;
        let mut conn = self.store.conn.clone();
        let stored: i64 = PUT_SCRIPT
            .key(keys.held(&job.id))
            .key(keys.held_index())
            .key(keys.held_expiry())
            .key(keys.held_person(&job.job.app, &job.job.person))
            .arg(&job.id)
            .arg(json)
            .arg(job.job.sequence)
            .arg(job.wave.as_deref().unwrap_or(""))
            .arg(approvals)
            .arg(job.held_at.timestamp_millis())
            .arg(job.expires_at.map_or(0, |t| t.timestamp_millis()))
            .invoke_async(&mut conn)
            .await
            .map_err(command("hold job"))?;
        Ok(stored == 1)
    }

    /// The held job with `id`.
    pub async fn get(self, id: &str) -> Result<Option<HeldJob>, StoreError> {
        let mut conn = self.store.conn.clone();
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.store.keys.held(id))
            .arg(&["json", "wave", "approvals"][..])
            .query_async(&mut conn)
            .await
            .map_err(command("read held job"))?;
        decode(&fields)
    }

    /// Every held job, oldest first.
    pub async fn list(self) -> Result<Vec<HeldJob>, StoreError> {
        let mut conn = self.store.conn.clone();
        let ids: Vec<String> =
            conn.zrange(self.store.keys.held_index(), 0, -1).await.map_err(command("list held jobs"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET").arg(self.store.keys.held(id)).arg(&["json", "wave", "approvals"][..]);
        }
        let rows: Vec<Vec<Option<String>>> =
            pipe.query_async(&mut conn).await.map_err(command("read held jobs"))?;
        let mut held = Vec::with_capacity(rows.len());
        for row in &rows {
            held.extend(decode(row)?);
        }
        Ok(held)
    }

    /// How many jobs are held.
    pub async fn count(self) -> Result<u64, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.zcard(self.store.keys.held_index()).await.map_err(command("count held jobs"))
    }

    /// The ids of held grants whose expiry is before `now` (at most `limit`).
    pub async fn expired(self, now: DateTime<Utc>, limit: isize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.zrangebyscore_limit(self.store.keys.held_expiry(), "-inf", now.timestamp_millis(), 0, limit)
            .await
            .map_err(command("list expired holds"))
    }

    /// The id of the job held for `person` in `app`, if any.
    pub async fn of_person(self, app: &AppId, person: &PersonId) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.get(self.store.keys.held_person(app, person)).await.map_err(command("find held job"))
    }

    /// The ids of the jobs held for `person` in each of `apps`, in order.
    pub async fn of_person_many(
        self,
        apps: &[&AppId],
        person: &PersonId,
    ) -> Result<Vec<Option<String>>, StoreError> {
        if apps.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = apps.iter().map(|app| self.store.keys.held_person(app, person)).collect();
        let mut conn = self.store.conn.clone();
        redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.map_err(command("find held jobs"))
    }

    /// Records an approval of the held job `id` by `approver`.
    pub async fn approve(self, id: &str, approver: &str) -> Result<Approval, StoreError> {
        let mut conn = self.store.conn.clone();
        let n: i64 = APPROVE_SCRIPT
            .key(self.store.keys.held(id))
            .arg(approver)
            .invoke_async(&mut conn)
            .await
            .map_err(command("approve held job"))?;
        Ok(Approval::from_script(n))
    }

    /// Takes the held job `id` out of the store, to act on it; `None` when
    /// someone else took it first. With `older_than`, only a job of a lower
    /// sequence is taken (a newer event superseding it).
    pub async fn claim(
        self,
        id: &str,
        app: &AppId,
        person: &PersonId,
        older_than: Option<u64>,
    ) -> Result<Option<HeldJob>, StoreError> {
        let keys = &self.store.keys;
        let mut conn = self.store.conn.clone();
        let fields: Option<Vec<Option<String>>> = CLAIM_SCRIPT
            .key(keys.held(id))
            .key(keys.held_index())
            .key(keys.held_expiry())
            .key(keys.held_person(app, person))
            .arg(id)
            .arg(older_than.map(|s| s.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await
            .map_err(command("claim held job"))?;
        fields.map_or(Ok(None), |f| decode(&f))
    }

    /// Records that an approver cancelled the deprovision of `person` in
    /// `app` at `sequence`: the person's registry still says they left, and
    /// a sweep must not remove what the approver kept until a newer event.
    pub async fn mark_cancelled(
        self,
        app: &AppId,
        person: &PersonId,
        sequence: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        conn.set::<_, _, ()>(self.store.keys.cancelled(app, person), sequence)
            .await
            .map_err(command("record a cancelled deprovision"))
    }

    /// For each of `persons`, the sequence up to which a deprovision in
    /// `app` was cancelled, if any.
    pub async fn cancelled_many(
        self,
        app: &AppId,
        persons: &[PersonId],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if persons.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = persons.iter().map(|p| self.store.keys.cancelled(app, p)).collect();
        let mut conn = self.store.conn.clone();
        redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(command("read cancelled deprovisions"))
    }

    /// The high-risk groups `person` was let into in `app`.
    pub async fn granted(self, app: &AppId, person: &PersonId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.smembers(self.store.keys.granted(app, person)).await.map_err(command("read granted groups"))
    }

    /// Records the high-risk groups `person` now holds in `app` (replacing
    /// what was recorded; none clears it).
    pub async fn set_granted(
        self,
        app: &AppId,
        person: &PersonId,
        groups: &[String],
    ) -> Result<(), StoreError> {
        let key = self.store.keys.granted(app, person);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        if !groups.is_empty() {
            pipe.sadd(&key, groups).ignore();
        }
        let mut conn = self.store.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(command("record granted groups"))
    }

    /// Adds `groups` to what `person` holds in `app` (an approved grant).
    pub async fn add_granted(
        self,
        app: &AppId,
        person: &PersonId,
        groups: &[String],
    ) -> Result<(), StoreError> {
        if groups.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.conn.clone();
        conn.sadd::<_, _, ()>(self.store.keys.granted(app, person), groups)
            .await
            .map_err(command("record granted groups"))
    }
}
