//! What each source last said of each person (`{ns}:import:{source}`, a
//! hash: person id → JSON of a `people::View`: status, attributes, groups,
//! effective time and fingerprint). Written with
//! [`Sources::keep`](super::Sources::keep), by HR imports and by the
//! intake's identity-provider sources alike.
//!
//! An import compares a file with it to emit only what changed, and
//! terminates the people a full extract no longer lists, for which it needs
//! their last attributes (the login their accounts are found by): this is
//! the one place HR attributes are kept, and only for people a source
//! brought in. Consistency rule: written after the events it emitted were
//! confirmed by RabbitMQ, so a crash in between
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
}
