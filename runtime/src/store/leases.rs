//! Leases (`{ns}:lease:{app}:{person}`, `SET NX PX` with a random token):
//! the cross-process guarantee that two workers never apply one person in
//! one app at once. The TTL frees the lease of a worker that died holding it.
//!
//! Consistency rule: a lease is released only by its holder. Release is the
//! compare-and-delete [`RELEASE`] script on the holder's token, so a worker
//! whose lease expired and was taken over cannot free the new holder's.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use scimfleet_schemas::{AppId, PersonId};

use super::{Store, StoreError, command, px};

/// Deletes the lease only if it is still ours.
/// KEYS[1]: the lease key. ARGV[1]: the holder's token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

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

/// A held lease on one person in one app; release it with [`Leases::release`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    token: String,
}

/// The (app, person) leases; from [`Store::leases`].
#[derive(Clone, Copy)]
pub struct Leases<'s> {
    store: &'s Store,
}

impl<'s> Leases<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Takes the lease on `person` in `app` for `ttl` if nobody holds it.
    ///
    /// With the lease comes the person's applied version in the app (as
    /// [`Applied::get`](super::Applied::get) reads it), in the same round
    /// trip: the read runs after the lease was set, and that version is only
    /// written under the lease, so it is current. `None` when someone else
    /// holds the lease.
    pub async fn try_take(
        self,
        app: &AppId,
        person: &PersonId,
        ttl: Duration,
    ) -> Result<Option<(Lease, Option<u64>)>, StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.lease(app, person);
        let token = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        let (taken, applied): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(px(ttl))
            .cmd("GET")
            .arg(self.store.keys.applied(app, person))
            .query_async(&mut conn)
            .await
            .map_err(command("take lease"))?;
        Ok(taken.map(|_| (Lease { key, token }, applied)))
    }

    /// Releases a lease (a no-op if it expired and someone else holds it now).
    pub async fn release(self, lease: Lease) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        RELEASE_SCRIPT
            .key(&lease.key)
            .arg(&lease.token)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(command("release lease"))
    }
}
