//! What a sweep compares an app's accounts with.
//!
//! - **Desired state** (`{ns}:desired:{app}:{person}`, JSON): the `user`,
//!   `managed` attributes and group plan of the last upsert a worker
//!   converged, with its sequence. Written under the (app, person) lease, so
//!   it needs no compare-and-set of its own.
//! - **Account index** (`{ns}:account:{app}:ext:<externalId>` and
//!   `…:un:<lower-cased userName>` → person id): maps an account found in
//!   the app back to a person, by the keys the worker looks accounts up by.
//! - **Members** (`{ns}:members:{app}`, a set kept by the registry script):
//!   the persons who should hold an account there.
//! - Per sweep run, a **seen** set (persons an account mapped to), the
//!   **missing** difference, and a list of **fixes** (remediation jobs kept
//!   until paging is over); all expire after an hour if a sweep dies.
//!
//! Every read is batched per page (one MGET or one pipeline), never one round
//! trip per account.
//!
//! Consistency rules: the desired state and account index are written
//! under the (app, person) lease together with the applied version, in one
//! script ([`RECORD_CONVERGED`]) that never lowers the version and writes
//! nothing once a newer lease was taken (the lease's fence); the per-run
//! sweep keys belong to the one sweep that claimed the period.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use scimfleet_schemas::scim::{ScimUser, UserAttr};
use scimfleet_schemas::{AppId, GroupPlan, PersonId};
use serde::{Deserialize, Serialize};

use super::keys::account_keys;
use super::{FENCE_CHECK, Fence, Fenced, Store, StoreError, command};

/// After [`FENCE_CHECK`], the applied version raised (as in `applied.rs`),
/// then the desired state and account index of an upsert, at once.
/// KEYS[1]: the fence, KEYS[2]: the applied key, KEYS[3]: the desired key,
/// KEYS[4..]: the account-index keys. ARGV: token, sequence, desired JSON,
/// person id.
const RECORD_CONVERGED: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('SET', KEYS[3], ARGV[3])
for i = 4, #KEYS do redis.call('SET', KEYS[i], ARGV[4]) end
return 1";

static RECORD_CONVERGED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{FENCE_CHECK}{RECORD_CONVERGED}")));

/// How long the per-run sweep keys outlive a sweep that died.
const SWEEP_TTL: Duration = Duration::from_secs(3600);

/// Members read per SSCAN round trip.
const SCAN_COUNT: u64 = 500;

/// The state a converged upsert left an account in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredAccount {
    /// The person's sequence the upsert brought the account to.
    pub sequence: u64,
    /// The mapped account.
    pub user: ScimUser,
    /// The attributes the app's mapping manages.
    pub managed: Vec<UserAttr>,
    /// Group memberships to hold and to drop.
    pub groups: GroupPlan,
}

/// A scan over the persons who should hold an account but were not seen;
/// see [`Desired::start_missing`].
#[derive(Debug)]
pub struct MissingScan {
    key: String,
    cursor: u64,
    done: bool,
}

fn ttl_ms() -> u64 {
    u64::try_from(SWEEP_TTL.as_millis()).unwrap_or(u64::MAX)
}

/// The desired state, account index and sweep run sets; from [`Store::desired`].
#[derive(Clone, Copy)]
pub struct Desired<'s> {
    store: &'s Store,
}

impl<'s> Desired<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// What a converged write leaves behind, in one round trip: the applied
    /// version of `person` in `app` raised to `sequence` (never lowered),
    /// and for an upsert its desired state and the account index that maps
    /// the account back to the person (`account_keys`). All under the
    /// lease `fence` proves: nothing is written when a newer one was taken.
    pub async fn record_converged(
        self,
        app: &AppId,
        person: &PersonId,
        sequence: u64,
        desired: Option<&DesiredAccount>,
        fence: &Fence,
    ) -> Result<Fenced, StoreError> {
        let Some(desired) = desired else {
            return self.store.applied().raise(app, person, sequence, fence).await;
        };
        let mut conn = self.store.conn.clone();
        // Serialising our own type cannot fail.
        let json = serde_json::to_string(desired).unwrap_or_default();
        let mut invocation = RECORD_CONVERGED_SCRIPT.prepare_invoke();
        invocation.key(&fence.key).key(self.store.keys.applied(app, person));
        invocation.key(self.store.keys.desired(app, person));
        for key in account_keys(desired.user.external_id.as_deref(), &desired.user.user_name) {
            invocation.key(self.store.keys.account(app, &key));
        }
        invocation.arg(fence.token).arg(sequence).arg(json).arg(person.as_str());
        invocation
            .invoke_async::<i64>(&mut conn)
            .await
            .map(Fenced::of)
            .map_err(command("record a converged upsert"))
    }

    /// The desired state of each of `persons` in `app` (one MGET).
    pub async fn get_many(
        self,
        app: &AppId,
        persons: &[PersonId],
    ) -> Result<Vec<Option<DesiredAccount>>, StoreError> {
        if persons.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.store.conn.clone();
        let keys: Vec<String> = persons.iter().map(|p| self.store.keys.desired(app, p)).collect();
        let raw: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(command("read desired state"))?;
        raw.into_iter()
            .map(|r| {
                r.map(|r| serde_json::from_str(&r).map_err(|_| StoreError::Corrupt { what: "desired state" }))
                    .transpose()
            })
            .collect()
    }

    /// The person each account maps to through the account index (one MGET
    /// for the page); an account is given as its [`account_keys`].
    pub async fn account_owners(
        self,
        app: &AppId,
        accounts: &[Vec<String>],
    ) -> Result<Vec<Option<PersonId>>, StoreError> {
        let keys: Vec<String> = accounts.iter().flatten().map(|k| self.store.keys.account(app, k)).collect();
        if keys.is_empty() {
            return Ok(vec![None; accounts.len()]);
        }
        let mut conn = self.store.conn.clone();
        let raw: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(command("read account index"))?;
        let mut raw = raw.into_iter();
        Ok(accounts
            .iter()
            .map(|keys| {
                // The first key that maps wins (`ext:` before `un:`); an
                // unparseable id counts as no mapping.
                let found: Vec<Option<String>> = raw.by_ref().take(keys.len()).collect();
                found.into_iter().flatten().find_map(|id| PersonId::parse(id).ok())
            })
            .collect())
    }

    /// Adds `persons` to the set of persons sweep `run` saw an account of in `app`.
    pub async fn note_seen(self, app: &AppId, run: &str, persons: &[PersonId]) -> Result<(), StoreError> {
        if persons.is_empty() {
            return Ok(());
        }
        let key = self.store.keys.sweep_seen(app, run);
        let ids: Vec<&str> = persons.iter().map(PersonId::as_str).collect();
        let mut add = redis::cmd("SADD");
        add.arg(&key).arg(&ids);
        self.write_expiring(add, &key, "note seen accounts").await
    }

    /// Runs `write` on `key` and gives the key the sweep keys' expiry, in one
    /// round trip: every per-run key of a sweep is gone an hour later even if
    /// the sweep dies before cleaning up.
    async fn write_expiring(
        self,
        write: redis::Cmd,
        key: &str,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        redis::pipe()
            .add_command(write)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl_ms())
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(command(what))
    }

    /// Computes, in Redis, the members of `app` sweep `run` saw no account
    /// of, and returns a scan over them (read with [`Desired::next_missing`]).
    pub async fn start_missing(self, app: &AppId, run: &str) -> Result<MissingScan, StoreError> {
        let key = self.store.keys.sweep_missing(app, run);
        let mut diff = redis::cmd("SDIFFSTORE");
        diff.arg(&key).arg(self.store.keys.members(app)).arg(self.store.keys.sweep_seen(app, run));
        self.write_expiring(diff, &key, "compute missing accounts").await?;
        Ok(MissingScan { key, cursor: 0, done: false })
    }

    /// The next chunk of missing persons; `None` when the scan is over. A
    /// chunk may be empty (SSCAN may return nothing on a step).
    pub async fn next_missing(self, scan: &mut MissingScan) -> Result<Option<Vec<PersonId>>, StoreError> {
        if scan.done {
            return Ok(None);
        }
        let mut conn = self.store.conn.clone();
        let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(&scan.key)
            .arg(scan.cursor)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut conn)
            .await
            .map_err(command("scan missing accounts"))?;
        scan.cursor = next;
        scan.done = next == 0;
        Ok(Some(ids.into_iter().filter_map(|id| PersonId::parse(id).ok()).collect()))
    }

    /// Keeps remediation job bodies of sweep `run` until paging is over
    /// (publishing while paging could shift the pages of an app that deletes).
    pub async fn push_fixes(self, app: &AppId, run: &str, bodies: &[String]) -> Result<(), StoreError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let key = self.store.keys.sweep_fixes(app, run);
        let mut push = redis::cmd("RPUSH");
        push.arg(&key).arg(bodies);
        self.write_expiring(push, &key, "keep remediation jobs").await
    }

    /// Takes up to `count` kept remediation job bodies, oldest first.
    pub async fn pop_fixes(self, app: &AppId, run: &str, count: usize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        let popped: Option<Vec<String>> = redis::cmd("LPOP")
            .arg(self.store.keys.sweep_fixes(app, run))
            .arg(count.max(1))
            .query_async(&mut conn)
            .await
            .map_err(command("take remediation jobs"))?;
        Ok(popped.unwrap_or_default())
    }

    /// Removes the keys of sweep `run` of `app`.
    pub async fn end_sweep(self, app: &AppId, run: &str) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("UNLINK")
            .arg(self.store.keys.sweep_seen(app, run))
            .arg(self.store.keys.sweep_missing(app, run))
            .arg(self.store.keys.sweep_fixes(app, run))
            .query_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("end sweep"))
    }
}
