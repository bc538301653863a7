//! What each HR file source last said of each person
//! (`{ns}:import:{source}`, a hash: person id → JSON of the row's status,
//! attributes, groups and effective time, and its fingerprint).
//!
//! An import compares a file with it to emit only what changed, and
//! terminates the people a full extract no longer lists, for which it needs
//! their last attributes (the login their accounts are found by): this is
//! the one place HR attributes are kept, and only for people a file source
//! brought in. Consistency rule: written by `scimfleet import` after the
//! events it emitted were confirmed by RabbitMQ, so a crash in between
//! emits them again (harmless: events carry sequences), never loses them.

use std::collections::HashMap;

use super::{Store, StoreError, command};

/// The last rows of HR file sources; from [`Store::imports`].
#[derive(Clone, Copy)]
pub struct Imports<'s> {
    store: &'s Store,
}

impl<'s> Imports<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Every person `source` has imported, with their last row (JSON).
    pub async fn all(self, source: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.store.conn.clone();
        redis::cmd("HGETALL")
            .arg(self.store.keys.import(source))
            .query_async(&mut conn)
            .await
            .map_err(command("read imported rows"))
    }

    /// Keeps `rows` (person id, row JSON) as `source`'s last word on them.
    pub async fn keep(self, source: &str, rows: &[(String, String)]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.conn.clone();
        let mut hset = redis::cmd("HSET");
        hset.arg(self.store.keys.import(source));
        for (person, row) in rows {
            hset.arg(person).arg(row);
        }
        hset.query_async::<()>(&mut conn).await.map_err(command("keep imported rows"))
    }
}
