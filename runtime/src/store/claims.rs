//! Period claims (`{ns}:claim:{what}`, `SET NX PX`): how a periodic task (a
//! sweep) runs once per period across replicas and restarts.
//!
//! Consistency rule: a claim is taken by at most one caller per period and
//! never released early; it only expires.

use std::time::Duration;

use super::{Store, StoreError, command, px};

/// The period claims; from [`Store::claims`].
#[derive(Clone, Copy)]
pub struct Claims<'s> {
    store: &'s Store,
}

impl<'s> Claims<'s> {
    pub(super) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Claims `what` for `period` if nobody claimed it within the last one;
    /// true when this caller got it.
    pub async fn claim_period(self, what: &str, period: Duration) -> Result<bool, StoreError> {
        let mut conn = self.store.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.store.keys.claim(what))
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("NX")
            .arg("PX")
            .arg(px(period))
            .query_async(&mut conn)
            .await
            .map_err(command("claim a period"))?;
        Ok(taken.is_some())
    }
}
