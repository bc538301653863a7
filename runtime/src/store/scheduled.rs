//! Events whose `effective_at` is still ahead, kept until that instant:
//! `{ns}:scheduled` (sorted set of event ids by effective time, in ms),
//! `{ns}:scheduled:{id}` (one JSON record: the event as received and what
//! listing it needs) and `{ns}:scheduled-person:{person}` (the id of the
//! person's scheduled event: one per person, the newest).
//!
//! Consistency rules, each one script:
//! - scheduling is idempotent by event id; a person's scheduled event is
//!   replaced by a newer one and never by an older one;
//! - a newer event of the person cancels what is scheduled for them
//!   ([`Scheduled::cancel_older`]);
//! - releasing is claim, publish, remove: [`Scheduled::claim_due`] reads
//!   the due ids on Redis's clock (one clock for every replica, so nothing
//!   is released before its instant by a replica whose clock is ahead) and
//!   moves them [`CLAIM_MS`] ahead, so a replica that dies before its
//!   publish leaves them to be claimed again, never lost; one that dies
//!   after the publish and before [`Scheduled::remove`] has them published
//!   twice, and the second is dropped as not newer.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};
use scimfleet_schemas::PersonId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, command};

/// How long a claimed event is left to its claimer before it is due again.
pub const CLAIM_MS: u64 = 30_000;

/// An event kept until it takes effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledEvent {
    /// The event's id.
    pub id: String,
    /// The event's `type`.
    pub kind: String,
    /// The person's HR id (never shown: see `pseudonym`).
    pub person: PersonId,
    /// The person's pseudonym, for listings and logs.
    pub pseudonym: String,
    /// The event's sequence.
    pub sequence: u64,
    /// When it takes effect.
    pub effective_at: DateTime<Utc>,
    /// When it was scheduled.
    pub scheduled_at: DateTime<Utc>,
    /// The event as received, published again as it is.
    pub body: String,
    /// Its content type, when it had one.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// KEYS: [1] index, [2] record, [3] person pointer, [4] the record of the
/// event the pointer named when the caller read it (any key of the
/// namespace when none). ARGV: [1] id, [2] effective ms, [3] record JSON,
/// [4] sequence, [5] the id the pointer held when read ('' when none).
/// Returns 1 when scheduled, 0 when it was already, -1 when the person has
/// a newer event scheduled, [`MOVED`] when the pointer changed since it was
/// read (every key a script touches is passed in KEYS, for Redis Cluster:
/// the record it names is read first, then checked here).
const SCHEDULE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local current = redis.call('GET', KEYS[3]) or ''
if current ~= ARGV[5] then return -3 end
if current ~= '' and current ~= ARGV[1] then
  local old = redis.call('GET', KEYS[4])
  if old and tonumber(cjson.decode(old).sequence) >= tonumber(ARGV[4]) then return -1 end
  redis.call('ZREM', KEYS[1], current)
  redis.call('DEL', KEYS[4])
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return 1";

/// KEYS: [1] index, [2] person pointer, [3] the record of the event the
/// pointer named when read. ARGV: [1] sequence, [2] the id the pointer held
/// when read ('' when none). Takes out the person's scheduled event when
/// older than ARGV[1]; returns its record, nil, or [`MOVED`] when the
/// pointer changed since it was read.
const CANCEL_OLDER: &str = r"
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[2] then return -3 end
if current == '' then return nil end
local record = redis.call('GET', KEYS[3])
if record and tonumber(cjson.decode(record).sequence) >= tonumber(ARGV[1]) then return nil end
redis.call('ZREM', KEYS[1], current)
redis.call('DEL', KEYS[3], KEYS[2])
return record";

/// What [`SCHEDULE`] and [`CANCEL_OLDER`] return when the person's pointer
/// moved between the read and the script: read it again.
const MOVED: i64 = -3;

/// How often a script is run again after [`MOVED`] before giving up: each
/// retry means another replica scheduled an event of the same person.
const ATTEMPTS: usize = 8;

/// KEYS: [1] index. ARGV: [1] most ids, [2] claim ms. Returns the ids due
/// now (Redis's clock), each moved ARGV[2] ahead.
const CLAIM_DUE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) end
return due";

/// KEYS: [1] index, [2] record, [3] person pointer. ARGV: [1] id.
const REMOVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1";

static SCHEDULE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCHEDULE));
static CANCEL_OLDER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CANCEL_OLDER));
static CLAIM_DUE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM_DUE));
static REMOVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REMOVE));

/// How scheduling an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// Kept until it takes effect.
    Scheduled,
    /// It was kept already (a redelivery).
    Already,
    /// A newer event of the person is scheduled: this one is superseded.
    Superseded,
}

/// The scheduled events; from [`Store::scheduled`].
#[derive(Clone, Copy)]
pub struct Scheduled<'s> {
    store: &'s Store,
}

impl<'s> Scheduled<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Keeps `event` until its `effective_at`, replacing an older one of the person.
    pub async fn schedule(self, event: &ScheduledEvent) -> Result<Scheduling, StoreError> {
        let keys = &self.store.keys;
        let json =
            serde_json::to_string(event).map_err(|_| StoreError::Corrupt { what: "scheduled event" })?;
        let mut conn = self.store.conn.clone();
        for _ in 0..ATTEMPTS {
            let current = self.pointer(&event.person).await?;
            let answer: i64 = SCHEDULE_SCRIPT
                .key(keys.scheduled_index())
                .key(keys.scheduled(&event.id))
                .key(keys.scheduled_person(&event.person))
                .key(keys.scheduled(current.as_deref().unwrap_or(&event.id)))
                .arg(&event.id)
                .arg(event.effective_at.timestamp_millis())
                .arg(&json)
                .arg(event.sequence)
                .arg(current.as_deref().unwrap_or(""))
                .invoke_async(&mut conn)
                .await
                .map_err(command("schedule event"))?;
            match answer {
                MOVED => continue,
                1 => return Ok(Scheduling::Scheduled),
                0 => return Ok(Scheduling::Already),
                _ => return Ok(Scheduling::Superseded),
            }
        }
        Err(StoreError::Contended { what: "scheduled event" })
    }

    /// Takes out what is scheduled for `person` when older than `sequence`
    /// (a newer event supersedes it) and returns it.
    pub async fn cancel_older(
        self,
        person: &PersonId,
        sequence: u64,
    ) -> Result<Option<ScheduledEvent>, StoreError> {
        let keys = &self.store.keys;
        let mut conn = self.store.conn.clone();
        for _ in 0..ATTEMPTS {
            let Some(current) = self.pointer(person).await? else { return Ok(None) };
            let answer: redis::Value = CANCEL_OLDER_SCRIPT
                .key(keys.scheduled_index())
                .key(keys.scheduled_person(person))
                .key(keys.scheduled(&current))
                .arg(sequence)
                .arg(&current)
                .invoke_async(&mut conn)
                .await
                .map_err(command("cancel scheduled event"))?;
            match answer {
                redis::Value::Int(MOVED) => continue,
                redis::Value::Nil => return Ok(None),
                redis::Value::BulkString(record) => {
                    let record = String::from_utf8(record)
                        .map_err(|_| StoreError::Corrupt { what: "scheduled event" })?;
                    return decode(&record).map(Some);
                }
                _ => return Err(StoreError::Corrupt { what: "scheduled event" }),
            }
        }
        Err(StoreError::Contended { what: "scheduled event" })
    }

    /// The id of `person`'s scheduled event, read before a script that
    /// declares its record's key and checks the id is still the same.
    async fn pointer(self, person: &PersonId) -> Result<Option<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.get(self.store.keys.scheduled_person(person)).await.map_err(command("read scheduled event"))
    }

    /// Up to `limit` ids due now, claimed for [`CLAIM_MS`].
    pub async fn claim_due(self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        CLAIM_DUE_SCRIPT
            .key(self.store.keys.scheduled_index())
            .arg(limit)
            .arg(CLAIM_MS)
            .invoke_async(&mut conn)
            .await
            .map_err(command("claim due events"))
    }

    /// The scheduled event `id`.
    pub async fn get(self, id: &str) -> Result<Option<ScheduledEvent>, StoreError> {
        let mut conn = self.store.conn.clone();
        let record: Option<String> =
            conn.get(self.store.keys.scheduled(id)).await.map_err(command("read scheduled event"))?;
        record.map(|r| decode(&r)).transpose()
    }

    /// Removes `event` once published (or when it is gone).
    pub async fn remove(self, id: &str, person: &PersonId) -> Result<(), StoreError> {
        let keys = &self.store.keys;
        let mut conn = self.store.conn.clone();
        REMOVE_SCRIPT
            .key(keys.scheduled_index())
            .key(keys.scheduled(id))
            .key(keys.scheduled_person(person))
            .arg(id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("remove scheduled event"))
    }

    /// Every scheduled event, soonest first.
    pub async fn list(self) -> Result<Vec<ScheduledEvent>, StoreError> {
        let mut conn = self.store.conn.clone();
        let ids: Vec<String> = conn
            .zrange(self.store.keys.scheduled_index(), 0, -1)
            .await
            .map_err(command("list scheduled events"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.store.keys.scheduled(id)).collect();
        let records: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(command("read scheduled events"))?;
        records.into_iter().flatten().map(|r| decode(&r)).collect()
    }

    /// How many events are scheduled.
    pub async fn count(self) -> Result<u64, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.zcard(self.store.keys.scheduled_index()).await.map_err(command("count scheduled events"))
    }
}

fn decode(record: &str) -> Result<ScheduledEvent, StoreError> {
    serde_json::from_str(record).map_err(|_| StoreError::Corrupt { what: "scheduled event" })
}
