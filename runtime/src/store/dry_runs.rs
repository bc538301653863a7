//! What dry-run apps would have been sent (`{ns}:dry-run:{app}`, a list of
//! JSON records, newest first, capped at [`KEPT`]).
//!
//! Consistency rule: appended by workers (LPUSH then LTRIM in one
//! pipeline), read by operators; records are independent, so replicas need
//! no coordination, and the cap bounds memory whatever the traffic.

use scimfleet_schemas::AppId;

use super::{Store, StoreError, command};

/// Records kept per app.
pub const KEPT: usize = 10_000;

/// The dry-run records of apps; from [`Store::dry_runs`].
#[derive(Clone, Copy)]
pub struct DryRuns<'s> {
    store: &'s Store,
}

impl<'s> DryRuns<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Keeps `record` (JSON) as `app`'s newest.
    pub async fn push(self, app: &AppId, record: &str) -> Result<(), StoreError> {
        let mut conn = self.store.conn.clone();
        let key = self.store.keys.dry_run(app);
        redis::pipe()
            .cmd("LPUSH")
            .arg(&key)
            .arg(record)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(KEPT - 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(command("record a dry run"))
    }

    /// `app`'s newest `limit` records, newest first.
    pub async fn list(self, app: &AppId, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut conn = self.store.conn.clone();
        let last = limit.clamp(1, KEPT) as i64 - 1;
        redis::cmd("LRANGE")
            .arg(self.store.keys.dry_run(app))
            .arg(0)
            .arg(last)
            .query_async(&mut conn)
            .await
            .map_err(command("read dry runs"))
    }
}
