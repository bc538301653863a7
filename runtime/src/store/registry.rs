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

use std::sync::LazyLock;

use redis::Script;
use scimfleet_schemas::{AppId, PersonId, PersonStatus};

use super::{Store, StoreError, command};

/// Stores a registry record and moves the person between members sets.
/// KEYS[1]: the person hash; KEYS[2 .. ARGV[6]+1]: members sets of the new
/// apps (added to); the rest: members sets of old apps not among the new
/// ones (removed from). ARGV: sequence, status, new apps (comma-separated),
/// person id, the old apps as the client read them, how many new-app keys.
/// Returns 1 when stored, 0 when the stored sequence is already at least as
/// new, -1 when the stored apps are no longer those the client read.
const RECORD: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
if tonumber(ARGV[1]) <= current then return 0 end
if (redis.call('HGET', KEYS[1], 'apps') or '') ~= ARGV[5] then return -1 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'status', ARGV[2], 'apps', ARGV[3])
local joined = tonumber(ARGV[6])
for i = 2, joined + 1 do redis.call('SADD', KEYS[i], ARGV[4]) end
for i = joined + 2, #KEYS do redis.call('SREM', KEYS[i], ARGV[4]) end
return 1";

static RECORD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD));

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
}

type Fields = (Option<u64>, Option<String>, Option<String>);

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

    /// Stores `record` unless a newer or equal sequence is stored, and moves
    /// the person into the members sets of its apps and out of those of the
    /// apps it left; true when stored.
    pub async fn record(self, person: &PersonId, record: &PersonRecord) -> Result<bool, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let old = self.stored_apps(person).await?;
            match self.attempt(person, record, &old).await? {
                Attempt::Stored => return Ok(true),
                Attempt::NotNewer => return Ok(false),
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

    /// One try of [`RECORD`], given the `apps` field as last read.
    async fn attempt(
        self,
        person: &PersonId,
        record: &PersonRecord,
        old: &str,
    ) -> Result<Attempt, StoreError> {
        let keys = &self.store.keys;
        let mut invocation = RECORD_SCRIPT.prepare_invoke();
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
        Store::connect(&Secret::new(url), &ns).await.expect("redis")
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
        let refused = store.registry().attempt(&person, &rec(2, &[&hr]), "").await.expect("redis");
        assert_eq!(refused, Attempt::AppsChanged);
        assert_eq!(store.registry().get(&person).await.expect("redis").map(|r| r.sequence), Some(1));
        // Older than stored wins over changed apps: still "not newer".
        let older = store.registry().attempt(&person, &rec(1, &[&hr]), "").await.expect("redis");
        assert_eq!(older, Attempt::NotNewer);
        // The retrying client reads the apps again and stores.
        assert!(store.registry().record(&person, &rec(2, &[&hr])).await.expect("redis"));
        assert_eq!(members(&store, &crm).await, Vec::<String>::new(), "left crm");
        assert_eq!(members(&store, &hr).await, ["E1"], "joined hr");
        store.delete_namespace().await.expect("cleanup");
    }
}
