//! Applied versions (`{ns}:applied:{app}:{person}`): the highest person
//! `sequence` a worker converged in an app, so an older job never
//! overwrites newer state (guarantee 3).
//!
//! Consistency rule: a version only moves forward. Every write is the
//! compare-and-set [`RAISE`] script (or the converged-upsert script in
//! `desired.rs`, which embeds the same rule), so two replicas racing can
//! never lower it. Writes happen under the (app, person) lease, which also
//! makes the version read with the lease current.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};
use scimfleet_schemas::{AppId, PersonId};

use super::{FENCE_CHECK, Fence, Fenced, Store, StoreError, command};

/// Keeps the maximum, after [`FENCE_CHECK`]; returns 1 when written.
/// KEYS[1]: the fence, KEYS[2]: the applied key. ARGV[1]: the token,
/// ARGV[2]: the sequence.
const RAISE: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[2]) > current then redis.call('SET', KEYS[2], ARGV[2]) end
return 1";

static RAISE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{FENCE_CHECK}{RAISE}")));

/// The applied versions; from [`Store::applied`].
#[derive(Clone, Copy)]
pub struct Applied<'s> {
    store: &'s Store,
}

impl<'s> Applied<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The highest sequence converged for `person` in `app`.
    pub async fn get(self, app: &AppId, person: &PersonId) -> Result<Option<u64>, StoreError> {
        let mut conn = self.store.conn.clone();
        conn.get(self.store.keys.applied(app, person)).await.map_err(command("read applied version"))
    }

    /// Raises the applied sequence to `sequence` (never lowers it), under
    /// the lease `fence` proves; refused when a newer lease was taken.
    pub async fn raise(
        self,
        app: &AppId,
        person: &PersonId,
        sequence: u64,
        fence: &Fence,
    ) -> Result<Fenced, StoreError> {
        let mut conn = self.store.conn.clone();
        RAISE_SCRIPT
            .key(&fence.key)
            .key(self.store.keys.applied(app, person))
            .arg(fence.token)
            .arg(sequence)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(Fenced::of)
            .map_err(command("record applied version"))
    }
}
