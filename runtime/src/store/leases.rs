//! Fenced leases: the cross-process guarantee that one holder at a time
//! works on a scope (a person in an app for a worker, a person for the
//! scheduler), that a dead holder's lease frees within seconds, and that a
//! stalled holder whose lease passed to another cannot record a result.
//!
//! - The **lease** (`{ns}:lease:{scope}`) holds the holder's token with a
//!   short TTL, renewed by the holder while it works ([`Leases::renew`]); a
//!   holder that dies stops renewing, so the lease frees after one TTL.
//! - The **fence** (`{ns}:fence:{scope}`) is the highest token ever issued
//!   for the scope: each take increments it, so tokens only grow. A write
//!   that records a result checks, in the same Lua script, that the fence
//!   still equals its token ([`FENCE_CHECK`]); once another holder took the
//!   lease, the fence moved on and the stale holder's write is refused.
//!   Tokens follow Redis's clock too, so they grow even across a restart
//!   that lost the last second of writes.
//!   The fence never expires: it must outlive every result written under it.
//!
//! Consistency rules: a lease is renewed and released only by its holder
//! (compare-and-set on the token), and a result is recorded only under the
//! newest token.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use scimfleet_schemas::{AppId, PersonId};

use super::{Store, StoreError, command, px};

/// Takes the lease if nobody holds it, issuing the next fencing token.
/// KEYS[1]: the lease, KEYS[2]: the fence. ARGV[1]: TTL in ms.
/// Returns the token, or 0 when the lease is held.
///
/// The token is the larger of the last one plus one and Redis's clock in
/// microseconds, so tokens keep growing even when a crash lost the last
/// second of writes (AOF `everysec`): a token issued again after such a loss
/// would let two holders pass the fence. Microseconds stay below 2^53, so
/// Lua's numbers hold them exactly.
const TAKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, now)
redis.call('SET', KEYS[2], string.format('%d', token))
redis.call('SET', KEYS[1], string.format('%d', token), 'PX', ARGV[1])
return token";

/// Extends the lease if it is still ours. KEYS[1]: the lease. ARGV[1]: our
/// token, ARGV[2]: TTL in ms. Returns 1 when renewed, 0 when lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

/// Deletes the lease if it is still ours. KEYS[1]: the lease. ARGV[1]: our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// The Lua lines a fenced write script starts with: it returns `-2` (see
/// [`FENCED_OUT`]) unless the fence, passed as `KEYS[1]`, still equals the
/// token passed as `ARGV[1]`. The script's own keys and arguments follow
/// from index 2.
pub const FENCE_CHECK: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return -2 end
";

/// What a fenced write script returns when a newer lease exists.
pub const FENCED_OUT: i64 = -2;

/// What a fenced write came to.
#[must_use = "a refused write recorded nothing; its result is superseded"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Written under the newest lease of its scope.
    Written,
    /// Refused, nothing written: a newer lease of the scope was taken.
    Refused,
}

impl Fenced {
    /// What a script starting with [`FENCE_CHECK`] returned.
    pub(super) fn of(returned: i64) -> Self {
        if returned == FENCED_OUT { Self::Refused } else { Self::Written }
    }
}

static TAKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// What a lease is on.
#[derive(Debug, Clone, Copy)]
pub enum LeaseScope<'a> {
    /// A worker applying a person in an app.
    Apply {
        /// The app.
        app: &'a AppId,
        /// The person.
        person: &'a PersonId,
    },
    /// A scheduler planning a person.
    Plan {
        /// The person.
        person: &'a PersonId,
    },
}

/// The proof a write was made under the newest lease of its scope: the
/// fence key and the token; pass it to a fenced write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub(super) key: String,
    pub(super) token: u64,
}

impl Fence {
    /// The fencing token (grows with every take of the scope).
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// A held lease; renew it while working, release it when done.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    fence: Fence,
}

impl Lease {
    /// The fence every result written under this lease must carry.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }
}

/// The fenced leases; from [`Store::leases`].
#[derive(Clone, Copy)]
pub struct Leases<'s> {
    store: &'s Store,
}

impl<'s> Leases<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Takes the lease on `scope` for `ttl` if nobody holds it; `None` when
    /// someone does.
    pub async fn try_take(self, scope: LeaseScope<'_>, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.store.conn.clone();
        let (key, fence_key) = self.keys(scope);
        let token: u64 = TAKE_SCRIPT
            .key(&key)
            .key(&fence_key)
            .arg(px(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(command("take lease"))?;
        Ok((token > 0).then_some(Lease { key, fence: Fence { key: fence_key, token } }))
    }

    /// Like [`Leases::try_take`] on an (app, person) scope, with the
    /// person's applied version in the app (as
    /// [`Applied::get`](super::Applied::get) reads it) in the same round
    /// trip: read after the take, and only written under the lease, so current.
    pub async fn try_take_applying(
        self,
        app: &AppId,
        person: &PersonId,
        ttl: Duration,
    ) -> Result<Option<(Lease, Option<u64>)>, StoreError> {
        let mut conn = self.store.conn.clone();
        let (key, fence_key) = self.keys(LeaseScope::Apply { app, person });
        // EVAL, not EVALSHA: a pipeline cannot load a script Redis lost (a
        // restart empties its script cache), and the script is short.
        let (token, applied): (u64, Option<u64>) = redis::pipe()
            .cmd("EVAL")
            .arg(TAKE)
            .arg(2)
            .arg(&key)
            .arg(&fence_key)
            .arg(px(ttl))
            .cmd("GET")
            .arg(self.store.keys.applied(app, person))
            .query_async(&mut conn)
            .await
            .map_err(command("take lease"))?;
        Ok((token > 0).then_some((Lease { key, fence: Fence { key: fence_key, token } }, applied)))
    }

    /// Extends `lease` by `ttl`; false when it was lost (expired and maybe
    /// taken by another holder), after which nothing may be written under it.
    pub async fn renew(self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let renewed: i64 = RENEW_SCRIPT
            .key(&lease.key)
            .arg(lease.fence.token)
            .arg(px(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(command("renew lease"))?;
        Ok(renewed == 1)
    }

    /// Releases a lease (a no-op if it expired and someone else holds it now).
    pub async fn release(self, lease: Lease) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        RELEASE_SCRIPT
            .key(&lease.key)
            .arg(lease.fence.token)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("release lease"))
    }

    fn keys(self, scope: LeaseScope<'_>) -> (String, String) {
        let keys = &self.store.keys;
        (keys.lease(scope), keys.fence(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    async fn store() -> Store {
        let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let ns = format!("t-{}-fence-unit-{}", chrono::Utc::now().timestamp(), std::process::id());
        Store::connect(&crate::config::RedisConfig::plain(Secret::new(url)), &ns).await.expect("redis")
    }

    /// A fenced write as the record scripts make it: the check, then a SET.
    async fn fenced_set(store: &Store, fence: &Fence, key: &str) -> i64 {
        let script = Script::new(&format!("{FENCE_CHECK}redis.call('SET', KEYS[2], ARGV[1]) return 1"));
        let mut conn = store.conn.clone();
        script.key(&fence.key).key(key).arg(fence.token).invoke_async(&mut conn).await.expect("redis")
    }

    #[tokio::test]
    async fn only_the_newest_holder_records_a_result() {
        let store = store().await;
        let person = PersonId::parse("E1").expect("person");
        let scope = LeaseScope::Plan { person: &person };
        let result = format!("{}:result", store.keys.person(&person));
        let stale =
            store.leases().try_take(scope, Duration::from_millis(50)).await.expect("redis").expect("free");
        assert_eq!(fenced_set(&store, stale.fence(), &result).await, 1, "the holder records");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let newer =
            store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").expect("expired");
        assert_eq!(fenced_set(&store, stale.fence(), &result).await, FENCED_OUT, "a stale holder is refused");
        assert_eq!(fenced_set(&store, newer.fence(), &result).await, 1);
        // Releasing a stale lease leaves the new holder's alone.
        store.leases().release(stale).await.expect("redis");
        assert!(store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").is_none());
        store.leases().release(newer).await.expect("redis");
        assert!(store.leases().try_take(scope, Duration::from_secs(30)).await.expect("redis").is_some());
        store.delete_namespace().await.expect("cleanup");
    }
}
