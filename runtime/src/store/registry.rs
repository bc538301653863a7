//! The person registry (`{ns}:person:{person}`, a hash: `seq`, `status`,
//! `apps`) and the members sets it keeps (`{ns}:members:{app}`, person ids).
//!
//! The registry holds the last event `sequence` the scheduler fanned out for
//! a person, its status and the apps the person should hold an active
//! account in: it is what lets a mover who leaves an app's scope, or a
//! leaver, be deprovisioned where they were. The members sets are the same
//! facts indexed by app, what a sweep compares an app's accounts with.
//!
//! Consistency rules: a record's sequence only moves forward (an equal or
//! older one is refused), and the members sets always agree with the
//! registry, because both are written by one script ([`RECORD`]). The
//! script is given every members key it touches, those of the person's old
//! and new apps; the old apps are read first, and the script refuses when
//! they changed since, so a concurrent replica's write is never undone:
//! the client reads again and retries.
//!
//! Scheduler replicas plan a person only under its planning lease
//! ([`LeaseScope::Plan`](super::LeaseScope::Plan)), and their writes are
//! fenced ([`Registry::intend`], [`Registry::record_fenced`]): a replica
//! whose lease passed on writes nothing. Before publishing, the holder adds
//! the apps its plan sends upserts to to the person's `pending` field; the
//! record clears it. A replica planning after a stalled one therefore counts
//! the apps that stalled replica may still send jobs to as held, and
//! deprovisions them when they are out of scope.

use std::sync::LazyLock;

use redis::Script;
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

use super::leases::{FENCE_CHECK, FENCED_OUT, Fence};
use super::{Store, StoreError, command};

/// Stores a registry record and moves the person between members sets.
/// The body of [`RECORD`] and [`RECORD_FENCED`]: every index is relative to
/// `o`, the number of keys and arguments the fence check uses before it.
/// KEYS[o+1]: the person hash; KEYS[o+2 .. o+ARGV[o+6]+1]: members sets of
/// the new apps (added to); the rest: members sets of old apps not among the
/// new ones (removed from). ARGV[o+1 ..]: sequence, status, new apps
/// (comma-separated), person id, the old apps as the client read them, how
/// many new-app keys. Returns 1 when stored, 0 when the stored sequence is
/// already at least as new, -1 when the stored apps are no longer those the
/// client read (and -2, [`FENCED_OUT`], from the fenced script).
const RECORD_BODY: &str = r"
local current = tonumber(redis.call('HGET', KEYS[o + 1], 'seq') or '-1')
if tonumber(ARGV[o + 1]) <= current then return 0 end
if (redis.call('HGET', KEYS[o + 1], 'apps') or '') ~= ARGV[o + 5] then return -1 end
redis.call('HSET', KEYS[o + 1], 'seq', ARGV[o + 1], 'status', ARGV[o + 2], 'apps', ARGV[o + 3])
redis.call('HDEL', KEYS[o + 1], 'pending')
local joined = tonumber(ARGV[o + 6])
for i = o + 2, o + joined + 1 do redis.call('SADD', KEYS[i], ARGV[o + 4]) end
for i = o + joined + 2, #KEYS do redis.call('SREM', KEYS[i], ARGV[o + 4]) end
return 1";

/// [`RECORD_BODY`] without a fence.
static RECORD: LazyLock<String> = LazyLock::new(|| format!("local o = 0\n{RECORD_BODY}"));

/// [`RECORD_BODY`] behind [`FENCE_CHECK`]: KEYS[1] the planning fence,
/// ARGV[1] the token.
static RECORD_FENCED: LazyLock<String> =
    LazyLock::new(|| format!("{FENCE_CHECK}\nlocal o = 1\n{RECORD_BODY}"));

/// Adds apps to the person's `pending` field, behind [`FENCE_CHECK`].
/// KEYS[1]: the planning fence, KEYS[2]: the person hash. ARGV[1]: the
/// token, ARGV[2]: the apps (comma-separated). Returns 1, or [`FENCED_OUT`].
static INTEND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{FENCE_CHECK}{}",
        r"
local pending = redis.call('HGET', KEYS[2], 'pending') or ''
for app in string.gmatch(ARGV[2], '[^,]+') do
  if not string.find(',' .. pending .. ',', ',' .. app .. ',', 1, true) then
    pending = (pending == '') and app or (pending .. ',' .. app)
  end
end
redis.call('HSET', KEYS[2], 'pending', pending)
return 1"
    )
});

static RECORD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&RECORD));
static RECORD_FENCED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&RECORD_FENCED));
static INTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&INTEND));

/// How many times a write is tried while other replicas keep changing the
/// person's apps between our read and our script. Each refusal means an
/// older record was stored meanwhile (a newer one makes ours "not newer"),
/// so the loop always makes progress; the bound only stops a runaway.
const MAX_ATTEMPTS: usize = 64;

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

/// How one try of [`RECORD`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Stored,
    NotNewer,
    AppsChanged,
    FencedOut,
}

/// How a fenced write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// Written.
    Stored,
    /// The stored sequence is already at least as new; nothing written.
    NotNewer,
    /// Another holder took the lease since: nothing written.
    FencedOut,
}

/// What a planning replica reads of a person: the record, and the apps a
/// holder announced upserts to without recording yet (see [`Registry::intend`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planning {
    /// The registry record.
    pub known: Option<PersonRecord>,
    /// Apps that may have been sent upserts not reflected in `known`.
    pub pending: Vec<AppId>,
    /// The id of the person's event kept for its effective date, if any.
    pub scheduled: Option<String>,
}

type Fields = (Option<u64>, Option<String>, Option<String>);

/// `seq`, `status`, `apps` and `pending` of a person's hash.
type PlanningFields = (Option<u64>, Option<String>, Option<String>, Option<String>);

/// The apps of a stored `apps` field.
fn parse_apps(apps: &str) -> Result<Vec<AppId>, StoreError> {
    apps.split(',')
        .filter(|a| !a.is_empty())
        .map(AppId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StoreError::Corrupt { what: "person registry apps" })
}

/// A registry record from its hash fields; `None` when there is none.
fn person_record((seq, status, apps): Fields) -> Result<Option<PersonRecord>, StoreError> {
    let Some(sequence) = seq else { return Ok(None) };
    let apps = parse_apps(&apps.unwrap_or_default())?;
    let status = status
        .as_deref()
        .and_then(PersonStatus::parse)
        .ok_or(StoreError::Corrupt { what: "person registry status" })?;
    Ok(Some(PersonRecord { sequence, status, apps }))
}

/// The person registry and its members sets; from [`Store::registry`].
#[derive(Clone, Copy)]
pub struct Registry<'s> {
    store: &'s Store,
}

impl<'s> Registry<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The registry record of `person`.
    pub async fn get(self, person: &PersonId) -> Result<Option<PersonRecord>, StoreError> {
        let mut conn = self.store.conn.clone();
        let fields: Fields = redis::cmd("HMGET")
            .arg(self.store.keys.person(person))
            .arg("seq")
            .arg("status")
            .arg("apps")
            .query_async(&mut conn)
            .await
            .map_err(command("read person"))?;
        person_record(fields)
    }

    /// The registry records of `persons`, in order (one pipeline).
    pub async fn get_many(self, persons: &[PersonId]) -> Result<Vec<Option<PersonRecord>>, StoreError> {
        if persons.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.store.conn.clone();
        let mut pipe = redis::pipe();
        for person in persons {
            pipe.cmd("HMGET").arg(self.store.keys.person(person)).arg("seq").arg("status").arg("apps");
        }
        let rows: Vec<Fields> = pipe.query_async(&mut conn).await.map_err(command("read persons"))?;
        rows.into_iter().map(person_record).collect()
    }

    /// What a replica planning `person` reads: the record, the pending apps
    /// and the id of an event of theirs kept for its effective date (one
    /// round trip).
    pub async fn planning(self, person: &PersonId) -> Result<Planning, StoreError> {
        let mut conn = self.store.conn.clone();
        let ((seq, status, apps, pending), scheduled): (PlanningFields, Option<String>) = redis::pipe()
            .cmd("HMGET")
            .arg(self.store.keys.person(person))
            .arg("seq")
            .arg("status")
            .arg("apps")
            .arg("pending")
            .cmd("GET")
            .arg(self.store.keys.scheduled_person(person))
            .query_async(&mut conn)
            .await
            .map_err(command("read person"))?;
        let known = person_record((seq, status, apps))?;
        Ok(Planning { known, pending: parse_apps(&pending.unwrap_or_default())?, scheduled })
    }

    /// Announces, under `fence`, that upserts of `person` to `apps` are about
    /// to be published: they stay in the person's `pending` apps until a
    /// record clears them. False when fenced out (then publish nothing).
    pub async fn intend(self, person: &PersonId, fence: &Fence, apps: &[AppId]) -> Result<bool, StoreError> {
        let apps: Vec<&str> = apps.iter().map(AppId::as_str).collect();
        let mut conn = self.store.conn.clone();
        let outcome: i64 = INTEND_SCRIPT
            .key(&fence.key)
            .key(self.store.keys.person(person))
            .arg(fence.token)
            .arg(apps.join(","))
            .invoke_async(&mut conn)
            .await
            .map_err(command("record pending apps"))?;
        Ok(outcome != FENCED_OUT)
    }

    /// Stores `record` unless a newer or equal sequence is stored, and moves
    /// the person into the members sets of its apps and out of those of the
    /// apps it left; true when stored.
    pub async fn record(self, person: &PersonId, record: &PersonRecord) -> Result<bool, StoreError> {
        Ok(self.record_with(person, record, None).await? == Recorded::Stored)
    }

    /// Like [`Registry::record`], only while `fence` is the newest of the
    /// person's planning lease; clears the pending apps.
    pub async fn record_fenced(
        self,
        person: &PersonId,
        record: &PersonRecord,
        fence: &Fence,
    ) -> Result<Recorded, StoreError> {
        self.record_with(person, record, Some(fence)).await
    }

    async fn record_with(
        self,
        person: &PersonId,
        record: &PersonRecord,
        fence: Option<&Fence>,
    ) -> Result<Recorded, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let old = self.stored_apps(person).await?;
            match self.attempt(person, record, &old, fence).await? {
                Attempt::Stored => return Ok(Recorded::Stored),
                Attempt::NotNewer => return Ok(Recorded::NotNewer),
                Attempt::FencedOut => return Ok(Recorded::FencedOut),
                Attempt::AppsChanged => {}
            }
        }
        Err(StoreError::Contended { what: "person registry apps" })
    }

    /// The `apps` field of `person` as stored (empty when there is none).
    async fn stored_apps(self, person: &PersonId) -> Result<String, StoreError> {
        let mut conn = self.store.conn.clone();
        let apps: Option<String> = redis::cmd("HGET")
            .arg(self.store.keys.person(person))
            .arg("apps")
            .query_async(&mut conn)
            .await
            .map_err(command("read person apps"))?;
        Ok(apps.unwrap_or_default())
    }

    /// One try of [`RECORD`] (or [`RECORD_FENCED`] under `fence`), given the
    /// `apps` field as last read.
    async fn attempt(
        self,
        person: &PersonId,
        record: &PersonRecord,
        old: &str,
        fence: Option<&Fence>,
    ) -> Result<Attempt, StoreError> {
        let keys = &self.store.keys;
        let script = if fence.is_some() { &*RECORD_FENCED_SCRIPT } else { &*RECORD_SCRIPT };
        let mut invocation = script.prepare_invoke();
        if let Some(fence) = fence {
            invocation.key(&fence.key).arg(fence.token);
        }
        invocation.key(keys.person(person));
        for app in &record.apps {
            invocation.key(keys.members(app));
        }
        let mut left: Vec<AppId> = Vec::new();
        for app in parse_apps(old)? {
            if !record.apps.contains(&app) && !left.contains(&app) {
                invocation.key(keys.members(&app));
                left.push(app);
            }
        }
        let apps: Vec<&str> = record.apps.iter().map(AppId::as_str).collect();
        invocation
            .arg(record.sequence)
            .arg(record.status.as_str())
            .arg(apps.join(","))
            .arg(person.as_str())
            .arg(old)
            .arg(record.apps.len());
        let mut conn = self.store.conn.clone();
        let outcome: i64 = invocation.invoke_async(&mut conn).await.map_err(command("record person"))?;
        Ok(match outcome {
            1 => Attempt::Stored,
            0 => Attempt::NotNewer,
            FENCED_OUT => Attempt::FencedOut,
            _ => Attempt::AppsChanged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    async fn store() -> Store {
        let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let ns = format!("t-{}-registry-unit-{}", chrono::Utc::now().timestamp(), std::process::id());
        Store::connect(&crate::config::RedisConfig::plain(Secret::new(url)), &ns).await.expect("redis")
    }

    fn app(id: &str) -> AppId {
        AppId::parse(id).expect("app")
    }

    async fn members(store: &Store, app: &AppId) -> Vec<String> {
        let mut conn = store.conn.clone();
        let mut ids: Vec<String> =
            redis::cmd("SMEMBERS").arg(store.keys.members(app)).query_async(&mut conn).await.expect("redis");
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_stored_status_reads_back_typed_and_an_unknown_one_is_corrupt() {
        let read = |status: &str| person_record((Some(2), Some(status.to_owned()), Some("crm".to_owned())));
        let record = read("suspended").expect("valid").expect("present");
        assert_eq!(record.status, PersonStatus::Suspended);
        assert!(matches!(read("retired"), Err(StoreError::Corrupt { what: "person registry status" })));
        assert!(matches!(read(""), Err(StoreError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn a_write_based_on_stale_apps_is_refused_then_retried_on_a_fresh_read() {
        let store = store().await;
        let person = PersonId::parse("E1").expect("person");
        let (crm, hr) = (app("crm"), app("hr"));
        let rec = |sequence, apps: &[&AppId]| PersonRecord {
            sequence,
            status: PersonStatus::Active,
            apps: apps.iter().map(|a| (*a).clone()).collect(),
        };
        assert!(store.registry().record(&person, &rec(1, &[&crm])).await.expect("redis"));
        // A replica that read the person before that write (no apps) must
        // not store: it would leave the person in the members of crm.
        let refused = store.registry().attempt(&person, &rec(2, &[&hr]), "", None).await.expect("redis");
        assert_eq!(refused, Attempt::AppsChanged);
        assert_eq!(store.registry().get(&person).await.expect("redis").map(|r| r.sequence), Some(1));
        // Older than stored wins over changed apps: still "not newer".
        let older = store.registry().attempt(&person, &rec(1, &[&hr]), "", None).await.expect("redis");
        assert_eq!(older, Attempt::NotNewer);
        // The retrying client reads the apps again and stores.
        assert!(store.registry().record(&person, &rec(2, &[&hr])).await.expect("redis"));
        assert_eq!(members(&store, &crm).await, Vec::<String>::new(), "left crm");
        assert_eq!(members(&store, &hr).await, ["E1"], "joined hr");
        store.delete_namespace().await.expect("cleanup");
    }
}
